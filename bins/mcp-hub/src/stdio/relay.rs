//! The relay between one stdio MCP client (newline-delimited JSON-RPC on stdin/stdout) and one
//! Streamable HTTP session on a hub's `/mcp`.
//!
//! Every message the client writes is POSTed in order: the next one leaves only once the hub has
//! answered the previous POST's head, so a `notifications/cancelled` can never overtake the
//! request it cancels. Response bodies (JSON, or SSE streams carrying progress, logs and
//! server→client requests such as sampling, elicitation and roots) are read concurrently and
//! every message they carry goes to stdout. A GET stream carries what is not tied to a call.
//!
//! When the hub goes away (its process ended, or it forgot the session) the relay reports
//! [`Outcome::HubLost`]; the caller finds or starts another hub and calls [`Relay::run`] again,
//! which initializes a new session with the client's original `initialize` parameters, so the
//! client keeps its session. Requests in flight at the loss are answered with an error.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_hub_core::protocol::sse;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::stream::{MAX_EVENT, StreamReader};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Largest JSON body accepted from the hub.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How long the hub may take to answer a POST's head (the body may stream for much longer).
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the relay sends its session.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// The hub's bearer token, if it wants one.
    pub(crate) token: Option<String>,
}

/// Why [`Relay::run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The client closed stdin: the session is over.
    ClientClosed,
    /// The hub went away; the message that could not be delivered is kept for the next run.
    HubLost,
}

pub(super) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Failure of one exchange with the hub.
enum SendError {
    /// Nobody answers, or the hub no longer knows the session.
    Lost(String),
}

struct Session {
    id: Option<String>,
    version: Option<String>,
}

/// The relay's state across hubs.
pub(crate) struct Relay {
    http: HttpClient,
    out: mpsc::Sender<Bytes>,
    /// The client's `initialize` request, replayed on a new hub.
    init: Option<Value>,
    /// A message read from stdin but not delivered when the hub went away.
    held: Option<Value>,
    /// Ids (as JSON text) of client requests whose response has not been written yet.
    in_flight: Arc<Mutex<HashSet<String>>>,
    next_internal: u64,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn id_key(v: &Value) -> Option<String> {
    v.get("id").map(Value::to_string)
}

fn is_request(v: &Value) -> bool {
    v.get("method").is_some() && v.get("id").is_some_and(|id| !id.is_null())
}

/// A JSON-RPC error answering the request whose id is `id` (JSON text).
pub(crate) fn error_line(id: Option<&str>, code: i64, message: &str) -> Bytes {
    let id: Value = id
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let v = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    Bytes::from(v.to_string())
}

/// One message as one stdout line. Raw CR/LF can only be insignificant whitespace in valid JSON
/// (inside strings they must be escaped), so replacing them keeps the message and the framing.
pub(super) fn one_line(s: &str) -> Bytes {
    if s.contains(['\n', '\r']) {
        Bytes::from(s.replace(['\n', '\r'], " "))
    } else {
        Bytes::copy_from_slice(s.as_bytes())
    }
}

impl Relay {
    pub(crate) fn new(out: mpsc::Sender<Bytes>) -> Relay {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Relay {
            http: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            out,
            init: None,
            held: None,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            next_internal: 0,
        }
    }

    /// Relays between the client and the hub at `target` until the client leaves or the hub is
    /// lost. `lost_hub` fires when the caller knows the hub is gone (its own in-process hub
    /// stopped).
    pub(crate) async fn run(
        &mut self,
        target: &Target,
        input: &mut mpsc::Receiver<Value>,
        lost_hub: CancellationToken,
    ) -> Outcome {
        let cancel = lost_hub.child_token();
        // Ends this session's background streams whatever the outcome.
        let _stop = cancel.clone().drop_guard();
        let mut session = Session {
            id: None,
            version: None,
        };
        // Lost while the client's own `initialize` was on its way: that one is sent again as is.
        let init_held = self
            .held
            .as_ref()
            .is_some_and(|m| m.get("method").and_then(Value::as_str) == Some("initialize"));
        if self.init.is_some() && !init_held {
            if let Err(SendError::Lost(e)) = self.reinitialize(target, &mut session).await {
                tracing::warn!(target: "mcp_hub::stdio", "cannot resume the session on {}: {e}", target.base);
                return Outcome::HubLost;
            }
            self.open_get_stream(target, &session, &cancel);
        }
        loop {
            let msg = match self.held.take() {
                Some(m) => m,
                None => tokio::select! {
                    m = input.recv() => match m {
                        Some(m) => m,
                        None => {
                            self.close(target, &session).await;
                            return Outcome::ClientClosed;
                        }
                    },
                    _ = cancel.cancelled() => return self.lost(),
                },
            };
            let is_init = msg.get("method").and_then(Value::as_str) == Some("initialize");
            if is_init && session.id.is_some() {
                // A second initialize on a live session: the hub answers it with an error.
            } else if is_init {
                self.init = Some(msg.clone());
            }
            let initialized =
                msg.get("method").and_then(Value::as_str) == Some("notifications/initialized");
            match self.deliver(target, &mut session, &msg, &cancel).await {
                Ok(()) => {
                    if initialized {
                        self.open_get_stream(target, &session, &cancel);
                    }
                }
                Err(SendError::Lost(e)) => {
                    tracing::warn!(target: "mcp_hub::stdio", "lost the hub at {}: {e}", target.base);
                    self.held = Some(msg);
                    return self.lost();
                }
            }
        }
    }

    /// Fails every request in flight (their answers died with the hub) and reports the loss.
    pub(crate) fn lost(&mut self) -> Outcome {
        let ids: Vec<String> = lock(&self.in_flight).drain().collect();
        for id in ids {
            let _ = self.out.try_send(error_line(
                Some(&id),
                -32603,
                "The hub serving this request went away before answering; the request may be retried",
            ));
        }
        Outcome::HubLost
    }

    fn request(
        &self,
        target: &Target,
        session: &Session,
        method: Method,
        body: Option<Bytes>,
    ) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method.clone())
            .uri(format!("{}/mcp", target.base));
        b = if method == Method::POST {
            b.header(header::ACCEPT, "application/json, text/event-stream")
                .header(header::CONTENT_TYPE, "application/json")
        } else {
            b.header(header::ACCEPT, "text/event-stream")
        };
        if let Some(t) = &target.token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(id) = &session.id {
            b = b.header(SESSION_HEADER, id);
        }
        if let Some(v) = &session.version {
            b = b.header(VERSION_HEADER, v);
        }
        b.body(Full::new(body.unwrap_or_default()))
            .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<http::Response<Incoming>, SendError> {
        match tokio::time::timeout(HEAD_TIMEOUT, self.http.request(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(SendError::Lost(e.to_string())),
            Err(_) => Err(SendError::Lost(format!(
                "no answer within {HEAD_TIMEOUT:?}"
            ))),
        }
    }

    /// POSTs one client message and arranges for everything the hub answers to reach stdout.
    async fn deliver(
        &mut self,
        target: &Target,
        session: &mut Session,
        msg: &Value,
        cancel: &CancellationToken,
    ) -> Result<(), SendError> {
        let request_id = is_request(msg).then(|| id_key(msg)).flatten();
        if let Some(id) = &request_id {
            lock(&self.in_flight).insert(id.clone());
        }
        let body = Bytes::from(msg.to_string());
        let req = self.request(target, session, Method::POST, Some(body));
        let resp = match self.send(req).await {
            Ok(r) => r,
            Err(e) => {
                if let Some(id) = &request_id {
                    lock(&self.in_flight).remove(id);
                }
                return Err(e);
            }
        };
        let status = resp.status();
        if status == StatusCode::NOT_FOUND && session.id.is_some() {
            if let Some(id) = &request_id {
                lock(&self.in_flight).remove(id);
            }
            return Err(SendError::Lost(
                "the hub no longer knows this session".into(),
            ));
        }
        if let Some(sid) = header(resp.headers(), SESSION_HEADER)
            && session.id.is_none()
        {
            session.id = Some(sid);
        }
        if is_sse(resp.headers()) {
            let ids: Vec<String> = request_id.into_iter().collect();
            self.spawn_stream(target, session, resp.into_body(), ids, cancel);
            return Ok(());
        }
        let bytes = match read_body(resp.into_body()).await {
            Ok(b) => b,
            Err(e) => {
                if let Some(id) = &request_id {
                    lock(&self.in_flight).remove(id);
                    let _ = self
                        .out
                        .send(error_line(
                            Some(id),
                            -32603,
                            &format!("reading the hub's answer: {e}"),
                        ))
                        .await;
                }
                return Ok(());
            }
        };
        if status == StatusCode::ACCEPTED || bytes.iter().all(u8::is_ascii_whitespace) {
            if let Some(id) = &request_id
                && lock(&self.in_flight).remove(id)
            {
                // A request must get an answer; the hub gave none.
                let _ = self
                    .out
                    .send(error_line(
                        Some(id),
                        -32603,
                        &format!("the hub answered HTTP {status} without a body"),
                    ))
                    .await;
            }
            return Ok(());
        }
        let answer = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => v,
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes);
                let text: String = text.chars().take(300).collect();
                json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32603, "message": format!("HTTP {status}: {text}")}})
            }
        };
        if msg.get("method").and_then(Value::as_str) == Some("initialize")
            && let Some(v) = answer
                .pointer("/result/protocolVersion")
                .and_then(Value::as_str)
        {
            session.version = Some(v.to_owned());
        }
        self.write_answer(answer, request_id.as_deref()).await;
        Ok(())
    }

    /// Writes a JSON answer. An HTTP-level error carries `id: null`; it is given the id of the
    /// request it answers, so the client does not wait forever.
    async fn write_answer(&self, mut answer: Value, request_id: Option<&str>) {
        if let Some(id) = request_id {
            if answer.get("error").is_some() && answer.get("id").is_none_or(Value::is_null) {
                answer["id"] = serde_json::from_str(id).unwrap_or(Value::Null);
            }
            lock(&self.in_flight).remove(id);
        }
        let _ = self.out.send(Bytes::from(answer.to_string())).await;
    }

    fn spawn_stream(
        &self,
        target: &Target,
        session: &Session,
        body: Incoming,
        ids: Vec<String>,
        cancel: &CancellationToken,
    ) {
        let reader = StreamReader {
            http: self.http.clone(),
            out: self.out.clone(),
            in_flight: self.in_flight.clone(),
            resume: self.request(target, session, Method::GET, None),
        };
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = reader.follow(body, ids) => {}
            }
        });
    }

    fn open_get_stream(&self, target: &Target, session: &Session, cancel: &CancellationToken) {
        let reader = StreamReader {
            http: self.http.clone(),
            out: self.out.clone(),
            in_flight: self.in_flight.clone(),
            resume: self.request(target, session, Method::GET, None),
        };
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                lost = reader.standing() => if lost { cancel.cancel() },
            }
        });
    }

    /// Starts a new session on another hub with the client's original `initialize`.
    async fn reinitialize(
        &mut self,
        target: &Target,
        session: &mut Session,
    ) -> Result<(), SendError> {
        let Some(mut init) = self.init.clone() else {
            return Ok(());
        };
        self.next_internal += 1;
        init["id"] = json!(format!("mcp-hub-stdio-resume-{}", self.next_internal));
        let req = self.request(
            target,
            session,
            Method::POST,
            Some(Bytes::from(init.to_string())),
        );
        let resp = self.send(req).await?;
        if !resp.status().is_success() {
            return Err(SendError::Lost(format!(
                "initialize answered {}",
                resp.status()
            )));
        }
        session.id = header(resp.headers(), SESSION_HEADER);
        let sse = is_sse(resp.headers());
        let bytes = read_body(resp.into_body()).await.map_err(SendError::Lost)?;
        let answer = if sse {
            let mut dec = sse::Decoder::new(MAX_EVENT);
            dec.feed(&bytes)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
                .find(|v| v.get("result").is_some() || v.get("error").is_some())
                .unwrap_or(Value::Null)
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        let Some(version) = answer
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
        else {
            return Err(SendError::Lost(format!("initialize failed: {answer}")));
        };
        session.version = Some(version.to_owned());
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let req = self.request(
            target,
            session,
            Method::POST,
            Some(Bytes::from(note.to_string())),
        );
        let resp = self.send(req).await?;
        let _ = read_body(resp.into_body()).await;
        tracing::info!(target: "mcp_hub::stdio", "session resumed on the hub at {}", target.base);
        // The new hub's lists may differ from what the client saw.
        for m in [
            "notifications/tools/list_changed",
            "notifications/resources/list_changed",
            "notifications/prompts/list_changed",
        ] {
            let _ = self
                .out
                .send(Bytes::from(
                    json!({"jsonrpc": "2.0", "method": m}).to_string(),
                ))
                .await;
        }
        Ok(())
    }

    /// Ends the session on the hub (best effort).
    async fn close(&self, target: &Target, session: &Session) {
        if session.id.is_none() {
            return;
        }
        let req = self.request(target, session, Method::DELETE, None);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.http.request(req)).await;
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

pub(super) fn is_sse(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

async fn read_body(body: Incoming) -> Result<Bytes, String> {
    http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_lines_never_carry_raw_newlines() {
        let s = "{\"a\":\n 1,\r\n \"b\": \"x\\ny\"}";
        let line = one_line(s);
        assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["b"], "x\ny");
    }

    #[test]
    fn errors_answer_the_request_by_its_id() {
        let v: Value = serde_json::from_slice(&error_line(Some("\"abc\""), -1, "m")).unwrap();
        assert_eq!(v["id"], "abc");
        let v: Value = serde_json::from_slice(&error_line(Some("7"), -1, "m")).unwrap();
        assert_eq!(v["id"], 7);
        let v: Value = serde_json::from_slice(&error_line(None, -1, "m")).unwrap();
        assert!(v["id"].is_null());
    }
}
