//! The descriptor limit: every downstream connection and every stdio upstream's pipes are
//! descriptors, and the usual soft default (1024) would cap the hub at a few hundred clients
//! (the connection cap is derived from it, see `mcp_hub_api`'s limits). The soft limit is raised
//! to the hard one at start, which any process may do; the hard limit is the administrator's.

use rustix::process::{Resource, getrlimit, setrlimit};

/// What happened to the soft `RLIMIT_NOFILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Raised {
    /// Raised from the first value to the second.
    From(u64, u64),
    /// Already at the hard limit (or unlimited), left as it was.
    Unchanged(Option<u64>),
    /// The kernel refused; the limit stays at this value.
    Refused(Option<u64>),
}

/// Linux refuses a soft limit above `fs.nr_open` (1,048,576 by default), even when the hard
/// limit is unlimited.
const UNLIMITED_TARGET: u64 = 1 << 20;

pub(crate) fn raise() -> Raised {
    let lim = getrlimit(Resource::Nofile);
    let Some(current) = lim.current else {
        return Raised::Unchanged(None);
    };
    let target = lim.maximum.unwrap_or(UNLIMITED_TARGET);
    if current >= target {
        return Raised::Unchanged(Some(current));
    }
    let mut raised = lim;
    raised.current = Some(target);
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Raised::From(current, target),
        Err(_) => Raised::Refused(Some(current)),
    }
}

/// Logs the outcome (once the log is set up).
pub(crate) fn log(r: Raised) {
    match r {
        Raised::From(from, to) => {
            tracing::info!(target: "mcp_hub", from, to, "descriptor limit (RLIMIT_NOFILE) raised to the hard limit");
        }
        Raised::Unchanged(n) => {
            tracing::debug!(target: "mcp_hub", limit = ?n, "descriptor limit (RLIMIT_NOFILE) already at the hard limit");
        }
        Raised::Refused(n) => {
            tracing::warn!(target: "mcp_hub", limit = ?n, "could not raise the descriptor limit (RLIMIT_NOFILE)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let r = raise();
        assert!(!matches!(r, Raised::Refused(_)), "{r:?}");
        let lim = getrlimit(Resource::Nofile);
        if let Some(max) = lim.maximum {
            assert_eq!(lim.current, Some(max));
        }
        // A second call has nothing left to do.
        assert!(matches!(raise(), Raised::Unchanged(_)));
    }
}
