//! The unified MCP endpoint: `/mcp` (Streamable HTTP, and the Node hub's legacy `GET /mcp`),
//! `GET /sse` + `POST /messages` (legacy HTTP+SSE).
//!
//! The hub is an MCP server here. It answers `initialize`, `ping`, `logging/setLevel` and the
//! aggregated lists itself and routes everything else through the [`Registry`]; related
//! notifications (progress, logs) and server-to-client requests (sampling, elicitation, roots)
//! come back on the SSE stream of the downstream request that caused them. Routing, Host/Origin
//! and bearer checks happen before these handlers run (`server::dispatch`).

mod client;
mod dispatch;
mod fanout;
mod forward;
mod headers;
mod legacy;
mod lifecycle;
mod pool;
pub(crate) mod profile;
mod routed;
mod search;
mod session;
mod stateless;
mod stream;
mod trace_header;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use mcp_hub_protocol::{Incoming as Batch, Message, ProtocolVersion};
use mcp_hub_registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::ApiConfig;
use crate::body::{self, Body, RequestBody};
use crate::guard;
pub(crate) use headers::{accepts, accepts_all, header_str, is_json, sse_response};
use headers::{json_message, parse_event_id, session_header, with_session};
pub(crate) use lifecycle::client_key;
use lifecycle::too_many_sessions;
use session::Session;
use stream::{EventStream, Start, StreamKind};

// Names as values: a lookup by `&str` parses and validates the name on every request first.
const SESSION_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-session-id");
const VERSION_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-protocol-version");
const LAST_EVENT_ID: http::HeaderName = http::HeaderName::from_static("last-event-id");

/// The session and stream of a routed downstream call, and where its client's cancel reason
/// goes.
type CallerTarget = (
    Arc<Session>,
    Arc<EventStream>,
    mcp_hub_registry::CancelReason,
);

pub(crate) struct Inner {
    registry: Registry,
    config: ApiConfig,
    shutdown: CancellationToken,
    /// Parent of every session's token.
    sessions_root: CancellationToken,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    /// `Requester::call` → the session and stream of the downstream call it names.
    callers: Mutex<mcp_hub_registry::IdMap<u64, CallerTarget>>,
    next_caller: AtomicU64,
    /// URL-mode elicitations in progress: elicitation id → session id.
    elicitations: Mutex<HashMap<String, Arc<str>>>,
    /// The level last sent upstream with `logging/setLevel`.
    applied_level: Mutex<Option<usize>>,
    /// Set while the hub shuts down: calls still running are answered with an error.
    draining: std::sync::atomic::AtomicBool,
    /// Stateless (2026-07-28) calls being served.
    stateless_in_flight: std::sync::atomic::AtomicUsize,
    /// Those calls by `Requester::call`: what their client declared, and how to end them.
    stateless_calls: Mutex<mcp_hub_registry::IdMap<u64, stateless::Caller>>,
    /// Stateless calls parked for their client's input (MRTR) and the key that seals them.
    bridge: stateless::mrtr::Bridge,
    /// What each profile's sessions were last told about their view.
    announced: profile::Announced,
    /// Cluster mode's session directory, when the hub runs as one replica of several.
    cluster: std::sync::OnceLock<Arc<dyn crate::Cluster>>,
    /// Kept-alive connections to the other replicas (cluster mode).
    pool: Arc<pool::Pool>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // These maps are only touched in short, panic-free sections; a poisoned lock still holds
    // consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct McpEndpoint {
    inner: Arc<Inner>,
}

impl McpEndpoint {
    pub(crate) fn new(
        registry: Registry,
        config: &ApiConfig,
        shutdown: CancellationToken,
    ) -> McpEndpoint {
        let inner = Arc::new(Inner {
            registry: registry.clone(),
            config: config.clone(),
            sessions_root: shutdown.child_token(),
            shutdown,
            sessions: Mutex::new(HashMap::new()),
            callers: Mutex::default(),
            next_caller: AtomicU64::new(1),
            elicitations: Mutex::new(HashMap::new()),
            applied_level: Mutex::new(None),
            draining: std::sync::atomic::AtomicBool::new(false),
            stateless_in_flight: std::sync::atomic::AtomicUsize::new(0),
            stateless_calls: Mutex::default(),
            bridge: stateless::mrtr::Bridge::new(),
            announced: profile::Announced::default(),
            cluster: std::sync::OnceLock::new(),
            pool: Arc::default(),
        });
        registry.set_client_handler(Arc::new(client::Forwarder::new(&inner)));
        fanout::spawn(&inner);
        McpEndpoint { inner }
    }

    /// Joins the endpoint to a cluster (once; later calls are ignored).
    pub(crate) fn set_cluster(&self, cluster: Arc<dyn crate::Cluster>) {
        let _ = self.inner.cluster.set(cluster);
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn session_count(&self) -> usize {
        lock(&self.inner.sessions).len()
    }

    /// Live sessions by `(era, transport)`, and the streams a client is attached to (`/metrics`).
    pub(crate) fn census(
        &self,
    ) -> (
        std::collections::BTreeMap<(&'static str, &'static str), u64>,
        u64,
    ) {
        let sessions: Vec<Arc<Session>> = lock(&self.inner.sessions).values().cloned().collect();
        let mut by = std::collections::BTreeMap::new();
        let mut attached = 0;
        for s in sessions {
            let transport = if s.legacy { "sse" } else { "streamable-http" };
            // Every session of this endpoint began with `initialize`: the handshake era.
            *by.entry(("handshake", transport)).or_insert(0) += 1;
            attached += s
                .lock()
                .streams
                .values()
                .filter(|x| x.is_attached())
                .count() as u64;
        }
        (by, attached)
    }

    pub(crate) async fn handle_mcp(&self, req: Request<RequestBody>) -> Response<Body> {
        // Cluster mode's steps are boxed and skipped without a cluster: their futures would
        // otherwise make every request's future larger, and it is moved into a box per request.
        let clustered = self.inner.cluster.get().is_some();
        let req = if clustered {
            match Box::pin(self.inner.route_in_cluster(req, forward::SessionIn::Header)).await {
                Ok(req) => req,
                Err(answered) => return answered,
            }
        } else {
            req
        };
        let resp = match *req.method() {
            Method::POST => self.post(req).await,
            Method::GET => self.get(req),
            Method::DELETE => self.delete(req),
            _ => {
                let mut r = body::jsonrpc_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    -32000,
                    "Method not allowed.",
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
                r
            }
        };
        if clustered {
            Box::pin(self.inner.claim_created(resp)).await
        } else {
            resp
        }
    }

    pub(crate) async fn handle_legacy_get(&self, req: Request<RequestBody>) -> Response<Body> {
        let resp = legacy::open(&self.inner, &req);
        self.inner.claim_created(resp).await
    }

    pub(crate) async fn handle_legacy_post(&self, req: Request<RequestBody>) -> Response<Body> {
        match self
            .inner
            .route_in_cluster(req, forward::SessionIn::Query)
            .await
        {
            Ok(req) => legacy::post(&self.inner, req).await,
            Err(answered) => answered,
        }
    }

    /// Calls still being served, over every session.
    fn in_flight(&self) -> usize {
        let sessions: Vec<Arc<Session>> = lock(&self.inner.sessions).values().cloned().collect();
        let stateless = self
            .inner
            .stateless_in_flight
            .load(std::sync::atomic::Ordering::SeqCst);
        sessions
            .iter()
            .map(|s| s.lock().in_flight.len())
            .sum::<usize>()
            + stateless
    }

    /// First step of a shutdown: waits (at most `grace`) for the calls in flight to finish, then
    /// answers those still running with an error, so no client is left waiting for an answer
    /// that will never come.
    pub(crate) async fn drain(&self, grace: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.inner
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let sessions: Vec<Arc<Session>> = lock(&self.inner.sessions).values().cloned().collect();
        for s in sessions {
            let tokens: Vec<CancellationToken> = s
                .lock()
                .in_flight
                .values()
                .map(|(t, _)| t.clone())
                .collect();
            for t in tokens {
                t.cancel();
            }
        }
        // The error answers are written by the calls' own tasks: give them a moment.
        let flush = tokio::time::Instant::now() + std::time::Duration::from_millis(250);
        while self.in_flight() > 0 && tokio::time::Instant::now() < flush {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub(crate) async fn close_all(&self) {
        let sessions: Vec<Arc<Session>> = lock(&self.inner.sessions).values().cloned().collect();
        for s in sessions {
            self.inner.close_session(&s.id);
        }
        self.inner.sessions_root.cancel();
    }

    async fn post(&self, req: Request<RequestBody>) -> Response<Body> {
        let inner = &self.inner;
        // Taken apart rather than copied: the headers are read after the body has arrived.
        let (parts, request_body) = req.into_parts();
        let headers = &parts.headers;
        if !accepts_all(headers, &["application/json", "text/event-stream"]) {
            return body::jsonrpc_error(
                StatusCode::NOT_ACCEPTABLE,
                -32000,
                "Not Acceptable: Client must accept both application/json and text/event-stream",
            );
        }
        if !is_json(headers) {
            return body::jsonrpc_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                -32000,
                "Unsupported Media Type: Content-Type must be application/json",
            );
        }
        let session_id = match session_header(headers) {
            Ok(id) => id,
            Err(r) => return *r,
        };
        let version_header = header_str(headers, VERSION_HEADER);
        let principal = guard::principal(&inner.config, headers);
        let client = client_key(principal, &parts.extensions);
        let profile = profile::requested(&parts.extensions);
        let forwarded = parts.extensions.get::<forward::Forwarded>().is_some();
        let uri = &parts.uri;
        let bytes = match body::read_limited(request_body, inner.config.max_body_bytes).await {
            Ok(b) => b,
            Err(status) => return body::unreadable(status),
        };
        let incoming = match Batch::from_slice(&bytes) {
            Ok(i) => trace_header::adopt(headers, i),
            Err(e) => {
                let msg = if e.code() == -32700 {
                    format!("Parse error: {e}")
                } else {
                    format!("Invalid Request: {e}")
                };
                return body::jsonrpc_error(StatusCode::BAD_REQUEST, e.code(), &msg);
            }
        };
        // Errors below name the request when there is exactly one to name.
        let echo = match &incoming {
            Batch::Single(Message::Request(r)) => Some(r.id.clone()),
            _ => None,
        };
        let Some(session_id) = session_id else {
            // A sessionless request's `params` are parsed once, here: for its era, and then for
            // what a modern request does.
            let params = match &incoming {
                Batch::Single(Message::Request(r)) => mcp_hub_protocol::modern::request_params(r),
                _ => Ok(Default::default()),
            };
            return match incoming {
                // On a profile's endpoint, with the profile's view (`stateless`).
                Batch::Single(Message::Request(r))
                    if stateless::is_modern(&r, &params, headers) =>
                {
                    let http = stateless::elsewhere::Incoming {
                        uri,
                        headers,
                        body: &bytes,
                        forwarded,
                    };
                    let parked = match inner.cluster.get() {
                        Some(_) => Box::pin(inner.route_parked(&r, http)).await,
                        None => None,
                    };
                    match parked {
                        Some(answered) => answered,
                        // Boxed: a session's POST would otherwise carry room for it.
                        None => {
                            Box::pin(inner.stateless(headers, r, params, principal, profile)).await
                        }
                    }
                }
                Batch::Single(Message::Request(r)) if r.method == "initialize" => {
                    inner.create_session(r, principal, client, profile)
                }
                Batch::Single(Message::Request(r)) => stateless::error_response(
                    StatusCode::BAD_REQUEST,
                    &r.id,
                    mcp_hub_protocol::ErrorObject::new(
                        mcp_hub_protocol::ErrorCode::SERVER_ERROR,
                        "Bad Request: Mcp-Session-Id header is required \
                         (or a 2026-07-28 request with its _meta)",
                    ),
                ),
                _ => body::jsonrpc_error(
                    StatusCode::BAD_REQUEST,
                    -32000,
                    "Bad Request: Mcp-Session-Id header is required",
                ),
            };
        };
        let session = match inner.streamable_session(
            session_id,
            version_header,
            principal,
            profile.as_deref(),
            echo.as_ref(),
        ) {
            Ok(s) => s,
            Err(r) => return *r,
        };
        session.touch();
        let (messages, batch) = match incoming {
            Batch::Single(m) => (vec![m], false),
            Batch::Batch(ms) => {
                if session.version() != ProtocolVersion::V2025_03_26 {
                    return body::jsonrpc_error(
                        StatusCode::BAD_REQUEST,
                        -32600,
                        "Invalid Request: batches are only accepted in protocol version 2025-03-26",
                    );
                }
                (ms, true)
            }
        };
        if messages
            .iter()
            .any(|m| m.method() == Some(mcp_hub_protocol::methods::INITIALIZE))
        {
            return body::jsonrpc_error_for(
                StatusCode::BAD_REQUEST,
                echo.as_ref(),
                -32600,
                "Invalid Request: Server already initialized",
            );
        }
        // A list answered from its cache goes out from the cache's own buffer.
        if !batch
            && let [Message::Request(r)] = messages.as_slice()
            && let Some(result) = inner.cached_list(&session, r)
        {
            return headers::json_result(
                &r.id,
                headers::shared_result(result),
                session.id_header.as_ref(),
            );
        }
        let mut replies = Vec::new();
        let mut proxied = Vec::new();
        for m in messages {
            match m {
                Message::Request(r) => match inner.local_request(&session, &r) {
                    Some(reply) => replies.push(reply),
                    None => proxied.push(r),
                },
                Message::Notification(n) => inner.handle_notification(&session, n),
                m @ (Message::Response(_) | Message::Error(_)) => {
                    inner.handle_client_response(&session, m)
                }
            }
        }
        let sid = session.id_header.as_ref();
        if proxied.is_empty() {
            return match (replies.len(), batch) {
                (0, _) => body::status(StatusCode::ACCEPTED),
                (1, false) => json_message(replies.swap_remove(0), sid),
                _ => {
                    let v: Vec<&Message> = replies.iter().collect();
                    with_session(
                        body::json_bytes(
                            StatusCode::OK,
                            serde_json::to_vec(&v).unwrap_or_default(),
                        ),
                        sid,
                    )
                }
            };
        }
        let stream = session.new_stream(StreamKind::Post);
        if session.version() >= ProtocolVersion::V2025_11_25 {
            stream.prime();
        }
        stream.expect_responses(replies.len() + proxied.len());
        for r in &replies {
            stream.respond(Some(r));
        }
        let Some(guard) = stream.attach() else {
            return body::status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        // A single call is driven by its answer's body (no task of its own, see
        // `stream::body`); the calls of a batch run in their own tasks.
        let mut inline = None;
        if batch || proxied.len() != 1 {
            for r in proxied {
                inner.spawn_proxied(&session, r, stream.clone(), batch);
            }
        } else if let Some(r) = proxied.pop()
            // Boxed where it is made: a call held unboxed across the await below would make
            // this future (and every request's, see `server::dispatch`) the call's size larger.
            && let Some(call) = inner
                .proxied(&session, r, stream.clone(), false)
                .map(|f| Box::pin(f) as stream::Call)
        {
            inline = stream::head_start(call).await;
        }
        // Not the session's token: when the session ends, this stream still carries the error
        // answers of its calls in flight, and `close_session` (or those answers) finish it.
        let b = stream::body(
            guard,
            Start::Beginning,
            CancellationToken::new(),
            inner.shutdown.clone(),
            inner.config.heartbeat,
            inline,
        );
        sse_response(b, sid)
    }

    fn get(&self, req: Request<RequestBody>) -> Response<Body> {
        let inner = &self.inner;
        let headers = req.headers();
        let session_id = match session_header(headers) {
            Ok(Some(id)) => id,
            // The Node hub's usage: `GET /mcp` opens a legacy HTTP+SSE session.
            Ok(None) => return legacy::open(inner, &req),
            Err(r) => return *r,
        };
        if !accepts(headers, "text/event-stream") {
            return body::jsonrpc_error(
                StatusCode::NOT_ACCEPTABLE,
                -32000,
                "Not Acceptable: Client must accept text/event-stream",
            );
        }
        let session = match inner.streamable_session(
            session_id,
            header_str(headers, VERSION_HEADER),
            guard::principal(&inner.config, headers),
            profile::requested(req.extensions()).as_deref(),
            None,
        ) {
            Ok(s) => s,
            Err(r) => return *r,
        };
        session.touch();
        let sid = session.id_header.as_ref();
        let resume = header_str(headers, LAST_EVENT_ID)
            .and_then(parse_event_id)
            .and_then(|(stream_id, seq)| {
                let s = session.lock().streams.get(&stream_id).cloned()?;
                Some((s, seq))
            });
        let (stream, start) = match resume {
            Some((s, seq)) => (s, Start::After(seq)),
            None => {
                let existing = session.lock().get_stream.clone();
                match existing {
                    Some(s) => (s, Start::Now),
                    None => {
                        let s = session.new_stream(StreamKind::Get);
                        if session.version() >= ProtocolVersion::V2025_11_25 {
                            s.prime();
                        }
                        (s, Start::Beginning)
                    }
                }
            }
        };
        let Some(guard) = stream.attach() else {
            return body::jsonrpc_error(
                StatusCode::CONFLICT,
                -32000,
                "Conflict: Only one SSE stream is allowed per session",
            );
        };
        let b = stream::body(
            guard,
            start,
            session.cancel.clone(),
            inner.shutdown.clone(),
            inner.config.heartbeat,
            None,
        );
        sse_response(b, sid)
    }

    fn delete(&self, req: Request<RequestBody>) -> Response<Body> {
        let headers = req.headers();
        let session_id = match session_header(headers) {
            Ok(Some(id)) => id,
            Ok(None) => {
                return body::jsonrpc_error(
                    StatusCode::BAD_REQUEST,
                    -32000,
                    "Bad Request: Mcp-Session-Id header is required",
                );
            }
            Err(r) => return *r,
        };
        match self.inner.streamable_session(
            session_id,
            header_str(headers, VERSION_HEADER),
            guard::principal(&self.inner.config, headers),
            profile::requested(req.extensions()).as_deref(),
            None,
        ) {
            Ok(s) => {
                self.inner.close_session(&s.id);
                body::status(StatusCode::OK)
            }
            Err(r) => *r,
        }
    }
}
