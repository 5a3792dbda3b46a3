//! The legacy HTTP+SSE transport (2024-11-05, and the Node hub's `GET /mcp`): one SSE stream per
//! session that starts with an `endpoint` event, and `POST /messages?sessionId=` for the client's
//! messages, answered on the stream. The session ends with its stream.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use mcp_hub_protocol::{Incoming as Batch, Message, ProtocolVersion};

use super::session::{self, Session};
use super::stream::{self, Start, StreamKind};
use super::{Inner, accepts, client_key, is_json, lock, sse_response, too_many_sessions};
use crate::body::{self, Body, RequestBody};

/// Opens a legacy session on `GET /sse` or a session-less `GET /mcp`.
pub(crate) fn open(inner: &Arc<Inner>, req: &Request<RequestBody>) -> Response<Body> {
    let headers = req.headers();
    if !accepts(headers, "text/event-stream") {
        return body::jsonrpc_error(
            StatusCode::NOT_ACCEPTABLE,
            -32000,
            "Not Acceptable: Client must accept text/event-stream",
        );
    }
    let Some(id) = session::new_session_id() else {
        return body::status(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let principal = crate::guard::principal(&inner.config, headers);
    let session = Session::for_client(
        id,
        true,
        ProtocolVersion::V2024_11_05,
        &inner.sessions_root,
        client_key(principal, req.extensions()),
    );
    let profile = super::profile::requested(req.extensions());
    // A profile's session posts under the profile's path (where a token bound to it reaches);
    // a hub mounted in another server announces its mount prefix too.
    let prefix = crate::service::mount_prefix(req.extensions());
    let endpoint = match &profile {
        Some(p) => format!("{prefix}/mcp/{p}/messages?sessionId={}", session.id),
        None => format!("{prefix}/messages?sessionId={}", session.id),
    };
    {
        let mut st = session.lock();
        st.principal = principal;
        st.profile = profile;
    }
    if let Err(full) = inner.insert_session(session.clone()) {
        return too_many_sessions(full);
    }
    inner.note_view(&session);
    let stream = session.new_stream(StreamKind::Legacy);
    stream.push_named("endpoint", &endpoint);
    let Some(guard) = stream.attach() else {
        return body::status(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let weak = Arc::downgrade(inner);
    let sid = session.id.clone();
    let guard = guard.on_detach(move || {
        if let Some(inner) = weak.upgrade() {
            inner.close_session(&sid);
        }
    });
    tracing::debug!(target: "mcp_hub::api", session = %session.id, "legacy SSE session started");
    let b = stream::body(
        guard,
        Start::Beginning,
        session.cancel.clone(),
        inner.shutdown.clone(),
        inner.config.heartbeat,
        None,
    );
    let mut resp = sse_response(b, None);
    resp.extensions_mut()
        .insert(super::forward::Created(session.id.clone()));
    resp
}

/// `POST /messages?sessionId=`: 202, the answers go out on the session's stream.
pub(crate) async fn post(inner: &Arc<Inner>, req: Request<RequestBody>) -> Response<Body> {
    let session_id = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sessionId" || k == "session_id")
            .map(|(_, v)| v.into_owned())
    });
    let Some(session_id) = session_id.filter(|s| !s.is_empty()) else {
        return body::jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32000,
            "Missing sessionId parameter",
        );
    };
    let principal = crate::guard::principal(&inner.config, req.headers());
    let profile = super::profile::requested(req.extensions());
    let session = lock(&inner.sessions).get(session_id.as_str()).cloned();
    // The principal that opened it, at the endpoint that gave it out; else it does not exist.
    let Some(session) = session.filter(|s| {
        let st = s.lock();
        s.legacy && st.principal == principal && st.profile == profile
    }) else {
        return body::jsonrpc_error(
            StatusCode::NOT_FOUND,
            -32000,
            &format!("Session not found: {session_id}"),
        );
    };
    if req.headers().contains_key(http::header::CONTENT_TYPE) && !is_json(req.headers()) {
        return body::jsonrpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -32000,
            "Unsupported Media Type: Content-Type must be application/json",
        );
    }
    let bytes = match body::read_limited(req.into_body(), inner.config.max_body_bytes).await {
        Ok(b) => b,
        Err(status) => return body::unreadable(status),
    };
    let messages = match Batch::from_slice(&bytes) {
        Ok(Batch::Single(m)) => vec![m],
        Ok(Batch::Batch(ms)) => ms,
        Err(e) => {
            return body::jsonrpc_error(StatusCode::BAD_REQUEST, e.code(), &e.to_string());
        }
    };
    session.touch();
    let Some(stream) = session.lock().get_stream.clone() else {
        return body::jsonrpc_error(StatusCode::NOT_FOUND, -32000, "Session not found");
    };
    for msg in messages {
        match msg {
            Message::Request(r) => match inner.local_request(&session, &r) {
                Some(reply) => {
                    stream.push(&reply);
                }
                None => inner.spawn_proxied(&session, r, stream.clone(), false),
            },
            Message::Notification(n) => inner.handle_notification(&session, n),
            m @ (Message::Response(_) | Message::Error(_)) => {
                inner.handle_client_response(&session, m)
            }
        }
    }
    let mut r = Response::new(body::full("Accepted"));
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}
