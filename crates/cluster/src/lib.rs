//! Cluster mode of mcp-hub: several replicas behind a load balancer, sharing through Redis what
//! must be shared (see `docs/SCALE-OUT.md`).
//!
//! Owns: the Redis connection, replica membership (a key per replica with a TTL, renewed by a
//! heartbeat task, holding the replica's internal address), the session directory (which replica
//! owns each handshake-era session), the shared secret that authenticates requests one
//! replica forwards to another, and what makes the replicas one hub for operators: each
//! replica's server statuses (`status`) and the events and commands they publish to each other
//! (`bus`), sealed with a key derived from the shared secret (`seal`).
//!
//! Must not know: HTTP, MCP, sessions' content. The API layer decides what to forward and does
//! the forwarding; `mcp-hub-core` connects the two. Depends on no other crate of the workspace.
//!
//! Never logs the shared secret or the Redis URL's password.

mod bus;
mod directory;
mod error;
mod expiring;
mod membership;
mod seal;
mod secret;
mod shared;
mod status;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

pub use bus::{MAX_AGE_MS, Message, MessageKind};
pub use directory::Location;
pub use error::ClusterError;
pub use membership::Replica;
pub use secret::SharedSecret;
pub use shared::Lock;
pub use status::ReplicaStatus;

/// How a replica joins its cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS (a password is never
    /// logged).
    pub url: String,
    /// Prefix of every key, so several clusters can share one Redis.
    pub namespace: String,
    /// The address other replicas forward requests to (`host:port`).
    pub advertise: String,
    /// Authenticates forwarded requests; the same on every replica.
    pub secret: SharedSecret,
    /// How long a replica counts as live after its last heartbeat. Heartbeats go every third.
    pub ttl: Duration,
    /// With a `rediss://` URL: the CA (PEM) that signed Redis' certificate, trusted instead of
    /// the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl ClusterConfig {
    /// A config with the default namespace (`mcp-hub`) and TTL (3 s).
    pub fn new(url: impl Into<String>, advertise: impl Into<String>, secret: SharedSecret) -> Self {
        ClusterConfig {
            url: url.into(),
            namespace: "mcp-hub".into(),
            advertise: advertise.into(),
            secret,
            ttl: Duration::from_secs(3),
            ca_file: None,
        }
    }
}

/// This replica's membership of the cluster. Cheap to clone; the heartbeat runs until
/// [`leave`](Cluster::leave) (or until every clone is dropped and the runtime ends).
#[derive(Clone, Debug)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    ns: String,
    me: Replica,
    secret: SharedSecret,
    ttl: Duration,
    stop: CancellationToken,
    /// Where the URL points, without credentials, for messages.
    shown_url: String,
    /// Events and commands between replicas (pub/sub).
    bus: bus::Bus,
    /// This replica's server statuses as the others read them.
    status: status::StatusSlot,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("redis", &self.shown_url)
            .field("namespace", &self.ns)
            .field("replica", &self.me.id)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to Redis, writes this replica's membership key and starts its heartbeat. Fails
    /// when Redis cannot be reached now: a replica that starts without its cluster would hand
    /// out sessions nobody else can find.
    pub async fn join(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        let shown_url = shown_url(&config.url);
        if config.ttl < Duration::from_millis(300) {
            return Err(ClusterError::Config(
                "the heartbeat TTL must be at least 300 ms".into(),
            ));
        }
        let client = tls::client(&config.url, config.ca_file.as_deref(), &shown_url)?;
        // Bounded waits: a stuck Redis must not hold a request forever.
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = client
            .get_connection_manager_with_config(cfg)
            .await
            .map_err(|e| ClusterError::redis(&shown_url, e))?;
        let me = Replica {
            id: secret::random_hex(16)?,
            addr: config.advertise,
            pid: std::process::id(),
            started_ms: membership::now_ms(),
        };
        let bus = bus::Bus::new(client, &config.secret);
        let inner = Arc::new(Inner {
            conn,
            ns: config.namespace,
            me,
            secret: config.secret,
            ttl: config.ttl,
            stop: CancellationToken::new(),
            shown_url,
            bus,
            status: Default::default(),
        });
        membership::beat(&inner).await?;
        membership::spawn_heartbeat(inner.clone());
        tracing::info!(target: "mcp_hub::cluster", replica = %inner.me.id, redis = %inner.shown_url, namespace = %inner.ns, advertise = %inner.me.addr, "joined the cluster");
        Ok(Cluster { inner })
    }

    /// This replica's id (random, new at every start).
    pub fn replica_id(&self) -> &str {
        &self.inner.me.id
    }

    /// This replica as the others see it.
    pub fn me(&self) -> &Replica {
        &self.inner.me
    }

    /// The secret forwarded requests carry.
    pub fn secret(&self) -> &SharedSecret {
        &self.inner.secret
    }

    /// The live replicas, this one included.
    pub async fn replicas(&self) -> Result<Vec<Replica>, ClusterError> {
        membership::live(&self.inner).await
    }

    /// The replica `id` if it is live.
    pub async fn replica(&self, id: &str) -> Result<Option<Replica>, ClusterError> {
        membership::get(&self.inner, id).await
    }

    /// Records that this replica owns `session`. Call before the session's id reaches its client.
    pub async fn claim_session(&self, session: &str) -> Result<(), ClusterError> {
        directory::claim(&self.inner, session).await
    }

    /// Forgets `session` (it ended here).
    pub async fn release_session(&self, session: &str) -> Result<(), ClusterError> {
        directory::release(&self.inner, session).await
    }

    /// Where `session` lives.
    pub async fn locate_session(&self, session: &str) -> Result<Location, ClusterError> {
        directory::locate(&self.inner, session).await
    }

    /// Leaves the cluster: stops the heartbeat and deletes the membership key, so the others
    /// answer this replica's sessions with 404 at once instead of after the TTL.
    pub async fn leave(&self) {
        self.inner.stop.cancel();
        if let Err(e) = membership::remove(&self.inner).await {
            tracing::warn!(target: "mcp_hub::cluster", "could not delete this replica's membership key: {e}");
        }
        let _ = status::remove(&self.inner).await;
    }
}

/// `redis://user:pass@host:port/db` → `redis://host:port/db`.
fn shown_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", u.scheme(), u.path())
        }
        Err(_) => "<unparseable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_shown_without_credentials() {
        assert_eq!(
            shown_url("redis://admin:hunter2@10.0.0.1:6380/2"),
            "redis://10.0.0.1:6380/2"
        );
        assert_eq!(shown_url("redis://:pw@localhost"), "redis://localhost");
        assert_eq!(shown_url("not a url"), "<unparseable URL>");
    }
}
