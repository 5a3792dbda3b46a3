//! A downstream HTTP `traceparent` header: when a request's own `params._meta` carries no
//! valid trace context, the header's is moved into it, so the rest of the hub reads trace
//! context from one place whatever the client used.

use http::{HeaderMap, HeaderName};
use mcp_hub_protocol::trace::{self, TraceContext, valid_tracestate};
use mcp_hub_protocol::{Incoming, Message};
use serde_json::{Map, Value};

use super::header_str;

// Looked up on every POST: names as values skip parsing them each time.
const TRACEPARENT: HeaderName = HeaderName::from_static(trace::TRACEPARENT);
const TRACESTATE: HeaderName = HeaderName::from_static(trace::TRACESTATE);

/// `incoming` with the header's trace context in each request's `_meta` where none is there.
/// A malformed header is ignored (the request starts a new trace or none).
pub(super) fn adopt(headers: &HeaderMap, incoming: Incoming) -> Incoming {
    let Some(mut ctx) = header_str(headers, TRACEPARENT).and_then(TraceContext::parse) else {
        return incoming;
    };
    ctx.state = header_str(headers, TRACESTATE)
        .and_then(valid_tracestate)
        .map(Into::into);
    match incoming {
        Incoming::Single(m) => Incoming::Single(adopt_one(&ctx, m)),
        Incoming::Batch(ms) => {
            Incoming::Batch(ms.into_iter().map(|m| adopt_one(&ctx, m)).collect())
        }
    }
}

fn adopt_one(ctx: &TraceContext, msg: Message) -> Message {
    let Message::Request(mut r) = msg else {
        return msg;
    };
    let mut params: Map<String, Value> = match r.params.as_deref() {
        None => Map::new(),
        Some(raw) => match serde_json::from_str(raw.get()) {
            Ok(p) => p,
            // Not an object: the request is answered as invalid further on, as it was.
            Err(_) => return Message::Request(r),
        },
    };
    if TraceContext::from_params(&params).is_some() {
        return Message::Request(r);
    }
    ctx.inject(&mut params);
    if let Ok(raw) = mcp_hub_protocol::to_raw(&params) {
        r.params = Some(raw);
    }
    Message::Request(r)
}

/// What a downstream span records beside its timing.
pub(super) struct SpanInfo<'a> {
    pub(super) method: &'a str,
    pub(super) tool: Option<String>,
    pub(super) server: Option<&'a str>,
    pub(super) session: Option<&'a str>,
    pub(super) era: &'static str,
}

/// The tool (or prompt) a request names, when spans are recorded.
pub(super) fn named(params: &Map<String, Value>) -> Option<String> {
    mcp_hub_registry::trace::recording()
        .then(|| {
            params
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten()
}

/// Records the hub's span of a downstream request with its outcome.
pub(super) fn finish(
    span: mcp_hub_registry::trace::Downstream,
    info: SpanInfo<'_>,
    result: &Result<Box<mcp_hub_protocol::RawValue>, mcp_hub_protocol::ErrorObject>,
) {
    use opentelemetry::KeyValue;
    if !mcp_hub_registry::trace::recording() {
        return;
    }
    let (outcome, error) = match result {
        Ok(raw) if mcp_hub_registry::is_tool_error(raw.get()) => ("tool_error", None),
        Ok(_) => ("ok", None),
        Err(e) => ("error", Some(format!("{}: {}", e.code, e.message))),
    };
    let mut attributes = vec![
        KeyValue::new("mcp.method.name", info.method.to_owned()),
        KeyValue::new("mcp.era", info.era),
        KeyValue::new("mcp.outcome", outcome),
    ];
    if let Some(s) = info.server {
        attributes.push(KeyValue::new("mcp.server", s.to_owned()));
    }
    if let Some(s) = info.session {
        attributes.push(KeyValue::new(
            "mcp.session",
            mcp_hub_registry::trace::session_label(s),
        ));
    }
    let name = match info.tool {
        Some(tool) => {
            let name = format!("{} {tool}", info.method);
            attributes.push(KeyValue::new("mcp.tool", tool));
            name
        }
        None => info.method.to_owned(),
    };
    span.finish(name, attributes, error);
}
