//! A 2026-07-28 call parked for its client's input (the MRTR bridge from a handshake-era
//! upstream) that the client never resumes: after `parked_input_ttl` the upstream call is
//! cancelled (`notifications/cancelled` reaches the upstream, its request to the client is
//! answered with an error) and the `requestState` is refused. A state is also refused to any
//! other caller than the one it was issued to.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Events, Hub, json_body, stdio_def};
use http::{Method, StatusCode};
use http_body_util::Full;
use mcp_hub_api::ApiConfig;
use mcp_hub_registry::RegistryOptions;
use serde_json::{Value, json};

async fn call(hub: &Hub, id: i64, extra: Value) -> (StatusCode, Value) {
    call_as(hub, None, id, extra).await
}

async fn call_as(hub: &Hub, token: Option<&str>, id: i64, extra: Value) -> (StatusCode, Value) {
    let mut params = json!({"name": "ask_client", "arguments": {"kind": "sampling"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}});
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let mut req = hub.request(Method::POST, "/mcp", None);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "ask_client")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let r = hub.send(req).await;
    let status = r.status();
    let sse = r
        .headers()
        .get("content-type")
        .is_some_and(|c| c.as_bytes().starts_with(b"text/event-stream"));
    if !sse {
        return (status, json_body(r).await);
    }
    let mut events = Events::new(r);
    while let Some(m) = events.message().await {
        if m.get("id").is_some() {
            return (status, m);
        }
    }
    panic!("no answer on the stream");
}

#[tokio::test]
async fn a_parked_call_never_resumed_is_cancelled_upstream_after_its_ttl() {
    let fx = need_fixture!();
    let log = std::env::temp_dir().join(format!(
        "mcp-hub-parked-{}-{}.jsonl",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let log_arg = log.display().to_string();
    let def = stdio_def(&fx, &["--log", &log_arg]);
    let config = ApiConfig {
        parked_input_ttl: Duration::from_millis(400),
        ..ApiConfig::default()
    };
    let hub = Hub::with_config(RegistryOptions::default(), vec![def], config).await;

    let (_, first) = call(&hub, 1, json!({})).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"].as_str().unwrap().to_owned();
    let upstream_call = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["method"] == "tools/call")
        .map(|m| m["id"].clone())
        .expect("the call reached the upstream");

    // Nobody comes back: the upstream is told to stop that call, and is answered an error for
    // its question.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (cancelled, refused) = loop {
        let seen: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let cancelled = seen.iter().any(|m| {
            m["method"] == "notifications/cancelled" && m["params"]["requestId"] == upstream_call
        });
        let refused = seen.iter().any(|m| m.get("error").is_some());
        if cancelled && refused {
            break (cancelled, refused);
        }
        assert!(
            Instant::now() < deadline,
            "not cancelled upstream after the TTL: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(cancelled && refused);

    // The state is no longer any good.
    let sampled = json!({"role": "assistant", "content": {"type": "text", "text": "late"},
                         "model": "m", "stopReason": "endTurn"});
    let key = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let (_, late) = call(
        &hub,
        2,
        json!({"requestState": state, "inputResponses": {key: sampled}}),
    )
    .await;
    assert_eq!(late["error"]["code"], -32602, "{late}");
    assert!(
        late["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{late}"
    );
    hub.shutdown().await;
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn a_request_state_is_refused_to_another_caller() {
    let fx = need_fixture!();
    let config = ApiConfig {
        bearer_tokens: vec!["alice-token".into(), "bob-token".into()],
        ..ApiConfig::default()
    };
    let hub = Hub::with_config(
        RegistryOptions::default(),
        vec![stdio_def(&fx, &[])],
        config,
    )
    .await;
    let (_, first) = call_as(&hub, Some("alice-token"), 1, json!({})).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"].as_str().unwrap().to_owned();
    let key = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let sampled = json!({"role": "assistant", "content": {"type": "text", "text": "not mine"},
                         "model": "m", "stopReason": "endTurn"});
    let answers = json!({"requestState": state, "inputResponses": {key.as_str(): sampled}});
    let (_, stolen) = call_as(&hub, Some("bob-token"), 2, answers.clone()).await;
    assert_eq!(stolen["error"]["code"], -32602, "{stolen}");
    assert!(
        stolen["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another caller"),
        "{stolen}"
    );
    // The call is still parked for its own caller, who completes it.
    let (_, done) = call_as(&hub, Some("alice-token"), 3, answers).await;
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(
        done["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("not mine"),
        "{done}"
    );
    hub.shutdown().await;
}
