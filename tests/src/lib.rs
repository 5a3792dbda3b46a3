//! Test kit for the end-to-end tests: finds the built binaries, starts the hub on an ephemeral
//! port with temporary config and state directories, speaks plain HTTP/1.1 to it, and checks that
//! no child process outlives it. Blocking std code on purpose: the tests drive a separate process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod events;
pub mod haproxy;
pub mod legacy;
pub mod node_hub;
pub mod oauth_server;
pub mod redis;
mod sse;

pub use sse::{Event, EventStream};

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/e2e-<hash> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
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
#[derive(Debug)]
pub struct Hub {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    stderr_log: PathBuf,
    /// With [`HubCmd::stderr_unread`]: the read end of the hub's stderr, held open and never read.
    _stderr_pipe: Option<std::process::ChildStderr>,
}

/// Builder for [`Hub`].
#[derive(Debug)]
pub struct HubCmd {
    port: u16,
    args: Vec<String>,
    configs: Vec<(String, String)>,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    stderr_unread: bool,
    nofile: Option<u64>,
}

impl Default for HubCmd {
    fn default() -> Self {
        Self::new()
    }
}

impl HubCmd {
    pub fn new() -> Self {
        HubCmd {
            port: 0,
            args: vec![],
            configs: vec![],
            env: vec![],
            dir: tempfile::tempdir().expect("tempdir"),
            stderr_unread: false,
            nofile: None,
        }
    }

    /// Gives the hub a stderr pipe that nobody reads (as a launcher that ignores its child's
    /// stderr would): once the pipe buffer is full, every write to it blocks.
    pub fn stderr_unread(mut self) -> Self {
        self.stderr_unread = true;
        self
    }

    /// Runs the hub with this file-descriptor limit (soft and hard, via the shell's `ulimit`).
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
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

    /// Listen on this port instead of a free one (`--port 0`).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| (*s).to_owned()));
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
        let mut cmd = match self.nofile {
            Some(n) => {
                // `exec` keeps the hub's pid the child's pid.
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin("mcp-hub"));
                c
            }
            None => Command::new(bin("mcp-hub")),
        };
        cmd.arg("--port").arg(self.port.to_string());
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
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        if self.stderr_unread {
            cmd.stderr(Stdio::piped());
        } else {
            cmd.stderr(stderr);
        }
        let mut child = cmd.spawn().expect("spawn mcp-hub");
        let stderr_pipe = child.stderr.take();
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
            _stderr_pipe: stderr_pipe,
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
        self.wait_status_within(servers, status, Duration::from_secs(30))
    }

    /// [`Hub::wait_status`] with an explicit bound.
    pub fn wait_status_within(&self, servers: &[&str], status: &str, timeout: Duration) -> Value {
        self.wait_for(timeout, |h| {
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
    /// Kills the hub with SIGKILL (no drain, no cleanup) and reaps it.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

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

/// Parses a raw HTTP/1.1 response (headers, then a plain or chunked body).
pub fn parse_response(raw: &[u8]) -> Response {
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

/// A minimal Streamable HTTP MCP client for the tests.
#[derive(Debug)]
pub struct McpClient {
    pub port: u16,
    /// The endpoint: `/mcp`, or a profile's `/mcp/<name>`.
    pub path: String,
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
            path: "/mcp".into(),
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
            &self.path,
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

// ---------------------------------------------------------------------------------------------
// Reliability helpers (faults, security and soak tests): non-panicking requests, process
// accounting from /proc, and a misbehaving HTTP upstream.

impl Hub {
    /// The hub's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file the hub writes under its temporary state directory.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("home/state/mcp-hub/logs/mcp-hub.log")
    }

    /// Calls a tool through the REST API (`POST /api/servers/tools`).
    pub fn call_tool(&self, server: &str, tool: &str, arguments: Value) -> Response {
        self.post(
            "/api/servers/tools",
            &serde_json::json!({"server_name": server, "tool": tool, "arguments": arguments}),
        )
    }
}

/// Like [`request`], but every failure (connect, write, read, timeout, malformed head) is an
/// `Err` instead of a panic, and the socket timeout is the caller's.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    // A caller's own Host header (DNS-rebinding probes) replaces the default one.
    let mut req = if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n")
    } else {
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n")
    };
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    if let Some(b) = body {
        s.write_all(b).map_err(|e| format!("write body: {e}"))?;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(format!(
            "incomplete response ({} bytes): {}",
            raw.len(),
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        ));
    }
    Ok(parse_response(&raw))
}

/// The JSON-RPC messages of a `/mcp` POST answer, whether it came as JSON or as an SSE stream.
pub fn jsonrpc_messages(r: &Response) -> Vec<Value> {
    let ct = r.header("content-type").unwrap_or_default();
    if ct.starts_with("application/json") {
        return match serde_json::from_slice::<Value>(&r.body) {
            Ok(Value::Array(a)) => a,
            Ok(v) => vec![v],
            Err(_) => vec![],
        };
    }
    let text = r.text();
    text.split("\n\n")
        .filter_map(|ev| {
            let data: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if data.is_empty() {
                return None;
            }
            serde_json::from_str::<Value>(&data.join("\n")).ok()
        })
        .collect()
}

impl McpClient {
    /// Initializes a session on `/mcp` with extra headers on every request (e.g.
    /// `Authorization`). Errors instead of panicking, so tests can probe refusals.
    pub fn try_connect(port: u16, headers: &[(&str, &str)]) -> Result<McpClient, Response> {
        Self::try_connect_at(port, "/mcp", headers)
    }

    /// Like [`McpClient::try_connect`] on another endpoint (a profile's `/mcp/<name>`).
    pub fn try_connect_at(
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<McpClient, Response> {
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}});
        let mut h = vec![("Accept", "application/json, text/event-stream")];
        h.extend_from_slice(headers);
        let r = request(port, "POST", path, &h, Some(init.to_string().as_bytes()));
        let Some(session) = r.header("mcp-session-id").map(str::to_owned) else {
            return Err(r);
        };
        if r.status != 200 {
            return Err(r);
        }
        let c = McpClient {
            port,
            path: path.to_owned(),
            session,
            next_id: 1,
        };
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = c
            .send(&note, headers, Duration::from_secs(30))
            .map_err(|e| Response {
                status: 0,
                headers: vec![],
                body: e.into_bytes(),
            })?;
        if r.status != 202 {
            return Err(r);
        }
        Ok(c)
    }

    /// A client for an existing session id (e.g. one whose handshake a test did by hand).
    pub fn resume(port: u16, session: &str) -> McpClient {
        McpClient {
            port,
            path: "/mcp".into(),
            session: session.to_owned(),
            next_id: 1_000_000,
        }
    }

    /// Posts one JSON-RPC message on this session with extra headers; never panics.
    pub fn send(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response, String> {
        let mut h = vec![
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", self.session.as_str()),
            ("MCP-Protocol-Version", "2025-11-25"),
        ];
        h.extend_from_slice(headers);
        try_request(
            self.port,
            "POST",
            &self.path,
            &h,
            Some(body.to_string().as_bytes()),
            timeout,
        )
    }

    /// Sends a request with an id of the caller's choosing and returns the one JSON-RPC message
    /// answering it (result or error), or a description of what went wrong instead.
    pub fn try_call_id(
        &self,
        id: Value,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let r = self.send(&body, &[], timeout)?;
        let answers: Vec<Value> = jsonrpc_messages(&r)
            .into_iter()
            .filter(|m| m["id"] == id && (m.get("result").is_some() || m.get("error").is_some()))
            .collect();
        match answers.len() {
            1 => Ok(answers.into_iter().next().unwrap_or_default()),
            0 if r.status >= 400 => Err(format!("HTTP {}: {}", r.status, r.text())),
            n => Err(format!(
                "{n} answers to id {id} (HTTP {}): {}",
                r.status,
                r.text()
            )),
        }
    }

    /// Like [`McpClient::call`] without panicking; ids are allocated by the client.
    pub fn try_call(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.try_call_id(Value::from(id), method, params, timeout)
    }

    /// Ends the session with `DELETE /mcp`; returns the HTTP status.
    pub fn delete(&self, headers: &[(&str, &str)]) -> u16 {
        let mut h = vec![("Mcp-Session-Id", self.session.as_str())];
        h.extend_from_slice(headers);
        try_request(
            self.port,
            "DELETE",
            &self.path,
            &h,
            None,
            Duration::from_secs(10),
        )
        .map(|r| r.status)
        .unwrap_or(0)
    }
}

/// Resident set size of a process in KiB (`VmRSS`), `None` once it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Number of open file descriptors of a process.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// `(pid, state)` of every process whose parent is `pid` (state is the `/proc/<pid>/stat` letter:
/// `Z` for a zombie).
pub fn children(pid: u32) -> Vec<(u32, char)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| {
        let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut fields = rest.split(' ');
        let state = fields.next()?.chars().next()?;
        let ppid: u32 = fields.next()?.parse().ok()?;
        (ppid == pid).then_some((child, state))
    })
    .collect()
}

/// What a [`FaultyHttp`] upstream does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers every request with `500 Internal Server Error` and a small body.
    Status500,
    /// Reads a few bytes, then closes with unread data pending: the kernel sends a TCP reset.
    Reset,
    /// Accepts and reads, never answers (the client's timeout must fire).
    Hang,
    /// Answers every request with `404` and Express's error page, which quotes the request
    /// target (path and query): `Cannot POST /mcp?key=…`.
    EchoPath,
}

/// A misbehaving HTTP upstream on an ephemeral loopback port. Serves until dropped; counts the
/// connections it accepted.
#[derive(Debug)]
pub struct FaultyHttp {
    pub port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FaultyHttp {
    pub fn start(fault: Fault) -> FaultyHttp {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (a, st) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded by the owner: the loop ends when the FaultyHttp is dropped.
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        a.fetch_add(1, Ordering::Relaxed);
                        conn.set_nonblocking(false).ok();
                        conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                        let st = st.clone();
                        std::thread::spawn(move || serve_fault(&mut conn, fault, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FaultyHttp {
            port,
            accepted,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for FaultyHttp {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn serve_fault(conn: &mut TcpStream, fault: Fault, stop: &std::sync::atomic::AtomicBool) {
    let mut buf = [0u8; 16];
    match fault {
        Fault::Reset => {
            // Read less than the request: closing with unread bytes makes the kernel send RST.
            let _ = conn.read(&mut buf);
            std::thread::sleep(Duration::from_millis(20));
        }
        Fault::Hang => {
            let mut sink = [0u8; 4096];
            let start = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(120)
            {
                match conn.read(&mut sink) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        Fault::Status500 | Fault::EchoPath => {
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            // Serve keep-alive requests one after another until the client goes away.
            for _ in 0..1000 {
                let mut len = 0usize;
                let mut line = String::new();
                let mut request_line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if request_line.is_empty() {
                        request_line = line.trim_end().to_owned();
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len.min(1 << 20)];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let mut parts = request_line.split(' ');
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let (status, msg) = match fault {
                    Fault::EchoPath => (
                        "404 Not Found",
                        format!("<pre>Cannot {method} {target}</pre>").into_bytes(),
                    ),
                    _ => ("500 Internal Server Error", b"upstream exploded".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    msg.len()
                );
                if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&msg).is_err() {
                    return;
                }
            }
        }
    }
}

/// A fixture server speaking Streamable HTTP on loopback (`mcp-hub-fixture --http PORT`), killed
/// on drop. `port` 0 picks a free port.
#[derive(Debug)]
pub struct HttpFixture {
    pub child: Child,
    pub port: u16,
}

impl HttpFixture {
    pub fn start(port: u16, args: &[&str]) -> HttpFixture {
        let mut child = Command::new(fixture())
            .arg("--http")
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fixture --http");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("fixture --http printed {line:?}")
            });
        std::thread::spawn(move || for _ in lines {});
        HttpFixture { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        self.kill();
    }
}
