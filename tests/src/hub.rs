//! The hub under test: `HubCmd` builds its config and state directories and starts it on an
//! ephemeral port; `Hub` waits for it, reads its state and checks no child outlives it.

use super::*;

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
