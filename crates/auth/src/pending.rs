//! Cluster mode: the authorization code flow's pending state (the PKCE verifier, the client,
//! the redirect URI the code is bound to, what to ask for) in the shared store for the flow's
//! lifetime, so the browser's callback may reach any replica, not only the one that started
//! the flow. Keyed by the SHA-256 of `state` (the state itself, a secret, never names a key)
//! and taken once, cluster-wide, by the first callback that presents it.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::AuthError;
use crate::authcode::{PENDING_LIFETIME, PendingFlow};
use crate::client::Client;
use crate::discovery::AuthServerMetadata;
use crate::jose::sha256_b64;
use crate::manager::Inner;
use crate::secret::Secret;
use crate::store::StoredClient;

/// A pending flow as the replicas share it.
#[derive(Serialize, Deserialize)]
struct SharedFlow {
    server_name: String,
    server_key: String,
    metadata: AuthServerMetadata,
    verifier: Secret,
    client_id: String,
    client_secret: Option<Secret>,
    auth_method: String,
    /// The dynamic registration the client came from, for the replica that completes the flow
    /// (it refreshes with it later, and shares it with the tokens).
    registration: Option<StoredClient>,
    resource: String,
    scopes: Option<Vec<String>>,
    dpop: bool,
    redirect_uri: String,
    /// Unix milliseconds.
    expires_ms: u64,
}

fn key(state: &str) -> String {
    format!("pending:{}", sha256_b64(state))
}

impl Inner {
    /// Shares a flow just started (in cluster mode; else nothing to do). An error fails the
    /// start: a callback reaching another replica would not find the flow.
    pub(crate) async fn share_pending(&self, flow: &PendingFlow) -> Result<(), AuthError> {
        let Some(shared) = self.store.shared() else {
            return Ok(());
        };
        let registration = self.store.read(|d| {
            d.clients
                .iter()
                .find(|c| c.issuer == flow.metadata.issuer && c.client_id == flow.client.id)
                .cloned()
        });
        let entry = SharedFlow {
            server_name: flow.server_name.clone(),
            server_key: flow.server_key.clone(),
            metadata: flow.metadata.clone(),
            verifier: flow.verifier.clone(),
            client_id: flow.client.id.clone(),
            client_secret: flow.client.secret.clone(),
            auth_method: flow.client.auth_method.clone(),
            registration,
            resource: flow.resource.clone(),
            scopes: flow.scopes.clone(),
            dpop: flow.dpop,
            redirect_uri: flow.redirect_uri.clone(),
            expires_ms: self.now_ms() + PENDING_LIFETIME.as_millis() as u64,
        };
        let json = serde_json::to_string(&entry)
            .map_err(|e| AuthError::Shared(format!("cannot share a pending flow: {e}")))?;
        shared
            .put_for(&key(flow.state.expose()), &json, PENDING_LIFETIME)
            .await
            .map_err(AuthError::Shared)
    }

    /// Takes the shared flow of `state`, wherever it started. `Ok(None)`: not in cluster mode.
    /// `Err(UnknownState)`: no such flow in the cluster (never started, taken already by a
    /// callback on any replica, or expired).
    pub(crate) async fn take_shared_pending(
        &self,
        state: &str,
    ) -> Result<Option<PendingFlow>, AuthError> {
        let Some(shared) = self.store.shared() else {
            return Ok(None);
        };
        let json = shared
            .take(&key(state))
            .await
            .map_err(AuthError::Shared)?
            .ok_or(AuthError::UnknownState)?;
        let f: SharedFlow = serde_json::from_str(&json)
            .map_err(|e| AuthError::Shared(format!("unreadable pending flow: {e}")))?;
        if let Some(reg) = f.registration
            && self.store.read(|d| {
                !d.clients
                    .iter()
                    .any(|c| c.issuer == reg.issuer && c.client_id == reg.client_id)
            })
        {
            self.store.put_client(reg).await?;
        }
        let left = Duration::from_millis(f.expires_ms.saturating_sub(self.now_ms()));
        let started = Instant::now()
            .checked_sub(PENDING_LIFETIME.saturating_sub(left))
            .unwrap_or_else(Instant::now);
        Ok(Some(PendingFlow {
            state: Secret::new(state),
            server_name: f.server_name,
            server_key: f.server_key,
            metadata: f.metadata,
            verifier: f.verifier,
            client: Client {
                id: f.client_id,
                secret: f.client_secret,
                auth_method: f.auth_method,
                key: None,
            },
            resource: f.resource,
            scopes: f.scopes,
            dpop: f.dpop,
            redirect_uri: f.redirect_uri,
            started,
        }))
    }

    /// Whether the flow of `state` still waits somewhere in the cluster. `None`: not in cluster
    /// mode, or the shared store cannot be read (the caller's local answer stands).
    pub(crate) async fn shared_pending_exists(&self, state: &str) -> Option<bool> {
        let shared = self.store.shared()?;
        shared.get(&key(state)).await.ok().map(|v| v.is_some())
    }
}
