//! What a routed request sends upstream: params the hub parsed (the REST API's, a profile's
//! rewritten call, anything it reads fields of), or a client's own params seen one level deep
//! and sent as written, which spares the hot path a parse and a serialisation of the arguments.

use std::borrow::Cow;

use mcp_hub_protocol::RawValue;
use mcp_hub_protocol::object::RawObject;
use mcp_hub_protocol::trace::TraceContext;
use serde_json::{Map, Value};

use crate::RouteError;

/// The params of a request routed by a `name` (a tool or a prompt).
#[derive(Debug)]
pub enum NamedParams<'a> {
    /// Parsed params.
    Parsed(Map<String, Value>),
    /// A client's params as it wrote them.
    Raw(RawObject<'a>),
}

impl From<Map<String, Value>> for NamedParams<'_> {
    fn from(p: Map<String, Value>) -> Self {
        NamedParams::Parsed(p)
    }
}

impl NamedParams<'_> {
    /// The string value of `key`.
    #[must_use]
    pub fn str(&self, key: &str) -> Option<Cow<'_, str>> {
        match self {
            NamedParams::Parsed(p) => p.get(key).and_then(Value::as_str).map(Cow::Borrowed),
            NamedParams::Raw(o) => o.get_str(key),
        }
    }

    /// The params to send, with `name` replaced.
    pub(crate) fn renamed(self, name: &str) -> Outgoing {
        match self {
            NamedParams::Parsed(mut p) => {
                p.insert("name".into(), Value::String(name.to_owned()));
                Outgoing::Parsed(Some(p))
            }
            NamedParams::Raw(o) => Outgoing::Raw {
                traced: meta_may_carry_trace(&o),
                params: o.with_str("name", name),
            },
        }
    }
}

/// Whether the `_meta` of raw params may hold a trace context, which is never forwarded as the
/// client sent it.
fn meta_may_carry_trace(o: &RawObject<'_>) -> bool {
    o.get("_meta")
        .is_some_and(|m| mcp_hub_protocol::trace::may_carry(m.get()))
}

/// Params on their way upstream.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Parsed params (or none).
    Parsed(Option<Map<String, Value>>),
    /// Encoded params; `traced` when their `_meta` may hold a client's trace context.
    Raw { params: Box<RawValue>, traced: bool },
}

impl Outgoing {
    /// The `name` member, for the upstream span (only while spans are recorded).
    pub(crate) fn tool_name(&self) -> Option<String> {
        match self {
            Outgoing::Parsed(p) => p.as_ref()?.get("name")?.as_str().map(str::to_owned),
            Outgoing::Raw { params, .. } => RawObject::parse(params)?
                .get_str("name")
                .map(Cow::into_owned),
        }
    }

    /// The params to send and the upstream span's context: a client's trace context is
    /// stripped, and under `parent` the hub's child span is injected. Raw params that need
    /// neither go as they are.
    pub(crate) fn encode(
        self,
        parent: Option<&TraceContext>,
    ) -> Result<(Option<Box<RawValue>>, Option<TraceContext>), RouteError> {
        let mut params = match self {
            Outgoing::Raw {
                params,
                traced: false,
            } if parent.is_none() => return Ok((Some(params), None)),
            Outgoing::Raw { params, .. } => Some(
                serde_json::from_str::<Map<String, Value>>(params.get())
                    .map_err(|e| RouteError::InvalidParams(e.to_string()))?,
            ),
            Outgoing::Parsed(p) => p,
        };
        let trace = crate::trace::upstream(params.as_mut(), parent);
        let params = match params {
            Some(p) => Some(
                mcp_hub_protocol::to_raw(&p)
                    .map_err(|e| RouteError::InvalidParams(e.to_string()))?,
            ),
            None => None,
        };
        Ok((params, trace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn parent() -> TraceContext {
        TraceContext::from_params(
            json!({"_meta": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
                .as_object()
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn raw_params_without_a_trace_go_as_written() {
        let r = raw(
            r#"{"name":"fx__echo","arguments":{"n":123456789012345678901234567890},"_meta":{"progressToken":"p"}}"#,
        );
        let out = NamedParams::Raw(RawObject::parse(&r).unwrap()).renamed("echo");
        let (params, trace) = out.encode(None).unwrap();
        assert!(trace.is_none());
        assert_eq!(
            params.unwrap().get(),
            r#"{"name":"echo","arguments":{"n":123456789012345678901234567890},"_meta":{"progressToken":"p"}}"#
        );
    }

    #[test]
    fn a_clients_trace_context_is_stripped_however_it_is_spelled() {
        for meta in [
            r#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","progressToken":1}"#,
            r#"{"trace\u0070arent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","progressToken":1}"#,
            r#"{"tracestate":"k=v","progressToken":1}"#,
        ] {
            let r = raw(&format!(r#"{{"name":"a__t","_meta":{meta}}}"#));
            let out = NamedParams::Raw(RawObject::parse(&r).unwrap()).renamed("t");
            let (params, trace) = out.encode(None).unwrap();
            assert!(trace.is_none());
            let sent: Value = serde_json::from_str(params.unwrap().get()).unwrap();
            assert_eq!(
                sent,
                json!({"name": "t", "_meta": {"progressToken": 1}}),
                "{meta}"
            );
        }
    }

    #[test]
    fn under_a_parent_the_hubs_child_span_is_injected() {
        let r = raw(r#"{"name":"a__t","arguments":{}}"#);
        let out = NamedParams::Raw(RawObject::parse(&r).unwrap()).renamed("t");
        assert_eq!(out.tool_name().as_deref(), Some("t"));
        let p = parent();
        let (params, trace) = out.encode(Some(&p)).unwrap();
        let child = trace.unwrap();
        assert_eq!(child.trace_id_hex(), p.trace_id_hex());
        let sent: Map<String, Value> = serde_json::from_str(params.unwrap().get()).unwrap();
        let carried = TraceContext::from_params(&sent).unwrap();
        assert_eq!(carried.span_id, child.span_id);
        assert_eq!(sent["name"], "t");
    }

    #[test]
    fn parsed_params_are_renamed_in_place() {
        let p = json!({"name": "a__t", "arguments": {"x": 1}});
        let named = NamedParams::Parsed(p.as_object().unwrap().clone());
        assert_eq!(named.str("name").as_deref(), Some("a__t"));
        let (params, _) = named.renamed("t").encode(None).unwrap();
        assert_eq!(params.unwrap().get(), r#"{"name":"t","arguments":{"x":1}}"#);
    }
}
