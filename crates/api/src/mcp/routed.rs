//! Routed calls: each runs in its own task (or, the single call of a POST, in the task of the
//! connection whose answer body drives it), tagged with its downstream requester so that what
//! the server sends back (progress, logs, server-to-client requests) can reach this client and
//! no other; its related notifications go on the call's stream, its answer ends it.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mcp_hub_protocol::methods as m;
use mcp_hub_protocol::object::{self, RawObject};
use mcp_hub_protocol::{ErrorCode, ErrorObject, Message, Notification, RawValue, Request};
use mcp_hub_registry::{
    CancelReason, NamedParams, RequestError, RequestOptions, Requester, RouteError,
};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::dispatch::{err, params_map, raw, reply};
use super::session::Session;
use super::stream::EventStream;
use super::{Inner, lock};

/// Related notifications buffered per routed call before the call's own reader catches up:
/// the transport sheds past it. Deep enough for an upstream's burst (thousands of progress
/// notifications written back to back arrive faster than they are forwarded); slots are
/// allocated as they fill, so an idle call costs nothing.
const RELATED_CAPACITY: usize = 4096;
/// Requests of JSON-RPC batches a session may have queued or running: they wait for their
/// stream's turn instead of being refused at the per-session in-flight limit.
const MAX_QUEUED: usize = 4096;

/// Maps a routing failure to what the client sees. A `tools/call` to a server that is down is a
/// tool error (as the Node hub answers), so models can read and react to it.
pub(super) fn route_error(method: &str, e: RouteError) -> Result<Box<RawValue>, ErrorObject> {
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
        RouteError::SkillVerification { uri, reason } => ErrorObject::with_data(
            ErrorCode::INTERNAL_ERROR,
            format!("Skill file failed verification: {reason}"),
            &json!({"uri": uri, "reason": reason}),
        ),
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

/// [`Inner::owner_of`]'s reader of parsed params.
pub(super) fn parsed<'p>(params: &'p Map<String, Value>) -> impl Fn(&str) -> Option<Cow<'p, str>> {
    move |k| params.get(k).and_then(Value::as_str).map(Cow::Borrowed)
}

impl Inner {
    /// Runs a routed request in its own task; its notifications and answer go to `stream`.
    /// The task outlives the HTTP connection (a disconnect is not a cancellation) but not the
    /// session or a `notifications/cancelled`. It starts when `stream` has a turn and room for
    /// it; `queued` (a batch member) waits for that rather than being refused past the
    /// in-flight limit.
    pub(crate) fn spawn_proxied(
        self: &Arc<Self>,
        session: &Arc<Session>,
        req: Request,
        stream: Arc<EventStream>,
        queued: bool,
    ) {
        if let Some(call) = self.proxied(session, req, stream, queued) {
            tokio::spawn(call);
        }
    }

    /// A routed request as a future for its caller to drive (a POST's answer stream drives its
    /// single call inline, see `stream::body`, saving a task spawn and a cross-thread wake-up
    /// per call); `None` when it was refused at once (the refusal is on `stream`). It must run to
    /// its end (that undoes its bookkeeping): a caller that cannot drive it further spawns it.
    pub(crate) fn proxied(
        self: &Arc<Self>,
        session: &Arc<Session>,
        req: Request,
        stream: Arc<EventStream>,
        queued: bool,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let token = session.cancel.child_token();
        let caller = self.next_caller.fetch_add(1, Ordering::Relaxed);
        let limit = match queued {
            true => self.config.max_in_flight_per_session.max(MAX_QUEUED),
            false => self.config.max_in_flight_per_session,
        };
        {
            let mut st = session.lock();
            let refusal = if st.in_flight.len() >= limit {
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
                return None;
            }
            st.in_flight.insert(req.id.clone(), (token.clone(), caller));
        }
        let reason = CancelReason::new();
        lock(&self.callers).insert(caller, (session.clone(), stream.clone(), reason.clone()));
        let inner = self.clone();
        let session = session.clone();
        Some(async move {
            let outcome = match stream.admit(&token).await {
                Some(_turn) => {
                    inner
                        .run_call(&session, &req, caller, &stream, &token, reason)
                        .await
                }
                None => inner.cancelled_answer(&session, &req),
            };
            lock(&inner.callers).remove(&caller);
            {
                let mut st = session.lock();
                if st.in_flight.get(&req.id).is_some_and(|(_, c)| *c == caller) {
                    st.in_flight.remove(&req.id);
                }
            }
            stream.respond(outcome.as_ref());
        })
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
        let params = match self.plain_call(session, req) {
            Some(o) => NamedParams::Raw(o),
            None => {
                let params = match params_map(req) {
                    Ok(p) => p,
                    Err(e) => return Some(reply(req, Err(e))),
                };
                // A profile's session reaches only what its profile shows (`profile`).
                match self.gate(&self.sight(session), &req.method, params) {
                    super::profile::Gate::Route(p) => NamedParams::Parsed(p),
                    super::profile::Gate::Answer(r) => return Some(reply(req, r)),
                }
            }
        };
        let server = self.owner_of(&req.method, |k| params.str(k));
        let (tx, mut rx) = mpsc::channel(RELATED_CAPACITY);
        let opts = RequestOptions {
            related: Some(tx),
            requester: Some(Requester {
                session: session.key,
                call: caller,
                features: session.features(),
            }),
            client_features: Some(session.features()),
            cancel_reason: Some(cancel_reason),
            reset_timeout_on_progress: true,
            ..RequestOptions::default()
        };
        // Raw params have no trace context, and none is recorded (`plain_call`).
        let (span, tool) = match &params {
            NamedParams::Parsed(p) => (
                mcp_hub_registry::trace::downstream(p, mcp_hub_registry::trace::recording()),
                super::trace_header::named(p),
            ),
            NamedParams::Raw(_) => (None, None),
        };
        let mut opts = opts;
        opts.trace = span.as_ref().map(|s| s.ctx.clone());
        let call = self.route(session, &req.method, params, opts);
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => return self.cancelled_answer(session, req),
                // Backpressure: while the client is behind, this call's notifications wait
                // upstream (where the transport sheds what does not fit) instead of here.
                Some(n) = async { stream.wait_room().await; rx.recv().await } => {
                    forward_related(session, stream, n, server.as_deref())
                }
                r = &mut call => break r,
            }
        };
        // The call's last notifications go out before its answer, at the client's pace too.
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => return self.cancelled_answer(session, req),
                _ = stream.wait_room() => {}
            }
            let Ok(n) = rx.try_recv() else { break };
            forward_related(session, stream, n, server.as_deref());
        }
        if let Some(span) = span {
            let info = super::trace_header::SpanInfo {
                method: &req.method,
                tool,
                server: server.as_deref(),
                session: Some(&session.id),
                era: session.version().as_str(),
            };
            super::trace_header::finish(span, info, &result);
        }
        Some(reply(req, result))
    }

    /// What a cancelled call answers.
    fn cancelled_answer(&self, session: &Session, req: &Request) -> Option<Message> {
        // A client's cancel gets no answer; a hub shutting down, or a session ended (DELETE,
        // expiry) under the call, owes one.
        let why = if self.draining.load(Ordering::SeqCst) {
            "The hub is shutting down"
        } else if session.cancel.is_cancelled() {
            "The session ended while this request was in flight"
        } else {
            return None;
        };
        Some(reply(req, Err(err(ErrorCode::INTERNAL_ERROR, why))))
    }

    /// A `tools/call` whose params can go upstream as the client wrote them: no profile to
    /// gate it, no span to start (none recorded, no trace context in its `_meta`), params an
    /// object nested within the limit. Everything else, and every refusal's wording, takes the
    /// parsed path.
    fn plain_call<'r>(&self, session: &Session, req: &'r Request) -> Option<RawObject<'r>> {
        if session.lock().profile.is_some() {
            return None;
        }
        raw_tool_call(req)
    }

    /// The server a routed request goes to, for tagging its log messages; `param` reads a
    /// string member of the request's params (`NamedParams::str`, or [`parsed`] for a map).
    pub(super) fn owner_of<'p>(
        &self,
        method: &str,
        param: impl Fn(&str) -> Option<Cow<'p, str>>,
    ) -> Option<String> {
        let catalog = self.registry.catalog();
        let server = match method {
            m::TOOLS_CALL => catalog.tool(&param("name")?)?.server.clone(),
            m::PROMPTS_GET => catalog.prompt(&param("name")?)?.server.clone(),
            m::RESOURCES_READ | mcp_hub_registry::SKILLS_GET => {
                let uri = param("uri")?;
                match self.registry.skill_owner(&uri) {
                    Some(server) => server.into(),
                    None => catalog.resource(&uri)?.server,
                }
            }
            _ => return None,
        };
        Some(server.to_string())
    }

    async fn route(
        &self,
        session: &Session,
        method: &str,
        params: NamedParams<'_>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let params = match params {
            NamedParams::Parsed(p) if method != m::TOOLS_CALL => p,
            // Raw params are only ever a `tools/call`'s (`plain_call`).
            tool_call => {
                return self
                    .registry
                    .call_tool(tool_call, opts)
                    .await
                    .or_else(|e| route_error(method, e));
            }
        };
        let r = match method {
            m::PROMPTS_GET => self.registry.get_prompt(params, opts).await,
            m::RESOURCES_READ => self.registry.read_resource(params, opts).await,
            m::COMPLETION_COMPLETE => self.registry.complete(params, opts).await,
            mcp_hub_registry::SKILLS_LIST => match params.get("cursor") {
                // The hub's listing is one page: it never handed out a cursor.
                Some(c) if !c.is_null() => {
                    return Err(err(
                        ErrorCode::INVALID_PARAMS,
                        "Invalid params: unknown cursor",
                    ));
                }
                _ => self.list_skills(&self.sight(session), opts).await,
            },
            mcp_hub_registry::SKILLS_GET => self.registry.get_skill(params, opts).await,
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

/// A `tools/call`'s params as the client wrote them, when nothing needs them parsed: no span to
/// start (none recorded, no trace context in its `_meta`) and an object nested within the limit.
/// The caller checks what else would reshape them (a profile, a stateless call's
/// `inputResponses`).
pub(super) fn raw_tool_call(req: &Request) -> Option<RawObject<'_>> {
    let raw = req.params.as_deref()?;
    if !object::depth_within(raw.get(), object::MAX_DEPTH) {
        return None;
    }
    raw_tool_call_parsed(req)
}

/// [`raw_tool_call`] of params the hub has already parsed whole (a stateless call's, for its
/// checks): serde_json took them, so they are within its depth limit and need no scan.
pub(super) fn raw_tool_call_parsed(req: &Request) -> Option<RawObject<'_>> {
    if req.method != m::TOOLS_CALL || mcp_hub_registry::trace::recording() {
        return None;
    }
    let o = RawObject::parse(req.params.as_deref()?)?;
    let traced = o
        .get("_meta")
        .is_some_and(|m| mcp_hub_protocol::trace::may_carry(m.get()));
    (!traced).then_some(o)
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
