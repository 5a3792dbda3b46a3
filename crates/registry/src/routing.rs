//! Routing calls to their servers: by exposed name or URI through the catalogue, to the shared
//! connection or to the caller's own instance of an isolated server.

use std::sync::Arc;
use std::time::Duration;

use mcp_hub_protocol::RawValue;
use mcp_hub_transport::{ClientSession, RequestOptions};
use serde_json::{Map, Value};

use crate::observe::{CallGuard, ErrorKind, is_tool_error};
use crate::params::{NamedParams, Outgoing};
use crate::prepared::prefix_of;
use crate::state::ServerState;
use crate::sync::lock;
use crate::{
    Catalog, Connector, Isolation, NAMESPACE_SEPARATOR, Registry, RouteError, ServerDefinition,
    ServerStatus,
};

const TOOLS_CALL: &str = mcp_hub_protocol::methods::TOOLS_CALL;

/// How a tool call ended, for its figures.
fn outcome(r: &Result<Box<RawValue>, RouteError>) -> Option<ErrorKind> {
    match r {
        Ok(raw) => is_tool_error(raw.get()).then_some(ErrorKind::Tool),
        Err(e) => Some(ErrorKind::of(e)),
    }
}

/// Records the upstream span of a request (a client span under the hub's downstream span).
fn record_upstream(
    ctx: &mcp_hub_protocol::trace::TraceContext,
    parent: &mcp_hub_protocol::trace::TraceContext,
    started: std::time::SystemTime,
    server: Option<String>,
    method: &str,
    tool: Option<String>,
    r: &Result<Box<RawValue>, mcp_hub_transport::RequestError>,
) {
    use opentelemetry::KeyValue;
    if !crate::trace::recording() {
        return;
    }
    let (outcome, error) = match r {
        Ok(raw) if is_tool_error(raw.get()) => ("tool_error", None),
        Ok(_) => ("ok", None),
        Err(e) => ("error", Some(e.to_string())),
    };
    let mut attributes = vec![
        KeyValue::new("mcp.method.name", method.to_owned()),
        KeyValue::new("mcp.outcome", outcome),
    ];
    let mut name = method.to_owned();
    if let Some(server) = server {
        attributes.push(KeyValue::new("mcp.server", server));
    }
    if let Some(tool) = tool {
        name = format!("{method} {tool}");
        attributes.push(KeyValue::new("mcp.tool", tool));
    }
    crate::trace::record(crate::trace::Finished {
        ctx,
        parent: Some((parent.span_id, false)),
        name,
        kind: opentelemetry::trace::SpanKind::Client,
        started,
        attributes,
        error,
    });
}

/// Where a routed request goes.
pub(crate) struct Route {
    pub(crate) session: ClientSession,
    pub(crate) state: Arc<ServerState>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) connector: Arc<dyn Connector>,
    /// The definition, when the server is isolated per session.
    pub(crate) isolated: Option<ServerDefinition>,
    /// The server's name, for the upstream span (only while spans are recorded).
    pub(crate) name: Option<String>,
}

impl Registry {
    /// The live session of a server, its state, its request timeout, its connector (for
    /// redaction), and its definition when it is isolated per session.
    pub(crate) fn session_of(&self, server: &str) -> Result<Route, RouteError> {
        let servers = lock(&self.inner.servers);
        let slot = servers
            .get(server)
            .ok_or_else(|| RouteError::ServerNotFound(server.to_owned()))?;
        let session = slot
            .state
            .session()
            .ok_or_else(|| RouteError::ServerNotConnected(server.to_owned()))?;
        let def = &slot.def;
        let isolated =
            matches!(def.client_context.isolation, Isolation::Session { .. }).then(|| def.clone());
        Ok(Route {
            session,
            state: slot.state.clone(),
            timeout: def.request_timeout,
            connector: def.connector.clone(),
            isolated,
            name: crate::trace::recording().then(|| def.name.clone()),
        })
    }

    /// Sends a request to a server by name (the REST API's path), params verbatim. A request
    /// with a [`RequestOptions::requester`] to a server isolated per session goes to that
    /// session's own instance (started on first use).
    pub async fn request(
        &self,
        server: &str,
        method: &str,
        params: Option<Map<String, Value>>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        if method == mcp_hub_protocol::methods::TOOLS_CALL {
            return self.request_tool(server, params, opts).await;
        }
        let route = self.session_of(server)?;
        self.send(route, method, Outgoing::Parsed(params), opts, None)
            .await
    }

    /// `tools/call` to a server by name (the REST API's path): counted like a routed call, under
    /// the tool's name when the server lists it and as an unknown name otherwise.
    async fn request_tool(
        &self,
        server: &str,
        params: Option<Map<String, Value>>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        let started = std::time::Instant::now();
        let tool = params
            .as_ref()
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str);
        let state = self.state_of(server);
        let stats = match (&state, tool) {
            (Some(state), Some(tool)) => state.calls.listed_tool(tool, || state.current_tools()),
            _ => None,
        };
        let call = stats
            .unwrap_or_else(|| self.inner.observer.unknown.clone())
            .start_at(started);
        let r = match self.session_of(server) {
            Ok(route) => {
                self.send(
                    route,
                    TOOLS_CALL,
                    Outgoing::Parsed(params),
                    opts,
                    Some(&call),
                )
                .await
            }
            Err(e) => Err(e),
        };
        call.finish(outcome(&r));
        r
    }

    /// Sends a request along a route; `call` (a tool call's figures) learns how long the
    /// upstream took.
    async fn send(
        &self,
        route: Route,
        method: &str,
        params: Outgoing,
        mut opts: RequestOptions,
        call: Option<&CallGuard>,
    ) -> Result<Box<RawValue>, RouteError> {
        let (state, timeout, connector) = (route.state, route.timeout, route.connector);
        if opts.timeout.is_none() {
            opts.timeout = Some(timeout.unwrap_or(self.inner.opts.request_timeout));
        }
        let lease = match (&route.isolated, opts.requester) {
            // Boxed: starting an instance is a whole connect, and carrying its state in every
            // call's future would make every call copy it.
            (Some(def), Some(owner)) => {
                Some(Box::pin(state.instances.acquire(&self.inner, def, owner)).await?)
            }
            _ => None,
        };
        let session = lease.as_ref().map_or(route.session, |l| l.session.clone());
        let parent = opts.trace.take();
        let tool = match &parent {
            Some(_) if crate::trace::recording() => params.tool_name(),
            _ => None,
        };
        let (params, trace) = params.encode(parent.as_ref())?;
        opts.trace = trace;
        let sent = params.as_ref().map_or(0, |p| p.get().len());
        let upstream_started = std::time::Instant::now();
        let span = opts
            .trace
            .clone()
            .map(|ctx| (ctx, std::time::SystemTime::now()));
        let r = session.request(method, params, opts).await;
        if let Some(call) = call {
            call.upstream(upstream_started.elapsed());
        }
        if let (Some((ctx, started)), Some(parent)) = (span, parent) {
            record_upstream(&ctx, &parent, started, route.name, method, tool, &r);
        }
        state
            .calls
            .count_bytes(sent, r.as_ref().map_or(0, |raw| raw.get().len()));
        drop(lease);
        state.check_unauthorized(&r);
        r.map_err(|e| crate::redact::request_error(e, &*connector).into())
    }

    /// `tools/call` by exposed name: routed to the owner with the namespace stripped.
    pub async fn call_tool(
        &self,
        params: impl Into<NamedParams<'_>>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        self.call_named(crate::CatalogList::Tools, params.into(), opts)
            .await
    }

    /// `prompts/get` by exposed name.
    pub async fn get_prompt(
        &self,
        params: Map<String, Value>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        self.call_named(
            crate::CatalogList::Prompts,
            NamedParams::Parsed(params),
            opts,
        )
        .await
    }

    /// A request whose `name` is an exposed tool or prompt name: sent to the owner under the
    /// upstream name.
    async fn call_named(
        &self,
        list: crate::CatalogList,
        params: NamedParams<'_>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        let started = std::time::Instant::now();
        let (what, method) = match list {
            crate::CatalogList::Prompts => ("prompt", mcp_hub_protocol::methods::PROMPTS_GET),
            _ => ("tool", mcp_hub_protocol::methods::TOOLS_CALL),
        };
        let name = params
            .str("name")
            .ok_or_else(|| RouteError::InvalidParams(format!("missing {what} name")))?;
        let name = name.as_ref();
        let catalog = self.catalog();
        let found = match list {
            crate::CatalogList::Prompts => catalog.prompt(name),
            _ => catalog.tool(name),
        };
        let Some(entry) = found else {
            // Its server may just be down: say so rather than that the name is unknown.
            let e = match self.owner_while_down(list, name) {
                Some(server) => RouteError::ServerNotConnected(server),
                None => match list {
                    crate::CatalogList::Prompts => RouteError::UnknownPrompt(name.to_owned()),
                    _ => RouteError::UnknownTool(name.to_owned()),
                },
            };
            if list == crate::CatalogList::Tools {
                let call = self.inner.observer.unknown.clone().start_at(started);
                call.finish(Some(ErrorKind::of(&e)));
            }
            return Err(e);
        };
        let params = params.renamed(&entry.original);
        if list != crate::CatalogList::Tools {
            let route = self.session_of(&entry.server)?;
            return self.send(route, method, params, opts, None).await;
        }
        let route = match self.session_of(&entry.server) {
            Ok(r) => r,
            Err(e) => {
                if let Some(state) = self.state_of(&entry.server) {
                    let call = state.calls.tool(&entry.original).start_at(started);
                    call.finish(Some(ErrorKind::of(&e)));
                }
                return Err(e);
            }
        };
        let call = route.state.calls.tool(&entry.original).start_at(started);
        let r = self
            .send(route, method, params, opts, Some(&call))
            .await
            .map(|raw| expose_result_uris(&catalog, &entry.server, raw));
        call.finish(outcome(&r));
        r
    }

    /// A server's state, if it is configured.
    fn state_of(&self, server: &str) -> Option<Arc<ServerState>> {
        lock(&self.inner.servers)
            .get(server)
            .map(|s| s.state.clone())
    }

    /// The configured server that is not connected and would own `exposed` (by its prefix, or
    /// for an unprefixed server by the names it last listed).
    fn owner_while_down(&self, list: crate::CatalogList, exposed: &str) -> Option<String> {
        let servers = lock(&self.inner.servers);
        servers.iter().find_map(|(name, slot)| {
            let snap = slot.state.snapshot();
            if snap.status == ServerStatus::Connected {
                return None;
            }
            let owns = match prefix_of(name, &slot.def.prefix) {
                Some(p) => exposed
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with(NAMESPACE_SEPARATOR)),
                None => {
                    let known = match list {
                        crate::CatalogList::Prompts => &snap.prompts,
                        _ => &snap.tools,
                    };
                    known.strings("name").any(|n| n == exposed)
                }
            };
            owns.then(|| name.clone())
        })
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
            .ok_or_else(|| RouteError::InvalidParams("missing uri".into()))?
            .to_owned();
        // A file of a relayed skill goes where its entry came from (it need not be listed).
        let (server, upstream_uri) = match self.skill_route(&uri) {
            Some(r) => r,
            None => {
                let route = self
                    .catalog()
                    .resource(&uri)
                    .ok_or_else(|| RouteError::UnknownResource(uri.clone()))?;
                (route.server, route.upstream_uri)
            }
        };
        params.insert("uri".into(), Value::String(upstream_uri.clone()));
        let raw = self
            .request(
                &server,
                mcp_hub_protocol::methods::RESOURCES_READ,
                Some(params),
                opts.clone(),
            )
            .await?;
        self.verify_skill_read(&server, &upstream_uri, &uri, &raw, &opts)
            .await?;
        Ok(raw)
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
}

/// A tool result with the URIs it points at (`resource_link` items, embedded resources) in the
/// form the hub exposes, so a client can read what a tool pointed it to. Untouched (not even
/// re-serialised) when the result holds no resource or the server is not prefixed.
pub(crate) fn expose_result_uris(
    catalog: &Catalog,
    server: &str,
    raw: Box<RawValue>,
) -> Box<RawValue> {
    if !raw.get().contains("\"resource") || catalog.expose_uri(server, "").is_empty() {
        return raw;
    }
    let Ok(mut result) = serde_json::from_str::<Value>(raw.get()) else {
        return raw;
    };
    let mut changed = false;
    if let Some(content) = result.get_mut("content").and_then(Value::as_array_mut) {
        for item in content {
            let uri = match item.get("type").and_then(Value::as_str) {
                Some("resource_link") => item.get_mut("uri"),
                Some("resource") => item.get_mut("resource").and_then(|r| r.get_mut("uri")),
                _ => None,
            };
            if let Some(uri) = uri
                && let Some(u) = uri.as_str()
            {
                *uri = Value::String(catalog.expose_uri(server, u));
                changed = true;
            }
        }
    }
    if !changed {
        return raw;
    }
    mcp_hub_protocol::to_raw(&result).unwrap_or(raw)
}
