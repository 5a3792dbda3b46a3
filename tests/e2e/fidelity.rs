//! Drop-in fidelity with the Node hub (issue 12), item by item, against the real binary: when
//! `servers_updated` comes, what the hub's own config writes do, how a command that cannot run is
//! handled, what log events say, and how names, resource URIs and self-references look on `/mcp`.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use mcp_hub_tests::events::EventLog;
use mcp_hub_tests::legacy::LegacyClient;
use mcp_hub_tests::{HubCmd, McpClient};
use serde_json::{Value, json};

use crate::{config, fixture_entry};

const WAIT: Duration = Duration::from_secs(30);

/// A stdio server that takes a while to start: the fixture behind a shell that sleeps first.
fn slow_entry(extra: &[&str]) -> Value {
    let fixture = mcp_hub_tests::fixture();
    let mut cmd = format!("sleep 1; exec '{}'", fixture.display());
    for a in extra {
        cmd.push_str(&format!(" '{a}'"));
    }
    json!({"command": "sh", "args": ["-c", cmd]})
}

fn initializes(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"method\":\"initialize\""))
        .count()
}

// ---------------------------------------------------------------------------------------------
// 2. servers_updated once the servers have connected or failed

#[test]
fn servers_updated_comes_once_the_servers_have_connected() {
    let mut slow = slow_entry(&[]);
    slow["disabled"] = json!(true);
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("slow", slow), ("fast", fixture_entry(&[]))]),
        )
        .arg("--watch")
        .start();
    hub.wait_status(&["fast"], "connected");
    let events = EventLog::open(hub.port);
    let file = hub.dir.path().join("servers.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    cfg["mcpServers"]["slow"]["disabled"] = json!(false);
    cfg["mcpServers"]["late"] = slow_entry(&[]);
    cfg["mcpServers"]["broken"] = json!({"command": "/nonexistent/mcp-hub-e2e-server"});
    std::fs::write(&file, cfg.to_string()).unwrap();

    let (at, updating) = events
        .wait_from(0, WAIT, |e| e.is_subscription("servers_updating"))
        .expect("servers_updating");
    let (_, updated) = events
        .wait_from(at, WAIT, |e| e.is_subscription("servers_updated"))
        .expect("servers_updated");
    // What a client that refreshes on the event sees: where every affected server ended up.
    let servers = hub.get("/api/servers").json();
    let status = |n: &str| {
        servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .map(|s| s["status"].clone())
            .unwrap()
    };
    assert_eq!(
        status("slow"),
        "connected",
        "enabled in place, and connected"
    );
    assert_eq!(status("late"), "connected", "added, and connected");
    assert_eq!(status("broken"), "disconnected", "added, and failed");
    assert_eq!(updated.json()["changes"], updating.json()["changes"]);
    assert_eq!(
        updated.json()["changes"]["added"],
        json!(["late", "broken"])
    );
}

#[test]
fn a_crash_is_announced_once_the_server_has_settled_again() {
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("fx", fixture_entry(&["--crash-after", "1"]))]),
        )
        .start();
    hub.wait_status(&["fx"], "connected");
    let events = EventLog::open(hub.port);
    let _ = hub.call_tool("fx", "echo", json!({"text": "boom"}));
    let (_, e) = events
        .wait_from(0, WAIT, |e| e.is_subscription("servers_updated"))
        .expect("servers_updated after the crash");
    assert_eq!(e.json()["reason"], "server_status");
    assert_eq!(e.json()["changes"]["modified"], json!(["fx"]));
    assert_eq!(
        hub.server("fx")["status"],
        "connected",
        "announced once settled"
    );
    assert_eq!(hub.server("fx")["restarts"], 1);
}

// ---------------------------------------------------------------------------------------------
// 3. The hub's own config writes (disabled) never reload or respawn a server

#[test]
fn own_writes_of_disabled_do_not_reload_and_every_start_answers_connected() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fx.jsonl");
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("fx", fixture_entry(&["--log", log.to_str().unwrap()]))]),
        )
        .arg("--watch")
        .start();
    hub.wait_status(&["fx"], "connected");
    let events = EventLog::open(hub.port);
    let file = hub.dir.path().join("servers.json");
    for round in 1..=8 {
        let r = hub.post(
            "/api/servers/stop?disable=true",
            &json!({"server_name": "fx"}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(on_disk["mcpServers"]["fx"]["disabled"], true, "persisted");
        if round % 2 == 0 {
            // Give the watcher (200 ms debounce) time to see the write before starting again.
            std::thread::sleep(Duration::from_millis(500));
        }
        let r = hub.post("/api/servers/start", &json!({"server_name": "fx"}));
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        assert_eq!(
            r.json()["server"]["status"],
            "connected",
            "answered once connected"
        );
    }
    // Long enough for the watcher (200 ms debounce) to have seen the last write.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        initializes(&log),
        1 + 8,
        "one spawn per start, none from reloads"
    );
    let reloads: Vec<_> = events
        .all()
        .into_iter()
        .filter(|e| e.is_subscription("config_changed") || e.is_subscription("servers_updating"))
        .collect();
    assert!(
        reloads.is_empty(),
        "the hub reacted to its own writes: {reloads:?}"
    );
    assert_eq!(hub.server("fx")["status"], "connected");
}

#[test]
fn a_start_racing_the_plugins_own_file_write_spawns_once() {
    // mcphub.nvim writes `disabled: false` itself and calls start at once: the reload its write
    // triggers and the start must end in one process.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fx.jsonl");
    let mut fx = fixture_entry(&["--log", log.to_str().unwrap()]);
    fx["disabled"] = json!(true);
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("fx", fx)]))
        .arg("--watch")
        .start();
    hub.wait_status(&["fx"], "disabled");
    let file = hub.dir.path().join("servers.json");
    for round in 0..5 {
        let mut cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        cfg["mcpServers"]["fx"]["disabled"] = json!(false);
        std::fs::write(&file, cfg.to_string()).unwrap();
        if round % 2 == 1 {
            // Sometimes the reload wins the race.
            std::thread::sleep(Duration::from_millis(400));
        }
        let r = hub.post("/api/servers/start", &json!({"server_name": "fx"}));
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        assert_eq!(r.json()["server"]["status"], "connected");
        cfg["mcpServers"]["fx"]["disabled"] = json!(true);
        std::fs::write(&file, cfg.to_string()).unwrap();
        let r = hub.post(
            "/api/servers/stop?disable=true",
            &json!({"server_name": "fx"}),
        );
        assert_eq!(r.status, 200);
        hub.wait_status(&["fx"], "disabled");
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(initializes(&log), 5, "one spawn per start");
}

// ---------------------------------------------------------------------------------------------
// 4. A command that cannot run is not retried, and announced once

#[test]
fn a_command_that_cannot_run_is_not_retried_until_asked() {
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("server.sh");
    std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                (
                    "missing",
                    json!({"command": "/nonexistent/mcp-hub-e2e-server"}),
                ),
                (
                    "noexec",
                    json!({"command": not_executable.to_str().unwrap()}),
                ),
                ("ok", fixture_entry(&[])),
            ]),
        )
        .arg("--watch")
        .start();
    hub.wait_status(&["ok"], "connected");
    hub.wait_status(&["missing", "noexec"], "disconnected");
    let events = EventLog::open(hub.port);
    // Several backoff periods (0.5 s, 1 s, 2 s) pass: nothing is retried or announced.
    std::thread::sleep(Duration::from_millis(3500));
    for name in ["missing", "noexec"] {
        let s = hub.server(name);
        assert_eq!(s["restarts"], 0, "{name} was retried: {s}");
        assert_eq!(s["status"], "disconnected");
        assert!(
            s["error"].as_str().unwrap().contains("failed to start"),
            "{s}"
        );
    }
    assert!(
        events
            .all()
            .iter()
            .all(|e| !e.is_subscription("servers_updated")),
        "no announcement while nothing changes"
    );

    // A start request tries again, once, and fails the same way.
    let r = hub.post("/api/servers/start", &json!({"server_name": "missing"}));
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["code"], "CONNECTION_ERROR");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(hub.server("missing")["restarts"], 0);

    // Once the config points at something runnable, it connects.
    let file = hub.dir.path().join("servers.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    cfg["mcpServers"]["missing"] = fixture_entry(&[]);
    std::fs::write(&file, cfg.to_string()).unwrap();
    hub.wait_status(&["missing"], "connected");
    assert_eq!(hub.server("noexec")["restarts"], 0);
}

#[test]
fn a_server_failing_the_same_way_is_announced_once() {
    // An upstream that is down (connection refused) is retried with backoff, but every retry
    // failing alike is no news for clients.
    let port = mcp_hub_tests::node_hub::free_port();
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[(
                "down",
                json!({"url": format!("http://127.0.0.1:{port}/mcp")}),
            )]),
        )
        .start();
    hub.wait_status(&["down"], "disconnected");
    let events = EventLog::open(hub.port);
    hub.wait_for(WAIT, |h| {
        (h.server("down")["restarts"].as_u64() >= Some(2)).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1200));
    let announced: Vec<_> = events
        .all()
        .into_iter()
        .filter(|e| e.is_subscription("servers_updated"))
        .collect();
    assert!(announced.is_empty(), "retries announced: {announced:?}");
    let errors = events
        .all()
        .into_iter()
        .filter(|e| e.event == "log" && e.json()["type"] == "error")
        .count();
    assert_eq!(errors, 0, "a repeated failure is not a new error line");
}

// ---------------------------------------------------------------------------------------------
// 6. Log events the plugin's log view can use

#[test]
fn log_events_name_the_server_carry_codes_and_forward_upstream_logs() {
    let mut late = fixture_entry(&["--name", "chatty"]);
    late["disabled"] = json!(true);
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("chatty", late), ("ok", fixture_entry(&[]))]),
        )
        .arg("--watch")
        .start();
    hub.wait_status(&["ok"], "connected");
    let events = EventLog::open(hub.port);
    // A failed connect: an error line with the server in the message, and its code.
    let file = hub.dir.path().join("servers.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    cfg["mcpServers"]["gone"] = json!({"command": "/nonexistent/mcp-hub-e2e-server"});
    std::fs::write(&file, cfg.to_string()).unwrap();
    let (_, e) = events
        .wait_from(0, WAIT, |e| e.event == "log" && e.json()["type"] == "error")
        .expect("an error log line");
    let v = e.json();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to connect to \"gone\" MCP server: "),
        "{v}"
    );
    assert_eq!(v["code"], "CONNECTION_ERROR");
    assert_eq!(v["data"]["server"], "gone");

    // Connecting: the messages name the server.
    let r = hub.post("/api/servers/start", &json!({"server_name": "chatty"}));
    assert_eq!(r.status, 200);
    events
        .wait_from(0, WAIT, |e| {
            e.event == "log" && e.json()["message"] == "'chatty' MCP server connected"
        })
        .expect("the connected line names the server");
    assert!(
        events
            .all()
            .iter()
            .any(|e| e.event == "log" && e.json()["message"] == "Initializing MCP server 'chatty'")
    );

    // The server's own log messages reach /api/events, in the Node hub's words.
    let r = hub.call_tool("chatty", "test_tool_with_logging", json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, e) = events
        .wait_from(0, WAIT, |e| {
            e.event == "log"
                && e.json()["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("[\"chatty\" server info log]: "))
        })
        .expect("an upstream log line");
    assert_eq!(e.json()["data"]["server"], "chatty");
    assert_eq!(e.json()["type"], "info");
}

#[test]
fn a_flood_of_upstream_logs_is_bounded_and_the_client_keeps_its_stream() {
    let mut flood = fixture_entry(&["--flood", "20000"]);
    flood["disabled"] = json!(true);
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("flood", flood)]))
        .start();
    hub.wait_status(&["flood"], "disabled");
    let events = EventLog::open(hub.port);
    let r = hub.post("/api/servers/start", &json!({"server_name": "flood"}));
    assert_eq!(r.status, 200);
    let (_, note) = events
        .wait_from(0, WAIT, |e| {
            e.event == "log"
                && e.json()["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("were not forwarded"))
        })
        .expect("the surplus is reported");
    assert!(note.json()["data"]["dropped"].as_u64() > Some(0));
    let forwarded = events
        .all()
        .iter()
        .filter(|e| e.event == "log" && e.data.contains("flood message"))
        .count();
    assert!(forwarded < 20000, "every message was forwarded");
    // The stream is still alive: a later event arrives.
    let n = events.len();
    let r = hub.post("/api/servers/stop", &json!({"server_name": "flood"}));
    assert_eq!(r.status, 200);
    assert!(
        events
            .wait_from(n, WAIT, |e| e.is_subscription("servers_updated"))
            .is_some(),
        "the client was not dropped"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Names, resource URIs and self-references on /mcp

#[test]
fn clashing_server_ids_get_the_node_hubs_suffix_on_both_transports() {
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("a-b", fixture_entry(&["--name", "first"])),
                ("a_b", fixture_entry(&["--name", "second"])),
            ]),
        )
        .start();
    hub.wait_status(&["a-b", "a_b"], "connected");
    let mut c = McpClient::connect(hub.port);
    let tools = c.call("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"a_b__echo") && names.contains(&"a_b_1__echo"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.ends_with("echo_1")), "{names:?}");
    let v = c.call("tools/call", json!({"name": "a_b_1__pid", "arguments": {}}));
    assert_eq!(
        v["result"]["content"][0]["text"]
            .as_str()
            .map(str::to_owned),
        Some(hub.server("a_b")["pid"].to_string()),
        "a_b_1 is the second server"
    );
    let mut legacy = LegacyClient::connect(hub.port);
    let legacy_names = legacy.names("tools/list", "tools", "name");
    assert!(legacy_names.contains(&"a_b_1__echo".to_owned()));
}

#[test]
fn resources_read_through_mcp_returns_the_upstream_uri() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("fx", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["fx"], "connected");
    let mut c = McpClient::connect(hub.port);
    for (exposed, upstream) in [
        ("fx__test://static-text", "test://static-text"),
        ("fx__test://template/7/data", "test://template/7/data"),
    ] {
        let v = c.call("resources/read", json!({"uri": exposed}));
        assert_eq!(v["result"]["contents"][0]["uri"], upstream, "{v}");
    }
}

#[test]
fn a_hub_listed_in_its_own_config_is_refused_without_a_loop() {
    let port = mcp_hub_tests::node_hub::free_port();
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("fx", fixture_entry(&[])),
                ("me", json!({"url": format!("http://127.0.0.1:{port}/mcp")})),
                (
                    "me-too",
                    json!({"url": format!("http://localhost:{port}/sse")}),
                ),
            ]),
        )
        .port(port)
        .start();
    assert_eq!(hub.port, port);
    hub.wait_status(&["fx"], "connected");
    hub.wait_status(&["me", "me-too"], "disconnected");
    assert!(
        hub.server("me")["error"]
            .as_str()
            .unwrap()
            .contains("never connects to itself"),
        "{}",
        hub.server("me")
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(hub.server("me")["restarts"], 0);
    let mut c = McpClient::connect(hub.port);
    let tools = c.call("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("fx__")), "{names:?}");
}

#[test]
fn a_hub_reached_under_another_name_recognises_itself() {
    // Through a forwarding port the URL does not look like the hub's own; `initialize` tells it
    // apart by the instance identity the hub announces, and it is refused all the same.
    let hub_port = mcp_hub_tests::node_hub::free_port();
    let forward = Forwarder::start(hub_port);
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("fx", fixture_entry(&[])),
                (
                    "mirror",
                    json!({"url": format!("http://127.0.0.1:{}/mcp", forward.port)}),
                ),
            ]),
        )
        .port(hub_port)
        .start();
    hub.wait_status(&["fx"], "connected");
    hub.wait_status(&["mirror"], "disconnected");
    let s = hub.server("mirror");
    assert!(
        s["error"].as_str().unwrap().contains("this hub itself"),
        "{s}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(hub.server("mirror")["restarts"], 0, "not retried");
    let mut c = McpClient::connect(hub.port);
    let tools = c.call("tools/list", json!({}));
    assert!(
        tools["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"].as_str().unwrap().starts_with("fx__")),
        "{tools}"
    );
}

/// A loopback TCP forwarder: connections to `port` are relayed to `target`. Stops when dropped.
struct Forwarder {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Forwarder {
    fn start(target: u16) -> Forwarder {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok((down, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = down.set_nonblocking(false);
                for (mut from, mut to) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Forwarder { port, stop }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
