use std::time::Duration;

use mcp_hub_tests::{EventStream, HubCmd};
use serde_json::json;

use crate::{config, fixture_entry};

#[test]
fn health_servers_and_tool_calls_follow_the_node_hub_shapes() {
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("alpha", fixture_entry(&["--name", "alpha"])),
                ("beta", fixture_entry(&["--name", "beta"])),
            ]),
        )
        .start();
    hub.wait_status(&["alpha", "beta"], "connected");

    let h = hub.get("/api/health").json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["server_id"], "mcp-hub");
    assert_eq!(
        h["version"], "4.2.1",
        "mcphub.nvim requires the Node hub's API level here"
    );
    assert!(h["timestamp"].is_string());
    assert!(h["servers"].as_array().is_some_and(|s| s.len() == 2));

    let s = hub.server("alpha");
    for key in [
        "name",
        "displayName",
        "description",
        "transportType",
        "status",
        "error",
        "capabilities",
        "uptime",
        "lastStarted",
        "authorizationUrl",
        "serverInfo",
        "config_source",
    ] {
        assert!(s.get(key).is_some(), "server object lacks {key}: {s}");
    }
    assert_eq!(s["transportType"], "stdio");
    assert_eq!(s["serverInfo"]["name"], "alpha");
    assert!(
        s["capabilities"]["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "echo"))
    );

    let r = hub.post(
        "/api/servers/tools",
        &json!({"server_name": "alpha", "tool": "echo", "arguments": {"text": "hi hub"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hi hub"),
        "{v}"
    );
    assert!(v["timestamp"].is_string());

    let r = hub.post("/api/servers/tools", &json!({}));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());

    let r = hub.post(
        "/api/servers/tools",
        &json!({"server_name": "nope", "tool": "echo"}),
    );
    assert!(r.status >= 400);
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("not found"))
    );

    let r = hub.post(
        "/api/servers/resources",
        &json!({"server_name": "alpha", "uri": "test://static-text"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["result"]["contents"][0]["text"].is_string());

    let r = hub.post("/api/servers/prompts", &json!({"server_name": "alpha", "prompt": "test_prompt_with_arguments", "arguments": {"arg1": "a", "arg2": "b"}}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["result"]["messages"].is_array());
}

#[test]
fn stop_and_start_are_seen_on_the_event_stream() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("alpha", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["alpha"], "connected");
    let mut events = EventStream::open(hub.port, "/api/events", &[]);
    let first = events.next_event().expect("hub_state on connect");
    assert_eq!(first.event, "hub_state", "{first:?}");

    let r = hub.post("/api/servers/stop", &json!({"server_name": "alpha"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["server"]["status"], "disconnected");
    let e = events
        .find(50, |e| {
            e.event == "subscription_event" && e.data.contains("servers_updated")
        })
        .expect("servers_updated after stop");
    assert!(e.data.contains("alpha"));

    let r = hub.post("/api/servers/start", &json!({"server_name": "alpha"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["server"]["status"], "connected");
    assert!(
        events
            .find(50, |e| e.event == "subscription_event"
                && e.data.contains("servers_updated"))
            .is_some()
    );
    let _ = Duration::from_secs(1);
}
