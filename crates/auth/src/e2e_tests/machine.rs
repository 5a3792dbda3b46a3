//! The grants without a user (client credentials with a secret or a signed assertion, a
//! workload JWT, the enterprise ID token exchange) and DPoP, against the fake: what reaches the
//! servers, what the hub refuses to do again, and no credential in any log line.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;

use http::Method;
use serde_json::json;
use url::Url;

use super::fake::{AS_NONCE, FakeConfig, JWT_BEARER, RS_NONCE, start_fake};
use super::{capture_logs, manager, through_hook};
use crate::dpop::pem;
use crate::jose::SigningKey;
use crate::{AuthConfig, AuthError, ClientConfig};

fn auth(v: serde_json::Value) -> AuthConfig {
    AuthConfig::from_json(&v).unwrap()
}

#[tokio::test]
async fn client_credentials_with_a_secret_needs_no_user_and_renews_itself() {
    let fake = start_fake(FakeConfig {
        grants: vec!["client_credentials"],
        expires_in: 600,
        ..FakeConfig::default()
    })
    .await;
    fake.st()
        .clients
        .insert("svc".into(), Some("svc-s3cret".into()));
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let hook = m.hook_with(
        "cc",
        &url,
        ClientConfig::default(),
        auth(json!({"type": "client_credentials", "client_id": "svc", "client_secret": "svc-s3cret"})),
    );
    // The first request gets a 401; the hook obtains a token at once and the retry passes.
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    {
        let st = fake.st();
        assert_eq!(st.grants, ["client_credentials"]);
        assert_eq!(st.token_auth, ["client_secret_basic"]);
        assert_eq!(
            st.token_scopes,
            [Some("mcp:read".to_owned())],
            "the challenge's scope"
        );
        assert!(st.authorizations.is_empty() && st.registrations.is_empty());
    }
    // No browser for such a server.
    assert!(matches!(
        m.start_authorization("cc", &url, None).await,
        Err(AuthError::NotInteractive { .. })
    ));
    // Near expiry there is no refresh token: the grant runs again before the request.
    m.advance_clock(590);
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    assert_eq!(
        fake.st().grants,
        ["client_credentials", "client_credentials"]
    );
    // A wrong secret is an error the user sees, not a prompt to authorize.
    m.clear_tokens(&url).await.unwrap();
    let bad = m.hook_with(
        "cc",
        &url,
        ClientConfig::default(),
        auth(json!({"type": "client_credentials", "client_id": "svc", "client_secret": "wrong"})),
    );
    let e = through_hook(&bad, &url).await.unwrap_err();
    assert!(e.contains("invalid_client"), "{e}");
    assert!(!e.contains("wrong"), "{e}");
}

#[tokio::test]
async fn client_credentials_with_a_private_key_signs_a_fresh_assertion_each_time() {
    let fake = start_fake(FakeConfig {
        grants: vec!["client_credentials"],
        auth_methods: vec!["private_key_jwt"],
        required_scope: Some("mcp:write"),
        ..FakeConfig::default()
    })
    .await;
    let (key, der) = SigningKey::generate_es256().unwrap();
    fake.st().client_keys.insert("svc".into(), key.public_jwk());
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("svc.pem");
    std::fs::write(&key_file, pem(&der)).unwrap();
    let url = fake.mcp_url();
    let m = manager(&dir);
    let hook = m.hook_with(
        "pk",
        &url,
        ClientConfig::default(),
        auth(json!({"type": "client_credentials", "client_id": "svc",
                    "private_key_file": key_file.to_str().unwrap()})),
    );
    // 401 → token for mcp:read; 403 insufficient_scope → a new token for the union, no user.
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    let st = fake.st();
    assert_eq!(st.token_auth, ["private_key_jwt", "private_key_jwt"]);
    assert_eq!(
        st.token_scopes,
        [
            Some("mcp:read".to_owned()),
            Some("mcp:read mcp:write".to_owned())
        ]
    );
    assert_eq!(st.assertions.len(), 2);
    assert_ne!(st.assertions[0]["jti"], st.assertions[1]["jti"]);
    assert_eq!(st.assertions[0]["aud"], fake.issuer());
    assert_eq!(st.assertions[0]["iss"], "svc");
}

#[tokio::test]
async fn workload_jwt_is_exchanged_once_and_a_refused_one_is_never_resent() {
    let fake = start_fake(FakeConfig {
        grants: vec![JWT_BEARER],
        auth_methods: vec!["none"],
        dcr: false,
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "workload-jwt-1\n").unwrap();
    fake.st().workload_jwts.insert("workload-jwt-1".into());
    let m = manager(&dir);
    let config = auth(json!({"type": "jwt_bearer", "client_id": "wl",
                             "assertion_file": token_file.to_str().unwrap()}));
    let hook = m.hook_with("wif", &url, ClientConfig::default(), config.clone());
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    assert_eq!(fake.st().grants, [JWT_BEARER]);
    assert_eq!(fake.st().token_auth, ["none"]);

    // The platform's token is no longer accepted: one refused request, then no more with it.
    m.clear_tokens(&url).await.unwrap();
    fake.st().workload_jwts.clear();
    let e1 = through_hook(&hook, &url).await.unwrap_err();
    let e2 = through_hook(&hook, &url).await.unwrap_err();
    assert!(e1.contains("invalid_grant") && e1 == e2, "{e1} / {e2}");
    assert_eq!(
        fake.st().grants.len(),
        2,
        "the refused assertion was not sent again"
    );
    // The platform rotates the file: the new assertion is tried.
    std::fs::write(&token_file, "workload-jwt-2").unwrap();
    fake.st().workload_jwts.insert("workload-jwt-2".into());
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    assert_eq!(fake.st().grants.len(), 3);
}

#[tokio::test]
async fn enterprise_managed_exchanges_the_id_token_then_the_id_jag() {
    let fake = start_fake(FakeConfig {
        grants: vec![JWT_BEARER],
        ..FakeConfig::default()
    })
    .await;
    fake.st()
        .clients
        .insert("xaa".into(), Some("xaa-s3cret".into()));
    fake.st().id_tokens.insert("id-token-of-ada".into());
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let hook = m.hook_with(
        "ent",
        &url,
        ClientConfig::default(),
        auth(
            json!({"type": "enterprise_managed", "client_id": "xaa", "client_secret": "xaa-s3cret",
                    "idp_token_endpoint": fake.idp_token_endpoint(), "idp_client_id": "idp-app",
                    "id_token": "id-token-of-ada"}),
        ),
    );
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    let st = fake.st();
    assert_eq!(st.exchanges.len(), 1);
    let x = &st.exchanges[0];
    assert_eq!(x["client_id"], "idp-app");
    assert_eq!(x["audience"], fake.issuer());
    assert_eq!(x["resource"], url.as_str());
    assert_eq!(st.grants, [JWT_BEARER]);
    assert_eq!(st.token_auth, ["client_secret_basic"]);
}

#[tokio::test]
async fn dpop_binds_the_authorization_code_flow_and_answers_both_nonces() {
    let fake = start_fake(FakeConfig {
        dpop: true,
        dpop_nonce: true,
        auth_methods: vec!["none"],
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let hook = m.hook("d", &url, ClientConfig::default());
    // The server challenges with the DPoP scheme; its resource_metadata drives discovery.
    assert_eq!(through_hook(&hook, &url).await, Ok(401));
    let (_, challenge) = super::call_mcp(&url, None).await;
    let auth_url = m
        .start_authorization("d", &url, Some(&challenge))
        .await
        .unwrap();
    let q: HashMap<String, String> = Url::parse(&auth_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let jkt = m.inner.dpop.key().await.unwrap().thumbprint.clone();
    assert_eq!(q["dpop_jkt"], jkt, "the code is bound to the hub's key");
    m.complete_headless(&auth_url).await.unwrap();
    // Past the "token just obtained" window, so a nonce challenge is not mistaken for a stale
    // token (which would cost a refresh).
    m.advance_clock(10);
    // A fresh proof per request; the resource's nonce is learnt from its 401 and used.
    for _ in 0..3 {
        assert_eq!(through_hook(&hook, &url).await, Ok(200));
    }
    {
        let st = fake.st();
        assert!(st.dpop_errors.is_empty(), "{:?}", st.dpop_errors);
        assert_eq!(
            st.nonce_challenges,
            (1, 1),
            "one nonce challenge each, then honoured"
        );
        assert_eq!(st.dpop_requests, 3);
        assert_eq!(
            st.grants,
            ["authorization_code"],
            "a nonce needs no new token"
        );
    }
    let key_file = dir.path().join("mcp-hub/oauth-dpop-key.pem");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let creds = hook.credentials(&Method::POST, &url).await.unwrap();
    assert!(creds[0].1.to_str().unwrap().starts_with("DPoP "));
    assert!(creds[1].1.is_sensitive() && creds[0].1.is_sensitive());
    let _ = (AS_NONCE, RS_NONCE);
}

#[tokio::test]
async fn dpop_false_keeps_bearer_tokens_even_where_dpop_is_offered() {
    let fake = start_fake(FakeConfig {
        dpop: true,
        grants: vec!["client_credentials"],
        ..FakeConfig::default()
    })
    .await;
    fake.st().clients.insert("svc".into(), Some("s".into()));
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let hook = m.hook_with(
        "n",
        &url,
        ClientConfig::default(),
        auth(json!({"type": "client_credentials", "client_id": "svc", "client_secret": "s", "dpop": false})),
    );
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    assert!(fake.st().bound.is_empty());
    assert!(
        !dir.path().join("mcp-hub/oauth-dpop-key.pem").exists(),
        "no key made"
    );
    // ... and with the default (auto), the same server gets a bound token.
    m.clear_tokens(&url).await.unwrap();
    let hook = m.hook_with(
        "n",
        &url,
        ClientConfig::default(),
        auth(json!({"type": "client_credentials", "client_id": "svc", "client_secret": "s"})),
    );
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    assert_eq!(fake.st().bound.len(), 1);
}

#[tokio::test]
async fn dpop_auto_needs_the_resource_to_ask_for_it_too() {
    // The authorization server offers DPoP to everyone; this resource challenges with Bearer
    // and its metadata says nothing about DPoP: a bound token could be one it cannot read.
    let fake = start_fake(FakeConfig {
        dpop: true,
        bearer_challenge: true,
        grants: vec!["client_credentials"],
        ..FakeConfig::default()
    })
    .await;
    fake.st().clients.insert("svc".into(), Some("s".into()));
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let hook = m.hook_with(
        "a",
        &url,
        ClientConfig::default(),
        auth(json!({"type": "client_credentials", "client_id": "svc", "client_secret": "s"})),
    );
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    assert!(fake.st().bound.is_empty(), "auto stays on Bearer");
    // `dpop: true` binds anyway.
    m.clear_tokens(&url).await.unwrap();
    let hook = m.hook_with(
        "a",
        &url,
        ClientConfig::default(),
        auth(json!({"type": "client_credentials", "client_id": "svc", "client_secret": "s", "dpop": true})),
    );
    assert_eq!(through_hook(&hook, &url).await, Ok(200));
    assert_eq!(fake.st().bound.len(), 1);
}

/// Every flow of this file at TRACE, then every secret the fake saw or issued looked for in
/// the captured output.
#[tokio::test]
async fn no_credential_or_proof_in_any_log_line() {
    let logs = capture_logs();
    let fake = start_fake(FakeConfig {
        dpop: true,
        dpop_nonce: true,
        grants: vec!["client_credentials", JWT_BEARER],
        auth_methods: vec!["client_secret_basic", "private_key_jwt"],
        ..FakeConfig::default()
    })
    .await;
    let (key, der) = SigningKey::generate_es256().unwrap();
    let pem = pem(&der);
    {
        let mut st = fake.st();
        st.client_keys.insert("pk".into(), key.public_jwk());
        st.clients
            .insert("cs".into(), Some("cs-s3cret-value".into()));
        st.clients
            .insert("xaa".into(), Some("xaa-s3cret-value".into()));
        st.workload_jwts.insert("wl-assertion-value".into());
        st.id_tokens.insert("ada-id-token-value".into());
    }
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let configs = [
        json!({"type": "client_credentials", "client_id": "cs", "client_secret": "cs-s3cret-value"}),
        json!({"type": "client_credentials", "client_id": "pk", "private_key": pem}),
        json!({"type": "jwt_bearer", "assertion": "wl-assertion-value"}),
        json!({"type": "enterprise_managed", "client_id": "xaa", "client_secret": "xaa-s3cret-value",
               "idp_token_endpoint": fake.idp_token_endpoint(), "id_token": "ada-id-token-value"}),
    ];
    for (i, c) in configs.iter().enumerate() {
        m.clear_tokens(&url).await.unwrap();
        let hook = m.hook_with(
            &format!("s{i}"),
            &url,
            ClientConfig::default(),
            auth(c.clone()),
        );
        assert_eq!(through_hook(&hook, &url).await, Ok(200), "{c}");
        assert_eq!(through_hook(&hook, &url).await, Ok(200), "{c}");
    }
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("access token obtained"), "logs were captured");
    let mut secrets = fake.st().secrets.clone();
    secrets.extend(
        [
            "cs-s3cret-value",
            "xaa-s3cret-value",
            "wl-assertion-value",
            "ada-id-token-value",
        ]
        .map(str::to_owned),
    );
    // The private key's base64 body, line by line.
    secrets.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned),
    );
    assert!(secrets.len() > 20);
    for s in secrets {
        assert!(!text.contains(&s), "{s} leaked into the logs");
    }
}
