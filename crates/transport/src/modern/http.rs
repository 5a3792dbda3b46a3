//! The 2026-07-28 Streamable HTTP client wire: one POST per request, no session id, no GET
//! stream, no resumption. The standard headers (`MCP-Protocol-Version`, `Mcp-Method`,
//! `Mcp-Name`) are derived from each message, so they cannot disagree with its body. Closing a
//! request's response stream is how the era cancels it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use mcp_hub_protocol::modern::{self, meta};
use mcp_hub_protocol::{ErrorCode, ErrorObject, Incoming, Message, RequestId, methods};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http_client::{self, SseReader, Upstream};
use crate::wire::{Inbound, InboundTx, Wire, WireParts, inbound_channel};
use crate::{HttpSpec, SessionOptions, TransportError};

const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Prepares a connection; nothing is sent until the first request (`server/discover`).
pub(crate) fn open(spec: &HttpSpec, opts: &SessionOptions) -> Result<WireParts, TransportError> {
    let (tx, rx) = inbound_channel();
    let shared = Arc::new(Shared {
        upstream: Upstream::new(spec)?,
        max_message_bytes: opts.max_message_bytes,
        request_timeout: opts.request_timeout,
        inbound: Mutex::new(Some(tx)),
        calls: Mutex::new(HashMap::new()),
        lists: Mutex::default(),
        annotations: Mutex::default(),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    Ok(WireParts {
        wire: Arc::new(ModernHttpWire { shared }),
        inbound: rx,
    })
}

#[derive(Debug)]
struct ModernHttpWire {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    upstream: Upstream,
    max_message_bytes: usize,
    request_timeout: Duration,
    inbound: Mutex<Option<InboundTx>>,
    /// The open exchange of each request in flight: cancelling it closes the response stream.
    calls: Mutex<HashMap<RequestId, CancellationToken>>,
    /// `tools/list` requests in flight, whose results teach `annotations`.
    lists: Mutex<std::collections::HashSet<RequestId>>,
    /// The `x-mcp-header` annotations of the tools listed so far.
    annotations: Mutex<super::params::Annotations>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, CancellationToken>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn push(&self, msg: Message, origin: &RequestId) -> bool {
        let msg = self.learn(msg);
        let tx = self
            .inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(tx) = tx else {
            return false;
        };
        let item = Ok(Inbound {
            msg,
            origin: Some(origin.clone()),
        });
        tokio::select! {
            r = tx.send(item) => r.is_ok(),
            () = self.cancel.cancelled() => false,
        }
    }

    /// A `tools/list` result teaches the tools' `x-mcp-header` annotations (and loses the tools
    /// whose annotations are invalid).
    fn learn(&self, msg: Message) -> Message {
        let mut r = match msg {
            Message::Response(r) => r,
            Message::Error(e) => {
                if let Some(id) = &e.id {
                    lock(&self.lists).remove(id);
                }
                return Message::Error(e);
            }
            other => return other,
        };
        if lock(&self.lists).remove(&r.id)
            && let Some(kept) = super::params::learn(&r.result, &mut lock(&self.annotations))
        {
            r.result = kept;
        }
        Message::Response(r)
    }

    async fn fail(&self, id: &RequestId, why: String) {
        tracing::debug!(server = %self.upstream.name, request = %id, "{why}");
        let error = ErrorObject::new(ErrorCode::INTERNAL_ERROR, format!("upstream {why}"));
        self.push(Message::error(Some(id.clone()), error), id).await;
    }

    /// Reads a JSON answer as it arrives: one value, or several in a row (notifications before
    /// the response, or a listen stream that never ends) until the response to `id`.
    async fn read_json(&self, mut body: hyper::body::Incoming, id: &RequestId) {
        use http_body_util::BodyExt as _;
        let mut values = super::jsonseq::Splitter::default();
        loop {
            let data = match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Some(Err(e)) => {
                    return self.fail(id, format!("answer broke: {e}")).await;
                }
                None => break,
            };
            for value in values.push(&data) {
                if self.push_json(&value, id).await.is_some() {
                    return;
                }
            }
            if values.pending() > self.max_message_bytes {
                return self
                    .fail(
                        id,
                        format!("answer larger than {} bytes", self.max_message_bytes),
                    )
                    .await;
            }
        }
        if let Some(rest) = values.finish()
            && self.push_json(&rest, id).await.is_some()
        {
            return;
        }
        self.fail(id, "answer ended before the response".into())
            .await;
    }

    /// Pushes one JSON value of an answer; `Some(())` when the exchange is over (it was the
    /// response, or nobody reads any more).
    async fn push_json(&self, value: &[u8], id: &RequestId) -> Option<()> {
        let msgs = match Incoming::from_slice(value) {
            Ok(Incoming::Single(m)) => vec![m],
            Ok(Incoming::Batch(ms)) => ms,
            Err(e) => match crate::salvage::unreadable_answer(value, &e) {
                Some(answer) => vec![answer],
                None => {
                    self.fail(id, format!("sent an unreadable response: {e}"))
                        .await;
                    return Some(());
                }
            },
        };
        for m in msgs {
            let answered = matches!(&m, Message::Response(r) if &r.id == id)
                || matches!(&m, Message::Error(e) if e.id.as_ref() == Some(id));
            if !self.push(m, id).await || answered {
                return Some(());
            }
        }
        None
    }

    /// Reads one answer (JSON or SSE) to request `id` until its response, pushing what it
    /// carries; stops when the call is cancelled or the wire closes.
    async fn read_answer(
        self: Arc<Self>,
        resp: http::Response<hyper::body::Incoming>,
        id: RequestId,
        stop: CancellationToken,
    ) {
        let read = async {
            match &*http_client::media_type(resp.headers()) {
                "application/json" => self.read_json(resp.into_body(), &id).await,
                "text/event-stream" => {
                    let mut reader = SseReader::new(resp.into_body(), self.max_message_bytes);
                    loop {
                        let event = match reader.next().await {
                            Ok(Some(e)) => e,
                            Ok(None) => {
                                return self
                                    .fail(&id, "stream ended before the response".into())
                                    .await;
                            }
                            Err(e) => return self.fail(&id, format!("stream broke: {e}")).await,
                        };
                        if event.event_type() != "message" || event.data.is_empty() {
                            continue;
                        }
                        let msg = match Message::from_slice(event.data.as_bytes()) {
                            Ok(m) => m,
                            Err(e) => {
                                match crate::salvage::unreadable_answer(event.data.as_bytes(), &e) {
                                    Some(answer) => answer,
                                    None => continue,
                                }
                            }
                        };
                        let answered = matches!(&msg, Message::Response(r) if r.id == id)
                            || matches!(&msg, Message::Error(e) if e.id.as_ref() == Some(&id));
                        if !self.push(msg, &id).await || answered {
                            return;
                        }
                    }
                }
                other => {
                    self.fail(&id, format!("answered with content type {other:?}"))
                        .await;
                }
            }
        };
        tokio::select! {
            () = read => {}
            () = stop.cancelled() => {}
        }
        self.calls().remove(&id);
    }
}

/// The standard headers of one request, from its body.
fn standard_headers(req: &mcp_hub_protocol::Request) -> HeaderMap {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "_meta", default)]
        meta: Option<serde_json::Map<String, serde_json::Value>>,
        name: Option<String>,
        uri: Option<String>,
    }
    let params = req
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str::<Params>(p.get()).ok());
    let mut headers = HeaderMap::new();
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(&modern::encode_header_value(value)) {
            headers.insert(name, v);
        }
    };
    let version = params
        .as_ref()
        .and_then(|p| p.meta.as_ref())
        .and_then(|m| m.get(meta::PROTOCOL_VERSION))
        .and_then(|v| v.as_str())
        .unwrap_or(mcp_hub_protocol::MODERN_PROTOCOL_VERSION);
    put(MCP_PROTOCOL_VERSION, version);
    put(MCP_METHOD, &req.method);
    let name = match req.method.as_str() {
        methods::TOOLS_CALL | methods::PROMPTS_GET => params.and_then(|p| p.name),
        methods::RESOURCES_READ => params.and_then(|p| p.uri),
        _ => None,
    };
    if let Some(name) = name {
        put(MCP_NAME, &name);
    }
    headers
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait::async_trait]
impl Wire for ModernHttpWire {
    async fn send(&self, msg: Message) -> Result<(), TransportError> {
        let shared = &self.shared;
        if shared.cancel.is_cancelled() {
            return Err(TransportError::Closed);
        }
        let req = match msg {
            Message::Request(r) => r,
            Message::Notification(n) if n.method == methods::CANCELLED => {
                // No client notifications in this era: closing the stream is the cancellation.
                let id = n.params.as_deref().and_then(|p| {
                    serde_json::from_str::<mcp_hub_protocol::types::CancelledParams>(p.get()).ok()
                });
                if let Some(token) = id.and_then(|c| shared.calls().remove(&c.request_id)) {
                    token.cancel();
                }
                return Ok(());
            }
            // Nothing else travels client to server here (and a modern server sends no
            // requests, so there are no answers to carry).
            _ => return Ok(()),
        };
        let mut headers = standard_headers(&req);
        let annotated = !lock(&shared.annotations).is_empty();
        if req.method == methods::TOOLS_LIST {
            lock(&shared.lists).insert(req.id.clone());
        } else if req.method == methods::TOOLS_CALL
            && annotated
            && let Some(params) = req
                .params
                .as_deref()
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p.get()).ok())
        {
            let mirrored = super::params::headers(&params, &lock(&shared.annotations));
            for (name, value) in mirrored {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    headers.insert(n, v);
                }
            }
        }
        headers.insert(header::ACCEPT, ACCEPT_BOTH);
        headers.insert(header::CONTENT_TYPE, JSON);
        let id = req.id.clone();
        let stop = shared.cancel.child_token();
        shared.calls().insert(id.clone(), stop.clone());
        let body = Bytes::from(Message::Request(req).to_vec());
        let timeout = shared.request_timeout.saturating_mul(10);
        let exchange =
            shared
                .upstream
                .exchange(Method::POST, &shared.upstream.url, &headers, body, timeout);
        let resp = tokio::select! {
            r = exchange => r,
            () = stop.cancelled() => {
                shared.calls().remove(&id);
                lock(&shared.lists).remove(&id);
                return Ok(());
            }
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                shared.calls().remove(&id);
                lock(&shared.lists).remove(&id);
                return Err(e);
            }
        };
        let status = resp.status();
        if status.is_success() && status != StatusCode::ACCEPTED {
            let this = shared.clone();
            shared
                .tasks
                .spawn(async move { this.read_answer(resp, id, stop).await });
            return Ok(());
        }
        shared.calls().remove(&id);
        // The era answers refusals (unknown method, bad params, version) with a 4xx carrying a
        // JSON-RPC error: that is the request's answer, not a broken transport.
        let err = http_client::status_error(resp).await;
        if let TransportError::HttpStatus { body, .. } = &err
            && let Ok(Message::Error(e)) = Message::from_str(body)
        {
            shared
                .push(Message::error(Some(id.clone()), e.error), &id)
                .await;
            return Ok(());
        }
        Err(err)
    }

    async fn close(&self) {
        let shared = &self.shared;
        shared.cancel.cancel();
        drop(
            shared
                .inbound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        shared.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), shared.tasks.wait()).await;
    }

    fn kind(&self) -> &'static str {
        "streamable-http"
    }

    fn exact_origins(&self) -> bool {
        true
    }
}
