//! The life of a Streamable HTTP session on `/mcp`: lookup (with the version and profile
//! checks), creation on `initialize` within the session limits, and closing.

use std::sync::Arc;

use http::{Response, StatusCode};
use mcp_hub_protocol::{Message, ProtocolVersion};

use mcp_hub_protocol::SUPPORTED_PROTOCOL_VERSIONS;

use super::session::{self, Session};
use super::stream::{EventStream, StreamKind};
use super::{Inner, forward, json_message, lock};
use crate::body::{self, Body};

impl Inner {
    /// Looks up a Streamable HTTP session and checks the `MCP-Protocol-Version` header.
    /// `profile` is the endpoint the request came to (`None`: `/mcp`).
    pub(super) fn streamable_session(
        &self,
        id: &str,
        version: Option<&str>,
        principal: Option<usize>,
        profile: Option<&str>,
        echo: Option<&mcp_hub_protocol::RequestId>,
    ) -> Result<Arc<Session>, Box<Response<Body>>> {
        if let Some(v) = version
            && ProtocolVersion::parse(v).is_none()
        {
            return Err(Box::new(body::jsonrpc_error_for(
                StatusCode::BAD_REQUEST,
                echo,
                -32000,
                &format!(
                    "Bad Request: Unsupported protocol version: {v} (supported versions: {})",
                    SUPPORTED_PROTOCOL_VERSIONS.join(", ")
                ),
            )));
        }
        // A session belongs to the principal that opened it, at the endpoint it was opened at:
        // to anyone else, or at another endpoint, it does not exist. One that was ended (its
        // client stopped reading) is gone too.
        let session = lock(&self.sessions).get(id).cloned().filter(|s| {
            if s.cancel.is_cancelled() {
                return false;
            }
            let mut st = s.lock();
            let mine = st.principal == principal && st.profile.as_deref() == profile;
            if mine {
                st.handshake_done = true;
            }
            mine
        });
        match session {
            Some(s) if s.legacy => Err(Box::new(body::jsonrpc_error_for(
                StatusCode::BAD_REQUEST,
                echo,
                -32000,
                "Bad Request: this session belongs to the HTTP+SSE transport (POST /messages)",
            ))),
            Some(s) => Ok(s),
            None => Err(Box::new(body::jsonrpc_error_for(
                StatusCode::NOT_FOUND,
                echo,
                -32001,
                "Session not found",
            ))),
        }
    }

    /// Registers a session, making room if needed (see [`session::make_room`]): one client that
    /// opens sessions and never closes them cannot lock others out. Refused (503) only when the
    /// sessions that stand in the way are all busy.
    pub(super) fn insert_session(
        self: &Arc<Self>,
        session: Arc<Session>,
    ) -> Result<(), session::Full> {
        loop {
            let room = {
                let mut sessions = lock(&self.sessions);
                match session::make_room(
                    &sessions,
                    session.client,
                    self.config.max_sessions,
                    self.config.max_sessions_per_client,
                ) {
                    Ok(None) => {
                        sessions.insert(session.id.clone(), session);
                        return Ok(());
                    }
                    Ok(Some(victim)) => victim,
                    Err(full) => return Err(full),
                }
            };
            tracing::debug!(target: "mcp_hub::api", session = %room, client = ?session.client, "session table or client quota full: closing an idle session");
            self.close_session(&room);
        }
    }

    /// `initialize` without a session id: a new Streamable HTTP session.
    pub(super) fn create_session(
        self: &Arc<Self>,
        req: mcp_hub_protocol::Request,
        principal: Option<usize>,
        client: session::ClientKey,
        profile: Option<Arc<str>>,
    ) -> Response<Body> {
        let Some(id) = session::new_session_id() else {
            return body::jsonrpc_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                -32603,
                "Internal error: no randomness for a session id",
            );
        };
        let session = Session::for_client(
            id,
            false,
            ProtocolVersion::LATEST,
            &self.sessions_root,
            client,
        );
        {
            let mut st = session.lock();
            st.principal = principal;
            st.profile = profile;
        }
        let reply = self.initialize(&session, &req);
        if matches!(reply, Message::Error(_)) {
            return json_message(reply, None);
        }
        if let Err(full) = self.insert_session(session.clone()) {
            return too_many_sessions(full);
        }
        self.note_view(&session);
        tracing::debug!(target: "mcp_hub::api", session = %session.id, version = %session.version(), "MCP session started");
        let mut resp = json_message(reply, session.id_header.as_ref());
        resp.extensions_mut()
            .insert(forward::Created(session.id.clone()));
        resp
    }

    /// Ends a session: its streams close, its in-flight calls are cancelled upstream, its
    /// resource subscriptions are released.
    pub(crate) fn close_session(self: &Arc<Self>, id: &str) {
        let Some(session) = lock(&self.sessions).remove(id) else {
            return;
        };
        session.cancel.cancel();
        let (subs, streams, answering) = {
            let mut st = session.lock();
            st.pending.clear();
            let callers: Vec<u64> = st.in_flight.drain().map(|(_, (_, c))| c).collect();
            let streams: Vec<Arc<EventStream>> = st.streams.drain().map(|(_, s)| s).collect();
            st.get_stream = None;
            (std::mem::take(&mut st.subscriptions), streams, callers)
        };
        // A POST stream with calls in flight ends when their tasks have answered them (with an
        // error: the session's token is cancelled), not before: the client gets an answer.
        let answering: Vec<Arc<EventStream>> = {
            let callers = lock(&self.callers);
            answering
                .iter()
                .filter_map(|c| callers.get(c).map(|(_, s, _)| s.clone()))
                .filter(|s| s.kind == StreamKind::Post)
                .collect()
        };
        for s in streams {
            if !answering.iter().any(|a| Arc::ptr_eq(a, &s)) {
                s.finish();
            }
        }
        lock(&self.elicitations).retain(|_, sid| **sid != *id);
        if !self.shutdown.is_cancelled() {
            // Per-session instances of isolated servers end with their session.
            let registry = self.registry.clone();
            let key = session.key;
            tokio::spawn(async move { registry.release_session(key).await });
        }
        if !subs.is_empty() && !self.shutdown.is_cancelled() {
            let registry = self.registry.clone();
            tokio::spawn(async move {
                for uri in subs {
                    if let Err(e) = registry.unsubscribe_resource(&uri).await {
                        tracing::debug!(target: "mcp_hub::api", %uri, "unsubscribe on session end failed: {e}");
                    }
                }
            });
        }
        self.update_upstream_level();
        self.release_in_cluster(id);
        tracing::debug!(target: "mcp_hub::api", session = %id, "MCP session ended");
    }
}

pub(super) fn too_many_sessions(full: session::Full) -> Response<Body> {
    let msg = match full {
        session::Full::Table => "Service Unavailable: too many MCP sessions",
        session::Full::Client => {
            "Service Unavailable: too many MCP sessions for this client (all of them in use)"
        }
    };
    body::jsonrpc_error(StatusCode::SERVICE_UNAVAILABLE, -32000, msg)
}

/// The client a request counts against: its bearer token, else its address.
pub(crate) fn client_key(
    principal: Option<usize>,
    extensions: &http::Extensions,
) -> session::ClientKey {
    match (principal, extensions.get::<crate::server::Peer>()) {
        (Some(token), _) => session::ClientKey::Token(token),
        (None, Some(peer)) => session::ClientKey::Peer(peer.0.ip()),
        (None, None) => session::ClientKey::Unknown,
    }
}
