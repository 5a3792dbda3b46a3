//! The seam through which the replicas of a cluster share OAuth tokens (see
//! `docs/SCALE-OUT.md`): one copy of each server's tokens, and a cluster-wide lock so one
//! replica refreshes them while the others wait and use the result; and the authorization code
//! flows waiting for their callback, so the callback may reach any replica. `mcp-hub-core` implements
//! it over the cluster's Redis; this crate never knows Redis.

/// A held cluster-wide lock.
#[async_trait::async_trait]
pub trait SharedLock: Send {
    /// Releases it (a lock whose lease expired is left to whoever holds it now).
    async fn release(self: Box<Self>);
}

/// Tokens shared by the replicas of a cluster, as the JSON the token store writes.
#[async_trait::async_trait]
pub trait SharedTokens: Send + Sync + std::fmt::Debug + 'static {
    /// The tokens stored under `key` (a server's canonical URL).
    async fn get(&self, key: &str) -> Result<Option<String>, String>;

    /// Replaces the tokens stored under `key`.
    async fn put(&self, key: &str, json: &str) -> Result<(), String>;

    /// Forgets the tokens stored under `key`.
    async fn delete(&self, key: &str) -> Result<(), String>;

    /// Takes the cluster-wide lock of `key`, waiting while another replica holds it (bounded:
    /// an error when it cannot be had).
    async fn lock(&self, key: &str) -> Result<Box<dyn SharedLock>, String>;

    /// Keeps `json` under `key` for `ttl`: an authorization code flow waiting for its callback
    /// (`key` is `pending:<hash of its state>`, never a server URL). [`get`](Self::get) reads it.
    async fn put_for(&self, key: &str, json: &str, ttl: std::time::Duration) -> Result<(), String>;

    /// Reads and deletes, atomically, what is under `key`: of two replicas taking it at once,
    /// one gets it.
    async fn take(&self, key: &str) -> Result<Option<String>, String>;
}
