//! Replica membership: `<ns>:replica:<id>` holds a replica's [`Replica`] as JSON with a TTL that
//! its heartbeat renews; `<ns>:replicas` is the set of ids ever seen live, pruned of the dead
//! when it is read. A replica is live exactly while its key exists.

use std::sync::Arc;

use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};

use crate::{ClusterError, Inner};

/// A replica as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Random, new at every start.
    pub id: String,
    /// Its internal address (`host:port`), where forwarded requests go.
    pub addr: String,
    /// Its process id (for operators).
    pub pid: u32,
    /// When it started, unix milliseconds.
    pub started_ms: u64,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn key(ns: &str, id: &str) -> String {
    format!("{ns}:replica:{id}")
}

fn set_key(ns: &str) -> String {
    format!("{ns}:replicas")
}

/// Writes (or renews) this replica's membership key.
pub(crate) async fn beat(inner: &Inner) -> Result<(), ClusterError> {
    let value = serde_json::to_string(&inner.me).unwrap_or_default();
    let mut conn = inner.conn.clone();
    let ttl_ms = inner.ttl.as_millis() as u64;
    redis::pipe()
        .cmd("SET")
        .arg(key(&inner.ns, &inner.me.id))
        .arg(value)
        .arg("PX")
        .arg(ttl_ms)
        .ignore()
        .sadd(set_key(&inner.ns), &inner.me.id)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))
}

/// Renews the membership key every third of the TTL until the cluster is left. An outage is
/// logged once when it starts and once when it ends, not at every beat.
pub(crate) fn spawn_heartbeat(inner: Arc<Inner>) {
    tokio::spawn(async move {
        let period = inner.ttl / 3;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = inner.stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            match beat(&inner).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(target: "mcp_hub::cluster", replica = %inner.me.id, "heartbeat restored");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(target: "mcp_hub::cluster", replica = %inner.me.id, "heartbeat failed: {e}; other replicas will treat this one as gone once its TTL passes");
                }
                Err(_) => {}
            }
        }
    });
}

/// Deletes this replica's membership.
pub(crate) async fn remove(inner: &Inner) -> Result<(), ClusterError> {
    let mut conn = inner.conn.clone();
    redis::pipe()
        .del(key(&inner.ns, &inner.me.id))
        .ignore()
        .srem(set_key(&inner.ns), &inner.me.id)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))
}

/// The replica `id`, if live.
pub(crate) async fn get(inner: &Inner, id: &str) -> Result<Option<Replica>, ClusterError> {
    let mut conn = inner.conn.clone();
    let k = key(&inner.ns, id);
    let raw: Option<String> = conn
        .get(&k)
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))?;
    raw.map(|r| parse(&k, &r)).transpose()
}

fn parse(k: &str, raw: &str) -> Result<Replica, ClusterError> {
    serde_json::from_str(raw).map_err(|e| ClusterError::Corrupt {
        key: k.to_owned(),
        reason: e.to_string(),
    })
}

/// Every live replica, in id order. Ids whose key expired are dropped from the set.
pub(crate) async fn live(inner: &Inner) -> Result<Vec<Replica>, ClusterError> {
    let mut conn = inner.conn.clone();
    let ids: Vec<String> = conn
        .smembers(set_key(&inner.ns))
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids.iter().map(|id| key(&inner.ns, id)).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))?;
    let mut out = Vec::new();
    let mut dead = Vec::new();
    for ((id, k), v) in ids.iter().zip(&keys).zip(values) {
        match v {
            Some(raw) => out.push(parse(k, &raw)?),
            None => dead.push(id.clone()),
        }
    }
    if !dead.is_empty() {
        let _: Result<(), _> = conn.srem(set_key(&inner.ns), &dead).await;
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
