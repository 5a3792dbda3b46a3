//! Child processes in their own process group, and how they are stopped.
//!
//! Every upstream child is spawned as the leader of a new process group, so that wrappers
//! (`npx`, `uvx`, `sh -c`) and whatever they start can be signalled as one unit: killing only
//! the direct child would leave the real server running as an orphan.
//!
//! What happens when the hub itself dies:
//!
//! - Orderly exit, panic unwinding or runtime shutdown: the task owning a child is dropped,
//!   which SIGKILLs the whole group ([`GroupGuard`]) and tokio's `kill_on_drop` kills and reaps
//!   the direct child.
//! - SIGKILL of the hub (or any death without running destructors): no code of ours runs. The
//!   children's stdin pipe loses its only writer, so they read EOF, which MCP servers take as the
//!   signal to exit (the spec says servers SHOULD exit on stdin EOF; the official SDKs do), and
//!   their next write to stdout fails with EPIPE/SIGPIPE. A server that ignores both keeps
//!   running, re-parented to init or the nearest subreaper; because each server leads its own
//!   process group, a supervisor can still find and kill it with `kill -- -<pgid>`.
//!   `PR_SET_PDEATHSIG` would cover that case, but it can only be set between fork and exec
//!   (`pre_exec`, which needs `unsafe`, forbidden in this workspace), and it fires when the
//!   spawning *thread* exits, which in a multi-threaded runtime is not the same as the hub
//!   exiting; so it is deliberately not used.

use std::process::ExitStatus;

use rustix::process::{Pid, Signal, kill_process_group};

/// Sends `signal` to every process of the group led by `pgid`. A group that no longer exists
/// is not an error.
pub(crate) fn signal_group(pgid: u32, signal: Signal) {
    // Guard against pid 0/1: kill(0) and kill(-1) would hit the hub's own group or every process.
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .and_then(Pid::from_raw)
    else {
        return;
    };
    match kill_process_group(pid, signal) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::SRCH => {}
        Err(e) => tracing::debug!(pgid, ?signal, error = %e, "signalling process group failed"),
    }
}

/// SIGKILLs a process group when dropped, unless disarmed: the last line of defence against
/// orphans when the task owning a child is dropped without finishing its shutdown.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    pub(crate) fn new(pgid: u32) -> Self {
        GroupGuard { pgid: Some(pgid) }
    }

    /// The group has been dealt with; dropping the guard does nothing.
    pub(crate) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, Signal::KILL);
        }
    }
}

/// A short description of how a process ended, for errors and logs.
pub(crate) fn describe_exit(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown exit status ({e})"),
    }
}
