//! Minimal MCP clients that behave like real ones on the wire: `initialize`, the session header
//! and protocol-version header, `notifications/initialized`, then requests. Three transports:
//! Streamable HTTP (POST /mcp, answers as JSON or SSE), legacy HTTP+SSE (GET stream with an
//! `endpoint` event, POST /messages, answers on the stream, correlated by id) and stdio.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use mcp_hub_protocol::sse::Decoder;
use mcp_hub_protocol::{
    LATEST_PROTOCOL_VERSION, MODERN_PROTOCOL_VERSION, Message, RawValue, Request, RequestId,
};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::LoadgenError;
use crate::http::{Conn, Target, collect, next_chunk, parse_url};

/// Largest SSE event accepted (a `tools/list` of 5,000 tools is well under this).
const MAX_EVENT_BYTES: usize = 64 << 20;
/// How long opening a session may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How the client reaches the server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum TransportKind {
    /// Streamable HTTP (MCP 2025-03-26 and later).
    Streamable,
    /// HTTP+SSE (MCP 2024-11-05; the Node hub's `/mcp`).
    Legacy,
    /// Newline-delimited JSON-RPC on a child process's stdin/stdout.
    Stdio,
    /// Streamable HTTP at the stateless 2026-07-28 revision: no `initialize`, no session;
    /// every request carries `_meta` and the `Mcp-Method`/`Mcp-Name` headers.
    Stateless,
}

/// A response and the moment it was decoded (before any trailing bytes were drained).
#[derive(Debug)]
pub(crate) struct Reply {
    pub msg: Message,
    pub at: Instant,
}

/// One open MCP session.
#[derive(Debug)]
pub(crate) enum Session {
    Streamable(Streamable),
    Legacy(Legacy),
    Stdio(Box<StdioSession>),
}

impl Session {
    /// Connects and runs the initialization handshake. `target` is the URL for HTTP
    /// transports and the command line for stdio.
    pub(crate) async fn open(
        kind: TransportKind,
        target: &[String],
    ) -> Result<Session, LoadgenError> {
        let fut = async {
            let mut s = match kind {
                TransportKind::Streamable => {
                    Session::Streamable(Streamable::new(url_of(target)?).await?)
                }
                TransportKind::Legacy => Session::Legacy(Legacy::connect(url_of(target)?).await?),
                TransportKind::Stdio => Session::Stdio(Box::new(StdioSession::spawn(target)?)),
                TransportKind::Stateless => {
                    let mut s = Streamable::new(url_of(target)?).await?;
                    s.stateless = true;
                    s.version = Some(HeaderValue::from_static(MODERN_PROTOCOL_VERSION));
                    return Ok(Session::Streamable(s));
                }
            };
            s.initialize().await?;
            Ok(s)
        };
        tokio::time::timeout(OPEN_TIMEOUT, fut)
            .await
            .map_err(|_| LoadgenError::Timeout("opening an MCP session".into()))?
    }

    async fn initialize(&mut self) -> Result<(), LoadgenError> {
        let params = mcp_hub_protocol::to_raw(&serde_json::json!({
            "protocolVersion": LATEST_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-hub-loadgen", "version": env!("CARGO_PKG_VERSION")},
        }))
        .map_err(|e| LoadgenError::Protocol(e.to_string()))?;
        let reply = self.request("initialize", Some(params)).await?;
        let Message::Response(r) = reply.msg else {
            return Err(LoadgenError::Protocol(format!(
                "initialize failed: {}",
                reply.msg
            )));
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InitResult {
            protocol_version: String,
        }
        let init: InitResult = serde_json::from_str(r.result.get())
            .map_err(|e| LoadgenError::Protocol(format!("initialize result: {e}")))?;
        if let Session::Streamable(s) = self {
            s.version = HeaderValue::from_str(&init.protocol_version).ok();
        }
        self.notify("notifications/initialized").await
    }

    /// Sends a request and waits for its response.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Reply, LoadgenError> {
        match self {
            Session::Streamable(s) => s.request(method, params).await,
            Session::Legacy(s) => s.request(method, params).await,
            Session::Stdio(s) => s.request(method, params).await,
        }
    }

    async fn notify(&mut self, method: &str) -> Result<(), LoadgenError> {
        let body = Message::notification(method, None).to_vec();
        match self {
            Session::Streamable(s) => s.post(body).await.map(drop),
            Session::Legacy(s) => s.post(body).await,
            Session::Stdio(s) => s.write(body).await,
        }
    }

    /// Ends the session politely (DELETE for Streamable HTTP, stdin EOF for stdio).
    pub(crate) async fn close(self) {
        match self {
            Session::Streamable(mut s) => {
                if let Some(h) = s.session_headers().first().cloned() {
                    let path = s.path.clone();
                    let _ = s.conn.send(Method::DELETE, &path, &[h], Bytes::new()).await;
                }
            }
            Session::Legacy(s) => s.reader.abort(),
            Session::Stdio(s) => s.shutdown().await,
        }
    }
}

fn url_of(target: &[String]) -> Result<&str, LoadgenError> {
    match target {
        [url] => Ok(url),
        _ => Err(LoadgenError::Usage(
            "an HTTP transport takes exactly one URL".into(),
        )),
    }
}

fn request_bytes(id: i64, method: &str, params: Option<Box<RawValue>>) -> Vec<u8> {
    Message::Request(Request {
        id: RequestId::from(id),
        method: method.to_owned(),
        params,
    })
    .to_vec()
}

fn is_reply_to(msg: &Message, id: i64) -> bool {
    matches!(msg, Message::Response(_) | Message::Error(_))
        && msg.id() == Some(&RequestId::from(id))
}

fn content_type(resp: &http::Response<Incoming>) -> &str {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl Session {
    /// The Streamable HTTP session inside, if it is one.
    pub(crate) fn into_streamable(self) -> Option<Streamable> {
        match self {
            Session::Streamable(s) => Some(s),
            _ => None,
        }
    }

    /// The Streamable HTTP session inside, if it is one.
    pub(crate) fn as_streamable(&self) -> Option<&Streamable> {
        match self {
            Session::Streamable(s) => Some(s),
            _ => None,
        }
    }
}

/// A Streamable HTTP session on one keep-alive connection.
#[derive(Debug)]
pub(crate) struct Streamable {
    conn: Conn,
    path: String,
    session: Option<HeaderValue>,
    version: Option<HeaderValue>,
    next_id: i64,
    /// 2026-07-28: `_meta` and routing headers on every request, no session.
    stateless: bool,
}

const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");

impl Streamable {
    async fn new(url: &str) -> Result<Streamable, LoadgenError> {
        let (target, path) = parse_url(url).await?;
        Ok(Streamable {
            conn: Conn::new(target),
            path,
            session: None,
            version: None,
            next_id: 1,
            stateless: false,
        })
    }

    /// Opens the session's standalone `GET` stream on its own keep-alive connection (which then
    /// carries nothing else); the returned `Conn` must live as long as the stream is read.
    pub(crate) async fn open_get_stream(&self) -> Result<(Incoming, Conn), LoadgenError> {
        get_stream(self.conn.sibling(), &self.path, self.session_headers()).await
    }

    /// Turns the session into its `GET` stream, on the connection that carried the handshake:
    /// one socket per session, as an idle client holds.
    pub(crate) async fn into_get_stream(self) -> Result<(Incoming, Conn), LoadgenError> {
        let headers = self.session_headers();
        get_stream(self.conn, &self.path, headers).await
    }

    fn session_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut h = Vec::with_capacity(2);
        if let Some(s) = &self.session {
            h.push((SESSION_HEADER, s.clone()));
        }
        if let Some(v) = &self.version {
            h.push((VERSION_HEADER, v.clone()));
        }
        h
    }

    async fn post(&mut self, body: Vec<u8>) -> Result<http::Response<Incoming>, LoadgenError> {
        self.post_with(body, Vec::new()).await
    }

    async fn post_with(
        &mut self,
        body: Vec<u8>,
        extra: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<http::Response<Incoming>, LoadgenError> {
        let mut headers = vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            ),
        ];
        headers.extend(self.session_headers());
        headers.extend(extra);
        let path = self.path.clone();
        let resp = self
            .conn
            .send(Method::POST, &path, &headers, Bytes::from(body))
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = collect(resp.into_body()).await.unwrap_or_default();
            return Err(LoadgenError::Http(format!(
                "POST {path}: {status}: {}",
                String::from_utf8_lossy(&text)
            )));
        }
        if self.session.is_none()
            && let Some(s) = resp.headers().get(SESSION_HEADER)
        {
            self.session = Some(s.clone());
        }
        Ok(resp)
    }

    async fn request(
        &mut self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Reply, LoadgenError> {
        let id = self.next_id;
        self.next_id += 1;
        let resp = if self.stateless {
            let (params, headers) = stateless_request(method, params)?;
            self.post_with(request_bytes(id, method, Some(params)), headers)
                .await?
        } else {
            self.post(request_bytes(id, method, params)).await?
        };
        if resp.status() == StatusCode::ACCEPTED {
            return Err(LoadgenError::Protocol(format!(
                "{method}: 202 without a response"
            )));
        }
        if content_type(&resp).starts_with("text/event-stream") {
            let mut body = resp.into_body();
            let mut dec = Decoder::new(MAX_EVENT_BYTES);
            let mut found = None;
            while let Some(chunk) = next_chunk(&mut body).await? {
                let events = dec
                    .feed(&chunk)
                    .map_err(|e| LoadgenError::Protocol(e.to_string()))?;
                for ev in events {
                    if found.is_some() || ev.data.is_empty() || ev.event_type() != "message" {
                        continue;
                    }
                    let msg = Message::from_str(&ev.data)
                        .map_err(|e| LoadgenError::Protocol(format!("SSE message: {e}")))?;
                    if is_reply_to(&msg, id) {
                        found = Some(Reply {
                            msg,
                            at: Instant::now(),
                        });
                    }
                }
                // The server ends the stream once it has sent every response it owes; reading to
                // the end keeps the connection reusable.
            }
            found.ok_or_else(|| {
                LoadgenError::Protocol(format!("{method}: SSE stream ended without a response"))
            })
        } else {
            let bytes = collect(resp.into_body()).await?;
            let at = Instant::now();
            let msg = Message::from_slice(&bytes)
                .map_err(|e| LoadgenError::Protocol(format!("{method}: {e}")))?;
            if !is_reply_to(&msg, id) {
                return Err(LoadgenError::Protocol(format!(
                    "{method}: reply to another id"
                )));
            }
            Ok(Reply { msg, at })
        }
    }
}

async fn get_stream(
    mut conn: Conn,
    path: &str,
    mut headers: Vec<(HeaderName, HeaderValue)>,
) -> Result<(Incoming, Conn), LoadgenError> {
    headers.push((
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    ));
    let resp = conn.send(Method::GET, path, &headers, Bytes::new()).await?;
    if resp.status() != StatusCode::OK || !content_type(&resp).starts_with("text/event-stream") {
        return Err(LoadgenError::Http(format!(
            "GET {path}: {} ({})",
            resp.status(),
            content_type(&resp)
        )));
    }
    Ok((resp.into_body(), conn))
}

type Headers = Vec<(HeaderName, HeaderValue)>;

/// A 2026-07-28 request's params (with `_meta`) and routing headers.
fn stateless_request(
    method: &str,
    params: Option<Box<RawValue>>,
) -> Result<(Box<RawValue>, Headers), LoadgenError> {
    let mut p: serde_json::Map<String, serde_json::Value> = match params {
        Some(p) => {
            serde_json::from_str(p.get()).map_err(|e| LoadgenError::Protocol(e.to_string()))?
        }
        None => serde_json::Map::new(),
    };
    p.insert(
        "_meta".into(),
        serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": MODERN_PROTOCOL_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "mcp-hub-loadgen", "version": env!("CARGO_PKG_VERSION")},
        }),
    );
    let mut headers = vec![(
        HeaderName::from_static("mcp-method"),
        HeaderValue::from_str(method).map_err(|e| LoadgenError::Protocol(e.to_string()))?,
    )];
    let name = p
        .get("name")
        .or_else(|| p.get("uri"))
        .and_then(serde_json::Value::as_str);
    if let Some(n) = name.and_then(|n| HeaderValue::from_str(n).ok()) {
        headers.push((HeaderName::from_static("mcp-name"), n));
    }
    let raw = mcp_hub_protocol::to_raw(&p).map_err(|e| LoadgenError::Protocol(e.to_string()))?;
    Ok((raw, headers))
}

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Reply>>>>;

fn lock(p: &Pending) -> MutexGuard<'_, HashMap<i64, oneshot::Sender<Reply>>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// An HTTP+SSE session: the GET stream (read by a task) and a second connection for POSTs.
#[derive(Debug)]
pub(crate) struct Legacy {
    post_conn: Conn,
    endpoint: String,
    pending: Pending,
    reader: JoinHandle<()>,
    next_id: i64,
}

impl Legacy {
    async fn connect(url: &str) -> Result<Legacy, LoadgenError> {
        let (target, path) = parse_url(url).await?;
        let mut get = Conn::new(target.clone());
        let resp = get
            .send(
                Method::GET,
                &path,
                &[(
                    header::ACCEPT,
                    HeaderValue::from_static("text/event-stream"),
                )],
                Bytes::new(),
            )
            .await?;
        if resp.status() != StatusCode::OK || !content_type(&resp).starts_with("text/event-stream")
        {
            return Err(LoadgenError::Http(format!(
                "GET {path}: {} {}",
                resp.status(),
                content_type(&resp)
            )));
        }
        let mut body = resp.into_body();
        let mut dec = Decoder::new(MAX_EVENT_BYTES);
        let endpoint = 'outer: loop {
            let Some(chunk) = next_chunk(&mut body).await? else {
                return Err(LoadgenError::Protocol(
                    "SSE stream ended before `endpoint`".into(),
                ));
            };
            let events = dec
                .feed(&chunk)
                .map_err(|e| LoadgenError::Protocol(e.to_string()))?;
            // Nothing can be pending before the first POST, so events after `endpoint` in the
            // same chunk carry nothing to wait for.
            if let Some(ev) = events.iter().find(|ev| ev.event_type() == "endpoint") {
                break 'outer endpoint_path(&target, &ev.data)?;
            }
        };
        let pending: Pending = Arc::default();
        let reader = tokio::spawn(read_stream(body, dec, pending.clone(), get));
        Ok(Legacy {
            post_conn: Conn::new(target),
            endpoint,
            pending,
            reader,
            next_id: 1,
        })
    }

    async fn post(&mut self, body: Vec<u8>) -> Result<(), LoadgenError> {
        let endpoint = self.endpoint.clone();
        let resp = self
            .post_conn
            .send(
                Method::POST,
                &endpoint,
                &[(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                Bytes::from(body),
            )
            .await?;
        let status = resp.status();
        let text = collect(resp.into_body()).await?;
        if !status.is_success() {
            return Err(LoadgenError::Http(format!(
                "POST {endpoint}: {status}: {}",
                String::from_utf8_lossy(&text)
            )));
        }
        Ok(())
    }

    async fn request(
        &mut self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Reply, LoadgenError> {
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if let Err(e) = self.post(request_bytes(id, method, params)).await {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        rx.await
            .map_err(|_| LoadgenError::Protocol(format!("{method}: SSE stream closed")))
    }
}

/// The endpoint event's data is a path (or, from some servers, an absolute URL on the same
/// origin).
fn endpoint_path(target: &Target, data: &str) -> Result<String, LoadgenError> {
    let data = data.trim();
    if data.starts_with('/') {
        return Ok(data.to_owned());
    }
    let rest = data
        .strip_prefix("http://")
        .ok_or_else(|| LoadgenError::Protocol(format!("unusable endpoint event: {data}")))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority != target.authority && !authority.ends_with(&format!(":{}", target.addr.port())) {
        return Err(LoadgenError::Protocol(format!(
            "endpoint on another origin: {data}"
        )));
    }
    Ok(if path.is_empty() {
        "/".into()
    } else {
        path.into()
    })
}

async fn read_stream(mut body: Incoming, mut dec: Decoder, pending: Pending, _conn: Conn) {
    // `_conn` keeps the GET connection's sender alive for as long as the stream is read.
    while let Ok(Some(chunk)) = next_chunk(&mut body).await {
        let Ok(events) = dec.feed(&chunk) else { break };
        let at = Instant::now();
        for ev in events {
            if ev.event_type() != "message" {
                continue;
            }
            let Ok(msg) = Message::from_str(&ev.data) else {
                continue;
            };
            let id = match msg.id() {
                Some(RequestId::Number(n))
                    if matches!(msg, Message::Response(_) | Message::Error(_)) =>
                {
                    *n
                }
                _ => continue,
            };
            if let Some(tx) = lock(&pending).remove(&id) {
                let _ = tx.send(Reply { msg, at });
            }
        }
    }
    // Dropping the senders wakes every waiting request with an error.
    lock(&pending).clear();
}

/// A child process spoken to over its stdin/stdout.
#[derive(Debug)]
pub(crate) struct StdioSession {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    line: String,
    next_id: i64,
}

impl StdioSession {
    pub(crate) fn spawn(cmd: &[String]) -> Result<StdioSession, LoadgenError> {
        let (prog, args) = cmd
            .split_first()
            .ok_or_else(|| LoadgenError::Usage("stdio needs a command".into()))?;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LoadgenError::Process(format!("spawning {prog}: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(LoadgenError::Process("child without pipes".into()));
        };
        Ok(StdioSession {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            line: String::new(),
            next_id: 1,
        })
    }

    async fn write(&mut self, mut body: Vec<u8>) -> Result<(), LoadgenError> {
        body.push(b'\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| LoadgenError::Process("stdin closed".into()))?;
        stdin.write_all(&body).await?;
        stdin.flush().await?;
        Ok(())
    }

    async fn request(
        &mut self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Reply, LoadgenError> {
        let id = self.next_id;
        self.next_id += 1;
        self.write(request_bytes(id, method, params)).await?;
        loop {
            self.line.clear();
            if self.stdout.read_line(&mut self.line).await? == 0 {
                return Err(LoadgenError::Process(format!(
                    "{method}: the child closed stdout"
                )));
            }
            let at = Instant::now();
            // Servers may print notifications or requests of their own in between.
            if let Ok(msg) = Message::from_str(self.line.trim_end())
                && is_reply_to(&msg, id)
            {
                return Ok(Reply { msg, at });
            }
        }
    }

    /// Closes stdin (MCP servers exit on EOF) and reaps the child, killing it after a second.
    pub(crate) async fn shutdown(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoint_forms() {
        let (t, _) = parse_url("http://127.0.0.1:4000/mcp").await.unwrap();
        assert_eq!(
            endpoint_path(&t, "/messages?sessionId=abc").unwrap(),
            "/messages?sessionId=abc"
        );
        assert_eq!(
            endpoint_path(&t, "http://127.0.0.1:4000/messages?sessionId=abc").unwrap(),
            "/messages?sessionId=abc"
        );
        assert_eq!(endpoint_path(&t, "http://localhost:4000/m").unwrap(), "/m");
        assert!(endpoint_path(&t, "http://evil.example/m").is_err());
        assert!(endpoint_path(&t, "messages").is_err());
    }

    #[test]
    fn replies_are_matched_by_id_and_kind() {
        let r = Message::from_str(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#).unwrap();
        assert!(is_reply_to(&r, 3));
        assert!(!is_reply_to(&r, 4));
        let q = Message::from_str(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).unwrap();
        assert!(
            !is_reply_to(&q, 3),
            "a server request with the same id is not a reply"
        );
        let s = Message::from_str(r#"{"jsonrpc":"2.0","id":"3","result":{}}"#).unwrap();
        assert!(!is_reply_to(&s, 3), "ids keep their type");
    }
}
