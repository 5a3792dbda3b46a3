//! What the hub does with each JSON-RPC message a downstream client sends: local answers
//! (`initialize`, `ping`, `logging/setLevel`, the aggregated lists), cancellation, and the
//! client's answers to the hub's own requests. Routed calls live in `routed`.

use std::sync::Arc;

use mcp_hub_protocol::methods as m;
use mcp_hub_protocol::types::{CancelledParams, InitializeParams, LOG_LEVELS, log_level_rank};
use mcp_hub_protocol::{
    ErrorCode, ErrorObject, Message, Notification, ProtocolVersion, RawValue, Request,
    negotiate_version,
};
use mcp_hub_registry::{CatalogList, ServerStatus};
use serde_json::{Map, Value, json};

use super::session::Session;
use super::{Inner, lock};

pub(super) fn err(code: ErrorCode, msg: impl Into<String>) -> ErrorObject {
    ErrorObject::new(code, msg)
}

pub(super) fn raw(v: &Value) -> Box<RawValue> {
    mcp_hub_protocol::to_raw(v).unwrap_or_else(|_| mcp_hub_protocol::empty_object())
}

pub(super) fn reply(id: &Request, r: Result<Box<RawValue>, ErrorObject>) -> Message {
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
            | mcp_hub_registry::SKILLS_LIST
            | mcp_hub_registry::SKILLS_GET
    )
}

/// The list a list request asks for; `None` for any other method.
pub(super) fn list_of(method: &str) -> Option<CatalogList> {
    Some(match method {
        m::TOOLS_LIST => CatalogList::Tools,
        m::PROMPTS_LIST => CatalogList::Prompts,
        m::RESOURCES_LIST => CatalogList::Resources,
        m::RESOURCES_TEMPLATES_LIST => CatalogList::ResourceTemplates,
        _ => return None,
    })
}

/// Whether a list request names a cursor. Every list is served as one page, so no cursor was
/// ever handed out: one that is named is unknown.
pub(super) fn asks_for_cursor(req: &Request) -> bool {
    params_map(req)
        .ok()
        .and_then(|p| p.get("cursor").cloned())
        .is_some_and(|c| !c.is_null())
}

/// The answer to a list request that names a cursor.
pub(super) fn unknown_cursor(req: &Request) -> Message {
    reply(
        req,
        Err(err(
            ErrorCode::INVALID_PARAMS,
            "Invalid params: unknown cursor",
        )),
    )
}

pub(super) fn params_map(req: &Request) -> Result<Map<String, Value>, ErrorObject> {
    match req
        .params
        .as_deref()
        .map(|p| serde_json::from_str::<Value>(p.get()))
    {
        None => Ok(Map::new()),
        Some(Ok(Value::Object(o))) => Ok(o),
        Some(Ok(_)) => Err(err(
            ErrorCode::INVALID_PARAMS,
            "Invalid params: expected an object",
        )),
        // The envelope only checked that params is well-formed JSON; this parse also enforces
        // the nesting limit (128 levels), and says so.
        Some(Err(e)) if e.to_string().contains("recursion limit") => Err(err(
            ErrorCode::INVALID_PARAMS,
            "Invalid params: nested more than 128 levels deep",
        )),
        Some(Err(e)) => Err(err(
            ErrorCode::INVALID_PARAMS,
            format!("Invalid params: {e}"),
        )),
    }
}

/// Drops members a client of an older revision does not know (§1.6 down-level shaping).
pub(super) fn shape_list(json: &str, version: ProtocolVersion) -> String {
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
            "capabilities": self.capabilities(&self.sight(session)),
            "serverInfo": {"name": "mcp-hub", "title": "MCP Hub", "version": env!("CARGO_PKG_VERSION")},
        });
        if let Some(text) = self.instructions(session) {
            result["instructions"] = Value::String(text);
        }
        if let Some(id) = &self.config.instance_id {
            result["_meta"] = json!({ mcp_hub_registry::HUB_INSTANCE_META_KEY: id });
        }
        reply(req, Ok(raw(&result)))
    }

    /// What the hub advertises. Capabilities cannot change after `initialize` while upstreams
    /// come and go, so: a hub without servers offers only `logging`; while any server is still
    /// connecting (or none is up) every primitive the hub can route is advertised, since
    /// hiding one would make clients never ask for it; once every enabled server has settled,
    /// only what the connected upstreams offer (plus `listChanged`, which the hub emits itself
    /// whenever a server's lists change). A profile's endpoint counts only the servers its view
    /// shows: a client of a tools-only profile must not be told to ask for prompts.
    pub(super) fn capabilities(&self, sight: &super::profile::Sight) -> Value {
        let snaps = self.registry.snapshots();
        let enabled: Vec<_> = snaps
            .iter()
            .filter(|s| s.status != ServerStatus::Disabled && sight.sees(&s.name))
            .collect();
        if enabled.is_empty() {
            return json!({"logging": {}});
        }
        let settled = enabled.iter().all(|s| s.status != ServerStatus::Connecting);
        let connected = enabled.iter().any(|s| s.status == ServerStatus::Connected);
        let mut agg = self.registry.aggregate_capabilities_of(|n| sight.sees(n));
        // A search profile always lists its own two tools, whatever its servers offer.
        agg.tools |= sight.is_search();
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
        // Only what an upstream declared: a client must not call skills/list on a hub that has
        // no server to answer it.
        if agg.skills {
            caps.insert(
                "extensions".into(),
                json!({ mcp_hub_registry::SKILLS_EXTENSION: {} }),
            );
        }
        Value::Object(caps)
    }

    /// Upstream instructions under `## <server>` headings, of the servers the session sees.
    fn instructions(&self, session: &Session) -> Option<String> {
        self.instructions_for(&self.sight(session))
    }

    /// The instructions of the servers `sight` shows, led by the search mode's own.
    pub(super) fn instructions_for(&self, sight: &super::profile::Sight) -> Option<String> {
        let lead = sight
            .is_search()
            .then(|| super::search::INSTRUCTIONS.to_owned());
        self.instructions_where(lead, |server| sight.sees(server))
    }

    fn instructions_where(
        &self,
        lead: Option<String>,
        sees: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let parts: Vec<String> = self
            .registry
            .snapshots()
            .into_iter()
            .filter(|s| s.status == ServerStatus::Connected)
            .filter(|s| sees(&s.name))
            .filter_map(|s| {
                let text = s.instructions?;
                let text = text.trim();
                (!text.is_empty()).then(|| format!("## {}\n\n{text}", s.name))
            })
            .collect();
        let parts: Vec<String> = lead.into_iter().chain(parts).collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    /// Answers a request the hub handles itself; `None` for requests that are routed upstream.
    pub(crate) fn local_request(
        self: &Arc<Self>,
        session: &Arc<Session>,
        req: &Request,
    ) -> Option<Message> {
        if let Some(result) = self.cached_list(session, req) {
            return Some(reply(req, Ok(result.as_ref().to_owned())));
        }
        if let Some(answer) = self.profile_list(session, req) {
            return Some(answer);
        }
        let list = |key: &str, which: CatalogList| -> Message {
            if asks_for_cursor(req) {
                return unknown_cursor(req);
            }
            let catalog = self.registry.catalog();
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
