//! What the hub does with each JSON-RPC message a downstream client sends: local answers
//! (`initialize`, `ping`, `logging/setLevel`, the aggregated lists), routed calls with their
//! related notifications, cancellation, and the client's answers to the hub's own requests.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mcp_hub_protocol::methods as m;
use mcp_hub_protocol::types::{CancelledParams, InitializeParams, LOG_LEVELS, log_level_rank};
use mcp_hub_protocol::{
    ErrorCode, ErrorObject, Message, Notification, ProtocolVersion, RawValue, Request,
    negotiate_version,
};
use mcp_hub_registry::{
    CancelReason, CatalogList, RequestError, RequestOptions, Requester, RouteError, ServerStatus,
};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::session::Session;
use super::stream::EventStream;
use super::{Inner, lock};

/// Related notifications buffered per routed call before the call's own reader catches up.
const RELATED_CAPACITY: usize = 256;

fn err(code: ErrorCode, msg: impl Into<String>) -> ErrorObject {
    ErrorObject::new(code, msg)
}

fn raw(v: &Value) -> Box<RawValue> {
    mcp_hub_protocol::to_raw(v).unwrap_or_else(|_| mcp_hub_protocol::empty_object())
}

fn reply(id: &Request, r: Result<Box<RawValue>, ErrorObject>) -> Message {
    match r {
        Ok(result) => Message::response(id.id.clone(), result),
        Err(e) => Message::error(Some(id.id.clone()), e),
    }
}

/// Requests the hub routes upstream (answered on an SSE stream).
pub(crate) fn is_routed(method: &str) -> bool {
    matches!(
        method,
        m::TOOLS_CALL
            | m::PROMPTS_GET
            | m::RESOURCES_READ
            | m::COMPLETION_COMPLETE
            | m::RESOURCES_SUBSCRIBE
            | m::RESOURCES_UNSUBSCRIBE
    )
}

fn params_map(req: &Request) -> Result<Map<String, Value>, ErrorObject> {
    match req
        .params
        .as_deref()
        .map(|p| serde_json::from_str::<Value>(p.get()))
    {
        None => Ok(Map::new()),
        Some(Ok(Value::Object(o))) => Ok(o),
        Some(_) => Err(err(
            ErrorCode::INVALID_PARAMS,
            "Invalid params: expected an object",
        )),
    }
}

/// Maps a routing failure to what the client sees. A `tools/call` to a server that is down is a
/// tool error (as the Node hub answers), so models can read and react to it.
fn route_error(method: &str, e: RouteError) -> Result<Box<RawValue>, ErrorObject> {
    let tool_error = |text: String| {
        if method == m::TOOLS_CALL {
            return Ok(raw(
                &json!({"content": [{"type": "text", "text": text}], "isError": true}),
            ));
        }
        Err(err(ErrorCode::INTERNAL_ERROR, text))
    };
    Err(match e {
        RouteError::ServerNotConnected(s) | RouteError::ServerNotFound(s) => {
            return tool_error(format!("Server {s} is not connected"));
        }
        RouteError::Isolation(text) => return tool_error(text),
        RouteError::UnknownTool(t) => err(ErrorCode::INVALID_PARAMS, format!("Unknown tool: {t}")),
        RouteError::UnknownPrompt(p) => {
            err(ErrorCode::INVALID_PARAMS, format!("Unknown prompt: {p}"))
        }
        RouteError::UnknownResource(uri) => ErrorObject::with_data(
            ErrorCode::RESOURCE_NOT_FOUND,
            "Resource not found",
            &json!({"uri": uri}),
        ),
        RouteError::InvalidParams(p) => {
            err(ErrorCode::INVALID_PARAMS, format!("Invalid params: {p}"))
        }
        RouteError::Upstream(RequestError::Rpc(e)) => e,
        RouteError::Upstream(RequestError::Timeout(_)) => {
            err(ErrorCode::REQUEST_TIMEOUT, "Request timed out")
        }
        RouteError::Upstream(RequestError::Closed(why)) => err(
            ErrorCode::INTERNAL_ERROR,
            format!("Connection closed: {why}"),
        ),
        RouteError::Upstream(RequestError::Transport(t)) => {
            err(ErrorCode::INTERNAL_ERROR, t.to_string())
        }
    })
}

/// Drops members a client of an older revision does not know (§1.6 down-level shaping).
fn shape_list(json: &str, version: ProtocolVersion) -> String {
    if version >= ProtocolVersion::V2025_11_25 {
        return json.to_owned();
    }
    let Ok(mut items) = serde_json::from_str::<Vec<Value>>(json) else {
        return json.to_owned();
    };
    for item in &mut items {
        if let Some(o) = item.as_object_mut() {
            o.shift_remove("icons");
            if version < ProtocolVersion::V2025_06_18 {
                o.shift_remove("title");
                o.shift_remove("outputSchema");
            }
        }
    }
    serde_json::to_string(&items).unwrap_or_else(|_| json.to_owned())
}

impl Inner {
    /// Answers `initialize` and records what was negotiated.
    pub(crate) fn initialize(&self, session: &Session, req: &Request) -> Message {
        let params: InitializeParams = match req.params_as() {
            Ok(p) => p,
            Err(e) => {
                return reply(
                    req,
                    Err(err(
                        ErrorCode::INVALID_PARAMS,
                        format!("Invalid params: {e}"),
                    )),
                );
            }
        };
        let version = negotiate_version(&params.protocol_version);
        {
            let mut st = session.lock();
            if st.initialized {
                return reply(
                    req,
                    Err(err(
                        ErrorCode::INVALID_REQUEST,
                        "Invalid Request: Server already initialized",
                    )),
                );
            }
            st.initialized = true;
            st.version = version;
            st.client_caps = params.capabilities;
        }
        tracing::debug!(
            target: "mcp_hub::api",
            session = %session.id,
            client = %params.client_info.name,
            requested = %params.protocol_version,
            negotiated = %version,
            "MCP initialize"
        );
        let mut result = json!({
            "protocolVersion": version.as_str(),
            "capabilities": self.capabilities(),
            "serverInfo": {"name": "mcp-hub", "title": "MCP Hub", "version": env!("CARGO_PKG_VERSION")},
        });
        if let Some(text) = self.instructions() {
            result["instructions"] = Value::String(text);
        }
        reply(req, Ok(raw(&result)))
    }

    /// What the hub advertises. Capabilities cannot change after `initialize` while upstreams
    /// come and go, so: a hub without servers offers only `logging`; while any server is still
    /// connecting (or none is up) every primitive the hub can route is advertised, since
    /// hiding one would make clients never ask for it; once every enabled server has settled,
    /// only what the connected upstreams offer (plus `listChanged`, which the hub emits itself
    /// whenever a server's lists change).
    fn capabilities(&self) -> Value {
        let snaps = self.registry.snapshots();
        let enabled: Vec<_> = snaps
            .iter()
            .filter(|s| s.status != ServerStatus::Disabled)
            .collect();
        if enabled.is_empty() {
            return json!({"logging": {}});
        }
        let settled = enabled.iter().all(|s| s.status != ServerStatus::Connecting);
        let connected = enabled.iter().any(|s| s.status == ServerStatus::Connected);
        let agg = self.registry.aggregate_capabilities();
        let known = settled && connected;
        let mut caps = Map::new();
        caps.insert("logging".into(), json!({}));
        if !known || agg.completions {
            caps.insert("completions".into(), json!({}));
        }
        if !known || agg.prompts {
            caps.insert("prompts".into(), json!({"listChanged": true}));
        }
        if !known || agg.resources {
            caps.insert(
                "resources".into(),
                json!({"subscribe": !known || agg.subscribe, "listChanged": true}),
            );
        }
        if !known || agg.tools {
            caps.insert("tools".into(), json!({"listChanged": true}));
        }
        Value::Object(caps)
    }

    /// Upstream instructions under `## <server>` headings.
    fn instructions(&self) -> Option<String> {
        let parts: Vec<String> = self
            .registry
            .snapshots()
            .into_iter()
            .filter(|s| s.status == ServerStatus::Connected)
            .filter_map(|s| {
                let text = s.instructions?;
                let text = text.trim();
                (!text.is_empty()).then(|| format!("## {}\n\n{text}", s.name))
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    /// Answers a request the hub handles itself; `None` for requests that are routed upstream.
    pub(crate) fn local_request(
        self: &Arc<Self>,
        session: &Arc<Session>,
        req: &Request,
    ) -> Option<Message> {
        let list = |key: &str, which: CatalogList| -> Message {
            let cursor = params_map(req)
                .ok()
                .and_then(|p| p.get("cursor").cloned())
                .filter(|c| !c.is_null());
            if cursor.is_some() {
                // Every list is served as one page, so no cursor was ever handed out.
                return reply(
                    req,
                    Err(err(
                        ErrorCode::INVALID_PARAMS,
                        "Invalid params: unknown cursor",
                    )),
                );
            }
            let catalog = self.registry.catalog();
            if session.version() >= ProtocolVersion::V2025_11_25 {
                // The common case: the snapshot's cached result, copied without re-parsing.
                return reply(req, Ok(catalog.list_result(which).as_ref().to_owned()));
            }
            let items = shape_list(&catalog.list_json(which), session.version());
            let text = format!("{{\"{key}\":{items}}}");
            reply(
                req,
                RawValue::from_string(text)
                    .map_err(|e| err(ErrorCode::INTERNAL_ERROR, e.to_string())),
            )
        };
        Some(match req.method.as_str() {
            m::INITIALIZE => self.initialize(session, req),
            m::PING => reply(req, Ok(mcp_hub_protocol::empty_object())),
            m::LOGGING_SET_LEVEL => {
                let level = params_map(req)
                    .ok()
                    .and_then(|p| p.get("level").and_then(Value::as_str).map(str::to_owned));
                match level.as_deref().and_then(log_level_rank) {
                    Some(rank) => {
                        session.lock().log_level = Some(rank);
                        self.update_upstream_level();
                        reply(req, Ok(mcp_hub_protocol::empty_object()))
                    }
                    None => reply(
                        req,
                        Err(err(
                            ErrorCode::INVALID_PARAMS,
                            format!("Invalid params: unknown logging level {level:?}"),
                        )),
                    ),
                }
            }
            m::TOOLS_LIST => list("tools", CatalogList::Tools),
            m::PROMPTS_LIST => list("prompts", CatalogList::Prompts),
            m::RESOURCES_LIST => list("resources", CatalogList::Resources),
            m::RESOURCES_TEMPLATES_LIST => {
                list("resourceTemplates", CatalogList::ResourceTemplates)
            }
            method if is_routed(method) => return None,
            method => reply(
                req,
                Err(err(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("Method not found: {method}"),
                )),
            ),
        })
    }

    /// Sends upstream the most verbose level any session asked for; sessions filter the rest.
    pub(crate) fn update_upstream_level(self: &Arc<Self>) {
        let sessions: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        let Some(rank) = sessions.iter().filter_map(|s| s.lock().log_level).min() else {
            return;
        };
        {
            let mut applied = lock(&self.applied_level);
            if *applied == Some(rank) {
                return;
            }
            *applied = Some(rank);
        }
        let registry = self.registry.clone();
        let level = LOG_LEVELS[rank];
        tokio::spawn(async move { registry.set_log_level(level).await });
    }

    pub(crate) fn handle_notification(self: &Arc<Self>, session: &Arc<Session>, n: Notification) {
        match n.method.as_str() {
            m::CANCELLED => {
                let Ok(p) = n.params_as::<CancelledParams>() else {
                    return;
                };
                let token = session.lock().in_flight.remove(&p.request_id);
                if let Some((token, caller)) = token {
                    tracing::debug!(target: "mcp_hub::api", session = %session.id, id = %p.request_id, "request cancelled by the client");
                    // The upstream hears the client's own reason.
                    if let Some((_, _, reason)) = lock(&self.callers).get(&caller) {
                        reason.set(
                            p.reason
                                .clone()
                                .unwrap_or_else(|| "cancelled by the client".to_owned()),
                        );
                    }
                    token.cancel();
                }
            }
            m::ROOTS_LIST_CHANGED => {
                let registry = self.registry.clone();
                let key = session.key;
                tokio::spawn(async move { registry.roots_changed(key).await });
            }
            m::INITIALIZED => session.lock().handshake_done = true,
            m::PROGRESS => {}
            other => {
                tracing::debug!(target: "mcp_hub::api", session = %session.id, method = other, "ignored client notification");
            }
        }
    }

    /// A client's answer to a request the hub sent it (sampling, elicitation, roots).
    pub(crate) fn handle_client_response(&self, session: &Session, msg: Message) {
        let (id, outcome) = match msg {
            Message::Response(r) => (r.id, Ok(r.result)),
            Message::Error(e) => match e.id {
                Some(id) => (id, Err(e.error)),
                None => {
                    tracing::debug!(target: "mcp_hub::api", session = %session.id, "client sent an error without id: {}", e.error.message);
                    return;
                }
            },
            _ => return,
        };
        match session.lock().pending.remove(&id) {
            Some(tx) => {
                let _ = tx.send(outcome);
            }
            None => {
                tracing::debug!(target: "mcp_hub::api", session = %session.id, %id, "response to an unknown or finished request");
            }
        }
    }

    /// Runs a routed request in its own task; its notifications and answer go to `stream`.
    /// The task outlives the HTTP connection (a disconnect is not a cancellation) but not the
    /// session or a `notifications/cancelled`.
    pub(crate) fn spawn_proxied(
        self: &Arc<Self>,
        session: &Arc<Session>,
        req: Request,
        stream: Arc<EventStream>,
    ) {
        let token = session.cancel.child_token();
        let caller = self.next_caller.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = session.lock();
            let refusal = if st.in_flight.len() >= self.config.max_in_flight_per_session {
                Some(err(
                    ErrorCode::SERVER_ERROR,
                    "Too many requests in flight for this session",
                ))
            } else if st.in_flight.contains_key(&req.id) {
                Some(err(
                    ErrorCode::INVALID_REQUEST,
                    format!("Invalid Request: id {} is already in use", req.id),
                ))
            } else {
                None
            };
            if let Some(e) = refusal {
                drop(st);
                stream.respond(Some(&reply(&req, Err(e))));
                return;
            }
            st.in_flight.insert(req.id.clone(), (token.clone(), caller));
        }
        let reason = CancelReason::new();
        lock(&self.callers).insert(caller, (session.clone(), stream.clone(), reason.clone()));
        let inner = self.clone();
        let session = session.clone();
        tokio::spawn(async move {
            let outcome = inner
                .run_call(&session, &req, caller, &stream, &token, reason)
                .await;
            lock(&inner.callers).remove(&caller);
            {
                let mut st = session.lock();
                if st.in_flight.get(&req.id).is_some_and(|(_, c)| *c == caller) {
                    st.in_flight.remove(&req.id);
                }
            }
            stream.respond(outcome.as_ref());
        });
    }

    async fn run_call(
        &self,
        session: &Arc<Session>,
        req: &Request,
        caller: u64,
        stream: &EventStream,
        token: &CancellationToken,
        cancel_reason: CancelReason,
    ) -> Option<Message> {
        let params = match params_map(req) {
            Ok(p) => p,
            Err(e) => return Some(reply(req, Err(e))),
        };
        let server = self.owner_of(&req.method, &params);
        let (tx, mut rx) = mpsc::channel(RELATED_CAPACITY);
        let opts = RequestOptions {
            related: Some(tx),
            requester: Some(Requester {
                session: session.key,
                call: caller,
                features: session.features(),
            }),
            cancel_reason: Some(cancel_reason),
            reset_timeout_on_progress: true,
            ..RequestOptions::default()
        };
        let call = self.route(session, &req.method, params, opts);
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => {
                    // A client's cancel gets no answer; a hub shutting down owes one.
                    return self.draining.load(Ordering::SeqCst).then(|| {
                        reply(req, Err(err(ErrorCode::INTERNAL_ERROR, "The hub is shutting down")))
                    });
                }
                Some(n) = rx.recv() => forward_related(session, stream, n, server.as_deref()),
                r = &mut call => break r,
            }
        };
        while let Ok(n) = rx.try_recv() {
            forward_related(session, stream, n, server.as_deref());
        }
        Some(reply(req, result))
    }

    /// The server a routed request goes to, for tagging its log messages.
    fn owner_of(&self, method: &str, params: &Map<String, Value>) -> Option<String> {
        let catalog = self.registry.catalog();
        let name = |k: &str| params.get(k).and_then(Value::as_str);
        let server = match method {
            m::TOOLS_CALL => catalog.tool(name("name")?)?.server.clone(),
            m::PROMPTS_GET => catalog.prompt(name("name")?)?.server.clone(),
            m::RESOURCES_READ => catalog.resource(name("uri")?)?.server,
            _ => return None,
        };
        Some(server.to_string())
    }

    async fn route(
        &self,
        session: &Session,
        method: &str,
        params: Map<String, Value>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let r = match method {
            m::TOOLS_CALL => self.registry.call_tool(params, opts).await,
            m::PROMPTS_GET => self.registry.get_prompt(params, opts).await,
            m::RESOURCES_READ => self.registry.read_resource(params, opts).await,
            m::COMPLETION_COMPLETE => self.registry.complete(params, opts).await,
            m::RESOURCES_SUBSCRIBE | m::RESOURCES_UNSUBSCRIBE => {
                let Some(uri) = params.get("uri").and_then(Value::as_str) else {
                    return Err(err(
                        ErrorCode::INVALID_PARAMS,
                        "Invalid params: missing uri",
                    ));
                };
                return self
                    .subscription(session, method == m::RESOURCES_SUBSCRIBE, uri)
                    .await;
            }
            other => {
                return Err(err(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("Method not found: {other}"),
                ));
            }
        };
        r.or_else(|e| route_error(method, e))
    }

    /// `resources/subscribe` and `unsubscribe`: the registry counts subscribers per URI, so each
    /// session subscribes a URI at most once and releases it when it ends.
    async fn subscription(
        &self,
        session: &Session,
        subscribe: bool,
        uri: &str,
    ) -> Result<Box<RawValue>, ErrorObject> {
        if subscribe {
            if !session.lock().subscriptions.insert(uri.to_owned()) {
                return Ok(mcp_hub_protocol::empty_object());
            }
            if let Err(e) = self.registry.subscribe_resource(uri).await {
                session.lock().subscriptions.remove(uri);
                return route_error(m::RESOURCES_SUBSCRIBE, e);
            }
        } else {
            if !session.lock().subscriptions.remove(uri) {
                return Ok(mcp_hub_protocol::empty_object());
            }
            if let Err(e) = self.registry.unsubscribe_resource(uri).await {
                return route_error(m::RESOURCES_UNSUBSCRIBE, e);
            }
        }
        Ok(mcp_hub_protocol::empty_object())
    }
}

/// A notification that belongs to a routed call goes on that call's stream; log messages pass
/// the session's level and name their server.
fn forward_related(
    session: &Session,
    stream: &EventStream,
    mut n: Notification,
    server: Option<&str>,
) {
    if n.method == m::LOGGING_MESSAGE {
        let Some(tagged) = tag_log(&n, server) else {
            return;
        };
        if !session.admits_log(tagged.get("level").and_then(Value::as_str)) {
            return;
        }
        n.params = Some(raw(&Value::Object(tagged)));
    }
    stream.push(&Message::Notification(n));
}

/// The params of a `notifications/message` with `logger` set to the server when absent.
pub(crate) fn tag_log(n: &Notification, server: Option<&str>) -> Option<Map<String, Value>> {
    let mut p: Map<String, Value> = n.params_as().ok()?;
    if let Some(s) = server
        && !p.contains_key("logger")
    {
        p.insert("logger".into(), Value::String(s.to_owned()));
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_as_documented() {
        let e = route_error(m::PROMPTS_GET, RouteError::UnknownPrompt("p".into())).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (-32602, "Unknown prompt: p"));
        let e = route_error(
            m::RESOURCES_READ,
            RouteError::UnknownResource("u://x".into()),
        )
        .unwrap_err();
        assert_eq!(e.code, -32002);
        assert_eq!(e.data.unwrap().get(), r#"{"uri":"u://x"}"#);
        let r = route_error(m::TOOLS_CALL, RouteError::ServerNotConnected("a".into())).unwrap();
        let v: Value = serde_json::from_str(r.get()).unwrap();
        assert_eq!(v["isError"], true);
        assert_eq!(v["content"][0]["text"], "Server a is not connected");
        let upstream = ErrorObject::new(ErrorCode(-32042), "url needed");
        let e = route_error(
            m::TOOLS_CALL,
            RouteError::Upstream(RequestError::Rpc(upstream.clone())),
        )
        .unwrap_err();
        assert_eq!(e, upstream);
        let e = route_error(
            m::TOOLS_CALL,
            RouteError::Upstream(RequestError::Timeout(std::time::Duration::from_secs(1))),
        )
        .unwrap_err();
        assert_eq!(e.code, -32001);
    }

    #[test]
    fn older_clients_get_shaped_lists() {
        let json =
            r#"[{"name":"a","title":"A","icons":[],"outputSchema":{},"inputSchema":{"$defs":{}}}]"#;
        assert_eq!(shape_list(json, ProtocolVersion::V2025_11_25), json);
        assert_eq!(
            shape_list(json, ProtocolVersion::V2025_06_18),
            r#"[{"name":"a","title":"A","outputSchema":{},"inputSchema":{"$defs":{}}}]"#
        );
        assert_eq!(
            shape_list(json, ProtocolVersion::V2025_03_26),
            r#"[{"name":"a","inputSchema":{"$defs":{}}}]"#
        );
    }

    #[test]
    fn logs_name_their_server() {
        let n = Notification {
            method: m::LOGGING_MESSAGE.into(),
            params: Some(raw(&json!({"level": "info", "data": "x"}))),
        };
        assert_eq!(tag_log(&n, Some("s")).unwrap()["logger"], "s");
        let n = Notification {
            method: m::LOGGING_MESSAGE.into(),
            params: Some(raw(&json!({"level": "info", "logger": "own", "data": "x"}))),
        };
        assert_eq!(tag_log(&n, Some("s")).unwrap()["logger"], "own");
    }
}
