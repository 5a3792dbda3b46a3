//! The token store: one JSON file, readable only by the user (0600), replaced atomically
//! (temporary file, fsync, rename, directory fsync) so a crash leaves either the old or the new
//! version. Several hubs may share the file: every write merges with what is on disk, newest
//! entry wins.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::AuthError;
use crate::secret::Secret;

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

/// Whether the file is a JSON object of another format: it has keys, but not our `version`.
fn is_foreign(path: &Path) -> bool {
    if path.file_name().is_some_and(|n| n == DEFAULT_FILE_NAME) {
        return false;
    }
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) {
        Ok(m) => !m.is_empty() && !m.contains_key("version"),
        Err(_) => false,
    }
}

fn read_file(path: &Path) -> Result<Option<StoreData>, AuthError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(store_error(path, e)),
    };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "token store was readable by others; restricting it to the user (0600)");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| store_error(path, e))?;
    }
    match serde_json::from_slice::<StoreData>(&bytes) {
        Ok(d) => Ok(Some(d)),
        Err(e) => {
            let aside = path.with_extension(format!("corrupt-{}", unix_now_secs()));
            tracing::warn!(path = %path.display(), aside = %aside.display(), error = %e, "token store is not valid JSON; moved aside, starting empty");
            std::fs::rename(path, &aside).map_err(|e| store_error(path, e))?;
            Ok(None)
        }
    }
}

fn unix_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `bytes` to `path` atomically with mode 0600, creating the directory (0700) if needed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "oauth-tokens.json".into());
    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{name}.{}.{nonce}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(server: &str, at: &str, updated_at: u64) -> StoredTokens {
        StoredTokens {
            server_url: server.into(),
            issuer: "https://as.example".into(),
            client_id: "c".into(),
            resource: server.into(),
            token_endpoint: "https://as.example/token".into(),
            token_endpoint_auth_method: "none".into(),
            access_token: Secret::new(at),
            token_type: "Bearer".into(),
            refresh_token: None,
            expires_at: Some(100),
            scope: None,
            obtained_at: 1,
            updated_at,
        }
    }

    #[tokio::test]
    async fn writes_0600_atomically_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/oauth-tokens.json");
        let store = Store::load(path.clone()).unwrap();
        store
            .put_tokens(tokens("https://a/mcp", "t1", 1))
            .await
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["oauth-tokens.json"]);
        let again = Store::load(path.clone()).unwrap();
        assert_eq!(
            again.read(|d| d
                .tokens_for("https://a/mcp")
                .map(|t| t.access_token.clone())),
            Some(Secret::new("t1"))
        );
    }

    #[tokio::test]
    async fn an_unusable_path_is_an_empty_store_that_says_why_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the store's directory should be.
        std::fs::write(dir.path().join("mcp-hub"), "not a directory").unwrap();
        let path = dir.path().join("mcp-hub/oauth-tokens.json");
        let store = Store::load(path.clone()).expect("loading never fails on the path");
        assert!(store.read(|d| d.tokens.is_empty()));
        let why = store.unusable().expect("unusable").to_string();
        assert!(why.contains("oauth-tokens.json"), "{why}");
        assert!(
            store
                .put_tokens(tokens("https://a/mcp", "t", 1))
                .await
                .is_err()
        );
        assert!(store.unusable().is_some());
        // Once the path works, so does the store.
        std::fs::remove_file(dir.path().join("mcp-hub")).unwrap();
        store
            .put_tokens(tokens("https://a/mcp", "t", 2))
            .await
            .unwrap();
        assert!(store.unusable().is_none());
        assert!(path.exists());
    }

    #[tokio::test]
    async fn merges_with_another_writer_and_respects_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth-tokens.json");
        let a = Store::load(path.clone()).unwrap();
        let b = Store::load(path.clone()).unwrap();
        a.put_tokens(tokens("https://a/mcp", "a1", 10))
            .await
            .unwrap();
        b.put_tokens(tokens("https://b/mcp", "b1", 11))
            .await
            .unwrap();
        // b's write kept a's entry, and b now sees it.
        let on_disk = Store::load(path.clone()).unwrap();
        assert!(on_disk.read(|d| d.tokens_for("https://a/mcp").is_some()));
        assert!(b.read(|d| d.tokens_for("https://a/mcp").is_some()));
        // A newer entry from the other writer wins over an older one.
        b.put_tokens(tokens("https://a/mcp", "a2", 20))
            .await
            .unwrap();
        a.put_tokens(tokens("https://b/mcp", "b0", 5))
            .await
            .unwrap();
        let on_disk = Store::load(path.clone()).unwrap();
        assert_eq!(
            on_disk.read(|d| d.tokens_for("https://a/mcp").unwrap().access_token.clone()),
            Secret::new("a2")
        );
        assert_eq!(
            on_disk.read(|d| d.tokens_for("https://b/mcp").unwrap().access_token.clone()),
            Secret::new("b1")
        );
        // A deletion is not undone by the copy still on disk.
        a.remove_tokens("https://b/mcp", 30).await.unwrap();
        let on_disk = Store::load(path).unwrap();
        assert!(on_disk.read(|d| d.tokens_for("https://b/mcp").is_none()));
    }

    #[tokio::test]
    async fn node_hub_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("oauth-storage.json");
        let content = br#"{"https://x/mcp":{"clientInfo":null,"tokens":null,"codeVerifier":null}}"#;
        std::fs::write(&node, content).unwrap();
        let store = Store::load(node.clone()).unwrap();
        assert_eq!(store.path(), dir.path().join("oauth-tokens.json"));
        store
            .put_tokens(tokens("https://a/mcp", "t", 1))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&node).unwrap(), content);
        // Our own format at that path is used as is.
        std::fs::write(&node, br#"{"version":1}"#).unwrap();
        assert_eq!(Store::load(node.clone()).unwrap().path(), node);
    }

    #[test]
    fn corrupt_file_is_moved_aside_and_loose_mode_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth-tokens.json");
        std::fs::write(&path, b"{not json").unwrap();
        let store = Store::load(path.clone()).unwrap();
        assert!(store.read(|d| d.tokens.is_empty()));
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        std::fs::write(&path, b"{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Store::load(path.clone()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
