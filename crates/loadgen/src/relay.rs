//! The floor a relay sits on: a bare Streamable HTTP → stdio relay with nothing but what any
//! relay shared by many clients must do, so the benchmark can tell the hub's own cost from the
//! machine's. It answers `initialize` itself, takes notifications with `202`, and forwards every
//! other request to one stdio child with its id swapped for one of its own (two clients may both
//! send id 1), matching the child's answer back to the waiting POST by that id and answering it
//! as `application/json` with the client's id put back.
//!
//! What it leaves out, and the hub pays for: sessions and their streams, routing a call by its
//! tool name and renaming it, the catalogue, progress and server→client requests, cancellation,
//! timeouts, metrics, auth, restarts. Its figures are a bound under any hub, not a competitor.

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcp_hub_protocol::RawValue;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use crate::error::LoadgenError;

type Waiters = Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>;

struct Relay {
    stdin: tokio::sync::Mutex<ChildStdin>,
    waiting: Waiters,
    next_id: AtomicU64,
}

/// The two members a relay reads of every message; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a str>,
}

/// Spawns `command` as the stdio upstream, initializes it, listens on 127.0.0.1:`port` (0: any)
/// and prints `listening on 127.0.0.1:PORT`; serves until killed.
pub(crate) async fn serve(port: u16, command: Vec<String>) -> Result<(), LoadgenError> {
    let upstream = Upstream::spawn(&command).await?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    upstream.run(listener).await
}

/// The stdio child behind the relay, initialized, with the task that reads its answers.
struct Upstream {
    child: tokio::process::Child,
    relay: Arc<Relay>,
    reader: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn spawn(command: &[String]) -> Result<Upstream, LoadgenError> {
        let (prog, args) = command
            .split_first()
            .ok_or_else(|| LoadgenError::Usage("relay needs a server command after --".into()))?;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LoadgenError::Process(format!("spawning {prog}: {e}")))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(LoadgenError::Process("no pipes to the child".into()));
        };
        let mut lines = BufReader::new(stdout);
        handshake(&mut stdin, &mut lines).await?;
        let relay = Arc::new(Relay {
            stdin: tokio::sync::Mutex::new(stdin),
            waiting: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        let reader = tokio::spawn(read_answers(lines, relay.clone()));
        Ok(Upstream {
            child,
            relay,
            reader,
        })
    }

    /// Serves HTTP on `listener` until the child ends.
    async fn run(self, listener: TcpListener) -> Result<(), LoadgenError> {
        let Upstream {
            mut child,
            relay,
            reader,
        } = self;
        let accept = async {
            loop {
                let (sock, _) = listener.accept().await?;
                let _ = sock.set_nodelay(true);
                let relay = relay.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(relay.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        };
        tokio::select! {
            r = accept => r,
            _ = reader => Err(LoadgenError::Process("the upstream closed its stdout".into())),
            s = child.wait() => Err(LoadgenError::Process(format!("the upstream exited: {s:?}"))),
        }
    }
}

async fn handshake(
    stdin: &mut ChildStdin,
    lines: &mut BufReader<ChildStdout>,
) -> Result<(), LoadgenError> {
    stdin
        .write_all(
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"relay-floor","version":"0"}}}
"#,
        )
        .await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Err(LoadgenError::Process(
                "the upstream closed before initialize".into(),
            ));
        }
        let head: Head<'_> = serde_json::from_slice(&line)
            .map_err(|e| LoadgenError::Protocol(format!("upstream: {e}")))?;
        if head.id.is_some_and(|id| id.get() == "0") && head.method.is_none() {
            break;
        }
    }
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await?;
    Ok(())
}

/// Hands each answer to the POST waiting for its id; anything else (notifications, requests
/// from the server) is dropped, which is one of the things the floor does not do.
async fn read_answers(mut lines: BufReader<ChildStdout>, relay: Arc<Relay>) {
    loop {
        let mut line = Vec::with_capacity(256);
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Ok(head) = serde_json::from_slice::<Head<'_>>(&line) else {
            continue;
        };
        if head.method.is_some() {
            continue;
        }
        let Some(id) = head.id.and_then(|id| id.get().parse::<u64>().ok()) else {
            continue;
        };
        let waiter = lock(&relay.waiting).remove(&id);
        if let Some(tx) = waiter {
            let _ = tx.send(line);
        }
    }
}

fn lock(w: &Waiters) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Vec<u8>>>> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn handle(
    relay: Arc<Relay>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        return Ok(status(StatusCode::METHOD_NOT_ALLOWED));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let Ok(head) = serde_json::from_slice::<Head<'_>>(&body) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let (Some(id), Some(method)) = (head.id, head.method) else {
        return Ok(status(StatusCode::ACCEPTED));
    };
    if method == "initialize" {
        let answer = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{{"protocolVersion":"2025-11-25","capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"relay-floor","version":"0"}}}}}}"#,
            id.get()
        );
        let mut resp = json(answer.into_bytes());
        resp.headers_mut()
            .insert("mcp-session-id", HeaderValue::from_static("floor"));
        return Ok(resp);
    }
    let ours = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let mut line = swap_id(&body, id, ours.to_string().as_bytes());
    // A JSON text's line breaks are whitespace outside strings (inside them they are escaped),
    // so blanking them keeps the message and makes it one line.
    for b in &mut line {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    line.push(b'\n');
    let (tx, rx) = oneshot::channel();
    lock(&relay.waiting).insert(ours, tx);
    if relay.stdin.lock().await.write_all(&line).await.is_err() {
        lock(&relay.waiting).remove(&ours);
        return Ok(status(StatusCode::BAD_GATEWAY));
    }
    let Ok(answer) = rx.await else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    let Ok(Head {
        id: Some(theirs), ..
    }) = serde_json::from_slice::<Head<'_>>(&answer)
    else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    let mut out = swap_id(&answer, theirs, id.get().as_bytes());
    while out.last().is_some_and(u8::is_ascii_whitespace) {
        out.pop();
    }
    Ok(json(out))
}

/// `text` with the bytes of `id` (a value borrowed from it) replaced by `with`.
fn swap_id(text: &[u8], id: &RawValue, with: &[u8]) -> Vec<u8> {
    let start = id.get().as_ptr() as usize - text.as_ptr() as usize;
    let end = start + id.get().len();
    let mut out = Vec::with_capacity(text.len() + with.len());
    out.extend_from_slice(&text[..start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&text[end..]);
    out
}

fn json(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = code;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Conn, collect, parse_url};

    /// A stdio server that answers `initialize`, then holds requests in pairs and answers each
    /// pair in reverse order, echoing the params: answers come back in another order than
    /// their requests went out.
    const REVERSING_SERVER: &str = r#"
import json, sys
held = []
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    if m["method"] == "initialize":
        print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": {}}), flush=True)
        continue
    held.append(m)
    if len(held) == 2:
        for r in reversed(held):
            print(json.dumps({"jsonrpc": "2.0", "id": r["id"], "result": r["params"]}), flush=True)
        held = []
"#;

    #[test]
    fn an_id_is_swapped_where_it_stands_and_nothing_else_moves() {
        let text = br#"{"jsonrpc":"2.0","id":"a\"b","method":"x","params":{"id":7}}"#;
        let head: Head<'_> = serde_json::from_slice(text).unwrap();
        let out = swap_id(text, head.id.unwrap(), b"42");
        assert_eq!(
            out,
            br#"{"jsonrpc":"2.0","id":42,"method":"x","params":{"id":7}}"#
        );
    }

    #[tokio::test]
    async fn two_clients_with_the_same_id_each_get_their_own_answer() {
        let command = ["python3", "-c", REVERSING_SERVER].map(String::from);
        let upstream = Upstream::spawn(&command).await.unwrap();
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let server = tokio::spawn(upstream.run(listener));
        let call = |text: &'static str| {
            let url = url.clone();
            async move {
                let (target, path) = parse_url(&url).await.unwrap();
                let mut conn = Conn::new(target);
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"text":"{text}"}}}}"#
                );
                let resp = conn
                    .send(
                        Method::POST,
                        &path,
                        &[(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        Bytes::from(body),
                    )
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                let v: serde_json::Value =
                    serde_json::from_slice(&collect(resp.into_body()).await.unwrap()).unwrap();
                (v["id"].clone(), v["result"]["text"].clone())
            }
        };
        let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            tokio::join!(call("first"), call("second"))
        })
        .await
        .expect("each POST is answered");
        assert_eq!(a, (serde_json::json!(1), serde_json::json!("first")));
        assert_eq!(b, (serde_json::json!(1), serde_json::json!("second")));
        server.abort();
    }
}
