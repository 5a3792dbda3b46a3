//! Who caused what: the types through which a session tells its user which downstream client a
//! server-to-client request or notification belongs to. Everything here is re-exported at the
//! crate root.
//!
//! The engine computes an [`Attribution`] for every server-to-client request and log message. It
//! is exact where the wire says so (a message on a request's own Streamable HTTP response
//! stream) and a sound inference elsewhere: a candidate is a call in flight (or abandoned within
//! a grace period, since the server may not have seen the cancellation) whose client can answer
//! the request; one candidate client means that client, several mean nobody can know.

use std::sync::{Arc, OnceLock};

use mcp_hub_protocol::methods;
use serde_json::{Map, Value};

/// The `tracing` target of upstream log messages that reached no client but that the session's
/// notification stream also carries: whoever forwards hub log lines elsewhere (the `/api/events`
/// bridge) skips it, since the stream's consumer forwards those messages itself. Messages the
/// stream does not carry (their client is ambiguous, or cancelled its call) are logged under
/// `mcp_hub::routing`.
pub const UPSTREAM_LOG_TARGET: &str = "mcp_hub::upstream_log";

/// Which server-to-client requests a downstream client can answer: the top-level client
/// capabilities it declared in `initialize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ClientFeatures {
    /// `sampling/createMessage`.
    pub sampling: bool,
    /// `elicitation/create`.
    pub elicitation: bool,
    /// `roots/list`.
    pub roots: bool,
}

impl ClientFeatures {
    /// A client that declared everything.
    pub const ALL: ClientFeatures = ClientFeatures {
        sampling: true,
        elicitation: true,
        roots: true,
    };

    /// Reads the declared capabilities of an `initialize` request.
    pub fn from_capabilities(caps: &Map<String, Value>) -> ClientFeatures {
        ClientFeatures {
            sampling: caps.contains_key("sampling"),
            elicitation: caps.contains_key("elicitation"),
            roots: caps.contains_key("roots"),
        }
    }

    /// Whether a client with these features could be the one a server request of `method` is
    /// meant for. Methods outside the three client features need no capability.
    pub fn can_answer(&self, method: &str) -> bool {
        match method {
            methods::SAMPLING_CREATE_MESSAGE => self.sampling,
            methods::ELICITATION_CREATE => self.elicitation,
            methods::ROOTS_LIST => self.roots,
            _ => true,
        }
    }
}

/// The downstream client a request is made for. The numbers are opaque to the transport: the
/// hub's API layer hands them out and recognises them when they come back in an [`Attribution`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Requester {
    /// The downstream session.
    pub session: u64,
    /// The downstream call, unique within the hub.
    pub call: u64,
    /// What that session can answer.
    pub features: ClientFeatures,
}

/// Whom a server-to-client request or a notification belongs to, as far as the transport can
/// tell. Only [`Attribution::Exact`] and [`Attribution::Inferred`] name a client that may be
/// given the message; every other case means the hub must answer (or log) it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// It arrived on the response stream of this requester's call (Streamable HTTP).
    Exact(Requester),
    /// The only downstream session whose calls could have caused it (stdio, legacy SSE); the
    /// requester is the newest of that session's calls in flight.
    Inferred(Requester),
    /// It belongs to, or could only have come from, a call its client cancelled or gave up on
    /// (or that timed out): the server may not have seen the cancellation yet.
    Abandoned(Requester),
    /// Calls of more than one downstream session could have caused it.
    Ambiguous,
    /// It came with a request the hub made for nobody downstream (listing, pings, REST calls).
    Internal,
    /// Nothing in flight could have caused it: no call, or the standalone GET stream of a
    /// Streamable HTTP server (which carries messages unrelated to any request).
    Unattributed,
}

impl Attribution {
    /// The requester a message may be delivered to, if any.
    pub fn deliverable(&self) -> Option<Requester> {
        match self {
            Attribution::Exact(r) | Attribution::Inferred(r) => Some(*r),
            _ => None,
        }
    }

    /// Why the message cannot be delivered (for logs and error messages); `None` when it can.
    pub fn refusal(&self) -> Option<&'static str> {
        Some(match self {
            Attribution::Exact(_) | Attribution::Inferred(_) => return None,
            Attribution::Abandoned(_) => "it belongs to a call that was cancelled or timed out",
            Attribution::Ambiguous => {
                "calls of several clients are in flight and any of them could have caused it"
            }
            Attribution::Internal => "it was caused by a request the hub made itself",
            Attribution::Unattributed => "no client's call could have caused it",
        })
    }
}

/// The reason a caller gives when it abandons a request, sent upstream in
/// `notifications/cancelled`. Set it before dropping the request future; the first value wins.
#[derive(Debug, Clone, Default)]
pub struct CancelReason(Arc<OnceLock<String>>);

impl CancelReason {
    /// An empty reason cell.
    pub fn new() -> CancelReason {
        CancelReason::default()
    }

    /// Records the reason (ignored when one is already set).
    pub fn set(&self, reason: impl Into<String>) {
        let _ = self.0.set(reason.into());
    }

    /// The recorded reason.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_declared_capabilities() {
        let caps = serde_json::json!({"sampling": {}, "roots": {"listChanged": true}});
        let f = ClientFeatures::from_capabilities(caps.as_object().unwrap());
        assert!(f.can_answer(methods::SAMPLING_CREATE_MESSAGE));
        assert!(f.can_answer(methods::ROOTS_LIST));
        assert!(!f.can_answer(methods::ELICITATION_CREATE));
        assert!(f.can_answer("custom/method"));
        assert!(ClientFeatures::default().can_answer("custom/method"));
    }

    #[test]
    fn only_exact_and_inferred_are_deliverable() {
        let r = Requester {
            session: 1,
            call: 2,
            features: ClientFeatures::ALL,
        };
        assert_eq!(Attribution::Exact(r).deliverable(), Some(r));
        assert_eq!(Attribution::Inferred(r).deliverable(), Some(r));
        for a in [
            Attribution::Abandoned(r),
            Attribution::Ambiguous,
            Attribution::Internal,
            Attribution::Unattributed,
        ] {
            assert_eq!(a.deliverable(), None);
            assert!(a.refusal().is_some());
        }
    }

    #[test]
    fn the_first_cancel_reason_wins() {
        let c = CancelReason::new();
        assert_eq!(c.get(), None);
        c.set("user pressed stop");
        c.set("later");
        assert_eq!(c.clone().get(), Some("user pressed stop"));
    }
}
