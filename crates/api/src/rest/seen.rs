//! What `/api/events` clients last saw of each server's status, so that `servers_updated` is
//! sent for real changes only: a server that fails the same way on every retry is announced
//! once, a crash is announced once it has settled (reconnected or failed), and a change someone
//! already announced (a REST route, a config reload, a hub start) is not announced again.

use std::collections::HashMap;
use std::sync::Mutex;

use mcp_hub_registry::{Registry, ServerStatus};

#[derive(Default)]
struct View {
    /// The settled status each server had when clients were last told to refresh.
    baseline: HashMap<String, ServerStatus>,
    /// Servers that reached another settled status since, not announced yet.
    dirty: Vec<String>,
}

/// The status clients last saw, per server. Cheap: one small map behind a mutex.
#[derive(Default)]
pub(crate) struct SeenStatus {
    view: Mutex<View>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a flush decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Flush {
    /// Announce these now.
    pub(crate) announce: Vec<String>,
    /// Some changes are still settling (or held back): look again later.
    pub(crate) more: bool,
}

impl SeenStatus {
    /// Notes a status a server reached. Returns true if it differs from what clients saw (a
    /// flush should be scheduled). `connecting` is transient and never counts.
    pub(crate) fn note(&self, server: &str, status: ServerStatus) -> bool {
        if status == ServerStatus::Connecting {
            return false;
        }
        let mut v = lock(&self.view);
        if v.baseline.get(server) == Some(&status) {
            return false;
        }
        if !v.dirty.iter().any(|d| d == server) {
            v.dirty.push(server.to_owned());
        }
        true
    }

    /// Clients are about to refresh everything (a `servers_updated`, `hub_state` ready): what
    /// they will see becomes the baseline, and settled servers are no longer pending. A server
    /// still connecting stays pending, to be announced when it settles.
    pub(crate) fn refreshed(&self, registry: &Registry) {
        let snaps = registry.snapshots();
        let mut v = lock(&self.view);
        v.baseline
            .retain(|name, _| snaps.iter().any(|s| &s.name == name));
        for s in &snaps {
            if s.status != ServerStatus::Connecting {
                v.baseline.insert(s.name.clone(), s.status);
                v.dirty.retain(|d| d != &s.name);
            }
        }
        v.dirty.retain(|d| snaps.iter().any(|s| &s.name == d));
    }

    /// Decides which pending servers to announce now: those known, settled, and not `held`
    /// (a REST route is operating on them and announces them itself).
    pub(crate) fn flush(&self, registry: &Registry, held: impl Fn(&str) -> bool) -> Flush {
        let mut v = lock(&self.view);
        let mut out = Flush::default();
        let pending = std::mem::take(&mut v.dirty);
        for name in pending {
            let Some(snap) = registry.snapshot(&name) else {
                continue;
            };
            if snap.status == ServerStatus::Connecting || held(&name) {
                out.more = true;
                v.dirty.push(name);
            } else {
                out.announce.push(name);
            }
        }
        out
    }

    /// Every known server is pending (the event stream fell behind, so changes may be lost).
    pub(crate) fn all_dirty(&self, registry: &Registry) {
        let mut v = lock(&self.view);
        v.baseline.clear();
        for name in registry.names() {
            if !v.dirty.contains(&name) {
                v.dirty.push(name);
            }
        }
    }
}
