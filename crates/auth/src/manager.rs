//! The OAuth client of the hub: one [`OAuthManager`] for all servers, one [`AuthHook`] per
//! remote server. The flows live beside it: `authcode` (a user in a browser), `machine` (the
//! grants without a user), `token` (the token endpoint, refresh), `client` (the hub's client
//! identity), `hook` (what the transport calls), `dpop` (proof of possession).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use mcp_hub_transport::AuthHook;
use url::Url;

use crate::AuthError;
use crate::authcode::PendingFlow;
use crate::challenge::BearerChallenge;
use crate::config::{AuthConfig, ClientConfig};
use crate::dpop::DpopState;
use crate::hook::ServerAuth;
use crate::http::{Http, HttpExchange, TransportHttp};
use crate::store::Store;
use crate::urls::{canonical_resource, check_url};

/// The DPoP key file, beside the token store.
const DPOP_KEY_FILE: &str = "oauth-dpop-key.pem";

/// The hub's OAuth client for remote upstream servers.
#[derive(Clone)]
pub struct OAuthManager {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for OAuthManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthManager")
            .field("store", &self.inner.store.path())
            .field("redirect_uri", &self.inner.redirect_uri)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) redirect_uri: String,
    pub(crate) http: Http,
    pub(crate) servers: Mutex<HashMap<String, ServerState>>,
    pub(crate) pending: Mutex<Vec<PendingFlow>>,
    refresh_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) dpop: DpopState,
    /// Seconds added to the wall clock (tests move time forward with it).
    clock_offset: AtomicI64,
    /// The Node `mcp-hub`'s `oauth-storage.json`, read when the store has nothing for a server.
    pub(crate) node_storage: Mutex<Option<PathBuf>>,
    /// Server keys already looked up there (each is looked up once).
    pub(crate) node_checked: Mutex<HashSet<String>>,
}

/// What the hub remembers about one configured server between requests.
#[derive(Debug, Clone)]
pub(crate) struct ServerState {
    pub(crate) config: ClientConfig,
    pub(crate) auth: AuthConfig,
    /// The configured server URL (from [`OAuthManager::hook`]).
    pub(crate) url: Option<Url>,
    /// The last `Bearer`/`DPoP` challenge the server sent (its scopes drive the next request).
    pub(crate) last_challenge: Option<BearerChallenge>,
    /// Scopes of the last authorization request.
    pub(crate) requested: Option<Vec<String>>,
    /// Step-up authorizations in a row that brought no new scope.
    pub(crate) step_ups_without_new_scope: u32,
    /// The assertion a JWT-bearer request was refused for (its SHA-256) and why: the same
    /// assertion is not sent again (SEP-1933: no retry with what was refused).
    pub(crate) refused_assertion: Option<(String, AuthError)>,
}

impl ServerState {
    pub(crate) fn new(config: ClientConfig, auth: AuthConfig, url: Option<Url>) -> ServerState {
        ServerState {
            config,
            auth,
            url,
            last_challenge: None,
            requested: None,
            step_ups_without_new_scope: 0,
            refused_assertion: None,
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl OAuthManager {
    /// Loads the token store at `store_path` (created on first write, mode 0600) and uses
    /// `redirect_uri_base` (the hub's callback, e.g. `http://127.0.0.1:37373/api/oauth/callback`)
    /// as the redirect URI of every authorization. HTTP goes through the transport crate's client.
    /// The DPoP key, when one is needed, is kept beside the store (`oauth-dpop-key.pem`, 0600).
    pub fn new(store_path: PathBuf, redirect_uri_base: String) -> Result<Self, AuthError> {
        Self::with_http(store_path, redirect_uri_base, Arc::new(TransportHttp))
    }

    /// Shares tokens with the other replicas of a cluster (`docs/SCALE-OUT.md`): tokens are
    /// read from and written to `shared`, and a refresh takes its cluster-wide lock, so one
    /// replica refreshes and the others use the result. Call before the first request; a
    /// second call is ignored.
    pub fn share_tokens(&self, shared: Arc<dyn crate::SharedTokens>) {
        self.inner.store.set_shared(shared);
    }

    /// Like [`OAuthManager::new`] with another HTTP implementation.
    pub fn with_http(
        store_path: PathBuf,
        redirect_uri_base: String,
        http: Arc<dyn HttpExchange>,
    ) -> Result<Self, AuthError> {
        let redirect = Url::parse(&redirect_uri_base)
            .map_err(|e| AuthError::Invalid(format!("invalid redirect URI: {e}")))?;
        // OAuth 2.1 §2.3.1 / the MCP spec: redirect URIs are loopback or https.
        check_url(&redirect, None)?;
        if redirect.fragment().is_some() {
            return Err(AuthError::Invalid(
                "the redirect URI must not have a fragment".into(),
            ));
        }
        let store = Store::load(store_path)?;
        let dpop = DpopState::new(store.path().with_file_name(DPOP_KEY_FILE));
        Ok(OAuthManager {
            inner: Arc::new(Inner {
                store,
                redirect_uri: redirect_uri_base,
                http: Http(http),
                servers: Mutex::new(HashMap::new()),
                pending: Mutex::new(Vec::new()),
                refresh_locks: Mutex::new(HashMap::new()),
                dpop,
                clock_offset: AtomicI64::new(0),
                node_storage: Mutex::new(None),
                node_checked: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The hook the transport uses for `server_name` at `server_url`, with the interactive
    /// flow's `oauth` settings. Calling it again for the same server (e.g. after a configuration
    /// reload) updates its settings.
    pub fn hook(
        &self,
        server_name: &str,
        server_url: &Url,
        client: ClientConfig,
    ) -> Arc<dyn AuthHook> {
        self.hook_with(server_name, server_url, client, AuthConfig::default())
    }

    /// Like [`OAuthManager::hook`], with the server's `auth` settings (its grant and DPoP).
    pub fn hook_with(
        &self,
        server_name: &str,
        server_url: &Url,
        client: ClientConfig,
        auth: AuthConfig,
    ) -> Arc<dyn AuthHook> {
        {
            let mut servers = lock(&self.inner.servers);
            match servers.get_mut(server_name) {
                Some(s) => {
                    if s.auth != auth {
                        // New credentials deserve a new try.
                        s.refused_assertion = None;
                    }
                    s.config = client;
                    s.auth = auth;
                    s.url = Some(server_url.clone());
                }
                None => {
                    servers.insert(
                        server_name.to_owned(),
                        ServerState::new(client, auth, Some(server_url.clone())),
                    );
                }
            }
        }
        Arc::new(ServerAuth {
            inner: self.inner.clone(),
            name: server_name.to_owned(),
            key: canonical_resource(server_url),
        })
    }

    /// Reads the logins the Node `mcp-hub` saved in `path` (its `oauth-storage.json`): a server
    /// with no tokens in this hub's store uses the one found there, converted into the store.
    /// The file is only read.
    pub fn import_node_storage(&self, path: PathBuf) {
        *lock(&self.inner.node_storage) = Some(path);
    }

    /// Whether tokens are stored for a server URL.
    pub fn has_tokens(&self, server_url: &Url) -> bool {
        let key = canonical_resource(server_url);
        self.inner.store.read(|d| d.tokens_for(&key).is_some())
    }

    /// Forgets the tokens of a server URL (the client registration is kept).
    pub async fn clear_tokens(&self, server_url: &Url) -> Result<(), AuthError> {
        let key = canonical_resource(server_url);
        self.inner
            .store
            .remove_tokens(&key, self.inner.now_ms())
            .await
    }

    /// Moves the manager's clock forward (tests of expiry).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, secs: i64) {
        self.inner.clock_offset.fetch_add(secs, Ordering::SeqCst);
    }
}

pub(crate) fn union_into(into: &mut Vec<String>, more: &[String]) {
    for s in more {
        if !into.contains(s) {
            into.push(s.clone());
        }
    }
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

    /// One lock per token store key: refreshes and grants for one server run one at a time.
    pub(crate) fn refresh_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.refresh_locks)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// A server's current settings.
    pub(crate) fn server(&self, server_name: &str) -> Option<ServerState> {
        lock(&self.servers).get(server_name).cloned()
    }
}
