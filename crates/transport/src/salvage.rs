//! Answers that cannot be decoded but still say which request they answer: the call fails at
//! once with an error naming the problem, instead of waiting for its timeout (five minutes by
//! default). Which id such a message carries is the protocol crate's business
//! ([`mcp_hub_protocol::salvage`]).

use mcp_hub_protocol::{ErrorCode, ErrorObject, Message};

/// An error response for the request that `bytes` (a message that failed to decode with
/// `error`) answers, when its id can be read and it is not itself a request or notification.
pub(crate) fn unreadable_answer(bytes: &[u8], error: &dyn std::fmt::Display) -> Option<Message> {
    let id = mcp_hub_protocol::salvage::malformed_answer_id(bytes)?;
    Some(Message::error(
        Some(id),
        ErrorObject::new(
            ErrorCode::INTERNAL_ERROR,
            format!("the upstream sent a malformed answer: {error}"),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_an_error_for_the_id() {
        let text = br#"{"jsonrpc":"2.0","id":7,"error":"boom"}"#;
        match unreadable_answer(text, &"bad error") {
            Some(Message::Error(e)) => {
                assert_eq!(e.id, Some(7.into()));
                assert_eq!(
                    e.error.message,
                    "the upstream sent a malformed answer: bad error"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(unreadable_answer(br#"{"jsonrpc":"2.0","id":7,"method":1}"#, &"x").is_none());
    }
}
