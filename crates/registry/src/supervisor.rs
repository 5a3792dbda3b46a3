//! One task per server: connect, list, watch, restart with backoff.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use mcp_hub_protocol::{ErrorCode, ErrorObject, Notification, RawValue, Request, methods};
use mcp_hub_transport::{
    Attribution, AuthChallenge, ClientSession, NotificationStream, RequestError, RequestOptions,
    Requester, ServerRequestHandler, SessionOptions, TransportError,
};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::catalog::{PreparedList, ServerLists};
use crate::instances::InstancePool;
use crate::registry::{Inner, lock, rebuild_catalog};
use crate::{
    CatalogList, ListKind, RegistryEvent, RegistryOptions, RoutingStats, ServerDefinition,
    ServerSnapshot, ServerStatus,
};

/// What the user wants of a server. `epoch` increases on every explicit (re)start request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Desired {
    pub(crate) run: bool,
    pub(crate) disabled: bool,
    pub(crate) epoch: u64,
}

pub(crate) struct ServerState {
    snap: Mutex<ServerSnapshot>,
    session: Mutex<Option<ClientSession>>,
    attempts_done: AtomicU64,
    exited: AtomicBool,
    changed: watch::Sender<()>,
    /// Set when a request after connect was refused with 401/403 (an expired grant, a scope
    /// step-up): the supervisor turns the server `unauthorized` with a fresh authorization URL.
    auth_challenge: Mutex<Option<AuthChallenge>>,
    auth_needed: tokio::sync::Notify,
    /// The lists prepared for the catalogue; cleared whenever a list changes.
    prepared: Mutex<Option<ServerLists>>,
    /// The state an attempt is ending in, while the catalogue is rebuilt for it.
    staged: Mutex<Option<ServerSnapshot>>,
    /// Per-session instances (isolation `session`).
    pub(crate) instances: InstancePool,
    /// Server-to-client requests the hub answered itself (see [`RoutingStats`]).
    unattributed: AtomicU64,
}

impl ServerState {
    pub(crate) fn new(def: &ServerDefinition) -> ServerState {
        let empty = Arc::new(Vec::new());
        ServerState {
            snap: Mutex::new(ServerSnapshot {
                name: def.name.clone(),
                display_name: def.display_name.clone().unwrap_or_else(|| def.name.clone()),
                description: def.description.clone().unwrap_or_default(),
                transport_type: def.transport_type,
                transport_in_use: None,
                status: if def.disabled {
                    ServerStatus::Disabled
                } else {
                    ServerStatus::Connecting
                },
                error: None,
                tools: empty.clone(),
                resources: empty.clone(),
                resource_templates: empty.clone(),
                prompts: empty,
                last_started: None,
                connected_at: None,
                authorization_url: None,
                server_info: None,
                instructions: None,
                capabilities: None,
                protocol_version: None,
                config_source: def.config_source.clone(),
                pid: None,
                restarts: 0,
                routing: RoutingStats {
                    isolation: def.client_context.isolation.as_str(),
                    ..RoutingStats::default()
                },
            }),
            session: Mutex::new(None),
            attempts_done: AtomicU64::new(0),
            exited: AtomicBool::new(false),
            changed: watch::channel(()).0,
            auth_challenge: Mutex::new(None),
            auth_needed: tokio::sync::Notify::new(),
            prepared: Mutex::new(None),
            staged: Mutex::new(None),
            instances: InstancePool::new(&def.name, def.client_context.isolation),
            unattributed: AtomicU64::new(0),
        }
    }

    pub(crate) fn snapshot(&self) -> ServerSnapshot {
        let mut snap = lock(&self.snap).clone();
        snap.routing.instances = self.instances.len();
        snap.routing.unattributed_requests = self.unattributed.load(Ordering::Relaxed);
        snap.routing.unattributed_logs = self.session().map_or(0, |s| s.unattributed_logs())
            + self.instances.unattributed_logs();
        snap
    }

    pub(crate) fn count_unattributed(&self) {
        self.unattributed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session(&self) -> Option<ClientSession> {
        lock(&self.session).clone()
    }

    /// Notes a 401/403 from a request of the live session.
    pub(crate) fn check_unauthorized<T>(&self, r: &Result<T, RequestError>) {
        if let Err(RequestError::Transport(TransportError::Unauthorized(c))) = r {
            *lock(&self.auth_challenge) = Some(c.clone());
            self.auth_needed.notify_one();
        }
    }

    pub(crate) fn attempts(&self) -> u64 {
        self.attempts_done.load(Ordering::SeqCst)
    }

    pub(crate) fn lists_if_connected(&self, def: &ServerDefinition) -> Option<ServerLists> {
        // Lock order everywhere: `staged`, then `snap`.
        let staged = lock(&self.staged);
        let snap = lock(&self.snap);
        let s = staged.as_ref().unwrap_or(&snap);
        if s.status != ServerStatus::Connected {
            return None;
        }
        let mut prepared = lock(&self.prepared);
        let lists = prepared.get_or_insert_with(|| {
            ServerLists::prepare(
                &def.name,
                &def.prefix,
                [&s.tools, &s.resources, &s.resource_templates, &s.prompts],
            )
        });
        Some(lists.clone())
    }

    fn update(&self, f: impl FnOnce(&mut ServerSnapshot)) {
        f(&mut lock(&self.snap));
        self.changed.send_replace(());
    }

    /// Ends an attempt: applies `f`, rebuilds the catalogue, and only then wakes waiters, so
    /// whoever sees the new status also sees the catalogue that goes with it.
    fn finish_attempt(&self, inner: &Inner, f: impl FnOnce(&mut ServerSnapshot)) {
        // The new state is staged for the catalogue build and published only afterwards: nobody
        // reads "connected" before the tools are routable, or "disconnected" while they still are.
        let mut next = lock(&self.snap).clone();
        f(&mut next);
        *lock(&self.staged) = Some(next);
        rebuild_catalog(inner);
        if let Some(next) = lock(&self.staged).take() {
            *lock(&self.snap) = next;
        }
        self.attempts_done.fetch_add(1, Ordering::SeqCst);
        self.changed.send_replace(());
        emit_status(inner, self);
    }

    async fn wait_until(&self, pred: impl Fn(&ServerState) -> bool) {
        let mut rx = self.changed.subscribe();
        loop {
            if pred(self) || self.exited.load(Ordering::SeqCst) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub(crate) async fn wait_attempt_done(&self, before: u64, timeout: Duration) -> ServerSnapshot {
        let _ = tokio::time::timeout(timeout, self.wait_until(|s| s.attempts() > before)).await;
        self.snapshot()
    }

    /// Waits until the server has the status a stop asked for.
    pub(crate) async fn wait_status(&self, want: ServerStatus) {
        self.wait_until(|s| lock(&s.snap).status == want).await
    }

    pub(crate) async fn wait_settled(&self) {
        self.wait_until(|s| lock(&s.snap).status != ServerStatus::Connecting)
            .await
    }

    pub(crate) async fn wait_stopped(&self) {
        self.wait_until(|_| false).await
    }
}

fn emit_status(inner: &Inner, state: &ServerState) {
    let s = lock(&state.snap);
    let _ = inner.events.send(RegistryEvent::ServerStatus {
        server: Arc::from(s.name.as_str()),
        status: s.status,
    });
}

/// How a connection attempt ended.
enum Attempt {
    Connected(ClientSession, NotificationStream),
    /// Retry after backoff.
    Retry(String),
    /// Do not retry until the user asks (unresolvable config, unsupported protocol).
    Fatal(String),
    /// Needs user authorisation.
    Unauthorized(String, Option<String>),
}

/// Hands a server's requests to the registry's client handler. On a per-session instance
/// (`owner`), everything not tied to a call of the owner is still the owner's.
pub(crate) struct UpstreamHandler {
    server: Arc<str>,
    inner: Weak<Inner>,
    owner: Option<Requester>,
}

impl UpstreamHandler {
    pub(crate) fn new(server: &str, inner: &Arc<Inner>, owner: Option<Requester>) -> Self {
        UpstreamHandler {
            server: Arc::from(server),
            inner: Arc::downgrade(inner),
            owner,
        }
    }
}

#[async_trait::async_trait]
impl ServerRequestHandler for UpstreamHandler {
    async fn handle(
        &self,
        request: Request,
        attribution: Attribution,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let attribution = match (self.owner, attribution) {
            (Some(_), a @ (Attribution::Exact(_) | Attribution::Inferred(_))) => a,
            (Some(owner), Attribution::Abandoned(_)) => Attribution::Abandoned(owner),
            (Some(owner), _) => Attribution::Inferred(Requester { call: 0, ..owner }),
            (None, a) => a,
        };
        let handler = self
            .inner
            .upgrade()
            .and_then(|i| (*i.client_handler.load_full()).clone());
        match handler {
            Some(h) => h.handle(&self.server, request, attribution).await,
            None => Err(ErrorObject::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("no client can answer {}", request.method),
            )),
        }
    }
}

/// The options of every upstream session of the registry.
pub(crate) fn session_options(opts: &RegistryOptions) -> SessionOptions {
    SessionOptions {
        client_info: opts.client_info.clone(),
        capabilities: opts.client_capabilities.clone(),
        initialize_timeout: opts.initialize_timeout,
        request_timeout: opts.request_timeout,
        max_message_bytes: opts.max_message_bytes,
        abandoned_grace: opts.abandoned_grace,
        ..SessionOptions::default()
    }
}

async fn connect(inner: &Arc<Inner>, def: &ServerDefinition) -> Attempt {
    let spec = match def.connector.spec().await {
        Ok(spec) => spec,
        Err(e) => return Attempt::Fatal(e),
    };
    let opts = session_options(&inner.opts);
    let handler = Arc::new(UpstreamHandler::new(&def.name, inner, None));
    let connecting = ClientSession::connect(spec, opts, handler);
    match tokio::time::timeout(inner.opts.initialize_timeout, connecting).await {
        Err(_) => Attempt::Retry(format!(
            "no answer to initialize within {:?}",
            inner.opts.initialize_timeout
        )),
        Ok(Ok((session, notes))) => Attempt::Connected(session, notes),
        Ok(Err(TransportError::Unauthorized(challenge))) => {
            needs_authorization(def, &challenge).await
        }
        Ok(Err(e @ (TransportError::ModernOnly | TransportError::UnsupportedVersion(_)))) => {
            Attempt::Fatal(e.to_string())
        }
        Ok(Err(e)) => Attempt::Retry(e.to_string()),
    }
}

const UNAUTHORIZED: &str = "Unauthorized: the server requires authorization";

/// What to do when a server refuses the hub's credentials: wait for the user to open an
/// authorization URL, or give up with the reason authorising cannot help.
async fn needs_authorization(def: &ServerDefinition, challenge: &AuthChallenge) -> Attempt {
    match def.connector.authorization_url(challenge).await {
        Ok(url) => Attempt::Unauthorized(UNAUTHORIZED.to_owned(), url),
        Err(reason) => Attempt::Fatal(reason),
    }
}

async fn list_all(
    session: &ClientSession,
    method: &str,
    key: &str,
) -> Result<Vec<Value>, RequestError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    // Bounded: a server that keeps returning cursors cannot keep the hub listing forever.
    for _ in 0..1000 {
        let params = cursor.as_ref().map(|c| {
            let mut m = Map::new();
            m.insert("cursor".into(), Value::String(c.clone()));
            mcp_hub_protocol::to_raw(&m).expect("a map serialises")
        });
        let raw = session
            .request(method, params, RequestOptions::default())
            .await?;
        let mut page: Map<String, Value> = serde_json::from_str(raw.get())
            .map_err(|e| RequestError::Closed(format!("bad {method} result: {e}")))?;
        if let Some(Value::Array(list)) = page.remove(key) {
            items.extend(list);
        }
        match page.remove("nextCursor") {
            Some(Value::String(c)) if !c.is_empty() && cursor.as_deref() != Some(c.as_str()) => {
                cursor = Some(c)
            }
            _ => return Ok(items),
        }
    }
    Ok(items)
}

/// Re-lists what a server offers (everything, or one kind) and rebuilds the catalogue.
pub(crate) async fn refresh_lists(
    inner: &Inner,
    state: &ServerState,
    session: &ClientSession,
    only: Option<ListKind>,
) {
    let caps = session.initialize_result().capabilities.clone();
    let want = |k: ListKind, cap: &str| only.is_none_or(|o| o == k) && caps.contains_key(cap);
    let get = |want: bool, method: &'static str, key: &'static str| async move {
        if !want {
            return None;
        }
        let r = list_all(session, method, key).await;
        state.check_unauthorized(&r);
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(target: "mcp_hub::registry", server = %session_name(state), "{method} failed: {e}");
                Some(Vec::new())
            }
        }
    };
    let (tools, resources, templates, prompts) = tokio::join!(
        get(want(ListKind::Tools, "tools"), methods::TOOLS_LIST, "tools"),
        get(
            want(ListKind::Resources, "resources"),
            methods::RESOURCES_LIST,
            "resources"
        ),
        get(
            want(ListKind::Resources, "resources"),
            methods::RESOURCES_TEMPLATES_LIST,
            "resourceTemplates"
        ),
        get(
            want(ListKind::Prompts, "prompts"),
            methods::PROMPTS_LIST,
            "prompts"
        ),
    );
    let mut changed = Vec::new();
    state.update(|s| {
        let mut set = |slot: &mut Arc<Vec<Value>>, new: Option<Vec<Value>>, kind: ListKind| {
            if let Some(new) = new
                && **slot != new
            {
                *slot = Arc::new(new);
                if !changed.contains(&kind) {
                    changed.push(kind);
                }
            }
        };
        set(&mut s.tools, tools, ListKind::Tools);
        set(&mut s.resources, resources, ListKind::Resources);
        set(&mut s.resource_templates, templates, ListKind::Resources);
        set(&mut s.prompts, prompts, ListKind::Prompts);
    });
    if !changed.is_empty() {
        // Only the lists that changed are prepared again: the others keep their identity, so the
        // catalogue announces only what changed.
        let raw = {
            let s = lock(&state.snap);
            [
                s.tools.clone(),
                s.resources.clone(),
                s.resource_templates.clone(),
                s.prompts.clone(),
            ]
        };
        if let Some(p) = lock(&state.prepared).as_mut() {
            for kind in &changed {
                let lists: &[CatalogList] = match kind {
                    ListKind::Tools => &[CatalogList::Tools],
                    ListKind::Resources => {
                        &[CatalogList::Resources, CatalogList::ResourceTemplates]
                    }
                    ListKind::Prompts => &[CatalogList::Prompts],
                };
                for &l in lists {
                    p.lists[l as usize] = Arc::new(PreparedList::prepare(
                        l,
                        &p.name,
                        &p.prefix,
                        &raw[l as usize],
                    ));
                }
            }
        }
    }
    // Before the server counts as connected its lists are not in the catalogue yet: the rebuild
    // that makes it connected picks them up.
    if !changed.is_empty() && state.snapshot().status == ServerStatus::Connected {
        rebuild_catalog(inner);
        let server: Arc<str> = Arc::from(session_name(state).as_str());
        for kind in changed {
            let _ = inner.events.send(RegistryEvent::ListChanged {
                server: server.clone(),
                kind,
            });
        }
    }
}

fn session_name(state: &ServerState) -> String {
    lock(&state.snap).name.clone()
}

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() {
        u16::from_le_bytes(b)
    } else {
        0
    };
    // ±20 %, so servers that failed together do not all come back at the same instant.
    let factor = 0.8 + 0.4 * (f64::from(r) / f64::from(u16::MAX));
    d.mul_f64(factor)
}

/// Sleeps for the backoff, or less if the user asks for something. Returns false on shutdown.
async fn backoff_sleep(
    d: Duration,
    desired: &mut watch::Receiver<Desired>,
    stop: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(jitter(d)) => true,
        r = desired.changed() => r.is_ok(),
    }
}

pub(crate) async fn run(
    inner: Arc<Inner>,
    def: ServerDefinition,
    state: Arc<ServerState>,
    mut desired: watch::Receiver<Desired>,
    stop: CancellationToken,
) {
    let opts = inner.opts.clone();
    let mut backoff = opts.backoff_initial;
    'outer: loop {
        // Idle until asked to run.
        loop {
            let d = *desired.borrow_and_update();
            if d.run {
                break;
            }
            let status = if d.disabled {
                ServerStatus::Disabled
            } else {
                ServerStatus::Disconnected
            };
            let was = state.snapshot().status;
            state.update(|s| {
                s.status = status;
                s.connected_at = None;
                s.pid = None;
                s.transport_in_use = None;
                if status == ServerStatus::Disabled {
                    s.error = None;
                }
            });
            if was != status {
                emit_status(&inner, &state);
            }
            state.attempts_done.fetch_add(1, Ordering::SeqCst);
            state.changed.send_replace(());
            tokio::select! {
                _ = stop.cancelled() => break 'outer,
                r = desired.changed() => if r.is_err() { break 'outer },
            }
        }
        let epoch = desired.borrow().epoch;
        state.update(|s| {
            s.status = ServerStatus::Connecting;
            s.last_started = Some(SystemTime::now());
            s.error = None;
        });
        emit_status(&inner, &state);
        tracing::info!(target: "mcp_hub::registry", server = %def.name, "connecting");

        let attempt = tokio::select! {
            _ = stop.cancelled() => break 'outer,
            a = connect(&inner, &def) => a,
            _ = wait_for_change(&mut desired, epoch) => continue 'outer,
        };
        let (session, mut notes) = match attempt {
            Attempt::Connected(s, n) => (s, n),
            Attempt::Retry(reason) => {
                tracing::warn!(target: "mcp_hub::registry", server = %def.name, "failed to connect: {reason}; retrying in ~{backoff:?}");
                fail(&inner, &state, ServerStatus::Disconnected, reason, None);
                if !backoff_sleep(backoff, &mut desired, &stop).await {
                    break 'outer;
                }
                backoff = (backoff * 2).min(opts.backoff_max);
                state.update(|s| s.restarts += 1);
                continue 'outer;
            }
            Attempt::Fatal(reason) => {
                tracing::error!(target: "mcp_hub::registry", server = %def.name, "cannot connect: {reason}");
                fail(&inner, &state, ServerStatus::Disconnected, reason, None);
                if !wait_for_request(&mut desired, &stop).await {
                    break 'outer;
                }
                continue 'outer;
            }
            Attempt::Unauthorized(reason, url) => {
                tracing::warn!(target: "mcp_hub::registry", server = %def.name, "needs authorization");
                fail(&inner, &state, ServerStatus::Unauthorized, reason, url);
                if !wait_for_request(&mut desired, &stop).await {
                    break 'outer;
                }
                continue 'outer;
            }
        };

        *lock(&state.session) = Some(session.clone());
        let level = lock(&inner.log_level).clone();
        if let Some(level) = level {
            // A level a client set before this server (re)connected applies to it too.
            crate::routing::apply_log_level(&session, &level).await;
        }
        refresh_lists(&inner, &state, &session, None).await;
        let init = session.initialize_result().clone();
        state.finish_attempt(&inner, |s| {
            s.status = ServerStatus::Connected;
            s.error = None;
            s.authorization_url = None;
            s.connected_at = Some(Instant::now());
            s.server_info = serde_json::to_value(&init.server_info).ok();
            s.instructions = init.instructions.clone();
            s.capabilities = Some(init.capabilities.clone());
            s.protocol_version = Some(init.protocol_version.clone());
            s.pid = session.pid();
            s.transport_in_use = Some(session.transport_kind());
        });
        tracing::info!(target: "mcp_hub::registry", server = %def.name, transport = session.transport_kind(), "connected");
        let connected_at = Instant::now();

        let mut ping = opts
            .ping_interval
            .map(|p| tokio::time::interval_at(tokio::time::Instant::now() + p, p));
        let mut missed_pings = 0u32;
        let mut notes_open = true;
        let reason = loop {
            tokio::select! {
                reason = session.closed() => break Some(reason.to_string()),
                n = notes.recv(), if notes_open => match n {
                    Some(n) => on_notification(&inner, &state, &session, n).await,
                    None => notes_open = false,
                },
                _ = async { match ping.as_mut() { Some(p) => { p.tick().await; } None => std::future::pending().await } } => {
                    let o = RequestOptions { timeout: Some(Duration::from_secs(10)), ..Default::default() };
                    match session.request(methods::PING, None, o).await {
                        Ok(_) => missed_pings = 0,
                        Err(RequestError::Rpc(_)) => missed_pings = 0, // it answered
                        Err(e) => {
                            missed_pings += 1;
                            tracing::warn!(target: "mcp_hub::registry", server = %def.name, "ping failed ({missed_pings}): {e}");
                            if missed_pings >= 2 {
                                session.close().await;
                                break Some(format!("stopped answering pings: {e}"));
                            }
                        }
                    }
                }
                _ = state.auth_needed.notified() => {
                    let challenge = lock(&state.auth_challenge).take();
                    session.close().await;
                    *lock(&state.session) = None;
                    tracing::warn!(target: "mcp_hub::registry", server = %def.name, "the server refused the hub's credentials");
                    let (status, reason, url) = match challenge {
                        Some(c) => match def.connector.authorization_url(&c).await {
                            Ok(url) => (ServerStatus::Unauthorized, UNAUTHORIZED.to_owned(), url),
                            Err(reason) => (ServerStatus::Disconnected, reason, None),
                        },
                        None => (ServerStatus::Unauthorized, UNAUTHORIZED.to_owned(), None),
                    };
                    fail(&inner, &state, status, reason, url);
                    if !wait_for_request(&mut desired, &stop).await {
                        break 'outer;
                    }
                    continue 'outer;
                }
                r = desired.changed() => {
                    if r.is_err() { session.close().await; break None; }
                    let d = *desired.borrow();
                    if !d.run || d.epoch != epoch {
                        session.close().await;
                        break None;
                    }
                }
                _ = stop.cancelled() => {
                    session.close().await;
                    *lock(&state.session) = None;
                    break 'outer;
                }
            }
        };
        *lock(&state.session) = None;
        state.update(|s| {
            s.connected_at = None;
            s.pid = None;
        });
        match reason {
            None => {
                // Stopped or restarted on request: the idle loop or the next attempt sets status.
                state.instances.close_all().await;
                state.update(|s| s.status = ServerStatus::Disconnected);
                rebuild_catalog(&inner);
                emit_status(&inner, &state);
            }
            Some(reason) => {
                if connected_at.elapsed() >= opts.healthy_after {
                    backoff = opts.backoff_initial;
                }
                tracing::warn!(target: "mcp_hub::registry", server = %def.name, "connection lost: {reason}; restarting in ~{backoff:?}");
                fail(&inner, &state, ServerStatus::Disconnected, reason, None);
                if !backoff_sleep(backoff, &mut desired, &stop).await {
                    break 'outer;
                }
                backoff = (backoff * 2).min(opts.backoff_max);
                state.update(|s| s.restarts += 1);
            }
        }
    }
    let leftover = lock(&state.session).take();
    if let Some(s) = leftover {
        s.close().await;
    }
    state.instances.shut_down().await;
    state.update(|s| {
        s.status = ServerStatus::Disconnected;
        s.connected_at = None;
        s.pid = None;
    });
    rebuild_catalog(&inner);
    state.exited.store(true, Ordering::SeqCst);
    state.changed.send_replace(());
}

fn fail(
    inner: &Inner,
    state: &ServerState,
    status: ServerStatus,
    reason: String,
    url: Option<String>,
) {
    state.finish_attempt(inner, |s| {
        s.status = status;
        s.error = Some(reason);
        s.authorization_url = url;
        s.connected_at = None;
        s.pid = None;
        s.transport_in_use = None;
    });
}

async fn wait_for_change(desired: &mut watch::Receiver<Desired>, epoch: u64) {
    loop {
        if desired.changed().await.is_err() {
            return std::future::pending().await;
        }
        let d = *desired.borrow();
        if !d.run || d.epoch != epoch {
            return;
        }
    }
}

/// Waits for the user to ask for a (re)start. Returns false on shutdown.
async fn wait_for_request(
    desired: &mut watch::Receiver<Desired>,
    stop: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        r = desired.changed() => r.is_ok(),
    }
}

async fn on_notification(
    inner: &Inner,
    state: &ServerState,
    session: &ClientSession,
    n: Notification,
) {
    let server: Arc<str> = Arc::from(session_name(state).as_str());
    match n.method.as_str() {
        methods::TOOLS_LIST_CHANGED => {
            refresh_lists(inner, state, session, Some(ListKind::Tools)).await
        }
        methods::RESOURCES_LIST_CHANGED => {
            refresh_lists(inner, state, session, Some(ListKind::Resources)).await
        }
        methods::PROMPTS_LIST_CHANGED => {
            refresh_lists(inner, state, session, Some(ListKind::Prompts)).await
        }
        methods::RESOURCES_UPDATED => {
            let uri = n
                .params
                .as_ref()
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .and_then(|v| v.get("uri").and_then(Value::as_str).map(str::to_owned));
            if let Some(uri) = uri {
                let exposed = inner.catalog.load().expose_uri(&server, &uri);
                let _ = inner.events.send(RegistryEvent::ResourceUpdated {
                    server,
                    uri: exposed,
                });
            }
        }
        _ => {
            let _ = inner.events.send(RegistryEvent::ServerNotification {
                server,
                notification: n,
            });
        }
    }
}
