//! Hot reload: watch the config files, diff, and apply only what changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcp_hub_config::{Config, ConfigDiff};
use mcp_hub_registry::{Registry, ServerStatus};
use notify::{RecursiveMode, Watcher};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::CoreError;
use crate::connector::definition;
use crate::inner::{HubInner, lock};

/// How long the files must be quiet before a reload, so an editor's save-by-rename or a burst of
/// writes becomes one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Whether two loads of the config say exactly the same thing (not only the same significant
/// fields): then a file event changed nothing, e.g. it was the hub's own write of `disabled`,
/// which is applied in memory before the file is written.
fn same_content(a: &Config, b: &Config) -> bool {
    a.servers == b.servers && a.extra == b.extra && a.inputs == b.inputs && a.profiles == b.profiles
}

pub(crate) async fn reload(inner: &Arc<HubInner>) -> Result<ConfigDiff, CoreError> {
    let r = load_and_apply(inner).await;
    if let Some(api) = crate::inner::lock(&inner.api).as_ref() {
        api.metrics().config_reload(r.is_ok());
    }
    r
}

async fn load_and_apply(inner: &Arc<HubInner>) -> Result<ConfigDiff, CoreError> {
    let guard = inner.config_lock.lock().await;
    let files = inner.builder.config_files.clone();
    let loaded = tokio::task::spawn_blocking(move || mcp_hub_config::load(&files))
        .await
        .map_err(|e| CoreError::Auth(e.to_string()))?;
    let loaded = match loaded {
        Ok(c) => c,
        Err(e) => {
            // Keep serving the old config; tell watchers the reload did nothing.
            tracing::error!(target: "mcp_hub::config", code = "CONFIG_RELOAD_ERROR", error = %e,
                "Error reloading config after change: {e}; keeping the running config");
            inner.subscription(
                json!({"type": "config_changed", "isSignificant": false, "error": e.to_string()}),
            );
            return Err(e.into());
        }
    };
    let old = inner.config();
    // A file that was read before and is gone now is a broken config, not an empty one: deleting
    // it (or an editor's save caught half way) must not stop every server it defines.
    if let Some(gone) = loaded.skipped.iter().find(|p| old.files.contains(p)) {
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
    let new = {
        let mut layers = lock(&inner.layers);
        layers.files = loaded;
        Arc::new(layers.merged())
    };
    Ok(apply(inner, guard, new).await)
}

/// Makes `new` the running config and brings the servers in line with it: only added, removed
/// and changed servers are started, stopped or restarted, with `config_changed`,
/// `servers_updating` and (once they settled) `servers_updated` on `/api/events`. A reload and
/// every run-time change of a server go through here. Called under the config lock (`guard`),
/// which is released before waiting for the servers to settle.
pub(crate) async fn apply(
    inner: &Arc<HubInner>,
    guard: tokio::sync::MutexGuard<'_, ()>,
    new: Arc<Config>,
) -> ConfigDiff {
    let old = inner.config();
    let diff = ConfigDiff::between(&old, &new);
    if same_content(&old, &new) {
        *lock(&inner.config) = new;
        return diff;
    }
    // Tool filters and profiles change what clients see, never what runs: applied in place to
    // the servers that stay (the others get them with their new definition).
    apply_views(inner, &new);
    let significant = diff.is_significant();
    inner.subscription(
        json!({"type": "config_changed", "newConfig": new.to_json(), "isSignificant": significant}),
    );
    if !significant {
        *lock(&inner.config) = new;
        return diff;
    }
    let changes = diff.to_json();
    tracing::info!(
        target: "mcp_hub::config",
        "Config changes processed: {} added, {} removed, {} modified, {} unchanged",
        diff.added.len(), diff.removed.len(), diff.modified.len(), diff.unchanged.len()
    );
    inner.subscription(json!({"type": "servers_updating", "changes": changes}));
    *lock(&inner.config) = new.clone();
    let removed = diff.removed.iter().map(|name| inner.registry.remove(name));
    futures::future::join_all(removed).await;
    // A server whose only change is `disabled` is stopped or started in place, as the Node hub
    // does; anything else gets a new definition.
    let mut toggled = Vec::new();
    let mut replaced = Vec::new();
    for name in diff.added.iter().chain(diff.modified.iter()) {
        let Some(sc) = new.server(name) else { continue };
        if diff
            .details
            .get(name)
            .is_some_and(|d| d.only_disabled_changed())
            && inner.registry.snapshot(name).is_some()
        {
            toggled.push((name.clone(), sc.disabled));
        } else {
            inner.registry.upsert(definition(inner, &new, sc));
            replaced.push(name.clone());
        }
    }
    inner.config_epoch.send_modify(|e| *e += 1);
    drop(guard);

    // As in the Node hub, `servers_updated` comes once the affected servers have connected or
    // failed, so a client that refreshes on it sees where they ended up.
    let bound = inner.builder.registry.initialize_timeout + Duration::from_secs(5);
    let registry = &inner.registry;
    let toggles = toggled.iter().map(|(name, disabled)| async move {
        let _ = if *disabled {
            registry.stop(name, true).await
        } else {
            registry.start(name).await
        };
    });
    // A started server is settled once it connected or failed, like a replaced one.
    let mut affected = replaced;
    affected.extend(toggled.iter().map(|(name, _)| name.clone()));
    let applied = async {
        futures::future::join_all(toggles).await;
        settled(registry, &affected).await;
    };
    tokio::select! {
        _ = inner.shutdown.cancelled() => {}
        _ = tokio::time::timeout(bound, applied) => {}
    }
    inner.subscription(json!({"type": "servers_updated", "changes": changes}));
    diff
}

/// Applies every server's `tools` filter and the profiles of `config` without restarting
/// anything.
pub(crate) fn apply_views(inner: &HubInner, config: &Config) {
    for (name, sc) in &config.servers {
        inner
            .registry
            .set_tool_filter(name, crate::connector::tool_filter(&sc.tools));
    }
    inner.registry.set_profiles(profiles_of(config));
}

/// The config's profiles as the registry's. The config crate compiled every pattern already; a
/// profile that still fails is left out (its endpoint answers 404) rather than shown unfiltered.
pub(crate) fn profiles_of(config: &Config) -> Vec<mcp_hub_registry::Profile> {
    use mcp_hub_registry::{Profile, ProfileMode};
    config
        .profiles
        .values()
        .filter_map(|p| {
            let mode = match p.mode {
                mcp_hub_config::ProfileMode::Full => ProfileMode::Full,
                mcp_hub_config::ProfileMode::Search => ProfileMode::Search,
            };
            let servers = p
                .servers
                .iter()
                .map(|s| (s.pattern.clone(), crate::connector::tool_filter(&s.tools)))
                .collect();
            Profile::new(&p.name, p.description.clone(), mode, servers)
                .inspect_err(|e| {
                    tracing::error!(target: "mcp_hub::config", profile = %p.name, "profile left out: {e}");
                })
                .ok()
        })
        .collect()
}

/// Waits until none of `names` is connecting any more (connected, failed, or disabled).
async fn settled(registry: &Registry, names: &[String]) {
    // Subscribed before looking, so a change between the look and the wait is not missed.
    let mut events = registry.events();
    loop {
        let connecting = names.iter().any(|n| {
            registry
                .snapshot(n)
                .is_some_and(|s| s.status == ServerStatus::Connecting)
        });
        if !connecting {
            return;
        }
        match events.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
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
            tracing::error!(target: "mcp_hub::config", code = "CONFIG_WATCH_ERROR", "cannot watch config files: {e}");
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
