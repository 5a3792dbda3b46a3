//! End-to-end tests against an in-process fake authorization server and protected MCP resource
//! (hyper on 127.0.0.1:0), through the real HTTP client.

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
