//! Trace context for calls: the hub's downstream span (a child of the client's `traceparent`,
//! or a new trace when spans are recorded) and the upstream span under it, whose
//! `traceparent` goes into the upstream message's `params._meta`.
//!
//! Spans are recorded through the OpenTelemetry API's global tracer, and only once the
//! embedding program has installed an exporter and called [`set_recording`]: with tracing off a
//! call pays one relaxed atomic load. This module knows nothing of the SDK or of OTLP; the SDK's
//! id generator asks [`take_span_id`] and [`take_root_trace_id`] for the ids this module chose,
//! so the span the exporter sees is the one whose `traceparent` went upstream.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};

use mcp_hub_protocol::trace::TraceContext;
use serde_json::{Map, Value};

static RECORDING: AtomicBool = AtomicBool::new(false);

/// Turns span recording on (an exporter is installed as the global tracer provider) or off.
pub fn set_recording(on: bool) {
    RECORDING.store(on, Ordering::Relaxed);
}

/// Whether spans are recorded.
#[must_use]
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

thread_local! {
    // The ids of the span being started on this thread, for the SDK's id generator (the trace
    // id only for a span without a parent: the SDK takes a child's from its parent).
    static SPAN_ID: Cell<Option<[u8; 8]>> = const { Cell::new(None) };
    static TRACE_ID: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
    // SplitMix64 state, seeded from the OS once per thread: a syscall per span would cost more
    // than the rest of the span's bookkeeping together.
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: ids still need to differ between threads and runs.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let addr = std::ptr::from_ref(&b) as usize;
        #[allow(clippy::cast_possible_truncation)]
        return (t as u64) ^ (addr as u64).rotate_left(32);
    }
    u64::from_le_bytes(b)
}

fn next_u64() -> u64 {
    STATE.with(|s| {
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// The span id of the span being started on this thread, once: what the SDK's id generator
/// should hand out instead of a new random one.
#[must_use]
pub fn take_span_id() -> Option<[u8; 8]> {
    SPAN_ID.with(Cell::take)
}

/// The trace id of the root span being started on this thread, once.
#[must_use]
pub fn take_root_trace_id() -> Option<[u8; 16]> {
    TRACE_ID.with(Cell::take)
}

/// 16 random bytes, for an id generator with nothing pending.
#[must_use]
pub fn random_trace_id() -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&next_u64().to_le_bytes());
    b[8..].copy_from_slice(&next_u64().to_le_bytes());
    b
}

/// A finished span to record: `ctx` is its own position, `parent` its parent's span id (and
/// whether that parent is remote, i.e. the client's).
#[derive(Debug)]
pub struct Finished<'a> {
    /// The span's own context (trace id, span id, flags).
    pub ctx: &'a TraceContext,
    /// Its parent's span id, and whether the parent lives in another process.
    pub parent: Option<([u8; 8], bool)>,
    /// `mcp.client` style name: the method, and the tool when there is one.
    pub name: String,
    /// Server (downstream) or client (upstream).
    pub kind: SpanKind,
    /// When it started.
    pub started: SystemTime,
    /// Its attributes.
    pub attributes: Vec<KeyValue>,
    /// The error that ended it, if one did.
    pub error: Option<String>,
}

/// Records a finished span, when recording is on and the trace is sampled.
pub fn record(span: Finished<'_>) {
    if !recording() || !span.ctx.sampled() {
        return;
    }
    let tracer = opentelemetry::global::tracer("mcp-hub");
    let parent_cx = match span.parent {
        Some((id, remote)) => Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes(span.ctx.trace_id),
            SpanId::from_bytes(id),
            TraceFlags::new(span.ctx.flags),
            remote,
            TraceState::NONE,
        )),
        None => Context::new(),
    };
    SPAN_ID.with(|c| c.set(Some(span.ctx.span_id)));
    if span.parent.is_none() {
        TRACE_ID.with(|c| c.set(Some(span.ctx.trace_id)));
    }
    let mut s = tracer
        .span_builder(span.name)
        .with_kind(span.kind)
        .with_start_time(span.started)
        .with_attributes(span.attributes)
        .start_with_context(&tracer, &parent_cx);
    // Nothing consumed them (no SDK installed): the next span must not inherit them.
    SPAN_ID.with(Cell::take);
    TRACE_ID.with(Cell::take);
    if let Some(e) = span.error {
        s.set_status(Status::error(e));
    }
    s.end_with_timestamp(SystemTime::now());
}

/// 8 random bytes for a span id.
#[must_use]
pub fn span_id() -> [u8; 8] {
    next_u64().to_le_bytes()
}

/// The hub's span for a downstream request: under the client's `traceparent` (in
/// `params._meta`) when it sent a valid one; otherwise a new sampled trace when spans are
/// `recorded`, and nothing when they are not (propagation then costs nothing). A malformed
/// client value is ignored, as if absent.
#[must_use]
pub fn downstream(params: &Map<String, Value>, recorded: bool) -> Option<Downstream> {
    let (ctx, parent) = match TraceContext::from_params(params) {
        Some(parent) => (parent.child(span_id()), Some(parent.span_id)),
        None if recorded => {
            let mut ids = [0u8; 24];
            ids[..16].copy_from_slice(&random_trace_id());
            ids[16..].copy_from_slice(&span_id());
            (TraceContext::root(ids, true), None)
        }
        None => return None,
    };
    Some(Downstream {
        ctx,
        parent,
        started: SystemTime::now(),
    })
}

/// The hub's span of one downstream request, open until [`Downstream::finish`].
#[derive(Debug)]
pub struct Downstream {
    /// The span's context; what `RequestOptions::trace` carries to the registry.
    pub ctx: TraceContext,
    /// The client's span id, when the client sent a `traceparent`.
    parent: Option<[u8; 8]>,
    started: SystemTime,
}

impl Downstream {
    /// Records the span (a server span) once the request is answered.
    pub fn finish(self, name: String, attributes: Vec<KeyValue>, error: Option<String>) {
        record(Finished {
            ctx: &self.ctx,
            parent: self.parent.map(|p| (p, true)),
            name,
            kind: SpanKind::Server,
            started: self.started,
            attributes,
            error,
        });
    }
}

/// A session's identity in span attributes: a short hash, never the session id itself (which
/// is a bearer secret for the session).
#[must_use]
pub fn session_label(session_id: &str) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    // Fixed keys: the same session hashes the same in every span and every run, which is what
    // lets spans of one session be grouped; 64 bits of a 128-bit random id reveal nothing usable.
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    h.write(session_id.as_bytes());
    format!("{:016x}", h.finish())
}

/// Prepares an upstream request's params: the client's trace context never goes on verbatim;
/// a child of `parent` (the hub's downstream span) goes in its place. Returns that child.
pub(crate) fn upstream(
    params: Option<&mut Map<String, Value>>,
    parent: Option<&TraceContext>,
) -> Option<TraceContext> {
    let params = params?;
    mcp_hub_protocol::trace::strip(params);
    let child = parent?.child(span_id());
    child.inject(params);
    Some(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ() {
        let a = span_id();
        let b = span_id();
        assert_ne!(a, b);
    }

    #[test]
    fn a_client_parent_is_continued_and_garbage_is_not() {
        let p: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "_meta": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        }))
        .unwrap();
        let d = downstream(&p, false).unwrap();
        assert_eq!(d.ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            d.ctx.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(
            d.parent,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        let g: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"_meta": {"traceparent": "00-zz"}})).unwrap();
        assert!(downstream(&g, false).is_none());
        let fresh = downstream(&g, true).unwrap();
        assert!(fresh.ctx.sampled());
        assert!(fresh.parent.is_none());
        let mut g = g;
        assert!(upstream(Some(&mut g), None).is_none());
        assert!(
            g.get("_meta").is_none(),
            "the malformed value is never forwarded"
        );
    }
}
