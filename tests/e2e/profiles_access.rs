//! A profile's endpoint as a door: its token opens only it, a legacy HTTP+SSE session opened
//! there posts under it, and a session id works only where it was given out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mcp_hub_tests::McpClient;
use serde_json::{Value, json};

use crate::profiles::{names, profiles_hub};

#[test]
fn a_profile_token_reaches_only_its_profile() {
    let hub = profiles_hub(
        &[
            "--token",
            "admin-secret",
            "--profile-token",
            "dev=dev-secret",
        ],
        json!({"dev": {"servers": ["a"]}, "ops": {"servers": ["b"]}}),
    );
    let dev_auth = [("Authorization", "Bearer dev-secret")];
    let admin_auth = [("Authorization", "Bearer admin-secret")];
    let dev = McpClient::try_connect_at(hub.port, "/mcp/dev", &dev_auth).expect("dev");
    let r = dev
        .try_call_id(json!(1), "tools/list", json!({}), Duration::from_secs(10))
        .unwrap_or_default();
    assert_eq!(r, Value::Null, "no auth header on this request: refused");
    let r = dev
        .send(
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            &dev_auth,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    // Everywhere else the profile's token is refused: the full endpoint, another profile, the
    // REST API, the legacy endpoints of the full view.
    for (method, path) in [
        ("POST", "/mcp"),
        ("POST", "/mcp/ops"),
        ("GET", "/api/servers"),
        ("GET", "/api/profiles"),
        ("GET", "/metrics"),
        ("GET", "/sse"),
        ("POST", "/messages?sessionId=x"),
    ] {
        let r = mcp_hub_tests::try_request(
            hub.port,
            method,
            path,
            &[
                ("Authorization", "Bearer dev-secret"),
                ("Accept", "application/json, text/event-stream"),
            ],
            Some(b"{}"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
    }
    // Health tells the profile's token only that the hub is alive.
    let h = mcp_hub_tests::try_request(
        hub.port,
        "GET",
        "/api/health",
        &dev_auth,
        None,
        Duration::from_secs(10),
    )
    .unwrap()
    .json();
    assert!(h.get("servers").is_none(), "{h}");
    // No token, or a wrong one, gets nothing; the hub-wide token reaches the profile too.
    assert_eq!(
        McpClient::try_connect_at(hub.port, "/mcp/dev", &[])
            .unwrap_err()
            .status,
        401
    );
    let admin = McpClient::try_connect_at(hub.port, "/mcp/dev", &admin_auth).expect("admin");
    let r = admin
        .send(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &admin_auth,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    // A profile's session is the profile's token's: the hub-wide token cannot use it.
    let r = dev
        .send(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
            &admin_auth,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn legacy_sse_on_a_profile_posts_under_the_profile() {
    let hub = profiles_hub(
        &[
            "--token",
            "admin-secret",
            "--profile-token",
            "dev=dev-secret",
        ],
        json!({"dev": {"servers": ["a"]}}),
    );
    let mut sock = TcpStream::connect(("127.0.0.1", hub.port)).unwrap();
    write!(
        sock,
        "GET /mcp/dev/sse HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\nAuthorization: Bearer dev-secret\r\n\r\n",
        hub.port
    )
    .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).ok();
    let mut seen = String::new();
    let end = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !seen.contains("sessionId=") {
        if let Ok(n) = sock.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let endpoint = seen
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("endpoint event")
        .trim()
        .to_owned();
    assert!(
        endpoint.starts_with("/mcp/dev/messages?sessionId="),
        "{endpoint}"
    );
    let post = |body: Value| {
        mcp_hub_tests::try_request(
            hub.port,
            "POST",
            &endpoint,
            &[("Authorization", "Bearer dev-secret")],
            Some(body.to_string().as_bytes()),
            Duration::from_secs(10),
        )
        .unwrap()
        .status
    };
    assert_eq!(
        post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        ),
        202
    );
    assert_eq!(
        post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})),
        202
    );
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && !seen.contains("\"id\":2") {
        if let Ok(n) = sock.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let line = seen
        .lines()
        .find(|l| l.contains("\"id\":2"))
        .expect("tools/list answer");
    assert!(line.contains("a__echo") && !line.contains("b__"), "{line}");
}

/// A session id works only at the endpoint that gave it out: presented at `/mcp` or another
/// profile's endpoint it is unknown (404), for Streamable HTTP and legacy HTTP+SSE alike.
#[test]
fn a_session_belongs_to_the_endpoint_that_opened_it() {
    let hub = profiles_hub(
        &[],
        json!({"dev": {"servers": ["a"]}, "ops": {"servers": ["b"]}}),
    );
    let dev = McpClient::try_connect_at(hub.port, "/mcp/dev", &[]).expect("dev session");
    let full = McpClient::connect(hub.port);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    for (session, path) in [(&dev, "/mcp"), (&dev, "/mcp/ops"), (&full, "/mcp/dev")] {
        let r = mcp_hub_tests::try_request(
            hub.port,
            "POST",
            path,
            &[
                ("Accept", "application/json, text/event-stream"),
                ("Mcp-Session-Id", session.session.as_str()),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
            Some(list.to_string().as_bytes()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.status, 404, "{} at {path}: {}", session.path, r.text());
        let r = mcp_hub_tests::try_request(
            hub.port,
            "DELETE",
            path,
            &[("Mcp-Session-Id", session.session.as_str())],
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.status, 404, "DELETE {} at {path}", session.path);
    }
    // Both sessions are still there, at their own endpoints.
    let r = dev
        .try_call_id(json!(2), "tools/list", json!({}), Duration::from_secs(10))
        .unwrap();
    assert!(names(&r).iter().all(|t| t.starts_with("a__")), "{r}");
    let r = full
        .try_call_id(json!(3), "tools/list", json!({}), Duration::from_secs(10))
        .unwrap();
    assert!(names(&r).contains(&"b__echo".to_owned()), "{r}");

    // A legacy session of a profile posts only under that profile's path.
    let mut sock = TcpStream::connect(("127.0.0.1", hub.port)).unwrap();
    write!(
        sock,
        "GET /mcp/dev/sse HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\n\r\n",
        hub.port
    )
    .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).ok();
    let mut seen = String::new();
    let end = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !seen.contains("sessionId=") {
        if let Ok(n) = sock.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let endpoint = seen
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("endpoint event")
        .trim()
        .to_owned();
    let query = endpoint.split_once('?').expect("query").1;
    for path in ["/messages", "/mcp/ops/messages"] {
        let r = mcp_hub_tests::try_request(
            hub.port,
            "POST",
            &format!("{path}?{query}"),
            &[],
            Some(list.to_string().as_bytes()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
}
