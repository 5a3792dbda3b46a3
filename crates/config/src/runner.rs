//! Running `${cmd: …}` placeholders: an injected [`CommandRunner`], with a blocking default
//! ([`ShellRunner`]) that needs no async runtime.

use std::fmt;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{CommandError, STDERR_LIMIT};

/// Runs the command of a `${cmd: …}` placeholder and returns its output.
///
/// Implementations return the command's stdout with surrounding whitespace trimmed (the resolver
/// trims again, so a runner that forgets is harmless) or a [`CommandError`] carrying the command's
/// stderr. They must not log the command: by
/// the time it reaches the runner its own placeholders are resolved and it may contain secrets.
///
/// The resolver calls a runner at most once per distinct command text per resolution pass.
pub trait CommandRunner {
    /// Runs `command` (already free of placeholders) and returns its trimmed stdout.
    fn run(&self, command: &str) -> Result<String, CommandError>;
}

/// Any `Fn(&str) -> Result<String, CommandError>` is a runner: handy for tests and fakes.
///
/// ```
/// use mcp_hub_config::{CommandError, CommandRunner};
///
/// let fake = |cmd: &str| -> Result<String, CommandError> { Ok(format!("ran {cmd}")) };
/// assert_eq!(fake.run("op read x").unwrap(), "ran op read x");
/// ```
impl<F> CommandRunner for F
where
    F: Fn(&str) -> Result<String, CommandError>,
{
    fn run(&self, command: &str) -> Result<String, CommandError> {
        self(command)
    }
}

/// What the program running [`ShellRunner`] commands learns about them, and how it stops them.
///
/// A hub that is shutting down must not wait for a slow command (`cancelled`), and a hub that is
/// killed must not leave one behind: `started` and `finished` bracket the life of the command's
/// process group so that something outside the hub (a watchdog) can kill it.
pub trait CommandWatch: Send + Sync + 'static {
    /// The command runs as the leader of its own process group `pgid`.
    fn started(&self, pgid: u32) {
        let _ = pgid;
    }
    /// That command has been reaped (or killed and reaped).
    fn finished(&self, pgid: u32) {
        let _ = pgid;
    }
    /// Polled while the command runs: `true` kills its process group and fails the run with
    /// [`CommandError::Cancelled`].
    fn cancelled(&self) -> bool {
        false
    }
}

/// The default timeout of a `${cmd: …}` command, as in the Node hub.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How much stdout a command may produce before the rest is discarded.
const STDOUT_LIMIT: usize = 1024 * 1024;

/// Runs commands through `/bin/sh -c` (`cmd /C` on Windows) with a timeout, blocking the calling
/// thread.
///
/// The command inherits the hub's real process environment and working directory, stdin is
/// closed, stdout is captured (at most 1 MiB is kept) and trimmed, and stderr is kept for the error message.
/// On Unix the shell runs in its own process group; when the timeout expires the whole group is
/// killed (so `sleep` started by the shell dies too) and the shell is reaped, leaving no zombie.
/// A command that leaves a background process holding its stdout open is waited for until the
/// timeout, as a shell's `$(…)` would.
///
/// Because it blocks, an async caller should run resolution on a blocking thread. A
/// [`CommandWatch`] ([`ShellRunner::with_watch`]) lets it stop a command early and keep track of
/// its process group.
///
/// ```
/// # #[cfg(unix)] {
/// use mcp_hub_config::{CommandRunner, ShellRunner};
/// use std::time::Duration;
///
/// let runner = ShellRunner::new(Duration::from_secs(5));
/// assert_eq!(runner.run("printf '  hi  \\n'").unwrap(), "hi");
/// let err = runner.run("echo nope >&2; exit 3").unwrap_err();
/// assert!(err.to_string().contains("nope"));
/// # }
/// ```
#[derive(Clone)]
pub struct ShellRunner {
    /// How long a command may run before it is killed.
    pub timeout: Duration,
    watch: Option<Arc<dyn CommandWatch>>,
}

impl fmt::Debug for ShellRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShellRunner")
            .field("timeout", &self.timeout)
            .field("watched", &self.watch.is_some())
            .finish()
    }
}

impl Default for ShellRunner {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl ShellRunner {
    /// A runner with the default 30 s timeout, usable where a `'static` reference is handy
    /// (`&ShellRunner::DEFAULT`).
    pub const DEFAULT: ShellRunner = ShellRunner {
        timeout: DEFAULT_COMMAND_TIMEOUT,
        watch: None,
    };

    /// A runner with the given timeout.
    pub fn new(timeout: Duration) -> Self {
        ShellRunner {
            timeout,
            watch: None,
        }
    }

    /// The same runner, reporting its commands to `watch` and stopping when it says so.
    pub fn with_watch(mut self, watch: Arc<dyn CommandWatch>) -> Self {
        self.watch = Some(watch);
        self
    }
}

/// Tells the watch that a command's group is gone, however the run ends.
struct Watched<'a> {
    watch: Option<&'a dyn CommandWatch>,
    pgid: u32,
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.watch {
            w.finished(self.pgid);
        }
    }
}

impl CommandRunner for ShellRunner {
    fn run(&self, command: &str) -> Result<String, CommandError> {
        let mut child = shell(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CommandError::Spawn(e.to_string()))?;
        let watch = self.watch.as_deref();
        // Every path below reaps the child before it returns; then this reports the group gone.
        let _watched = Watched {
            watch,
            pgid: child.id(),
        };
        if let Some(w) = watch {
            w.started(child.id());
        }

        // Both pipes are drained concurrently so a chatty command cannot block on a full pipe
        // while we wait for it to exit.
        let stdout = child.stdout.take().map(|p| drain(p, STDOUT_LIMIT));
        let stderr = child.stderr.take().map(|p| drain(p, STDERR_LIMIT));

        let deadline = Instant::now() + self.timeout;
        let mut exited = None;
        let mut pause = Duration::from_millis(1);
        let finished = loop {
            if exited.is_none() {
                match child.try_wait() {
                    Ok(status) => exited = status,
                    Err(e) => {
                        kill(&mut child);
                        return Err(CommandError::Spawn(e.to_string()));
                    }
                }
            }
            let pipes_closed = [&stdout, &stderr]
                .iter()
                .all(|h| h.as_ref().is_none_or(JoinHandle::is_finished));
            if let (Some(status), true) = (exited, pipes_closed) {
                break Some(status);
            }
            if watch.is_some_and(|w| w.cancelled()) {
                kill(&mut child);
                return Err(CommandError::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                break None;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(25));
        };

        let Some(status) = finished else {
            kill(&mut child);
            // Killing the group closed every writer, so the readers finish promptly; one that
            // does not (a process that escaped the group) is left to end on its own rather than
            // blocking the hub.
            let err = collect(stderr, Duration::from_millis(500));
            return Err(CommandError::TimedOut {
                after: self.timeout,
                stderr: tidy_stderr(&err),
            });
        };

        let out = collect(stdout, Duration::from_millis(500));
        let err = collect(stderr, Duration::from_millis(500));
        if !status.success() {
            return Err(CommandError::Failed {
                status: status.to_string(),
                stderr: tidy_stderr(&err),
            });
        }
        String::from_utf8(out)
            .map(|s| s.trim().to_owned())
            .map_err(|_| CommandError::NotUtf8)
    }
}

/// A runner that refuses every command: for configurations that are not trusted to run shell
/// commands, or for a dry run that must not have side effects.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyCommands;

impl CommandRunner for DenyCommands {
    fn run(&self, _command: &str) -> Result<String, CommandError> {
        Err(CommandError::Denied)
    }
}

#[cfg(unix)]
fn shell(command: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command);
    // Own process group, so a timeout can kill everything the shell started.
    cmd.process_group(0);
    cmd
}

#[cfg(not(unix))]
fn shell(command: &str) -> Command {
    let mut cmd = Command::new("cmd");
    cmd.arg("/C").arg(command);
    cmd
}

/// Kills the command (and on Unix its whole process group) and reaps it.
fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        let pid = rustix::process::Pid::from_child(child);
        // Never signal group 1 (init's): a child's pid can't be 1, this is only a guard.
        if pid != rustix::process::Pid::INIT {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a pipe to its end on a helper thread, keeping at most `limit` bytes.
fn drain<R: Read + Send + 'static>(mut pipe: R, limit: usize) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        kept
    })
}

/// Joins a reader if it finishes within `grace`; otherwise leaves it running (detached).
fn collect(handle: Option<JoinHandle<Vec<u8>>>, grace: Duration) -> Vec<u8> {
    let Some(handle) = handle else {
        return Vec::new();
    };
    let deadline = Instant::now() + grace;
    while !handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if handle.is_finished() {
        handle.join().unwrap_or_default()
    } else {
        Vec::new()
    }
}

fn tidy_stderr(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn runner(ms: u64) -> ShellRunner {
        ShellRunner::new(Duration::from_millis(ms))
    }

    #[test]
    fn returns_trimmed_stdout() {
        assert_eq!(runner(5000).run("echo '  hello '").unwrap(), "hello");
    }

    #[test]
    fn failing_command_reports_status_and_stderr() {
        let err = runner(5000)
            .run("echo 'not signed in' >&2; exit 4")
            .unwrap_err();
        match &err {
            CommandError::Failed { status, stderr } => {
                assert!(status.contains('4'), "{status}");
                assert_eq!(stderr, "not signed in");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("not signed in"));
    }

    #[test]
    fn timeout_kills_the_whole_group_and_reaps() {
        let started = Instant::now();
        let err = runner(300)
            .run("echo started >&2; sleep 30; echo never")
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        match err {
            CommandError::TimedOut { after, stderr } => {
                assert_eq!(after, Duration::from_millis(300));
                assert_eq!(stderr, "started");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn background_process_holding_stdout_is_bounded_by_the_timeout() {
        let started = Instant::now();
        let res = runner(400).run("sleep 30 & echo value");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(res, Err(CommandError::TimedOut { .. })), "{res:?}");
    }

    #[test]
    fn large_output_does_not_deadlock_and_is_capped() {
        let out = runner(10_000)
            .run("head -c 3000000 /dev/zero | tr '\\0' a")
            .unwrap();
        assert_eq!(out.len(), STDOUT_LIMIT);
    }

    #[test]
    fn stdin_is_closed() {
        assert_eq!(runner(5000).run("cat").unwrap(), "");
    }

    #[test]
    fn non_utf8_output_is_an_error() {
        assert_eq!(
            runner(5000).run("printf '\\377'").unwrap_err(),
            CommandError::NotUtf8
        );
    }

    #[derive(Default)]
    struct Recorder {
        started: std::sync::Mutex<Vec<u32>>,
        finished: std::sync::Mutex<Vec<u32>>,
    }

    impl CommandWatch for Recorder {
        fn started(&self, pgid: u32) {
            self.started.lock().unwrap().push(pgid);
        }
        fn finished(&self, pgid: u32) {
            self.finished.lock().unwrap().push(pgid);
        }
        fn cancelled(&self) -> bool {
            // Cancel as soon as the command is running.
            !self.started.lock().unwrap().is_empty()
        }
    }

    #[test]
    fn a_cancelled_command_is_killed_with_its_group_at_once() {
        let watch = Arc::new(Recorder::default());
        let started = Instant::now();
        let err = ShellRunner::new(Duration::from_secs(60))
            .with_watch(watch.clone())
            .run("sleep 30 & sleep 30")
            .unwrap_err();
        assert_eq!(err, CommandError::Cancelled);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited {:?}",
            started.elapsed()
        );
        let pgid = watch.started.lock().unwrap()[0];
        assert_eq!(*watch.finished.lock().unwrap(), [pgid]);
        // Killed at once; the background `sleep` is reaped by whoever inherits it, which may
        // take a moment (a zombie still counts as a member of the group).
        let group = rustix::process::Pid::from_raw(pgid as i32).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while rustix::process::test_kill_process_group(group).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            rustix::process::test_kill_process_group(group).is_err(),
            "a process of the command's group survived"
        );
    }

    #[test]
    fn deny_refuses() {
        assert_eq!(DenyCommands.run("true").unwrap_err(), CommandError::Denied);
    }
}
