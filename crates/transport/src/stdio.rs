//! The stdio transport: a child process speaking newline-delimited JSON-RPC on stdin/stdout.
//!
//! Four tasks per child, all bounded:
//!
//! - the writer writes the stdin lines that the pipe did not take at once from their senders
//!   ([`stdin`]; a small queue applies backpressure to senders);
//! - the stdout reader frames lines ([`lines::LineFramer`]), skips oversize and non-JSON lines
//!   with a log message, and pushes messages into the engine's inbound channel;
//! - the stderr reader drains stderr continuously (a full pipe would block the child) into
//!   `tracing` (target `mcp_hub::upstream`, at most a burst then a steady rate of lines per
//!   server, with a "suppressed N lines" summary) and the spec's optional sender;
//! - the supervisor owns the [`Child`], reaps it, and runs the shutdown sequence: close stdin,
//!   wait, SIGTERM the process group, wait, SIGKILL the group, reap. When the child exits by
//!   itself, leftovers in its group (grandchildren) are killed too.
//!
//! See [`crate::process`] for what happens to children when the hub itself dies.

pub(crate) mod lines;
mod stderr;
mod stdin;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use mcp_hub_protocol::{ErrorCode, ErrorObject, Incoming, Message};
use rustix::process::Signal;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::process::{GroupGuard, describe_exit, signal_group};
use crate::wire::{Inbound, InboundTx, Wire, WireParts, inbound_channel};
use crate::{SessionOptions, StdioSpec, TransportError};

use lines::{Frame, LineFramer, decode_line, preview};

/// How much of an unparsable line goes into the log.
const LOG_PREVIEW: usize = 200;
/// Read buffer size for stdout and stderr.
const READ_CHUNK: usize = 64 * 1024;
/// After stdout ends, how long to wait for the exit status so the error can name it.
const EXIT_STATUS_WAIT: Duration = Duration::from_millis(500);
/// After the child exited, how long stdout may stay open (held by a process that escaped the
/// group) before the reader gives up on it.
const STDOUT_GRACE_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Spawns the child and starts its tasks.
pub(crate) async fn open(
    spec: &StdioSpec,
    opts: &SessionOptions,
) -> Result<WireParts, TransportError> {
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd.spawn().map_err(|e| TransportError::Spawn {
        command: spec.command.clone(),
        reason: spawn_failure(&e, spec.cwd.as_deref()),
        kind: e.kind(),
    })?;
    let pid = child.id();
    // From now on the group dies with the hub, however the hub dies.
    let guard = pid.map(GroupGuard::new);
    // The std pipes are always present after a spawn with `Stdio::piped()`; treat their absence
    // as a spawn failure rather than panicking.
    let (Some(stdin), Some(stdout), Some(stderr), Some(pgid)) = (
        child.stdin.take(),
        child.stdout.take(),
        child.stderr.take(),
        pid,
    ) else {
        let _ = child.start_kill();
        return Err(TransportError::Spawn {
            command: spec.command.clone(),
            reason: "child pipes unavailable".to_owned(),
            kind: std::io::ErrorKind::Other,
        });
    };
    tracing::info!(server = %spec.name, command = %spec.command, pid = pgid, "started upstream process");

    let name: Arc<str> = Arc::from(spec.name.as_str());
    let shutdown = CancellationToken::new();
    let stdin_close = shutdown.child_token();
    let (exit_tx, exit_rx) = watch::channel(None);
    let (in_tx, in_rx) = inbound_channel();

    let stdin = match stdin::start(stdin, stdin_close.clone(), name.clone()) {
        Ok(stdin) => stdin,
        Err(e) => {
            let _ = child.start_kill();
            return Err(TransportError::Spawn {
                command: spec.command.clone(),
                reason: format!("cannot take over the child's stdin: {e}"),
                kind: e.kind(),
            });
        }
    };
    tokio::spawn(read_loop(
        stdout,
        in_tx,
        opts.max_message_bytes,
        name.clone(),
        exit_rx.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(stderr::stderr_loop(
        stderr,
        spec.stderr.clone(),
        name.clone(),
    ));
    tokio::spawn(supervise(
        child,
        guard.unwrap_or_else(|| GroupGuard::new(pgid)),
        pgid,
        shutdown.clone(),
        stdin_close,
        exit_tx,
        opts.shutdown_timeout,
        name.clone(),
    ));

    let wire = StdioWire {
        pid: pgid,
        stdin,
        shutdown,
        exit: exit_rx,
    };
    Ok(WireParts {
        wire: Arc::new(wire),
        inbound: in_rx,
    })
}

/// Why a spawn failed. The OS reports a missing working directory exactly like a missing
/// executable (`ENOENT`), so that case is told apart here.
fn spawn_failure(e: &std::io::Error, cwd: Option<&std::path::Path>) -> String {
    if let Some(cwd) = cwd {
        match std::fs::metadata(cwd) {
            Err(_) if e.kind() == std::io::ErrorKind::NotFound => {
                return format!(
                    "the working directory (cwd) {} does not exist",
                    cwd.display()
                );
            }
            Ok(m) if !m.is_dir() => {
                return format!(
                    "the working directory (cwd) {} is not a directory",
                    cwd.display()
                );
            }
            _ => {}
        }
    }
    e.to_string()
}

struct StdioWire {
    pid: u32,
    stdin: stdin::Stdin,
    shutdown: CancellationToken,
    exit: watch::Receiver<Option<String>>,
}

impl StdioWire {
    fn gone(&self) -> TransportError {
        if self.shutdown.is_cancelled() {
            return TransportError::Closed;
        }
        TransportError::Exited {
            status: self
                .exit
                .borrow()
                .clone()
                .unwrap_or_else(|| "stdin closed".to_owned()),
        }
    }
}

#[async_trait::async_trait]
impl Wire for StdioWire {
    async fn send(&self, msg: Message) -> Result<(), TransportError> {
        if self.shutdown.is_cancelled() {
            return Err(TransportError::Closed);
        }
        self.stdin
            .send(crate::encode_line(&msg))
            .await
            .map_err(|_| self.gone())
    }

    async fn close(&self) {
        self.shutdown.cancel();
        let mut exit = self.exit.clone();
        // Err means the supervisor is gone (runtime shutting down); its guard killed the group.
        let _ = exit.wait_for(Option::is_some).await;
    }

    fn kind(&self) -> &'static str {
        "stdio"
    }

    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }
}

async fn read_loop(
    mut stdout: impl AsyncRead + Unpin,
    inbound: InboundTx,
    max_line: usize,
    name: Arc<str>,
    exit: watch::Receiver<Option<String>>,
    shutdown: CancellationToken,
) {
    let mut framer = LineFramer::new(max_line);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut batch = Vec::new();
    let give_up = {
        let mut exit = exit.clone();
        async move {
            if exit.wait_for(Option::is_some).await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(STDOUT_GRACE_AFTER_EXIT).await;
        }
    };
    tokio::pin!(give_up);
    loop {
        let n = tokio::select! {
            r = stdout.read(&mut buf) => match r {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(server = %name, error = %e, "reading upstream stdout failed");
                    break;
                }
            },
            () = &mut give_up => {
                tracing::warn!(server = %name, "upstream exited but its stdout stayed open; stopped reading");
                break;
            }
        };
        framer.push(&buf[..n], |f| frame_to_messages(f, &name, &mut batch));
        for msg in batch.drain(..) {
            if inbound
                .send(Ok(Inbound { msg, origin: None }))
                .await
                .is_err()
            {
                // The engine is gone; nobody will read what follows.
                return;
            }
        }
    }
    framer.finish(|f| frame_to_messages(f, &name, &mut batch));
    for msg in batch.drain(..) {
        if inbound
            .send(Ok(Inbound { msg, origin: None }))
            .await
            .is_err()
        {
            return;
        }
    }

    let reason = if shutdown.is_cancelled() {
        TransportError::Closed
    } else {
        let mut exit = exit.clone();
        match tokio::time::timeout(EXIT_STATUS_WAIT, exit.wait_for(Option::is_some)).await {
            Ok(Ok(status)) => TransportError::Exited {
                status: status.clone().unwrap_or_default(),
            },
            _ => {
                // Stdout is gone but the process lives on: it can no longer answer anything.
                shutdown.cancel();
                TransportError::Exited {
                    status: "closed its stdout".to_owned(),
                }
            }
        }
    };
    tracing::debug!(server = %name, reason = %reason, "upstream stdout ended");
    let _ = inbound.send(Err(reason)).await;
}

fn frame_to_messages(frame: Frame<'_>, name: &str, out: &mut Vec<Message>) {
    match frame {
        Frame::Oversize(len, head, tail) => {
            match lines::oversize_response_id(head, tail) {
                // The caller gets an error now instead of waiting for its timeout.
                Some(id) => {
                    tracing::warn!(server = %name, len, %id, "an upstream answer exceeded the message limit");
                    out.push(Message::error(
                    Some(id),
                    ErrorObject::new(
                        ErrorCode::INTERNAL_ERROR,
                        format!("the upstream's answer ({len} bytes) exceeds the hub's message limit"),
                    ),
                ));
                }
                None => {
                    tracing::warn!(server = %name, len, "skipped an oversize line from upstream stdout")
                }
            }
        }
        Frame::Line(line) => match decode_line(line) {
            Ok(None) => {}
            Ok(Some(Incoming::Single(m))) => out.push(m),
            Ok(Some(Incoming::Batch(ms))) => out.extend(ms),
            Err(e) => match crate::salvage::unreadable_answer(line, &e) {
                // It answers a call: that call fails now rather than at its timeout.
                Some(answer) => {
                    tracing::warn!(
                        server = %name,
                        error = %e,
                        line = %preview(line, LOG_PREVIEW),
                        "a malformed answer from upstream fails its call"
                    );
                    out.push(answer);
                }
                None => tracing::warn!(
                    server = %name,
                    error = %e,
                    line = %preview(line, LOG_PREVIEW),
                    "skipped a line from upstream stdout that is not a JSON-RPC message"
                ),
            },
        },
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    mut child: Child,
    mut guard: GroupGuard,
    pgid: u32,
    shutdown: CancellationToken,
    stdin_close: CancellationToken,
    exit: watch::Sender<Option<String>>,
    step: Duration,
    name: Arc<str>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        () = shutdown.cancelled() => {
            stdin_close.cancel();
            match tokio::time::timeout(step, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    tracing::info!(server = %name, pid = pgid, "upstream did not exit after stdin closed; sending SIGTERM");
                    signal_group(pgid, Signal::TERM);
                    match tokio::time::timeout(step, child.wait()).await {
                        Ok(status) => status,
                        Err(_) => {
                            tracing::warn!(server = %name, pid = pgid, "upstream ignored SIGTERM; sending SIGKILL");
                            signal_group(pgid, Signal::KILL);
                            child.wait().await
                        }
                    }
                }
            }
        }
    };
    // Whatever the child left behind in its group dies with it. The group id cannot have been
    // reused while any member is alive, so this only reaches our own leftovers.
    signal_group(pgid, Signal::KILL);
    guard.disarm();
    stdin_close.cancel();
    let status = describe_exit(&status);
    tracing::info!(server = %name, pid = pgid, %status, "upstream process ended");
    let _ = exit.send(Some(status));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let mut s = b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n".to_vec();
        s.extend_from_slice(b"Starting server on stdio...\n\n");
        s.extend_from_slice(
            format!(
                "{{\"jsonrpc\":\"2.0\",\"method\":\"{}\"}}\n",
                "x".repeat(200)
            )
            .as_bytes(),
        );
        s.extend_from_slice(
            b"[{\"jsonrpc\":\"2.0\",\"method\":\"a\"},{\"jsonrpc\":\"2.0\",\"method\":\"b\"}]\n",
        );
        s.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":\"last\"}");
        s
    }

    async fn drain(rx: &mut crate::wire::InboundRx) -> (Vec<String>, Option<TransportError>) {
        let mut seen = Vec::new();
        let mut end = None;
        while let Some(item) = rx.recv().await {
            match item {
                Ok(Inbound { msg, origin }) => {
                    assert!(origin.is_none());
                    seen.push(
                        msg.method()
                            .map_or_else(|| format!("id {}", msg.id().unwrap()), str::to_owned),
                    );
                }
                Err(e) => end = Some(e),
            }
        }
        (seen, end)
    }

    #[tokio::test(start_paused = true)]
    async fn the_reader_skips_noise_and_reports_the_exit() {
        let input = std::io::Cursor::new(stream());
        let (tx, mut rx) = inbound_channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        exit_tx.send_replace(Some("exit status: 0".to_owned()));
        let shutdown = CancellationToken::new();
        tokio::spawn(read_loop(
            input,
            tx,
            100,
            Arc::from("t"),
            exit_rx,
            shutdown.clone(),
        ));
        let (seen, end) = drain(&mut rx).await;
        assert_eq!(seen, ["id 1", "a", "b", "last"]);
        assert!(
            matches!(end, Some(TransportError::Exited { status }) if status == "exit status: 0")
        );
        assert!(!shutdown.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn stdout_closed_by_a_live_process_ends_the_session_and_stops_it() {
        let (tx, mut rx) = inbound_channel();
        let (_exit_tx, exit_rx) = watch::channel(None);
        let shutdown = CancellationToken::new();
        tokio::spawn(read_loop(
            &b""[..],
            tx,
            100,
            Arc::from("t"),
            exit_rx,
            shutdown.clone(),
        ));
        let (seen, end) = drain(&mut rx).await;
        assert!(seen.is_empty());
        assert!(
            matches!(end, Some(TransportError::Exited { status }) if status.contains("stdout"))
        );
        assert!(shutdown.is_cancelled(), "the process must be stopped");
    }

    #[tokio::test]
    async fn a_hub_initiated_close_is_reported_as_closed() {
        let (tx, mut rx) = inbound_channel();
        let (_exit_tx, exit_rx) = watch::channel(None);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        tokio::spawn(read_loop(
            &b""[..],
            tx,
            100,
            Arc::from("t"),
            exit_rx,
            shutdown,
        ));
        let (_, end) = drain(&mut rx).await;
        assert!(matches!(end, Some(TransportError::Closed)));
    }
}
