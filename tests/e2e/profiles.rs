//! Tool filters, profiles and the search mode, as a client that wants more than it was given
//! would probe them: hidden tools by guessed names, through `call_tool`, through REST; list
//! changes that are not its view's; a config edit under it; two profiles at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mcp_hub_tests::{HubCmd, McpClient};
use serde_json::{Value, json};

use crate::fixture_entry;

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

fn tools_of(c: &mut McpClient) -> Vec<String> {
    names(&c.call("tools/list", json!({})))
}

/// A session's standalone GET stream, to watch the notifications nobody asked for.
pub(crate) struct Watch {
    sock: TcpStream,
    seen: String,
}

impl Watch {
    pub(crate) fn open(c: &McpClient) -> Watch {
        let mut sock = TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {}\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n",
            c.path, c.port, c.session
        );
        sock.write_all(req.as_bytes()).expect("write");
        sock.set_read_timeout(Some(Duration::from_millis(100))).ok();
        let mut w = Watch {
            sock,
            seen: String::new(),
        };
        w.read_for(Duration::from_millis(300));
        assert!(w.seen.starts_with("HTTP/1.1 200"), "GET stream: {}", w.seen);
        w
    }

    /// Reads what arrives for `d`.
    pub(crate) fn read_for(&mut self, d: Duration) {
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

    /// Reads until `needle` arrived (or `d` passed); whether it did.
    pub(crate) fn wait_for(&mut self, needle: &str, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end && !self.seen.contains(needle) {
            self.read_for(Duration::from_millis(100));
        }
        self.seen.contains(needle)
    }
}

fn write_config(hub: &mcp_hub_tests::Hub, v: &Value) {
    std::fs::write(hub.dir.path().join("servers.json"), v.to_string()).unwrap();
}

#[test]
fn a_server_tool_filter_hides_tools_everywhere_and_follows_reload() {
    let mut entry = fixture_entry(&["--name", "fx"]);
    entry["tools"] = json!({"include": ["echo", "add", "s*"], "exclude": ["sleep"]});
    let cfg = json!({"mcpServers": {"fx": entry}});
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .arg("--watch")
        .start();
    hub.wait_status(&["fx"], "connected");
    let pid = hub.server("fx")["pid"].as_u64().expect("pid");
    let mut c = McpClient::connect(hub.port);
    assert_eq!(tools_of(&mut c), ["fx__add", "fx__echo"]);

    // A hidden tool is unknown by its exposed name, over /mcp and over REST.
    let r = c.call("tools/call", json!({"name": "fx__pid", "arguments": {}}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(r["error"]["message"], "Unknown tool: fx__pid");
    let r = c.call(
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "hi"}}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "hi", "{r}");
    let rest = hub.call_tool("fx", "pid", json!({}));
    assert_eq!(rest.status, 404, "{}", rest.text());
    assert_eq!(rest.json()["code"], "TOOL_NOT_FOUND");
    let fx = hub.server("fx");
    let listed: Vec<&str> = fx["capabilities"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(listed, ["echo", "add"]);

    // A new filter applies without a restart, and the client hears that its list changed.
    let mut watch = Watch::open(&c);
    let mut entry = fixture_entry(&["--name", "fx"]);
    entry["tools"] = json!({"include": ["pid"]});
    write_config(&hub, &json!({"mcpServers": {"fx": entry}}));
    assert!(
        watch.wait_for("notifications/tools/list_changed", Duration::from_secs(20)),
        "{}",
        watch.seen
    );
    assert_eq!(tools_of(&mut c), ["fx__pid"]);
    assert_eq!(hub.server("fx")["pid"].as_u64(), Some(pid), "no restart");
    let r = c.call(
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "hi"}}),
    );
    assert_eq!(r["error"]["message"], "Unknown tool: fx__echo", "{r}");
    // Removing the filter shows everything again.
    write_config(
        &hub,
        &json!({"mcpServers": {"fx": fixture_entry(&["--name", "fx"])}}),
    );
    hub.wait_for(Duration::from_secs(20), |_| {
        (tools_of(&mut c).len() > 10).then_some(())
    });
    assert_eq!(hub.server("fx")["pid"].as_u64(), Some(pid), "no restart");
}
