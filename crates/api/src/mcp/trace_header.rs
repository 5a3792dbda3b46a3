//! A downstream HTTP `traceparent` header: when a request's own `params._meta` carries no
//! valid trace context, the header's is moved into it, so the rest of the hub reads trace
//! context from one place whatever the client used.

use http::HeaderMap;
use mcp_hub_protocol::trace::{TRACEPARENT, TRACESTATE, TraceContext, valid_tracestate};
use mcp_hub_protocol::{Incoming, Message};
use serde_json::{Map, Value};

use super::header_str;

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
