//! HTTP details of `/mcp`: the request headers it reads and the response heads it writes.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use mcp_hub_protocol::Message;

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

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Whether the `Accept` header admits `mime` (absent Accept admits everything).
pub(crate) fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    let mut any_header = false;
    for v in headers.get_all(header::ACCEPT) {
        any_header = true;
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let t = part.split(';').next().unwrap_or("").trim();
            let major = mime.split('/').next().unwrap_or("");
            if t.eq_ignore_ascii_case(mime)
                || t == "*/*"
                || t.strip_suffix("/*")
                    .is_some_and(|m| m.eq_ignore_ascii_case(major))
            {
                return true;
            }
        }
    }
    !any_header
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE.as_str())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// `"<stream>-<seq>"` → `(stream, seq)`.
pub(super) fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (s, q) = id.split_once('-')?;
    Some((s.parse().ok()?, q.parse().ok()?))
}

/// Header names as values: inserting by `&str` parses and validates the name on every response.
const SESSION_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(SESSION_HEADER);
const X_ACCEL_BUFFERING: http::HeaderName = http::HeaderName::from_static("x-accel-buffering");

pub(super) fn with_session(mut r: Response<Body>, session: Option<&str>) -> Response<Body> {
    if let Some(id) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        r.headers_mut().insert(SESSION_HEADER_NAME, id);
    }
    r
}

pub(super) fn json_message(msg: &Message, session: Option<&str>) -> Response<Body> {
    with_session(body::json_bytes(StatusCode::OK, msg.to_vec()), session)
}

pub(crate) fn sse_response(b: Body, session: Option<&str>) -> Response<Body> {
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
    }

    #[test]
    fn event_ids() {
        assert_eq!(parse_event_id("3-17"), Some((3, 17)));
        assert_eq!(parse_event_id("x-1"), None);
        assert_eq!(parse_event_id("31"), None);
    }
}
