//! Shared values and locks under `<ns>:shared:<name>` and `<ns>:lock:<name>`: what the replicas
//! keep in one place (OAuth tokens) and the lease that lets only one of them change a value at
//! a time (a token refresh). A lock is `SET NX PX` with a random holder token; it is released
//! only by its holder (compare-and-delete in one script), and expires with its lease if the
//! holder dies.

use std::time::{Duration, Instant};

use redis::AsyncCommands as _;

use crate::{Cluster, ClusterError, secret};

/// Deletes the lock only if it still holds this holder's token (a lease that expired and was
/// taken by another replica is not theirs to delete).
const RELEASE: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

/// A held lock; release it with [`Cluster::unlock`]. Dropped unreleased, it expires with its
/// lease.
#[derive(Debug)]
pub struct Lock {
    key: String,
    holder: String,
}

impl Cluster {
    /// The shared value `name`, if any.
    pub async fn shared_get(&self, name: &str) -> Result<Option<String>, ClusterError> {
        let mut conn = self.inner.conn.clone();
        conn.get(format!("{}:shared:{name}", self.inner.ns))
            .await
            .map_err(|e| ClusterError::redis(&self.inner.shown_url, e))
    }

    /// Sets the shared value `name`.
    pub async fn shared_set(&self, name: &str, value: &str) -> Result<(), ClusterError> {
        let mut conn = self.inner.conn.clone();
        conn.set::<_, _, ()>(format!("{}:shared:{name}", self.inner.ns), value)
            .await
            .map_err(|e| ClusterError::redis(&self.inner.shown_url, e))
    }

    /// Deletes the shared value `name`.
    pub async fn shared_delete(&self, name: &str) -> Result<(), ClusterError> {
        let mut conn = self.inner.conn.clone();
        conn.del::<_, ()>(format!("{}:shared:{name}", self.inner.ns))
            .await
            .map_err(|e| ClusterError::redis(&self.inner.shown_url, e))
    }

    /// Takes the cluster-wide lock `name` for at most `lease`, waiting for it at most `wait`
    /// (polling every 25 ms). `Ok(None)`: still held by another replica after `wait`.
    pub async fn lock(
        &self,
        name: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Lock>, ClusterError> {
        let key = format!("{}:lock:{name}", self.inner.ns);
        let holder = secret::random_hex(16)?;
        let deadline = Instant::now() + wait;
        let mut conn = self.inner.conn.clone();
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&holder)
                .arg("NX")
                .arg("PX")
                .arg(lease.as_millis().max(1) as u64)
                .query_async(&mut conn)
                .await
                .map_err(|e| ClusterError::redis(&self.inner.shown_url, e))?;
            if taken.is_some() {
                return Ok(Some(Lock { key, holder }));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Releases a lock this replica holds. `Ok(false)`: its lease had expired (and another
    /// replica may hold the lock now), so nothing was deleted.
    pub async fn unlock(&self, lock: Lock) -> Result<bool, ClusterError> {
        let mut conn = self.inner.conn.clone();
        let deleted: i64 = redis::Script::new(RELEASE)
            .key(&lock.key)
            .arg(&lock.holder)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| ClusterError::redis(&self.inner.shown_url, e))?;
        Ok(deleted == 1)
    }
}
