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
    /// With [`Redis::start_tls`]: the TLS port and the CA that signed the server certificate.
    pub tls: Option<(u16, PathBuf)>,
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
        Self::start_with(password, false)
    }

    /// [`Redis::start`] with a TLS port too (`rediss://`), its certificate (for 127.0.0.1)
    /// signed by a CA made for the test with the `openssl` command; `None`, saying so, when
    /// there is no `openssl` or this `redis-server` was built without TLS. The plain port stays
    /// open for the test's own [`Redis::command`]s.
    pub fn start_tls(password: Option<&str>) -> Option<Redis> {
        Self::start_with(password, true)
    }

    fn start_with(password: Option<&str>, tls: bool) -> Option<Redis> {
        let Some(bin) = redis_server() else {
            eprintln!(
                "SKIP: no redis-server (install Debian's redis-server, or run scripts/cluster-test.sh, which does)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = match tls {
            true => Some(make_certs(dir.path())?),
            false => None,
        };
        // A port picked by the kernel, released, then given to Redis: another process could take
        // it in between, so a start that fails is retried on a new one.
        for _ in 0..5 {
            let port = free_port();
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
            let tls_port = certs.as_ref().map(|_| free_port());
            if let Some(tls_port) = tls_port {
                let d = dir.path();
                cmd.args([
                    "--tls-port",
                    &tls_port.to_string(),
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(d.join("server.pem"))
                .arg("--tls-key-file")
                .arg(d.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(d.join("ca.pem"));
            }
            let mut child = cmd.spawn().expect("spawn redis-server");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let tls_up = tls_port.is_none_or(|p| TcpStream::connect(("127.0.0.1", p)).is_ok());
                if ping(port, password) && tls_up {
                    return Some(Redis {
                        child,
                        port,
                        password: password.map(str::to_owned),
                        tls: tls_port.map(|p| (p, dir.path().join("ca.pem"))),
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            if tls {
                eprintln!(
                    "SKIP: this redis-server does not start with --tls-port (built without TLS?)"
                );
                return None;
            }
        }
        panic!("redis-server did not start");
    }

    /// `rediss://[:password@]127.0.0.1:<TLS port>` (after [`Redis::start_tls`]).
    pub fn tls_url(&self) -> String {
        let (port, _) = self.tls.as_ref().expect("started with TLS");
        match &self.password {
            Some(p) => format!("rediss://:{p}@127.0.0.1:{port}"),
            None => format!("rediss://127.0.0.1:{port}"),
        }
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 it signed (`server.pem`,
/// `server.key`) in `dir`, made with the `openssl` command; `None`, saying so, without it.
fn make_certs(dir: &std::path::Path) -> Option<()> {
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .ok()?;
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=mcp-hub test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP: no openssl command to make a test certificate");
            return None;
        }
    }
    Some(())
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
