//! Cluster mode's seam for operators (see `docs/SCALE-OUT.md`, "Cluster-wide `/api/servers` and
//! `/api/events`"): every replica's server statuses, the events and commands replicas publish to
//! each other. `mcp-hub-core` implements it over `mcp-hub-cluster` (Redis, sealed messages);
//! the API decides what to publish and what an incoming message means. Bodies are JSON texts.

use tokio::sync::mpsc;

/// What another replica published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMessage {
    /// The replica that published it.
    pub replica: String,
    /// A command (`true`) or an event.
    pub command: bool,
    /// The JSON text it published.
    pub body: String,
}

/// One live replica's published statuses, as [`Fleet::statuses`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaServers {
    /// Its id.
    pub replica: String,
    /// What it published (JSON text), `None` before its first publication.
    pub body: Option<String>,
}

/// The replicas of a cluster, seen and steered as one hub.
#[async_trait::async_trait]
pub trait Fleet: Send + Sync + 'static {
    /// This replica's id.
    fn replica(&self) -> &str;

    /// Replaces this replica's published statuses (never waits).
    fn publish_status(&self, body: String);

    /// Every live replica's statuses, this one's included; an error when Redis cannot be read.
    async fn statuses(&self) -> Result<Vec<ReplicaServers>, String>;

    /// Publishes an event to the other replicas (never waits; dropped when Redis lags).
    fn publish_event(&self, body: &str);

    /// Publishes a command; returns how many other replicas received it (not applied yet).
    async fn publish_command(&self, body: &str) -> Result<usize, String>;

    /// The other replicas' events and commands; `Some` on the first call only.
    fn listen(&self) -> Option<mpsc::Receiver<FleetMessage>>;
}
