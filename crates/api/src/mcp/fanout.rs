//! Registry events to downstream sessions (list changes, resource updates, upstream logs), and
//! the reaping of idle sessions. One task serves every session: delivery appends to each
//! session's bounded stream buffer and never waits for a client.

use std::sync::Arc;
use std::time::Duration;

use mcp_hub_protocol::methods as m;
use mcp_hub_protocol::{Message, Notification};
use mcp_hub_registry::RegistryEvent;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::routed::tag_log;
use super::session::Session;
use super::{Inner, lock};

pub(crate) fn spawn(inner: &Arc<Inner>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(target: "mcp_hub::api", "no async runtime: /mcp sessions get no registry events");
        return;
    };
    let weak = Arc::downgrade(inner);
    let mut events = inner.registry.events();
    let shutdown = inner.shutdown.clone();
    let period = (inner.config.session_idle_timeout / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(30));
    handle.spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = events.recv() => {
                    let Some(inner) = weak.upgrade() else { break };
                    match ev {
                        Ok(e) => inner.on_event(e),
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(target: "mcp_hub::api", missed = n, "/mcp fell behind the registry's events");
                        }
                        Err(RecvError::Closed) => break,
                    }
                }
                _ = tick.tick() => {
                    let Some(inner) = weak.upgrade() else { break };
                    inner.reap();
                }
            }
        }
    });
}

impl Inner {
    fn all_sessions(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }

    fn on_event(self: &Arc<Self>, event: RegistryEvent) {
        match event {
            RegistryEvent::CatalogChanged {
                tools,
                resources,
                prompts,
            } => {
                let mut msgs = Vec::new();
                for (changed, method) in [
                    (tools, m::TOOLS_LIST_CHANGED),
                    (resources, m::RESOURCES_LIST_CHANGED),
                    (prompts, m::PROMPTS_LIST_CHANGED),
                ] {
                    if changed {
                        msgs.push(Message::notification(method, None));
                    }
                }
                let sessions = self.all_sessions();
                for s in &sessions {
                    {
                        let st = s.lock();
                        // A profile's sessions hear only about their view (below).
                        if !st.initialized || st.profile.is_some() {
                            continue;
                        }
                    }
                    for msg in &msgs {
                        s.send_unrelated(msg);
                    }
                }
                self.announce_views(&sessions);
            }
            RegistryEvent::ProfilesChanged => self.announce_views(&self.all_sessions()),
            RegistryEvent::ResourceUpdated { uri, .. } => {
                let msg = Message::notification(m::RESOURCES_UPDATED, Some(&json!({"uri": uri})));
                for s in self.all_sessions() {
                    if s.lock().subscriptions.contains(&uri) {
                        s.send_unrelated(&msg);
                    }
                }
            }
            RegistryEvent::ServerNotification {
                server,
                notification,
            } => self.on_server_notification(&server, notification),
            RegistryEvent::SessionNotification {
                server,
                session,
                notification,
            } => {
                let target = lock(&self.sessions)
                    .values()
                    .find(|s| s.key == session)
                    .cloned();
                if let Some(s) = target {
                    deliver(&s, &server, notification);
                }
            }
            RegistryEvent::ServerStatus { .. } | RegistryEvent::ListChanged { .. } => {}
        }
    }

    fn on_server_notification(&self, server: &str, n: Notification) {
        match n.method.as_str() {
            m::LOGGING_MESSAGE => {
                // A log that no call caused (the transport already wrote it to the hub's log):
                // it may go to a client only when it cannot be anybody else's, i.e. when that
                // client is the only one there is.
                let mut initialized: Vec<Arc<Session>> = self
                    .all_sessions()
                    .into_iter()
                    .filter(|s| s.lock().initialized)
                    .collect();
                if initialized.len() == 1
                    && let Some(s) = initialized.pop()
                    && self.sees_server(&s, server)
                {
                    deliver(&s, server, n);
                }
            }
            m::ELICITATION_COMPLETE => {
                let eid = n.params_as::<Value>().ok().and_then(|p| {
                    p.get("elicitationId")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
                let Some(sid) = eid.and_then(|e| lock(&self.elicitations).remove(&e)) else {
                    return;
                };
                let session = lock(&self.sessions).get(&sid).cloned();
                if let Some(s) = session {
                    s.send_unrelated(&Message::Notification(n));
                }
            }
            other => {
                tracing::debug!(target: "mcp_hub::api", server, method = other, "upstream notification not forwarded");
            }
        }
    }

    /// Closes Streamable HTTP sessions nobody used for the idle timeout and those ended because
    /// their client stopped reading, and forgets old streams.
    fn reap(self: &Arc<Self>) {
        for s in self.all_sessions() {
            s.prune_streams();
            if s.cancel.is_cancelled() {
                self.close_session(&s.id);
            } else if !s.legacy
                && s.idle_for()
                    .is_some_and(|d| d >= self.config.session_idle_timeout)
            {
                tracing::debug!(target: "mcp_hub::api", session = %s.id, "MCP session idle, closing");
                self.close_session(&s.id);
            }
        }
    }
}

/// A server notification that belongs to `session`: logs pass its level and name their server.
fn deliver(session: &Session, server: &str, n: Notification) {
    if n.method != m::LOGGING_MESSAGE {
        session.send_unrelated(&Message::Notification(n));
        return;
    }
    let Some(params) = tag_log(&n, Some(server)) else {
        return;
    };
    if session.admits_log(params.get("level").and_then(Value::as_str)) {
        let msg = Message::notification(m::LOGGING_MESSAGE, Some(&Value::Object(params)));
        session.send_unrelated(&msg);
    }
}
