//! W3C Trace Context (`traceparent`, `tracestate`) as it travels in an MCP message's
//! `params._meta` (and in HTTP headers of the same names).
//!
//! Parsing follows the W3C Trace Context recommendation: version `00` is exactly 55 characters
//! of lowercase hex; a higher version is read by its first four fields; version `ff`, all-zero
//! ids and anything malformed are rejected (the caller then starts a new trace and never
//! forwards the bad value). Only the flags this version knows (sampled) are kept on the way out.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// `_meta` key (and HTTP header name) of the parent.
pub const TRACEPARENT: &str = "traceparent";
/// `_meta` key (and HTTP header name) of the vendor state.
pub const TRACESTATE: &str = "tracestate";

/// The sampled flag of `trace-flags`.
pub const SAMPLED: u8 = 0x01;

/// Longest `tracestate` kept (32 members of the longest allowed form fit in 512 characters).
const MAX_TRACESTATE: usize = 512;

/// One span's position in a trace: what a `traceparent` names, plus the `tracestate` that
/// travels with it.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, never all zero.
    pub span_id: [u8; 8],
    /// `trace-flags`; only [`SAMPLED`] is kept.
    pub flags: u8,
    /// The `tracestate` header value, when one came with the parent and was well formed.
    pub state: Option<Arc<str>>,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

impl TraceContext {
    /// Parses a `traceparent` value; `None` when it is not a valid one.
    #[must_use]
    pub fn parse(traceparent: &str) -> Option<Self> {
        let s = traceparent.trim_matches([' ', '\t']).as_bytes();
        if s.len() < 55 {
            return None;
        }
        let version = hex_byte(&s[0..2])?;
        if version == 0xff || (version == 0 && s.len() != 55) || (s.len() > 55 && s[55] != b'-') {
            return None;
        }
        if s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, b) in trace_id.iter_mut().enumerate() {
            *b = hex_byte(&s[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, b) in span_id.iter_mut().enumerate() {
            *b = hex_byte(&s[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&s[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags: flags & SAMPLED,
            state: None,
        })
    }

    /// The context a `_meta` object carries, if its `traceparent` is valid (with its
    /// `tracestate` when that is well formed too).
    #[must_use]
    pub fn from_meta(meta: &Map<String, Value>) -> Option<Self> {
        let mut ctx = Self::parse(meta.get(TRACEPARENT)?.as_str()?)?;
        ctx.state = meta
            .get(TRACESTATE)
            .and_then(Value::as_str)
            .and_then(valid_tracestate)
            .map(Arc::from);
        Some(ctx)
    }

    /// The context in a request's params (`params._meta`).
    #[must_use]
    pub fn from_params(params: &Map<String, Value>) -> Option<Self> {
        Self::from_meta(params.get("_meta")?.as_object()?)
    }

    /// A new trace: `ids` are 24 random bytes (16 for the trace, 8 for the span).
    #[must_use]
    pub fn root(ids: [u8; 24], sampled: bool) -> Self {
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(&ids[..16]);
        let mut span_id = [0u8; 8];
        span_id.copy_from_slice(&ids[16..]);
        // Random bytes are all zero once in 2^128 tries; the format forbids it outright.
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        Self {
            trace_id,
            span_id,
            flags: if sampled { SAMPLED } else { 0 },
            state: None,
        }
    }

    /// A span in the same trace, under this one: `span_id` is 8 random bytes.
    #[must_use]
    pub fn child(&self, mut span_id: [u8; 8]) -> Self {
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        Self {
            trace_id: self.trace_id,
            span_id,
            flags: self.flags,
            state: self.state.clone(),
        }
    }

    /// Whether the trace is sampled.
    #[must_use]
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The `traceparent` value naming this span (version `00`).
    #[must_use]
    pub fn traceparent(&self) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id);
        s.push('-');
        push_hex(&mut s, &self.span_id);
        s.push('-');
        push_hex(&mut s, &[self.flags & SAMPLED]);
        s
    }

    /// The trace id in lowercase hex.
    #[must_use]
    pub fn trace_id_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        push_hex(&mut s, &self.trace_id);
        s
    }

    /// Puts this context into `params._meta` in place of whatever trace context was there
    /// (creating `_meta` when needed).
    pub fn inject(&self, params: &mut Map<String, Value>) {
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Value::Object(meta) = meta {
            meta.insert(TRACEPARENT.into(), Value::String(self.traceparent()));
            match &self.state {
                Some(state) => {
                    meta.insert(TRACESTATE.into(), Value::String(state.to_string()));
                }
                None => {
                    meta.remove(TRACESTATE);
                }
            }
        }
    }
}

/// Removes any trace context from `params._meta` (a client's own values are never forwarded
/// verbatim: the next hop's parent is the hub's span, or nothing). Drops a `_meta` left empty.
pub fn strip(params: &mut Map<String, Value>) {
    let Some(Value::Object(meta)) = params.get_mut("_meta") else {
        return;
    };
    let had = meta.remove(TRACEPARENT).is_some() | meta.remove(TRACESTATE).is_some();
    if had && meta.is_empty() {
        params.remove("_meta");
    }
}

/// Whether a `_meta` object, as raw JSON text, may hold a trace context that [`strip`] would
/// remove. Conservative, so that params forwarded unparsed never carry a client's own: any
/// mention of "trace" (both keys start with it), or an escape that could spell it.
#[must_use]
pub fn may_carry(raw_meta: &str) -> bool {
    debug_assert!(TRACEPARENT.starts_with("trace") && TRACESTATE.starts_with("trace"));
    raw_meta.contains("trace") || raw_meta.contains('\\')
}

/// A `tracestate` value worth passing on: printable ASCII, not too long.
#[must_use]
pub fn valid_tracestate(s: &str) -> Option<&str> {
    let s = s.trim_matches([' ', '\t']);
    (!s.is_empty() && s.len() <= MAX_TRACESTATE && s.bytes().all(|b| (0x20..=0x7e).contains(&b)))
        .then_some(s)
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    Some(nibble(pair[0])? << 4 | nibble(pair[1])?)
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    // By table: `write!` per byte cost ~6,000 instructions per call (callgrind).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_meta_that_may_carry_a_context_is_recognised_however_it_is_spelled() {
        for meta in [
            r#"{"traceparent":"00-x"}"#,
            r#"{"tracestate":"k=v"}"#,
            r#"{"trace\u0070arent":"00-x"}"#,
            r#"{"\u0074raceparent":"00-x"}"#,
        ] {
            assert!(may_carry(meta), "{meta}");
            // Whatever `strip` would remove is within what `may_carry` admits.
            let mut p: Map<String, Value> =
                serde_json::from_str(&format!(r#"{{"_meta":{meta}}}"#)).unwrap();
            strip(&mut p);
            assert!(p.get("_meta").is_none(), "{meta}");
        }
        assert!(!may_carry(r#"{"progressToken":"p","vendor/x":{"a":1}}"#));
    }

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trips_a_valid_traceparent() {
        let c = TraceContext::parse(GOOD).unwrap();
        assert_eq!(c.traceparent(), GOOD);
        assert!(c.sampled());
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn rejects_what_the_spec_rejects() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ];
        for b in bad {
            assert!(TraceContext::parse(b).is_none(), "{b}");
        }
    }

    #[test]
    fn reads_a_later_version_by_its_first_fields_and_drops_unknown_flags() {
        let c = TraceContext::parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-the-future-holds",
        )
        .unwrap();
        assert_eq!(
            c.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn a_child_keeps_trace_flags_and_state_and_replaces_the_client_values() {
        let mut params: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "name": "x",
            "_meta": {"traceparent": GOOD, "tracestate": "congo=t61rcWkgMzE", "progressToken": 1}
        }))
        .unwrap();
        let parent = TraceContext::from_params(&params).unwrap();
        assert_eq!(parent.state.as_deref(), Some("congo=t61rcWkgMzE"));
        let child = parent.child([7; 8]);
        child.inject(&mut params);
        let meta = params["_meta"].as_object().unwrap();
        assert_eq!(
            meta["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0707070707070707-01"
        );
        assert_eq!(meta["tracestate"], "congo=t61rcWkgMzE");
        assert_eq!(meta["progressToken"], 1);
    }

    #[test]
    fn strip_removes_only_trace_context() {
        let mut params: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "_meta": {"traceparent": "garbage", "tracestate": "a=b"}
        }))
        .unwrap();
        assert!(TraceContext::from_params(&params).is_none());
        strip(&mut params);
        assert!(params.get("_meta").is_none());
        let mut params: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "_meta": {"traceparent": "garbage", "progressToken": "p"}
        }))
        .unwrap();
        strip(&mut params);
        assert_eq!(params["_meta"], serde_json::json!({"progressToken": "p"}));
    }

    #[test]
    fn a_root_never_has_zero_ids() {
        let c = TraceContext::root([0; 24], true);
        assert!(TraceContext::parse(&c.traceparent()).is_some());
    }
}
