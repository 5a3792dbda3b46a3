//! [`Registry`]: the handle through which the rest of the hub starts, stops and reaches servers.

use std::sync::Arc;
use std::time::Duration;

use mcp_hub_protocol::RawValue;
use mcp_hub_transport::{ClientSession, RequestOptions};
use serde_json::{Map, Value};
use tokio::sync::{broadcast, watch};

use crate::events::RegistryEvent;
use crate::options::{ClientRequestHandler, RegistryOptions};
use crate::shared::{Inner, Slot, rebuild_catalog};
use crate::state::{Desired, ServerState};
use crate::sync::lock;
use crate::{
    Catalog, Connector, RegistryError, RouteError, ServerDefinition, ServerSnapshot, ServerStatus,
};
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

    #[allow(clippy::type_complexity)]
    fn session_of(
        &self,
        server: &str,
    ) -> Result<
        (
            ClientSession,
            Arc<ServerState>,
            Option<Duration>,
            Arc<dyn Connector>,
        ),
        RouteError,
    > {
        let servers = lock(&self.inner.servers);
        let slot = servers
            .get(server)
            .ok_or_else(|| RouteError::ServerNotFound(server.to_owned()))?;
        let session = slot
            .state
            .session()
            .ok_or_else(|| RouteError::ServerNotConnected(server.to_owned()))?;
        let def = &slot.def;
        Ok((
            session,
            slot.state.clone(),
            def.request_timeout,
            def.connector.clone(),
        ))
    }

    /// Sends a request to a server by name (the REST API's path), params verbatim.
    pub async fn request(
        &self,
        server: &str,
        method: &str,
        params: Option<Map<String, Value>>,
        mut opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        let (session, state, timeout, connector) = self.session_of(server)?;
        if opts.timeout.is_none() {
            opts.timeout = Some(timeout.unwrap_or(self.inner.opts.request_timeout));
        }
        let params = match params {
            Some(p) => Some(
                mcp_hub_protocol::to_raw(&p)
                    .map_err(|e| RouteError::InvalidParams(e.to_string()))?,
            ),
            None => None,
        };
        let r = session.request(method, params, opts).await;
        state.check_unauthorized(&r);
        r.map_err(|e| crate::redact::request_error(e, &*connector).into())
    }

    /// `tools/call` by exposed name: routed to the owner with the namespace stripped.
    pub async fn call_tool(
        &self,
        params: Map<String, Value>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        self.call_named(crate::CatalogList::Tools, params, opts)
            .await
    }

    /// `prompts/get` by exposed name.
    pub async fn get_prompt(
        &self,
        params: Map<String, Value>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        self.call_named(crate::CatalogList::Prompts, params, opts)
            .await
    }

    /// A request whose `name` is an exposed tool or prompt name: sent to the owner under the
    /// upstream name.
    async fn call_named(
        &self,
        list: crate::CatalogList,
        mut params: Map<String, Value>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        let (what, method) = match list {
            crate::CatalogList::Prompts => ("prompt", mcp_hub_protocol::methods::PROMPTS_GET),
            _ => ("tool", mcp_hub_protocol::methods::TOOLS_CALL),
        };
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RouteError::InvalidParams(format!("missing {what} name")))?;
        let catalog = self.catalog();
        let entry = match list {
            crate::CatalogList::Prompts => catalog
                .prompt(name)
                .ok_or_else(|| RouteError::UnknownPrompt(name.to_owned())),
            _ => catalog
                .tool(name)
                .ok_or_else(|| RouteError::UnknownTool(name.to_owned())),
        }?;
        params.insert("name".into(), Value::String(entry.original.to_string()));
        self.request(&entry.server, method, Some(params), opts)
            .await
    }

    /// `resources/read` by exposed URI. The result is the upstream's, verbatim: its `contents`
    /// carry the upstream URI, as the Node hub returns them.
    pub async fn read_resource(
        &self,
        mut params: Map<String, Value>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        let uri = params
            .get("uri")
            .and_then(Value::as_str)
            .ok_or_else(|| RouteError::InvalidParams("missing uri".into()))?;
        let route = self
            .catalog()
            .resource(uri)
            .ok_or_else(|| RouteError::UnknownResource(uri.to_owned()))?;
        params.insert("uri".into(), Value::String(route.upstream_uri));
        self.request(
            &route.server,
            mcp_hub_protocol::methods::RESOURCES_READ,
            Some(params),
            opts,
        )
        .await
    }

    /// `resources/subscribe`: forwarded upstream the first time any session subscribes to a URI.
    pub async fn subscribe_resource(&self, uri: &str) -> Result<(), RouteError> {
        let route = self
            .catalog()
            .resource(uri)
            .ok_or_else(|| RouteError::UnknownResource(uri.to_owned()))?;
        let key = (route.server.clone(), route.upstream_uri.clone());
        let first = {
            let mut subs = lock(&self.inner.subscriptions);
            let n = subs.entry(key.clone()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            let mut p = Map::new();
            p.insert("uri".into(), Value::String(route.upstream_uri.clone()));
            if let Err(e) = self
                .request(
                    &route.server,
                    mcp_hub_protocol::methods::RESOURCES_SUBSCRIBE,
                    Some(p),
                    RequestOptions::default(),
                )
                .await
            {
                lock(&self.inner.subscriptions).shift_remove(&key);
                return Err(e);
            }
        }
        Ok(())
    }

    /// `resources/unsubscribe`: forwarded upstream when the last subscriber leaves.
    pub async fn unsubscribe_resource(&self, uri: &str) -> Result<(), RouteError> {
        let route = self
            .catalog()
            .resource(uri)
            .ok_or_else(|| RouteError::UnknownResource(uri.to_owned()))?;
        let key = (route.server.clone(), route.upstream_uri.clone());
        let last = {
            let mut subs = lock(&self.inner.subscriptions);
            match subs.get_mut(&key) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    subs.shift_remove(&key);
                    true
                }
                None => false,
            }
        };
        if last {
            let mut p = Map::new();
            p.insert("uri".into(), Value::String(route.upstream_uri));
            self.request(
                &route.server,
                mcp_hub_protocol::methods::RESOURCES_UNSUBSCRIBE,
                Some(p),
                RequestOptions::default(),
            )
            .await?;
        }
        Ok(())
    }

    /// `completion/complete`, routed by its `ref` (a prompt name or a resource template).
    pub async fn complete(
        &self,
        mut params: Map<String, Value>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        let catalog = self.catalog();
        let r = params
            .get("ref")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| RouteError::InvalidParams("missing ref".into()))?;
        let kind = r.get("type").and_then(Value::as_str).unwrap_or_default();
        let (server, new_ref) = match kind {
            "ref/prompt" => {
                let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
                let e = catalog
                    .prompt(name)
                    .ok_or_else(|| RouteError::UnknownPrompt(name.to_owned()))?;
                let mut nr = r.clone();
                nr.insert("name".into(), Value::String(e.original.to_string()));
                (e.server.clone(), nr)
            }
            "ref/resource" => {
                let uri = r.get("uri").and_then(Value::as_str).unwrap_or_default();
                let (server, upstream) = match catalog
                    .resource_templates()
                    .iter()
                    .find(|t| &*t.exposed == uri)
                {
                    Some(t) => (t.server.clone(), t.original.to_string()),
                    None => {
                        let route = catalog
                            .resource(uri)
                            .ok_or_else(|| RouteError::UnknownResource(uri.to_owned()))?;
                        (route.server, route.upstream_uri)
                    }
                };
                let mut nr = r.clone();
                nr.insert("uri".into(), Value::String(upstream));
                (server, nr)
            }
            other => {
                return Err(RouteError::InvalidParams(format!(
                    "unknown ref type {other:?}"
                )));
            }
        };
        params.insert("ref".into(), Value::Object(new_ref));
        self.request(
            &server,
            mcp_hub_protocol::methods::COMPLETION_COMPLETE,
            Some(params),
            opts,
        )
        .await
    }

    /// Sends a notification to every connected server that declared `capability` (or to all when
    /// `None`), e.g. `notifications/roots/list_changed`.
    pub async fn notify_all(&self, method: &str, params: Option<Map<String, Value>>) {
        let sessions: Vec<ClientSession> = lock(&self.inner.servers)
            .values()
            .filter_map(|s| s.state.session())
            .collect();
        let raw = params.and_then(|p| mcp_hub_protocol::to_raw(&p).ok());
        for s in sessions {
            let _ = s.notify(method, raw.clone()).await;
        }
    }

    /// Sets the upstream logging level of every connected server that declares `logging`.
    pub async fn set_log_level(&self, level: &str) {
        let sessions: Vec<ClientSession> = lock(&self.inner.servers)
            .values()
            .filter_map(|s| s.state.session())
            .filter(|s| s.initialize_result().capabilities.contains_key("logging"))
            .collect();
        let mut p = Map::new();
        p.insert("level".into(), Value::String(level.to_owned()));
        let futs = sessions.iter().map(|s| {
            let raw = mcp_hub_protocol::to_raw(&p).ok();
            async move {
                let opts = RequestOptions {
                    timeout: Some(Duration::from_secs(5)),
                    ..Default::default()
                };
                let _ = s
                    .request(mcp_hub_protocol::methods::LOGGING_SET_LEVEL, raw, opts)
                    .await;
            }
        });
        futures::future::join_all(futs).await;
    }

    /// Upstream capabilities merged: which primitives at least one connected server offers.
    pub fn aggregate_capabilities(&self) -> AggregateCapabilities {
        let sessions: Vec<ClientSession> = lock(&self.inner.servers)
            .values()
            .filter_map(|s| s.state.session())
            .collect();
        let mut agg = AggregateCapabilities::default();
        for s in sessions {
            let caps = &s.initialize_result().capabilities;
            agg.tools |= caps.contains_key("tools");
            agg.resources |= caps.contains_key("resources");
            agg.prompts |= caps.contains_key("prompts");
            agg.logging |= caps.contains_key("logging");
            agg.completions |= caps.contains_key("completions");
            agg.subscribe |= caps
                .get("resources")
                .and_then(|r| r.get("subscribe"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
        }
        agg
    }
}

/// Which features the connected upstreams offer, as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregateCapabilities {
    /// Some server has tools.
    pub tools: bool,
    /// Some server has resources.
    pub resources: bool,
    /// Some server has prompts.
    pub prompts: bool,
    /// Some server logs.
    pub logging: bool,
    /// Some server completes arguments.
    pub completions: bool,
    /// Some server supports resource subscriptions.
    pub subscribe: bool,
}
