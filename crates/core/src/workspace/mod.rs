//! The machine-wide workspace cache `workspaces.json`: one entry per running hub, keyed by its
//! port as a string, shared with Node `mcp-hub` 4.2.1 instances and read directly by mcphub.nvim.
//!
//! File format and lock protocol are the Node hub's, so both can run side by side:
//! * the file is a JSON object `{"<port>": WorkspaceEntry}`, pretty-printed with two spaces;
//! * every read-modify-write holds `workspaces.json.lock`, created exclusively and containing the
//!   holder's pid; a busy lock is retried 10 times, 100 ms apart.
//!
//! Where we deliberately differ from the Node hub:
//! * a lock is only broken when it is provably stale (its pid is dead, it is unreadable garbage,
//!   or it is older than [`lock::STALE_LOCK_AGE`]); the Node hub removes any lock after one second,
//!   which breaks mutual exclusion under contention;
//! * writes go to a temporary file renamed over the cache, so readers that take no lock
//!   (mcphub.nvim, our watcher) never see a half-written file;
//! * entries of hubs whose pid is dead are pruned on [`WorkspaceCache::read_all`]; the Node hub
//!   never removes them (its cleanup exists but is never called). A hub in another pid namespace
//!   (a container sharing the home directory) would look dead here; that setup is not supported.
//! * the change watcher coalesces bursts and does not re-announce identical contents.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

mod lock;
mod watch;

use lock::pid_is_dead;
use watch::Watching;

/// Errors of the workspace cache.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// Reading, writing or locking the cache file failed.
    #[error("workspace cache {}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another live process holds the lock and kept it through every retry.
    #[error(
        "workspace cache lock {} is held by {} and was not released in time",
        path.display(),
        holder.map_or_else(|| "an unknown process".to_owned(), |p| format!("live process {p}"))
    )]
    LockBusy {
        /// The lock file.
        path: PathBuf,
        /// The pid written in it, when readable.
        holder: Option<u64>,
    },
    /// The cache file is not a JSON object.
    #[error("workspace cache {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The entry stored under a port does not have the workspace entry shape.
    #[error("workspace entry for port {port} is malformed: {detail}")]
    Entry {
        /// The port key.
        port: u16,
        /// What is wrong with it.
        detail: String,
    },
    /// The file watcher could not be started.
    #[error("cannot watch workspace cache {}: {detail}", path.display())]
    Watch {
        /// The directory that was to be watched.
        path: PathBuf,
        /// Why it failed.
        detail: String,
    },
}

/// Whether a hub is serving or counting down to an automatic shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceState {
    /// `"active"`.
    Active,
    /// `"shutting_down"`: the auto-shutdown timer is running.
    ShuttingDown,
}

/// One hub's entry, with the Node hub's field names and JSON types (field order included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceEntry {
    /// The hub's working directory.
    pub cwd: String,
    /// The config files as given on the command line.
    pub config_files: Vec<String>,
    /// The hub's process id.
    pub pid: u32,
    /// The hub's port (also the key, as a string).
    pub port: u16,
    /// Start time, ISO-8601 UTC with milliseconds.
    #[serde(rename = "startTime")]
    pub start_time: String,
    /// Serving or shutting down.
    pub state: WorkspaceState,
    /// Connected `/api/events` clients.
    #[serde(rename = "activeConnections")]
    pub active_connections: u64,
    /// When the auto-shutdown timer started (ISO-8601), while shutting down.
    #[serde(rename = "shutdownStartedAt")]
    pub shutdown_started_at: Option<String>,
    /// The auto-shutdown delay in milliseconds, while shutting down.
    #[serde(rename = "shutdownDelay")]
    pub shutdown_delay: Option<u64>,
}

impl WorkspaceEntry {
    /// The entry of this process, started now: active, no connections.
    pub fn new(port: u16, cwd: impl Into<String>, config_files: Vec<String>) -> WorkspaceEntry {
        WorkspaceEntry {
            cwd: cwd.into(),
            config_files,
            pid: std::process::id(),
            port,
            start_time: iso_time(SystemTime::now()),
            state: WorkspaceState::Active,
            active_connections: 0,
            shutdown_started_at: None,
            shutdown_delay: None,
        }
    }
}

/// Handle on one `workspaces.json`. Several handles (in this or other processes) may share a file.
#[derive(Debug)]
pub struct WorkspaceCache {
    path: PathBuf,
    lock_path: PathBuf,
    /// Serialises this handle's own operations so they queue here instead of spinning on the
    /// lock file against each other.
    serial: Mutex<()>,
    watching: StdMutex<Option<Watching>>,
}

impl WorkspaceCache {
    /// A handle on the cache file at `path` (usually [`crate::Paths::workspaces_file`]).
    /// Nothing is touched on disk until the first operation.
    pub fn new(path: impl Into<PathBuf>) -> WorkspaceCache {
        let path = path.into();
        let mut lock = path.clone().into_os_string();
        lock.push(".lock");
        WorkspaceCache {
            path,
            lock_path: PathBuf::from(lock),
            serial: Mutex::new(()),
            watching: StdMutex::new(None),
        }
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds (or replaces) the entry under `entry.port`.
    pub async fn register(&self, entry: WorkspaceEntry) -> Result<(), WorkspaceError> {
        let key = entry.port.to_string();
        let value = serde_json::to_value(&entry).map_err(|e| WorkspaceError::Entry {
            port: entry.port,
            detail: e.to_string(),
        })?;
        self.modify(move |map| {
            map.insert(key, value);
            Ok((true, ()))
        })
        .await
    }

    /// Applies `f` to the entry under `port`; returns `false` (and writes nothing) when there
    /// is no such entry, like the Node hub.
    pub async fn update(
        &self,
        port: u16,
        f: impl FnOnce(&mut WorkspaceEntry) + Send,
    ) -> Result<bool, WorkspaceError> {
        let key = port.to_string();
        self.modify(move |map| {
            let Some(current) = map.get(&key) else {
                return Ok((false, false));
            };
            let mut entry: WorkspaceEntry =
                serde_json::from_value(current.clone()).map_err(|e| WorkspaceError::Entry {
                    port,
                    detail: e.to_string(),
                })?;
            f(&mut entry);
            let value = serde_json::to_value(&entry).map_err(|e| WorkspaceError::Entry {
                port,
                detail: e.to_string(),
            })?;
            map.insert(key, value);
            Ok((true, true))
        })
        .await
    }

    /// Records the number of connected `/api/events` clients.
    pub async fn set_active_connections(
        &self,
        port: u16,
        count: u64,
    ) -> Result<bool, WorkspaceError> {
        self.update(port, |e| e.active_connections = count).await
    }

    /// Marks the hub as counting down to auto-shutdown (Node: `setShutdownTimer`).
    pub async fn start_shutdown(&self, port: u16, delay_ms: u64) -> Result<bool, WorkspaceError> {
        let now = iso_time(SystemTime::now());
        self.update(port, move |e| {
            e.state = WorkspaceState::ShuttingDown;
            e.shutdown_started_at = Some(now);
            e.shutdown_delay = Some(delay_ms);
            e.active_connections = 0;
        })
        .await
    }

    /// Returns the hub to active after a cancelled auto-shutdown (Node: `cancelShutdownTimer`).
    pub async fn cancel_shutdown(&self, port: u16) -> Result<bool, WorkspaceError> {
        self.update(port, |e| {
            e.state = WorkspaceState::Active;
            e.shutdown_started_at = None;
            e.shutdown_delay = None;
        })
        .await
    }

    /// Removes the entry under `port`, if any.
    pub async fn deregister(&self, port: u16) -> Result<(), WorkspaceError> {
        let key = port.to_string();
        self.modify(move |map| Ok((map.remove(&key).is_some(), ())))
            .await
    }

    /// The whole cache `{<port>: entry}` without the entries of dead processes, which are
    /// also removed from the file.
    pub async fn read_all(&self) -> Result<Value, WorkspaceError> {
        let mut map = read_unlocked(&self.path).await?;
        if !prune_dead(&mut map) {
            return Ok(Value::Object(map));
        }
        let pruned = self
            .modify(|on_disk| {
                let changed = prune_dead(on_disk);
                Ok((changed, on_disk.clone()))
            })
            .await;
        match pruned {
            Ok(fresh) => Ok(Value::Object(fresh)),
            Err(e) => {
                // The filtered view is still right; the file is cleaned up next time.
                tracing::warn!(error = %e, "could not prune stale workspace cache entries");
                Ok(Value::Object(map))
            }
        }
    }

    /// Read-modify-write under both locks. `f` returns whether it changed the map, and a result.
    async fn modify<T>(
        &self,
        f: impl FnOnce(&mut Map<String, Value>) -> Result<(bool, T), WorkspaceError>,
    ) -> Result<T, WorkspaceError> {
        let _serial = self.serial.lock().await;
        let dir = parent_dir(&self.path);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_err(&dir, e))?;
        let _lock = self.acquire_lock().await?;
        let mut map = match read_file(&self.path).await? {
            Ok(map) => map,
            Err(detail) => {
                // Only a crash mid-write (by a hub that writes in place) gets here; failing
                // forever would keep every hub from registering.
                tracing::warn!(file = %self.path.display(), %detail, "workspace cache is corrupt; starting it afresh");
                Map::new()
            }
        };
        let (changed, out) = f(&mut map)?;
        if changed {
            write_atomic(&self.path, &map).await?;
        }
        Ok(out)
    }
}

/// Reads without the lock. A writer that writes in place (the Node hub) can expose a partial
/// file for a moment, so a bad parse is retried briefly before it counts as corruption.
async fn read_unlocked(path: &Path) -> Result<Map<String, Value>, WorkspaceError> {
    let mut attempts = 0;
    loop {
        match read_file(path).await? {
            Ok(map) => return Ok(map),
            Err(detail) if attempts >= 3 => {
                return Err(WorkspaceError::Corrupt {
                    path: path.to_path_buf(),
                    detail,
                });
            }
            Err(_) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The parsed file: a missing or empty file is an empty map; the inner `Err` is a parse error.
async fn read_file(path: &Path) -> Result<Result<Map<String, Value>, String>, WorkspaceError> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(Map::new())),
        Err(e) => return Err(io_err(path, e)),
    };
    if text.trim().is_empty() {
        return Ok(Ok(Map::new()));
    }
    Ok(match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the top level is not a JSON object".to_owned()),
        Err(e) => Err(e.to_string()),
    })
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

async fn write_atomic(path: &Path, map: &Map<String, Value>) -> Result<(), WorkspaceError> {
    // Two-space indentation and no trailing newline, as `JSON.stringify(v, null, 2)` writes.
    let text = serde_json::to_string_pretty(map).map_err(|e| WorkspaceError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp);
    if let Err(e) = tokio::fs::write(&tmp, text).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_err(&tmp, e));
    }
    if let Err(e) = tokio::fs::rename(&tmp, path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_err(path, e));
    }
    Ok(())
}

/// Drops entries whose `pid` is certainly dead; returns whether any was dropped.
fn prune_dead(map: &mut Map<String, Value>) -> bool {
    let before = map.len();
    map.retain(|_, entry| {
        !entry
            .get("pid")
            .and_then(Value::as_u64)
            .is_some_and(pid_is_dead)
    });
    map.len() != before
}

/// `true` only when the process certainly does not exist. Signal 0 checks existence without
/// delivering anything; `EPERM` means it exists under another user.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn io_err(path: &Path, source: io::Error) -> WorkspaceError {
    WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A time as ISO-8601 UTC with milliseconds, like JavaScript's `Date.prototype.toISOString`.
fn iso_time(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since the epoch to a proleptic Gregorian date, counting in 400-year eras that
    // start on 1 March so the leap day falls at the end of each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn iso_time_matches_javascript() {
        assert_eq!(iso_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        assert_eq!(iso_time(t), "2025-11-24T16:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso_time(leap), "2000-02-29T00:00:00.000Z");
        let end_of_year = UNIX_EPOCH + Duration::from_millis(1_735_689_599_999);
        assert_eq!(iso_time(end_of_year), "2024-12-31T23:59:59.999Z");
    }

    #[test]
    fn entry_serialises_with_node_field_names_and_order() {
        let mut e = WorkspaceEntry::new(40123, "/p", vec!["a.json".into()]);
        e.start_time = "2025-01-01T00:00:00.000Z".into();
        e.pid = 7;
        let text = serde_json::to_string(&e).expect("serialise");
        assert_eq!(
            text,
            r#"{"cwd":"/p","config_files":["a.json"],"pid":7,"port":40123,"startTime":"2025-01-01T00:00:00.000Z","state":"active","activeConnections":0,"shutdownStartedAt":null,"shutdownDelay":null}"#
        );
        e.state = WorkspaceState::ShuttingDown;
        let v = serde_json::to_value(&e).expect("serialise");
        assert_eq!(v["state"], "shutting_down");
    }

    #[test]
    fn pid_liveness() {
        assert!(!pid_is_dead(u64::from(std::process::id())));
        // Not a pid we can reason about: never declared dead.
        assert!(!pid_is_dead(0));
        assert!(!pid_is_dead(u64::MAX));
    }

    #[test]
    fn prune_keeps_live_and_unknown_entries() {
        let mut map: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "1": {"pid": std::process::id()},
            "2": {"pid": "not a number"},
            "3": {},
        }))
        .expect("map");
        assert!(!prune_dead(&mut map));
        assert_eq!(map.len(), 3);
    }
}
