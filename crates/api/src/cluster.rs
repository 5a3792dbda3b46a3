//! Cluster mode's seam in the HTTP layer (see `docs/SCALE-OUT.md`): which replica owns a
//! handshake-era session, and the secret that marks a request one replica forwarded to another.
//! `mcp-hub-core` implements it over `mcp-hub-cluster` (Redis); the API never knows Redis.

/// Where a session this replica does not hold lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Another live replica, at this internal address (`host:port`).
    Replica(String),
    /// Nowhere (never known, ended, or its replica is gone): the client must re-initialize.
    Gone,
}

/// The session directory and forwarding secret of a cluster.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// Records that this replica owns `session`, before its id reaches the client. An error
    /// refuses the session (503): other replicas could not find it.
    async fn claim(&self, session: &str) -> Result<(), String>;

    /// Forgets a session that ended here.
    async fn release(&self, session: &str);

    /// Where `session` lives; an error when the directory cannot be read (503).
    async fn locate(&self, session: &str) -> Result<Owner, String>;

    /// Whether `value` is the cluster's secret (constant time).
    fn authentic(&self, value: &[u8]) -> bool;

    /// The secret forwarded requests carry. Never logged.
    fn secret(&self) -> &str;

    /// This replica's id: stamped, in clear, beside the seal of each `requestState` it issues,
    /// so a retry that reaches another replica can be sent back here.
    fn replica_id(&self) -> &str;

    /// The internal address (`host:port`) of the replica `id` while it is live, `None` once it
    /// is gone; an error when membership cannot be read (503).
    async fn replica_addr(&self, id: &str) -> Result<Option<String>, String>;
}
