//! Cluster mode's wiring: the API's [`mcp_hub_api::Cluster`] seam over `mcp-hub-cluster`'s Redis
//! membership and session directory (see `docs/SCALE-OUT.md`).

use mcp_hub_api::Owner;
use mcp_hub_cluster::{Cluster, Location};

/// The API's view of this replica's cluster.
pub(crate) struct Seam(pub(crate) Cluster);

#[async_trait::async_trait]
impl mcp_hub_api::Cluster for Seam {
    async fn claim(&self, session: &str) -> Result<(), String> {
        self.0
            .claim_session(session)
            .await
            .map_err(|e| e.to_string())
    }

    async fn release(&self, session: &str) {
        if let Err(e) = self.0.release_session(session).await {
            tracing::debug!(target: "mcp_hub::cluster", "could not release a session in the directory: {e}");
        }
    }

    async fn locate(&self, session: &str) -> Result<Owner, String> {
        match self.0.locate_session(session).await {
            Ok(Location::Remote(r)) => Ok(Owner::Replica(r.addr)),
            // Ours per the directory but not in the table: it ended here.
            Ok(Location::Here | Location::Gone) => Ok(Owner::Gone),
            Err(e) => Err(e.to_string()),
        }
    }

    fn authentic(&self, value: &[u8]) -> bool {
        self.0.secret().matches(value)
    }

    fn secret(&self) -> &str {
        self.0.secret().expose()
    }

    fn replica_id(&self) -> &str {
        self.0.replica_id()
    }

    async fn replica_addr(&self, id: &str) -> Result<Option<String>, String> {
        match self.0.replica(id).await {
            Ok(r) => Ok(r.map(|r| r.addr)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// How long one replica may hold a token's refresh lock: longer than a token request can take
/// (the auth crate's HTTP timeout), so a live holder never loses it; a dead one frees it then.
const REFRESH_LEASE: std::time::Duration = std::time::Duration::from_secs(45);

/// The auth crate's shared token store over the cluster's Redis: `<ns>:shared:oauth:<url>`,
/// refreshes under `<ns>:lock:oauth:<url>`.
#[derive(Debug)]
pub(crate) struct Tokens(pub(crate) Cluster);

struct Held(Cluster, mcp_hub_cluster::Lock);

#[async_trait::async_trait]
impl mcp_hub_auth::SharedLock for Held {
    async fn release(self: Box<Self>) {
        let Held(cluster, lock) = *self;
        if let Err(e) = cluster.unlock(lock).await {
            tracing::warn!(target: "mcp_hub::cluster", "could not release a token refresh lock (it expires with its lease): {e}");
        }
    }
}

#[async_trait::async_trait]
impl mcp_hub_auth::SharedTokens for Tokens {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        self.0
            .shared_get(&format!("oauth:{key}"))
            .await
            .map_err(|e| e.to_string())
    }

    async fn put(&self, key: &str, json: &str) -> Result<(), String> {
        self.0
            .shared_set(&format!("oauth:{key}"), json)
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        self.0
            .shared_delete(&format!("oauth:{key}"))
            .await
            .map_err(|e| e.to_string())
    }

    async fn lock(&self, key: &str) -> Result<Box<dyn mcp_hub_auth::SharedLock>, String> {
        match self
            .0
            .lock(&format!("oauth:{key}"), REFRESH_LEASE, REFRESH_LEASE)
            .await
        {
            Ok(Some(lock)) => Ok(Box::new(Held(self.0.clone(), lock))),
            Ok(None) => Err("another replica held the token's refresh lock for too long".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn put_for(&self, key: &str, json: &str, ttl: std::time::Duration) -> Result<(), String> {
        self.0
            .shared_set_for(&format!("oauth:{key}"), json, ttl)
            .await
            .map_err(|e| e.to_string())
    }

    async fn take(&self, key: &str) -> Result<Option<String>, String> {
        self.0
            .shared_take(&format!("oauth:{key}"))
            .await
            .map_err(|e| e.to_string())
    }
}
