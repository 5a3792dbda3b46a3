//! Answers that cannot be decoded but still say which request they answer.
//!
//! An upstream that sends `{"jsonrpc":"2.0","id":7,"error":"boom"}`, a response with neither
//! `result` nor `error`, or a line cut off half way has answered request 7, badly. Dropping the
//! message would leave that call waiting for its timeout (five minutes by default); instead the
//! call fails at once with an error naming the problem.

use mcp_hub_protocol::{ErrorCode, ErrorObject, Message, RequestId};
use serde_json::Value;

use crate::stdio::lines::{EDGE, oversize_response_id};

/// An error response for the request that `bytes` (a message that failed to decode with
/// `error`) answers, when its id can be read and it is not itself a request or notification.
pub(crate) fn unreadable_answer(bytes: &[u8], error: &dyn std::fmt::Display) -> Option<Message> {
    let id = answered_id(bytes)?;
    Some(Message::error(
        Some(id),
        ErrorObject::new(
            ErrorCode::INTERNAL_ERROR,
            format!("the upstream sent a malformed answer: {error}"),
        ),
    ))
}

fn answered_id(bytes: &[u8]) -> Option<RequestId> {
    match serde_json::from_slice::<Value>(bytes) {
        // Well-formed JSON: a response-shaped object (an id, no method).
        Ok(Value::Object(m)) if !m.contains_key("method") => match m.get("id")? {
            Value::String(s) => Some(RequestId::from(s.as_str())),
            Value::Number(n) => n.as_i64().map(RequestId::from),
            _ => None,
        },
        Ok(_) => None,
        // Not JSON (cut off, garbage inside): the id from either end, as for an oversize line,
        // unless the start says it is a request or a notification.
        Err(_) => {
            let head = &bytes[..bytes.len().min(EDGE)];
            let tail = &bytes[bytes.len().saturating_sub(EDGE)..];
            let compact: Vec<u8> = head
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            if compact.windows(9).any(|w| w == b"\"method\":") {
                return None;
            }
            oversize_response_id(head, tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(text: &str) -> Option<RequestId> {
        let err = mcp_hub_protocol::Message::from_slice(text.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "decoded".into());
        match unreadable_answer(text.as_bytes(), &err)? {
            Message::Error(e) => {
                assert!(e.error.message.contains("malformed"), "{}", e.error.message);
                e.id
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn responses_with_a_readable_id_are_answered() {
        assert_eq!(
            id_of(r#"{"jsonrpc":"2.0","id":7,"error":"boom"}"#),
            Some(RequestId::from(7))
        );
        assert_eq!(
            id_of(r#"{"jsonrpc":"2.0","id":"a-1"}"#),
            Some(RequestId::from("a-1"))
        );
        assert_eq!(
            id_of(r#"{"jsonrpc":"2.0","id":8,"result":{"content":[{"type":"te"#),
            Some(RequestId::from(8))
        );
        assert_eq!(
            id_of(r#"{"jsonrpc":"1.0","id":9,"result":{}}"#),
            Some(RequestId::from(9))
        );
    }

    #[test]
    fn requests_notifications_and_unreadable_ids_are_not() {
        for text in [
            r#"{"jsonrpc":"2.0","id":7,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":7}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":"x"}}"#,
            r#"[{"jsonrpc":"2.0","id":3,"error":1}]"#,
            "not json at all",
            "",
        ] {
            assert_eq!(id_of(text), None, "{text}");
        }
    }
}
