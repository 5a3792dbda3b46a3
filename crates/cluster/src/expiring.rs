//! Shared values that live a while and are used once, under `<ns>:shared:<name>`: the OAuth
//! authorization code flow's pending state, written by the replica that started the flow and
//! taken by whichever replica the browser's callback reaches. Taking is one script (read and
//! delete), so two callbacks with the same `state` on two replicas cannot both have it.

use std::time::Duration;

use crate::{Cluster, ClusterError};

/// Reads and deletes in one step (any Redis version; `GETDEL` needs 6.2).
const TAKE: &str =
    r#"local v = redis.call("GET", KEYS[1]) if v then redis.call("DEL", KEYS[1]) end return v"#;

impl Cluster {
    /// Sets the shared value `name` for `ttl` (then Redis drops it).
    pub async fn shared_set_for(
        &self,
        name: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), ClusterError> {
        let mut conn = self.inner.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}:shared:{name}", self.inner.ns))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| ClusterError::redis(&self.inner.shown_url, e))
    }

    /// Takes the shared value `name`: returns it and deletes it, atomically. `None` when it
    /// was never set, expired, or was taken already (by any replica).
    pub async fn shared_take(&self, name: &str) -> Result<Option<String>, ClusterError> {
        let mut conn = self.inner.conn.clone();
        redis::Script::new(TAKE)
            .key(format!("{}:shared:{name}", self.inner.ns))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| ClusterError::redis(&self.inner.shown_url, e))
    }
}
