//! The Streamable HTTP wire against fake servers and server-everything.

use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_hub_protocol::ErrorCode;
use serde_json::json;

use super::*;
use crate::http_client::testing::{Everything, FakeServer, Reply};
use crate::{AuthChallenge, AuthFailure, AuthHook};

const INIT_RESULT: &str = r#"{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"1"}}"#;

fn spec(url: url::Url) -> HttpSpec {
    HttpSpec {
        name: "test".into(),
        url,
        headers: vec![("X-Static".into(), "yes".into())],
        auth: None,
    }
}

fn initialize(id: i64) -> Message {
    Message::request(
        RequestId::from(id),
        methods::INITIALIZE,
        Some(&json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        })),
    )
}

async fn next(parts: &mut WireParts) -> Option<crate::wire::InboundItem> {
    tokio::time::timeout(Duration::from_secs(15), parts.inbound.recv())
        .await
        .expect("inbound item within 15 s")
}

async fn next_msg(parts: &mut WireParts) -> Inbound {
    match next(parts).await {
        Some(Ok(inbound)) => inbound,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// A wire to `url` that has sent `initialize` and read its answer.
async fn initialized(url: &url::Url) -> WireParts {
    let mut parts = open_streamable(&spec(url.clone()), &SessionOptions::default())
        .await
        .unwrap();
    parts.wire.send(initialize(1)).await.unwrap();
    next_msg(&mut parts).await;
    parts
}

fn result_of(inbound: &Inbound) -> serde_json::Value {
    match &inbound.msg {
        Message::Response(r) => serde_json::from_str(r.result.get()).unwrap(),
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Initialises against the fake server: JSON answer with session `s1`.
fn init_reply(seen: &crate::http_client::testing::Seen) -> Option<Reply> {
    (seen.json()["method"] == "initialize").then(|| {
        Reply::json(
            200,
            &format!(r#"{{"jsonrpc":"2.0","id":1,"result":{INIT_RESULT}}}"#),
        )
        .header("mcp-session-id", "s1")
    })
}

#[tokio::test]
async fn talks_to_server_everything() {
    let Some(server) = Everything::start("streamableHttp").await else {
        return;
    };
    let opts = SessionOptions::default();
    let mut parts = open_streamable(&spec(server.url("/mcp")), &opts)
        .await
        .unwrap();
    assert_eq!(parts.wire.kind(), "streamable-http");
    parts.wire.send(initialize(1)).await.unwrap();
    let init = next_msg(&mut parts).await;
    assert_eq!(init.origin, Some(RequestId::from(1)));
    assert_eq!(result_of(&init)["protocolVersion"], "2025-11-25");
    parts
        .wire
        .send(Message::notification(methods::INITIALIZED, None))
        .await
        .unwrap();
    parts
        .wire
        .send(Message::request(
            RequestId::from("list"),
            methods::TOOLS_LIST,
            None,
        ))
        .await
        .unwrap();
    // server-everything may interleave notifications (e.g. logging) with the answer.
    let tools = loop {
        let m = next_msg(&mut parts).await;
        if m.msg.id() == Some(&RequestId::from("list")) {
            assert_eq!(m.origin, Some(RequestId::from("list")));
            break result_of(&m);
        }
    };
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");
    parts
        .wire
        .send(Message::request(
            RequestId::from(3),
            methods::TOOLS_CALL,
            Some(&json!({"name": "echo", "arguments": {"message": "hi there"}})),
        ))
        .await
        .unwrap();
    let echoed = loop {
        let m = next_msg(&mut parts).await;
        if m.msg.id() == Some(&RequestId::from(3)) {
            break result_of(&m);
        }
    };
    assert_eq!(echoed["content"][0]["text"], "Echo: hi there");
    parts.wire.close().await;
    // After close the channel drains and ends.
    while let Some(item) = next(&mut parts).await {
        assert!(item.is_ok(), "{item:?}");
    }
    assert!(matches!(
        parts.wire.send(Message::notification("x", None)).await,
        Err(TransportError::Closed)
    ));
    server.stop().await;
}

#[tokio::test]
async fn resumes_a_dropped_post_stream_with_last_event_id() {
    let server = FakeServer::start("/mcp", |seen| {
        if let Some(r) = init_reply(seen) {
            return r;
        }
        match (seen.method.as_str(), seen.header("last-event-id")) {
            // The answer stream: priming event, retry hint, then the connection drops.
            ("POST", _) => Reply::sse(
                "retry: 20\nid: e1\ndata: \n\nevent: message\nid: e2\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n",
                false,
            ),
            ("GET", Some("e2")) => Reply::sse(
                "id: e3\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"ok\":true}}\n\n",
                true,
            ),
            _ => Reply::status(400),
        }
    })
    .await;
    let mut parts = initialized(&server.url).await;
    parts
        .wire
        .send(Message::request(RequestId::from(2), "tools/call", None))
        .await
        .unwrap();
    let progress = next_msg(&mut parts).await;
    assert_eq!(progress.msg.method(), Some("notifications/progress"));
    assert_eq!(progress.origin, Some(RequestId::from(2)));
    let answer = next_msg(&mut parts).await;
    assert_eq!(answer.origin, Some(RequestId::from(2)));
    assert_eq!(result_of(&answer), json!({"ok": true}));

    let seen = server.seen();
    let post = seen.iter().find(|s| s.json()["id"] == 2).unwrap();
    assert_eq!(post.header("mcp-session-id"), Some("s1"));
    assert_eq!(post.header("mcp-protocol-version"), Some("2025-06-18"));
    assert_eq!(
        post.header("accept"),
        Some("application/json, text/event-stream")
    );
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.header("x-static"), Some("yes"));
    let init = &seen[0];
    assert_eq!(init.header("mcp-session-id"), None);
    assert_eq!(init.header("mcp-protocol-version"), None);
    let get = seen.iter().find(|s| s.method == "GET").unwrap();
    assert_eq!(get.header("last-event-id"), Some("e2"));
    assert_eq!(get.header("accept"), Some("text/event-stream"));
    assert_eq!(get.header("mcp-session-id"), Some("s1"));
    parts.wire.close().await;
}

#[tokio::test]
async fn an_unresumable_stream_fails_its_request() {
    let server = FakeServer::start("/mcp", |seen| {
        init_reply(seen).unwrap_or_else(|| Reply::sse(": no ids here\n\n", false))
    })
    .await;
    let mut parts = initialized(&server.url).await;
    parts
        .wire
        .send(Message::request(RequestId::from(7), "tools/call", None))
        .await
        .unwrap();
    let failed = next_msg(&mut parts).await;
    let Message::Error(e) = &failed.msg else {
        panic!("expected an error response, got {:?}", failed.msg)
    };
    assert_eq!(e.id, Some(RequestId::from(7)));
    assert_eq!(e.error.code, ErrorCode::INTERNAL_ERROR.0);
    // No GET was attempted: there was nothing to resume from.
    assert!(server.seen().iter().all(|s| s.method == "POST"));
    parts.wire.close().await;
}

/// A server whose answer stream drops after its priming event (retry 10 ms); `resume` decides
/// what a GET with `Last-Event-ID` gets.
async fn dropping_server(resume: fn() -> Reply) -> FakeServer {
    FakeServer::start("/mcp", move |seen| {
        if let Some(r) = init_reply(seen) {
            return r;
        }
        match (seen.method.as_str(), seen.header("last-event-id")) {
            ("POST", _) => Reply::sse("retry: 10\nid: e1\ndata: \n\n", false),
            ("GET", Some(_)) => resume(),
            // The standalone GET stream: not offered.
            _ => Reply::status(405),
        }
    })
    .await
}

async fn failed_with(parts: &mut WireParts, id: i64) -> String {
    let failed = next_msg(parts).await;
    let Message::Error(e) = &failed.msg else {
        panic!("expected an error response, got {:?}", failed.msg)
    };
    assert_eq!(e.id, Some(RequestId::from(id)));
    assert_eq!(failed.origin, Some(RequestId::from(id)));
    assert_eq!(e.error.code, ErrorCode::INTERNAL_ERROR.0);
    e.error.message.clone()
}

#[tokio::test]
async fn a_refused_resumption_fails_the_request_at_once() {
    for status in [409, 400, 405] {
        let server = dropping_server(match status {
            409 => || Reply::status(409),
            400 => || Reply::status(400),
            _ => || Reply::status(405),
        })
        .await;
        let mut parts = initialized(&server.url).await;
        parts
            .wire
            .send(Message::request(RequestId::from(7), "tools/call", None))
            .await
            .unwrap();
        let why = failed_with(&mut parts, 7).await;
        assert!(why.contains(&format!("HTTP {status}")), "{why}");
        let resumes = server
            .seen()
            .iter()
            .filter(|s| s.header("last-event-id").is_some())
            .count();
        assert_eq!(resumes, 1, "a refusal is not retried (HTTP {status})");
        parts.wire.close().await;
    }
}

#[tokio::test]
async fn resumptions_that_bring_nothing_fail_the_request() {
    // The server lost the answer it produced while the hub waited out `retry`: every
    // resumption replays nothing and ends.
    let server = dropping_server(|| Reply::sse(": nothing to replay\n\n", false)).await;
    let mut parts = initialized(&server.url).await;
    parts
        .wire
        .send(Message::request(RequestId::from(8), "tools/call", None))
        .await
        .unwrap();
    let why = failed_with(&mut parts, 8).await;
    assert!(
        why.contains("reconnections with Last-Event-ID brought nothing"),
        "{why}"
    );
    let resumes: Vec<_> = server
        .seen()
        .iter()
        .filter_map(|s| s.header("last-event-id").map(str::to_owned))
        .collect();
    assert_eq!(resumes, vec!["e1"; MAX_RESUMES as usize]);
    parts.wire.close().await;
}

#[tokio::test]
async fn a_404_on_a_session_is_fatal() {
    let server = FakeServer::start("/mcp", |seen| {
        init_reply(seen).unwrap_or_else(|| {
            Reply::json(404, r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}"#)
        })
    })
    .await;
    let mut parts = initialized(&server.url).await;
    let err = parts
        .wire
        .send(Message::request(RequestId::from(2), "tools/list", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("session expired (404)"), "{err}");
    match next(&mut parts).await {
        Some(Err(TransportError::Http(m))) => assert_eq!(m, "session expired (404)"),
        other => panic!("expected the fatal error, got {other:?}"),
    }
    assert!(next(&mut parts).await.is_none());
    // Closing a dead session does not DELETE it.
    parts.wire.close().await;
    assert!(server.seen().iter().all(|s| s.method == "POST"));
}

#[tokio::test]
async fn initialize_rejections_are_reported_for_fallback() {
    let server = FakeServer::start("/mcp", |_| {
        Reply::status(405)
            .header("allow", "GET")
            .body("Method Not Allowed")
    })
    .await;
    let parts = open_streamable(&spec(server.url.clone()), &SessionOptions::default())
        .await
        .unwrap();
    match parts.wire.send(initialize(1)).await {
        Err(TransportError::HttpStatus { status, body }) => {
            assert_eq!(status, 405);
            assert_eq!(body, "Method Not Allowed");
        }
        other => panic!("expected HttpStatus, got {other:?}"),
    }
}

#[derive(Debug)]
struct Hook {
    refresh: bool,
    challenges: AtomicUsize,
}

#[async_trait::async_trait]
impl AuthHook for Hook {
    async fn authorization(&self) -> Result<Option<String>, AuthFailure> {
        Ok(Some(format!(
            "Bearer t{}",
            self.challenges.load(Ordering::SeqCst)
        )))
    }

    async fn on_unauthorized(&self, c: &AuthChallenge) -> Result<bool, AuthFailure> {
        assert_eq!(c.www_authenticate.as_deref(), Some("Bearer realm=\"x\""));
        self.challenges.fetch_add(1, Ordering::SeqCst);
        Ok(self.refresh)
    }
}

#[tokio::test]
async fn a_401_asks_the_auth_hook_and_retries_once() {
    let server = FakeServer::start("/mcp", |seen| {
        if seen.header("authorization") == Some("Bearer t1") {
            init_reply(seen).unwrap_or_else(|| Reply::status(202))
        } else {
            Reply::status(401).header("www-authenticate", "Bearer realm=\"x\"")
        }
    })
    .await;
    for refresh in [true, false] {
        let hook = Arc::new(Hook {
            refresh,
            challenges: AtomicUsize::new(0),
        });
        let mut s = spec(server.url.clone());
        s.auth = Some(hook.clone());
        let mut parts = open_streamable(&s, &SessionOptions::default())
            .await
            .unwrap();
        let sent = parts.wire.send(initialize(1)).await;
        if refresh {
            sent.unwrap();
            assert_eq!(
                result_of(&next_msg(&mut parts).await)["protocolVersion"],
                "2025-06-18"
            );
        } else {
            match sent {
                Err(TransportError::Unauthorized(c)) => {
                    assert_eq!(c.status, 401);
                    assert_eq!(c.url, server.url);
                }
                other => panic!("expected Unauthorized, got {other:?}"),
            }
        }
        assert_eq!(hook.challenges.load(Ordering::SeqCst), 1);
        parts.wire.close().await;
    }
}

#[tokio::test]
async fn get_stream_carries_server_messages_and_delete_ends_the_session() {
    let gets = Arc::new(AtomicUsize::new(0));
    let g = gets.clone();
    let server = FakeServer::start("/mcp", move |seen| {
        if let Some(r) = init_reply(seen) {
            return r;
        }
        match seen.method.as_str() {
            "POST" => Reply::status(202),
            "GET" => {
                // The first stream drops after one event; the reconnection resumes from it.
                if g.fetch_add(1, Ordering::SeqCst) == 0 {
                    Reply::sse("retry: 10\nid: g1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n", false)
                } else {
                    Reply::sse("id: g2\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"srv\",\"method\":\"ping\"}\n\n", true)
                }
            }
            "DELETE" => Reply::status(200),
            _ => Reply::status(400),
        }
    })
    .await;
    let mut parts = initialized(&server.url).await;
    parts
        .wire
        .send(Message::notification(methods::INITIALIZED, None))
        .await
        .unwrap();
    let changed = next_msg(&mut parts).await;
    assert_eq!(
        changed.msg.method(),
        Some("notifications/tools/list_changed")
    );
    assert_eq!(changed.origin, None);
    let ping = next_msg(&mut parts).await;
    assert_eq!(ping.msg.method(), Some("ping"));
    assert_eq!(ping.origin, None);
    parts.wire.close().await;
    assert!(next(&mut parts).await.is_none());
    let seen = server.seen();
    let get_ids: Vec<Option<&str>> = seen
        .iter()
        .filter(|s| s.method == "GET")
        .map(|s| s.header("last-event-id"))
        .collect();
    assert_eq!(get_ids, vec![None, Some("g1")]);
    let delete = seen.iter().find(|s| s.method == "DELETE").unwrap();
    assert_eq!(delete.header("mcp-session-id"), Some("s1"));
    assert_eq!(delete.header("mcp-protocol-version"), Some("2025-06-18"));
}

#[tokio::test]
async fn oversized_json_answers_fail_the_request() {
    let server = FakeServer::start("/mcp", |seen| {
        init_reply(seen).unwrap_or_else(|| {
            Reply::json(
                200,
                &format!(
                    r#"{{"jsonrpc":"2.0","id":2,"result":{{"x":"{}"}}}}"#,
                    "a".repeat(4096)
                ),
            )
        })
    })
    .await;
    let opts = SessionOptions {
        max_message_bytes: 1024,
        ..SessionOptions::default()
    };
    let mut parts = open_streamable(&spec(server.url.clone()), &opts)
        .await
        .unwrap();
    parts.wire.send(initialize(1)).await.unwrap();
    next_msg(&mut parts).await;
    parts
        .wire
        .send(Message::request(RequestId::from(2), "tools/list", None))
        .await
        .unwrap();
    let failed = next_msg(&mut parts).await;
    assert!(matches!(&failed.msg, Message::Error(e) if e.id == Some(RequestId::from(2))));
    parts.wire.close().await;
}

#[tokio::test]
async fn trace_context_in_meta_becomes_the_traceparent_header() {
    let server = FakeServer::start("/mcp", |seen| {
        init_reply(seen).unwrap_or_else(|| {
            let id = seen.json()["id"].clone();
            Reply::json(
                200,
                &json!({"jsonrpc": "2.0", "id": id, "result": {}}).to_string(),
            )
        })
    })
    .await;
    let parts = initialized(&server.url).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let with = |id: i64, meta: serde_json::Value| {
        Message::request(
            RequestId::from(id),
            "tools/call",
            Some(&json!({"name": "x", "_meta": meta})),
        )
    };
    parts
        .wire
        .send(with(2, json!({"traceparent": tp, "tracestate": "a=b"})))
        .await
        .unwrap();
    // A value that does not parse never reaches a header (nor could a CR/LF in one).
    parts
        .wire
        .send(with(3, json!({"traceparent": "00-x\r\nevil: 1"})))
        .await
        .unwrap();
    parts.wire.send(with(4, json!({}))).await.unwrap();
    let seen = server.seen();
    let post = |id: i64| seen.iter().find(|s| s.json()["id"] == id).unwrap();
    assert_eq!(post(2).header("traceparent"), Some(tp));
    assert_eq!(post(2).header("tracestate"), Some("a=b"));
    assert_eq!(post(3).header("traceparent"), None);
    assert_eq!(post(3).header("evil"), None);
    assert_eq!(post(4).header("traceparent"), None);
    parts.wire.close().await;
}
