//! The authorization code flow: discovery, registration, PKCE, the callback checks, refresh,
//! restart, step-up, and no secret in the logs.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use mcp_hub_transport::AuthChallenge;
use url::Url;

use super::fake::{FakeConfig, start_fake};
use super::{REDIRECT, authorize, call_mcp, capture_logs, manager};
use crate::{AuthError, ClientConfig};

#[tokio::test]
async fn full_flow_refresh_restart_and_no_secrets_in_logs() {
    let logs = capture_logs();

    let fake = start_fake(FakeConfig {
        expires_in: 600,
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("mcp-hub/oauth-tokens.json");
    let m = manager(&dir);
    let hook = m.hook("srv", &url, ClientConfig::default());
    assert_eq!(hook.authorization().await.unwrap(), None);
    assert!(!m.has_tokens(&url));

    // Discovery → DCR → authorize → callback → token exchange.
    let auth_url = authorize(&m, &hook, "srv", &url).await.unwrap();
    let q: HashMap<String, String> = auth_url.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "mcp:read", "scope comes from the challenge");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert!(
        auth_url
            .as_str()
            .starts_with(&format!("{}/as/authorize?", fake.base))
    );
    assert!(m.has_tokens(&url));
    {
        let st = fake.st();
        assert_eq!(st.registrations.len(), 1);
        assert_eq!(st.registrations[0]["application_type"], "native");
        assert_eq!(st.registrations[0]["redirect_uris"][0], REDIRECT);
        assert_eq!(st.grants, ["authorization_code"]);
        assert_eq!(st.token_auth, ["client_secret_basic"]);
        // The root PRM location was not needed, and no other metadata layout was probed first.
        assert!(
            !st.seen
                .iter()
                .any(|(_, p)| p == "/.well-known/oauth-protected-resource")
        );
    }
    let first = hook.authorization().await.unwrap().unwrap();
    assert_eq!(call_mcp(&url, Some(&first)).await.0, 200);
    let mode = std::fs::metadata(&store_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "token file must be readable by the user only");

    // Expiry: the next request refreshes first (rotated refresh token stored).
    m.advance_clock(600);
    let second = hook.authorization().await.unwrap().unwrap();
    assert_ne!(first, second);
    assert_eq!(fake.st().grants, ["authorization_code", "refresh_token"]);
    assert_eq!(call_mcp(&url, Some(&second)).await.0, 200);
    let file = std::fs::read_to_string(&store_path).unwrap();
    let live_rt = fake.st().refresh.iter().next().cloned().unwrap();
    assert!(
        file.contains(&live_rt),
        "the rotated refresh token is stored"
    );

    // Restart: a new manager reads the same file and reuses the token without any OAuth call.
    drop(hook);
    drop(m);
    let m2 = manager(&dir);
    m2.advance_clock(600);
    let hook2 = m2.hook("srv", &url, ClientConfig::default());
    assert!(m2.has_tokens(&url));
    assert_eq!(
        hook2.authorization().await.unwrap().as_deref(),
        Some(&*second)
    );
    assert_eq!(call_mcp(&url, Some(&second)).await.0, 200);
    assert_eq!(fake.st().grants.len(), 2);

    // The server drops its access tokens: a 401 triggers one refresh and a retry.
    fake.st().access.clear();
    m2.advance_clock(60);
    let (status, challenge) = call_mcp(&url, Some(&second)).await;
    assert_eq!(status, 401);
    assert!(hook2.on_unauthorized(&challenge).await.unwrap());
    let third = hook2.authorization().await.unwrap().unwrap();
    assert_ne!(third, second);
    assert_eq!(call_mcp(&url, Some(&third)).await.0, 200);

    // Refresh refused: tokens are forgotten and the user must authorize again.
    {
        let mut st = fake.st();
        st.access.clear();
        st.refresh.clear();
    }
    m2.advance_clock(60);
    let (status, challenge) = call_mcp(&url, Some(&third)).await;
    assert_eq!(status, 401);
    assert!(!hook2.on_unauthorized(&challenge).await.unwrap());
    assert!(!m2.has_tokens(&url));
    assert_eq!(hook2.authorization().await.unwrap(), None);
    // ... and the stored registration is reused for that.
    authorize(&m2, &hook2, "srv", &url).await.unwrap();
    assert_eq!(fake.st().registrations.len(), 1);
    let fourth = hook2.authorization().await.unwrap().unwrap();
    assert_eq!(call_mcp(&url, Some(&fourth)).await.0, 200);

    // No token, secret, code or verifier in any log line.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("authorization complete"),
        "logs were captured: {text}"
    );
    let secrets = fake.st().secrets.clone();
    assert!(secrets.len() >= 10);
    for s in secrets {
        assert!(!text.contains(&s), "secret {s} leaked into the logs");
    }
    let _ = std::io::stderr().flush();
}

#[tokio::test]
async fn callback_checks_state_iss_and_expiry_rules() {
    let fake = start_fake(FakeConfig {
        wrong_iss: Some("http://evil.example".into()),
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let _hook = m.hook("srv", &url, ClientConfig::default());
    let auth_url = m.start_authorization("srv", &url, None).await.unwrap();
    // Without a challenge, all of scopes_supported are requested.
    let q: HashMap<String, String> = Url::parse(&auth_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["scope"], "mcp:read mcp:write");
    assert!(matches!(
        m.complete_headless(&auth_url).await,
        Err(AuthError::IssuerParameterMismatch)
    ));
    assert!(
        fake.st().grants.is_empty(),
        "no code exchange after an iss mismatch"
    );

    // Unknown, missing and replayed states.
    let mut query = HashMap::new();
    assert!(matches!(
        m.complete(&query).await,
        Err(AuthError::MissingParameter("state"))
    ));
    query.insert("state".to_owned(), "nope".to_owned());
    query.insert("code".to_owned(), "x".to_owned());
    assert!(matches!(
        m.complete(&query).await,
        Err(AuthError::UnknownState)
    ));
    let again = m.start_authorization("srv", &url, None).await.unwrap();
    let state = Url::parse(&again)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    // A missing iss is refused too, since the server advertises it.
    let mut query = HashMap::from([
        ("state".to_owned(), state.clone()),
        ("code".to_owned(), "c".to_owned()),
    ]);
    assert!(matches!(
        m.complete(&query).await,
        Err(AuthError::IssuerParameterMismatch)
    ));
    // The state was consumed.
    query.insert("iss".to_owned(), format!("{}/as", fake.base));
    assert!(matches!(
        m.complete(&query).await,
        Err(AuthError::UnknownState)
    ));
    assert!(!m.is_pending(&again), "a consumed state is not pending");

    // A denied authorization consumes its state too: its URL is dead, a new one is pending.
    let denied = m.start_authorization("srv", &url, None).await.unwrap();
    assert!(m.is_pending(&denied));
    let state = Url::parse(&denied)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let query = HashMap::from([
        ("state".to_owned(), state),
        ("iss".to_owned(), format!("{}/as", fake.base)),
        ("error".to_owned(), "access_denied".to_owned()),
    ]);
    assert!(matches!(
        m.complete(&query).await,
        Err(AuthError::AuthorizationDenied { .. })
    ));
    assert!(!m.is_pending(&denied));
    assert!(!m.is_pending("not a url") && !m.is_pending("http://a.example/?x=1"));
}

#[tokio::test]
async fn refuses_unsafe_or_inconsistent_servers() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);

    let fake = start_fake(FakeConfig {
        pkce: false,
        ..FakeConfig::default()
    })
    .await;
    let r = m.start_authorization("a", &fake.mcp_url(), None).await;
    assert!(matches!(r, Err(AuthError::PkceUnsupported { .. })), "{r:?}");

    let fake = start_fake(FakeConfig {
        claimed_issuer: Some("http://127.0.0.1:1/other".into()),
        ..FakeConfig::default()
    })
    .await;
    let r = m.start_authorization("b", &fake.mcp_url(), None).await;
    assert!(matches!(r, Err(AuthError::IssuerMismatch { .. })), "{r:?}");

    let fake = start_fake(FakeConfig {
        claimed_resource: Some("https://evil.example.com/mcp".into()),
        ..FakeConfig::default()
    })
    .await;
    let r = m.start_authorization("c", &fake.mcp_url(), None).await;
    assert!(
        matches!(r, Err(AuthError::ResourceMismatch { .. })),
        "{r:?}"
    );
    assert!(
        fake.st().authorizations.is_empty() && fake.st().registrations.is_empty(),
        "nothing happens at the authorization server after a resource mismatch"
    );

    let fake = start_fake(FakeConfig {
        dcr: false,
        ..FakeConfig::default()
    })
    .await;
    let r = m.start_authorization("d", &fake.mcp_url(), None).await;
    assert!(matches!(r, Err(AuthError::NoRegistration { .. })), "{r:?}");

    // A challenge pointing at a metadata address is refused before any request.
    let fake = start_fake(FakeConfig::default()).await;
    let challenge = AuthChallenge {
        status: 401,
        www_authenticate: Some(
            r#"Bearer resource_metadata="http://169.254.169.254/latest/meta-data""#.into(),
        ),
        url: fake.mcp_url(),
    };
    let r = m
        .start_authorization("e", &fake.mcp_url(), Some(&challenge))
        .await;
    assert!(matches!(r, Err(AuthError::InsecureUrl { .. })), "{r:?}");
    assert!(fake.st().seen.is_empty());
}

#[tokio::test]
async fn client_identity_order_and_token_endpoint_auth() {
    // Pre-registered credentials win, with the method the server supports.
    let fake = start_fake(FakeConfig {
        auth_methods: vec!["client_secret_post"],
        cimd: true,
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let cfg = ClientConfig {
        client_id: Some("pre-registered".into()),
        client_secret: Some("pre-secret".into()),
        client_metadata_url: Some("https://hub.example/cimd.json".into()),
        ..ClientConfig::default()
    };
    let hook = m.hook("p", &url, cfg);
    let auth_url = authorize(&m, &hook, "p", &url).await.unwrap();
    assert!(auth_url.as_str().contains("client_id=pre-registered"));
    assert_eq!(fake.st().token_auth, ["client_secret_post"]);
    assert!(fake.st().registrations.is_empty());

    // Then a Client ID Metadata Document where supported (public client, no DCR).
    let fake = start_fake(FakeConfig {
        cimd: true,
        auth_methods: vec!["none"],
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let cfg = ClientConfig {
        client_metadata_url: Some("https://hub.example/cimd.json".into()),
        ..ClientConfig::default()
    };
    let hook = m.hook("c", &url, cfg);
    let auth_url = authorize(&m, &hook, "c", &url).await.unwrap();
    let q: HashMap<String, String> = auth_url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "https://hub.example/cimd.json");
    assert_eq!(fake.st().token_auth, ["none"]);
    assert!(fake.st().registrations.is_empty());

    // Otherwise DCR, asking for `none` when supported.
    let fake = start_fake(FakeConfig {
        auth_methods: vec!["none", "client_secret_basic"],
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let hook = m.hook("d", &url, ClientConfig::default());
    authorize(&m, &hook, "d", &url).await.unwrap();
    assert_eq!(
        fake.st().registrations[0]["token_endpoint_auth_method"],
        "none"
    );
    assert_eq!(fake.st().token_auth, ["none"]);
    assert!(hook.authorization().await.unwrap().is_some());
}

#[tokio::test]
async fn legacy_2025_03_26_discovery() {
    let fake = start_fake(FakeConfig {
        prm: false,
        iss: false,
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let hook = m.hook("old", &url, ClientConfig::default());
    let auth_url = authorize(&m, &hook, "old", &url).await.unwrap();
    assert!(
        auth_url
            .as_str()
            .starts_with(&format!("{}/authorize?", fake.base))
    );
    let q: HashMap<String, String> = auth_url.query_pairs().into_owned().collect();
    assert!(!q.contains_key("scope"), "no scope anywhere: scope omitted");
    let token = hook.authorization().await.unwrap().unwrap();
    assert_eq!(call_mcp(&url, Some(&token)).await.0, 200);

    // A failed legacy-SSE POST reports the `/messages` URL: tokens still go to the server URL.
    m.clear_tokens(&url).await.unwrap();
    assert!(!m.has_tokens(&url));
    let messages: Url = format!("{}/messages?sessionId=abc", fake.base)
        .parse()
        .unwrap();
    let auth_url = m.start_authorization("old", &messages, None).await.unwrap();
    m.complete_headless(&auth_url).await.unwrap();
    assert!(m.has_tokens(&url));
    assert!(!m.has_tokens(&messages));
}

#[tokio::test]
async fn step_up_unions_scopes_and_is_limited() {
    let fake = start_fake(FakeConfig {
        always_insufficient: true,
        challenge_scope: Some("mcp:admin"),
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir);
    let hook = m.hook(
        "s",
        &url,
        ClientConfig {
            scopes: Some(vec!["mcp:read".into()]),
            ..ClientConfig::default()
        },
    );
    let first = authorize(&m, &hook, "s", &url).await.unwrap();
    let q: HashMap<String, String> = first.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "mcp:admin mcp:read");

    // 403 insufficient_scope for a scope already held: one more try, then the limit.
    let mut attempts = 1;
    let mut last = Ok(String::new());
    for _ in 0..5 {
        let token = hook.authorization().await.unwrap().unwrap();
        let (status, challenge) = call_mcp(&url, Some(&token)).await;
        assert_eq!(status, 403);
        assert!(!hook.on_unauthorized(&challenge).await.unwrap());
        last = m.start_authorization("s", &url, Some(&challenge)).await;
        match &last {
            Ok(u) => {
                attempts += 1;
                let q: HashMap<String, String> =
                    Url::parse(u).unwrap().query_pairs().into_owned().collect();
                assert_eq!(q["scope"], "mcp:admin mcp:read");
                m.complete_headless(u).await.unwrap();
            }
            Err(_) => break,
        }
    }
    assert!(matches!(last, Err(AuthError::StepUpLimit(_))), "{last:?}");
    assert!(attempts <= 3, "{attempts} authorizations");
    assert_eq!(fake.st().authorizations.len(), attempts);
    // The user asking again resets the limit.
    assert!(m.start_authorization("s", &url, None).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1)).await;
}
