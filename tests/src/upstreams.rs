//! Upstreams for fault tests: `FaultyHttp` misbehaves on purpose (500s, resets, hangs, echoes),
//! `HttpFixture` is the fixture server over Streamable HTTP.

use super::*;

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
