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
//! - SIGKILL of the hub (or any death without running destructors): no code of ours runs, so a
//!   watchdog does it. It is a small `/bin/sh` loop started once per hub, detached from it (its
//!   own process group, re-parented to init, ignoring SIGINT/SIGTERM/SIGHUP), that reads `+PGID`
//!   and `-PGID` lines from a pipe only the hub writes. When the hub dies, however it dies, the
//!   kernel closes that pipe; the watchdog reads end-of-file and sends SIGTERM, then SIGKILL, to
//!   every group still listed: the servers and their grandchildren, and the `${cmd:}` commands
//!   registered through [`watch_group`]. A group is listed from its spawn until it is known to
//!   be gone, so a pgid the kernel reuses later is never signalled.
//!   `PR_SET_PDEATHSIG` cannot do this: it reaches only the direct child (not what `npx` or
//!   `sh -c` start), it can only be set between fork and exec (`pre_exec`, which needs
//!   `unsafe`, forbidden in this workspace), and it fires when the spawning *thread* exits.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::ExitStatus;
use std::sync::{Mutex, PoisonError};

use rustix::process::{Pid, Signal, kill_process_group};

/// The watchdog's program. `groups` is a space-delimited list; at end of input (the hub is
/// gone) every listed group gets SIGTERM, then SIGKILL a moment later.
const WATCHDOG: &str = r#"exec 3<&0
(
trap '' INT TERM HUP PIPE
groups=' '
while IFS= read -r line; do
  case $line in
    +*) groups="$groups${line#+} " ;;
    -*) g=${line#-}
        case $groups in *" $g "*) groups="${groups%% $g *} ${groups#* $g }" ;; esac ;;
  esac
done
[ "$groups" = ' ' ] && exit 0
for g in $groups; do kill -s TERM -- "-$g" 2>/dev/null; done
sleep 2
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
) <&3 3<&- >/dev/null 2>&1 &
exit 0"#;

#[derive(Default)]
struct Watchdog {
    /// The write end of the watchdog's input; `None` until first needed, or after it died.
    pipe: Option<std::process::ChildStdin>,
    /// What it must kill, so a new watchdog can be told everything.
    groups: BTreeSet<u32>,
}

static WATCHDOG_STATE: Mutex<Option<Watchdog>> = Mutex::new(None);

impl Watchdog {
    fn send(&mut self, line: &str) {
        if self.pipe.is_none() {
            self.pipe = spawn_watchdog();
            let all: String = self.groups.iter().map(|g| format!("+{g}\n")).collect();
            self.write(&all);
        }
        self.write(line);
    }

    fn write(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(pipe) = &mut self.pipe
            && let Err(e) = pipe.write_all(text.as_bytes())
        {
            tracing::warn!(error = %e, "the child-process watchdog is gone; starting another");
            self.pipe = None;
        }
    }
}

/// Starts the watchdog and returns the pipe to it; `None` (logged) when `/bin/sh` cannot run.
fn spawn_watchdog() -> Option<std::process::ChildStdin> {
    use std::os::unix::process::CommandExt as _;
    let spawned = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(WATCHDOG)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    match spawned {
        Ok(mut launcher) => {
            let pipe = launcher.stdin.take();
            // The launcher only detaches the loop and exits at once: reap it.
            let _ = launcher.wait();
            pipe
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the child-process watchdog: children may outlive a hub that is killed");
            None
        }
    }
}

/// Asks the watchdog to kill process group `pgid` should the hub die before
/// [`unwatch_group`] is called for it. For process groups the hub starts outside this crate
/// (the `${cmd:}` placeholder commands).
pub fn watch_group(pgid: u32) {
    if pgid <= 1 {
        return;
    }
    let mut state = WATCHDOG_STATE
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let dog = state.get_or_insert_with(Watchdog::default);
    if dog.groups.insert(pgid) {
        dog.send(&format!("+{pgid}\n"));
    }
}

/// The group is gone (reaped and killed); the watchdog forgets it.
pub fn unwatch_group(pgid: u32) {
    let mut state = WATCHDOG_STATE
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(dog) = state.as_mut()
        && dog.groups.remove(&pgid)
    {
        dog.write(&format!("-{pgid}\n"));
    }
}

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
/// orphans when the task owning a child is dropped without finishing its shutdown. While it is
/// armed the watchdog knows the group too, for a hub that dies without dropping anything.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    pub(crate) fn new(pgid: u32) -> Self {
        watch_group(pgid);
        GroupGuard { pgid: Some(pgid) }
    }

    /// The group has been dealt with; dropping the guard does nothing.
    pub(crate) fn disarm(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            unwatch_group(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            signal_group(pgid, Signal::KILL);
            unwatch_group(pgid);
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
