//! Each replica's server statuses under `<ns>:servers:<replica>` (sealed JSON, with the
//! membership TTL): written when they change and renewed every third of the TTL, deleted when
//! the replica leaves. A dead replica's statuses vanish with its TTL, like its membership. The
//! cluster view is the union of the live replicas' keys, never a vote.

use std::sync::{Arc, Mutex};

use redis::AsyncCommands as _;
use tokio::sync::Notify;

use crate::seal::Envelope;
use crate::{Cluster, ClusterError, Inner, bus, membership};

fn key(ns: &str, id: &str) -> String {
    format!("{ns}:servers:{id}")
}

/// What this replica last said about its servers, and the task that keeps it in Redis.
#[derive(Default)]
pub(crate) struct StatusSlot {
    latest: Mutex<Option<String>>,
    changed: Notify,
    started: std::sync::OnceLock<()>,
}

/// One live replica's published statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The replica.
    pub replica: crate::Replica,
    /// What it published (JSON text), or `None` if it has not published yet (or what is there
    /// does not carry this cluster's seal).
    pub body: Option<String>,
}

impl Cluster {
    /// Sets this replica's statuses (a JSON text) and writes them soon; they are renewed with
    /// every heartbeat until the cluster is left. Never waits.
    pub fn publish_status(&self, body: String) {
        let slot = &self.inner.status;
        *slot.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
        slot.started
            .get_or_init(|| spawn_writer(self.inner.clone()));
        slot.changed.notify_one();
    }

    /// Every live replica (this one included, in id order) with what it published.
    pub async fn statuses(&self) -> Result<Vec<ReplicaStatus>, ClusterError> {
        let inner = &self.inner;
        let live = membership::live(inner).await?;
        if live.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = live.iter().map(|r| key(&inner.ns, &r.id)).collect();
        let mut conn = inner.conn.clone();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| ClusterError::redis(&inner.shown_url, e))?;
        Ok(live
            .into_iter()
            .zip(values)
            .map(|(replica, raw)| {
                let body = raw.and_then(|raw| open(inner, &replica.id, &raw));
                ReplicaStatus { replica, body }
            })
            .collect())
    }
}

/// The body, if the value is sealed by this cluster and written by `id` itself.
fn open(inner: &Inner, id: &str, raw: &str) -> Option<String> {
    let json = inner.bus.sealer.open(raw)?;
    let env: Envelope<'_> = serde_json::from_str(json).ok()?;
    (env.replica == id && env.kind == "status").then(|| env.body.get().to_owned())
}

async fn write(inner: &Inner, body: &str) -> Result<(), ClusterError> {
    let sealed = bus::envelope(inner, "status", body)?;
    let mut conn = inner.conn.clone();
    redis::cmd("SET")
        .arg(key(&inner.ns, &inner.me.id))
        .arg(sealed)
        .arg("PX")
        .arg(inner.ttl.as_millis() as u64)
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))
}

fn spawn_writer(inner: Arc<Inner>) {
    tokio::spawn(async move {
        let period = inner.ttl / 3;
        let mut failing = false;
        loop {
            let body = inner
                .status
                .latest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(body) = body {
                match write(&inner, &body).await {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(target: "mcp_hub::cluster", "cannot publish this replica's server statuses: {e}");
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                _ = inner.stop.cancelled() => return,
                _ = inner.status.changed.notified() => {}
                _ = tokio::time::sleep(period) => {}
            }
        }
    });
}

/// Deletes this replica's statuses (it leaves).
pub(crate) async fn remove(inner: &Inner) -> Result<(), ClusterError> {
    let mut conn = inner.conn.clone();
    conn.del::<_, ()>(key(&inner.ns, &inner.me.id))
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))
}
