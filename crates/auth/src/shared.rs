//! What the OAuth client's parts share: the manager's state, per-server settings, pending
//! authorizations, the client identity, the clock.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use url::Url;

use crate::challenge::BearerChallenge;
use crate::config::ClientConfig;
use crate::http::Http;
use crate::secret::Secret;
use crate::store::Store;

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) redirect_uri: String,
    pub(crate) http: Http,
    pub(crate) servers: Mutex<HashMap<String, ServerState>>,
    pub(crate) pending: Mutex<Vec<PendingFlow>>,
    pub(crate) refresh_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Seconds added to the wall clock (tests move time forward with it).
    pub(crate) clock_offset: AtomicI64,
    /// The Node `mcp-hub`'s `oauth-storage.json`, read when the store has nothing for a server.
    pub(crate) node_storage: Mutex<Option<PathBuf>>,
    /// Server keys already looked up there (each is looked up once).
    pub(crate) node_checked: Mutex<HashSet<String>>,
}

/// What the hub remembers about one configured server between requests.
#[derive(Debug, Clone)]
pub(crate) struct ServerState {
    pub(crate) config: ClientConfig,
    /// The configured server URL (from [`OAuthManager::hook`]).
    pub(crate) url: Option<Url>,
    /// The last `Bearer` challenge the server sent (its scopes drive the next authorization).
    pub(crate) last_challenge: Option<BearerChallenge>,
    /// Scopes of the last authorization request.
    pub(crate) requested: Option<Vec<String>>,
    /// Step-up authorizations in a row that brought no new scope.
    pub(crate) step_ups_without_new_scope: u32,
}

impl ServerState {
    pub(crate) fn new(config: ClientConfig, url: Option<Url>) -> ServerState {
        ServerState {
            config,
            url,
            last_challenge: None,
            requested: None,
            step_ups_without_new_scope: 0,
        }
    }
}

/// An authorization waiting for its callback.
#[derive(Debug)]
pub(crate) struct PendingFlow {
    pub(crate) state: Secret,
    pub(crate) server_name: String,
    pub(crate) server_key: String,
    pub(crate) issuer: String,
    pub(crate) iss_required: bool,
    pub(crate) verifier: Secret,
    pub(crate) client: Client,
    pub(crate) token_endpoint: String,
    pub(crate) resource: String,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) started: Instant,
}

/// The client identity used at one authorization server.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) id: String,
    pub(crate) secret: Option<Secret>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub(crate) auth_method: String,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub(crate) fn now_secs(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        now.saturating_add_signed(self.clock_offset.load(Ordering::SeqCst))
    }

    pub(crate) fn now_ms(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        now.saturating_add_signed(
            self.clock_offset
                .load(Ordering::SeqCst)
                .saturating_mul(1000),
        )
    }

    pub(crate) fn refresh_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.refresh_locks)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// The secret of a client id, from the server's configuration or its stored registration.
    pub(crate) fn secret_of(
        &self,
        server_name: &str,
        issuer: &str,
        client_id: &str,
    ) -> Option<Secret> {
        let configured = lock(&self.servers).get(server_name).and_then(|s| {
            (s.config.client_id.as_deref() == Some(client_id))
                .then(|| s.config.client_secret.clone())
                .flatten()
        });
        configured.map(Secret::new).or_else(|| {
            self.store.read(|d| {
                d.clients
                    .iter()
                    .find(|c| c.issuer == issuer && c.client_id == client_id)
                    .and_then(|c| c.client_secret.clone())
            })
        })
    }
}
