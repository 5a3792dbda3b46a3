//! Hot reload: watch the config files, diff, and apply only what changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcp_hub_config::ConfigDiff;
use notify::{RecursiveMode, Watcher};
use serde_json::json;
use tokio::sync::mpsc;

use crate::CoreError;
use crate::connector::definition;
use crate::control::lock;
use crate::hub::HubInner;

/// How long the files must be quiet before a reload, so an editor's save-by-rename or a burst of
/// writes becomes one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

pub(crate) async fn reload(inner: &Arc<HubInner>) -> Result<ConfigDiff, CoreError> {
    let files = inner.builder.config_files.clone();
    let loaded = tokio::task::spawn_blocking(move || mcp_hub_config::load(&files))
        .await
        .map_err(|e| CoreError::Auth(e.to_string()))?;
    let new = match loaded {
        Ok(c) => Arc::new(c),
        Err(e) => {
            // Keep serving the old config; tell watchers the reload did nothing.
            tracing::error!(target: "mcp_hub::config", "config reload failed, keeping the running config: {e}");
            inner.subscription(
                json!({"type": "config_changed", "isSignificant": false, "error": e.to_string()}),
            );
            return Err(e.into());
        }
    };
    let old = inner.config();
    // A file that was read before and is gone now is a broken config, not an empty one: deleting
    // it (or an editor's save caught half way) must not stop every server it defines.
    if let Some(gone) = new.skipped.iter().find(|p| old.files.contains(p)) {
        let e = CoreError::File {
            path: gone.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the config file was removed; keeping the running config until it is back",
            ),
        };
        tracing::warn!(target: "mcp_hub::config", "config reload skipped: {e}");
        inner.subscription(
            json!({"type": "config_changed", "isSignificant": false, "error": e.to_string()}),
        );
        return Err(e);
    }
    let diff = ConfigDiff::between(&old, &new);
    let significant =
        !diff.added.is_empty() || !diff.removed.is_empty() || !diff.modified.is_empty();
    inner.subscription(
        json!({"type": "config_changed", "newConfig": new.to_json(), "isSignificant": significant}),
    );
    if !significant {
        *lock(&inner.config) = new;
        return Ok(diff);
    }
    let changes = diff.to_json();
    tracing::info!(
        target: "mcp_hub::config",
        "config changed: {} added, {} removed, {} modified, {} unchanged",
        diff.added.len(), diff.removed.len(), diff.modified.len(), diff.unchanged.len()
    );
    inner.subscription(json!({"type": "servers_updating", "changes": changes}));
    *lock(&inner.config) = new.clone();
    for name in &diff.removed {
        let _ = inner.registry.remove(name).await;
    }
    for name in diff.added.iter().chain(diff.modified.iter()) {
        if let Some(sc) = new.server(name) {
            inner.registry.upsert(definition(inner, &new, sc));
        }
    }
    inner.config_epoch.send_modify(|e| *e += 1);
    inner.subscription(json!({"type": "servers_updated", "changes": changes}));
    Ok(diff)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        // A file just replaced by rename may not canonicalise; compare names within the dir.
        _ => a.file_name() == b.file_name(),
    }
}

pub(crate) fn spawn_watcher(inner: &Arc<HubInner>) {
    let files: Vec<PathBuf> = inner.builder.config_files.clone();
    let (tx, mut rx) = mpsc::channel::<()>(16);
    let watched = files.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && ev
                .paths
                .iter()
                .any(|p| watched.iter().any(|f| same_file(p, f)))
            && !matches!(ev.kind, notify::EventKind::Access(_))
        {
            let _ = tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(target: "mcp_hub::config", "cannot watch config files: {e}");
            return;
        }
    };
    // Watch the directories: editors often save by writing a new file and renaming it over the
    // old one, which a watch on the file itself would lose.
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            f.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
            tracing::warn!(target: "mcp_hub::config", "cannot watch {}: {e}", d.display());
        }
    }
    let weak = Arc::downgrade(inner);
    let token = inner.shutdown.clone();
    inner.tasks.spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                r = rx.recv() => if r.is_none() { return },
            }
            // Debounce: wait until the files have been quiet for a moment.
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                    r = rx.recv() => if r.is_none() { return },
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            let _ = reload(&inner).await;
        }
    });
}
