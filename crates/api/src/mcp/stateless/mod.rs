//! The 2026-07-28 ("modern") era on `/mcp`: a request without `Mcp-Session-Id` that names a
//! modern version in `_meta` (or a modern-only method) is served on its own, with nothing kept
//! between requests.
//!
//! What a stateless request costs: its `_meta` and headers are checked (on the one parse of
//! `params`, which the request then works with),
//! local answers (`server/discover`, the lists) come from the catalogue snapshot like a session's
//! (the list text is copied once to add `resultType` and the caching hints at its top level),
//! and a routed call runs exactly as a session's call does, tagged with a fresh requester so
//! that what the upstream sends back is attributed to it alone. No session, no event ids, no
//! replay buffer: the response stream ends with the answer, and closing it cancels the call.
//! `subscriptions/listen` (`listen`) is the one request that stays open.
//!
//! On a profile's endpoint (`/mcp/<profile>`) every answer is the profile's: `server/discover`
//! names only its servers' instructions, the lists are its view's (search mode's two tools),
//! routed requests pass the same gate as a session's (`profile`), a parked call's
//! `requestState` is bound to the profile too, and a listen stream hears only of changes to the
//! view.

pub(crate) mod elsewhere;
mod listen;
pub(crate) mod mrtr;
mod reply;

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use http::{HeaderMap, StatusCode};
use mcp_hub_protocol::modern::{self, Decoration, RequestMeta};
use mcp_hub_protocol::types::log_level_rank;
use mcp_hub_protocol::{
    ErrorCode, ErrorObject, Message, Notification, RawValue, Request, RequestId,
    SUPPORTED_PROTOCOL_VERSIONS, methods as m,
};
use mcp_hub_registry::{
    CancelReason, CatalogList, ClientFeatures, NamedParams, RequestOptions, Requester, ServerStatus,
};
use serde_json::{Map, Value, json};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::dispatch::err;
use super::profile::{Gate, Sight};
use super::routed::{parsed, route_error, tag_log};
use super::{Inner, header_str, lock};
use crate::body::{self, Body};
use reply::answer;
pub(crate) use reply::channel_body;

/// How long a client may cache the lists while every server has settled. List changes reach
/// `subscriptions/listen` streams at once; this bounds how stale a client without one gets.
const LIST_TTL_MS: u64 = 30_000;
/// Events a routed call's response stream holds before the call waits for its client.
const STREAM_QUEUE: usize = 256;
/// How long a routed call's response head waits for its first event: an answer ready by then
/// goes out as plain JSON (and a refusal as a 400), anything later on an SSE stream.
const FIRST_EVENT_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Every version `/mcp` speaks, modern first: what `server/discover` and `-32022` list.
pub(crate) fn supported_versions() -> Vec<&'static str> {
    modern::MODERN_VERSIONS
        .iter()
        .chain(SUPPORTED_PROTOCOL_VERSIONS)
        .copied()
        .collect()
}

/// Whether a sessionless request belongs to the modern era: its `_meta` names a version, it
/// uses a modern-only method, or its `MCP-Protocol-Version` header is modern. `initialize`
/// never is (without a modern `_meta`): it opens a session as it always did.
/// `params` is the request's `params` parsed once ([`modern::request_params`]), which a modern
/// request then goes on with.
pub(crate) fn is_modern(req: &Request, params: &Params, headers: &HeaderMap) -> bool {
    let declared = params
        .as_ref()
        .ok()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(modern::meta::PROTOCOL_VERSION));
    if declared.is_some_and(Value::is_string) {
        return true;
    }
    if req.method == m::INITIALIZE {
        return false;
    }
    req.method == m::SERVER_DISCOVER
        || req.method == modern::methods::SUBSCRIPTIONS_LISTEN
        || header_str(headers, super::VERSION_HEADER).is_some_and(modern::is_modern_version)
}

/// A JSON-RPC error answer that names the request.
pub(crate) fn error_response(status: StatusCode, id: &RequestId, e: ErrorObject) -> Response {
    body::json_bytes(status, Message::error(Some(id.clone()), e).to_vec())
}

type Response = http::Response<Body>;

/// A request's `params` as an object, or the refusal of a modern request whose are not one.
pub(crate) type Params = Result<Map<String, Value>, modern::Rejection>;

impl Inner {
    /// Serves one modern request, on `/mcp` (`profile` `None`) or a profile's endpoint.
    pub(crate) async fn stateless(
        self: &Arc<Self>,
        headers: &HeaderMap,
        req: Request,
        params: Params,
        principal: Option<usize>,
        profile: Option<Arc<str>>,
    ) -> Response {
        let versions = supported_versions();
        let header = |n: &str| header_str(headers, n);
        // `params` was parsed once (see `is_modern`), for the checks and what the request does.
        let checked = params.and_then(|params| {
            modern::check_params(&req, &params, Some(&header), &versions).map(|m| (params, m))
        });
        let (params, meta) = match checked {
            Ok(pm) => pm,
            Err(r) => {
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
                return error_response(status, &req.id, r.error);
            }
        };
        let sight = self.sight_of(profile.as_deref());
        let list = |which| self.list(&req, &params, which, &sight);
        match req.method.as_str() {
            m::SERVER_DISCOVER => self.reply_json(&req, Ok(self.discover(&versions, &sight)), None),
            m::TOOLS_LIST => list(CatalogList::Tools),
            m::PROMPTS_LIST => list(CatalogList::Prompts),
            m::RESOURCES_LIST => list(CatalogList::Resources),
            m::RESOURCES_TEMPLATES_LIST => list(CatalogList::ResourceTemplates),
            m::TOOLS_CALL
            | m::PROMPTS_GET
            | m::RESOURCES_READ
            | m::COMPLETION_COMPLETE
            | mcp_hub_registry::SKILLS_LIST
            | mcp_hub_registry::SKILLS_GET => {
                self.stateless_call(req, params, meta, principal, profile, sight)
                    .await
            }
            modern::methods::SUBSCRIPTIONS_LISTEN => listen::open(self, req, profile),
            method => {
                let r = modern::method_not_found(method);
                error_response(StatusCode::NOT_FOUND, &req.id, r.error)
            }
        }
    }

    /// The hub's `serverInfo`, written once.
    fn server_info() -> &'static RawValue {
        static INFO: LazyLock<Box<RawValue>> = LazyLock::new(|| {
            super::dispatch::raw(
                &json!({"name": "mcp-hub", "title": "MCP Hub", "version": env!("CARGO_PKG_VERSION")}),
            )
        });
        &INFO
    }

    /// `ttlMs` and `cacheScope` of the lists: nothing may be cached while a server is still
    /// connecting (its lists are about to arrive); the lists are the same for every caller of
    /// an open hub (`public`), but a hub behind bearer tokens keeps them `private`.
    fn list_cache(&self) -> (u64, &'static str) {
        let settled = self
            .registry
            .snapshots()
            .iter()
            .all(|s| s.status != ServerStatus::Connecting);
        let scope = if self.config.bearer_tokens.is_empty() {
            "public"
        } else {
            "private"
        };
        (if settled { LIST_TTL_MS } else { 0 }, scope)
    }

    fn discover(&self, versions: &[&str], sight: &Sight) -> Box<RawValue> {
        let mut result = json!({
            "supportedVersions": versions,
            "capabilities": self.capabilities(sight),
        });
        if let Some(text) = self.instructions_for(sight) {
            result["instructions"] = Value::String(text);
        }
        let (ttl, scope) = self.list_cache();
        result["ttlMs"] = json!(ttl);
        result["cacheScope"] = json!(scope);
        super::dispatch::raw(&result)
    }

    fn list(
        &self,
        req: &Request,
        params: &Map<String, Value>,
        which: CatalogList,
        sight: &Sight,
    ) -> Response {
        if params.get("cursor").is_some_and(|c| !c.is_null()) {
            let e = err(ErrorCode::INVALID_PARAMS, "Invalid params: unknown cursor");
            return self.reply_json(req, Err(e), None);
        }
        let result = match self.sight_list(sight, which) {
            Some(r) => r,
            None => self
                .registry
                .catalog()
                .list_result(which)
                .as_ref()
                .to_owned(),
        };
        self.reply_json(req, Ok(result), Some(self.list_cache()))
    }

    /// A JSON answer; a result gains `resultType`, `serverInfo` and the given caching hints.
    fn reply_json(
        &self,
        req: &Request,
        result: Result<Box<RawValue>, ErrorObject>,
        cache: Option<(u64, &str)>,
    ) -> Response {
        match result {
            Ok(r) => body::json_bytes(
                StatusCode::OK,
                Message::response(req.id.clone(), decorate(&r, cache)).to_vec(),
            ),
            Err(e) => error_response(StatusCode::OK, &req.id, e),
        }
    }

    /// A routed request. Its answer comes as plain JSON when it is ready at once (or is a
    /// refusal that HTTP must carry as a 400), else on an SSE stream that carries its progress
    /// (and its logs, when `_meta` asked for a level) and then the answer.
    async fn stateless_call(
        self: &Arc<Self>,
        req: Request,
        params: Map<String, Value>,
        meta: RequestMeta,
        principal: Option<usize>,
        profile: Option<Arc<str>>,
        sight: Sight,
    ) -> Response {
        let binding = mrtr::Binding {
            principal,
            profile: profile.as_deref().map(str::to_owned),
            method: req.method.clone(),
            name: params
                .get(
                    if req.method == m::RESOURCES_READ || req.method == mcp_hub_registry::SKILLS_GET
                    {
                        "uri"
                    } else {
                        "name"
                    },
                )
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        // A retry of a call the hub parked: resume it instead of calling again.
        if let Some(state) = params.get("requestState").and_then(Value::as_str) {
            let responses = params.get("inputResponses").and_then(Value::as_object);
            return match mrtr::resume(self, state, responses, req.id.clone(), binding) {
                Ok(drive) => answer(drive).await,
                Err(e) => error_response(StatusCode::OK, &req.id, e),
            };
        }
        // A profile's endpoint reaches only what the profile shows, and answers search mode's
        // `search_tools` itself; `call_tool` goes on as the direct call it stands for.
        let mut params = match self.gate(&sight, &req.method, params) {
            Gate::Route(p) => p,
            Gate::Answer(r) => {
                return self.reply_json(&req, r.map_err(|e| modern_error(&req, e)), None);
            }
        };
        params.remove("inputResponses");
        let (tx, rx) = mpsc::channel::<mrtr::Ev>(STREAM_QUEUE);
        let inner = self.clone();
        let caller = self.next_caller.fetch_add(1, Ordering::Relaxed);
        let (abort_tx, abort) = oneshot::channel();
        lock(&self.stateless_calls).insert(
            caller,
            Caller {
                capabilities: meta.capabilities.clone(),
                server: self.owner_of(&req.method, parsed(&params)),
                abort: Some(abort_tx),
                events: tx.clone(),
            },
        );
        self.stateless_in_flight.fetch_add(1, Ordering::SeqCst);
        let id = req.id.clone();
        tokio::spawn(async move {
            let answer = tokio::select! {
                biased;
                // Nobody reads the call any more (the client closed its stream, or a parked
                // call expired): dropping the call cancels it upstream.
                _ = tx.closed() => None,
                _ = inner.shutdown.cancelled() => Some(Message::error(
                    Some(req.id.clone()),
                    err(ErrorCode::INTERNAL_ERROR, "The hub is shutting down"),
                )),
                Ok(e) = abort => Some(Message::error(Some(req.id.clone()), e)),
                a = inner.run_stateless(&req, params, &meta, caller, &tx, &sight) => Some(a),
            };
            lock(&inner.stateless_calls).remove(&caller);
            if let Some(a) = answer {
                let _ = tx.send(mrtr::Ev::Msg(a)).await;
            }
            inner.stateless_in_flight.fetch_sub(1, Ordering::SeqCst);
        });
        answer(mrtr::Drive::new(self.clone(), rx, id, binding)).await
    }

    async fn run_stateless(
        &self,
        req: &Request,
        params: Map<String, Value>,
        meta: &RequestMeta,
        caller: u64,
        tx: &mpsc::Sender<mrtr::Ev>,
        sight: &Sight,
    ) -> Message {
        let server = self.owner_of(&req.method, parsed(&params));
        let key = super::session::next_key();
        let (rtx, mut rx) = mpsc::channel(STREAM_QUEUE);
        // A call that can take no notification (no log level asked for, no progress token)
        // takes none: on a stdio upstream it then never makes another call's logs ambiguous.
        let takes_notifications =
            meta.log_level.is_some() || mcp_hub_protocol::types::progress_token(&params).is_some();
        let opts = RequestOptions {
            related: takes_notifications.then_some(rtx),
            requester: Some(Requester {
                session: key,
                call: caller,
                // Whatever the upstream asks of the client during this call is attributed to
                // it, declared or not: the hub then answers it for this caller
                // (`stateless_client_request`) instead of looking for another.
                features: ClientFeatures::ALL,
            }),
            client_features: Some(ClientFeatures::from_capabilities(&meta.capabilities)),
            cancel_reason: Some(CancelReason::new()),
            reset_timeout_on_progress: true,
            ..RequestOptions::default()
        };
        let span =
            mcp_hub_registry::trace::downstream(&params, mcp_hub_registry::trace::recording());
        let mut opts = opts;
        opts.trace = span.as_ref().map(|s| s.ctx.clone());
        let tool = super::trace_header::named(&params);
        let min_log = meta.log_level.as_deref().and_then(log_level_rank);
        let method = req.method.clone();
        let call = async {
            let r = match method.as_str() {
                // As the client wrote it, like a session's plain call, when nothing reshaped
                // it: no profile's gate, no `inputResponses` taken out. Not for speed (the
                // params were parsed for the checks already): a `Map` would round big integers
                // and rewrite `1.50` and escapes on their way upstream.
                m::TOOLS_CALL => match super::routed::raw_tool_call_parsed(req)
                    .filter(|o| matches!(sight, Sight::All) && !o.contains("inputResponses"))
                {
                    Some(o) => self.registry.call_tool(NamedParams::Raw(o), opts).await,
                    None => self.registry.call_tool(params, opts).await,
                },
                m::PROMPTS_GET => self.registry.get_prompt(params, opts).await,
                m::RESOURCES_READ => self.registry.read_resource(params, opts).await,
                mcp_hub_registry::SKILLS_LIST => match params.get("cursor") {
                    // The hub's listing is one page: it never handed out a cursor.
                    Some(c) if !c.is_null() => Err(mcp_hub_registry::RouteError::InvalidParams(
                        "unknown cursor".into(),
                    )),
                    _ => self.list_skills(sight, opts).await,
                },
                mcp_hub_registry::SKILLS_GET => self.registry.get_skill(params, opts).await,
                _ => self.registry.complete(params, opts).await,
            };
            r.or_else(|e| route_error(&method, e))
        };
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                biased;
                Some(n) = rx.recv() => {
                    if let Some(n) = related(n, server.as_deref(), min_log) {
                        let _ = tx.send(mrtr::Ev::Msg(Message::Notification(n))).await;
                    }
                }
                r = &mut call => break r,
            }
        };
        while let Ok(n) = rx.try_recv() {
            if let Some(n) = related(n, server.as_deref(), min_log) {
                let _ = tx.send(mrtr::Ev::Msg(Message::Notification(n))).await;
            }
        }
        // A per-session instance (`isolation: "session"`) started for this request ends with it
        // (the call has ended, so no instance for `key` is still starting).
        if self.registry.holds_session(key) {
            let registry = self.registry.clone();
            tokio::spawn(async move { registry.release_session(key).await });
        }
        if let Some(span) = span {
            let info = super::trace_header::SpanInfo {
                method: &req.method,
                tool,
                server: server.as_deref(),
                session: None,
                era: mcp_hub_protocol::modern::MODERN_VERSIONS[0],
            };
            super::trace_header::finish(span, info, &result);
        }
        let cache = (req.method == m::RESOURCES_READ).then_some((0, "private"));
        match result {
            Ok(r) => Message::response(req.id.clone(), decorate(&r, cache)),
            Err(e) => Message::error(Some(req.id.clone()), modern_error(req, e)),
        }
    }

    /// An upstream's request to the client during stateless call `call` (`None` when `call` is
    /// not one). A modern client cannot be sent requests: when it declared what the request
    /// needs, the call is parked and the request goes to the client inside an
    /// `InputRequiredResult` (`mrtr`); when it did not, its call ends with `-32021`. Roots a
    /// client did not declare are answered as for any client (`None`: the configured roots).
    /// The one call a request that no call provably caused can belong to: with no session on
    /// the hub, the only stateless call in flight to `server` (the counterpart of "the only
    /// session" for handshake-era clients). Servers that send their requests on the standalone
    /// stream, not on the call's own, are then still served; with two candidates, none is.
    pub(crate) fn only_stateless_call_to(&self, server: &str) -> Option<u64> {
        let calls = lock(&self.stateless_calls);
        let mut to_server = calls
            .iter()
            .filter(|(_, c)| c.server.as_deref() == Some(server))
            .map(|(id, _)| *id);
        match (to_server.next(), to_server.next()) {
            (Some(id), None) => Some(id),
            _ => None,
        }
    }

    pub(crate) async fn stateless_client_request(
        &self,
        server: &str,
        call: u64,
        request: &Request,
    ) -> Option<Result<Box<RawValue>, ErrorObject>> {
        let needs = match request.method.as_str() {
            m::SAMPLING_CREATE_MESSAGE => "sampling",
            m::ELICITATION_CREATE => "elicitation",
            m::ROOTS_LIST => "roots",
            _ => return None,
        };
        let events = {
            let mut calls = lock(&self.stateless_calls);
            let caller = calls.get_mut(&call)?;
            let declared = caller.capabilities.get(needs).is_some_and(Value::is_object);
            if !declared {
                if needs == "roots" {
                    return None;
                }
                if let Some(abort) = caller.abort.take() {
                    tracing::debug!(target: "mcp_hub::api", server, method = %request.method, "stateless caller did not declare {needs}: -32021");
                    let _ = abort.send(modern::missing_capability(needs));
                }
                return Some(Err(err(
                    ErrorCode::INTERNAL_ERROR,
                    format!("the client did not declare {needs}"),
                )));
            }
            caller.events.clone()
        };
        let (reply, answer) = oneshot::channel();
        let ev = mrtr::Ev::Input {
            request: request.clone(),
            reply,
        };
        let gone = || {
            Some(Err(err(
                ErrorCode::INTERNAL_ERROR,
                "the 2026-07-28 client did not come back with an answer",
            )))
        };
        if events.send(ev).await.is_err() {
            return gone();
        }
        let ttl = self.config.parked_input_ttl;
        match tokio::time::timeout(ttl + Duration::from_secs(5), answer).await {
            Ok(Ok(a)) => Some(a),
            _ => gone(),
        }
    }
}

/// An error as the 2026-07-28 era words it: a missing resource is -32602 (SEP-2164), where
/// older servers (and the gate) answer -32002.
fn modern_error(req: &Request, mut e: ErrorObject) -> ErrorObject {
    if e.code == ErrorCode::RESOURCE_NOT_FOUND.0 && req.method == m::RESOURCES_READ {
        e.code = ErrorCode::INVALID_PARAMS.0;
    }
    e
}

/// A stateless call's client, as server-to-client requests need it.
pub(crate) struct Caller {
    capabilities: Map<String, Value>,
    /// The server the call went to.
    server: Option<String>,
    /// Ends the call with this error (taken once).
    abort: Option<oneshot::Sender<ErrorObject>>,
    /// Where the call's events go (an upstream request parks the call there).
    events: mpsc::Sender<mrtr::Ev>,
}

/// `resultType` (when the upstream gave none), the hub's `serverInfo` and caching hints.
fn decorate(result: &RawValue, cache: Option<(u64, &str)>) -> Box<RawValue> {
    modern::decorate_result(
        result,
        &Decoration {
            cache,
            server_info: Some(Inner::server_info()),
        },
    )
}

/// What of a call's related notifications a modern client gets: progress always, log messages
/// only at or above the level its `_meta` asked for (none without one), named by their server.
fn related(
    mut n: Notification,
    server: Option<&str>,
    min_log: Option<usize>,
) -> Option<Notification> {
    if n.method != m::LOGGING_MESSAGE {
        return (n.method == m::PROGRESS).then_some(n);
    }
    let min = min_log?;
    let tagged = tag_log(&n, server)?;
    let rank = tagged
        .get("level")
        .and_then(Value::as_str)
        .and_then(log_level_rank);
    if rank.is_some_and(|r| r < min) {
        return None;
    }
    n.params = Some(super::dispatch::raw(&Value::Object(tagged)));
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, params: Value) -> Request {
        Request {
            id: RequestId::from(1),
            method: method.into(),
            params: Some(mcp_hub_protocol::to_raw(&params).unwrap()),
        }
    }

    fn is_modern(r: &Request, h: &HeaderMap) -> bool {
        super::is_modern(r, &modern::request_params(r), h)
    }

    #[test]
    fn era_of_a_sessionless_request() {
        let h = HeaderMap::new();
        let meta = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}});
        assert!(is_modern(&req("tools/list", meta.clone()), &h));
        assert!(is_modern(&req("initialize", meta), &h));
        assert!(!is_modern(
            &req("initialize", json!({"protocolVersion": "2025-11-25"})),
            &h
        ));
        assert!(is_modern(&req("server/discover", json!({})), &h));
        assert!(!is_modern(&req("tools/list", json!({})), &h));
        let mut h = HeaderMap::new();
        h.insert("mcp-protocol-version", "2026-07-28".parse().unwrap());
        assert!(is_modern(&req("tools/list", json!({})), &h));
    }

    #[test]
    fn logs_only_at_the_requested_level() {
        let log = |level: &str| Notification {
            method: m::LOGGING_MESSAGE.into(),
            params: Some(mcp_hub_protocol::to_raw(&json!({"level": level, "data": "x"})).unwrap()),
        };
        assert!(related(log("info"), Some("s"), None).is_none());
        let info = log_level_rank("info");
        assert!(related(log("debug"), Some("s"), info).is_none());
        let kept = related(log("error"), Some("s"), info).unwrap();
        assert!(kept.params.unwrap().get().contains(r#""logger":"s""#));
        let progress = Notification {
            method: m::PROGRESS.into(),
            params: None,
        };
        assert!(related(progress, None, None).is_some());
        let other = Notification {
            method: "notifications/other".into(),
            params: None,
        };
        assert!(related(other, None, None).is_none());
    }
}
