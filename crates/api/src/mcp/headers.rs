//! HTTP details of `/mcp`: the request headers it reads and the response heads it writes.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use mcp_hub_protocol::{Message, RawValue, RequestId};

use super::SESSION_HEADER;
use crate::body::{self, Body};

/// The `Mcp-Session-Id` header: `Ok(None)` when absent or empty; an error response when it holds
/// anything but visible ASCII (the only characters a session id may have), rather than treating
/// it as missing.
pub(super) fn session_header(headers: &HeaderMap) -> Result<Option<&str>, Box<Response<Body>>> {
    let Some(value) = headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    let visible = |s: &str| s.bytes().all(|b| (0x21..=0x7e).contains(&b));
    match value.to_str().map(str::trim) {
        Ok("") => Ok(None),
        Ok(id) if visible(id) => Ok(Some(id)),
        _ => Err(Box::new(body::jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32000,
            "Bad Request: the Mcp-Session-Id header may contain only visible ASCII characters \
             (0x21-0x7E); no session has this id",
        ))),
    }
}

/// A header's value, trimmed; `None` when absent, empty or not visible ASCII.
pub(crate) fn header_str<K: http::header::AsHeaderName>(
    headers: &HeaderMap,
    name: K,
) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Whether the `Accept` header admits `mime` (absent Accept admits everything).
pub(crate) fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    accepts_all(headers, &[mime])
}

/// Whether the `Accept` header admits every one of `mimes` (fewer than 32), read in one pass: a
/// POST needs both JSON and SSE, and a pass per type read the header twice.
pub(crate) fn accepts_all(headers: &HeaderMap, mimes: &[&str]) -> bool {
    debug_assert!(mimes.len() < 32);
    let all = (1u32 << mimes.len()) - 1;
    let mut admitted = 0u32;
    let mut any_header = false;
    for v in headers.get_all(header::ACCEPT) {
        any_header = true;
        if v.to_str().is_err() {
            continue;
        }
        // Over bytes: `str::split` and `trim` cost ~1,500 instructions per check.
        for part in v.as_bytes().split(|&b| b == b',') {
            let t = part.split(|&b| b == b';').next().unwrap_or_default();
            let t = t.trim_ascii();
            if t == b"*/*" {
                return true;
            }
            let wildcard = t.strip_suffix(b"/*");
            for (i, mime) in mimes.iter().enumerate() {
                let mime = mime.as_bytes();
                // A type's major part is only needed against a `major/*` range.
                let major = || mime.split(|&b| b == b'/').next().unwrap_or(mime);
                if t.eq_ignore_ascii_case(mime)
                    || wildcard.is_some_and(|m| m.eq_ignore_ascii_case(major()))
                {
                    admitted |= 1 << i;
                }
            }
            if admitted == all {
                return true;
            }
        }
    }
    !any_header
}

/// Whether the request's `Content-Type` is JSON (parameters such as `charset` aside).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// `"<stream>-<seq>"` → `(stream, seq)`.
pub(super) fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (s, q) = id.split_once('-')?;
    Some((s.parse().ok()?, q.parse().ok()?))
}

/// Header names as values: inserting by `&str` parses and validates the name on every response.
const X_ACCEL_BUFFERING: http::HeaderName = http::HeaderName::from_static("x-accel-buffering");

/// `session` is the session's id as a header value, made once per session ([`Session::id_header`]):
/// a clone of it shares its bytes, where a value made per response copied and checked them.
///
/// [`Session::id_header`]: super::session::Session::id_header
pub(super) fn with_session(mut r: Response<Body>, session: Option<&HeaderValue>) -> Response<Body> {
    if let Some(id) = session {
        r.headers_mut().insert(SESSION_HEADER, id.clone());
    }
    r
}

pub(super) fn json_message(msg: Message, session: Option<&HeaderValue>) -> Response<Body> {
    match msg {
        // The result (a cached `tools/list` of thousands of tools is megabytes) is sent from
        // its own buffer between the envelope's two ends: serialising the whole message grew a
        // buffer to the result's size, copying it about twice more per call.
        Message::Response(r) => {
            let result = Bytes::from(String::from(Box::<str>::from(r.result)));
            json_result(&r.id, result, session)
        }
        other => with_session(body::json_bytes(StatusCode::OK, other.to_vec()), session),
    }
}

/// A JSON-RPC response to `id` whose `result` is `result`'s bytes (valid JSON), sent as they
/// are: the envelope's two ends, then the result, with an exact `Content-Length`.
pub(super) fn json_result(
    id: &RequestId,
    result: Bytes,
    session: Option<&HeaderValue>,
) -> Response<Body> {
    let mut head = br#"{"jsonrpc":"2.0","id":"#.to_vec();
    serde_json::to_writer(&mut head, id).expect("an id always serialises");
    head.extend_from_slice(br#","result":"#);
    let body = body::json_chunks(
        StatusCode::OK,
        vec![Bytes::from(head), result, Bytes::from_static(b"}")],
    );
    with_session(body, session)
}

/// A cached result's bytes, shared with the cache (a `tools/list` of thousands of tools is
/// megabytes): sent without a copy.
pub(super) fn shared_result(result: std::sync::Arc<RawValue>) -> Bytes {
    struct Shared(std::sync::Arc<RawValue>);
    impl AsRef<[u8]> for Shared {
        fn as_ref(&self) -> &[u8] {
            self.0.get().as_bytes()
        }
    }
    Bytes::from_owner(Shared(result))
}

pub(crate) fn sse_response(b: Body, session: Option<&HeaderValue>) -> Response<Body> {
    let mut r = Response::new(b);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    with_session(r, session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header() {
        let mut h = HeaderMap::new();
        assert!(accepts(&h, "text/event-stream"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(accepts(&h, "application/json"));
        assert!(!accepts(&h, "text/event-stream"));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream, application/json;q=0.9"),
        );
        assert!(accepts(&h, "application/json"));
        assert!(accepts(&h, "text/event-stream"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&h, "text/event-stream"));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(" TEXT/* ;q=1,\tfoo"),
        );
        assert!(accepts(&h, "text/event-stream"));
        assert!(!accepts(&h, "application/json"));
        // Neither a bare major type nor a longer name is the type.
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text, application/jsonx"),
        );
        assert!(!accepts(&h, "text/event-stream"));
        assert!(!accepts(&h, "application/json"));
        // Several headers are one list; an unreadable one matches nothing.
        h.insert(
            header::ACCEPT,
            HeaderValue::from_bytes(b"application/json\xff").unwrap(),
        );
        h.append(header::ACCEPT, HeaderValue::from_static("Application/JSON"));
        assert!(accepts(&h, "application/json"));
        assert!(!accepts(&h, "text/event-stream"));
    }

    #[test]
    fn both_types_at_once() {
        let both = ["application/json", "text/event-stream"];
        let mut h = HeaderMap::new();
        assert!(accepts_all(&h, &both), "no Accept admits everything");
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        assert!(accepts_all(&h, &both));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!accepts_all(&h, &both));
        // Spread over two headers, and by a wildcard.
        h.append(header::ACCEPT, HeaderValue::from_static("text/*"));
        assert!(accepts_all(&h, &both));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*;q=0.1"));
        assert!(accepts_all(&h, &both));
        // Many types at once (a one-byte mask overflowed at eight).
        let eight = ["a/b", "c/d", "e/f", "g/h", "i/j", "k/l", "m/n", "o/p"];
        assert!(accepts_all(&h, &eight));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream, text/json"),
        );
        assert!(!accepts_all(&h, &both));
    }

    #[tokio::test]
    async fn a_json_reply_sent_in_pieces_is_the_message() {
        use http_body_util::BodyExt as _;
        use mcp_hub_protocol::{RawValue, RequestId};
        let result = RawValue::from_string(r#"{"tools":[{"name":"a\"b"}]}"#.to_owned()).unwrap();
        for id in [RequestId::Number(7), RequestId::String("q\"uote\n".into())] {
            let msg = Message::response(id, result.clone());
            let whole: serde_json::Value = serde_json::from_slice(&msg.to_vec()).unwrap();
            let resp = json_message(msg, Some(&HeaderValue::from_static("s1")));
            assert_eq!(resp.headers()[SESSION_HEADER], "s1");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let sent: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(sent, whole);
        }
        // Not a response: serialised whole, as before.
        let err = Message::error(
            Some(RequestId::Number(1)),
            mcp_hub_protocol::ErrorObject::new(mcp_hub_protocol::ErrorCode::INVALID_PARAMS, "x"),
        );
        let whole: serde_json::Value = serde_json::from_slice(&err.to_vec()).unwrap();
        let bytes = json_message(err, None)
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            whole
        );
    }

    #[test]
    fn event_ids() {
        assert_eq!(parse_event_id("3-17"), Some((3, 17)));
        assert_eq!(parse_event_id("x-1"), None);
        assert_eq!(parse_event_id("31"), None);
    }
}
