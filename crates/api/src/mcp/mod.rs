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
mod legacy;
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

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use mcp_hub_protocol::{Incoming as Batch, Message, ProtocolVersion, SUPPORTED_PROTOCOL_VERSIONS};
use mcp_hub_registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::ApiConfig;
use crate::body::{self, Body, RequestBody};
use crate::guard;
use session::Session;
use stream::{EventStream, Start, StreamKind};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const LAST_EVENT_ID: &str = "last-event-id";

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
    callers: Mutex<HashMap<u64, CallerTarget>>,
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
    stateless_calls: Mutex<HashMap<u64, stateless::Caller>>,
    /// Stateless calls parked for their client's input (MRTR) and the key that seals them.
    bridge: stateless::mrtr::Bridge,
    /// What each profile's sessions were last told about their view.
    announced: profile::Announced,
    /// Cluster mode's session directory, when the hub runs as one replica of several.
    cluster: std::sync::OnceLock<Arc<dyn crate::Cluster>>,
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
            callers: Mutex::new(HashMap::new()),
            next_caller: AtomicU64::new(1),
            elicitations: Mutex::new(HashMap::new()),
            applied_level: Mutex::new(None),
            draining: std::sync::atomic::AtomicBool::new(false),
            stateless_in_flight: std::sync::atomic::AtomicUsize::new(0),
            stateless_calls: Mutex::new(HashMap::new()),
            bridge: stateless::mrtr::Bridge::new(),
            announced: profile::Announced::default(),
            cluster: std::sync::OnceLock::new(),
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
        let req = match self
            .inner
            .route_in_cluster(req, forward::SessionIn::Header)
            .await
        {
            Ok(req) => req,
            Err(answered) => return answered,
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
        self.inner.claim_created(resp).await
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
        let headers = req.headers();
        if !accepts(headers, "application/json") || !accepts(headers, "text/event-stream") {
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
            Ok(id) => id.map(str::to_owned),
            Err(r) => return *r,
        };
        let version_header = header_str(headers, VERSION_HEADER).map(str::to_owned);
        let principal = guard::principal(&inner.config, headers);
        let headers = headers.clone();
        let client = client_key(principal, req.extensions());
        let profile = profile::requested(req.extensions());
        let bytes = match body::read_limited(req.into_body(), inner.config.max_body_bytes).await {
            Ok(b) => b,
            Err(status) => return body::unreadable(status),
        };
        let incoming = match Batch::from_slice(&bytes) {
            Ok(i) => trace_header::adopt(&headers, i),
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
                    if stateless::is_modern(&r, &params, &headers) =>
                {
                    inner
                        .stateless(&headers, r, params, principal, profile)
                        .await
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
            &session_id,
            version_header.as_deref(),
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
        let sid = Some(&*session.id);
        if proxied.is_empty() {
            return match (replies.len(), batch) {
                (0, _) => body::status(StatusCode::ACCEPTED),
                (1, false) => json_message(&replies[0], sid),
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
        } else if let Some(r) = proxied.pop() {
            inline = inner
                .proxied(&session, r, stream.clone(), false)
                .map(|f| Box::pin(f) as stream::Call);
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
        let sid = Some(&*session.id);
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

impl Inner {
    /// Looks up a Streamable HTTP session and checks the `MCP-Protocol-Version` header.
    /// `profile` is the endpoint the request came to (`None`: `/mcp`).
    fn streamable_session(
        &self,
        id: &str,
        version: Option<&str>,
        principal: Option<usize>,
        profile: Option<&str>,
        echo: Option<&mcp_hub_protocol::RequestId>,
    ) -> Result<Arc<Session>, Box<Response<Body>>> {
        if let Some(v) = version
            && ProtocolVersion::parse(v).is_none()
        {
            return Err(Box::new(body::jsonrpc_error_for(
                StatusCode::BAD_REQUEST,
                echo,
                -32000,
                &format!(
                    "Bad Request: Unsupported protocol version: {v} (supported versions: {})",
                    SUPPORTED_PROTOCOL_VERSIONS.join(", ")
                ),
            )));
        }
        // A session belongs to the principal that opened it, at the endpoint it was opened at:
        // to anyone else, or at another endpoint, it does not exist. One that was ended (its
        // client stopped reading) is gone too.
        let session = lock(&self.sessions).get(id).cloned().filter(|s| {
            if s.cancel.is_cancelled() {
                return false;
            }
            let mut st = s.lock();
            let mine = st.principal == principal && st.profile.as_deref() == profile;
            if mine {
                st.handshake_done = true;
            }
            mine
        });
        match session {
            Some(s) if s.legacy => Err(Box::new(body::jsonrpc_error_for(
                StatusCode::BAD_REQUEST,
                echo,
                -32000,
                "Bad Request: this session belongs to the HTTP+SSE transport (POST /messages)",
            ))),
            Some(s) => Ok(s),
            None => Err(Box::new(body::jsonrpc_error_for(
                StatusCode::NOT_FOUND,
                echo,
                -32001,
                "Session not found",
            ))),
        }
    }

    /// Registers a session, making room if needed (see [`session::make_room`]): one client that
    /// opens sessions and never closes them cannot lock others out. Refused (503) only when the
    /// sessions that stand in the way are all busy.
    fn insert_session(self: &Arc<Self>, session: Arc<Session>) -> Result<(), session::Full> {
        loop {
            let room = {
                let mut sessions = lock(&self.sessions);
                match session::make_room(
                    &sessions,
                    session.client,
                    self.config.max_sessions,
                    self.config.max_sessions_per_client,
                ) {
                    Ok(None) => {
                        sessions.insert(session.id.clone(), session);
                        return Ok(());
                    }
                    Ok(Some(victim)) => victim,
                    Err(full) => return Err(full),
                }
            };
            tracing::debug!(target: "mcp_hub::api", session = %room, client = ?session.client, "session table or client quota full: closing an idle session");
            self.close_session(&room);
        }
    }

    /// `initialize` without a session id: a new Streamable HTTP session.
    fn create_session(
        self: &Arc<Self>,
        req: mcp_hub_protocol::Request,
        principal: Option<usize>,
        client: session::ClientKey,
        profile: Option<Arc<str>>,
    ) -> Response<Body> {
        let Some(id) = session::new_session_id() else {
            return body::jsonrpc_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                -32603,
                "Internal error: no randomness for a session id",
            );
        };
        let session = Session::for_client(
            id,
            false,
            ProtocolVersion::LATEST,
            &self.sessions_root,
            client,
        );
        {
            let mut st = session.lock();
            st.principal = principal;
            st.profile = profile;
        }
        let reply = self.initialize(&session, &req);
        if matches!(reply, Message::Error(_)) {
            return json_message(&reply, None);
        }
        if let Err(full) = self.insert_session(session.clone()) {
            return too_many_sessions(full);
        }
        self.note_view(&session);
        tracing::debug!(target: "mcp_hub::api", session = %session.id, version = %session.version(), "MCP session started");
        let mut resp = json_message(&reply, Some(&session.id));
        resp.extensions_mut()
            .insert(forward::Created(session.id.clone()));
        resp
    }

    /// Ends a session: its streams close, its in-flight calls are cancelled upstream, its
    /// resource subscriptions are released.
    pub(crate) fn close_session(self: &Arc<Self>, id: &str) {
        let Some(session) = lock(&self.sessions).remove(id) else {
            return;
        };
        session.cancel.cancel();
        let (subs, streams, answering) = {
            let mut st = session.lock();
            st.pending.clear();
            let callers: Vec<u64> = st.in_flight.drain().map(|(_, (_, c))| c).collect();
            let streams: Vec<Arc<EventStream>> = st.streams.drain().map(|(_, s)| s).collect();
            st.get_stream = None;
            (std::mem::take(&mut st.subscriptions), streams, callers)
        };
        // A POST stream with calls in flight ends when their tasks have answered them (with an
        // error: the session's token is cancelled), not before: the client gets an answer.
        let answering: Vec<Arc<EventStream>> = {
            let callers = lock(&self.callers);
            answering
                .iter()
                .filter_map(|c| callers.get(c).map(|(_, s, _)| s.clone()))
                .filter(|s| s.kind == StreamKind::Post)
                .collect()
        };
        for s in streams {
            if !answering.iter().any(|a| Arc::ptr_eq(a, &s)) {
                s.finish();
            }
        }
        lock(&self.elicitations).retain(|_, sid| **sid != *id);
        if !self.shutdown.is_cancelled() {
            // Per-session instances of isolated servers end with their session.
            let registry = self.registry.clone();
            let key = session.key;
            tokio::spawn(async move { registry.release_session(key).await });
        }
        if !subs.is_empty() && !self.shutdown.is_cancelled() {
            let registry = self.registry.clone();
            tokio::spawn(async move {
                for uri in subs {
                    if let Err(e) = registry.unsubscribe_resource(&uri).await {
                        tracing::debug!(target: "mcp_hub::api", %uri, "unsubscribe on session end failed: {e}");
                    }
                }
            });
        }
        self.update_upstream_level();
        self.release_in_cluster(id);
        tracing::debug!(target: "mcp_hub::api", session = %id, "MCP session ended");
    }
}

fn too_many_sessions(full: session::Full) -> Response<Body> {
    let msg = match full {
        session::Full::Table => "Service Unavailable: too many MCP sessions",
        session::Full::Client => {
            "Service Unavailable: too many MCP sessions for this client (all of them in use)"
        }
    };
    body::jsonrpc_error(StatusCode::SERVICE_UNAVAILABLE, -32000, msg)
}

/// The client a request counts against: its bearer token, else its address.
pub(crate) fn client_key(
    principal: Option<usize>,
    extensions: &http::Extensions,
) -> session::ClientKey {
    match (principal, extensions.get::<crate::server::Peer>()) {
        (Some(token), _) => session::ClientKey::Token(token),
        (None, Some(peer)) => session::ClientKey::Peer(peer.0.ip()),
        (None, None) => session::ClientKey::Unknown,
    }
}

/// The `Mcp-Session-Id` header: `Ok(None)` when absent or empty; an error response when it holds
/// anything but visible ASCII (the only characters a session id may have), rather than treating
/// it as missing.
fn session_header(headers: &HeaderMap) -> Result<Option<&str>, Box<Response<Body>>> {
    let Some(value) = headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    let visible = |s: &str| s.bytes().all(|b| (0x21..=0x7e).contains(&b));
    match value.to_str().map(str::trim) {
        Ok("") => Ok(None),
        Ok(id) if visible(id) => Ok(Some(id)),
        _ => Err(Box::new(body::jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32000,
            "Bad Request: the Mcp-Session-Id header may contain only visible ASCII characters \
             (0x21-0x7E); no session has this id",
        ))),
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Whether the `Accept` header admits `mime` (absent Accept admits everything).
pub(crate) fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    let mut any_header = false;
    for v in headers.get_all(header::ACCEPT) {
        any_header = true;
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let t = part.split(';').next().unwrap_or("").trim();
            let major = mime.split('/').next().unwrap_or("");
            if t.eq_ignore_ascii_case(mime)
                || t == "*/*"
                || t.strip_suffix("/*")
                    .is_some_and(|m| m.eq_ignore_ascii_case(major))
            {
                return true;
            }
        }
    }
    !any_header
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE.as_str())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// `"<stream>-<seq>"` → `(stream, seq)`.
fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (s, q) = id.split_once('-')?;
    Some((s.parse().ok()?, q.parse().ok()?))
}

/// Header names as values: inserting by `&str` parses and validates the name on every response.
const SESSION_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(SESSION_HEADER);
const X_ACCEL_BUFFERING: http::HeaderName = http::HeaderName::from_static("x-accel-buffering");

fn with_session(mut r: Response<Body>, session: Option<&str>) -> Response<Body> {
    if let Some(id) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        r.headers_mut().insert(SESSION_HEADER_NAME, id);
    }
    r
}

fn json_message(msg: &Message, session: Option<&str>) -> Response<Body> {
    with_session(body::json_bytes(StatusCode::OK, msg.to_vec()), session)
}

pub(crate) fn sse_response(b: Body, session: Option<&str>) -> Response<Body> {
    let mut r = Response::new(b);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    with_session(r, session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header() {
        let mut h = HeaderMap::new();
        assert!(accepts(&h, "text/event-stream"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(accepts(&h, "application/json"));
        assert!(!accepts(&h, "text/event-stream"));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream, application/json;q=0.9"),
        );
        assert!(accepts(&h, "application/json"));
        assert!(accepts(&h, "text/event-stream"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&h, "text/event-stream"));
    }

    #[test]
    fn event_ids() {
        assert_eq!(parse_event_id("3-17"), Some((3, 17)));
        assert_eq!(parse_event_id("x-1"), None);
        assert_eq!(parse_event_id("31"), None);
    }
}
