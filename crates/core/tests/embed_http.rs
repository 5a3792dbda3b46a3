//! The hub's HTTP side embedded two ways besides the hub's own listener: mounted inside an axum
//! application under a prefix (nested, and stripping the prefix itself), with the application's
//! own routes still served; and the same MCP client flow against the hub's own listener. Real
//! fixture server upstream, real HTTP over loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mcp_hub_core::{Hub, HubHandle};
use serde_json::{Value, json};

fn fixture() -> Option<PathBuf> {
    mcp_hub_fixture::built_binary()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: hyper::body::Incoming,
}

async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = tx.send_request(req).await.unwrap();
    let (parts, body) = r.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn text(body: hyper::body::Incoming) -> String {
    let b = tokio::time::timeout(Duration::from_secs(30), body.collect())
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(b.to_bytes().to_vec()).unwrap()
}

/// The JSON-RPC message with `id` in a JSON or SSE response body.
fn answer(body: &str, id: i64) -> Value {
    let candidates: Vec<Value> = if body.trim_start().starts_with('{') {
        vec![serde_json::from_str(body).unwrap()]
    } else {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    };
    candidates
        .into_iter()
        .find(|m: &Value| m["id"] == id)
        .unwrap_or_else(|| panic!("no answer {id} in {body}"))
}

fn post(addr: SocketAddr, path: &str, session: Option<&str>, msg: &Value) -> Request<Full<Bytes>> {
    let mut b = Request::post(path)
        .header("host", format!("127.0.0.1:{}", addr.port()))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(s) = session {
        b = b
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    b.body(Full::new(Bytes::from(msg.to_string()))).unwrap()
}

fn get(addr: SocketAddr, path: &str, accept: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", format!("127.0.0.1:{}", addr.port()))
        .header("accept", accept)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Initializes a Streamable HTTP session at `mcp` and calls the fixture's echo tool.
async fn mcp_roundtrip(addr: SocketAddr, mcp: &str, tool: &str) {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "embed-test", "version": "1"}}});
    let r = send(addr, post(addr, mcp, None, &init)).await;
    assert_eq!(r.status, StatusCode::OK, "initialize at {mcp}");
    let session = r.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let init = answer(&text(r.body).await, 1);
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = send(addr, post(addr, mcp, Some(&session), &note)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": {"text": format!("via {mcp}")}}});
    let r = send(addr, post(addr, mcp, Some(&session), &call)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = answer(&text(r.body).await, 2);
    assert_eq!(
        v["result"]["content"][0]["text"],
        format!("via {mcp}"),
        "{v}"
    );
}

/// The legacy transport under `sse`: its `endpoint` event names the prefixed `/messages` URL,
/// and a message posted there is answered on the stream.
async fn legacy_roundtrip(addr: SocketAddr, sse: &str, expect_endpoint_prefix: &str) {
    let r = send(addr, get(addr, sse, "text/event-stream")).await;
    assert_eq!(r.status, StatusCode::OK, "GET {sse}");
    let mut body = r.body;
    let mut seen = String::new();
    let endpoint = loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ok(d) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&d).unwrap());
        }
        if let Some(line) = seen
            .split("event: endpoint")
            .nth(1)
            .and_then(|rest| rest.lines().find_map(|l| l.strip_prefix("data: ")))
        {
            break line.trim().to_owned();
        }
    };
    assert!(
        endpoint.starts_with(&format!("{expect_endpoint_prefix}/messages?sessionId=")),
        "{endpoint}"
    );
    let init = json!({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "legacy", "version": "1"}}});
    let r = send(addr, post(addr, &endpoint, None, &init)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "POST {endpoint}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"id\":7") {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("the answer on the legacy stream")
            .unwrap()
            .unwrap();
        if let Ok(d) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&d).unwrap());
        }
    }
}

async fn started(fixture: &PathBuf, listen: bool) -> HubHandle {
    let hub = Hub::builder()
        .config_str(
            json!({"mcpServers": {"demo": {"command": fixture, "args": ["--name", "demo"]}}})
                .to_string(),
        )
        .listen(listen)
        .port(0)
        .start()
        .await
        .unwrap();
    hub.registry().wait_settled(Duration::from_secs(30)).await;
    hub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_with_its_own_listener() {
    let Some(fixture) = fixture() else {
        eprintln!("skipping: mcp-hub-fixture is not built (cargo build --workspace --bins)");
        return;
    };
    let hub = started(&fixture, true).await;
    let addr = hub.local_addr();
    assert_ne!(addr.port(), 0);
    mcp_roundtrip(addr, "/mcp", "demo__echo").await;
    legacy_roundtrip(addr, "/sse", "").await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_inside_an_axum_application() {
    let Some(fixture) = fixture() else {
        eprintln!("skipping: mcp-hub-fixture is not built (cargo build --workspace --bins)");
        return;
    };
    let hub = started(&fixture, false).await;
    let app = axum::Router::new()
        .route(
            "/hello",
            axum::routing::get(|| async { "the application's own route" }),
        )
        // axum strips `/hub` before the hub sees the request.
        .nest_service("/hub", hub.http_service().nested("/hub"))
        // The hub strips `/tools/hub` itself.
        .fallback_service(hub.http_service().at("/tools/hub"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let r = send(addr, get(addr, "/hello", "*/*")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(text(r.body).await, "the application's own route");

    mcp_roundtrip(addr, "/hub/mcp", "demo__echo").await;
    mcp_roundtrip(addr, "/tools/hub/mcp", "demo__echo").await;
    legacy_roundtrip(addr, "/hub/sse", "/hub").await;
    legacy_roundtrip(addr, "/tools/hub/sse", "/tools/hub").await;

    let r = send(addr, get(addr, "/hub/api/servers", "application/json")).await;
    assert_eq!(r.status, StatusCode::OK);
    let servers: Value = serde_json::from_str(&text(r.body).await).unwrap();
    assert_eq!(servers["servers"][0]["name"], "demo", "{servers}");
    let r = send(addr, get(addr, "/tools/hub/api/health", "application/json")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        addr,
        get(addr, "/tools/hubble/api/health", "application/json"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "outside the prefix");

    // The hub's limits and checks hold when it is mounted: an oversized body, a foreign Host.
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"pad": "x".repeat(5 * 1024 * 1024)}});
    let r = send(addr, post(addr, "/hub/mcp", None, &huge)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let mut evil = get(addr, "/hub/api/servers", "application/json");
    evil.headers_mut()
        .insert("host", "evil.example:80".parse().unwrap());
    let r = send(addr, evil).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "DNS-rebinding protection");

    // The REST lifecycle routes work on a server configured in code: disabling it changes the
    // hub's config in memory (it has no file to write).
    let body = json!({"server_name": "demo"});
    let r = send(
        addr,
        post(addr, "/hub/api/servers/stop?disable=true", None, &body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(r.body).await);
    assert!(hub.config().server("demo").unwrap().disabled);
    let r = send(addr, post(addr, "/hub/api/servers/start", None, &body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!hub.config().server("demo").unwrap().disabled);
    assert_eq!(
        hub.registry().snapshot("demo").unwrap().status,
        mcp_hub_core::registry::ServerStatus::Connected
    );

    // The hub's events stream is served too, and ends when the hub shuts down.
    let r = send(addr, get(addr, "/hub/api/events", "text/event-stream")).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut events = r.body;
    let adding = tokio::spawn({
        let hub = hub.clone();
        let entry = json!({"command": fixture, "args": ["--name", "more"]});
        async move { hub.add_server("more", entry).await }
    });
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains("servers_updated") {
        let frame = tokio::time::timeout_at(deadline, events.frame())
            .await
            .unwrap_or_else(|_| panic!("no servers_updated in {seen}"))
            .unwrap()
            .unwrap();
        if let Ok(d) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&d).unwrap());
        }
    }
    assert!(seen.contains("\"more\""), "{seen}");
    adding.await.unwrap().unwrap();
    hub.shutdown().await;
    let rest = tokio::time::timeout(Duration::from_secs(15), events.collect()).await;
    assert!(rest.is_ok(), "the events stream ends on shutdown");
    let r = send(addr, get(addr, "/hub/api/health", "application/json")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "after shutdown");
    server.abort();
}
