//! The Streamable HTTP client wire (MCP 2025-03-26 … 2025-11-25): one POST per message, JSON or
//! SSE answers, the optional GET stream, session ids, resumption with `Last-Event-ID`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use mcp_hub_protocol::{Incoming, Message, RequestId, methods};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http_client::{self, SseReader, Upstream};
use crate::wire::{Inbound, InboundTx, Wire, WireParts, inbound_channel};
use crate::{HttpSpec, SessionOptions, TransportError};

mod resume;

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
/// Consecutive fruitless reconnections after which the GET stream is given up.
const MAX_RECONNECTS: u32 = 6;
/// Consecutive fruitless resumptions after which a request's stream is given up and the request
/// failed: a server that replays nothing three times in a row lost what the hub waits for.
const MAX_RESUMES: u32 = 3;
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
    let (tx, rx) = inbound_channel();
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
    inbound: Mutex<Option<InboundTx>>,
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

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (plain fields).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sender(&self) -> Option<InboundTx> {
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

    /// Reads a POST's answer as far as it has arrived, in the sender's task, and the rest (if
    /// any) in a task of its own. A small answer usually comes with its head, so it settles its
    /// request here, without a task spawned and woken for it. One poll is bounded work: the
    /// reader stops at the first thing it would wait for.
    fn read_here_or_spawn(&self, read: impl Future<Output = ()> + Send + 'static) {
        let mut read = Box::pin(read);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // The waker of this poll is never woken: if the read waits, it is polled again by
        // its task, whose waker then replaces this one.
        if read.as_mut().poll(&mut cx).is_pending() {
            self.tasks.spawn(read);
        }
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
        match &*media {
            "text/event-stream" => {
                let reader = SseReader::new(resp.into_body(), self.max_message_bytes);
                let this = self.clone();
                self.read_here_or_spawn(async move { this.read_post_stream(reader, origin).await });
                Ok(())
            }
            "application/json" => {
                let this = self.clone();
                self.read_here_or_spawn(async move {
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
        http_client::trace_headers(&msg, &mut headers);
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
mod tests;
