//! Misbehaving remote upstreams: 500s, reset connections, a call that times out, a server that
//! dies and returns, a dropped SSE stream resumed with `Last-Event-ID`.

use std::time::{Duration, Instant};

use mcp_hub_tests::{Fault, FaultyHttp, HttpFixture, HubCmd, McpClient};
use serde_json::{Value, json};

use super::{call_tool, echo_ok, tool_text};
use crate::{config, fixture_entry};

fn remote(url: &str) -> Value {
    json!({"url": url})
}

#[test]
fn a_remote_upstream_answering_500_is_reported_and_retried_with_backoff() {
    let faulty = FaultyHttp::start(Fault::Status500);
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("broken", remote(&faulty.url())),
                ("steady", fixture_entry(&[])),
            ]),
        )
        .start();
    hub.wait_status(&["steady"], "connected");
    let s = hub.wait_for(Duration::from_secs(15), |h| {
        let s = h.server("broken");
        s["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
            .then_some(s)
    });
    assert_ne!(s["status"], "connected", "{s}");
    assert!(
        s["error"].as_str().is_some_and(|e| e.contains("500")),
        "the error names the status: {s}"
    );
    let before = faulty.accepted();
    std::thread::sleep(Duration::from_secs(5));
    let during = faulty.accepted() - before;
    assert!(
        during <= 20,
        "{during} connections in 5 s: retries are not backed off"
    );
    let mut c = McpClient::connect(hub.port);
    echo_ok(&mut c, "steady", "unaffected");
}

#[test]
fn a_remote_upstream_resetting_connections_is_reported_and_retried() {
    let faulty = FaultyHttp::start(Fault::Reset);
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("reset", remote(&faulty.url())),
                ("steady", fixture_entry(&[])),
            ]),
        )
        .start();
    hub.wait_status(&["steady"], "connected");
    let s = hub.wait_for(Duration::from_secs(15), |h| {
        let s = h.server("reset");
        (s["restarts"].as_u64().unwrap_or(0) >= 1 && s["error"].is_string()).then_some(s)
    });
    assert_ne!(s["status"], "connected", "{s}");
    let r = hub.call_tool("reset", "echo", json!({"text": "x"}));
    assert!(
        r.status >= 400 && r.json()["error"].is_string(),
        "{}",
        r.text()
    );
    let mut c = McpClient::connect(hub.port);
    echo_ok(&mut c, "steady", "unaffected");
}

#[test]
fn a_remote_call_that_times_out_fails_alone() {
    let slow = HttpFixture::start(0, &["--delay-ms", "600000"]);
    let mut entry = remote(&slow.url());
    entry["timeout"] = json!(1500);
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("slow", entry), ("steady", fixture_entry(&[]))]),
        )
        .start();
    hub.wait_status(&["slow", "steady"], "connected");
    let started = Instant::now();
    let r = hub.call_tool("slow", "echo", json!({"text": "x"}));
    assert_eq!(r.json()["code"], "REQUEST_TIMEOUT", "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut c = McpClient::connect(hub.port);
    echo_ok(&mut c, "steady", "unaffected");
    assert_eq!(hub.server("slow")["status"], "connected");
}

#[test]
fn a_remote_upstream_that_dies_and_returns_is_reconnected() {
    let mut up = HttpFixture::start(0, &[]);
    let port = up.port;
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("remote", remote(&up.url())),
                ("steady", fixture_entry(&[])),
            ]),
        )
        .start();
    hub.wait_status(&["remote", "steady"], "connected");
    let mut c = McpClient::connect(hub.port);
    echo_ok(&mut c, "remote", "before");
    up.kill();
    let v = call_tool(&mut c, "remote__echo", json!({"text": "while down"})).expect("an answer");
    assert!(
        v["error"].is_object() || v["result"]["isError"] == true,
        "{v}"
    );
    echo_ok(&mut c, "steady", "unaffected");
    // Back on the same port: a new process, so the old session is unknown to it (404); the hub
    // must initialize a new session by itself.
    let _up = HttpFixture::start(port, &[]);
    let v = hub.wait_for(Duration::from_secs(45), |_| {
        tool_text(&call_tool(&mut c, "remote__echo", json!({"text": "after"}))).ok()
    });
    assert_eq!(v, "after");
}

#[test]
fn a_dropped_sse_stream_is_resumed_with_last_event_id() {
    // The fixture's `test_reconnection` closes the response stream after the priming event and
    // produces the result afterwards: it reaches the hub only through a GET with Last-Event-ID.
    let up = HttpFixture::start(0, &[]);
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("remote", remote(&up.url()))]))
        .start();
    hub.wait_status(&["remote"], "connected");
    let mut c = McpClient::connect(hub.port);
    for _ in 0..3 {
        let text = tool_text(&call_tool(&mut c, "remote__test_reconnection", json!({})))
            .expect("resumed result");
        assert!(text.contains("resumed the stream"), "{text}");
    }
    let r = hub.call_tool("remote", "test_reconnection", json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
}

// ------------------------------------------------------------------------------------------------
// SIGTERM under load
