//! Client sessions over Streamable HTTP, legacy HTTP+SSE and the automatic choice between them,
//! against the reference `server-everything` (skipped when `MCP_HUB_SERVER_EVERYTHING` is unset)
//! and against a scripted in-process server.

use std::sync::Arc;
use std::time::Duration;

use mcp_hub_protocol::{ErrorCode, ErrorObject, Notification, RawValue, Request};
use mcp_hub_transport::{
    ClientSession, HttpSpec, RequestOptions, ServerRequestHandler, SessionOptions, TransportError,
    TransportSpec,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Answers `sampling/createMessage` with a canned assistant message; refuses everything else.
struct Sampler;

#[async_trait::async_trait]
impl ServerRequestHandler for Sampler {
    async fn handle(
        &self,
        request: Request,
        _attribution: mcp_hub_transport::Attribution,
    ) -> Result<Box<RawValue>, ErrorObject> {
        if request.method != "sampling/createMessage" {
            return Err(ErrorObject::new(
                ErrorCode::METHOD_NOT_FOUND,
                request.method,
            ));
        }
        let params: Value = request.params_as().unwrap_or_default();
        let prompt = params["messages"][0]["content"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(mcp_hub_protocol::to_raw(&json!({
            "role": "assistant",
            "content": {"type": "text", "text": format!("sampled<{prompt}>")},
            "model": "test-model",
            "stopReason": "endTurn",
        }))
        .unwrap())
    }
}

/// A running `server-everything`, killed at the end of the test (and on drop).
struct Everything {
    child: tokio::process::Child,
    port: u16,
}

impl Everything {
    async fn start(mode: &str) -> Option<Everything> {
        let Some(script) = std::env::var_os("MCP_HUB_SERVER_EVERYTHING") else {
            eprintln!("skipping: MCP_HUB_SERVER_EVERYTHING is not set");
            return None;
        };
        // Bind-and-release: racy in theory, fine for tests (a clash fails the test loudly).
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

    fn spec(&self, path: &str) -> HttpSpec {
        HttpSpec {
            name: "everything".into(),
            url: format!("http://127.0.0.1:{}{path}", self.port)
                .parse()
                .unwrap(),
            headers: vec![],
            auth: None,
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn options() -> SessionOptions {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("sampling".into(), json!({}));
    SessionOptions {
        capabilities,
        initialize_timeout: Duration::from_secs(15),
        request_timeout: Duration::from_secs(15),
        ..SessionOptions::default()
    }
}

async fn connect(spec: TransportSpec) -> ClientSession {
    let (session, _notifications) = tokio::time::timeout(
        Duration::from_secs(20),
        ClientSession::connect(spec, options(), Arc::new(Sampler)),
    )
    .await
    .expect("connect within 20 s")
    .expect("connect");
    session
}

async fn call(session: &ClientSession, tool: &str, args: Value, opts: RequestOptions) -> Value {
    let params = mcp_hub_protocol::to_raw(&json!({"name": tool, "arguments": args})).unwrap();
    let raw = session
        .request("tools/call", Some(params), opts)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    serde_json::from_str(raw.get()).unwrap()
}

/// tools/list, echo, a long-running call with progress and (when `sampling`) a server-to-client
/// sampling request, all over one session.
async fn exercise(session: &ClientSession, sampling: bool) {
    let raw = session
        .request("tools/list", None, RequestOptions::default())
        .await
        .unwrap();
    let tools: Value = serde_json::from_str(raw.get()).unwrap();
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");

    let echoed = call(
        session,
        "echo",
        json!({"message": "über"}),
        RequestOptions::default(),
    )
    .await;
    assert_eq!(echoed["content"][0]["text"], "Echo: über");

    let (tx, mut rx) = mpsc::channel::<Notification>(16);
    let args = json!({"duration": 0.3, "steps": 3});
    let params = mcp_hub_protocol::to_raw(&json!({
        "name": "trigger-long-running-operation",
        "arguments": args,
        "_meta": {"progressToken": "mine"},
    }))
    .unwrap();
    let opts = RequestOptions {
        related: Some(tx),
        ..RequestOptions::default()
    };
    session
        .request("tools/call", Some(params), opts)
        .await
        .unwrap();
    let mut progress = Vec::new();
    while let Ok(n) = rx.try_recv() {
        if n.method == "notifications/progress" {
            let p: Value = n.params_as().unwrap();
            assert_eq!(p["progressToken"], "mine");
            progress.push(p["progress"].as_f64().unwrap());
        }
    }
    assert_eq!(progress, vec![1.0, 2.0, 3.0]);

    if sampling {
        let sampled = call(
            session,
            "trigger-sampling-request",
            json!({"prompt": "hello"}),
            RequestOptions::default(),
        )
        .await;
        let text = sampled["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("sampled<"), "{text}");
    }
}

#[tokio::test]
async fn streamable_http_session_against_server_everything() {
    let Some(server) = Everything::start("streamableHttp").await else {
        return;
    };
    let session = connect(TransportSpec::StreamableHttp(server.spec("/mcp"))).await;
    assert_eq!(session.transport_kind(), "streamable-http");
    assert_eq!(session.protocol_version(), "2025-11-25");
    exercise(&session, true).await;
    session.close().await;
    assert!(!session.is_open());
    server.stop().await;
}

#[tokio::test]
async fn legacy_sse_session_against_server_everything() {
    let Some(server) = Everything::start("sse").await else {
        return;
    };
    let session = connect(TransportSpec::Sse(server.spec("/sse"))).await;
    assert_eq!(session.transport_kind(), "sse");
    exercise(&session, true).await;
    session.close().await;
    assert!(!session.is_open());
    server.stop().await;
}

#[tokio::test]
async fn http_prefers_streamable_and_falls_back_to_sse() {
    let Some(streamable) = Everything::start("streamableHttp").await else {
        return;
    };
    let session = connect(TransportSpec::Http(streamable.spec("/mcp"))).await;
    assert_eq!(session.transport_kind(), "streamable-http");
    session.close().await;
    streamable.stop().await;

    let Some(legacy) = Everything::start("sse").await else {
        return;
    };
    // POST /sse answers 404 there, which is the cue to try the legacy transport.
    let session = connect(TransportSpec::Http(legacy.spec("/sse"))).await;
    assert_eq!(session.transport_kind(), "sse");
    exercise(&session, false).await;
    session.close().await;
    legacy.stop().await;
}

/// A one-exchange-per-connection HTTP/1.1 server: initialize gets a session, the initialized
/// notification 202, the GET stream 405, and every later POST 404 (the session is gone).
async fn expiring_server() -> (url::Url, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body: Value =
                    serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or_default();
                let (status, extra, payload) = if head.starts_with("get ") {
                    (405, "", String::new())
                } else if body["method"] == "initialize" {
                    (
                        200,
                        "mcp-session-id: gone-soon\r\ncontent-type: application/json\r\n",
                        json!({"jsonrpc": "2.0", "id": body["id"], "result": {
                            "protocolVersion": "2025-11-25",
                            "capabilities": {"tools": {}},
                            "serverInfo": {"name": "expiring", "version": "1"},
                        }})
                        .to_string(),
                    )
                } else if body["method"] == "notifications/initialized" {
                    (202, "", String::new())
                } else {
                    (404, "", String::new())
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nconnection: close\r\n{extra}content-length: {}\r\n\r\n{payload}",
                    payload.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, task)
}

#[tokio::test]
async fn a_session_answered_with_404_is_closed_with_the_reason() {
    let (url, server) = expiring_server().await;
    let session = connect(TransportSpec::StreamableHttp(HttpSpec {
        name: "expiring".into(),
        url,
        headers: vec![],
        auth: None,
    }))
    .await;
    let err = session
        .request("tools/list", None, RequestOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("session expired (404)"), "{err}");
    let reason = tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .expect("the session closes");
    assert!(
        matches!(&reason, TransportError::Http(m) if m == "session expired (404)"),
        "{reason}"
    );
    assert!(!session.is_open());
    server.abort();
}
