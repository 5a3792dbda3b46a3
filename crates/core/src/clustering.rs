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
}
