//! The state of one server: its published snapshot, live session, and what waiters watch.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mcp_hub_transport::{AuthChallenge, ClientSession, RequestError, TransportError};
use tokio::sync::watch;

use crate::instances::InstancePool;
use crate::prepared::ServerLists;
use crate::sync::lock;
use crate::{ItemList, RoutingStats, ServerDefinition, ServerSnapshot, ServerStatus};

/// What the user wants of a server. `epoch` increases on every explicit (re)start request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Desired {
    pub(crate) run: bool,
    pub(crate) disabled: bool,
    pub(crate) epoch: u64,
}

pub(crate) struct ServerState {
    snap: Mutex<ServerSnapshot>,
    pub(crate) session: Mutex<Option<ClientSession>>,
    pub(crate) attempts_done: AtomicU64,
    /// The `Desired::epoch` of the latest attempt the supervisor began, so a start request can
    /// tell an attempt already asked for (or under way) from a server waiting to be asked.
    started_epoch: AtomicU64,
    pub(crate) exited: AtomicBool,
    pub(crate) changed: watch::Sender<()>,
    /// Set when a request after connect was refused with 401/403 (an expired grant, a scope
    /// step-up): the supervisor turns the server `unauthorized` with a fresh authorization URL.
    pub(crate) auth_challenge: Mutex<Option<AuthChallenge>>,
    pub(crate) auth_needed: tokio::sync::Notify,
    /// The lists prepared for the catalogue; cleared whenever a list changes.
    pub(crate) prepared: Mutex<Option<ServerLists>>,
    /// The state an attempt is ending in, while the catalogue is rebuilt for it.
    staged: Mutex<Option<ServerSnapshot>>,
    /// Set when the last listing found more items than the hub serves, with the reason.
    pub(crate) list_overflow: Mutex<Option<String>>,
    /// Per-session instances (isolation `session`).
    pub(crate) instances: InstancePool,
    /// Server-to-client requests the hub answered itself (see [`RoutingStats`]).
    unattributed: AtomicU64,
    /// The tools as the server listed them, before [`tool_filter`](Self::tool_filter): the
    /// snapshot holds only what passes.
    pub(crate) all_tools: Mutex<ItemList>,
    /// The definition's tool filter, changed in place on reload.
    pub(crate) tool_filter: Mutex<crate::ToolFilter>,
    /// Call figures (see [`crate::observe`]).
    pub(crate) calls: crate::observe::ServerCalls,
}

impl ServerState {
    pub(crate) fn new(def: &ServerDefinition) -> ServerState {
        let empty = ItemList::default();
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
                calls: Default::default(),
            }),
            session: Mutex::new(None),
            attempts_done: AtomicU64::new(0),
            started_epoch: AtomicU64::new(0),
            exited: AtomicBool::new(false),
            changed: watch::channel(()).0,
            auth_challenge: Mutex::new(None),
            auth_needed: tokio::sync::Notify::new(),
            prepared: Mutex::new(None),
            staged: Mutex::new(None),
            list_overflow: Mutex::new(None),
            instances: InstancePool::new(&def.name, def.client_context.isolation),
            unattributed: AtomicU64::new(0),
            all_tools: Mutex::new(ItemList::default()),
            tool_filter: Mutex::new(def.tools.clone()),
            calls: crate::observe::ServerCalls::default(),
        }
    }

    pub(crate) fn snapshot(&self) -> ServerSnapshot {
        let mut snap = lock(&self.snap).clone();
        snap.routing.instances = self.instances.len();
        snap.routing.unattributed_requests = self.unattributed.load(Ordering::Relaxed);
        snap.routing.unattributed_logs = self.session().map_or(0, |s| s.unattributed_logs())
            + self.instances.unattributed_logs();
        snap.calls = self.calls.summary();
        snap
    }

    pub(crate) fn count_unattributed(&self) {
        self.unattributed.fetch_add(1, Ordering::Relaxed);
    }

    /// The four lists as last published (tools, resources, templates, prompts).
    pub(crate) fn lists(&self) -> [ItemList; 4] {
        let s = lock(&self.snap);
        [
            s.tools.clone(),
            s.resources.clone(),
            s.resource_templates.clone(),
            s.prompts.clone(),
        ]
    }

    /// The tools of the state being published (staged while the catalogue is rebuilt for it).
    pub(crate) fn current_tools(&self) -> ItemList {
        let staged = lock(&self.staged);
        match staged.as_ref() {
            Some(s) => s.tools.clone(),
            None => lock(&self.snap).tools.clone(),
        }
    }

    pub(crate) fn name(&self) -> String {
        lock(&self.snap).name.clone()
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

    /// Notes that an attempt for `epoch` begins.
    pub(crate) fn begin_attempt(&self, epoch: u64) {
        self.started_epoch.store(epoch, Ordering::SeqCst);
    }

    /// The epoch of the latest attempt begun.
    pub(crate) fn started_epoch(&self) -> u64 {
        self.started_epoch.load(Ordering::SeqCst)
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut ServerSnapshot)) {
        f(&mut lock(&self.snap));
        self.changed.send_replace(());
    }

    /// Ends an attempt: applies `f`, lets `rebuild` build the catalogue, and only then wakes
    /// waiters, so whoever sees the new status also sees the catalogue that goes with it.
    pub(crate) fn finish_attempt(
        &self,
        rebuild: impl FnOnce(),
        f: impl FnOnce(&mut ServerSnapshot),
    ) {
        // The new state is staged for the catalogue build and published only afterwards: nobody
        // reads "connected" before the tools are routable, or "disconnected" while they still are.
        let mut next = lock(&self.snap).clone();
        f(&mut next);
        *lock(&self.staged) = Some(next);
        rebuild();
        if let Some(next) = lock(&self.staged).take() {
            *lock(&self.snap) = next;
        }
        self.attempts_done.fetch_add(1, Ordering::SeqCst);
        self.changed.send_replace(());
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
