//! Watching `workspaces.json` for changes by any writer (this hub, other hubs, the Node hub):
//! bursts are coalesced and identical contents announced once.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::{WorkspaceCache, WorkspaceError, parent_dir, prune_dead, read_unlocked};

/// Quiet period before a change burst is announced.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(100);
/// Upper bound on how long a continuous burst can postpone an announcement.
const WATCH_MAX_DELAY: Duration = Duration::from_secs(1);
/// Capacity of the change broadcast; slow subscribers skip to the newest contents.
const WATCH_CAPACITY: usize = 16;

pub(super) struct Watching {
    tx: broadcast::Sender<Value>,
    // Dropping the watcher drops its event sender, which ends the debounce task.
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for Watching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watching")
            .field("subscribers", &self.tx.receiver_count())
            .finish_non_exhaustive()
    }
}

impl WorkspaceCache {
    /// Subscribes to changes of the file, whoever writes it. Each message is the full cache
    /// (dead entries filtered out), sent after a 100 ms quiet period; identical consecutive
    /// contents are sent once. The watcher starts on the first call and stops when this
    /// handle is dropped. Must be called within a Tokio runtime.
    pub fn watch(&self) -> Result<broadcast::Receiver<Value>, WorkspaceError> {
        let mut watching = self
            .watching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = watching.as_ref() {
            return Ok(w.tx.subscribe());
        }
        let dir = parent_dir(&self.path);
        let watch_err = |detail: String| WorkspaceError::Watch {
            path: dir.clone(),
            detail,
        };
        std::fs::create_dir_all(&dir).map_err(|e| watch_err(e.to_string()))?;
        let file_name: OsString = self
            .path
            .file_name()
            .map(ToOwned::to_owned)
            .ok_or_else(|| watch_err("the cache path has no file name".to_owned()))?;

        // One pending signal is enough: the task re-reads the whole file anyway.
        let (signal_tx, signal_rx) = mpsc::channel::<()>(1);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if is_content_change(&event.kind)
                && event
                    .paths
                    .iter()
                    .any(|p| p.file_name() == Some(file_name.as_os_str()))
            {
                let _ = signal_tx.try_send(());
            }
        })
        .map_err(|e| watch_err(e.to_string()))?;
        notify::Watcher::watch(&mut watcher, &dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| watch_err(e.to_string()))?;

        let (tx, rx) = broadcast::channel(WATCH_CAPACITY);
        tokio::spawn(announce_changes(signal_rx, tx.clone(), self.path.clone()));
        *watching = Some(Watching {
            tx,
            _watcher: watcher,
        });
        Ok(rx)
    }
}

fn is_content_change(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

async fn announce_changes(
    mut signals: mpsc::Receiver<()>,
    tx: broadcast::Sender<Value>,
    path: PathBuf,
) {
    let mut last: Option<Value> = None;
    while signals.recv().await.is_some() {
        let deadline = tokio::time::Instant::now() + WATCH_MAX_DELAY;
        loop {
            let quiet_until = (tokio::time::Instant::now() + WATCH_DEBOUNCE).min(deadline);
            match tokio::time::timeout_at(quiet_until, signals.recv()).await {
                Ok(Some(())) if tokio::time::Instant::now() < deadline => continue,
                Ok(None) => return,
                _ => break,
            }
        }
        let mut map = match read_unlocked(&path).await {
            Ok(map) => map,
            Err(e) => {
                tracing::debug!(error = %e, "workspace cache changed but could not be read");
                continue;
            }
        };
        prune_dead(&mut map);
        let value = Value::Object(map);
        if last.as_ref() != Some(&value) {
            last = Some(value.clone());
            // No subscribers right now is fine; later ones get the next change.
            let _ = tx.send(value);
        }
    }
}
