//! The token store: one JSON file, readable only by the user (0600), replaced atomically
//! (temporary file, fsync, rename, directory fsync) so a crash leaves either the old or the new
//! version. Several hubs may share the file: every write merges with what is on disk, newest
//! entry wins.

mod disk;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::AuthError;
use crate::secret::Secret;
use disk::{is_foreign, read_file};
pub(crate) use disk::{private_temp_beside, write_atomic};

/// Format version written in the file.
const FORMAT_VERSION: u32 = 1;
/// The file name used when the configured path belongs to another program.
const DEFAULT_FILE_NAME: &str = "oauth-tokens.json";

/// A client registration obtained by dynamic registration, per issuer and redirect URI.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StoredClient {
    pub(crate) issuer: String,
    pub(crate) redirect_uri: String,
    pub(crate) client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_secret: Option<Secret>,
    /// Unix seconds; 0 or absent means it does not expire (RFC 7591 §3.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_secret_expires_at: Option<u64>,
    pub(crate) token_endpoint_auth_method: String,
    /// Unix milliseconds of the last change, for merging.
    pub(crate) updated_at: u64,
}

/// The tokens of one server, bound to the issuer, client and resource they were issued for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StoredTokens {
    /// The canonical URL of the MCP server they are sent to (the lookup key).
    pub(crate) server_url: String,
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) resource: String,
    pub(crate) token_endpoint: String,
    pub(crate) token_endpoint_auth_method: String,
    pub(crate) access_token: Secret,
    pub(crate) token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<Secret>,
    /// Absolute expiry, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
    /// Granted (or else requested) scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    /// Unix seconds when the access token was obtained.
    pub(crate) obtained_at: u64,
    /// Unix milliseconds of the last change, for merging.
    pub(crate) updated_at: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StoreData {
    #[serde(default)]
    pub(crate) version: u32,
    #[serde(default)]
    pub(crate) clients: Vec<StoredClient>,
    #[serde(default)]
    pub(crate) tokens: Vec<StoredTokens>,
}

impl StoreData {
    pub(crate) fn tokens_for(&self, server_url: &str) -> Option<&StoredTokens> {
        self.tokens.iter().find(|t| t.server_url == server_url)
    }

    pub(crate) fn client_for(&self, issuer: &str, redirect_uri: &str) -> Option<&StoredClient> {
        self.clients
            .iter()
            .find(|c| c.issuer == issuer && c.redirect_uri == redirect_uri)
    }
}

fn client_key(c: &StoredClient) -> (String, String) {
    (c.issuer.clone(), c.redirect_uri.clone())
}

/// A server's tokens as the replicas of a cluster share them, with the client registration
/// they were issued to (a replica that refreshes them needs its credential).
#[derive(Debug, Serialize, Deserialize)]
struct SharedEntry {
    tokens: StoredTokens,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client: Option<StoredClient>,
}

/// Deletions not yet written, so a merge does not resurrect them from disk.
#[derive(Debug, Default, Clone)]
struct Tombstones {
    tokens: HashMap<String, u64>,
    clients: HashMap<(String, String), u64>,
}

/// The store: the file's content in memory, written through on every change.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    /// Why the file could not be read at load (or written last), if it could not: the store is
    /// then empty, and what needs it fails with this reason instead of the whole hub.
    unusable: Mutex<Option<AuthError>>,
    data: Mutex<StoreData>,
    tombstones: Mutex<Tombstones>,
    /// Serialises writers so snapshots reach the disk in order.
    write: tokio::sync::Mutex<()>,
    /// In cluster mode, where the replicas keep the one copy of each server's tokens; the file
    /// is then this replica's cache of it.
    shared: std::sync::OnceLock<std::sync::Arc<dyn crate::SharedTokens>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the plain data inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn store_error(path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::Store {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl Store {
    /// Loads the file (missing = empty). A file that cannot be parsed is moved aside to
    /// `<name>.corrupt-<unix>` and the store starts empty: losing tokens means re-authorizing,
    /// which is better than a hub that cannot start.
    ///
    /// A path that cannot be used at all (unreadable, a directory in the way) does not fail the
    /// load either: the store starts empty and [`unusable`](Self::unusable), so only servers
    /// that need OAuth fail, with that reason. Nothing is written over an unreadable file.
    ///
    /// A file in another format (the Node `mcp-hub`'s `oauth-storage.json`, which has no
    /// `version`) is left alone: the store uses `oauth-tokens.json` beside it instead.
    pub(crate) fn load(path: PathBuf) -> Result<Store, AuthError> {
        let path = if is_foreign(&path) {
            let ours = path.with_file_name(DEFAULT_FILE_NAME);
            tracing::warn!(path = %path.display(), instead = %ours.display(), "the token store path holds another program's file; using a separate file");
            ours
        } else {
            path
        };
        let (data, unusable) = match read_file(&path) {
            Ok(data) => (data.unwrap_or_default(), None),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "the OAuth token store cannot be used; servers that need OAuth will fail until it can");
                (StoreData::default(), Some(e))
            }
        };
        Ok(Store {
            path,
            unusable: Mutex::new(unusable),
            data: Mutex::new(data),
            tombstones: Mutex::new(Tombstones::default()),
            write: tokio::sync::Mutex::new(()),
            shared: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Why the store cannot be used, if it cannot (see [`load`](Self::load)).
    pub(crate) fn unusable(&self) -> Option<AuthError> {
        lock(&self.unusable).clone()
    }

    /// Reads the in-memory content.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&StoreData) -> R) -> R {
        f(&lock(&self.data))
    }

    /// Shares this store's tokens with the other replicas of a cluster (once).
    pub(crate) fn set_shared(&self, shared: std::sync::Arc<dyn crate::SharedTokens>) {
        let _ = self.shared.set(shared);
    }

    pub(crate) fn shared(&self) -> Option<&std::sync::Arc<dyn crate::SharedTokens>> {
        self.shared.get()
    }

    /// In cluster mode, brings the shared copy of `server_url`'s tokens into this replica (the
    /// shared copy wins; one found only here, from before the cluster, is shared). Without a
    /// cluster, nothing to do.
    pub(crate) async fn pull(&self, server_url: &str) -> Result<(), AuthError> {
        let Some(shared) = self.shared.get() else {
            return Ok(());
        };
        match shared.get(server_url).await.map_err(AuthError::Shared)? {
            Some(json) => {
                let SharedEntry { tokens, client } = serde_json::from_str(&json)
                    .map_err(|e| AuthError::Shared(format!("unreadable tokens: {e}")))?;
                let newer = self.read(|d| {
                    d.tokens_for(server_url)
                        .is_none_or(|t| t.updated_at != tokens.updated_at)
                });
                if newer {
                    {
                        let mut d = lock(&self.data);
                        if let Some(c) = client
                            && !d
                                .clients
                                .iter()
                                .any(|x| x.issuer == c.issuer && x.client_id == c.client_id)
                        {
                            d.clients.push(c);
                        }
                        d.tokens.retain(|t| t.server_url != server_url);
                        d.tokens.push(tokens);
                    }
                    self.persist().await?;
                }
            }
            None => {
                if let Some(mine) = self.read(|d| d.tokens_for(server_url).cloned()) {
                    self.share(shared.as_ref(), &mine).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes the shared copy of `tokens`, with the client registration they belong to.
    async fn share(
        &self,
        shared: &dyn crate::SharedTokens,
        tokens: &StoredTokens,
    ) -> Result<(), AuthError> {
        let client = self.read(|d| {
            d.clients
                .iter()
                .find(|c| c.issuer == tokens.issuer && c.client_id == tokens.client_id)
                .cloned()
        });
        let entry = SharedEntry {
            tokens: tokens.clone(),
            client,
        };
        let json = serde_json::to_string(&entry).unwrap_or_default();
        shared
            .put(&tokens.server_url, &json)
            .await
            .map_err(AuthError::Shared)
    }

    /// Saves a server's tokens (replacing the previous ones) and writes the file (and, in
    /// cluster mode, the shared copy).
    pub(crate) async fn put_tokens(&self, tokens: StoredTokens) -> Result<(), AuthError> {
        if let Some(shared) = self.shared.get() {
            self.share(shared.as_ref(), &tokens).await?;
        }
        {
            let mut d = lock(&self.data);
            d.tokens.retain(|t| t.server_url != tokens.server_url);
            d.tokens.push(tokens);
        }
        self.persist().await
    }

    /// Forgets a server's tokens and writes the file.
    pub(crate) async fn remove_tokens(
        &self,
        server_url: &str,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        if let Some(shared) = self.shared.get() {
            shared.delete(server_url).await.map_err(AuthError::Shared)?;
        }
        lock(&self.tombstones)
            .tokens
            .insert(server_url.to_owned(), now_ms);
        lock(&self.data)
            .tokens
            .retain(|t| t.server_url != server_url);
        self.persist().await
    }

    /// Saves a client registration (replacing the one for the same issuer and redirect URI).
    pub(crate) async fn put_client(&self, client: StoredClient) -> Result<(), AuthError> {
        {
            let mut d = lock(&self.data);
            let key = client_key(&client);
            d.clients.retain(|c| client_key(c) != key);
            d.clients.push(client);
        }
        self.persist().await
    }

    /// Forgets a client registration (e.g. its secret expired).
    pub(crate) async fn remove_client(
        &self,
        issuer: &str,
        redirect_uri: &str,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        let key = (issuer.to_owned(), redirect_uri.to_owned());
        lock(&self.tombstones).clients.insert(key.clone(), now_ms);
        lock(&self.data).clients.retain(|c| client_key(c) != key);
        self.persist().await
    }

    async fn persist(&self) -> Result<(), AuthError> {
        let _writer = self.write.lock().await;
        let snapshot = lock(&self.data).clone();
        let tombstones = lock(&self.tombstones).clone();
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<StoreData, AuthError> {
            let disk = read_file(&path)?.unwrap_or_default();
            let merged = merge(snapshot, disk, &tombstones);
            let mut bytes =
                serde_json::to_vec_pretty(&merged).map_err(|e| store_error(&path, e))?;
            bytes.push(b'\n');
            write_atomic(&path, &bytes).map_err(|e| store_error(&path, e))?;
            Ok(merged)
        })
        .await
        .map_err(|e| store_error(&self.path, e))?;
        let merged = match written {
            Ok(merged) => {
                *lock(&self.unusable) = None;
                merged
            }
            Err(e) => {
                *lock(&self.unusable) = Some(e.clone());
                return Err(e);
            }
        };
        // Entries another hub wrote become visible here; newer in-memory changes made while
        // writing are kept.
        let mut d = lock(&self.data);
        let current = std::mem::take(&mut *d);
        *d = merge(current, merged, &Tombstones::default());
        Ok(())
    }
}

/// Merges two versions, keeping for each key the entry changed last; entries deleted here
/// (tombstones) are not taken from `other` unless changed after the deletion.
fn merge(mine: StoreData, other: StoreData, tomb: &Tombstones) -> StoreData {
    let mut tokens: Vec<StoredTokens> = mine.tokens;
    for t in other.tokens {
        if tomb
            .tokens
            .get(&t.server_url)
            .is_some_and(|&at| t.updated_at <= at)
        {
            continue;
        }
        match tokens.iter_mut().find(|m| m.server_url == t.server_url) {
            Some(m) if m.updated_at < t.updated_at => *m = t,
            Some(_) => {}
            None => tokens.push(t),
        }
    }
    let mut clients: Vec<StoredClient> = mine.clients;
    for c in other.clients {
        if tomb
            .clients
            .get(&client_key(&c))
            .is_some_and(|&at| c.updated_at <= at)
        {
            continue;
        }
        match clients.iter_mut().find(|m| client_key(m) == client_key(&c)) {
            Some(m) if m.updated_at < c.updated_at => *m = c,
            Some(_) => {}
            None => clients.push(c),
        }
    }
    StoreData {
        version: FORMAT_VERSION,
        clients,
        tokens,
    }
}

#[cfg(test)]
mod tests;
