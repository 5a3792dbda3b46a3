//! A 2026-07-28-only upstream behind the hub (the fixture with `--era modern` over HTTP): used
//! statelessly, by clients of both eras, including its input requests (MRTR) for handshake-era
//! clients, each of whom answers only its own.

use mcp_hub_tests::{HttpFixture, HubCmd, McpClient};
use serde_json::{Value, json};

use crate::config;
use crate::modern::{answer, meta, post};
use crate::routing::{python, two_python_clients};

fn hub_with_modern_upstream() -> (HttpFixture, mcp_hub_tests::Hub) {
    let up = HttpFixture::start(0, &["--era", "modern", "--name", "up"]);
    let hub = HubCmd::new()
        .config("s.json", &config(&[("up", json!({"url": up.url()}))]))
        .start();
    hub.wait_status(&["up"], "connected");
    (up, hub)
}

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_modern_only_upstream_serves_both_eras_of_client() {
    let (_up, hub) = hub_with_modern_upstream();
    let server = hub.server("up");
    assert_eq!(server["serverInfo"]["name"], "up", "{server}");

    // A handshake-era client.
    let mut legacy = McpClient::connect(hub.port);
    let tools = legacy.call("tools/list", json!({}));
    assert!(
        tools["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "up__echo"),
        "{tools}"
    );
    let r = legacy.call(
        "tools/call",
        json!({"name": "up__echo", "arguments": {"text": "from a session"}}),
    );
    assert_eq!(text(&r["result"]), "from a session", "{r}");

    // A stateless client.
    let r = answer(&post(
        hub.port,
        7,
        "tools/call",
        json!({"name": "up__echo", "arguments": {"text": "from nowhere"}, "_meta": meta(json!({}))}),
        &[],
    ));
    assert_eq!(r["id"], 7);
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(text(&r["result"]), "from nowhere", "{r}");

    // A stateless client's input request: it is asked, and its retry completes the call.
    let caps = json!({"elicitation": {"form": {}}});
    let call = |id: i64, extra: Value| {
        let mut params = json!({"name": "up__test_streaming_elicitation", "arguments": {},
                                "_meta": meta(caps.clone())});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        answer(&post(hub.port, id, "tools/call", params, &[]))
    };
    let first = call(8, json!({}));
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let (key, asked) = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(asked["method"], "elicitation/create", "{first}");
    let state = first["result"]["requestState"].as_str().unwrap();
    let done = call(
        9,
        json!({"requestState": state,
               "inputResponses": {key.as_str(): {"action": "accept", "content": {"ok": true}}}}),
    );
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(
        text(&done["result"]).starts_with("Confirmed: {\"action\":\"accept\""),
        "{done}"
    );
}

/// The test a hostile user writes: two handshake-era clients (the official Python SDK) call the
/// modern upstream's `ask_client` at once, many rounds, for sampling, elicitation and roots;
/// each input request reaches its own caller and no other.
#[test]
fn two_legacy_clients_each_answer_only_their_own_input_requests() {
    let Some(python) = python() else { return };
    let (_up, mut hub) = hub_with_modern_upstream();
    let (a, b) = two_python_clients(&python, hub.port, "up__", "exact");
    assert_eq!(a, b, "one upstream process serves both");
    assert_eq!(hub.server("up")["routing"]["unattributedRequests"], 0);
    let status = hub.terminate();
    assert!(status.success(), "{status:?}");
}
