//! The state one running hub shares between its parts: config, registry, event bus, hub state,
//! process-level files. Everything else in the crate reaches the hub through it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use mcp_hub_api::{Api, HubEvent, HubState};
use mcp_hub_config::Config;
use mcp_hub_registry::Registry;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::builder::HubBuilder;
use crate::layers::Layers;
use crate::marketplace::Marketplace;
use crate::workspace::WorkspaceCache;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct HubInner {
    pub(crate) builder: HubBuilder,
    pub(crate) config: Mutex<Arc<Config>>,
    /// The layers `config` is merged from (code, files); changed only under `config_lock`.
    pub(crate) layers: Mutex<Layers>,
    /// Serialises what changes the config: reloads, restarts, and the hub's own writes of a
    /// server's `disabled` (so a reload never diffs against a half-applied write).
    pub(crate) config_lock: tokio::sync::Mutex<()>,
    pub(crate) registry: Registry,
    pub(crate) events: broadcast::Sender<HubEvent>,
    pub(crate) state: Mutex<HubState>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) exit: watch::Sender<bool>,
    pub(crate) local_addr: SocketAddr,
    /// Whether the hub has its own listener at `local_addr`.
    pub(crate) listening: bool,
    pub(crate) workspace_folder: PathBuf,
    pub(crate) oauth: Option<Arc<mcp_hub_auth::OAuthManager>>,
    /// The HTTP side, once built (config reloads are counted in its metrics).
    pub(crate) api: Mutex<Option<Api>>,
    pub(crate) workspaces: Mutex<Value>,
    /// Bumped after every applied config change (dev watchers rebuild on it).
    pub(crate) config_epoch: watch::Sender<u64>,
    pub(crate) workspace: Option<WorkspaceCache>,
    pub(crate) marketplace: Option<Marketplace>,
    /// The HTTP server task; shutdown waits for it before stopping upstreams, so calls in flight
    /// can finish.
    pub(crate) serving: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// This replica's cluster membership, in cluster mode.
    pub(crate) cluster: Option<mcp_hub_cluster::Cluster>,
}

impl HubInner {
    pub(crate) fn config(&self) -> Arc<Config> {
        lock(&self.config).clone()
    }

    pub(crate) fn state(&self) -> HubState {
        *lock(&self.state)
    }

    pub(crate) fn set_state(&self, s: HubState) {
        *lock(&self.state) = s;
        let _ = self.events.send(HubEvent::State(s));
        tracing::info!(target: "mcp_hub", "hub state: {}", s.as_str());
    }

    pub(crate) fn subscription(&self, payload: Value) {
        if let Value::Object(m) = payload {
            let _ = self.events.send(HubEvent::Subscription(m));
        }
    }

    pub(crate) fn request_exit(&self) {
        self.exit.send_replace(true);
    }
}
