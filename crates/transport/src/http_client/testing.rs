//! A scripted HTTP/1.1 server on 127.0.0.1:0 and a launcher for the reference
//! `server-everything`, for the transports' unit tests.

use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// What the fake server answers. Every connection is closed after one exchange, so the
/// client never reuses one.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The body is ended by closing the connection (an SSE stream); otherwise it has a
    /// `Content-Length`.
    pub(crate) streaming: bool,
    /// For a streaming reply: keep the connection open after the body until the server
    /// stops, instead of dropping it.
    pub(crate) hold: bool,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            streaming: false,
            hold: false,
        }
    }

    pub(crate) fn json(status: u16, body: &str) -> Reply {
        Reply::status(status)
            .header("content-type", "application/json")
            .body(body)
    }

    pub(crate) fn sse(body: &str, hold: bool) -> Reply {
        Reply {
            streaming: true,
            hold,
            ..Reply::status(200)
                .header("content-type", "text/event-stream")
                .body(body)
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn body(mut self, body: &str) -> Reply {
        self.body = body.as_bytes().to_vec();
        self
    }
}

type Handler = Box<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A scripted server; stops (dropping held streams) when dropped.
pub(crate) struct FakeServer {
    pub(crate) url: url::Url,
    seen: std::sync::Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FakeServer {
    pub(crate) async fn start(
        path: &str,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let handler: std::sync::Arc<Handler> = std::sync::Arc::new(Box::new(handler));
        let (s, st) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = listener.accept() => c,
                    () = st.cancelled() => return,
                };
                let Ok((sock, _)) = conn else { return };
                let (handler, seen, stop) = (handler.clone(), s.clone(), st.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = serve(sock, &**handler, &seen, &stop) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        FakeServer {
            url: format!("http://{addr}{path}").parse().unwrap(),
            seen,
            stop,
        }
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(
    mut sock: TcpStream,
    handler: &(dyn Fn(&Seen) -> Reply + Send + Sync),
    seen: &Mutex<Vec<Seen>>,
    stop: &CancellationToken,
) {
    let mut buf = Vec::new();
    let Some(head_end) = read_head(&mut sock, &mut buf).await else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let req = Seen {
        method,
        path,
        headers,
        body,
    };
    seen.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    let mut out = format!(
        "HTTP/1.1 {} Scripted\r\nconnection: close\r\n",
        reply.status
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !reply.streaming {
        out.push_str(&format!("content-length: {}\r\n", reply.body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&reply.body);
    if sock.write_all(&bytes).await.is_err() {
        return;
    }
    let _ = sock.flush().await;
    if reply.streaming && reply.hold {
        stop.cancelled().await;
    }
}

/// Reads into `buf` until it holds a request head; the head's length (with its blank line), or
/// `None` when the connection ends first.
pub(crate) async fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(p + 4);
        }
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A running `server-everything` in HTTP mode, killed when dropped.
pub(crate) struct Everything {
    child: tokio::process::Child,
    pub(crate) port: u16,
}

impl Everything {
    /// Starts `node $MCP_HUB_SERVER_EVERYTHING <mode>` on a free loopback port, or `None`
    /// (with the reason printed) when the peer is not installed.
    pub(crate) async fn start(mode: &str) -> Option<Everything> {
        let Some(script) = std::env::var_os("MCP_HUB_SERVER_EVERYTHING") else {
            eprintln!("skipping: MCP_HUB_SERVER_EVERYTHING is not set");
            return None;
        };
        // Bind-and-release: another process could take the port in between; acceptable in
        // tests since the server fails loudly and the test then fails to connect.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new("node")
            .arg(script)
            .arg(mode)
            .env("PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be on PATH when MCP_HUB_SERVER_EVERYTHING is set");
        let server = Everything { child, port };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server-everything did not listen on port {port} within 10 s");
    }

    pub(crate) fn url(&self, path: &str) -> url::Url {
        format!("http://127.0.0.1:{}{path}", self.port)
            .parse()
            .unwrap()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
