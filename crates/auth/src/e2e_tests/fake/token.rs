//! The fake's token endpoints: the authorization server's (every grant the hub uses, with
//! client authentication and DPoP binding) and the identity provider's token exchange.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::Value;

use super::proofs::{check_proof, verify_jws};
// `json` is both the fake's response helper and, through `super`, serde_json's macro.
use super::{AS_NONCE, Fake, JWT_BEARER, form, header, json};
use crate::pkce::{random_token, s256_challenge};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";

pub(super) fn token(f: &Fake, parts: &http::request::Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let c = &f.config;
    let issuer = f.issuer();
    let params = form(body);
    let mut st = f.st();
    // Client authentication.
    let basic = header(parts, "authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (client_id, how) = if let Some(assertion) = params.get("client_assertion") {
        st.secrets.push(assertion.clone());
        let claimed = assertion
            .split('.')
            .nth(1)
            .and_then(|p| B64.decode(p).ok())
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .unwrap_or_default();
        let id = claimed["iss"].as_str().unwrap_or_default().to_owned();
        let Some(key) = st.client_keys.get(&id).cloned() else {
            return json(401, json!({"error": "invalid_client"}));
        };
        let Ok((_, claims)) = verify_jws(assertion, Some(&key)) else {
            return json(401, json!({"error": "invalid_client"}));
        };
        let fresh = st
            .jtis
            .insert(claims["jti"].as_str().unwrap_or_default().to_owned());
        if params.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            || claims["sub"] != id.as_str()
            || claims["aud"] != issuer.as_str()
            || !fresh
        {
            return json(401, json!({"error": "invalid_client"}));
        }
        st.assertions.push(claims);
        (id, "private_key_jwt")
    } else {
        let (id, secret, how) = match (&basic, params.get("client_secret")) {
            (Some(b), _) => {
                let (i, s) = b.split_once(':').unwrap_or((b, ""));
                (i.to_owned(), Some(s.to_owned()), "client_secret_basic")
            }
            (None, Some(s)) => (
                params.get("client_id").cloned().unwrap_or_default(),
                Some(s.clone()),
                "client_secret_post",
            ),
            (None, None) => (
                params.get("client_id").cloned().unwrap_or_default(),
                None,
                "none",
            ),
        };
        let authenticated = match st.clients.get(&id) {
            Some(expected) => *expected == secret,
            // CIMD or pre-registered clients the fake does not know: accept.
            None => true,
        };
        if !authenticated {
            return json(401, json!({"error": "invalid_client"}));
        }
        (id, how)
    };
    st.token_auth.push(how);
    if params.get("resource") != Some(&format!("{}/mcp", f.base)) {
        return json(400, json!({"error": "invalid_target"}));
    }
    // DPoP at the token endpoint.
    let mut jkt = None;
    if c.dpop
        && let Some(proof) = header(parts, "dpop")
    {
        st.secrets.push(proof.to_owned());
        match check_proof(
            &mut st,
            Some(proof),
            "POST",
            &format!("{issuer}/token"),
            None,
        ) {
            Ok((thumb, nonce)) => {
                if c.dpop_nonce && nonce.as_deref() != Some(AS_NONCE) {
                    st.nonce_challenges.0 += 1;
                    return Response::builder()
                        .status(400)
                        .header("dpop-nonce", AS_NONCE)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(r#"{"error":"use_dpop_nonce"}"#)))
                        .unwrap();
                }
                jkt = Some(thumb);
            }
            Err(e) => {
                st.dpop_errors.push(format!("token endpoint: {e}"));
                return json(400, json!({"error": "invalid_dpop_proof"}));
            }
        }
    }
    let grant = params.get("grant_type").cloned().unwrap_or_default();
    st.grants.push(grant.clone());
    st.token_scopes.push(params.get("scope").cloned());
    let mut refresh = true;
    let mut scope = params.get("scope").cloned();
    match grant.as_str() {
        "authorization_code" => {
            let verifier = params.get("code_verifier").cloned().unwrap_or_default();
            st.secrets.push(verifier.clone());
            let Some((cid, challenge, redirect, _, code_scope)) =
                params.get("code").and_then(|code| st.codes.remove(code))
            else {
                return json(400, json!({"error": "invalid_grant"}));
            };
            if cid != client_id
                || challenge != s256_challenge(&verifier)
                || params.get("redirect_uri") != Some(&redirect)
            {
                return json(400, json!({"error": "invalid_grant"}));
            }
            scope = code_scope;
        }
        "refresh_token" => {
            let Some(rt) = params.get("refresh_token") else {
                return json(400, json!({"error": "invalid_request"}));
            };
            // Rotation: the old refresh token dies.
            if !st.refresh.remove(rt) {
                return json(400, json!({"error": "invalid_grant"}));
            }
        }
        "client_credentials" if how != "none" && c.grants.contains(&"client_credentials") => {
            refresh = false;
        }
        JWT_BEARER if c.grants.contains(&JWT_BEARER) => {
            let assertion = params.get("assertion").cloned().unwrap_or_default();
            st.secrets.push(assertion.clone());
            let workload = st.workload_jwts.contains(&assertion);
            let jag = st.id_jags.contains(&assertion) && how == "client_secret_basic";
            if !workload && !jag {
                return json(400, json!({"error": "invalid_grant"}));
            }
            refresh = false;
        }
        _ => return json(400, json!({"error": "unsupported_grant_type"})),
    }
    let at = format!("at-{}", random_token(16).unwrap());
    st.access.insert(at.clone(), scope.clone());
    st.secrets.push(at.clone());
    if let Some(j) = jkt.clone() {
        st.bound.insert(at.clone(), j);
    }
    let mut out = json!({
        "access_token": at,
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": c.expires_in,
    });
    if let Some(s) = scope {
        out["scope"] = json!(s);
    }
    if refresh {
        let rt = format!("rt-{}", random_token(16).unwrap());
        st.refresh.insert(rt.clone());
        st.secrets.push(rt.clone());
        out["refresh_token"] = json!(rt);
    }
    json(200, out)
}

/// The identity provider's token endpoint: RFC 8693 exchange of an ID token for an ID-JAG.
pub(super) fn idp_token(f: &Fake, body: &[u8]) -> Response<Full<Bytes>> {
    let params = form(body);
    let mut st = f.st();
    st.exchanges.push(params.clone());
    let subject = params.get("subject_token").cloned().unwrap_or_default();
    let ok = params.get("grant_type").map(String::as_str) == Some(TOKEN_EXCHANGE)
        && params.get("requested_token_type").map(String::as_str) == Some(ID_JAG)
        && params.get("subject_token_type").map(String::as_str)
            == Some("urn:ietf:params:oauth:token-type:id_token")
        && params.get("audience") == Some(&f.issuer())
        && params.get("resource") == Some(&format!("{}/mcp", f.base))
        && st.id_tokens.contains(&subject);
    if !ok {
        return json(400, json!({"error": "invalid_request"}));
    }
    let jag = format!("jag-{}", random_token(16).unwrap());
    st.id_jags.insert(jag.clone());
    st.secrets.push(jag.clone());
    json(
        200,
        json!({"access_token": jag, "issued_token_type": ID_JAG, "token_type": "N_A"}),
    )
}
