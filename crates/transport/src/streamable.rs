//! The Streamable HTTP client wire (MCP 2025-03-26 … 2025-11-25): one POST per message, JSON or
//! SSE answers, the optional GET stream, session ids, resumption with `Last-Event-ID`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use mcp_hub_protocol::{
    ErrorCode, ErrorObject, Incoming, Message, RequestId, methods, sse::Event as SseEvent,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http_client::{self, SseReader, Upstream};
use crate::wire::{INBOUND_CAPACITY, Inbound, InboundItem, Wire, WireParts};
use crate::{HttpSpec, SessionOptions, TransportError};

const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Reconnection delay when the server did not send `retry:`.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// Ceiling of the backoff between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Consecutive fruitless reconnections after which a stream is given up.
const MAX_RECONNECTS: u32 = 6;
/// A GET stream that lived this long counts as healthy even if it carried nothing.
const HEALTHY_STREAM: Duration = Duration::from_secs(30);
/// How long `close` waits for the DELETE.
const DELETE_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepares a Streamable HTTP connection. Nothing is sent until the engine's first `send`
/// (the `initialize` request), so a server that does not speak Streamable HTTP is detected there.
pub(crate) async fn open_streamable(
    spec: &HttpSpec,
    opts: &SessionOptions,
) -> Result<WireParts, TransportError> {
    let upstream = Upstream::new(spec)?;
    let (tx, rx) = mpsc::channel(INBOUND_CAPACITY);
    let shared = Arc::new(Shared {
        upstream,
        max_message_bytes: opts.max_message_bytes,
        initialize_timeout: opts.initialize_timeout,
        request_timeout: opts.request_timeout,
        state: Mutex::new(State::default()),
        inbound: Mutex::new(Some(tx)),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    Ok(WireParts {
        wire: Arc::new(StreamableWire { shared }),
        inbound: rx,
    })
}

#[derive(Debug)]
struct StreamableWire {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    upstream: Upstream,
    max_message_bytes: usize,
    initialize_timeout: Duration,
    request_timeout: Duration,
    state: Mutex<State>,
    /// Taken on close or on a fatal error, so that the engine's receiver ends.
    inbound: Mutex<Option<mpsc::Sender<InboundItem>>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

#[derive(Debug, Default)]
struct State {
    session_id: Option<HeaderValue>,
    protocol_version: Option<HeaderValue>,
    initialize_id: Option<RequestId>,
    get_stream_started: bool,
    /// Why the wire is dead, once it is.
    ended: Option<TransportError>,
}

/// How one response stream ended.
enum StreamEnd {
    /// The response to the originating request arrived.
    Answered,
    /// The body ended or broke; resumable if an event id was seen.
    Dropped,
    /// The wire is closing or dead; stop everything.
    Stop,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (plain fields).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sender(&self) -> Option<mpsc::Sender<InboundItem>> {
        self.inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Session and version headers for every request after `initialize`.
    fn session_headers(&self, headers: &mut HeaderMap) -> bool {
        let state = self.state();
        if let Some(v) = &state.protocol_version {
            headers.insert(MCP_PROTOCOL_VERSION, v.clone());
        }
        match &state.session_id {
            Some(id) => {
                headers.insert(MCP_SESSION_ID, id.clone());
                true
            }
            None => false,
        }
    }

    /// Pushes one message to the engine; false when nobody listens any more.
    async fn push(&self, msg: Message, origin: Option<RequestId>) -> bool {
        self.observe(&msg, origin.as_ref());
        let Some(tx) = self.sender() else {
            return false;
        };
        tokio::select! {
            r = tx.send(Ok(Inbound { msg, origin })) => r.is_ok(),
            () = self.cancel.cancelled() => false,
        }
    }

    /// Learns the negotiated protocol version from the `initialize` result as it passes by.
    fn observe(&self, msg: &Message, origin: Option<&RequestId>) {
        let Message::Response(resp) = msg else {
            return;
        };
        let mut state = self.state();
        if state.initialize_id.as_ref() != Some(&resp.id) || origin != Some(&resp.id) {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Negotiated {
            #[serde(rename = "protocolVersion")]
            protocol_version: String,
        }
        if let Ok(n) = serde_json::from_str::<Negotiated>(resp.result.get())
            && let Ok(v) = HeaderValue::from_str(&n.protocol_version)
        {
            state.protocol_version = Some(v);
        }
    }

    /// Ends the wire with `err`: the engine gets it as the last inbound item.
    async fn fatal(&self, err: TransportError) {
        self.state().ended.get_or_insert_with(|| err.clone());
        let tx = self
            .inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.cancel.cancel();
        if let Some(tx) = tx {
            // The engine may be busy; do not wait for it forever.
            let _ = tx.send_timeout(Err(err), Duration::from_secs(5)).await;
        }
    }

    fn session_expired() -> TransportError {
        TransportError::Http("session expired (404)".into())
    }

    /// Sends a request, unless the wire is closing.
    async fn exchange(
        &self,
        method: Method,
        headers: &HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<http::Response<hyper::body::Incoming>, TransportError> {
        tokio::select! {
            r = self.upstream.exchange(method, &self.upstream.url, headers, body, timeout) => r,
            () = self.cancel.cancelled() => Err(self.ended()),
        }
    }

    fn ended(&self) -> TransportError {
        self.state().ended.clone().unwrap_or(TransportError::Closed)
    }

    async fn sleep(&self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.cancel.cancelled() => false,
        }
    }

    /// Decodes one event's data and pushes the messages it holds. Returns whether the response
    /// to `origin` was among them, or `None` when the wire is gone.
    async fn deliver(&self, event: &SseEvent, origin: Option<&RequestId>) -> Option<bool> {
        if event.event_type() != "message" || event.data.is_empty() {
            // Priming events and unknown event types carry no JSON-RPC message.
            return Some(false);
        }
        let msgs = match Incoming::from_slice(event.data.as_bytes()) {
            Ok(Incoming::Single(m)) => vec![m],
            Ok(Incoming::Batch(ms)) => ms,
            Err(e) => {
                tracing::warn!(server = %self.upstream.name, error = %e, "dropping an undecodable SSE message");
                return Some(false);
            }
        };
        let mut answered = false;
        for msg in msgs {
            answered |= is_answer(&msg, origin);
            if !self.push(msg, origin.cloned()).await {
                return None;
            }
        }
        Some(answered)
    }

    /// Pumps one SSE body into the inbound channel until it ends, the response to `origin`
    /// arrives, or the wire closes. Keeps `cursor` up to date for resumption.
    async fn pump(
        &self,
        reader: &mut SseReader,
        origin: Option<&RequestId>,
        cursor: &mut Cursor,
    ) -> StreamEnd {
        loop {
            let next = tokio::select! {
                n = reader.next() => n,
                () = self.cancel.cancelled() => return StreamEnd::Stop,
            };
            if let Some(id) = reader.last_event_id() {
                cursor.last_event_id = Some(id.to_owned());
            }
            if let Some(retry) = reader.retry() {
                cursor.retry = Some(retry);
            }
            match next {
                Ok(Some(event)) => {
                    cursor.progressed = true;
                    match self.deliver(&event, origin).await {
                        None => return StreamEnd::Stop,
                        Some(true) => return StreamEnd::Answered,
                        Some(false) => {}
                    }
                }
                Ok(None) => return StreamEnd::Dropped,
                Err(e @ TransportError::Protocol(_)) => {
                    // An oversized event: the stream cannot be trusted past this point.
                    tracing::warn!(server = %self.upstream.name, error = %e, "dropping SSE stream");
                    return StreamEnd::Dropped;
                }
                Err(e) => {
                    tracing::debug!(server = %self.upstream.name, error = %e, "SSE stream broke");
                    return StreamEnd::Dropped;
                }
            }
        }
    }

    /// GET with `Accept: text/event-stream` (and `Last-Event-ID` when resuming).
    async fn open_get(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<http::Response<hyper::body::Incoming>, TransportError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, EVENT_STREAM);
        self.session_headers(&mut headers);
        if let Some(id) = last_event_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert(LAST_EVENT_ID, id);
        }
        self.exchange(Method::GET, &headers, Bytes::new(), self.request_timeout)
            .await
    }

    /// Reads the SSE answer to a POSTed request; if it drops before the response, resumes it
    /// with GET + `Last-Event-ID` (bounded attempts, bounded total time). When it cannot be
    /// resumed, the request is failed with a JSON-RPC error rather than left to time out.
    async fn read_post_stream(&self, mut reader: SseReader, origin: Option<RequestId>) {
        let deadline = Instant::now() + self.request_timeout.saturating_mul(10);
        let mut cursor = Cursor::default();
        let mut failures = 0;
        loop {
            match self.pump(&mut reader, origin.as_ref(), &mut cursor).await {
                StreamEnd::Answered | StreamEnd::Stop => return,
                StreamEnd::Dropped => {}
            }
            let Some(id) = origin.clone() else {
                // Not a request: nothing is owed on this stream.
                return;
            };
            loop {
                if std::mem::take(&mut cursor.progressed) {
                    failures = 0;
                }
                failures += 1;
                let Some(last) = cursor.last_event_id.clone() else {
                    return self
                        .abandon(id, "stream ended before the response (not resumable)")
                        .await;
                };
                if failures > MAX_RECONNECTS || Instant::now() >= deadline {
                    return self
                        .abandon(id, "stream ended before the response; resumption failed")
                        .await;
                }
                if !self.sleep(cursor.delay(failures)).await {
                    return;
                }
                match self.open_get(Some(&last)).await {
                    Ok(resp) if resp.status().is_success() && is_event_stream(&resp) => {
                        reader = SseReader::new(resp.into_body(), self.max_message_bytes);
                        break;
                    }
                    Ok(resp) if resp.status() == StatusCode::NOT_FOUND && self.has_session() => {
                        return self.fatal(Shared::session_expired()).await;
                    }
                    Ok(resp) if resp.status() == StatusCode::METHOD_NOT_ALLOWED => {
                        return self.abandon(id, "stream ended before the response; the server does not support resumption").await;
                    }
                    Ok(resp) => {
                        tracing::debug!(server = %self.upstream.name, status = %resp.status(), "resumption refused");
                    }
                    Err(e @ (TransportError::Unauthorized(_) | TransportError::Auth(_))) => {
                        return self.fatal(e).await;
                    }
                    Err(TransportError::Closed) => return,
                    Err(e) => {
                        tracing::debug!(server = %self.upstream.name, error = %e, "resumption failed");
                    }
                }
            }
        }
    }

    fn has_session(&self) -> bool {
        self.state().session_id.is_some()
    }

    /// Fails a request whose response stream is lost for good.
    async fn abandon(&self, id: RequestId, why: &str) {
        tracing::warn!(server = %self.upstream.name, request = %id, "{why}");
        let error = ErrorObject::new(ErrorCode::INTERNAL_ERROR, format!("upstream {why}"));
        self.push(Message::error(Some(id.clone()), error), Some(id))
            .await;
    }

    /// The standalone GET stream for server-initiated messages, kept open with bounded
    /// reconnection until the wire closes.
    async fn run_get_stream(&self) {
        let mut cursor = Cursor::default();
        let mut failures: u32 = 0;
        loop {
            match self.open_get(cursor.last_event_id.as_deref()).await {
                Ok(resp) if resp.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    tracing::debug!(server = %self.upstream.name, "no GET stream offered (405)");
                    return;
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND && self.has_session() => {
                    return self.fatal(Shared::session_expired()).await;
                }
                Ok(resp) if resp.status() == StatusCode::CONFLICT => {
                    tracing::debug!(server = %self.upstream.name, "GET stream refused (409)");
                    return;
                }
                Ok(resp) if resp.status().is_success() => {
                    if !is_event_stream(&resp) {
                        tracing::debug!(server = %self.upstream.name, "GET answered without an event stream");
                        return;
                    }
                    let opened = Instant::now();
                    let mut reader = SseReader::new(resp.into_body(), self.max_message_bytes);
                    if let StreamEnd::Stop = self.pump(&mut reader, None, &mut cursor).await {
                        return;
                    }
                    if std::mem::take(&mut cursor.progressed) || opened.elapsed() >= HEALTHY_STREAM
                    {
                        failures = 0;
                    }
                }
                Ok(resp) => {
                    tracing::debug!(server = %self.upstream.name, status = %resp.status(), "GET stream refused");
                }
                Err(e @ (TransportError::Unauthorized(_) | TransportError::Auth(_))) => {
                    return self.fatal(e).await;
                }
                Err(TransportError::Closed) => return,
                Err(e) => {
                    tracing::debug!(server = %self.upstream.name, error = %e, "GET stream failed");
                }
            }
            failures += 1;
            if failures > MAX_RECONNECTS {
                tracing::warn!(server = %self.upstream.name, "giving up on the GET stream after repeated failures");
                return;
            }
            if !self.sleep(cursor.delay(failures)).await {
                return;
            }
        }
    }

    fn start_get_stream(self: &Arc<Self>) {
        {
            let mut state = self.state();
            if state.get_stream_started {
                return;
            }
            state.get_stream_started = true;
        }
        let this = self.clone();
        self.tasks.spawn(async move { this.run_get_stream().await });
    }

    /// Handles a 2xx answer to a POSTed request.
    async fn accept_answer(
        self: &Arc<Self>,
        resp: http::Response<hyper::body::Incoming>,
        origin: Option<RequestId>,
    ) -> Result<(), TransportError> {
        if resp.status() == StatusCode::ACCEPTED {
            return Ok(());
        }
        let media = http_client::media_type(resp.headers());
        match media.as_str() {
            "text/event-stream" => {
                let reader = SseReader::new(resp.into_body(), self.max_message_bytes);
                let this = self.clone();
                self.tasks
                    .spawn(async move { this.read_post_stream(reader, origin).await });
                Ok(())
            }
            "application/json" => {
                let this = self.clone();
                self.tasks.spawn(async move {
                    let read = tokio::select! {
                        r = http_client::read_body(resp.into_body(), this.max_message_bytes) => r,
                        () = this.cancel.cancelled() => return,
                    };
                    let msgs = read.and_then(|body| {
                        Incoming::from_slice(&body).map_err(|e| TransportError::Protocol(e.to_string()))
                    });
                    match msgs {
                        Ok(Incoming::Single(m)) => {
                            this.push(m, origin).await;
                        }
                        Ok(Incoming::Batch(ms)) => {
                            for m in ms {
                                if !this.push(m, origin.clone()).await {
                                    return;
                                }
                            }
                        }
                        Err(e) => match origin {
                            Some(id) => this.abandon(id, &format!("sent an unreadable response: {e}")).await,
                            None => tracing::warn!(server = %this.upstream.name, error = %e, "unreadable response"),
                        },
                    }
                });
                Ok(())
            }
            _ if origin.is_none() => Ok(()),
            other => Err(TransportError::Protocol(format!(
                "unexpected response content type {other:?} to a request"
            ))),
        }
    }
}

/// Where a stream can be resumed from.
#[derive(Debug, Default)]
struct Cursor {
    last_event_id: Option<String>,
    retry: Option<Duration>,
    /// Whether any event arrived since the last reconnection.
    progressed: bool,
}

impl Cursor {
    /// The server's `retry` (or the default), doubled per consecutive failure, capped.
    fn delay(&self, failures: u32) -> Duration {
        let base = self.retry.unwrap_or(DEFAULT_RETRY);
        base.saturating_mul(1 << failures.saturating_sub(1).min(5))
            .min(MAX_BACKOFF.max(base))
    }
}

fn is_event_stream(resp: &http::Response<hyper::body::Incoming>) -> bool {
    http_client::media_type(resp.headers()) == "text/event-stream"
}

/// Whether `msg` is the response (success or error) to `origin`.
fn is_answer(msg: &Message, origin: Option<&RequestId>) -> bool {
    match (msg, origin) {
        (Message::Response(_) | Message::Error(_), Some(origin)) => msg.id() == Some(origin),
        _ => false,
    }
}

#[async_trait::async_trait]
impl Wire for StreamableWire {
    async fn send(&self, msg: Message) -> Result<(), TransportError> {
        let shared = &self.shared;
        if shared.cancel.is_cancelled() {
            return Err(shared.ended());
        }
        let (origin, is_initialize) = match &msg {
            Message::Request(r) => (Some(r.id.clone()), r.method == methods::INITIALIZE),
            _ => (None, false),
        };
        let is_initialized = msg.method() == Some(methods::INITIALIZED);
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, ACCEPT_BOTH);
        headers.insert(header::CONTENT_TYPE, JSON);
        let with_session = if is_initialize {
            shared.state().initialize_id = origin.clone();
            false
        } else {
            shared.session_headers(&mut headers)
        };
        let timeout = if is_initialize {
            shared.initialize_timeout
        } else if origin.is_some() {
            // A JSON-answering server sends the head only with the result, so the head may take
            // as long as the request itself (the engine's hard maximum is 10 × its timeout).
            shared.request_timeout.saturating_mul(10)
        } else {
            shared.request_timeout
        };
        let body = Bytes::from(msg.to_vec());
        let resp = shared
            .exchange(Method::POST, &headers, body, timeout)
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND && with_session {
            shared.fatal(Shared::session_expired()).await;
            return Err(Shared::session_expired());
        }
        if !status.is_success() {
            return Err(http_client::status_error(resp).await);
        }
        if is_initialize && let Some(id) = resp.headers().get(MCP_SESSION_ID) {
            shared.state().session_id = Some(id.clone());
        }
        shared.accept_answer(resp, origin).await?;
        if is_initialized {
            shared.start_get_stream();
        }
        Ok(())
    }

    async fn close(&self) {
        let shared = &self.shared;
        let session = {
            let mut state = shared.state();
            if state.ended.is_some() && shared.cancel.is_cancelled() {
                None
            } else {
                state.ended.get_or_insert(TransportError::Closed);
                state.session_id.clone()
            }
        };
        shared.cancel.cancel();
        drop(
            shared
                .inbound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        shared.tasks.close();
        if session.is_some() {
            let mut headers = HeaderMap::new();
            shared.session_headers(&mut headers);
            let delete = shared.upstream.exchange(
                Method::DELETE,
                &shared.upstream.url,
                &headers,
                Bytes::new(),
                DELETE_TIMEOUT,
            );
            match delete.await {
                Ok(resp) if resp.status().is_success() || resp.status() == 405 => {}
                Ok(resp) => {
                    tracing::debug!(server = %shared.upstream.name, status = %resp.status(), "session DELETE refused");
                }
                Err(e) => {
                    tracing::debug!(server = %shared.upstream.name, error = %e, "session DELETE failed");
                }
            }
        }
        // The tasks only wait on cancellable operations, so this is quick.
        let _ = tokio::time::timeout(Duration::from_secs(2), shared.tasks.wait()).await;
    }

    fn kind(&self) -> &'static str {
        "streamable-http"
    }

    fn exact_origins(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::http_client::testing::{Everything, FakeServer, Reply};
    use crate::{AuthChallenge, AuthFailure, AuthHook};

    const INIT_RESULT: &str = r#"{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"1"}}"#;

    fn spec(url: url::Url) -> HttpSpec {
        HttpSpec {
            name: "test".into(),
            url,
            headers: vec![("X-Static".into(), "yes".into())],
            auth: None,
        }
    }

    fn initialize(id: i64) -> Message {
        Message::request(
            RequestId::from(id),
            methods::INITIALIZE,
            Some(&json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            })),
        )
    }

    async fn next(parts: &mut WireParts) -> Option<InboundItem> {
        tokio::time::timeout(Duration::from_secs(15), parts.inbound.recv())
            .await
            .expect("inbound item within 15 s")
    }

    async fn next_msg(parts: &mut WireParts) -> Inbound {
        match next(parts).await {
            Some(Ok(inbound)) => inbound,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// A wire to `url` that has sent `initialize` and read its answer.
    async fn initialized(url: &url::Url) -> WireParts {
        let mut parts = open_streamable(&spec(url.clone()), &SessionOptions::default())
            .await
            .unwrap();
        parts.wire.send(initialize(1)).await.unwrap();
        next_msg(&mut parts).await;
        parts
    }

    fn result_of(inbound: &Inbound) -> serde_json::Value {
        match &inbound.msg {
            Message::Response(r) => serde_json::from_str(r.result.get()).unwrap(),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// Initialises against the fake server: JSON answer with session `s1`.
    fn init_reply(seen: &crate::http_client::testing::Seen) -> Option<Reply> {
        (seen.json()["method"] == "initialize").then(|| {
            Reply::json(
                200,
                &format!(r#"{{"jsonrpc":"2.0","id":1,"result":{INIT_RESULT}}}"#),
            )
            .header("mcp-session-id", "s1")
        })
    }

    #[tokio::test]
    async fn talks_to_server_everything() {
        let Some(server) = Everything::start("streamableHttp").await else {
            return;
        };
        let opts = SessionOptions::default();
        let mut parts = open_streamable(&spec(server.url("/mcp")), &opts)
            .await
            .unwrap();
        assert_eq!(parts.wire.kind(), "streamable-http");
        parts.wire.send(initialize(1)).await.unwrap();
        let init = next_msg(&mut parts).await;
        assert_eq!(init.origin, Some(RequestId::from(1)));
        assert_eq!(result_of(&init)["protocolVersion"], "2025-11-25");
        parts
            .wire
            .send(Message::notification(methods::INITIALIZED, None))
            .await
            .unwrap();
        parts
            .wire
            .send(Message::request(
                RequestId::from("list"),
                methods::TOOLS_LIST,
                None,
            ))
            .await
            .unwrap();
        // server-everything may interleave notifications (e.g. logging) with the answer.
        let tools = loop {
            let m = next_msg(&mut parts).await;
            if m.msg.id() == Some(&RequestId::from("list")) {
                assert_eq!(m.origin, Some(RequestId::from("list")));
                break result_of(&m);
            }
        };
        let names: Vec<&str> = tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(names.contains(&"echo"), "{names:?}");
        parts
            .wire
            .send(Message::request(
                RequestId::from(3),
                methods::TOOLS_CALL,
                Some(&json!({"name": "echo", "arguments": {"message": "hi there"}})),
            ))
            .await
            .unwrap();
        let echoed = loop {
            let m = next_msg(&mut parts).await;
            if m.msg.id() == Some(&RequestId::from(3)) {
                break result_of(&m);
            }
        };
        assert_eq!(echoed["content"][0]["text"], "Echo: hi there");
        parts.wire.close().await;
        // After close the channel drains and ends.
        while let Some(item) = next(&mut parts).await {
            assert!(item.is_ok(), "{item:?}");
        }
        assert!(matches!(
            parts.wire.send(Message::notification("x", None)).await,
            Err(TransportError::Closed)
        ));
        server.stop().await;
    }

    #[tokio::test]
    async fn resumes_a_dropped_post_stream_with_last_event_id() {
        let server = FakeServer::start("/mcp", |seen| {
            if let Some(r) = init_reply(seen) {
                return r;
            }
            match (seen.method.as_str(), seen.header("last-event-id")) {
                // The answer stream: priming event, retry hint, then the connection drops.
                ("POST", _) => Reply::sse(
                    "retry: 20\nid: e1\ndata: \n\nevent: message\nid: e2\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n",
                    false,
                ),
                ("GET", Some("e2")) => Reply::sse(
                    "id: e3\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"ok\":true}}\n\n",
                    true,
                ),
                _ => Reply::status(400),
            }
        })
        .await;
        let mut parts = initialized(&server.url).await;
        parts
            .wire
            .send(Message::request(RequestId::from(2), "tools/call", None))
            .await
            .unwrap();
        let progress = next_msg(&mut parts).await;
        assert_eq!(progress.msg.method(), Some("notifications/progress"));
        assert_eq!(progress.origin, Some(RequestId::from(2)));
        let answer = next_msg(&mut parts).await;
        assert_eq!(answer.origin, Some(RequestId::from(2)));
        assert_eq!(result_of(&answer), json!({"ok": true}));

        let seen = server.seen();
        let post = seen.iter().find(|s| s.json()["id"] == 2).unwrap();
        assert_eq!(post.header("mcp-session-id"), Some("s1"));
        assert_eq!(post.header("mcp-protocol-version"), Some("2025-06-18"));
        assert_eq!(
            post.header("accept"),
            Some("application/json, text/event-stream")
        );
        assert_eq!(post.header("content-type"), Some("application/json"));
        assert_eq!(post.header("x-static"), Some("yes"));
        let init = &seen[0];
        assert_eq!(init.header("mcp-session-id"), None);
        assert_eq!(init.header("mcp-protocol-version"), None);
        let get = seen.iter().find(|s| s.method == "GET").unwrap();
        assert_eq!(get.header("last-event-id"), Some("e2"));
        assert_eq!(get.header("accept"), Some("text/event-stream"));
        assert_eq!(get.header("mcp-session-id"), Some("s1"));
        parts.wire.close().await;
    }

    #[tokio::test]
    async fn an_unresumable_stream_fails_its_request() {
        let server = FakeServer::start("/mcp", |seen| {
            init_reply(seen).unwrap_or_else(|| Reply::sse(": no ids here\n\n", false))
        })
        .await;
        let mut parts = initialized(&server.url).await;
        parts
            .wire
            .send(Message::request(RequestId::from(7), "tools/call", None))
            .await
            .unwrap();
        let failed = next_msg(&mut parts).await;
        let Message::Error(e) = &failed.msg else {
            panic!("expected an error response, got {:?}", failed.msg)
        };
        assert_eq!(e.id, Some(RequestId::from(7)));
        assert_eq!(e.error.code, ErrorCode::INTERNAL_ERROR.0);
        // No GET was attempted: there was nothing to resume from.
        assert!(server.seen().iter().all(|s| s.method == "POST"));
        parts.wire.close().await;
    }

    #[tokio::test]
    async fn a_404_on_a_session_is_fatal() {
        let server = FakeServer::start("/mcp", |seen| {
            init_reply(seen).unwrap_or_else(|| {
                Reply::json(404, r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}"#)
            })
        })
        .await;
        let mut parts = initialized(&server.url).await;
        let err = parts
            .wire
            .send(Message::request(RequestId::from(2), "tools/list", None))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("session expired (404)"), "{err}");
        match next(&mut parts).await {
            Some(Err(TransportError::Http(m))) => assert_eq!(m, "session expired (404)"),
            other => panic!("expected the fatal error, got {other:?}"),
        }
        assert!(next(&mut parts).await.is_none());
        // Closing a dead session does not DELETE it.
        parts.wire.close().await;
        assert!(server.seen().iter().all(|s| s.method == "POST"));
    }

    #[tokio::test]
    async fn initialize_rejections_are_reported_for_fallback() {
        let server = FakeServer::start("/mcp", |_| {
            Reply::status(405)
                .header("allow", "GET")
                .body("Method Not Allowed")
        })
        .await;
        let parts = open_streamable(&spec(server.url.clone()), &SessionOptions::default())
            .await
            .unwrap();
        match parts.wire.send(initialize(1)).await {
            Err(TransportError::HttpStatus { status, body }) => {
                assert_eq!(status, 405);
                assert_eq!(body, "Method Not Allowed");
            }
            other => panic!("expected HttpStatus, got {other:?}"),
        }
    }

    #[derive(Debug)]
    struct Hook {
        refresh: bool,
        challenges: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl AuthHook for Hook {
        async fn authorization(&self) -> Result<Option<String>, AuthFailure> {
            Ok(Some(format!(
                "Bearer t{}",
                self.challenges.load(Ordering::SeqCst)
            )))
        }

        async fn on_unauthorized(&self, c: &AuthChallenge) -> Result<bool, AuthFailure> {
            assert_eq!(c.www_authenticate.as_deref(), Some("Bearer realm=\"x\""));
            self.challenges.fetch_add(1, Ordering::SeqCst);
            Ok(self.refresh)
        }
    }

    #[tokio::test]
    async fn a_401_asks_the_auth_hook_and_retries_once() {
        let server = FakeServer::start("/mcp", |seen| {
            if seen.header("authorization") == Some("Bearer t1") {
                init_reply(seen).unwrap_or_else(|| Reply::status(202))
            } else {
                Reply::status(401).header("www-authenticate", "Bearer realm=\"x\"")
            }
        })
        .await;
        for refresh in [true, false] {
            let hook = Arc::new(Hook {
                refresh,
                challenges: AtomicUsize::new(0),
            });
            let mut s = spec(server.url.clone());
            s.auth = Some(hook.clone());
            let mut parts = open_streamable(&s, &SessionOptions::default())
                .await
                .unwrap();
            let sent = parts.wire.send(initialize(1)).await;
            if refresh {
                sent.unwrap();
                assert_eq!(
                    result_of(&next_msg(&mut parts).await)["protocolVersion"],
                    "2025-06-18"
                );
            } else {
                match sent {
                    Err(TransportError::Unauthorized(c)) => {
                        assert_eq!(c.status, 401);
                        assert_eq!(c.url, server.url);
                    }
                    other => panic!("expected Unauthorized, got {other:?}"),
                }
            }
            assert_eq!(hook.challenges.load(Ordering::SeqCst), 1);
            parts.wire.close().await;
        }
    }

    #[tokio::test]
    async fn get_stream_carries_server_messages_and_delete_ends_the_session() {
        let gets = Arc::new(AtomicUsize::new(0));
        let g = gets.clone();
        let server = FakeServer::start("/mcp", move |seen| {
            if let Some(r) = init_reply(seen) {
                return r;
            }
            match seen.method.as_str() {
                "POST" => Reply::status(202),
                "GET" => {
                    // The first stream drops after one event; the reconnection resumes from it.
                    if g.fetch_add(1, Ordering::SeqCst) == 0 {
                        Reply::sse("retry: 10\nid: g1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n", false)
                    } else {
                        Reply::sse("id: g2\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"srv\",\"method\":\"ping\"}\n\n", true)
                    }
                }
                "DELETE" => Reply::status(200),
                _ => Reply::status(400),
            }
        })
        .await;
        let mut parts = initialized(&server.url).await;
        parts
            .wire
            .send(Message::notification(methods::INITIALIZED, None))
            .await
            .unwrap();
        let changed = next_msg(&mut parts).await;
        assert_eq!(
            changed.msg.method(),
            Some("notifications/tools/list_changed")
        );
        assert_eq!(changed.origin, None);
        let ping = next_msg(&mut parts).await;
        assert_eq!(ping.msg.method(), Some("ping"));
        assert_eq!(ping.origin, None);
        parts.wire.close().await;
        assert!(next(&mut parts).await.is_none());
        let seen = server.seen();
        let get_ids: Vec<Option<&str>> = seen
            .iter()
            .filter(|s| s.method == "GET")
            .map(|s| s.header("last-event-id"))
            .collect();
        assert_eq!(get_ids, vec![None, Some("g1")]);
        let delete = seen.iter().find(|s| s.method == "DELETE").unwrap();
        assert_eq!(delete.header("mcp-session-id"), Some("s1"));
        assert_eq!(delete.header("mcp-protocol-version"), Some("2025-06-18"));
    }

    #[tokio::test]
    async fn oversized_json_answers_fail_the_request() {
        let server = FakeServer::start("/mcp", |seen| {
            init_reply(seen).unwrap_or_else(|| {
                Reply::json(
                    200,
                    &format!(
                        r#"{{"jsonrpc":"2.0","id":2,"result":{{"x":"{}"}}}}"#,
                        "a".repeat(4096)
                    ),
                )
            })
        })
        .await;
        let opts = SessionOptions {
            max_message_bytes: 1024,
            ..SessionOptions::default()
        };
        let mut parts = open_streamable(&spec(server.url.clone()), &opts)
            .await
            .unwrap();
        parts.wire.send(initialize(1)).await.unwrap();
        next_msg(&mut parts).await;
        parts
            .wire
            .send(Message::request(RequestId::from(2), "tools/list", None))
            .await
            .unwrap();
        let failed = next_msg(&mut parts).await;
        assert!(matches!(&failed.msg, Message::Error(e) if e.id == Some(RequestId::from(2))));
        parts.wire.close().await;
    }
}
