//! A profile's endpoint as a door: its token opens only it, a legacy HTTP+SSE session opened
//! there posts under it, and a session id works only where it was given out.

use std::time::Duration;

use mcp_hub_tests::{EventStream, McpClient};
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
    let (mut sse, endpoint) = legacy_stream(
        hub.port,
        "/mcp/dev/sse",
        &[("Authorization", "Bearer dev-secret")],
    );
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
    sse.deadline(Duration::from_secs(10));
    let line = sse
        .find(100, |e| e.data.contains("\"id\":2"))
        .expect("tools/list answer")
        .data;
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
    let (_sse, endpoint) = legacy_stream(hub.port, "/mcp/dev/sse", &[]);
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

/// A legacy HTTP+SSE stream opened at `path`, and the endpoint its first event names.
fn legacy_stream(port: u16, path: &str, headers: &[(&str, &str)]) -> (EventStream, String) {
    let mut sse = EventStream::open(port, path, headers);
    sse.deadline(Duration::from_secs(10));
    let endpoint = sse
        .find(10, |e| e.event == "endpoint")
        .expect("endpoint event")
        .data
        .trim()
        .to_owned();
    (sse, endpoint)
}
