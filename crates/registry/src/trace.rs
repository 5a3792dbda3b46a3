//! Trace context for calls: the hub's downstream span (a child of the client's `traceparent`,
//! or a new trace when spans are recorded) and the upstream span under it, whose
//! `traceparent` goes into the upstream message's `params._meta`.

use std::cell::Cell;

use mcp_hub_protocol::trace::TraceContext;
use serde_json::{Map, Value};

thread_local! {
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
pub fn downstream(params: &Map<String, Value>, recorded: bool) -> Option<TraceContext> {
    match TraceContext::from_params(params) {
        Some(parent) => Some(parent.child(span_id())),
        None if recorded => {
            let mut ids = [0u8; 24];
            ids[..8].copy_from_slice(&next_u64().to_le_bytes());
            ids[8..16].copy_from_slice(&next_u64().to_le_bytes());
            ids[16..].copy_from_slice(&span_id());
            Some(TraceContext::root(ids, true))
        }
        None => None,
    }
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
        assert_eq!(d.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(d.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        let g: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"_meta": {"traceparent": "00-zz"}})).unwrap();
        assert!(downstream(&g, false).is_none());
        let fresh = downstream(&g, true).unwrap();
        assert!(fresh.sampled());
        let mut g = g;
        assert!(upstream(Some(&mut g), None).is_none());
        assert!(
            g.get("_meta").is_none(),
            "the malformed value is never forwarded"
        );
    }
}
