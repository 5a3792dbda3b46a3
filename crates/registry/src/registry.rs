//! The [`Registry`]: the set of servers, their lifecycle operations and the catalogue rebuild.
//! Routing of calls lives in `routing`, per-session instances in `instances`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use indexmap::IndexMap;
use mcp_hub_transport::ClientSession;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::catalog::ServerLists;
use crate::events::RegistryEvent;
use crate::supervisor::{self, Desired, ServerState};
use crate::{
    Catalog, ClientRequestHandler, Isolation, RegistryError, RegistryOptions, RouteError,
    ServerDefinition, ServerSnapshot, ServerStatus,
};

/// Where a routed request goes.
pub(crate) struct Route {
    pub(crate) session: ClientSession,
    pub(crate) state: Arc<ServerState>,
    pub(crate) timeout: Option<Duration>,
    /// The definition, when the server is isolated per session.
    pub(crate) isolated: Option<ServerDefinition>,
}

pub(crate) struct Slot {
    pub(crate) def: ServerDefinition,
    pub(crate) state: Arc<ServerState>,
    pub(crate) desired: watch::Sender<Desired>,
    pub(crate) stop: CancellationToken,
}

pub(crate) struct Inner {
    pub(crate) opts: RegistryOptions,
    pub(crate) servers: Mutex<IndexMap<String, Slot>>,
    pub(crate) catalog: ArcSwap<Catalog>,
    catalog_version: AtomicU64,
    rebuild_lock: Mutex<()>,
    rebuild_requested: AtomicU64,
    rebuilt_through: AtomicU64,
    pub(crate) events: broadcast::Sender<RegistryEvent>,
    pub(crate) client_handler: ArcSwap<Option<Arc<dyn ClientRequestHandler>>>,
    pub(crate) subscriptions: Mutex<IndexMap<(Arc<str>, String), usize>>,
    /// The level last set with `logging/setLevel`, for servers that connect later.
    pub(crate) log_level: Mutex<Option<String>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// Many upstream servers managed as one. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("servers", &self.names())
            .finish()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the data half-updated in a way
    // that matters more than stopping the hub would, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// An empty registry.
    pub fn new(opts: RegistryOptions) -> Registry {
        let (events, _) = broadcast::channel(1024);
        Registry {
            inner: Arc::new(Inner {
                opts,
                servers: Mutex::new(IndexMap::new()),
                catalog: ArcSwap::from_pointee(Catalog::default()),
                catalog_version: AtomicU64::new(0),
                rebuild_lock: Mutex::new(()),
                rebuild_requested: AtomicU64::new(0),
                rebuilt_through: AtomicU64::new(0),
                events,
                client_handler: ArcSwap::from_pointee(None),
                subscriptions: Mutex::new(IndexMap::new()),
                log_level: Mutex::new(None),
                tracker: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Installs the handler for server-to-client requests.
    pub fn set_client_handler(&self, handler: Arc<dyn ClientRequestHandler>) {
        self.inner.client_handler.store(Arc::new(Some(handler)));
    }

    /// Subscribes to registry events.
    pub fn events(&self) -> broadcast::Receiver<RegistryEvent> {
        self.inner.events.subscribe()
    }

    /// The current catalogue snapshot.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.load_full()
    }

    /// Server names in config order.
    pub fn names(&self) -> Vec<String> {
        lock(&self.inner.servers).keys().cloned().collect()
    }

    /// A snapshot of every server, in config order.
    pub fn snapshots(&self) -> Vec<ServerSnapshot> {
        let states: Vec<Arc<ServerState>> = lock(&self.inner.servers)
            .values()
            .map(|s| s.state.clone())
            .collect();
        states.iter().map(|s| s.snapshot()).collect()
    }

    /// A snapshot of one server.
    pub fn snapshot(&self, name: &str) -> Option<ServerSnapshot> {
        let state = lock(&self.inner.servers)
            .get(name)
            .map(|s| s.state.clone())?;
        Some(state.snapshot())
    }

    /// The definition of one server.
    pub fn definition(&self, name: &str) -> Option<ServerDefinition> {
        lock(&self.inner.servers).get(name).map(|s| s.def.clone())
    }

    /// Adds a server (started unless disabled), or replaces one with a new definition (restarting
    /// it). Returns at once; see [`Registry::wait_settled`].
    pub fn upsert(&self, def: ServerDefinition) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        let name = def.name.clone();
        let state = Arc::new(ServerState::new(&def));
        let (desired, desired_rx) = watch::channel(Desired {
            run: !def.disabled,
            disabled: def.disabled,
            epoch: 0,
        });
        let stop = self.inner.shutdown.child_token();
        let slot = Slot {
            def: def.clone(),
            state: state.clone(),
            desired,
            stop: stop.clone(),
        };
        // `insert` keeps a replaced server at its place, so list order stays config order.
        if let Some(old) = lock(&self.inner.servers).insert(name, slot) {
            old.stop.cancel();
        }
        let inner = self.inner.clone();
        self.inner
            .tracker
            .spawn(supervisor::run(inner, def, state, desired_rx, stop));
    }

    /// Removes a server, stopping it. Returns when it has stopped.
    pub async fn remove(&self, name: &str) -> Result<(), RegistryError> {
        let slot = lock(&self.inner.servers)
            .shift_remove(name)
            .ok_or_else(|| RegistryError::ServerNotFound(name.to_owned()))?;
        slot.stop.cancel();
        slot.state.wait_stopped().await;
        self.rebuild_catalog();
        Ok(())
    }

    /// Starts a server (clearing `disabled`) and waits until it is connected or has failed.
    pub async fn start(&self, name: &str) -> Result<ServerSnapshot, RegistryError> {
        let (state, attempt) = {
            let servers = lock(&self.inner.servers);
            let slot = servers
                .get(name)
                .ok_or_else(|| RegistryError::ServerNotFound(name.to_owned()))?;
            let attempt = slot.state.attempts();
            let connected = slot.state.snapshot().status == ServerStatus::Connected;
            slot.desired.send_modify(|d| {
                d.run = true;
                d.disabled = false;
                if !connected {
                    d.epoch += 1;
                }
            });
            if connected {
                return Ok(slot.state.snapshot());
            }
            (slot.state.clone(), attempt)
        };
        let snap = state
            .wait_attempt_done(
                attempt,
                self.inner.opts.initialize_timeout + Duration::from_secs(5),
            )
            .await;
        match snap.status {
            ServerStatus::Connected => Ok(snap),
            _ => Err(RegistryError::Connect {
                server: name.to_owned(),
                reason: snap
                    .error
                    .clone()
                    .unwrap_or_else(|| "not connected".to_owned()),
            }),
        }
    }

    /// Stops a server; with `disable` it becomes `disabled` (in memory; persisting it to the
    /// config file is the caller's business).
    pub async fn stop(&self, name: &str, disable: bool) -> Result<ServerSnapshot, RegistryError> {
        let state = {
            let servers = lock(&self.inner.servers);
            let slot = servers
                .get(name)
                .ok_or_else(|| RegistryError::ServerNotFound(name.to_owned()))?;
            slot.desired.send_modify(|d| {
                d.run = false;
                d.disabled = disable;
            });
            slot.state.clone()
        };
        let want = if disable {
            ServerStatus::Disabled
        } else {
            ServerStatus::Disconnected
        };
        // Bounded: closing a stdio server escalates to SIGKILL within a few seconds.
        let _ = tokio::time::timeout(Duration::from_secs(15), state.wait_status(want)).await;
        Ok(state.snapshot())
    }

    /// Restarts a server (stop, then start) and waits for the outcome.
    pub async fn restart(&self, name: &str) -> Result<ServerSnapshot, RegistryError> {
        let (state, attempt) = {
            let servers = lock(&self.inner.servers);
            let slot = servers
                .get(name)
                .ok_or_else(|| RegistryError::ServerNotFound(name.to_owned()))?;
            let attempt = slot.state.attempts();
            slot.desired.send_modify(|d| {
                d.run = true;
                d.disabled = false;
                d.epoch += 1;
            });
            (slot.state.clone(), attempt)
        };
        let snap = state
            .wait_attempt_done(
                attempt,
                self.inner.opts.initialize_timeout + Duration::from_secs(5),
            )
            .await;
        Ok(snap)
    }

    /// Re-lists a connected server's tools, resources, templates and prompts.
    pub async fn refresh(&self, name: &str) -> Result<ServerSnapshot, RegistryError> {
        let state = lock(&self.inner.servers)
            .get(name)
            .map(|s| s.state.clone())
            .ok_or_else(|| RegistryError::ServerNotFound(name.to_owned()))?;
        if let Some(session) = state.session() {
            supervisor::refresh_lists(&self.inner, &state, &session, None).await;
        }
        Ok(state.snapshot())
    }

    /// Waits until no server is `connecting` (or the timeout passes).
    pub async fn wait_settled(&self, timeout: Duration) {
        let states: Vec<Arc<ServerState>> = lock(&self.inner.servers)
            .values()
            .map(|s| s.state.clone())
            .collect();
        let all = futures::future::join_all(states.iter().map(|s| s.wait_settled()));
        let _ = tokio::time::timeout(timeout, all).await;
    }

    /// Stops every server and waits for them (each stdio child is closed, then SIGTERMed, then
    /// SIGKILLed; nothing is left behind).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    pub(crate) fn rebuild_catalog(&self) {
        rebuild_catalog(&self.inner);
    }

    /// The live session of a server, its state, its request timeout, and its definition when it
    /// is isolated per session.
    pub(crate) fn session_of(&self, server: &str) -> Result<Route, RouteError> {
        let servers = lock(&self.inner.servers);
        let slot = servers
            .get(server)
            .ok_or_else(|| RouteError::ServerNotFound(server.to_owned()))?;
        let session = slot
            .state
            .session()
            .ok_or_else(|| RouteError::ServerNotConnected(server.to_owned()))?;
        let isolated = matches!(slot.def.client_context.isolation, Isolation::Session { .. })
            .then(|| slot.def.clone());
        Ok(Route {
            session,
            state: slot.state.clone(),
            timeout: slot.def.request_timeout,
            isolated,
        })
    }

    /// Counts a server-to-client request of `server` that the hub answered itself because no
    /// client could be named (shown in `/api/servers`).
    pub fn note_unattributed_request(&self, server: &str) {
        let state = lock(&self.inner.servers)
            .get(server)
            .map(|s| s.state.clone());
        if let Some(state) = state {
            state.count_unattributed();
        }
    }

    /// The roots the configuration gives `server`, for answering `roots/list` when no client can
    /// be asked.
    pub fn configured_roots(&self, server: &str) -> Option<Vec<String>> {
        lock(&self.inner.servers)
            .get(server)
            .and_then(|s| s.def.client_context.roots.clone())
    }

    /// A downstream session ended: its per-session instances (for stdio, their processes) are
    /// closed. Returns when they are.
    pub async fn release_session(&self, session: u64) {
        let states: Vec<Arc<ServerState>> = lock(&self.inner.servers)
            .values()
            .map(|s| s.state.clone())
            .collect();
        futures::future::join_all(states.iter().map(|s| s.instances.release(session))).await;
    }
}

pub(crate) fn rebuild_catalog(inner: &Inner) {
    // Coalesce: many servers connecting at once each ask for a rebuild; one build that starts
    // after a request covers it, so the others return at once instead of rebuilding again.
    let ticket = inner.rebuild_requested.fetch_add(1, Ordering::SeqCst) + 1;
    let _building = lock(&inner.rebuild_lock);
    if inner.rebuilt_through.load(Ordering::SeqCst) >= ticket {
        return;
    }
    let through = inner.rebuild_requested.load(Ordering::SeqCst);
    let lists: Vec<ServerLists> = lock(&inner.servers)
        .values()
        .filter_map(|s| s.state.lists_if_connected(&s.def))
        .collect();
    let version = inner.catalog_version.fetch_add(1, Ordering::Relaxed) + 1;
    let new = Arc::new(Catalog::build(version, &lists));
    let old = inner.catalog.swap(new.clone());
    inner.rebuilt_through.store(through, Ordering::SeqCst);
    for c in new
        .collisions()
        .iter()
        .filter(|c| !old.collisions().contains(c))
    {
        tracing::warn!(
            kind = c.kind, wanted = %c.wanted, kept_by = %c.kept_by, server = %c.server, exposed_as = %c.exposed_as,
            "name collision: {} `{}` of server `{}` is exposed as `{}` because `{}` already has it",
            c.kind, c.wanted, c.server, c.exposed_as, c.kept_by
        );
    }
    use crate::CatalogList::*;
    let changed = |a: crate::CatalogList| !old.same_list(&new, a);
    let tools = changed(Tools);
    let resources = changed(Resources) || changed(ResourceTemplates);
    let prompts = changed(Prompts);
    if tools || resources || prompts {
        let _ = inner.events.send(RegistryEvent::CatalogChanged {
            tools,
            resources,
            prompts,
        });
    }
}
