//! An OAuth-protected MCP server for the end-to-end tests: an authorization server (RFC 8414
//! metadata, RFC 9728 protected resource metadata, dynamic registration of public clients, an
//! authorization endpoint that approves at once, a token endpoint for the authorization code
//! with PKCE S256, rotated refresh tokens, and client credentials) in front of a real MCP server
//! (the fixture over Streamable HTTP), to which every `/mcp` request bearing a live access token
//! is relayed byte for byte. Access tokens expire after `expires_in` seconds of real time.
//!
//! It records every grant it serves and every refresh token refused, so a test can tell how
//! often the replicas of a cluster refreshed or obtained a token, and whether one was lost.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::HttpFixture;

/// The confidential client the token endpoint accepts for `client_credentials`.
pub const MACHINE_CLIENT: (&str, &str) = ("svc", "svc-secret-7d2f");

/// What the authorization server has seen.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every grant served: its type and when.
    pub grants: Vec<(String, Instant)>,
    /// Refresh requests with a refresh token that was already used (rotation): a replica that
    /// refreshed with a stale copy, which loses the login at a real authorization server.
    pub stale_refreshes: u32,
    /// `/mcp` requests refused for want of a live token.
    pub refused: u32,
    /// `/mcp` requests relayed.
    pub relayed: u32,
    codes: HashMap<String, (String, String)>,
    access: HashMap<String, Instant>,
    refresh: HashMap<String, ()>,
}

impl Ledger {
    /// How many grants of this type were served.
    pub fn count(&self, grant: &str) -> usize {
        self.grants.iter().filter(|(g, _)| g == grant).count()
    }

    /// When the grants of this type were served.
    pub fn times(&self, grant: &str) -> Vec<Instant> {
        self.grants
            .iter()
            .filter(|(g, _)| g == grant)
            .map(|(_, t)| *t)
            .collect()
    }
}

struct Shared {
    port: u16,
    upstream: u16,
    expires_in: u64,
    ledger: Mutex<Ledger>,
    next: AtomicU64,
}

/// The server; stops accepting, and kills its fixture, on drop.
pub struct OAuthServer {
    pub port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    _fixture: HttpFixture,
}

impl OAuthServer {
    /// Starts it, with access tokens that live `expires_in` seconds.
    pub fn start(expires_in: u64) -> OAuthServer {
        let fixture = HttpFixture::start(0, &["--name", "remote"]);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            port,
            upstream: fixture.port,
            expires_in,
            ledger: Mutex::new(Ledger::default()),
            next: AtomicU64::new(1),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sh) = (stop.clone(), shared.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let sh = sh.clone();
                        std::thread::spawn(move || serve(&sh, conn));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        OAuthServer {
            port,
            shared,
            stop,
            _fixture: fixture,
        }
    }

    /// The protected MCP endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.shared.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows an authorization URL the way a browser would: the server approves at once and
    /// answers with its redirect to the hub's callback; returns that callback's path and query
    /// (`/api/oauth/callback?code=…&state=…`), for the test to deliver to any replica.
    pub fn approve(&self, authorization_url: &str) -> String {
        let path = authorization_url
            .split_once(&format!("127.0.0.1:{}", self.port))
            .map(|(_, p)| p)
            .expect("an authorization URL of this server");
        let r = crate::request(self.port, "GET", path, &[], None);
        assert_eq!(r.status, 302, "{}", r.text());
        let location = r.header("location").expect("a redirect").to_owned();
        let at = location.find("/api/").expect("the hub's callback");
        location[at..].to_owned()
    }
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A request as read off the wire.
struct Incoming {
    method: String,
    target: String,
    head: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(conn: &TcpStream) -> Option<Incoming> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    let mut head = String::new();
    loop {
        let mut l = String::new();
        match reader.read_line(&mut l) {
            Ok(0) | Err(_) => return None,
            Ok(_) if l == "\r\n" => break,
            Ok(_) => {
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_owned(), v.trim().to_owned()));
                }
                head.push_str(&l);
            }
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0u8; len.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(Incoming {
        method,
        target,
        head,
        headers,
        body,
    })
}

fn respond(mut conn: &TcpStream, status: &str, extra: &str, body: &Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}

fn form(raw: &str) -> HashMap<String, String> {
    raw.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// `application/x-www-form-urlencoded` decoding.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn serve(sh: &Shared, conn: TcpStream) {
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let Some(req) = read_request(&conn) else {
        return;
    };
    let base = format!("http://127.0.0.1:{}", sh.port);
    let (path, query) = req
        .target
        .split_once('?')
        .unwrap_or((req.target.as_str(), ""));
    match (req.method.as_str(), path) {
        ("GET", "/.well-known/oauth-protected-resource/mcp") => respond(
            &conn,
            "200 OK",
            "",
            &json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}),
        ),
        ("GET", "/.well-known/oauth-authorization-server") => respond(
            &conn,
            "200 OK",
            "",
            &json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "registration_endpoint": format!("{base}/register"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            }),
        ),
        ("POST", "/register") => {
            let n = sh.next.fetch_add(1, Ordering::Relaxed);
            respond(
                &conn,
                "201 Created",
                "",
                &json!({"client_id": format!("public-{n}"), "token_endpoint_auth_method": "none"}),
            )
        }
        ("GET", "/authorize") => authorize(sh, &conn, &form(query)),
        ("POST", "/token") => token(sh, &conn, &req),
        (_, "/mcp") => relay(sh, conn, &req),
        _ => respond(&conn, "404 Not Found", "", &json!({})),
    }
}

fn authorize(sh: &Shared, conn: &TcpStream, q: &HashMap<String, String>) {
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.contains_key("state")
        && q.contains_key("redirect_uri")
        && q.get("resource") == Some(&format!("http://127.0.0.1:{}/mcp", sh.port));
    if !ok {
        return respond(
            conn,
            "400 Bad Request",
            "",
            &json!({"error": "invalid_request"}),
        );
    }
    let code = format!("code-{}", sh.next.fetch_add(1, Ordering::Relaxed));
    lock(sh).codes.insert(
        code.clone(),
        (q["code_challenge"].clone(), q["redirect_uri"].clone()),
    );
    let location = format!(
        "{}?code={}&state={}",
        q["redirect_uri"],
        encode(&code),
        encode(&q["state"])
    );
    let _ = (&*conn).write_all(
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
}

fn lock(sh: &Shared) -> MutexGuard<'_, Ledger> {
    sh.ledger.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Redis key (after the namespace) of a cluster's pending authorization with this
/// `state`: `shared:oauth:pending:<base64url(SHA-256(state))>`.
pub fn pending_key(state: &str) -> String {
    format!("shared:oauth:pending:{}", s256(state))
}

fn s256(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn token(sh: &Shared, conn: &TcpStream, req: &Incoming) {
    let p = form(&String::from_utf8_lossy(&req.body));
    let refuse = |error: &str| respond(conn, "400 Bad Request", "", &json!({"error": error}));
    let grant = p.get("grant_type").cloned().unwrap_or_default();
    if p.get("resource") != Some(&format!("http://127.0.0.1:{}/mcp", sh.port)) {
        return refuse("invalid_target");
    }
    let mut l = lock(sh);
    let refresh = match grant.as_str() {
        "authorization_code" => {
            let Some((challenge, redirect)) = p.get("code").and_then(|c| l.codes.remove(c)) else {
                return refuse("invalid_grant");
            };
            let verifier = p.get("code_verifier").map(String::as_str).unwrap_or("");
            if s256(verifier) != challenge || p.get("redirect_uri") != Some(&redirect) {
                return refuse("invalid_grant");
            }
            true
        }
        "refresh_token" => {
            let rt = p.get("refresh_token").cloned().unwrap_or_default();
            // Rotation: a refresh token is good once.
            if l.refresh.remove(&rt).is_none() {
                l.stale_refreshes += 1;
                return refuse("invalid_grant");
            }
            true
        }
        "client_credentials" => {
            let basic = req
                .header("authorization")
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b| STANDARD.decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let posted = p
                .get("client_id")
                .zip(p.get("client_secret"))
                .map(|(i, s)| format!("{i}:{s}"));
            let expected = format!("{}:{}", MACHINE_CLIENT.0, MACHINE_CLIENT.1);
            if basic.or(posted).as_deref() != Some(expected.as_str()) {
                drop(l);
                return respond(
                    conn,
                    "401 Unauthorized",
                    "",
                    &json!({"error": "invalid_client"}),
                );
            }
            false
        }
        _ => return refuse("unsupported_grant_type"),
    };
    let n = sh.next.fetch_add(1, Ordering::Relaxed);
    let at = format!("at-{n}");
    l.access.insert(
        at.clone(),
        Instant::now() + Duration::from_secs(sh.expires_in),
    );
    l.grants.push((grant, Instant::now()));
    let mut out = json!({"access_token": at, "token_type": "Bearer", "expires_in": sh.expires_in});
    if refresh {
        let rt = format!("rt-{n}");
        l.refresh.insert(rt.clone(), ());
        out["refresh_token"] = json!(rt);
    }
    drop(l);
    respond(conn, "200 OK", "", &out);
}

/// Relays a request with a live token to the fixture, and its answer (JSON or a stream) back.
fn relay(sh: &Shared, conn: TcpStream, req: &Incoming) {
    let token = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let live = {
        let mut l = lock(sh);
        let live = l.access.get(token).is_some_and(|t| Instant::now() < *t);
        if live {
            l.relayed += 1;
        } else {
            l.refused += 1;
        }
        live
    };
    if !live {
        let challenge = format!(
            "WWW-Authenticate: Bearer error=\"invalid_token\", resource_metadata=\"http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp\"\r\n",
            sh.port
        );
        return respond(
            &conn,
            "401 Unauthorized",
            &challenge,
            &json!({"error": "invalid_token"}),
        );
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", sh.upstream)) else {
        return respond(&conn, "502 Bad Gateway", "", &json!({}));
    };
    let head: String = req
        .head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let sent = up
        .write_all(
            format!(
                "{} {} HTTP/1.1\r\n{head}Connection: close\r\n\r\n",
                req.method, req.target
            )
            .as_bytes(),
        )
        .and_then(|()| up.write_all(&req.body));
    if sent.is_err() {
        return;
    }
    let mut client = conn;
    let _ = std::io::copy(&mut up, &mut client);
}
