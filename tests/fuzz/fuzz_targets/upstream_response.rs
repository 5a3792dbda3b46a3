//! An upstream's answers as the hub decodes them: each line through the JSON-RPC decoder and,
//! when that fails, through the salvage that finds which call a malformed or oversize answer
//! belongs to (`mcp_hub_protocol::salvage`). Never panics; a salvaged id is the one the message
//! carried; a request or notification of the upstream is never taken for an answer; the id read
//! from a line's edges agrees with the whole line's when both exist.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_hub_protocol::salvage::{EDGE, answer_id_from_edges, malformed_answer_id};
use mcp_hub_protocol::{Incoming, Message, RequestId};
use serde_json::Value;

fn written_id(v: &Value) -> Option<RequestId> {
    match v {
        Value::String(s) => Some(RequestId::from(s.as_str())),
        Value::Number(n) => n.as_i64().map(RequestId::from),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let decoded = Incoming::from_slice(line);
        let salvaged = malformed_answer_id(line);
        // The edges alone never panic, whatever they are.
        let head = &line[..line.len().min(EDGE)];
        let tail = &line[line.len().saturating_sub(EDGE)..];
        let from_edges = answer_id_from_edges(head, tail);
        let Err(_) = decoded else {
            continue;
        };
        let bare = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let Ok(value) = serde_json::from_slice::<Value>(bare) else {
            // Not JSON: the salvage is the edges' id, unless a method shows.
            if let Some(id) = &salvaged {
                assert_eq!(Some(id), from_edges.as_ref());
            }
            continue;
        };
        match (&value, &salvaged) {
            (Value::Object(m), Some(id)) => {
                assert!(!m.contains_key("method"), "a request taken for an answer: {value}");
                assert_eq!(m.get("id").and_then(written_id).as_ref(), Some(id));
            }
            (Value::Object(m), None) => assert!(
                m.contains_key("method") || m.get("id").and_then(written_id).is_none(),
                "an answer with a readable id was not salvaged: {value}"
            ),
            (_, salvaged) => assert!(salvaged.is_none(), "{value}"),
        }
        // What the hub makes of it: an error for that id, which encodes as one line.
        if let Some(id) = salvaged {
            let msg = Message::error(
                Some(id),
                mcp_hub_protocol::ErrorObject::new(mcp_hub_protocol::ErrorCode::INTERNAL_ERROR, "x"),
            );
            assert!(!msg.to_string().contains('\n'));
        }
    }
});
