//! The Node `mcp-hub` 4.2.1 and this hub side by side on the same config (each with its own
//! port), compared on what issue 12 is about: when `servers_updated` comes (item 2), what start
//! and stop with `disable` do under `--watch` (3), what log events say (6), and names, resource
//! URIs and a self-reference on `/mcp` (7). Runs when `MCP_HUB_NODE_HUB` is set
//! (`scripts/setup-test-peers.sh` installs the Node hub); skips otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_hub_tests::events::EventLog;
use mcp_hub_tests::legacy::LegacyClient;
use mcp_hub_tests::node_hub::{NodeHub, free_port, node_hub_script};
use mcp_hub_tests::{Hub, HubCmd, request};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// Both hubs, each on its own copy of the config.
struct Pair {
    node: NodeHub,
    ours: Hub,
    node_config: PathBuf,
    our_config: PathBuf,
    /// Per hub, the message log of the `fx` fixture (one line per message it received).
    node_fx_log: PathBuf,
    our_fx_log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The config both hubs run: two servers whose ids clash after sanitising, a server to toggle
/// (`fx`, logging what it receives to `$FIXTURE_LOG`), a slow one and a late one (disabled), a
/// missing command, and an entry pointing at the hub itself.
fn shared_config(hub_port: u16) -> String {
    let fixture = mcp_hub_tests::fixture().display().to_string();
    let slow = format!("sleep 1; exec '{fixture}' --name slow");
    json!({"mcpServers": {
        "a-b": {"command": fixture, "args": ["--name", "first"]},
        "a_b": {"command": fixture, "args": ["--name", "second"]},
        "fx": {"command": fixture, "args": ["--name", "fx", "--log", "${FIXTURE_LOG}"]},
        "slow": {"command": "sh", "args": ["-c", slow], "disabled": true},
        "late": {"command": fixture, "args": ["--name", "late"], "disabled": true},
        "missing": {"command": "/nonexistent/mcp-hub-e2e-server"},
        "self": {"url": format!("http://127.0.0.1:{hub_port}/mcp")},
    }})
    .to_string()
}

fn start_pair(script: &Path) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let node_port = free_port();
    let node_config = dir.path().join("node-servers.json");
    std::fs::write(&node_config, shared_config(node_port)).unwrap();
    let node_fx_log = dir.path().join("node-fx.jsonl");
    let node = NodeHub::start(
        script,
        node_port,
        std::slice::from_ref(&node_config),
        &["--watch"],
        &[("FIXTURE_LOG", node_fx_log.display().to_string())],
    );
    let our_port = free_port();
    let our_fx_log = dir.path().join("our-fx.jsonl");
    let ours = HubCmd::new()
        .config("servers.json", &shared_config(our_port))
        .port(our_port)
        .arg("--watch")
        .env("FIXTURE_LOG", our_fx_log.to_str().unwrap())
        .start();
    let our_config = ours.dir.path().join("servers.json");
    ours.wait_status(&["a-b", "a_b", "fx"], "connected");
    Pair {
        node,
        ours,
        node_config,
        our_config,
        node_fx_log,
        our_fx_log,
        _dir: dir,
    }
}

impl Pair {
    /// `(label, port)` of each hub.
    fn ports(&self) -> [(&'static str, u16); 2] {
        [("node", self.node.port), ("ours", self.ours.port)]
    }

    fn configs(&self) -> [&Path; 2] {
        [&self.node_config, &self.our_config]
    }
}

fn servers(port: u16) -> Vec<Value> {
    request(port, "GET", "/api/servers", &[], None).json()["servers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn server(port: u16, name: &str) -> Value {
    servers(port)
        .into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or(Value::Null)
}

fn post(port: u16, path: &str, body: Value) -> mcp_hub_tests::Response {
    request(port, "POST", path, &[], Some(body.to_string().as_bytes()))
}

fn initializes(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"method\":\"initialize\""))
        .count()
}

macro_rules! need_node_hub {
    () => {
        match node_hub_script() {
            Some(s) => s,
            None => {
                eprintln!("SKIP: MCP_HUB_NODE_HUB is not set (scripts/setup-test-peers.sh)");
                return;
            }
        }
    };
}

/// Item 7: server ids clash into `a_b` and `a_b_1`; `resources/read` answers with the upstream
/// URI; a hub's own entry contributes nothing to `/mcp`.
#[test]
fn names_resource_uris_and_self_references_match() {
    let script = need_node_hub!();
    let pair = start_pair(&script);
    let mut lists = Vec::new();
    for (label, port) in pair.ports() {
        let mut c = LegacyClient::connect(port);
        let mut tools = c.names("tools/list", "tools", "name");
        tools.sort();
        assert!(
            tools.contains(&"a_b__echo".to_owned()) && tools.contains(&"a_b_1__echo".to_owned()),
            "{label}: {tools:?}"
        );
        assert!(
            tools.iter().all(|t| !t.starts_with("self__")),
            "{label} serves its own tools back: {tools:?}"
        );
        for (exposed, upstream) in [
            ("a_b_1__test://static-text", "test://static-text"),
            ("a_b_1__test://template/7/data", "test://template/7/data"),
        ] {
            let r = c.call("resources/read", json!({"uri": exposed}));
            assert_eq!(r["contents"][0]["uri"], upstream, "{label}: {r}");
        }
        // `a_b_1` is the second server in both.
        let r = c.call("tools/call", json!({"name": "a_b_1__pid", "arguments": {}}));
        let pid = r["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!pid.is_empty(), "{label}: {r}");
        assert_ne!(
            c.call("tools/call", json!({"name": "a_b__pid", "arguments": {}}))["content"][0]["text"],
            json!(pid)
        );
        lists.push(tools);
    }
    assert_eq!(lists[0], lists[1], "the same tool names on both hubs");
    // The Node hub connects to itself and hides the result; this hub does not connect at all.
    assert_eq!(
        server(pair.node.port, "self")["serverInfo"]["name"],
        "mcp-hub-internal-endpoint"
    );
    let me = server(pair.ours.port, "self");
    assert_eq!(me["status"], "disconnected");
    assert!(
        me["error"]
            .as_str()
            .unwrap()
            .contains("never connects to itself"),
        "{me}"
    );
}

/// Item 2: `servers_updated` after a config change comes once the changed servers connected.
#[test]
fn servers_updated_follows_the_connection_on_both() {
    let script = need_node_hub!();
    let pair = start_pair(&script);
    // One hub after the other, so each is looked at the moment its event arrives.
    for ((label, port), path) in pair.ports().into_iter().zip(pair.configs()) {
        let log = EventLog::open(port);
        let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        cfg["mcpServers"]["slow"]["disabled"] = json!(false);
        std::fs::write(path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
        let (at, _) = log
            .wait_from(0, WAIT, |e| e.is_subscription("servers_updating"))
            .unwrap_or_else(|| panic!("{label}: servers_updating"));
        let (_, e) = log
            .wait_from(at, WAIT, |e| e.is_subscription("servers_updated"))
            .unwrap_or_else(|| panic!("{label}: servers_updated"));
        assert_eq!(e.json()["changes"]["modified"], json!(["slow"]), "{label}");
        // What the plugin reads right after the event.
        assert_eq!(server(port, "slow")["status"], "connected", "{label}");
    }
}

/// Item 3: start and stop with `disable` under `--watch` answer with the final status and spawn
/// the server once per start, on both hubs.
#[test]
fn start_and_stop_with_disable_spawn_once_per_start_on_both() {
    let script = need_node_hub!();
    let pair = start_pair(&script);
    let logs: Vec<EventLog> = pair
        .ports()
        .iter()
        .map(|(_, p)| EventLog::open(*p))
        .collect();
    for (label, port) in pair.ports() {
        for round in 0..5 {
            let r = post(
                port,
                "/api/servers/stop?disable=true",
                json!({"server_name": "fx"}),
            );
            assert_eq!(r.status, 200, "{label} stop {round}: {}", r.text());
            assert_eq!(r.json()["server"]["status"], "disabled", "{label}");
            if round % 2 == 0 {
                // Long enough for a config watcher to react to a write of the stop.
                std::thread::sleep(Duration::from_millis(500));
            }
            let r = post(port, "/api/servers/start", json!({"server_name": "fx"}));
            assert_eq!(r.status, 200, "{label} start {round}: {}", r.text());
            assert_eq!(r.json()["server"]["status"], "connected", "{label}");
        }
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        initializes(&pair.node_fx_log),
        6,
        "node: one spawn per start"
    );
    assert_eq!(
        initializes(&pair.our_fx_log),
        6,
        "ours: one spawn per start"
    );
    for ((label, _), log) in pair.ports().into_iter().zip(&logs) {
        assert!(
            log.all()
                .iter()
                .all(|e| !e.is_subscription("servers_updating")),
            "{label} reloaded its config"
        );
    }
}

/// Item 6: the log events name the server in their message, failed connects are `error` lines
/// with the code `CONNECTION_ERROR`, and an upstream's own log messages are forwarded.
#[test]
fn log_events_say_the_same_on_both() {
    let script = need_node_hub!();
    let pair = start_pair(&script);
    let logs: Vec<EventLog> = pair
        .ports()
        .iter()
        .map(|(_, p)| EventLog::open(*p))
        .collect();
    for ((label, port), log) in pair.ports().into_iter().zip(&logs) {
        let messages = |log: &EventLog| -> Vec<Value> {
            log.all()
                .into_iter()
                .filter(|e| e.event == "log")
                .map(|e| e.json())
                .collect()
        };
        // A server started on request says so by name.
        let r = post(port, "/api/servers/start", json!({"server_name": "late"}));
        assert_eq!(r.status, 200, "{label}: {}", r.text());
        log.wait_from(0, WAIT, |e| {
            e.event == "log" && e.json()["message"] == "'late' MCP server connected"
        })
        .unwrap_or_else(|| panic!("{label}: {:?}", messages(log)));

        // The upstream's notifications/message, in the Node hub's words.
        let r = post(
            port,
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "test_tool_with_logging", "arguments": {}}),
        );
        assert_eq!(r.status, 200, "{label}: {}", r.text());
        log.wait_from(0, WAIT, |e| {
            e.event == "log"
                && e.json()["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("[\"fx\" server info log]: \"Tool"))
        })
        .unwrap_or_else(|| panic!("{label}: {:?}", messages(log)));

        // A soft restart connects every server again: the missing command is an error line.
        let r = post(port, "/api/restart", json!({}));
        assert_eq!(r.status, 200, "{label}: {}", r.text());
        let (_, e) = log
            .wait_from(0, WAIT, |e| {
                e.event == "log"
                    && e.json()["message"].as_str().is_some_and(|m| {
                        m.starts_with("Failed to connect to \"missing\" MCP server: ")
                    })
            })
            .unwrap_or_else(|| panic!("{label}: {:?}", messages(log)));
        assert_eq!(e.json()["type"], "error", "{label}: {}", e.data);
        assert_eq!(e.json()["code"], "CONNECTION_ERROR", "{label}: {}", e.data);
    }
}
