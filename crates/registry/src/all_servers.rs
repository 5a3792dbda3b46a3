//! What concerns every connected server at once: notifications to all of them, the log level a
//! client set (also applied to servers that connect later) and the capabilities they offer
//! together (what the hub advertises).

use std::time::Duration;

use mcp_hub_transport::{ClientSession, RequestOptions};
use serde_json::{Map, Value};

use crate::sync::lock;
use crate::{Isolation, Registry};

impl Registry {
    /// Sends a notification to every connected server (shared connections only; per-session
    /// instances belong to their sessions), e.g. a hub-wide announcement.
    pub async fn notify_all(&self, method: &str, params: Option<Map<String, Value>>) {
        let sessions: Vec<ClientSession> = lock(&self.inner.servers)
            .values()
            .filter_map(|s| s.state.session())
            .collect();
        let raw = params.and_then(|p| mcp_hub_protocol::to_raw(&p).ok());
        for s in sessions {
            let _ = s.notify(method, raw.clone()).await;
        }
    }

    /// A downstream session's roots changed (`notifications/roots/list_changed`): servers that
    /// share a connection are told (their roots may come from that session), and so is that
    /// session's own instance of each isolated server, but no other session's instance.
    pub async fn roots_changed(&self, session: u64) {
        let sessions: Vec<ClientSession> = lock(&self.inner.servers)
            .values()
            .flat_map(|s| match s.def.client_context.isolation {
                Isolation::Shared => s.state.session().into_iter().collect::<Vec<_>>(),
                Isolation::Session { .. } => {
                    s.state.instances.session_of(session).into_iter().collect()
                }
            })
            .collect();
        for s in sessions {
            let _ = s
                .notify(mcp_hub_protocol::methods::ROOTS_LIST_CHANGED, None)
                .await;
        }
    }

    /// Sets the upstream logging level of every connected server (and per-session instance)
    /// that declares `logging`. Servers that connect later get it too.
    pub async fn set_log_level(&self, level: &str) {
        *lock(&self.inner.log_level) = Some(level.to_owned());
        let mut sessions: Vec<ClientSession> = Vec::new();
        for slot in lock(&self.inner.servers).values() {
            sessions.extend(slot.state.session());
            sessions.extend(slot.state.instances.sessions());
        }
        futures::future::join_all(sessions.iter().map(|s| apply_log_level(s, level))).await;
    }

    /// Upstream capabilities merged: which primitives at least one connected server offers.
    pub fn aggregate_capabilities(&self) -> AggregateCapabilities {
        self.aggregate_capabilities_of(|_| true)
    }

    /// [`Self::aggregate_capabilities`] over the servers whose name `include` accepts (what a
    /// profile's endpoint advertises: only its own servers' primitives).
    pub fn aggregate_capabilities_of(
        &self,
        include: impl Fn(&str) -> bool,
    ) -> AggregateCapabilities {
        let sessions: Vec<ClientSession> = lock(&self.inner.servers)
            .iter()
            .filter(|(name, _)| include(name))
            .filter_map(|(_, s)| s.state.session())
            .collect();
        let mut agg = AggregateCapabilities::default();
        for s in sessions {
            let caps = &s.initialize_result().capabilities;
            agg.tools |= caps.contains_key("tools");
            agg.resources |= caps.contains_key("resources");
            agg.prompts |= caps.contains_key("prompts");
            agg.logging |= caps.contains_key("logging");
            agg.completions |= caps.contains_key("completions");
            agg.skills |= caps
                .get("extensions")
                .and_then(|e| e.get(crate::SKILLS_EXTENSION))
                .is_some();
            agg.subscribe |= caps
                .get("resources")
                .and_then(|r| r.get("subscribe"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
        }
        agg
    }
}

/// Which features the connected upstreams offer, as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregateCapabilities {
    /// Some server has tools.
    pub tools: bool,
    /// Some server has resources.
    pub resources: bool,
    /// Some server has prompts.
    pub prompts: bool,
    /// Some server logs.
    pub logging: bool,
    /// Some server completes arguments.
    pub completions: bool,
    /// Some server supports resource subscriptions.
    pub subscribe: bool,
    /// Some server offers skills (the `io.modelcontextprotocol/skills` extension).
    pub skills: bool,
}

/// Sends `logging/setLevel` to a session whose server declares `logging`.
pub(crate) async fn apply_log_level(session: &ClientSession, level: &str) {
    if !session
        .initialize_result()
        .capabilities
        .contains_key("logging")
    {
        return;
    }
    let mut p = Map::new();
    p.insert("level".into(), Value::String(level.to_owned()));
    let opts = RequestOptions {
        timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let raw = mcp_hub_protocol::to_raw(&p).ok();
    if let Err(e) = session
        .request(mcp_hub_protocol::methods::LOGGING_SET_LEVEL, raw, opts)
        .await
    {
        tracing::debug!(target: "mcp_hub::registry", "logging/setLevel failed: {e}");
    }
}
