//! Cluster mode's operator view: the API's [`mcp_hub_api::Fleet`] seam over `mcp-hub-cluster`'s
//! server statuses and sealed pub/sub (see `docs/SCALE-OUT.md`).

use mcp_hub_api::{FleetMessage, ReplicaServers};
use mcp_hub_cluster::{Cluster, MessageKind};
use tokio::sync::mpsc;

/// The API's view of the other replicas.
pub(crate) struct Fleet(pub(crate) Cluster);

#[async_trait::async_trait]
impl mcp_hub_api::Fleet for Fleet {
    fn replica(&self) -> &str {
        self.0.replica_id()
    }

    fn publish_status(&self, body: String) {
        self.0.publish_status(body);
    }

    async fn statuses(&self) -> Result<Vec<ReplicaServers>, String> {
        let list = self.0.statuses().await.map_err(|e| e.to_string())?;
        Ok(list
            .into_iter()
            .map(|r| ReplicaServers {
                replica: r.replica.id,
                body: r.body,
            })
            .collect())
    }

    fn publish_event(&self, body: &str) {
        self.0.emit_event(body);
    }

    async fn publish_command(&self, body: &str) -> Result<usize, String> {
        self.0.send_command(body).await.map_err(|e| e.to_string())
    }

    fn listen(&self) -> Option<mpsc::Receiver<FleetMessage>> {
        let mut from = self.0.listen()?;
        // A small adapter task: the cluster crate's messages in the API's words.
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(m) = from.recv().await {
                let m = FleetMessage {
                    replica: m.replica,
                    command: m.kind == MessageKind::Command,
                    body: m.body,
                };
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        });
        Some(rx)
    }
}
