//! `dev` mode: restart a stdio server when files it is built from change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{RecursiveMode, Watcher};
use serde_json::json;
use tokio::sync::mpsc;

use crate::inner::HubInner;

const DEV_DEBOUNCE: Duration = Duration::from_millis(500);

struct DevTarget {
    server: String,
    cwd: PathBuf,
    globs: GlobSet,
}

fn targets(inner: &HubInner) -> Vec<DevTarget> {
    let config = inner.config();
    config
        .servers
        .values()
        .filter_map(|sc| {
            let dev = sc.dev.as_ref().filter(|d| d.enabled && !sc.disabled)?;
            let mut b = GlobSetBuilder::new();
            for pattern in &dev.watch {
                match Glob::new(pattern) {
                    Ok(g) => {
                        b.add(g);
                    }
                    Err(e) => tracing::warn!(target: "mcp_hub::dev", server = %sc.name, "bad dev.watch glob {pattern:?}: {e}"),
                }
            }
            let globs = b.build().ok()?;
            Some(DevTarget { server: sc.name.clone(), cwd: dev.cwd.clone(), globs })
        })
        .collect()
}

pub(crate) fn spawn_dev_watchers(inner: &Arc<HubInner>) {
    let weak = Arc::downgrade(inner);
    let token = inner.shutdown.clone();
    let mut epoch = inner.config_epoch.subscribe();
    inner.tasks.spawn(async move {
        loop {
            let Some(hub) = weak.upgrade() else { return };
            let targets = Arc::new(targets(&hub));
            drop(hub);
            let (tx, mut rx) = mpsc::channel::<(usize, PathBuf)>(256);
            let mut watchers = Vec::new();
            for (i, t) in targets.iter().enumerate() {
                let tx = tx.clone();
                let cwd = t.cwd.clone();
                let globs = t.globs.clone();
                let w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                    let Ok(ev) = res else { return };
                    if matches!(ev.kind, notify::EventKind::Access(_)) {
                        return;
                    }
                    for p in ev.paths {
                        if let Ok(rel) = p.strip_prefix(&cwd)
                            && globs.is_match(rel)
                        {
                            let _ = tx.try_send((i, rel.to_path_buf()));
                        }
                    }
                });
                match w {
                    Ok(mut w) => match w.watch(&t.cwd, RecursiveMode::Recursive) {
                        Ok(()) => watchers.push(w),
                        Err(e) => tracing::warn!(target: "mcp_hub::dev", server = %t.server, "cannot watch {}: {e}", t.cwd.display()),
                    },
                    Err(e) => tracing::warn!(target: "mcp_hub::dev", "cannot create a watcher: {e}"),
                }
            }
            drop(tx);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    r = epoch.changed() => { if r.is_err() { return } break; }
                    first = rx.recv(), if !watchers.is_empty() => {
                        let Some(first) = first else { break };
                        let mut hits = vec![first];
                        let deadline = tokio::time::sleep(DEV_DEBOUNCE);
                        tokio::pin!(deadline);
                        loop {
                            tokio::select! {
                                _ = &mut deadline => break,
                                more = rx.recv() => match more { Some(m) => hits.push(m), None => break },
                            }
                        }
                        let Some(hub) = weak.upgrade() else { return };
                        let mut by_server: Vec<(usize, Vec<String>)> = Vec::new();
                        for (i, f) in hits {
                            let f = f.display().to_string();
                            match by_server.iter_mut().find(|(j, _)| *j == i) {
                                Some((_, files)) => if !files.contains(&f) { files.push(f) },
                                None => by_server.push((i, vec![f])),
                            }
                        }
                        for (i, files) in by_server {
                            let name = targets[i].server.clone();
                            tracing::info!(target: "mcp_hub::dev", server = %name, "files changed, restarting: {}", files.join(", "));
                            hub.subscription(json!({"type": "servers_updating", "changes": {"modified": [name]}, "reason": "dev_file_change", "files": files}));
                            let result = hub.registry.restart(&name).await;
                            let mut payload = json!({"type": "servers_updated", "changes": {"modified": [name]}, "reason": "dev_file_change", "files": files});
                            match result {
                                Ok(s) if s.error.is_none() => {
                                    payload["newCapabilities"] = json!({"tools": s.tools.values(), "resources": s.resources.values(), "resourceTemplates": s.resource_templates.values(), "prompts": s.prompts.values()});
                                }
                                Ok(s) => payload["error"] = json!(s.error),
                                Err(e) => payload["error"] = json!(e.to_string()),
                            }
                            hub.subscription(payload);
                        }
                    }
                }
            }
        }
    });
}
