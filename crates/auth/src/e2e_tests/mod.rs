//! End-to-end tests against an in-process fake authorization server and protected MCP resource
//! (hyper on 127.0.0.1:0), through the real HTTP client. The fake and its helpers are here; the
//! tests are in `flows` (authorization, refresh, discovery, client identity) and `node_import`
//! (logins saved by the Node `mcp-hub`).

mod flows;
mod node_import;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use mcp_hub_transport::{AuthChallenge, AuthHook};
use url::Url;

use crate::http::{HttpExchange, TransportHttp};
use crate::pkce::{random_token, s256_challenge};
use crate::{AuthError, ClientConfig, OAuthManager};

/// How the fake behaves.
#[derive(Debug, Clone)]
struct FakeConfig {
    expires_in: u64,
    /// Advertise S256.
    pkce: bool,
    /// Advertise and send `iss` (RFC 9207).
    iss: bool,
    /// Send this `iss` instead of the real issuer.
    wrong_iss: Option<String>,
    /// `issuer` claimed by the metadata (instead of the real one).
    claimed_issuer: Option<String>,
    /// `resource` claimed by the protected resource metadata.
    claimed_resource: Option<String>,
    /// Token endpoint auth methods supported.
    auth_methods: Vec<&'static str>,
    cimd: bool,
    dcr: bool,
    /// Serve protected resource metadata at all (else: 2025-03-26 behaviour).
    prm: bool,
    /// `scope` in the 401 challenge.
    challenge_scope: Option<&'static str>,
    /// Answer protected calls with 403 insufficient_scope whatever the token.
    always_insufficient: bool,
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
        }
    }
}

#[derive(Debug, Default)]
struct FakeState {
    clients: HashMap<String, Option<String>>,
    /// code → (client_id, challenge, redirect_uri, resource, scope)
    codes: HashMap<String, (String, String, String, String, Option<String>)>,
    access: HashSet<String>,
    refresh: HashSet<String>,
    /// Every secret the fake handed out or received, to look for in logs.
    secrets: Vec<String>,
    /// `(method, path)` of every request.
    seen: Vec<(String, String)>,
    /// Grant types of token requests, in order.
    grants: Vec<String>,
    /// Authorization requests' query parameters.
    authorizations: Vec<HashMap<String, String>>,
    /// How the client authenticated at the token endpoint, per request.
    token_auth: Vec<&'static str>,
    registrations: Vec<serde_json::Value>,
}

struct Fake {
    base: String,
    config: FakeConfig,
    state: Mutex<FakeState>,
}

impl Fake {
    fn issuer(&self) -> String {
        if self.config.prm {
            format!("{}/as", self.base)
        } else {
            self.base.clone()
        }
    }

    fn mcp_url(&self) -> Url {
        format!("{}/mcp", self.base).parse().unwrap()
    }

    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }
}

async fn start_fake(config: FakeConfig) -> Arc<Fake> {
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

fn json(status: u16, v: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
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
            serde_json::json!({
                "resource": c.claimed_resource.clone().unwrap_or(format!("{}/mcp", f.base)),
                "authorization_servers": [issuer],
                "scopes_supported": ["mcp:read", "mcp:write"],
            }),
        ),
        ("GET", p) if p == metadata_path => {
            let mut m = serde_json::json!({
                "issuer": c.claimed_issuer.clone().unwrap_or(issuer.clone()),
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": c.auth_methods,
                "authorization_response_iss_parameter_supported": c.iss,
                "client_id_metadata_document_supported": c.cimd,
            });
            if c.pkce {
                m["code_challenge_methods_supported"] = serde_json::json!(["S256"]);
            }
            if c.dcr {
                m["registration_endpoint"] = serde_json::json!(format!("{issuer}/register"));
            }
            json(200, m)
        }
        ("POST", p) if p == format!("{as_prefix}/register") && c.dcr => {
            let reg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
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
            let mut out =
                serde_json::json!({"client_id": id, "token_endpoint_auth_method": method});
            if let Some(s) = secret {
                out["client_secret"] = serde_json::json!(s);
            }
            json(201, out)
        }
        ("GET", p) if p == format!("{as_prefix}/authorize") => {
            let mut st = f.st();
            st.authorizations.push(query.clone());
            let ok = query.get("response_type").map(String::as_str) == Some("code")
                && query.get("code_challenge_method").map(String::as_str) == Some("S256")
                && query.contains_key("state")
                && query.contains_key("code_challenge")
                && query.get("resource") == Some(&format!("{}/mcp", f.base));
            if !ok {
                return json(400, serde_json::json!({"error": "invalid_request"}));
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
                    .append_pair("iss", c.wrong_iss.as_deref().unwrap_or(&issuer));
            }
            Response::builder()
                .status(302)
                .header("location", loc.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        ("POST", p) if p == format!("{as_prefix}/token") => {
            let params = form(&body);
            let mut st = f.st();
            // Client authentication.
            let basic = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok());
            let (client_id, secret, how) = match (&basic, params.get("client_secret")) {
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
            st.token_auth.push(how);
            let known_secret = st.clients.get(&client_id).cloned();
            let authenticated = match known_secret {
                Some(expected) => expected == secret,
                // CIMD or pre-registered clients the fake does not know: accept.
                None => true,
            };
            if !authenticated {
                return json(401, serde_json::json!({"error": "invalid_client"}));
            }
            if params.get("resource") != Some(&format!("{}/mcp", f.base)) {
                return json(400, serde_json::json!({"error": "invalid_target"}));
            }
            let grant = params.get("grant_type").cloned().unwrap_or_default();
            st.grants.push(grant.clone());
            match grant.as_str() {
                "authorization_code" => {
                    let verifier = params.get("code_verifier").cloned().unwrap_or_default();
                    st.secrets.push(verifier.clone());
                    let Some((cid, challenge, redirect, _, _)) =
                        params.get("code").and_then(|code| st.codes.remove(code))
                    else {
                        return json(400, serde_json::json!({"error": "invalid_grant"}));
                    };
                    if cid != client_id
                        || challenge != s256_challenge(&verifier)
                        || params.get("redirect_uri") != Some(&redirect)
                    {
                        return json(400, serde_json::json!({"error": "invalid_grant"}));
                    }
                }
                "refresh_token" => {
                    let Some(rt) = params.get("refresh_token") else {
                        return json(400, serde_json::json!({"error": "invalid_request"}));
                    };
                    // Rotation: the old refresh token dies.
                    if !st.refresh.remove(rt) {
                        return json(400, serde_json::json!({"error": "invalid_grant"}));
                    }
                }
                _ => return json(400, serde_json::json!({"error": "unsupported_grant_type"})),
            }
            let at = format!("at-{}", random_token(16).unwrap());
            let rt = format!("rt-{}", random_token(16).unwrap());
            st.access.insert(at.clone());
            st.refresh.insert(rt.clone());
            st.secrets.push(at.clone());
            st.secrets.push(rt.clone());
            json(
                200,
                serde_json::json!({
                    "access_token": at,
                    "token_type": "Bearer",
                    "expires_in": c.expires_in,
                    "refresh_token": rt,
                }),
            )
        }
        ("POST", "/mcp") => {
            let token = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            let valid = token.as_ref().is_some_and(|t| f.st().access.contains(t));
            let prm = format!("{}/.well-known/oauth-protected-resource/mcp", f.base);
            let scope = c
                .challenge_scope
                .map(|s| format!(", scope=\"{s}\""))
                .unwrap_or_default();
            if valid && c.always_insufficient {
                return Response::builder()
                    .status(403)
                    .header(
                        "www-authenticate",
                        format!(
                            r#"Bearer error="insufficient_scope"{scope}, resource_metadata="{prm}""#
                        ),
                    )
                    .body(Full::new(Bytes::new()))
                    .unwrap();
            }
            if valid {
                return json(200, serde_json::json!({"ok": true}));
            }
            let header = if c.prm {
                format!(r#"Bearer error="invalid_token"{scope}, resource_metadata="{prm}""#)
            } else {
                "Bearer".to_owned()
            };
            Response::builder()
                .status(401)
                .header("www-authenticate", header)
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"not found")))
            .unwrap(),
    }
}

/// Calls the protected endpoint; returns the status and, for 401/403, the challenge.
async fn call_mcp(url: &Url, authorization: Option<&str>) -> (u16, AuthChallenge) {
    let mut req = Request::post(url.as_str())
        .header("content-type", "application/json")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    if let Some(a) = authorization {
        req.headers_mut()
            .insert("authorization", a.parse().unwrap());
    }
    let resp = TransportHttp.exchange(req).await.unwrap();
    let challenge = AuthChallenge {
        status: resp.status,
        www_authenticate: resp
            .headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        url: url.clone(),
    };
    (resp.status, challenge)
}

const REDIRECT: &str = "http://127.0.0.1:9/api/oauth/callback";

fn manager(dir: &tempfile::TempDir) -> OAuthManager {
    OAuthManager::new(
        dir.path().join("mcp-hub/oauth-tokens.json"),
        REDIRECT.into(),
    )
    .unwrap()
}

/// Runs the 401 → authorize → callback steps; returns the authorization URL used.
async fn authorize(
    m: &OAuthManager,
    hook: &Arc<dyn AuthHook>,
    name: &str,
    url: &Url,
) -> Result<Url, AuthError> {
    let (status, challenge) = call_mcp(url, None).await;
    assert_eq!(status, 401);
    assert!(!hook.on_unauthorized(&challenge).await.unwrap());
    let auth_url = m.start_authorization(name, url, Some(&challenge)).await?;
    let done = m.complete_headless(&auth_url).await?;
    assert_eq!(done, name);
    Ok(auth_url.parse().unwrap())
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, at TRACE. A process-wide subscriber, because per-thread
/// ones race with tracing's callsite interest cache when tests run in parallel.
fn capture_logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
        logs
    })
    .clone()
}
