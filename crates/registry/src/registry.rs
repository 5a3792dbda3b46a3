//! [`Registry`]: the handle through which the rest of the hub starts, stops and reaches servers.
//! Routing of calls lives in `routing`, per-session instances in `instances`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::events::RegistryEvent;
use crate::options::{ClientRequestHandler, RegistryOptions};
use crate::shared::{Inner, Slot, rebuild_catalog};
use crate::state::{Desired, ServerState};
use crate::sync::lock;
use crate::{Catalog, RegistryError, ServerDefinition, ServerSnapshot, ServerStatus};
use crate::{lists, supervisor};

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

impl Registry {
    /// An empty registry.
    pub fn new(opts: RegistryOptions) -> Registry {
        Registry {
            inner: Arc::new(Inner::new(opts)),
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

    /// Changes which tools of a server are exposed, without restarting it: the catalogue, the
    /// server's snapshot and events follow at once (`list_changed` only if its exposed tools
    /// changed). Returns whether the filter differed from the one in place.
    pub fn set_tool_filter(&self, name: &str, filter: crate::ToolFilter) -> bool {
        let state = {
            let mut servers = lock(&self.inner.servers);
            let Some(slot) = servers.get_mut(name) else {
                return false;
            };
            if slot.def.tools == filter {
                return false;
            }
            slot.def.tools = filter.clone();
            slot.state.clone()
        };
        let mut changed = Vec::new();
        state.update(|s| {
            // Under the snapshot's lock, as where lists arrive (`lists::refresh_lists`).
            let kept = filter.apply(&lock(&state.all_tools));
            *lock(&state.tool_filter) = filter;
            if s.tools != kept {
                s.tools = kept;
                changed.push(crate::ListKind::Tools);
            }
        });
        lists::publish_changes(&self.inner, &state, changed);
        true
    }

    /// Removes a server, stopping it. Returns when it has stopped.
    pub async fn remove(&self, name: &str) -> Result<(), RegistryError> {
        let slot = lock(&self.inner.servers)
            .shift_remove(name)
            .ok_or_else(|| RegistryError::ServerNotFound(name.to_owned()))?;
        slot.stop.cancel();
        slot.state.wait_stopped().await;
        self.forget_skills(name);
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
            let status = slot.state.snapshot().status;
            let d = *slot.desired.borrow();
            if d.run && status == ServerStatus::Connected {
                return Ok(slot.state.snapshot());
            }
            // An attempt already asked for (by a concurrent start or a config reload) and not
            // finished is waited for, not restarted: restarting it would spawn the server twice.
            let pending = d.run
                && (d.epoch != slot.state.started_epoch() || status == ServerStatus::Connecting);
            if !pending {
                slot.desired.send_modify(|d| {
                    d.run = true;
                    d.disabled = false;
                    d.epoch += 1;
                });
            }
            (slot.state.clone(), attempt)
        };
        let bound = self.inner.opts.initialize_timeout + Duration::from_secs(5);
        let mut snap = state.wait_attempt_done(attempt, bound).await;
        // A config reload may have replaced the server meanwhile: its new incarnation's first
        // attempt is the outcome.
        let replaced = lock(&self.inner.servers)
            .get(name)
            .map(|s| s.state.clone())
            .filter(|s| !Arc::ptr_eq(s, &state));
        if let Some(current) = replaced {
            let _ = tokio::time::timeout(bound, current.wait_settled()).await;
            snap = current.snapshot();
        }
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
            lists::refresh_lists(&self.inner, &state, &session, None).await;
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

    /// Whether any server holds a per-session instance for `session`: a caller that would spawn
    /// [`Registry::release_session`] for every request (a stateless call's fresh session) skips
    /// it when there is nothing to release.
    pub fn holds_session(&self, session: u64) -> bool {
        lock(&self.inner.servers)
            .values()
            .any(|s| s.state.instances.holds(session))
    }
}
