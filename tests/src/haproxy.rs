//! A real HAProxy (Debian's `haproxy`) in front of cluster replicas, for the cluster tests:
//! round robin, health checks on `/api/health`, no buffering of SSE. Stopped on drop. Without the
//! binary the tests that want it skip, saying so (`scripts/cluster-test.sh` installs it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running HAProxy.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn haproxy_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MCP_HUB_HAPROXY") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The configuration `examples/cluster/haproxy.cfg` is made from: the balancer on `port`, one
/// `server` line per replica.
pub fn config(port: u16, replicas: &[u16]) -> String {
    let mut cfg = format!(
        "global\n  maxconn 2000\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n  timeout http-request 30s\n  retries 2\n  option redispatch\n\nfrontend mcp\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\nbackend replicas\n  balance roundrobin\n  option httpchk GET /api/health\n  default-server inter 200ms fall 1 rise 2 observe layer4 error-limit 1 on-error mark-down\n"
    );
    for (i, p) in replicas.iter().enumerate() {
        cfg.push_str(&format!("  server r{i} 127.0.0.1:{p} check\n"));
    }
    cfg
}

impl Haproxy {
    /// Starts HAProxy in front of `replicas`, or `None` (with a message) without the binary.
    pub fn start(replicas: &[u16]) -> Option<Haproxy> {
        let Some(bin) = haproxy_bin() else {
            eprintln!(
                "SKIP: no haproxy (install Debian's haproxy, or run scripts/cluster-test.sh, which does)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let cfg = dir.path().join("haproxy.cfg");
            std::fs::write(&cfg, config(port, replicas)).expect("write haproxy.cfg");
            // -db: foreground, no daemon, so the test owns (and reaps) the process.
            let mut child = Command::new(&bin)
                .arg("-db")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn haproxy");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if let Ok(r) = crate::try_request(
                    port,
                    "GET",
                    "/api/health",
                    &[],
                    None,
                    Duration::from_secs(2),
                ) && r.status == 200
                {
                    return Some(Haproxy {
                        child,
                        port,
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("haproxy did not start");
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
