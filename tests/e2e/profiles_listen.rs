//! `subscriptions/listen` on a profile's endpoint: a stream hears list changes only for its
//! profile's view (not another server's new tool, not a tool its filter hides, never search
//! mode's fixed list), resource updates only for URIs the view shows (a hidden server is not
//! even subscribed upstream), and a profile edited under it by a hot reload.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mcp_hub_tests::McpClient;
use serde_json::{Value, json};

use crate::modern::meta;
use crate::profiles_modern::{ask, config, hub, names};

/// A `subscriptions/listen` stream, read as it arrives.
struct Listen {
    sock: TcpStream,
    seen: String,
}

impl Listen {
    fn open(port: u16, path: &str, notifications: Value) -> Listen {
        let body = json!({"jsonrpc": "2.0", "id": 99, "method": "subscriptions/listen",
            "params": {"notifications": notifications, "_meta": meta(json!({}))}})
        .to_string();
        let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: subscriptions/listen\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(req.as_bytes()).expect("write");
        sock.set_read_timeout(Some(Duration::from_millis(100))).ok();
        let mut l = Listen {
            sock,
            seen: String::new(),
        };
        assert!(
            l.wait_for(
                "notifications/subscriptions/acknowledged",
                Duration::from_secs(10)
            ),
            "{path}: {}",
            l.seen
        );
        l
    }

    fn read_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut buf = [0u8; 8192];
        while Instant::now() < end {
            match self.sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => {}
            }
        }
    }

    fn wait_for(&mut self, needle: &str, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end && !self.seen.contains(needle) {
            self.read_for(Duration::from_millis(100));
        }
        self.seen.contains(needle)
    }

    fn count(&self, needle: &str) -> usize {
        self.seen.matches(needle).count()
    }

    /// The URIs of the `notifications/resources/updated` received so far.
    fn updated(&self) -> Vec<String> {
        self.seen
            .lines()
            .filter_map(|l| l.trim_end().strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|m| m["method"] == "notifications/resources/updated")
            .filter_map(|m| m["params"]["uri"].as_str().map(str::to_owned))
            .collect()
    }
}

const TOOLS_CHANGED: &str = "notifications/tools/list_changed";

#[test]
fn listen_hears_only_its_view_and_filters_survive_reload() {
    let hub = hub(&[], true);
    let port = hub.port;
    let pid = hub.server("a")["pid"].as_u64().expect("pid");
    let lists =
        json!({"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true});
    let mut dev = Listen::open(port, "/mcp/dev", lists.clone());
    let mut ops = Listen::open(port, "/mcp/ops", lists.clone());
    let mut find = Listen::open(port, "/mcp/find", lists.clone());
    let mut full = Listen::open(port, "/mcp", lists);
    // Resource updates: only for URIs the view shows, and a hidden server is not even
    // subscribed for this stream.
    let mut watched = Listen::open(
        port,
        "/mcp/dev",
        json!({"resourceSubscriptions": ["a__test://watched-resource", "b__test://watched-resource"]}),
    );
    let mut admin = McpClient::connect(port);

    // `a` gains a tool that dev's filter does not include: only the full view changed (and
    // search mode's `tools/list` never changes).
    let r = admin.call(
        "tools/call",
        json!({"name": "a__test_trigger_tool_change", "arguments": {}}),
    );
    assert!(r.get("result").is_some(), "{r}");
    assert!(
        full.wait_for(TOOLS_CHANGED, Duration::from_secs(20)),
        "{}",
        full.seen
    );
    // `b` gains one: ops' view changed.
    let r = admin.call(
        "tools/call",
        json!({"name": "b__test_trigger_tool_change", "arguments": {}}),
    );
    assert!(r.get("result").is_some(), "{r}");
    assert!(
        ops.wait_for(TOOLS_CHANGED, Duration::from_secs(20)),
        "{}",
        ops.seen
    );
    dev.read_for(Duration::from_millis(1500));
    find.read_for(Duration::from_millis(10));
    assert_eq!(dev.count(TOOLS_CHANGED), 0, "{}", dev.seen);
    assert_eq!(find.count(TOOLS_CHANGED), 0, "{}", find.seen);
    assert_eq!(ops.count(TOOLS_CHANGED), 1, "{}", ops.seen);

    let r = admin.call(
        "tools/call",
        json!({"name": "b__update_resource", "arguments": {}}),
    );
    let text = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("no subscriber"),
        "b was subscribed for a view that hides it: {r}"
    );
    let r = admin.call(
        "tools/call",
        json!({"name": "a__update_resource", "arguments": {}}),
    );
    let text = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.starts_with("notified"), "{r}");
    assert!(
        watched.wait_for("notifications/resources/updated", Duration::from_secs(10)),
        "{}",
        watched.seen
    );
    watched.read_for(Duration::from_millis(300));
    assert_eq!(
        watched.updated(),
        ["a__test://watched-resource"],
        "{}",
        watched.seen
    );

    // The profile's filter changes under the running hub: dev's stream hears it, ops' does
    // not, a stateless client sees the new view at once, and nothing restarted.
    std::fs::write(
        hub.dir.path().join("servers.json"),
        config(&["echo", "pid"]).to_string(),
    )
    .unwrap();
    assert!(
        dev.wait_for(TOOLS_CHANGED, Duration::from_secs(20)),
        "{}",
        dev.seen
    );
    let tools = hub.wait_for(Duration::from_secs(10), |_| {
        let t = names(
            &ask(port, "/mcp/dev", 1, "tools/list", json!({}), &[]),
            "tools",
        );
        (t == ["a__echo", "a__pid"]).then_some(t)
    });
    assert_eq!(tools, ["a__echo", "a__pid"]);
    let r = ask(
        port,
        "/mcp/dev",
        2,
        "tools/call",
        json!({"name": "a__add", "arguments": {"a": 1, "b": 2}}),
        &[],
    );
    assert_eq!(r["error"]["message"], "Unknown tool: a__add", "{r}");
    let r = ask(
        port,
        "/mcp/dev",
        3,
        "tools/call",
        json!({"name": "a__pid", "arguments": {}}),
        &[],
    );
    assert_eq!(
        r["result"]["content"][0]["text"],
        pid.to_string(),
        "no restart: {r}"
    );
    ops.read_for(Duration::from_millis(1000));
    assert_eq!(ops.count(TOOLS_CHANGED), 1, "{}", ops.seen);
    assert_eq!(dev.count(TOOLS_CHANGED), 1, "{}", dev.seen);
}
