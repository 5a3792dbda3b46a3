//! An in-process authorization server, identity provider and protected MCP resource (hyper on
//! 127.0.0.1:0) that checks what the hub sends: PKCE, `state`, `iss`, client authentication
//! (secrets and `private_key_jwt` assertions, verified with ring), the machine grants, and DPoP
//! proofs at the token endpoint and the resource (with optional server nonces).

mod proofs;
mod token;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use url::Url;

use crate::pkce::random_token;
use proofs::check_proof;
use token::{idp_token, token};

pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub(super) const AS_NONCE: &str = "as-nonce-1";
pub(super) const RS_NONCE: &str = "rs-nonce-1";

/// How the fake behaves.
#[derive(Debug, Clone)]
pub(super) struct FakeConfig {
    pub(super) expires_in: u64,
    /// Advertise S256.
    pub(super) pkce: bool,
    /// Advertise and send `iss` (RFC 9207).
    pub(super) iss: bool,
    /// Send this `iss` instead of the real issuer.
    pub(super) wrong_iss: Option<String>,
    /// `issuer` claimed by the metadata (instead of the real one).
    pub(super) claimed_issuer: Option<String>,
    /// `resource` claimed by the protected resource metadata.
    pub(super) claimed_resource: Option<String>,
    /// Token endpoint auth methods supported.
    pub(super) auth_methods: Vec<&'static str>,
    pub(super) cimd: bool,
    pub(super) dcr: bool,
    /// Serve protected resource metadata at all (else: 2025-03-26 behaviour).
    pub(super) prm: bool,
    /// `scope` in the 401 challenge.
    pub(super) challenge_scope: Option<&'static str>,
    /// Answer protected calls with 403 insufficient_scope whatever the token.
    pub(super) always_insufficient: bool,
    /// Answer 403 insufficient_scope to tokens without this scope.
    pub(super) required_scope: Option<&'static str>,
    /// `grant_types_supported`.
    pub(super) grants: Vec<&'static str>,
    /// Advertise DPoP (ES256), bind tokens requested with a proof, challenge with `DPoP`.
    pub(super) dpop: bool,
    /// Demand server nonces (RFC 9449 §8, §9) at the token endpoint and the resource.
    pub(super) dpop_nonce: bool,
    /// With `dpop`: the resource still challenges with `Bearer` (an authorization server that
    /// offers DPoP in front of a resource that never said it takes it).
    pub(super) bearer_challenge: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            expires_in: 3600,
            pkce: true,
            iss: true,
            wrong_iss: None,
            claimed_issuer: None,
            claimed_resource: None,
            auth_methods: vec!["client_secret_basic"],
            cimd: false,
            dcr: true,
            prm: true,
            challenge_scope: Some("mcp:read"),
            always_insufficient: false,
            required_scope: None,
            grants: vec!["authorization_code", "refresh_token"],
            dpop: false,
            dpop_nonce: false,
            bearer_challenge: false,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct FakeState {
    /// client id → secret (None: public).
    pub(super) clients: HashMap<String, Option<String>>,
    /// client id → public JWK, for `private_key_jwt`.
    pub(super) client_keys: HashMap<String, Value>,
    /// code → (client_id, challenge, redirect_uri, resource, scope)
    pub(super) codes: HashMap<String, (String, String, String, String, Option<String>)>,
    /// Live access tokens → their scope.
    pub(super) access: HashMap<String, Option<String>>,
    /// Access tokens bound to a DPoP key → its thumbprint.
    pub(super) bound: HashMap<String, String>,
    pub(super) refresh: HashSet<String>,
    /// Workload JWTs the authorization server accepts (jwt-bearer).
    pub(super) workload_jwts: HashSet<String>,
    /// ID tokens the identity provider accepts; the ID-JAGs it issued.
    pub(super) id_tokens: HashSet<String>,
    pub(super) id_jags: HashSet<String>,
    /// Token exchange requests at the identity provider.
    pub(super) exchanges: Vec<HashMap<String, String>>,
    /// Every secret the fake handed out or received, to look for in logs.
    pub(super) secrets: Vec<String>,
    /// `(method, path)` of every request.
    pub(super) seen: Vec<(String, String)>,
    /// Grant types of token requests, in order.
    pub(super) grants: Vec<String>,
    /// The scope parameter of each token request.
    pub(super) token_scopes: Vec<Option<String>>,
    /// Authorization requests' query parameters.
    pub(super) authorizations: Vec<HashMap<String, String>>,
    /// How the client authenticated at the token endpoint, per request.
    pub(super) token_auth: Vec<&'static str>,
    /// Claims of the `private_key_jwt` assertions received.
    pub(super) assertions: Vec<Value>,
    pub(super) registrations: Vec<serde_json::Value>,
    /// DPoP: proof `jti`s seen, problems found, nonce challenges issued (AS, RS).
    pub(super) jtis: HashSet<String>,
    pub(super) dpop_errors: Vec<String>,
    pub(super) nonce_challenges: (u32, u32),
    /// Requests to the resource that carried a valid DPoP proof.
    pub(super) dpop_requests: u32,
}

pub(super) struct Fake {
    pub(super) base: String,
    pub(super) config: FakeConfig,
    state: Mutex<FakeState>,
}

impl Fake {
    pub(super) fn issuer(&self) -> String {
        if self.config.prm {
            format!("{}/as", self.base)
        } else {
            self.base.clone()
        }
    }

    pub(super) fn mcp_url(&self) -> Url {
        format!("{}/mcp", self.base).parse().unwrap()
    }

    pub(super) fn idp_token_endpoint(&self) -> String {
        format!("{}/idp/token", self.base)
    }

    pub(super) fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }
}

pub(super) async fn start_fake(config: FakeConfig) -> Arc<Fake> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fake = Arc::new(Fake {
        base,
        config,
        state: Mutex::new(FakeState::default()),
    });
    let f = fake.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let f = f.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, Infallible>(handle(&f, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    fake
}

fn json(status: u16, v: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn header<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(f: &Fake, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| form(q.as_bytes()))
        .unwrap_or_default();
    f.st().seen.push((parts.method.to_string(), path.clone()));
    let c = &f.config;
    let issuer = f.issuer();
    let as_prefix = if c.prm { "/as" } else { "" };
    let metadata_path = if c.prm {
        "/.well-known/oauth-authorization-server/as"
    } else {
        "/.well-known/oauth-authorization-server"
    };
    match (parts.method.as_str(), path.as_str()) {
        ("GET", "/.well-known/oauth-protected-resource/mcp") if c.prm => json(
            200,
            json!({
                "resource": c.claimed_resource.clone().unwrap_or(format!("{}/mcp", f.base)),
                "authorization_servers": [issuer],
                "scopes_supported": ["mcp:read", "mcp:write"],
            }),
        ),
        ("GET", p) if p == metadata_path => {
            let mut m = json!({
                "issuer": c.claimed_issuer.clone().unwrap_or(issuer.clone()),
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "response_types_supported": ["code"],
                "grant_types_supported": c.grants,
                "token_endpoint_auth_methods_supported": c.auth_methods,
                "authorization_response_iss_parameter_supported": c.iss,
                "client_id_metadata_document_supported": c.cimd,
            });
            if c.pkce {
                m["code_challenge_methods_supported"] = json!(["S256"]);
            }
            if c.dcr {
                m["registration_endpoint"] = json!(format!("{issuer}/register"));
            }
            if c.dpop {
                m["dpop_signing_alg_values_supported"] = json!(["ES256"]);
            }
            json(200, m)
        }
        ("POST", p) if p == format!("{as_prefix}/register") && c.dcr => {
            let reg: Value = serde_json::from_slice(&body).unwrap_or_default();
            let id = format!("client-{}", random_token(4).unwrap());
            let method = reg["token_endpoint_auth_method"]
                .as_str()
                .unwrap_or("none")
                .to_owned();
            let secret =
                (method != "none").then(|| format!("csecret-{}", random_token(16).unwrap()));
            let mut st = f.st();
            st.registrations.push(reg);
            st.clients.insert(id.clone(), secret.clone());
            if let Some(s) = &secret {
                st.secrets.push(s.clone());
            }
            let mut out = json!({"client_id": id, "token_endpoint_auth_method": method});
            if let Some(s) = secret {
                out["client_secret"] = json!(s);
            }
            json(201, out)
        }
        ("GET", p) if p == format!("{as_prefix}/authorize") => authorize(f, &query),
        ("POST", p) if p == format!("{as_prefix}/token") => token(f, &parts, &body),
        ("POST", "/idp/token") => idp_token(f, &body),
        ("POST", "/mcp") => resource(f, &parts),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"not found")))
            .unwrap(),
    }
}

fn authorize(f: &Fake, query: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let c = &f.config;
    let mut st = f.st();
    st.authorizations.push(query.clone());
    let ok = query.get("response_type").map(String::as_str) == Some("code")
        && query.get("code_challenge_method").map(String::as_str) == Some("S256")
        && query.contains_key("state")
        && query.contains_key("code_challenge")
        && query.get("resource") == Some(&format!("{}/mcp", f.base));
    if !ok {
        return json(400, json!({"error": "invalid_request"}));
    }
    let code = format!("code-{}", random_token(16).unwrap());
    st.secrets.push(code.clone());
    st.codes.insert(
        code.clone(),
        (
            query["client_id"].clone(),
            query["code_challenge"].clone(),
            query["redirect_uri"].clone(),
            query["resource"].clone(),
            query.get("scope").cloned(),
        ),
    );
    let mut loc = Url::parse(&query["redirect_uri"]).unwrap();
    loc.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &query["state"]);
    if c.iss || c.wrong_iss.is_some() {
        loc.query_pairs_mut()
            .append_pair("iss", c.wrong_iss.as_deref().unwrap_or(&f.issuer()));
    }
    Response::builder()
        .status(302)
        .header("location", loc.as_str())
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The protected MCP endpoint.
fn resource(f: &Fake, parts: &http::request::Parts) -> Response<Full<Bytes>> {
    let c = &f.config;
    let mut st = f.st();
    let auth = header(parts, "authorization").unwrap_or_default();
    let (scheme, token) = auth.split_once(' ').unwrap_or(("", ""));
    let prm = format!("{}/.well-known/oauth-protected-resource/mcp", f.base);
    let scope = c
        .challenge_scope
        .map(|s| format!(", scope=\"{s}\""))
        .unwrap_or_default();
    let scheme_name = if c.dpop && !c.bearer_challenge {
        "DPoP"
    } else {
        "Bearer"
    };
    let challenge = |status: u16, error: &str, scope: &str| {
        let header = if c.prm {
            format!(r#"{scheme_name} error="{error}"{scope}, resource_metadata="{prm}""#)
        } else {
            scheme_name.to_owned()
        };
        Response::builder()
            .status(status)
            .header("www-authenticate", header)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let Some(token_scope) = st.access.get(token).cloned() else {
        return challenge(401, "invalid_token", &scope);
    };
    match st.bound.get(token).cloned() {
        Some(jkt) => {
            if !scheme.eq_ignore_ascii_case("dpop") {
                st.dpop_errors.push(format!("resource: scheme {scheme}"));
                return challenge(401, "invalid_token", &scope);
            }
            let proof = header(parts, "dpop");
            if let Some(p) = proof {
                st.secrets.push(p.to_owned());
            }
            match check_proof(
                &mut st,
                proof,
                "POST",
                &format!("{}/mcp", f.base),
                Some(token),
            ) {
                Ok((thumb, _)) if thumb != jkt => {
                    st.dpop_errors
                        .push("resource: proof key is not the bound key".into());
                    return challenge(401, "invalid_token", &scope);
                }
                Ok((_, nonce)) => {
                    if c.dpop_nonce && nonce.as_deref() != Some(RS_NONCE) {
                        st.nonce_challenges.1 += 1;
                        let mut resp = challenge(401, "use_dpop_nonce", "");
                        resp.headers_mut()
                            .insert("dpop-nonce", RS_NONCE.parse().unwrap());
                        return resp;
                    }
                    st.dpop_requests += 1;
                }
                Err(e) => {
                    st.dpop_errors.push(format!("resource: {e}"));
                    return challenge(401, "invalid_token", &scope);
                }
            }
        }
        None if !scheme.eq_ignore_ascii_case("bearer") => {
            return challenge(401, "invalid_token", &scope);
        }
        None => {}
    }
    if c.always_insufficient {
        return challenge(403, "insufficient_scope", &scope);
    }
    if let Some(required) = c.required_scope
        && !token_scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .any(|s| s == required)
    {
        return challenge(
            403,
            "insufficient_scope",
            &format!(", scope=\"{required}\""),
        );
    }
    json(200, json!({"ok": true}))
}
