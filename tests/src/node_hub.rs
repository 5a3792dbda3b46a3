//! The Node `mcp-hub` 4.2.1 as a peer, for side-by-side comparisons on the same config. It runs
//! only when `MCP_HUB_NODE_HUB` (its `dist/cli.js`, installed by `scripts/setup-test-peers.sh`)
//! is set; `scripts/loopback-only.cjs` keeps it on 127.0.0.1 (it binds every interface
//! otherwise).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Response, request, try_request};

/// A running Node hub. Stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct NodeHub {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// The Node hub's entry script, or `None` (the caller skips) when it is not installed.
pub fn node_hub_script() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("MCP_HUB_NODE_HUB")?);
    p.exists().then_some(p)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl NodeHub {
    /// Starts `node <script> --port <port> --config <each> <args>` with its own HOME and XDG
    /// directories, and waits until its health says `ready`.
    pub fn start(
        script: &Path,
        port: u16,
        configs: &[PathBuf],
        args: &[&str],
        env: &[(&str, String)],
    ) -> NodeHub {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repo")
            .to_path_buf();
        let node = std::env::var_os("MCP_HUB_NODE22").unwrap_or_else(|| "node".into());
        let mut cmd = Command::new(node);
        cmd.arg(script).arg("--port").arg(port.to_string());
        for c in configs {
            cmd.arg("--config").arg(c);
        }
        cmd.args(args)
            .env("HOME", &home)
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env(
                "NODE_OPTIONS",
                format!(
                    "--require={}",
                    repo.join("scripts/loopback-only.cjs").display()
                ),
            )
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn the Node hub");
        let hub = NodeHub { child, port, dir };
        let start = Instant::now();
        loop {
            let ready = try_request(
                port,
                "GET",
                "/api/health",
                &[],
                None,
                Duration::from_secs(5),
            )
            .ok()
            .filter(|r| r.status == 200)
            .is_some_and(|r| r.json()["state"] == "ready");
            if ready {
                return hub;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the Node hub did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.port, "GET", path, &[], None)
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> Response {
        request(
            self.port,
            "POST",
            path,
            &[],
            Some(body.to_string().as_bytes()),
        )
    }
}

impl Drop for NodeHub {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
