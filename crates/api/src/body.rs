//! Response bodies and helpers shared by every route.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

/// The body type of every response: a full buffer or a stream (SSE).
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The body of a request as the routes see it: hyper's own from the hub's listener, or whatever
/// body type the server of a program that mounts the hub ([`crate::HubService`]) uses.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, BodyError>;

/// Any error, boxed: what a mounted request body's error must convert into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body's error. A named type rather than [`BoxError`] itself: with a trait object
/// as the body's error, the compiler cannot prove the routes' futures `Send` (its "not general
/// enough" limitation with higher-ranked bounds).
#[derive(Debug)]
pub(crate) struct BodyError(pub(crate) BoxError);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_bytes(status, serde_json::to_vec(value).unwrap_or_default())
}

/// A JSON response from already-serialised bytes.
pub(crate) fn json_bytes(status: StatusCode, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A JSON response made of pieces sent one after the other (shared buffers, not copied into
/// one), with an exact `Content-Length`.
pub(crate) fn json_chunks(status: StatusCode, parts: Vec<Bytes>) -> Response<Body> {
    let remaining = parts.iter().map(|b| b.len() as u64).sum();
    let body = Chunks {
        parts: parts.into(),
        remaining,
    };
    let mut r = Response::new(body.boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

struct Chunks {
    parts: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = this.parts.pop_front().map(|b| {
            this.remaining -= b.len() as u64;
            Ok(http_body::Frame::data(b))
        });
        std::task::Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// An empty response with a status.
pub(crate) fn status(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r
}

/// A JSON-RPC error response without id, with an HTTP status (transport-level rejections).
pub(crate) fn jsonrpc_error(status: StatusCode, code: i64, message: &str) -> Response<Body> {
    jsonrpc_error_for(status, None, code, message)
}

/// A JSON-RPC error answer that echoes the request's id when it could be read (`null` only
/// when it could not).
pub(crate) fn jsonrpc_error_for(
    status: StatusCode,
    id: Option<&mcp_hub_protocol::RequestId>,
    code: i64,
    message: &str,
) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id}),
    )
}

/// How long a request body may take to arrive, in all. The header timeout does not cover the
/// body: without this, a client that completes its headers and then sends a byte every few
/// seconds would hold its connection (and a task) forever. 4 MiB in 15 s is 280 KB/s.
pub(crate) const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Reads a request body up to `limit` bytes within [`BODY_READ_TIMEOUT`]. `Err(413)` when
/// larger, `Err(408)` when too slow, `Err(400)` on a broken body.
pub(crate) async fn read_limited(body: RequestBody, limit: usize) -> Result<Bytes, StatusCode> {
    read_within(body, limit, BODY_READ_TIMEOUT).await
}

async fn read_within(
    body: RequestBody,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, StatusCode> {
    let collect = http_body_util::Limited::new(body, limit).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        }
        Ok(Err(_)) => Err(StatusCode::BAD_REQUEST),
    }
}

/// A JSON-RPC error for a body that could not be read, by the status [`read_limited`] gave.
pub(crate) fn unreadable(status: StatusCode) -> Response<Body> {
    let msg = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Payload Too Large",
        StatusCode::REQUEST_TIMEOUT => "Request Timeout: the request body did not arrive in time",
        _ => "Bad Request: unreadable body",
    };
    let mut r = jsonrpc_error(status, -32000, msg);
    if status == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body may still be trickling in: this connection is done.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// The current time as ISO-8601 UTC with milliseconds, like JavaScript's `toISOString()`.
pub(crate) fn now_iso() -> String {
    iso_time(std::time::SystemTime::now())
}

/// A time as ISO-8601 UTC with milliseconds.
pub(crate) fn iso_time(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let ms = d.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use bytes::Bytes;
    use http::StatusCode;

    #[tokio::test]
    async fn a_body_that_trickles_in_times_out() {
        // A body that yields one byte, then never finishes.
        let trickle = http_body_util::StreamBody::new(futures::stream::unfold(0, |n| async move {
            if n > 0 {
                std::future::pending::<()>().await;
            }
            Some((
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(b"{"))),
                n + 1,
            ))
        }));
        use http_body_util::BodyExt;
        let boxed = |b: http_body_util::StreamBody<_>| b.map_err(|e| match e {}).boxed_unsync();
        let r = super::read_within(boxed(trickle), 1024, Duration::from_millis(100)).await;
        assert_eq!(r, Err(StatusCode::REQUEST_TIMEOUT));
        let whole = http_body_util::Full::new(Bytes::from_static(b"{}"))
            .map_err(|e| match e {})
            .boxed_unsync();
        assert_eq!(
            super::read_within(whole, 1024, Duration::from_secs(15)).await,
            Ok(Bytes::from_static(b"{}"))
        );
    }

    #[test]
    fn iso_time_matches_javascript() {
        assert_eq!(super::iso_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        assert_eq!(super::iso_time(t), "2025-11-24T16:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(super::iso_time(leap), "2000-02-29T00:00:00.000Z");
    }
}
