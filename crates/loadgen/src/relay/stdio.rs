//! The stdio upstream: one child, its lines written under a lock, its answers matched back to
//! the waiting POSTs by id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::oneshot;

use super::answer_id;
use crate::client::{Session, TransportKind};
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
    /// Starts `command` and initializes it with the load generator's own stdio client.
    pub(super) async fn spawn(command: &[String]) -> Result<StdioUpstream, LoadgenError> {
        let (child, stdin, lines) = Session::open(TransportKind::Stdio, command)
            .await?
            .into_stdio()
            .ok_or_else(|| LoadgenError::Protocol("not a stdio session".into()))?
            .into_parts()?;
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
    pub(super) async fn exchange(&self, request: Vec<u8>, ours: u64) -> Option<Vec<u8>> {
        let request = mcp_hub_protocol::into_stdio_line(request);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(ours, tx);
        if self.stdin.lock().await.write_all(&request).await.is_err() {
            lock(&self.waiting).remove(&ours);
            return None;
        }
        rx.await.ok()
    }
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
