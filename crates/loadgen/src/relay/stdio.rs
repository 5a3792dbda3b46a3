//! The stdio upstream: one child, its lines written under a lock, its answers matched back to
//! the waiting POSTs by id.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use super::{Head, answer_id};
use crate::error::LoadgenError;

type Waiters = Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>;

pub(super) struct Shared {
    stdin: tokio::sync::Mutex<ChildStdin>,
    waiting: Waiters,
}

/// The child, initialized, with the task that reads its answers.
pub(super) struct StdioUpstream {
    child: Child,
    pub(super) shared: Arc<Shared>,
    reader: tokio::task::JoinHandle<()>,
}

impl StdioUpstream {
    pub(super) async fn spawn(command: &[String]) -> Result<StdioUpstream, LoadgenError> {
        let (prog, args) = command
            .split_first()
            .ok_or_else(|| LoadgenError::Usage("relay needs a server command after --".into()))?;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LoadgenError::Process(format!("spawning {prog}: {e}")))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(LoadgenError::Process("no pipes to the child".into()));
        };
        let mut lines = BufReader::new(stdout);
        handshake(&mut stdin, &mut lines).await?;
        let shared = Arc::new(Shared {
            stdin: tokio::sync::Mutex::new(stdin),
            waiting: Mutex::new(HashMap::new()),
        });
        let reader = tokio::spawn(read_answers(lines, shared.clone()));
        Ok(StdioUpstream {
            child,
            shared,
            reader,
        })
    }

    /// Completes when the child has closed its stdout or exited.
    pub(super) async fn ended(mut self) -> LoadgenError {
        tokio::select! {
            _ = &mut self.reader => LoadgenError::Process("the upstream closed its stdout".into()),
            s = self.child.wait() => LoadgenError::Process(format!("the upstream exited: {s:?}")),
        }
    }
}

impl Shared {
    /// Writes `request` (a JSON text with the relay's id `ours`) as one line and waits for its
    /// answer.
    pub(super) async fn exchange(&self, mut request: Vec<u8>, ours: u64) -> Option<Vec<u8>> {
        // A JSON text's line breaks are whitespace outside strings (inside them they are
        // escaped), so blanking them keeps the message and makes it one line.
        for b in &mut request {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        request.push(b'\n');
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(ours, tx);
        if self.stdin.lock().await.write_all(&request).await.is_err() {
            lock(&self.waiting).remove(&ours);
            return None;
        }
        rx.await.ok()
    }
}

async fn handshake(
    stdin: &mut ChildStdin,
    lines: &mut BufReader<ChildStdout>,
) -> Result<(), LoadgenError> {
    stdin
        .write_all(
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"relay-floor","version":"0"}}}
"#,
        )
        .await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Err(LoadgenError::Process(
                "the upstream closed before initialize".into(),
            ));
        }
        let head: Head<'_> = serde_json::from_slice(&line)
            .map_err(|e| LoadgenError::Protocol(format!("upstream: {e}")))?;
        if head.id.is_some_and(|id| id.get() == "0") && head.method.is_none() {
            break;
        }
    }
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await?;
    Ok(())
}

/// Hands each answer to the POST waiting for its id; anything else (notifications, requests
/// from the server) is dropped, which is one of the things the floor does not do.
async fn read_answers(mut lines: BufReader<ChildStdout>, shared: Arc<Shared>) {
    loop {
        let mut line = Vec::with_capacity(256);
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Some(id) = answer_id(&line) else {
            continue;
        };
        let waiter = lock(&shared.waiting).remove(&id);
        if let Some(tx) = waiter {
            let _ = tx.send(line);
        }
    }
}

fn lock(w: &Waiters) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Vec<u8>>>> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}
