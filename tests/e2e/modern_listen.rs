//! List changes and resource updates of a 2026-07-28-only upstream (the fixture with `--era
//! modern` over HTTP): the hub keeps a `subscriptions/listen` request open upstream, so what
//! the server announces reaches handshake-era clients (their GET stream, their
//! `resources/subscribe`) and 2026-07-28 clients (their own `subscriptions/listen`) alike, and
//! it listens again, with the same subscriptions, after the upstream comes back. The same over
//! stdio (`--stdio --era modern`). And a handshake-era upstream's changes reach a listen stream,
//! and still do after it crashed and was restarted (the hub subscribes again).

use std::time::Duration;

use mcp_hub_tests::{EventStream, HttpFixture, HubCmd, McpClient};
use serde_json::{Value, json};

use crate::modern::meta;
use crate::{config, fixture_entry};

const WATCHED: &str = "test://watched-resource";

/// The next message on `stream` whose method is `method` (others are skipped).
fn expect(stream: &mut EventStream, method: &str, what: &str) -> Value {
    stream.deadline(Duration::from_secs(15));
    while let Some(e) = stream.next_event() {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            continue;
        };
        if v["method"] == method {
            return v;
        }
    }
    panic!("{what}: no {method}");
}

fn listen(port: u16) -> EventStream {
    let body = json!({"jsonrpc": "2.0", "id": "watch-1", "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": true, "resourceSubscriptions": [WATCHED]},
                   "_meta": meta(json!({}))}});
    EventStream::post(
        port,
        "/mcp",
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "subscriptions/listen"),
        ],
        &body.to_string(),
    )
}

fn text(r: &Value) -> String {
    r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Asks the upstream (through the hub) to update [`WATCHED`] until it answers `want`: the hub's
/// listen request upstream changes asynchronously, so the first tries may still see the old one.
fn update_until(legacy: &mut McpClient, want: &str, why: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = legacy.call(
            "tools/call",
            json!({"name": "update_resource", "arguments": {"uri": WATCHED}}),
        );
        if text(&r) == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{why}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_modern_upstreams_changes_reach_clients_of_both_eras_and_survive_its_restart() {
    let mut up = HttpFixture::start(0, &["--era", "modern", "--name", "up"]);
    let port = up.port;
    let hub = HubCmd::new()
        .config(
            "s.json",
            &config(&[("up", json!({"url": up.url(), "prefix": false}))]),
        )
        .start();
    hub.wait_status(&["up"], "connected");

    // A handshake-era client on its GET stream, subscribed to the watched resource.
    let mut legacy = McpClient::connect(hub.port);
    let mut get = EventStream::open(
        hub.port,
        "/mcp",
        &[
            ("Mcp-Session-Id", &legacy.session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
    );
    let r = legacy.call("resources/subscribe", json!({"uri": WATCHED}));
    assert_eq!(r["result"], json!({}), "{r}");
    // A 2026-07-28 client listening for tool list changes and the same resource.
    let mut modern = listen(hub.port);
    let ack = expect(
        &mut modern,
        "notifications/subscriptions/acknowledged",
        "listen",
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "watch-1"
    );

    // A list change upstream reaches both, and the hub's catalogue follows.
    let r = legacy.call(
        "tools/call",
        json!({"name": "test_trigger_tool_change", "arguments": {}}),
    );
    assert!(r.get("result").is_some(), "{r}");
    expect(
        &mut get,
        "notifications/tools/list_changed",
        "the GET stream",
    );
    let n = expect(
        &mut modern,
        "notifications/tools/list_changed",
        "the listen stream",
    );
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "watch-1"
    );
    let tools = legacy.call("tools/list", json!({}));
    assert!(
        tools["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "test_triggered_tool"),
        "{tools}"
    );

    // A resource update upstream: the upstream has a listener for it (the hub's), and it
    // reaches the subscribed client and the listening one.
    let r = legacy.call(
        "tools/call",
        json!({"name": "update_resource", "arguments": {"uri": WATCHED}}),
    );
    assert_eq!(
        text(&r),
        format!("notified subscribers of {WATCHED}"),
        "{r}"
    );
    let n = expect(
        &mut get,
        "notifications/resources/updated",
        "the GET stream",
    );
    assert_eq!(n["params"]["uri"], WATCHED, "{n}");
    let n = expect(
        &mut modern,
        "notifications/resources/updated",
        "the listen stream",
    );
    assert_eq!(n["params"]["uri"], WATCHED, "{n}");

    // The upstream restarts: its listen stream drops. The hub listens again with the same
    // subscriptions, says that the lists may have changed meanwhile, and updates flow again.
    up.kill();
    up = HttpFixture::start(port, &["--era", "modern", "--name", "up"]);
    expect(
        &mut get,
        "notifications/tools/list_changed",
        "the GET stream after the restart",
    );
    update_until(
        &mut legacy,
        &format!("notified subscribers of {WATCHED}"),
        "the hub did not listen again",
    );
    let n = expect(
        &mut get,
        "notifications/resources/updated",
        "the GET stream after the restart",
    );
    assert_eq!(n["params"]["uri"], WATCHED, "{n}");
    expect(
        &mut modern,
        "notifications/resources/updated",
        "the listen stream after the restart",
    );

    // The last subscriber leaves: the hub stops listening for the resource upstream.
    drop(modern);
    let r = legacy.call("resources/unsubscribe", json!({"uri": WATCHED}));
    assert_eq!(r["result"], json!({}), "{r}");
    update_until(
        &mut legacy,
        &format!("{WATCHED} has no subscriber; nothing sent"),
        "the hub still listens",
    );
    drop(up);
}

/// The same upstream over stdio: list changes and resource updates reach both eras of client,
/// and an unsubscribe ends the upstream's listening for the resource (the hub cancels the old
/// listen request on the pipe and opens one with the new filter).
#[test]
fn a_modern_stdio_upstreams_changes_reach_clients_of_both_eras() {
    let mut entry = fixture_entry(&["--era", "modern", "--name", "up"]);
    entry["prefix"] = json!(false);
    let hub = HubCmd::new()
        .config("s.json", &config(&[("up", entry)]))
        .start();
    hub.wait_status(&["up"], "connected");
    assert_eq!(hub.server("up")["protocolVersion"], "2026-07-28");

    let mut legacy = McpClient::connect(hub.port);
    let mut get = EventStream::open(
        hub.port,
        "/mcp",
        &[
            ("Mcp-Session-Id", &legacy.session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
    );
    let mut modern = listen(hub.port);
    expect(
        &mut modern,
        "notifications/subscriptions/acknowledged",
        "listen",
    );
    let r = legacy.call("resources/subscribe", json!({"uri": WATCHED}));
    assert_eq!(r["result"], json!({}), "{r}");

    let r = legacy.call(
        "tools/call",
        json!({"name": "test_trigger_tool_change", "arguments": {}}),
    );
    assert!(r.get("result").is_some(), "{r}");
    expect(
        &mut get,
        "notifications/tools/list_changed",
        "the GET stream",
    );
    expect(
        &mut modern,
        "notifications/tools/list_changed",
        "the listen stream",
    );

    let r = legacy.call(
        "tools/call",
        json!({"name": "update_resource", "arguments": {"uri": WATCHED}}),
    );
    assert_eq!(
        text(&r),
        format!("notified subscribers of {WATCHED}"),
        "{r}"
    );
    let n = expect(
        &mut get,
        "notifications/resources/updated",
        "the GET stream",
    );
    assert_eq!(n["params"]["uri"], WATCHED, "{n}");
    expect(
        &mut modern,
        "notifications/resources/updated",
        "the listen stream",
    );

    drop(modern);
    let r = legacy.call("resources/unsubscribe", json!({"uri": WATCHED}));
    assert_eq!(r["result"], json!({}), "{r}");
    update_until(
        &mut legacy,
        &format!("{WATCHED} has no subscriber; nothing sent"),
        "the upstream still has a listener",
    );
}

/// The other direction: a handshake-era upstream (the fixture over stdio, which announces on
/// its session) and a 2026-07-28 client's `subscriptions/listen` on the hub.
#[test]
fn a_handshake_upstreams_changes_reach_a_listen_stream_and_survive_its_crash() {
    let mut entry = fixture_entry(&["--name", "up"]);
    entry["prefix"] = json!(false);
    let hub = HubCmd::new()
        .config("s.json", &config(&[("up", entry)]))
        .start();
    hub.wait_status(&["up"], "connected");
    assert_eq!(hub.server("up")["protocolVersion"], "2025-11-25");

    let mut modern = listen(hub.port);
    expect(
        &mut modern,
        "notifications/subscriptions/acknowledged",
        "listen",
    );
    let mut legacy = McpClient::connect(hub.port);
    let r = legacy.call(
        "tools/call",
        json!({"name": "test_trigger_tool_change", "arguments": {}}),
    );
    assert!(r.get("result").is_some(), "{r}");
    let n = expect(
        &mut modern,
        "notifications/tools/list_changed",
        "the listen stream",
    );
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "watch-1"
    );
    // The listen stream's resource subscription reached the upstream as resources/subscribe.
    let r = legacy.call(
        "tools/call",
        json!({"name": "update_resource", "arguments": {"uri": WATCHED}}),
    );
    assert_eq!(
        text(&r),
        format!("notified subscribers of {WATCHED}"),
        "{r}"
    );
    let n = expect(
        &mut modern,
        "notifications/resources/updated",
        "the listen stream",
    );
    assert_eq!(n["params"]["uri"], WATCHED, "{n}");

    // The upstream crashes and the hub restarts it: the subscriptions died with the process, and
    // the hub subscribes again for the clients that still hold them (this listen stream, a
    // session), or their updates would silently stop.
    let r = legacy.call("resources/subscribe", json!({"uri": WATCHED}));
    assert_eq!(r["result"], json!({}), "{r}");
    let pid = hub.server("up")["pid"].as_u64().expect("a pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    hub.wait_for(Duration::from_secs(20), |h| {
        let s = h.server("up");
        (s["status"] == "connected" && s["pid"].as_u64() != Some(pid)).then_some(())
    });
    update_until(
        &mut legacy,
        &format!("notified subscribers of {WATCHED}"),
        "the hub did not subscribe again after the restart",
    );
    let n = expect(
        &mut modern,
        "notifications/resources/updated",
        "the listen stream after the crash",
    );
    assert_eq!(n["params"]["uri"], WATCHED, "{n}");
}
