//! The lock protocol of `workspaces.json.lock`, the Node hub's: create the file exclusively
//! with the holder's pid, retry a busy lock, and break it only when it is provably stale.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{WorkspaceCache, WorkspaceError, io_err};

/// How many times a busy lock is tried before checking whether it is stale (Node: 10).
pub(super) const LOCK_TRIES: u32 = 10;
/// Pause between lock attempts (Node: 100 ms).
pub(super) const LOCK_RETRY: Duration = Duration::from_millis(100);
/// A lock held longer than this is stale even if its pid is alive (the pid may have been
/// reused): a critical section is a read and a write of a small file.
pub(super) const STALE_LOCK_AGE: Duration = Duration::from_secs(30);

impl WorkspaceCache {
    pub(super) async fn acquire_lock(&self) -> Result<LockGuard, WorkspaceError> {
        if let Some(guard) = self.try_lock_rounds().await? {
            return Ok(guard);
        }
        let holder = match self.stale_holder().await? {
            Staleness::Stale(content) => {
                // Re-check right before removing so a lock re-taken meanwhile survives.
                if tokio::fs::read(&self.lock_path).await.ok().as_deref() == Some(&content[..]) {
                    tracing::warn!(lock = %self.lock_path.display(), "removing stale workspace cache lock");
                    match tokio::fs::remove_file(&self.lock_path).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(&self.lock_path, e)),
                    }
                }
                None
            }
            Staleness::Live(pid) => pid,
        };
        // Node retries once more after its cleanup; we do so for live holders too, which
        // gives a merely contended lock another round.
        match self.try_lock_rounds().await? {
            Some(guard) => Ok(guard),
            None => Err(WorkspaceError::LockBusy {
                path: self.lock_path.clone(),
                holder,
            }),
        }
    }

    async fn try_lock_rounds(&self) -> Result<Option<LockGuard>, WorkspaceError> {
        for attempt in 0..LOCK_TRIES {
            let path = self.lock_path.clone();
            let created = tokio::task::spawn_blocking(move || create_lock(&path))
                .await
                .map_err(|e| io_err(&self.lock_path, io::Error::other(e)))?;
            match created {
                Ok(()) => {
                    return Ok(Some(LockGuard {
                        path: self.lock_path.clone(),
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if attempt + 1 < LOCK_TRIES {
                        tokio::time::sleep(LOCK_RETRY).await;
                    }
                }
                Err(e) => return Err(io_err(&self.lock_path, e)),
            }
        }
        Ok(None)
    }

    async fn stale_holder(&self) -> Result<Staleness, WorkspaceError> {
        let content = match tokio::fs::read(&self.lock_path).await {
            Ok(c) => c,
            // Released meanwhile: nothing to break.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Staleness::Live(None)),
            Err(e) => return Err(io_err(&self.lock_path, e)),
        };
        let age = tokio::fs::metadata(&self.lock_path)
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        let pid = std::str::from_utf8(&content)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let stale = match pid {
            Some(pid) => pid_is_dead(pid) || age > STALE_LOCK_AGE,
            // The creator writes its pid right away; after a whole round of waiting, an
            // unreadable lock is debris.
            None => age >= LOCK_RETRY * LOCK_TRIES,
        };
        Ok(if stale {
            Staleness::Stale(content)
        } else {
            Staleness::Live(pid)
        })
    }
}

enum Staleness {
    Stale(Vec<u8>),
    Live(Option<u64>),
}

/// Removes the lock file when the critical section ends, however it ends.
pub(super) struct LockGuard {
    path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn create_lock(path: &Path) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    if let Err(e) = file.write_all(std::process::id().to_string().as_bytes()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

#[cfg(unix)]
pub(super) fn pid_is_dead(pid: u64) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(not(unix))]
pub(super) fn pid_is_dead(_pid: u64) -> bool {
    false
}
