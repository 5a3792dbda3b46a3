//! Starting a hub ([`HubBuilder::start`]) and driving it ([`HubHandle`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_hub_api::{Api, HubEvent, HubState};
use mcp_hub_config::Config;
use mcp_hub_registry::Registry;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::CoreError;
use crate::builder::HubBuilder;
use crate::connector::definition;
use crate::control::CoreControl;
use crate::inner::{HubInner, lock};
use crate::layers::Layers;
use crate::marketplace::Marketplace;
use crate::workspace::{WorkspaceCache, WorkspaceEntry};

/// Entry point: `Hub::builder()`.
#[derive(Debug)]
pub struct Hub;

impl Hub {
    /// A builder with defaults: 127.0.0.1, port 37373, no config files, no watching.
    pub fn builder() -> HubBuilder {
        HubBuilder::default()
    }
}

impl HubBuilder {
    /// Loads the config, binds the listener, starts every enabled server (concurrently) and
    /// serves. Returns once the listener is bound; servers keep connecting in the background
    /// (`hub_state` goes from `starting` to `ready` when every first attempt has finished).
    pub async fn start(self) -> Result<HubHandle, CoreError> {
        let files = self.config_files.clone();
        let files = tokio::task::spawn_blocking(move || mcp_hub_config::load(&files))
            .await
            .map_err(|e| CoreError::Auth(e.to_string()))??;
        let layers = Layers {
            code: crate::layers::code_layer(&self.code)?,
            files,
        };
        let config = layers.merged();
        for w in &config.warnings {
            tracing::warn!(target: "mcp_hub::config", "{w}");
        }
        let addr = SocketAddr::new(self.host, self.port);
        let (listener, local_addr) = if self.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| CoreError::Bind { addr, source })?;
            let local_addr = listener
                .local_addr()
                .map_err(|source| CoreError::Bind { addr, source })?;
            (Some(listener), local_addr)
        } else {
            (None, addr)
        };
        if let Some(endpoint) = &self.otlp {
            crate::otel::install(endpoint.as_deref())?;
        }
        let metrics_listener = match self.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| CoreError::Bind { addr, source })?,
            ),
            None => None,
        };

        let workspace_folder = match &self.workspace_folder {
            Some(d) => d.clone(),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        };
        let oauth = match &self.oauth_store {
            Some(path) => {
                let redirect = self.oauth_redirect.clone().unwrap_or_else(|| {
                    format!("http://127.0.0.1:{}/api/oauth/callback", local_addr.port())
                });
                let manager = mcp_hub_auth::OAuthManager::new(path.clone(), redirect)
                    .map_err(|e| CoreError::Auth(e.to_string()))?;
                if let Some(node) = &self.node_oauth_store {
                    manager.import_node_storage(node.clone());
                }
                Some(Arc::new(manager))
            }
            None => None,
        };
        // Membership before the first request: a session handed out now must be findable.
        let cluster = match &self.cluster {
            Some(c) => {
                let mut c = c.clone();
                if c.advertise.is_empty() {
                    if listener.is_none() {
                        return Err(CoreError::Cluster(
                            "a hub without a listener must be given the address to advertise"
                                .into(),
                        ));
                    }
                    c.advertise = local_addr.to_string();
                }
                Some(
                    mcp_hub_cluster::Cluster::join(c)
                        .await
                        .map_err(|e| CoreError::Cluster(e.to_string()))?,
                )
            }
            None => None,
        };
        if let (Some(c), Some(m)) = (&cluster, &oauth) {
            m.share_tokens(Arc::new(crate::clustering::Tokens(c.clone())));
        }
        let instance = new_instance_id();
        let mut registry_opts = self.registry.clone();
        registry_opts.hub_instance = Some(instance.clone());
        let registry = Registry::new(registry_opts);
        let (events, _) = broadcast::channel(1024);
        let (exit_tx, _) = watch::channel(false);
        let inner = Arc::new(HubInner {
            builder: self.clone(),
            config: Mutex::new(Arc::new(config)),
            layers: Mutex::new(layers),
            config_lock: tokio::sync::Mutex::new(()),
            registry: registry.clone(),
            events,
            state: Mutex::new(HubState::Starting),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            exit: exit_tx,
            local_addr,
            listening: listener.is_some(),
            workspace_folder,
            oauth,
            api: Mutex::new(None),
            workspaces: Mutex::new(Value::Object(Map::new())),
            config_epoch: watch::channel(0).0,
            workspace: self
                .workspace_cache
                .as_ref()
                .map(|p| WorkspaceCache::new(p.clone())),
            marketplace: self.marketplace.as_ref().map(|(file, url)| {
                Marketplace::new(file.clone(), url.clone(), crate::DEFAULT_README_BASE)
            }),
            serving: Mutex::new(None),
            cluster,
        });
        if let Some(logs) = &self.log_events {
            let mut rx = logs.subscribe();
            let events = inner.events.clone();
            let token = inner.shutdown.clone();
            inner.tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        r = rx.recv() => match r {
                            Ok(ev) => { let _ = events.send(ev); }
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(_) => return,
                        },
                    }
                }
            });
        }

        let mut api_cfg = self.api.clone();
        api_cfg.port = local_addr.port();
        api_cfg.instance_id = Some(instance);
        let control = Arc::new(CoreControl {
            hub: Arc::downgrade(&inner),
        });
        let api = Api::new(registry.clone(), control, api_cfg);
        if let Some(c) = &inner.cluster {
            api.set_cluster(Arc::new(crate::clustering::Seam(c.clone())));
            api.set_fleet(Arc::new(crate::fleet::Fleet(c.clone())));
        }
        *lock(&inner.api) = Some(api.clone());
        // Profiles exist before the first request can name one.
        registry.set_profiles(crate::reload::profiles_of(&inner.config()));
        if let Some(listener) = listener {
            let serve_token = inner.shutdown.child_token();
            let serving = tokio::spawn({
                let api = api.clone();
                async move {
                    if let Err(e) = api.serve(listener, serve_token).await {
                        tracing::error!(target: "mcp_hub::api", "server stopped: {e}");
                    }
                }
            });
            *lock(&inner.serving) = Some(serving);
        }
        if let Some(listener) = metrics_listener {
            if let Ok(a) = listener.local_addr() {
                tracing::info!(target: "mcp_hub", "metrics on http://{a}/metrics");
            }
            let api = api.clone();
            let token = inner.shutdown.child_token();
            inner.tasks.spawn(async move {
                let _ = api.serve_metrics(listener, token).await;
            });
        }

        let config = inner.config();
        for sc in config.servers.values() {
            registry.upsert(definition(&inner, &config, sc));
        }
        if inner.listening {
            tracing::info!(target: "mcp_hub", "listening on http://{local_addr} ({} servers)", config.servers.len());
        } else {
            tracing::info!(target: "mcp_hub", "started without a listener ({} servers)", config.servers.len());
        }
        inner.tasks.spawn({
            let inner = inner.clone();
            async move {
                inner
                    .registry
                    .wait_settled(
                        inner.builder.registry.initialize_timeout + Duration::from_secs(5),
                    )
                    .await;
                if inner.state() == HubState::Starting {
                    inner.set_state(HubState::Ready);
                }
            }
        });
        if self.watch {
            crate::reload::spawn_watcher(&inner);
        }
        crate::dev::spawn_dev_watchers(&inner);
        register_workspace(&inner).await;
        spawn_client_watch(&inner, api.clone(), self.auto_shutdown);
        Ok(HubHandle { inner, api })
    }
}

/// 128 random bits in hex: this process's identity on its own MCP endpoint.
fn new_instance_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Unlikely; the identity then only needs to differ from other hubs on this machine.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = (t ^ u128::from(std::process::id())).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn register_workspace(inner: &Arc<HubInner>) {
    let Some(cache) = &inner.workspace else {
        return;
    };
    let files = inner
        .builder
        .config_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let entry = WorkspaceEntry::new(
        inner.local_addr.port(),
        inner.workspace_folder.display().to_string(),
        files,
    );
    if let Err(e) = cache.register(entry).await {
        tracing::warn!(target: "mcp_hub", "cannot register in the workspace cache {}: {e}", cache.path().display());
        return;
    }
    if let Ok(all) = cache.read_all().await {
        *lock(&inner.workspaces) = all;
    }
    match cache.watch() {
        Ok(mut rx) => {
            let weak = Arc::downgrade(inner);
            let token = inner.shutdown.clone();
            inner.tasks.spawn(async move {
                loop {
                    let all = tokio::select! {
                        _ = token.cancelled() => return,
                        r = rx.recv() => match r {
                            Ok(v) => v,
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(_) => return,
                        },
                    };
                    let Some(inner) = weak.upgrade() else { return };
                    *lock(&inner.workspaces) = all.clone();
                    inner.subscription(
                        serde_json::json!({"type": "workspaces_updated", "workspaces": all}),
                    );
                }
            });
        }
        Err(e) => tracing::warn!(target: "mcp_hub", "cannot watch the workspace cache: {e}"),
    }
}

/// Follows the number of `/api/events` clients: keeps the workspace entry's `activeConnections`
/// current and runs the auto-shutdown timer. As in the Node hub, the timer starts only when the
/// last client leaves, so a hub nobody has connected to yet does not exit.
fn spawn_client_watch(inner: &Arc<HubInner>, api: Api, auto_shutdown: Option<Duration>) {
    if inner.workspace.is_none() && auto_shutdown.is_none() {
        return;
    }
    let weak = Arc::downgrade(inner);
    let token = inner.shutdown.clone();
    let port = inner.local_addr.port();
    inner.tasks.spawn(async move {
        let mut last = 0usize;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(inner) = weak.upgrade() else { return };
            let now = api.event_clients();
            if now != last {
                if let Some(cache) = &inner.workspace {
                    let _ = cache.set_active_connections(port, now as u64).await;
                }
                if let Some(delay) = auto_shutdown {
                    if now == 0 {
                        tracing::info!(target: "mcp_hub", "no clients left; shutting down in {delay:?} unless one connects");
                        deadline = Some(tokio::time::Instant::now() + delay);
                        if let Some(cache) = &inner.workspace {
                            let _ = cache.start_shutdown(port, delay.as_millis() as u64).await;
                        }
                    } else if deadline.take().is_some() {
                        tracing::info!(target: "mcp_hub", "a client connected; auto-shutdown cancelled");
                        if let Some(cache) = &inner.workspace {
                            let _ = cache.cancel_shutdown(port).await;
                        }
                    }
                }
                last = now;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                inner.request_exit();
                return;
            }
        }
    });
}

/// A running hub. Dropping it does not stop the hub; call [`HubHandle::shutdown`].
#[derive(Clone)]
pub struct HubHandle {
    pub(crate) inner: Arc<HubInner>,
    api: Api,
}

impl std::fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubHandle")
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

impl HubHandle {
    /// The bound address (with [`HubBuilder::listen`]`(false)`, the configured one, where nothing
    /// listens).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The hub's HTTP side (`/mcp`, the legacy `/sse` + `/messages`, `/api/*`) as a hyper
    /// service (a `tower::Service` too with the api crate's `tower` feature) to mount in a server
    /// of the program's own, at the root; give it a prefix with
    /// [`HubService::at`](mcp_hub_api::HubService::at) (the service strips it) or
    /// [`HubService::nested`](mcp_hub_api::HubService::nested) (the host router strips it).
    /// It serves the same routes, checks and sessions as the hub's own listener, if it has one.
    pub fn http_service(&self) -> mcp_hub_api::HubService {
        self.api.service()
    }

    /// The registry of upstream servers (status, catalogue, routed calls).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.inner.config()
    }

    /// The hub state.
    pub fn state(&self) -> HubState {
        self.inner.state()
    }

    /// Hub events (the non-registry part of `/api/events`).
    pub fn events(&self) -> broadcast::Receiver<HubEvent> {
        self.inner.events.subscribe()
    }

    /// Re-reads the config files and applies the difference: only added, removed and changed
    /// servers are started, stopped or restarted. Returns once they have connected or failed
    /// (bounded by the connect timeout), when `servers_updated` is announced. A config that
    /// fails to load leaves the running one untouched and returns the error.
    pub async fn reload(&self) -> Result<mcp_hub_config::ConfigDiff, CoreError> {
        crate::reload::reload(&self.inner).await
    }

    /// Resolves when something asked the process to exit: `POST /api/hard-restart` or
    /// auto-shutdown. The embedding program then calls [`HubHandle::shutdown`].
    pub async fn exit_requested(&self) {
        let mut rx = self.inner.exit.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Graceful shutdown: `stopping`, stop accepting, close sessions and streams (bounded grace),
    /// stop every server (no child process is left), then `stopped`.
    pub async fn shutdown(&self) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        self.inner.set_state(HubState::Stopping);
        // Out of the cluster first: the other replicas answer this one's sessions with 404 at
        // once (their clients re-initialize elsewhere) instead of forwarding to a hub going away.
        if let Some(c) = &self.inner.cluster {
            c.leave().await;
        }
        self.inner.shutdown.cancel();
        // First the HTTP side drains (calls in flight finish or get an error answer, bounded by
        // the grace period), and only then do the upstreams stop.
        let serving = lock(&self.inner.serving).take();
        let bound = self.inner.builder.api.shutdown_grace * 2 + Duration::from_secs(1);
        if let Some(serving) = serving {
            let _ = tokio::time::timeout(bound, serving).await;
        } else {
            // No listener of ours: the sessions an embedder's server opened on the hub's service
            // are drained and closed the same way.
            let _ = tokio::time::timeout(bound, self.api.close()).await;
        }
        let registry = self.inner.registry.clone();
        let tasks = self.inner.tasks.clone();
        tasks.close();
        tokio::join!(registry.shutdown(), tasks.wait());
        if self.inner.builder.otlp.is_some() {
            // The spans of the last calls are exported before the process goes.
            let _ = tokio::task::spawn_blocking(crate::otel::shutdown).await;
        }
        if let Some(cache) = &self.inner.workspace
            && let Err(e) = cache.deregister(self.inner.local_addr.port()).await
        {
            tracing::warn!(target: "mcp_hub", "cannot remove this hub from the workspace cache: {e}");
        }
        self.inner.set_state(HubState::Stopped);
    }
}
