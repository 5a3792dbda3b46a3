//! The `/mcp` endpoint end to end: an in-process `Api` over a `Registry` whose upstream is the
//! workspace fixture server (stdio), driven by a small hyper client.
//!
//! The fixture binary is looked up in `MCP_HUB_FIXTURE`, else next to this test's target dir
//! (`<target>/debug/mcp-hub-fixture`); tests print a reason and return when it is missing.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Events, Hub, json_body};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_sessions() {
    let fx = need_fixture!();
    let hub = Hub::start(fx, &[]).await;

    // Negotiation: the client's version when supported, else the latest.
    for (asked, got) in [
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2024-11-05"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let r = hub
            .post(
                None,
                json!({"jsonrpc": "2.0", "id": "i", "method": "initialize", "params": {
                    "protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
            )
            .await;
        let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        assert!(sid.len() >= 32 && sid.bytes().all(|b| b.is_ascii_hexdigit()));
        let v = json_body(r).await;
        assert_eq!(v["id"], "i");
        assert_eq!(v["result"]["protocolVersion"], got);
        assert_eq!(v["result"]["serverInfo"]["name"], "mcp-hub");
        assert!(v["result"]["capabilities"]["tools"]["listChanged"] == true);
    }

    let sid = hub.initialize(json!({})).await;
    let v = json_body(
        hub.post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await,
    )
    .await;
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"test_simple_text"), "{names:?}");
    assert!(v["result"].get("nextCursor").is_none());

    let v = json_body(
        hub.post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"cursor": "forged"}}),
        )
        .await,
    )
    .await;
    assert_eq!(v["error"]["code"], -32602);

    let v = json_body(
        hub.post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
        )
        .await,
    )
    .await;
    assert_eq!(v["result"], json!({}));

    let v = json_body(
        hub.post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 4, "method": "logging/setLevel", "params": {"level": "shout"}}),
        )
        .await,
    )
    .await;
    assert_eq!(v["error"]["code"], -32602);

    // A request without a session id.
    let r = hub
        .post(
            None,
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // An unsupported MCP-Protocol-Version.
    let req = hub
        .request(Method::POST, "/mcp", None)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "1999-01-01")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            r#"{"jsonrpc":"2.0","id":6,"method":"ping"}"#,
        )))
        .unwrap();
    assert_eq!(hub.send(req).await.status(), StatusCode::BAD_REQUEST);
    // Malformed JSON.
    let req = hub
        .request(Method::POST, "/mcp", Some(&sid))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from("{nope")))
        .unwrap();
    let r = hub.send(req).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(r).await["error"]["code"], -32700);
    // Accept without text/event-stream.
    let req = Request::post("/mcp")
        .header("host", "localhost")
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from("{}")))
        .unwrap();
    assert_eq!(hub.send(req).await.status(), StatusCode::NOT_ACCEPTABLE);
    // A batch outside 2025-03-26.
    let v = hub
        .post(
            Some(&sid),
            json!([{"jsonrpc": "2.0", "id": 7, "method": "ping"}]),
        )
        .await;
    assert_eq!(v.status(), StatusCode::BAD_REQUEST);

    // DNS rebinding: a foreign Host is refused.
    let req = Request::post("/mcp")
        .header("host", "evil.example.com")
        .header("origin", "http://evil.example.com")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from("{}")))
        .unwrap();
    assert_eq!(hub.send(req).await.status(), StatusCode::FORBIDDEN);

    // DELETE ends the session; the id is then unknown.
    let req = hub
        .request(Method::DELETE, "/mcp", Some(&sid))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(hub.send(req).await.status(), StatusCode::OK);
    let r = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 8, "method": "ping"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_calls_stream_progress_then_the_result() {
    let fx = need_fixture!();
    let hub = Hub::start(fx, &[]).await;
    let sid = hub.initialize(json!({})).await;
    let r = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call", "params": {
                "name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": 42}}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut events = Events::new(r);
    let priming = events.next().await.unwrap();
    assert!(priming.data.is_empty());
    assert!(priming.id.as_deref().unwrap().ends_with("-0"));
    let mut progress = 0;
    let result = loop {
        let m = events.message().await.expect("a response before the end");
        if m["method"] == "notifications/progress" {
            // The client's own token (type included) comes back, not the hub's upstream one.
            assert_eq!(m["params"]["progressToken"], 42);
            progress += 1;
        } else {
            break m;
        }
    };
    assert!(progress >= 1);
    assert_eq!(result["id"], "call-1");
    assert!(result["result"]["content"].is_array());
    assert!(
        events.next().await.is_none(),
        "the stream ends after the response"
    );

    // Errors: unknown tool, unknown resource.
    let r = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "nope"}}),
        )
        .await;
    let m = Events::new(r).message().await.unwrap();
    assert_eq!(m["error"]["code"], -32602);
    let r = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "nope://x"}}),
        )
        .await;
    let m = Events::new(r).message().await.unwrap();
    assert!(m.get("error").is_some(), "{m}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_goes_to_the_calling_session_and_back() {
    let fx = need_fixture!();
    let hub = Hub::start(fx, &[]).await;
    let sid = hub.initialize(json!({"sampling": {}})).await;
    let r = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "test_sampling", "arguments": {"prompt": "hello"}}}),
        )
        .await;
    let mut events = Events::new(r);
    let req = events.message().await.unwrap();
    assert_eq!(req["method"], "sampling/createMessage");
    let hub_id = req["id"].clone();
    let answer = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": hub_id, "result": {
                "role": "assistant", "content": {"type": "text", "text": "forty-two"},
                "model": "test", "stopReason": "endTurn"}}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let result = events.message().await.unwrap();
    assert_eq!(result["id"], 1);
    assert!(result.to_string().contains("forty-two"), "{result}");

    // A session that did not declare sampling: the upstream gets an error, the tool reports it.
    let sid2 = hub.initialize(json!({})).await;
    let r = hub
        .post(
            Some(&sid2),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "test_sampling", "arguments": {"prompt": "hello"}}}),
        )
        .await;
    let m = Events::new(r).message().await.unwrap();
    assert_eq!(m["id"], 1);
    assert!(
        m["method"].is_null(),
        "no request reaches an incapable client: {m}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_and_replay_after_a_disconnect() {
    let fx = need_fixture!();
    let hub = Hub::start(fx, &[]).await;
    let sid = hub.initialize(json!({})).await;

    // A disconnect is not a cancellation: the result is replayed on GET + Last-Event-ID.
    let r = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "echo", "arguments": {"text": "still here"}}}),
        )
        .await;
    let mut events = Events::new(r);
    let priming = events.next().await.unwrap();
    let last = priming.id.unwrap();
    drop(events);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let req = hub
        .request(Method::GET, "/mcp", Some(&sid))
        .header("last-event-id", &last)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = hub.send(req).await;
    assert_eq!(r.status(), StatusCode::OK);
    let m = Events::new(r).message().await.unwrap();
    assert_eq!(m["id"], 1);
    assert!(m.to_string().contains("still here"));

    // notifications/cancelled drops the call: its stream ends without a response.
    let r = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "sleep", "arguments": {"ms": 60000}}}),
        )
        .await;
    let mut events = Events::new(r);
    let _priming = events.next().await.unwrap();
    let c = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}),
        )
        .await;
    assert_eq!(c.status(), StatusCode::ACCEPTED);
    assert!(events.message().await.is_none());

    // One GET stream per session.
    let get = || {
        hub.request(Method::GET, "/mcp", Some(&sid))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let first = hub.send(get()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(hub.send(get()).await.status(), StatusCode::CONFLICT);
    drop(first);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changes_and_resource_updates_reach_the_get_stream() {
    let fx = need_fixture!();
    let hub = Hub::start(fx, &["--list-changed-after", "1500"]).await;
    let sid = hub.initialize(json!({})).await;
    let req = hub
        .request(Method::GET, "/mcp", Some(&sid))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let mut get = Events::new(hub.send(req).await);

    let r = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": "test://watched-resource"}}),
        )
        .await;
    assert_eq!(Events::new(r).message().await.unwrap()["result"], json!({}));
    let r = hub
        .post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "update_resource", "arguments": {"uri": "test://watched-resource"}}}),
        )
        .await;
    assert_eq!(Events::new(r).message().await.unwrap()["id"], 2);

    let mut seen_update = false;
    let mut seen_list = false;
    while !(seen_update && seen_list) {
        let m = get
            .message()
            .await
            .expect("notifications on the GET stream");
        match m["method"].as_str() {
            Some("notifications/resources/updated") => {
                assert_eq!(m["params"]["uri"], "test://watched-resource");
                seen_update = true;
            }
            Some("notifications/tools/list_changed") => seen_list = true,
            _ => {}
        }
    }
    let v = json_body(
        hub.post(
            Some(&sid),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
        )
        .await,
    )
    .await;
    assert!(v.to_string().contains("late_tool"));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_http_sse_transport() {
    let fx = need_fixture!();
    let hub = Hub::start(fx, &[]).await;
    for path in ["/sse", "/mcp"] {
        let req = Request::get(path)
            .header("host", "localhost")
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let mut events = Events::new(hub.send(req).await);
        let endpoint = events.next().await.unwrap();
        assert_eq!(endpoint.event.as_deref(), Some("endpoint"));
        assert!(endpoint.data.starts_with("/messages?sessionId="));
        let post = |body: Value| {
            Request::post(endpoint.data.as_str())
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        };
        let r = hub
            .send(post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}})))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let m = events.message().await.unwrap();
        assert_eq!(m["result"]["protocolVersion"], "2024-11-05");
        hub.send(post(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ))
        .await;
        hub.send(post(
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "echo", "arguments": {"text": "legacy"}}}),
        ))
        .await;
        let m = events.message().await.unwrap();
        assert_eq!(m["id"], 2);
        assert!(m.to_string().contains("legacy"));
    }
    let bad = |uri: &str| {
        Request::post(uri)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from("{}")))
            .unwrap()
    };
    assert_eq!(
        hub.send(bad("/messages")).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        hub.send(bad("/messages?sessionId=bogus")).await.status(),
        StatusCode::NOT_FOUND
    );
    hub.shutdown().await;
}
