//! Which downstream client a server message belongs to.
//!
//! - A message on a request's own response stream (Streamable HTTP, `origin = Some(id)`) belongs
//!   to that request: exact. A message on the standalone GET stream belongs to no request.
//! - On a single-channel wire (stdio, legacy SSE) nothing links a message to a request. The
//!   candidates are the calls in flight that have a requester able to receive it (for a
//!   server-to-client request: whose client declared the capability it needs), plus the calls
//!   given up on within the grace period ("ghosts": the server may not have seen the
//!   cancellation). One candidate session means that session; several mean nobody can know.
//!
//! The rule never picks one client when another could be the cause: a wrong guess would hand
//! one client's data (a sampling prompt, a log line) to another.

use std::time::Duration;

use mcp_hub_protocol::{Notification, RequestId};
use serde_json::Value;
use tokio::time::Instant;

use super::{Engine, State};
use crate::{Attribution, Requester, UPSTREAM_LOG_TARGET};

/// Ghosts kept at most; past it the oldest is forgotten (memory stays bounded).
const MAX_GHOSTS: usize = 1024;
/// Upstream log lines written to the hub's log per [`LOG_WINDOW`]; the rest are counted.
const LOGS_PER_WINDOW: u32 = 20;
const LOG_WINDOW: Duration = Duration::from_secs(1);
/// Longest `data` of an upstream log line copied into the hub's log.
const MAX_LOG_DATA: usize = 1024;

/// A request given up on that may still be running upstream.
#[derive(Debug, Clone)]
pub(super) struct Ghost {
    pub(super) id: i64,
    pub(super) requester: Requester,
    /// Whether its caller wanted related notifications.
    pub(super) related: bool,
    pub(super) until: Instant,
}

/// What a message needs from the client it goes to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Need<'a> {
    /// A notification: the call must take related notifications.
    Related,
    /// A server-to-client request of this method: the client must be able to answer it.
    Answer(&'a str),
}

impl Need<'_> {
    fn met(self, requester: &Requester, related: bool) -> bool {
        match self {
            Need::Related => related,
            Need::Answer(method) => requester.features.can_answer(method),
        }
    }
}

impl State {
    pub(super) fn remember_ghost(&mut self, ghost: Ghost) {
        if self.ghosts.len() >= MAX_GHOSTS {
            self.ghosts.pop_front();
        }
        self.ghosts.push_back(ghost);
    }

    /// The server answered `id` after all: it is done with it.
    pub(super) fn bury(&mut self, id: i64) {
        self.ghosts.retain(|g| g.id != id);
    }

    fn prune_ghosts(&mut self, now: Instant) {
        self.ghosts.retain(|g| g.until > now);
    }
}

impl Engine {
    /// Attributes a message that arrived with `origin`; the pending request id is returned with
    /// a deliverable attribution (its `related` channel is where a notification goes).
    pub(super) fn attribute(
        &self,
        st: &mut State,
        origin: Option<&RequestId>,
        need: Need<'_>,
    ) -> (Attribution, Option<i64>) {
        st.prune_ghosts(Instant::now());
        if let Some(origin) = origin {
            let Some(id) = self.our_id(origin) else {
                return (Attribution::Unattributed, None);
            };
            if let Some(slot) = st.pending.get(&id) {
                return match slot.requester {
                    Some(r) => (Attribution::Exact(r), Some(id)),
                    // The hub's own request; its caller may still take related notifications.
                    None => (Attribution::Internal, Some(id)),
                };
            }
            if let Some(g) = st.ghosts.iter().find(|g| g.id == id) {
                return (Attribution::Abandoned(g.requester), None);
            }
            // The stream of a request that is already answered (or never was ours).
            return (Attribution::Unattributed, None);
        }
        if self.wire.exact_origins() {
            // Streamable HTTP's standalone GET stream: unrelated to any request by definition.
            return (Attribution::Unattributed, None);
        }
        // Candidates by downstream session; `None` is the hub's own requests that take
        // notifications (they count as one more party a notification could belong to).
        let mut session: Option<Option<u64>> = None;
        let mut newest: Option<(i64, Option<Requester>)> = None;
        let mut ghost = None;
        let mut internal = false;
        for (&id, slot) in &st.pending {
            let key = match slot.requester {
                Some(r) if need.met(&r, slot.related.is_some()) => Some(r.session),
                Some(_) => continue,
                None if matches!(need, Need::Related) && slot.related.is_some() => None,
                None => {
                    internal = true;
                    continue;
                }
            };
            if *session.get_or_insert(key) != key {
                return (Attribution::Ambiguous, None);
            }
            if newest.is_none_or(|(n, _)| id > n) {
                newest = Some((id, slot.requester));
            }
        }
        for g in &st.ghosts {
            if !need.met(&g.requester, g.related) {
                continue;
            }
            let key = Some(g.requester.session);
            if *session.get_or_insert(key) != key {
                return (Attribution::Ambiguous, None);
            }
            ghost = Some(g.requester);
        }
        match (newest, ghost) {
            (Some((id, Some(r))), _) => (Attribution::Inferred(r), Some(id)),
            (Some((id, None)), _) => (Attribution::Internal, Some(id)),
            (None, Some(r)) => (Attribution::Abandoned(r), None),
            // Only the hub's own requests are in flight: they are the likely cause, and in any
            // case no client's call is.
            (None, None) if internal => (Attribution::Internal, None),
            (None, None) => (Attribution::Unattributed, None),
        }
    }

    /// Writes an upstream log message that reached no client to the hub's log (and so to
    /// `/api/events`), rate-limited per server.
    pub(super) fn log_upstream(&self, n: &Notification, why: &'static str, published: bool) {
        let Some(suppressed) = self.lock().logs.admit(Instant::now()) else {
            return;
        };
        let params: Value = n
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        let level = params
            .get("level")
            .and_then(Value::as_str)
            .unwrap_or("info");
        let logger = params.get("logger").and_then(Value::as_str).unwrap_or("");
        let mut data = match params.get("data") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        if data.len() > MAX_LOG_DATA {
            let mut cut = MAX_LOG_DATA;
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            data.truncate(cut);
            data.push('…');
        }
        let server = self.name.as_str();
        // Published logs reach `/api/events` through the notification stream's consumer, so
        // their line here is for the hub's log only (`UPSTREAM_LOG_TARGET`); the others reach
        // it through this line.
        macro_rules! emit {
            ($target:expr, $lvl:ident) => {
                tracing::$lvl!(target: $target, server, logger, suppressed, why, "'{server}' log: {data}")
            };
        }
        match (published, level) {
            (true, "debug") => emit!(UPSTREAM_LOG_TARGET, debug),
            (true, "info" | "notice") => emit!(UPSTREAM_LOG_TARGET, info),
            (true, _) => emit!(UPSTREAM_LOG_TARGET, warn),
            (false, "debug") => emit!("mcp_hub::routing", debug),
            (false, "info" | "notice") => emit!("mcp_hub::routing", info),
            (false, _) => emit!("mcp_hub::routing", warn),
        }
    }
}

/// Bounds how many upstream log lines a server can put into the hub's log.
#[derive(Debug, Default)]
pub(super) struct LogLimiter {
    window: Option<Instant>,
    in_window: u32,
    suppressed: u64,
    /// Every log message that reached no client, written or not.
    pub(super) total: u64,
}

impl LogLimiter {
    /// `Some(lines suppressed since the last written one)` when this one may be written.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        self.total += 1;
        if self
            .window
            .is_none_or(|w| now.duration_since(w) >= LOG_WINDOW)
        {
            self.window = Some(now);
            self.in_window = 0;
        }
        if self.in_window >= LOGS_PER_WINDOW {
            self.suppressed += 1;
            return None;
        }
        self.in_window += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_limiter_counts_what_it_suppresses() {
        let mut l = LogLimiter::default();
        let t0 = Instant::now();
        for _ in 0..LOGS_PER_WINDOW {
            assert_eq!(l.admit(t0), Some(0));
        }
        assert_eq!(l.admit(t0), None);
        assert_eq!(l.admit(t0), None);
        assert_eq!(l.admit(t0 + LOG_WINDOW), Some(2));
        assert_eq!(l.total, u64::from(LOGS_PER_WINDOW) + 3);
    }
}
