//! `mcp-hub stdio`: the hub as a stdio MCP server for desktop clients. Two clients share one hub
//! (one upstream process), the second one survives the first one leaving, and server→client
//! requests, progress and cancellation cross the stdio door as they cross `/mcp`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mcp_hub_tests::{bin, children, fixture, wait_dead};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// One `mcp-hub stdio` process spoken to as a desktop client would.
struct StdioClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    next_id: u64,
    /// Notifications and requests seen while waiting for responses.
    seen: Vec<Value>,
}

fn stdio_cmd(home: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(bin("mcp-hub"));
    cmd.arg("stdio").arg("--config").arg(config);
    cmd.env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("MCP_HUB_PORT")
        .env_remove("MCP_HUB_TOKEN");
    cmd
}

impl StdioClient {
    fn start(home: &Path, config: &Path, stderr: &Path) -> StdioClient {
        let mut child = stdio_cmd(home, config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).expect("stderr file"))
            .spawn()
            .expect("spawn mcp-hub stdio");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        StdioClient {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            next_id: 0,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{msg}").expect("write stdin");
        stdin.flush().expect("flush");
    }

    /// The next message on stdout. Every line must be one JSON-RPC message: nothing else may
    /// ever reach stdout.
    fn next(&mut self, deadline: Instant) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = self
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no message on stdout in time; seen: {:?}", self.seen));
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout carried a non-JSON line {line:?}: {e}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
        v
    }

    /// Sends a request and returns its response; `on_request` answers server→client requests.
    fn call_with(
        &mut self,
        method: &str,
        params: Value,
        mut on_request: impl FnMut(&Value) -> Value,
    ) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.next(deadline);
            if m.get("method").is_some() {
                if m.get("id").is_some() {
                    let result = on_request(&m);
                    self.send(&json!({"jsonrpc": "2.0", "id": m["id"], "result": result}));
                }
                self.seen.push(m);
                continue;
            }
            if m["id"] == json!(id) {
                return m;
            }
            self.seen.push(m);
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.call_with(method, params, |r| panic!("unexpected server request {r}"))
    }

    fn initialize(&mut self) -> Value {
        let r = self.call(
            "initialize",
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}},
                "clientInfo": {"name": "desktop", "version": "1"}
            }),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        r
    }

    /// Calls `fx__pid` until the upstream is connected; returns its pid.
    fn upstream_pid(&mut self) -> u32 {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self.call("tools/call", json!({"name": "fx__pid", "arguments": {}}));
            if let Some(text) = r.pointer("/result/content/0/text").and_then(Value::as_str)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "fx__pid never answered: {r}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn close(&mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "mcp-hub stdio did not exit after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for StdioClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes running the fixture binary whose parent is `pid`.
fn fixture_children(pid: u32) -> Vec<u32> {
    let fx = fixture();
    children(pid)
        .into_iter()
        .filter(|(c, state)| {
            *state != 'Z' && std::fs::read_link(format!("/proc/{c}/exe")).is_ok_and(|e| e == fx)
        })
        .map(|(c, _)| c)
        .collect()
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(extra_args: &[&str]) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servers.json");
    let mut args = vec![
        json!("--log"),
        json!(dir.path().join("fx.log").display().to_string()),
    ];
    args.extend(extra_args.iter().map(|a| json!(a)));
    let cfg =
        json!({"mcpServers": {"fx": {"command": fixture().display().to_string(), "args": args}}});
    std::fs::write(&config, cfg.to_string()).expect("config");
    std::fs::create_dir_all(dir.path().join("home")).expect("home");
    Setup { dir, config }
}

impl Setup {
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn client(&self, name: &str) -> StdioClient {
        StdioClient::start(
            &self.home(),
            &self.config,
            &self.dir.path().join(format!("{name}.err")),
        )
    }
}

#[test]
fn two_stdio_clients_share_one_hub_and_the_second_survives_the_first() {
    let s = setup(&[]);
    let mut a = s.client("a");
    let init = a.initialize();
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-hub", "{init}");
    let pid_a = a.upstream_pid();

    // The second client names the same config through another path: it still attaches.
    let other_name = s.dir.path().join(".").join("servers.json");
    let mut b = StdioClient::start(&s.home(), &other_name, &s.dir.path().join("b.err"));
    b.initialize();
    let pid_b = b.upstream_pid();
    assert_eq!(pid_a, pid_b, "both clients reach the same upstream process");
    assert_eq!(fixture_children(a.child.id()), vec![pid_a]);
    assert!(
        fixture_children(b.child.id()).is_empty(),
        "the second stdio process spawned its own upstream"
    );
    let b_log = std::fs::read_to_string(s.dir.path().join("b.err")).unwrap_or_default();
    assert!(b_log.contains("attached to the running hub"), "{b_log}");

    // The first client leaves: its hub stops, and the second resumes its session on a new one.
    assert!(a.close().success());
    assert!(
        wait_dead(pid_a, WAIT),
        "the first hub's upstream outlived it"
    );
    let pid_after = b.upstream_pid();
    assert_ne!(pid_after, pid_a);
    assert_eq!(fixture_children(b.child.id()), vec![pid_after]);
    let tools = b.call("tools/list", json!({}));
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "fx__echo")),
        "{tools}"
    );
    assert!(b.close().success());
    assert!(
        wait_dead(pid_after, WAIT),
        "an upstream outlived the last stdio process"
    );
}

#[test]
fn sampling_progress_and_cancellation_cross_the_stdio_door() {
    let s = setup(&[]);
    let mut c = s.client("c");
    c.initialize();
    c.upstream_pid();

    // Sampling: the upstream asks the client; the answer goes back through stdin.
    let mut asked = 0;
    let r = c.call_with(
        "tools/call",
        json!({"name": "fx__test_sampling", "arguments": {"prompt": "2+2?"}}),
        |req| {
            assert_eq!(req["method"], "sampling/createMessage", "{req}");
            asked += 1;
            json!({"role": "assistant", "model": "m", "content": {"type": "text", "text": "four"}})
        },
    );
    assert_eq!(asked, 1);
    assert_eq!(
        r.pointer("/result/content/0/text").and_then(Value::as_str),
        Some("LLM response: four"),
        "{r}"
    );

    // Progress with the client's own token.
    c.seen.clear();
    let r = c.call(
        "tools/call",
        json!({"name": "fx__test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "tok-1"}}),
    );
    assert!(r.get("result").is_some(), "{r}");
    let progress: Vec<&Value> = c
        .seen
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(
        !progress.is_empty(),
        "no progress reached stdout: {:?}",
        c.seen
    );
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok-1")
    );

    // Cancellation: a call that never ends is cancelled from stdin; the upstream hears of it.
    c.send(
        &json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call",
        "params": {"name": "fx__sleep", "arguments": {"ms": 600000}}}),
    );
    let log = s.dir.path().join("fx.log");
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"sleep\"")
    {
        assert!(
            Instant::now() < deadline,
            "the sleep call never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    c.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": "slow", "reason": "user"}}),
    );
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("notifications/cancelled")
    {
        assert!(
            Instant::now() < deadline,
            "the cancellation never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    // The session still works afterwards, and bad input is answered, not fatal.
    c.send(&json!("not a request"));
    c.stdin
        .as_mut()
        .unwrap()
        .write_all(b"{this is not json\n")
        .unwrap();
    let mut parse_errors = 0;
    let deadline = Instant::now() + WAIT;
    while parse_errors == 0 {
        let m = c.next(deadline);
        if m.pointer("/error/code") == Some(&json!(-32700)) {
            parse_errors += 1;
        }
    }
    let r = c.call(
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "<still here>"}}),
    );
    assert_eq!(
        r.pointer("/result/content/0/text"),
        Some(&json!("<still here>")),
        "{r}"
    );
    assert!(c.close().success());
}

#[test]
fn stdio_without_config_is_a_usage_error_and_writes_nothing_to_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin("mcp-hub"))
        .arg("stdio")
        .env("HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn stdio_attaches_to_a_hub_started_by_hand_for_the_same_config() {
    let hub = mcp_hub_tests::HubCmd::new()
        .config(
            "servers.json",
            &crate::config(&[("fx", crate::fixture_entry(&[]))]),
        )
        .start();
    hub.wait_status(&["fx"], "connected");
    let hub_pid = hub.server("fx")["pid"].as_u64().expect("pid") as u32;
    let home = hub.dir.path().join("home");
    // Named through a relative path from another directory: still the same files.
    let mut c = StdioClient::start(
        &home,
        &hub.dir
            .path()
            .join("..")
            .join(hub.dir.path().file_name().expect("name"))
            .join("servers.json"),
        &hub.dir.path().join("c.err"),
    );
    c.initialize();
    assert_eq!(
        c.upstream_pid(),
        hub_pid,
        "the stdio client reached the running hub's upstream"
    );
    assert!(
        fixture_children(c.child.id()).is_empty(),
        "it spawned its own upstream"
    );
    let sessions = hub.get("/api/health").json()["mcpEndpoint"]["activeClients"].clone();
    assert_eq!(
        sessions,
        json!(1),
        "the stdio client is one /mcp session of that hub"
    );
    assert!(c.close().success());
    // Its session ends with it.
    let deadline = Instant::now() + WAIT;
    while hub.get("/api/health").json()["mcpEndpoint"]["activeClients"] != json!(0) {
        assert!(
            Instant::now() < deadline,
            "the stdio client's session outlived it"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}
