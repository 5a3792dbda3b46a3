//! How a stateless request's answer goes out: plain JSON when it is ready at once, else an SSE
//! stream without event ids (the 2026-07-28 era has no resumption).

use bytes::Bytes;
use http::StatusCode;
use mcp_hub_protocol::Message;
use mcp_hub_protocol::modern;
use tokio::sync::mpsc;

use super::{FIRST_EVENT_WAIT, Response, mrtr};
use crate::body::{self, Body};
use crate::mcp::sse_response;

/// One leg's HTTP answer: plain JSON when the answer (or an input request) is ready within
/// [`FIRST_EVENT_WAIT`] (a refusal such as `-32021` with status 400), else an SSE stream.
pub(super) async fn answer(mut drive: mrtr::Drive) -> Response {
    let first = match tokio::time::timeout(FIRST_EVENT_WAIT, drive.next()).await {
        Ok(Some(m)) => Some(m),
        Ok(None) => return body::status(StatusCode::INTERNAL_SERVER_ERROR),
        Err(_) => None,
    };
    match first {
        Some(m @ (Message::Response(_) | Message::Error(_))) => {
            let status = match &m {
                Message::Error(e) if is_http_refusal(e.error.code) => StatusCode::BAD_REQUEST,
                _ => StatusCode::OK,
            };
            body::json_bytes(status, m.to_vec())
        }
        first => sse_response(drive_body(first, drive), None),
    }
}

/// An SSE body of `first` and then what the drive brings.
fn drive_body(first: Option<Message>, drive: mrtr::Drive) -> Body {
    use http_body_util::BodyExt as _;
    let stream = futures::stream::unfold((first, drive), |(first, mut drive)| async move {
        let m = match first {
            Some(m) => m,
            None => drive.next().await?,
        };
        let frame = http_body::Frame::data(sse_event(&m));
        Some((Ok::<_, std::convert::Infallible>(frame), (None, drive)))
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

/// Errors HTTP carries with status 400 (the spec's mapping for the modern era).
fn is_http_refusal(code: i64) -> bool {
    [
        modern::codes::HEADER_MISMATCH.0,
        modern::codes::MISSING_CLIENT_CAPABILITY.0,
        modern::codes::UNSUPPORTED_PROTOCOL_VERSION.0,
    ]
    .contains(&code)
}

/// One SSE event without an id: the modern era has no resumption.
pub(crate) fn sse_event(msg: &Message) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(&msg.to_vec());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// An SSE body of `first` and then what the channel brings; it ends when every sender is
/// gone. Dropping it (the client went away) closes the channel, which the producer sees.
pub(crate) fn channel_body(first: Option<Message>, rx: mpsc::Receiver<Message>) -> Body {
    use http_body_util::BodyExt as _;
    let stream = futures::stream::unfold((first, rx), |(first, mut rx)| async move {
        let m = match first {
            Some(m) => m,
            None => rx.recv().await?,
        };
        let frame = http_body::Frame::data(sse_event(&m));
        Some((Ok::<_, std::convert::Infallible>(frame), (None, rx)))
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}
