//! OAuth toward a protected remote server, end to end: what happens after a refused
//! authorization, and when the token store cannot be used.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mcp_hub_tests::HubCmd;
use serde_json::{Value, json};

use crate::{config, fixture_entry};

/// A remote MCP server that wants OAuth: every `/mcp` request is a 401 pointing at its
/// protected resource metadata, and it is its own authorization server (metadata and dynamic
/// registration). Nobody ever gets a token: enough for the hub to build authorization URLs.
struct ProtectedUpstream {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl ProtectedUpstream {
    fn start() -> ProtectedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        std::thread::spawn(move || serve(conn, port));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ProtectedUpstream { port, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for ProtectedUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut conn: TcpStream, port: u16) {
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
    }
    let mut body = vec![0u8; len.min(1 << 16)];
    let _ = reader.read_exact(&mut body);
    let base = format!("http://127.0.0.1:{port}");
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let (status, extra, payload) = if path.contains("oauth-protected-resource") {
        let v = json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]});
        ("200 OK", String::new(), v)
    } else if path.contains("oauth-authorization-server") {
        let v = json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "registration_endpoint": format!("{base}/register"),
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
        });
        ("200 OK", String::new(), v)
    } else if path.starts_with("/register") {
        let v = json!({"client_id": "e2e-client", "token_endpoint_auth_method": "none"});
        ("201 Created", String::new(), v)
    } else if path.starts_with("/mcp") {
        let challenge = format!(
            "WWW-Authenticate: Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\"\r\n"
        );
        (
            "401 Unauthorized",
            challenge,
            json!({"error": "invalid_token"}),
        )
    } else {
        ("404 Not Found", String::new(), json!({}))
    };
    let payload = payload.to_string();
    let head = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(payload.as_bytes());
}

fn state_of(url: &str) -> String {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("state="))
        .expect("state")
        .to_owned()
}

#[test]
fn after_a_refused_authorization_authorize_gives_a_new_url() {
    let upstream = ProtectedUpstream::start();
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("remote", json!({"url": upstream.url()}))]),
        )
        .start();
    let first = hub.wait_for(Duration::from_secs(30), |h| {
        let s = h.server("remote");
        (s["status"] == "unauthorized")
            .then(|| s["authorizationUrl"].as_str().map(str::to_owned))
            .flatten()
    });
    let r = hub.post("/api/servers/authorize", &json!({"server_name": "remote"}));
    assert_eq!(r.json()["authorizationUrl"], first.as_str(), "{}", r.text());

    // The user refuses: the callback consumes the state.
    let r = hub.get(&format!(
        "/api/oauth/callback?state={}&error=access_denied",
        state_of(&first)
    ));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("access_denied"), "{}", r.text());

    // `authorize` no longer hands out the dead URL, but a live one.
    let r = hub.post("/api/servers/authorize", &json!({"server_name": "remote"}));
    let v: Value = r.json();
    let second = v["authorizationUrl"].as_str().expect("a URL").to_owned();
    assert_ne!(state_of(&second), state_of(&first), "{v}");
    // Its state is pending: a callback for it is judged on its merits (here: refused again),
    // while the first one's is unknown.
    let r = hub.get(&format!(
        "/api/oauth/callback?state={}&error=access_denied",
        state_of(&second)
    ));
    assert!(r.text().contains("access_denied"), "{}", r.text());
    let r = hub.get(&format!(
        "/api/oauth/callback?state={}&error=access_denied",
        state_of(&first)
    ));
    assert!(!r.text().contains("access_denied"), "{}", r.text());
}

#[test]
fn an_unusable_token_store_fails_only_the_servers_that_need_oauth() {
    let upstream = ProtectedUpstream::start();
    let cmd = HubCmd::new();
    // A file where the token store's directory should be.
    let data = cmd.dir().join("home/data");
    std::fs::create_dir_all(&data).expect("dir");
    std::fs::write(data.join("mcp-hub"), "in the way").expect("write");
    let hub = cmd
        .config(
            "servers.json",
            &config(&[
                ("local", fixture_entry(&[])),
                ("remote", json!({"url": upstream.url()})),
            ]),
        )
        .start();
    hub.wait_status(&["local"], "connected");
    let remote = hub.wait_for(Duration::from_secs(30), |h| {
        let s = h.server("remote");
        s["error"].is_string().then_some(s)
    });
    let error = remote["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("token store") && error.contains("oauth-tokens.json"),
        "{remote}"
    );
    assert!(hub.stderr().contains("OAuth token store cannot be used"));
}
