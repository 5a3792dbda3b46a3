//! Which request a message answers when the message itself cannot be decoded.
//!
//! An upstream that answers request 7 with `{"jsonrpc":"2.0","id":7,"error":"boom"}`, with
//! neither `result` nor `error`, with a line cut off half way, or with a line too long to keep,
//! has still answered request 7. A client that drops such a message leaves the call waiting for
//! its timeout; with the id it can fail the call at once. These functions find the id, and
//! refuse to when the message is (or may be) a request or a notification of the other side.

use serde_json::Value;

use crate::RequestId;

/// How many bytes of each end of an undecodable message are enough to find its id.
pub const EDGE: usize = 256;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The id of the request a message that failed to decode answers: a JSON object with an `id`
/// (integer or string) and no `method`, or, when the bytes are not JSON at all, the id read from
/// their edges ([`answer_id_from_edges`]) unless the start shows a `method`. `None` for requests,
/// notifications, batches and anything without a readable id.
///
/// ```
/// use mcp_hub_protocol::{RequestId, salvage::malformed_answer_id};
///
/// assert_eq!(malformed_answer_id(br#"{"jsonrpc":"2.0","id":7,"error":"boom"}"#), Some(RequestId::from(7)));
/// assert_eq!(malformed_answer_id(br#"{"jsonrpc":"2.0","id":8,"result":{"te"#), Some(RequestId::from(8)));
/// assert_eq!(malformed_answer_id(br#"{"jsonrpc":"2.0","id":9,"method":5}"#), None);
/// ```
pub fn malformed_answer_id(bytes: &[u8]) -> Option<RequestId> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) if !m.contains_key("method") => match m.get("id")? {
            Value::String(s) => Some(RequestId::from(s.as_str())),
            Value::Number(n) => n.as_i64().map(RequestId::from),
            _ => None,
        },
        Ok(_) => None,
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
            answer_id_from_edges(head, tail)
        }
    }
}

/// The id of the response a message too long (or too broken) to decode carried, read from its
/// first and last bytes (at most [`EDGE`] each): serialisers put
/// `id` either near the start (`{"jsonrpc":"2.0","id":7,...`) or at the very end
/// (`...,"jsonrpc":"2.0","id":7}`). `None` when neither edge says.
pub fn answer_id_from_edges(head: &[u8], tail: &[u8]) -> Option<RequestId> {
    let head = String::from_utf8_lossy(head.strip_prefix(BOM).unwrap_or(head));
    let compact: String = head.chars().filter(|c| !c.is_whitespace()).collect();
    let after = compact
        .strip_prefix("{\"jsonrpc\":\"2.0\",\"id\":")
        .or_else(|| compact.strip_prefix("{\"id\":"));
    if let Some(id) = after.and_then(|rest| leading_id(rest, &[',', '}'])) {
        return Some(id);
    }
    let tail = String::from_utf8_lossy(tail);
    let tail = tail.trim_end();
    let body = tail.strip_suffix('}')?;
    let body = body.strip_suffix(",\"jsonrpc\":\"2.0\"").unwrap_or(body);
    let at = body.rfind("\"id\":")?;
    let value = &body[at + 5..];
    let id = leading_id(value, &[])?;
    // The id must run to the end of the object, or it was some nested member called "id".
    (id_text_len(value) == value.len()).then_some(id)
}

fn id_text_len(s: &str) -> usize {
    if let Some(rest) = s.strip_prefix('"') {
        rest.find('"').map_or(s.len() + 1, |i| i + 2)
    } else {
        s.find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(s.len())
    }
}

fn leading_id(s: &str, ends: &[char]) -> Option<RequestId> {
    let len = id_text_len(s);
    let text = s.get(..len)?;
    if !ends.is_empty() && !s[len..].starts_with(ends) {
        return None;
    }
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        // Escapes would need a JSON parser; such ids are left to the fallback.
        return (!inner.contains('\\')).then(|| RequestId::from(inner));
    }
    text.parse::<i64>().ok().map(RequestId::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_a_readable_id() {
        for (text, id) in [
            (
                r#"{"jsonrpc":"2.0","id":7,"error":"boom"}"#,
                RequestId::from(7),
            ),
            (r#"{"jsonrpc":"2.0","id":"a-1"}"#, RequestId::from("a-1")),
            (
                r#"{"jsonrpc":"2.0","id":8,"result":{"content":[{"type":"te"#,
                RequestId::from(8),
            ),
            (
                r#"{"jsonrpc":"1.0","id":9,"result":{}}"#,
                RequestId::from(9),
            ),
            ("\u{feff}{\"jsonrpc\":\"2.0\",\"id\":3}", RequestId::from(3)),
        ] {
            assert_eq!(malformed_answer_id(text.as_bytes()), Some(id), "{text}");
        }
    }

    #[test]
    fn requests_notifications_and_unreadable_ids_are_not_answers() {
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
            assert_eq!(malformed_answer_id(text.as_bytes()), None, "{text}");
        }
    }
}
