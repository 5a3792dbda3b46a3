//! Test kit for the end-to-end tests: finds the built binaries, starts the hub on an ephemeral
//! port with temporary config and state directories, speaks plain HTTP/1.1 to it, and checks that
//! no child process outlives it. Blocking std code on purpose: the tests drive a separate process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/e2e-<hash> → target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    dir
}

/// A built binary of the workspace. Panics with the command to run when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The fixture MCP server.
pub fn fixture() -> PathBuf {
    bin("mcp-hub-fixture")
}

/// A running hub with its temporary directory. Killed (SIGKILL) on drop if still running.
pub struct Hub {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    stderr_log: PathBuf,
}

/// Builder for [`Hub`].
pub struct HubCmd {
    args: Vec<String>,
    configs: Vec<(String, String)>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Default for HubCmd {
    fn default() -> Self {
        Self::new()
    }
}

impl HubCmd {
    pub fn new() -> Self {
        HubCmd {
            args: vec![],
            configs: vec![],
            env: vec![],
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Adds a config file with this content (written into the temp dir under `name`).
    pub fn config(mut self, name: &str, content: &str) -> Self {
        self.configs.push((name.to_owned(), content.to_owned()));
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `mcp-hub --port 0 --config <each>` and waits for its listening line.
    pub fn start(self) -> Hub {
        let mut cmd = Command::new(bin("mcp-hub"));
        cmd.arg("--port").arg("0");
        for (name, content) in &self.configs {
            let p = self.dir.path().join(name);
            std::fs::write(&p, content).expect("write config");
            cmd.arg("--config").arg(p);
        }
        cmd.args(&self.args);
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        // Every file the hub writes (logs, workspace cache, tokens) goes under the temp dir.
        cmd.env("HOME", &home)
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_CONFIG_HOME", home.join("config"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.current_dir(self.dir.path());
        let stderr_log = self.dir.path().join("hub-stderr.log");
        let stderr = std::fs::File::create(&stderr_log).expect("stderr log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().expect("spawn mcp-hub");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().and_then(Result::ok).unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "mcp-hub printed no listening line; stderr:\n{}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            )
        });
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("bad listening line {line:?}: {e}"));
        let port = v["port"].as_u64().expect("port") as u16;
        // Keep draining stdout so the hub never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Hub {
            child,
            port,
            dir: self.dir,
            stderr_log,
        }
    }
}

impl Hub {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.port, "GET", path, &[], None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        request(
            self.port,
            "POST",
            path,
            &[],
            Some(body.to_string().as_bytes()),
        )
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Polls `f` every 50 ms until it returns `Some`, for at most `timeout`.
    pub fn wait_for<T>(&self, timeout: Duration, mut f: impl FnMut(&Hub) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?}; hub stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every listed server has the given status.
    pub fn wait_status(&self, servers: &[&str], status: &str) -> Value {
        self.wait_for(Duration::from_secs(30), |h| {
            let v = h.get("/api/servers").json();
            let all = servers.iter().all(|name| {
                v["servers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s["name"] == *name && s["status"] == status)
            });
            all.then_some(v)
        })
    }

    /// The server object of one server.
    pub fn server(&self, name: &str) -> Value {
        let v = self.get("/api/servers").json();
        v["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        self.wait_exit(Duration::from_secs(15))
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "hub did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether a process is alive (signal 0).
pub fn alive(pid: u32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    if rustix::process::test_kill_process(pid).is_err() {
        return false;
    }
    // A zombie still "exists"; treat it as dead only if /proc says so.
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())) {
        Ok(s) => !s
            .split(") ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until a process is gone.
pub fn wait_dead(pid: u32, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    !alive(pid)
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close`; reads the whole response (bounded by a 30 s
/// socket timeout).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    let has_ct = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !has_ct {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    if let Some(b) = body {
        s.write_all(b).expect("write body");
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        let end = (start + size).min(b.len());
        out.extend_from_slice(&b[start..end]);
        b = &b[(end + 2).min(b.len())..];
    }
    out
}

/// An open SSE stream (e.g. `/api/events`), read event by event.
pub struct EventStream {
    reader: BufReader<TcpStream>,
}

/// One SSE event.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: String,
    pub data: String,
}

impl EventStream {
    /// Opens `GET path` with `Accept: text/event-stream`.
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> EventStream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("write");
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("read head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        EventStream { reader }
    }

    /// The next event (skipping comments and chunk-size lines), or `None` on timeout/EOF.
    pub fn next_event(&mut self) -> Option<Event> {
        let mut event = String::new();
        let mut data = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if !data.is_empty() || !event.is_empty() {
                    return Some(Event {
                        event: std::mem::take(&mut event),
                        data: std::mem::take(&mut data),
                    });
                }
                continue;
            }
            if let Some(v) = l.strip_prefix("event:") {
                event = v.trim_start().to_owned();
            } else if let Some(v) = l.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
            // Chunk-size lines (hex) and comments are ignored.
        }
    }

    /// Reads events until one satisfies `f` (bounded by `max` events).
    pub fn find(&mut self, max: usize, mut f: impl FnMut(&Event) -> bool) -> Option<Event> {
        for _ in 0..max {
            let e = self.next_event()?;
            if f(&e) {
                return Some(e);
            }
        }
        None
    }
}

/// A minimal Streamable HTTP MCP client for the tests.
pub struct McpClient {
    pub port: u16,
    pub session: String,
    next_id: i64,
}

impl McpClient {
    /// Initializes a session on `/mcp`.
    pub fn connect(port: u16) -> McpClient {
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}});
        let r = request(
            port,
            "POST",
            "/mcp",
            &[("Accept", "application/json, text/event-stream")],
            Some(init.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "initialize: {}", r.text());
        let session = r.header("mcp-session-id").expect("session id").to_owned();
        let mut c = McpClient {
            port,
            session,
            next_id: 1,
        };
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = c.post(&note);
        assert_eq!(r.status, 202);
        c.next_id = 1;
        c
    }

    fn post(&mut self, body: &Value) -> Response {
        let s = self.session.clone();
        request(
            self.port,
            "POST",
            "/mcp",
            &[
                ("Accept", "application/json, text/event-stream"),
                ("Mcp-Session-Id", &s),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
            Some(body.to_string().as_bytes()),
        )
    }

    /// Sends a request and returns the JSON-RPC response (from a JSON or an SSE answer).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let r = self.post(
            &serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        );
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        let ct = r.header("content-type").unwrap_or_default().to_owned();
        if ct.starts_with("application/json") {
            return r.json();
        }
        // SSE: the last `data:` that is a response with our id.
        let text = r.text();
        text.split("\n\n")
            .filter_map(|ev| {
                let data: String = ev
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.trim_start())
                    .collect::<Vec<_>>()
                    .join("\n");
                serde_json::from_str::<Value>(&data).ok()
            })
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("no response to {method} in SSE body: {text}"))
    }
}
