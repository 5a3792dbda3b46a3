use std::time::Duration;

use mcp_hub_tests::{EventStream, HubCmd, alive, thread_count, wait_dead};
use serde_json::json;

use crate::{config, fixture_entry};

fn read_pids(path: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn sigterm_stops_every_child_including_grandchildren() {
    let cmd = HubCmd::new();
    let pidfile = cmd.dir().join("fixture.pid");
    let stubborn = cmd.dir().join("stubborn.pid");
    let hub = cmd
        .config(
            "servers.json",
            &config(&[
                (
                    "kids",
                    fixture_entry(&["--pidfile", pidfile.to_str().unwrap(), "--spawn-grandchild"]),
                ),
                (
                    "stubborn",
                    fixture_entry(&[
                        "--pidfile",
                        stubborn.to_str().unwrap(),
                        "--ignore-stdin-eof",
                    ]),
                ),
            ]),
        )
        .start();
    let mut hub = hub;
    hub.wait_status(&["kids", "stubborn"], "connected");
    let mut pids = read_pids(&pidfile);
    pids.extend(read_pids(&stubborn));
    assert!(
        pids.len() >= 3,
        "fixture, its grandchild and the stubborn fixture: {pids:?}"
    );
    assert!(pids.iter().all(|p| alive(*p)));
    let status = hub.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        hub.stderr()
    );
    for p in pids {
        assert!(
            wait_dead(p, Duration::from_secs(5)),
            "process {p} survived the hub"
        );
    }
}

#[test]
fn a_crashing_server_is_restarted_while_others_keep_serving() {
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("crashy", fixture_entry(&["--crash-after", "1"])),
                ("steady", fixture_entry(&[])),
            ]),
        )
        .start();
    hub.wait_status(&["crashy", "steady"], "connected");
    let first_pid = hub.server("crashy")["pid"].as_u64();
    // The first call makes the fixture exit before answering.
    let r = hub.post(
        "/api/servers/tools",
        &json!({"server_name": "crashy", "tool": "echo", "arguments": {"text": "x"}}),
    );
    assert!(
        r.status >= 400,
        "a call to a crashing server fails: {}",
        r.text()
    );
    // The other server is unaffected.
    let r = hub.post(
        "/api/servers/tools",
        &json!({"server_name": "steady", "tool": "echo", "arguments": {"text": "still here"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // And the crashed one comes back by itself, as a new process.
    let s = hub.wait_for(Duration::from_secs(20), |h| {
        let s = h.server("crashy");
        (s["status"] == "connected" && s["pid"].as_u64() != first_pid).then_some(s)
    });
    assert!(
        s["restarts"].as_u64().unwrap_or(0) >= 1 || s["pid"].as_u64() != first_pid,
        "{s}"
    );
}

#[test]
fn auto_shutdown_after_the_last_event_client_leaves_and_workspace_entry_is_removed() {
    let mut hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .arg("--auto-shutdown")
        .arg("--shutdown-delay")
        .arg("300")
        .start();
    let ws_file = hub.dir.path().join("home/state/mcp-hub/workspaces.json");
    let port = hub.port.to_string();
    hub.wait_for(Duration::from_secs(10), |_| {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&ws_file).ok()?).ok()?;
        v.get(&port)
            .filter(|e| e["pid"].as_u64().is_some() && e["port"].as_u64().is_some())
            .cloned()
    });
    {
        let mut events = EventStream::open(hub.port, "/api/events", &[]);
        assert!(events.next_event().is_some());
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            hub.child.try_wait().unwrap().is_none(),
            "a connected client keeps the hub alive"
        );
    }
    let status = hub.wait_exit(Duration::from_secs(10));
    assert!(status.success());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ws_file).unwrap_or_else(|_| "{}".into()))
            .unwrap();
    assert!(
        v.get(&port).is_none(),
        "workspace entry removed on exit: {v}"
    );
}

#[test]
fn the_log_file_is_written_as_json_lines() {
    let mut hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let log = hub.dir.path().join("home/state/mcp-hub/logs/mcp-hub.log");
    let text = hub.wait_for(Duration::from_secs(5), |_| {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("connected"))
    });
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
    hub.terminate();
}

/// Starting many servers at once costs no thread per server: resolving a server's placeholders
/// is string work done on the runtime, and only a `${cmd:}` (which blocks) goes to the blocking
/// pool. Each connect used to resolve there, so a burst of 50 servers started ~25 pool threads
/// on two cores for microseconds of work each. One server here does run a command, and its
/// output still arrives.
#[test]
fn many_servers_starting_at_once_do_not_take_a_thread_each() {
    const SERVERS: usize = 24;
    let cmd = HubCmd::new();
    let marker = cmd.dir().join("from-cmd");
    let mut servers: Vec<(String, serde_json::Value)> = (0..SERVERS)
        .map(|i| {
            let mut e = fixture_entry(&["--name", &format!("s{i}")]);
            e["env"] = json!({"PLAIN": "${HOME}", "TWICE": "${env:PLAIN}-x"});
            (format!("s{i}"), e)
        })
        .collect();
    let mut with_cmd = fixture_entry(&["--name", "c"]);
    with_cmd["env"] =
        json!({"FROM_CMD": format!("${{cmd: echo ran > {} && echo ok}}", marker.display())});
    servers.push(("c".into(), with_cmd));
    let names: Vec<String> = servers.iter().map(|(n, _)| n.clone()).collect();
    let refs: Vec<(&str, serde_json::Value)> = servers
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    let hub = cmd.config("servers.json", &config(&refs)).start();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    hub.wait_status(&name_refs, "connected");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default().trim(),
        "ran",
        "the `${{cmd:}}` ran"
    );
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = thread_count(hub.pid()).expect("the hub is running");
    // The runtime's workers, the main thread and a few of the hub's own; not one per server.
    assert!(
        threads <= workers + 8,
        "{threads} threads for {SERVERS} servers on {workers} cores"
    );
}
