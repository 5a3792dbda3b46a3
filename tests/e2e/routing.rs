//! Routing of what servers send back, through the real binary: servers configured with
//! `isolation: "session"` give each client session its own process, which ends with the session;
//! and two clients of the Python `mcp` SDK sampling, eliciting and listing roots at once get
//! their own answers (always, when isolated) and never each other's (when shared).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use mcp_hub_tests::{HubCmd, McpClient, children, wait_dead};
use serde_json::{Value, json};

use crate::{config, fixture_entry};

fn isolated_entry(max: usize) -> Value {
    let mut e = fixture_entry(&["--name", "iso"]);
    e["isolation"] = json!("session");
    e["maxInstances"] = json!(max);
    e
}

fn pid_of(c: &mut McpClient, tool: &str) -> Result<u32, String> {
    let r = c.call("tools/call", json!({"name": tool, "arguments": {}}));
    let text = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    if r["result"]["isError"] == true {
        return Err(text.to_owned());
    }
    text.parse().map_err(|_| format!("not a pid: {r}"))
}

/// The hub's children that are (or were: zombies) the given processes.
fn lingering(hub_pid: u32, pids: &[u32]) -> Vec<(u32, char)> {
    children(hub_pid)
        .into_iter()
        .filter(|(p, _)| pids.contains(p))
        .collect()
}

fn wait_gone(hub_pid: u32, pids: &[u32]) -> Vec<(u32, char)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = lingering(hub_pid, pids);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn isolated_instances_end_with_their_sessions() {
    let mut hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("iso", isolated_entry(2)), ("plain", fixture_entry(&[]))]),
        )
        .start();
    hub.wait_status(&["iso", "plain"], "connected");
    let main = hub.server("iso")["pid"].as_u64().unwrap() as u32;
    let tools = hub.server("iso")["capabilities"]["tools"]
        .as_array()
        .unwrap()
        .len();
    let mut a = McpClient::connect(hub.port);
    let mut b = McpClient::connect(hub.port);
    let pa = pid_of(&mut a, "iso__pid").unwrap();
    let pb = pid_of(&mut b, "iso__pid").unwrap();
    assert!(pa != pb && pa != main && pb != main, "{pa} {pb} {main}");
    assert_eq!(
        pid_of(&mut a, "iso__pid").unwrap(),
        pa,
        "a session keeps its instance"
    );
    let listed = a.call("tools/list", json!({}));
    let iso_tools = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("iso__"))
        .count();
    assert_eq!(iso_tools, tools, "the server's tools are listed once");
    let routing = &hub.server("iso")["routing"];
    assert_eq!(routing["isolation"], "session");
    assert_eq!(routing["instances"], 2);
    // Past the maximum: a clear error, no third process.
    let mut c = McpClient::connect(hub.port);
    let e = pid_of(&mut c, "iso__pid").unwrap_err();
    assert!(
        e.contains("maximum of 2") && e.contains("maxInstances"),
        "{e}"
    );

    // Ending a session ends its process, reaped.
    assert_eq!(a.delete(&[]), 200);
    assert_eq!(wait_gone(hub.pid(), &[pa]), vec![]);
    let pc = pid_of(&mut c, "iso__pid").unwrap();
    assert_eq!(hub.server("iso")["routing"]["instances"], 2);
    // And the hub's own shutdown ends the rest.
    let hub_pid = hub.pid();
    let status = hub.terminate();
    assert!(status.success(), "{status:?}");
    for pid in [pb, pc, main] {
        assert!(
            wait_dead(pid, Duration::from_secs(10)),
            "{pid} outlived the hub"
        );
    }
    assert!(children(hub_pid).is_empty());
}

pub(crate) fn python() -> Option<String> {
    let p = std::env::var("MCP_HUB_PYTHON").ok();
    if p.is_none() {
        eprintln!("SKIP: MCP_HUB_PYTHON is not set (run scripts/setup-test-peers.sh)");
    }
    p
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/py_two_clients.py")
}

/// Runs the two Python clients; returns the upstream pids they reached.
pub(crate) fn two_python_clients(python: &str, port: u16, prefix: &str, mode: &str) -> (u32, u32) {
    let out = Command::new(python)
        .arg(script())
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .arg(prefix)
        .arg("12")
        .arg(mode)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{prefix} {mode}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pids: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PIDS "))
        .expect("a PIDS line")
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    (pids[0], pids[1])
}

#[test]
fn python_sdk_clients_get_their_own_answers() {
    let Some(python) = python() else { return };
    let mut hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("iso", isolated_entry(4)), ("shared", fixture_entry(&[]))]),
        )
        .start();
    hub.wait_status(&["iso", "shared"], "connected");
    let main = hub.server("iso")["pid"].as_u64().unwrap() as u32;
    // Isolated: every sampling, elicitation and roots request reaches its caller, each client
    // talks to its own process, and the processes end with the sessions.
    for _ in 0..2 {
        let (a, b) = two_python_clients(&python, hub.port, "iso__", "exact");
        assert!(a != b && a != main && b != main);
        assert_eq!(
            wait_gone(hub.pid(), &[a, b]),
            vec![],
            "instances outlived their sessions"
        );
    }
    assert_eq!(hub.server("iso")["routing"]["instances"], 0);
    assert_eq!(hub.server("iso")["routing"]["unattributedRequests"], 0);
    // Shared: one process; what both could have caused is answered by the hub, never crossed.
    let (a, b) = two_python_clients(&python, hub.port, "shared__", "sound");
    assert_eq!(a, b);
    let status = hub.terminate();
    assert!(status.success(), "{status:?}");
}

/// A log no client's call caused goes to the hub's log and `/api/events` (here: a tool called
/// through the REST API logs while it runs), and to no MCP session when there are two.
#[test]
fn logs_nobody_can_take_reach_the_hub_log_and_events() {
    let mut hub = HubCmd::new()
        .config("servers.json", &config(&[("fx", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["fx"], "connected");
    let mut events = mcp_hub_tests::EventStream::open(hub.port, "/api/events", &[]);
    let r = hub.call_tool(
        "fx",
        "log",
        json!({"text": "secret-rest", "count": 2, "level": "warning"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let e = events
        .find(200, |e| e.data.contains("secret-rest #0"))
        .expect("the upstream log as a hub log event");
    assert!(
        e.data.contains(r#"\"fx\" server warning log"#),
        "{}",
        e.data
    );
    assert!(e.data.contains(r#""type":"warn""#), "{}", e.data);
    // Once: not also as the hub's own log line (read up to a later marker).
    let r = hub.call_tool("fx", "log", json!({"text": "marker", "count": 1}));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut again = 0;
    events
        .find(200, |e| {
            again += usize::from(e.data.contains("secret-rest #0"));
            e.data.contains("marker #0")
        })
        .expect("the marker");
    assert_eq!(again, 0, "the log reached /api/events twice");
    assert!(
        std::fs::read_to_string(hub.log_file())
            .unwrap_or_default()
            .contains("secret-rest #1"),
        "the hub's log file has it too"
    );
    let status = hub.terminate();
    assert!(status.success(), "{status:?}");
}
