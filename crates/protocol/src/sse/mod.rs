//! A bounded Server-Sent Events (`text/event-stream`) codec: the HTML living standard's parsing
//! rules, no I/O.
//!
//! The transport uses the [`Decoder`] on the client side (Streamable HTTP response streams, the GET
//! stream, legacy HTTP+SSE); the hub's own API uses the encoder functions for `/mcp` and
//! `/api/events`.
//!
//! ```
//! use mcp_hub_protocol::sse::{Decoder, encode_event};
//!
//! let mut wire = Vec::new();
//! encode_event(&mut wire, Some("message"), Some("7"), "{\"a\":1}\n{\"b\":2}");
//! let mut dec = Decoder::new(1024);
//! // Chunk boundaries do not matter.
//! let mut events = dec.feed(&wire[..5]).unwrap();
//! events.extend(dec.feed(&wire[5..]).unwrap());
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].event.as_deref(), Some("message"));
//! assert_eq!(events[0].data, "{\"a\":1}\n{\"b\":2}");
//! assert_eq!(dec.last_event_id(), Some("7"));
//! ```

use std::borrow::Cow;

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event` field; `None` when absent or empty (the type is then `message`). Borrowed
    /// when it is `message`, as almost every event of an MCP stream says, so it costs nothing.
    pub event: Option<Cow<'static, str>>,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// The `id` field carried by this event, if it had a valid one (an empty id resets the last
    /// event id and is reported as `Some("")`).
    pub id: Option<String>,
    /// The `retry` field carried by this event, in milliseconds.
    pub retry: Option<u64>,
}

impl Event {
    /// The event type, `message` by default.
    pub fn event_type(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

/// The stream buffered more than the decoder's limit without completing an event. The caller is
/// expected to drop the stream; the decoder keeps failing afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server-sent event larger than {limit} bytes")]
pub struct SseError {
    /// The configured limit.
    pub limit: usize,
}

mod decode;
mod encode;

pub use decode::Decoder;
pub use encode::{
    encode_comment, encode_event, encode_retry, has_line_break, push_retry_field,
    push_stream_event_id,
};

#[cfg(test)]
mod tests;
