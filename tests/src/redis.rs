//! A real `redis-server` on a loopback port for the cluster tests, stopped (and reaped) on drop.
//! `scripts/cluster-test.sh` installs Debian's package when it is missing; without the binary
//! the tests that need it skip, saying so.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Redis.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    pub port: u16,
    password: Option<String>,
    _dir: tempfile::TempDir,
}

/// The `redis-server` binary: `MCP_HUB_REDIS_SERVER`, else the first on `PATH` (Debian puts it
/// in /usr/bin).
pub fn redis_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MCP_HUB_REDIS_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("redis-server"))
            .find(|p| p.is_file())
    })
}

impl Redis {
    /// Starts Redis (with `requirepass` when `password` is given), or `None` with a message on
    /// stderr when there is no `redis-server` to run. A test that gets `None` returns early.
    pub fn start(password: Option<&str>) -> Option<Redis> {
        let Some(bin) = redis_server() else {
            eprintln!(
                "SKIP: no redis-server (install Debian's redis-server, or run scripts/cluster-test.sh, which does)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        // A port picked by the kernel, released, then given to Redis: another process could take
        // it in between, so a start that fails is retried on a new one.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let mut cmd = Command::new(&bin);
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(p) = password {
                cmd.args(["--requirepass", p]);
            }
            let mut child = cmd.spawn().expect("spawn redis-server");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if ping(port, password) {
                    return Some(Redis {
                        child,
                        port,
                        password: password.map(str::to_owned),
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    /// `redis://[:password@]127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Runs one command (RESP inline form, no spaces inside arguments) and returns Redis' raw
    /// answer.
    pub fn command(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect redis");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut out = String::new();
        if let Some(p) = &self.password {
            out.push_str(&format!("AUTH {p}\r\n"));
        }
        out.push_str(&args.join(" "));
        out.push_str("\r\nQUIT\r\n");
        s.write_all(out.as_bytes()).expect("write redis");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    }
}

fn ping(port: u16, password: Option<&str>) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(1))).ok();
    let cmd = match password {
        Some(p) => format!("AUTH {p}\r\nPING\r\nQUIT\r\n"),
        None => "PING\r\nQUIT\r\n".to_owned(),
    };
    if s.write_all(cmd.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("+PONG")
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
