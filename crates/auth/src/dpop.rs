//! DPoP (RFC 9449): the hub's proof-of-possession key and the proofs it signs with it.
//!
//! One P-256 key per hub, generated on first use and kept beside the token store
//! (`oauth-dpop-key.pem`, PKCS#8, mode 0600, directory 0700). It is created without ever
//! replacing an existing file (a hard link from a private temporary file), so hubs sharing the
//! directory end up with the same key and the tokens bound to it stay usable by all of them.
//! Server-provided nonces (§8 for authorization servers, §9 for resource servers) are kept per
//! origin, in memory.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use url::Url;

use crate::AuthError;
use crate::config::DpopMode;
use crate::discovery::AuthServerMetadata;
use crate::jose::{SigningKey, sha256_b64, thumbprint};
use crate::manager::lock;
use crate::pkce::random_token;

/// The one algorithm the hub signs proofs with.
const DPOP_ALG: &str = "ES256";
/// At most this many origins' nonces are remembered.
const MAX_NONCES: usize = 256;
/// A nonce longer than this is not a nonce.
const MAX_NONCE_LEN: usize = 512;

/// The hub's DPoP key, loaded once.
pub(crate) struct DpopKey {
    key: SigningKey,
    jwk: Value,
    /// RFC 7638 thumbprint: the `jkt` tokens are bound to.
    pub(crate) thumbprint: String,
}

/// The key (loaded lazily: a hub that never meets DPoP never creates the file) and the nonces.
pub(crate) struct DpopState {
    path: PathBuf,
    key: OnceCell<Arc<DpopKey>>,
    nonces: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for DpopState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopState")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Whether tokens from this authorization server are DPoP-bound under `mode`. `auto` asks both
/// sides: the authorization server lists ES256 (RFC 9449 §5.1), and the resource says it takes
/// DPoP (`resource` — its challenge used the `DPoP` scheme, or its metadata lists DPoP,
/// RFC 9728 §2). An authorization server that offers DPoP to all its clients does not mean this
/// resource understands `Authorization: DPoP`.
pub(crate) fn wanted(mode: DpopMode, metadata: &AuthServerMetadata, resource: bool) -> bool {
    match mode {
        DpopMode::Always => true,
        DpopMode::Never => false,
        DpopMode::Auto => {
            resource
                && metadata
                    .dpop_signing_alg_values_supported
                    .as_ref()
                    .is_some_and(|algs| algs.iter().any(|a| a == DPOP_ALG))
        }
    }
}

/// The nonce scope: scheme, host and port.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// `htu` (RFC 9449 §4.2): the request URI without query and fragment.
fn htu(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

impl DpopState {
    pub(crate) fn new(path: PathBuf) -> DpopState {
        DpopState {
            path,
            key: OnceCell::new(),
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// The key, loaded from or created in its file on first use.
    pub(crate) async fn key(&self) -> Result<Arc<DpopKey>, AuthError> {
        self.key
            .get_or_try_init(|| async {
                let path = self.path.clone();
                let key = tokio::task::spawn_blocking(move || load_or_create(&path))
                    .await
                    .map_err(|e| key_error(&self.path, e))??;
                let jwk = key.public_jwk();
                Ok(Arc::new(DpopKey {
                    thumbprint: thumbprint(&jwk),
                    jwk,
                    key,
                }))
            })
            .await
            .cloned()
    }

    /// A fresh proof for one request (`htm`, `htu`, new `jti`, `iat`), bound to `access_token`
    /// (`ath`) when one is presented, with the nonce the target's origin last handed out.
    pub(crate) async fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
    ) -> Result<String, AuthError> {
        let key = self.key().await?;
        let mut claims = json!({
            "jti": random_token(16)?,
            "htm": method,
            "htu": htu(url),
            "iat": unix_now(),
        });
        if let Some(t) = access_token {
            claims["ath"] = Value::from(sha256_b64(t));
        }
        if let Some(n) = lock(&self.nonces).get(&origin(url)) {
            claims["nonce"] = Value::from(n.clone());
        }
        let mut header = Map::new();
        header.insert("typ".into(), "dpop+jwt".into());
        header.insert("jwk".into(), key.jwk.clone());
        key.key.jwt(header, &claims)
    }

    /// Remembers the `DPoP-Nonce` a response from `url` carries. Returns whether it is new.
    pub(crate) fn remember_nonce(&self, url: &Url, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_LEN)
        else {
            return false;
        };
        let mut nonces = lock(&self.nonces);
        let key = origin(url);
        if nonces.get(&key).is_some_and(|n| n == nonce) {
            return false;
        }
        if nonces.len() >= MAX_NONCES && !nonces.contains_key(&key) {
            nonces.clear();
        }
        nonces.insert(key, nonce.to_owned());
        true
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn key_error(path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::Store {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// A PKCS#8 DER key as PEM.
pub(crate) fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// Reads the key file, or creates it. A file that is not a usable key is moved aside (the
/// tokens bound to it are lost either way) and a new key is made.
fn load_or_create(path: &Path) -> Result<SigningKey, AuthError> {
    for _ in 0..3 {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                tighten(path)?;
                match SigningKey::from_pem(&text, Some(DPOP_ALG)) {
                    Ok(k) => return Ok(k),
                    Err(e) => {
                        let aside = path.with_extension(format!("corrupt-{}", unix_now()));
                        tracing::warn!(path = %path.display(), aside = %aside.display(), error = %e, "the DPoP key file is unusable; moved aside, making a new key");
                        std::fs::rename(path, &aside).map_err(|e| key_error(path, e))?;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, der) = SigningKey::generate_es256()?;
                if create_new(path, pem(&der).as_bytes()).map_err(|e| key_error(path, e))? {
                    tracing::info!(path = %path.display(), "created the hub's DPoP key");
                    return Ok(key);
                }
                // Another hub created it first: use theirs.
            }
            Err(e) => return Err(key_error(path, e)),
        }
    }
    Err(key_error(path, "the key file keeps changing"))
}

/// A key file readable by others is restricted to the user.
fn tighten(path: &Path) -> Result<(), AuthError> {
    let meta = std::fs::metadata(path).map_err(|e| key_error(path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "the DPoP key was readable by others; restricting it to the user (0600)");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| key_error(path, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` (0600, directory 0700) only if `path` does not exist: the content is
/// written and synced to a private temporary file, which is then hard-linked to `path` (the
/// link fails if `path` exists, so a file is never replaced or seen half-written). Returns
/// `false` when `path` already existed.
fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let (dir, tmp) = crate::store::private_temp_beside(path, "dpop-key", bytes)?;
    let result = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&tmp);
    if result.as_ref().is_ok_and(|created| *created)
        && let Ok(d) = std::fs::File::open(&dir)
    {
        let _ = d.sync_all();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::tests::verify;

    #[tokio::test]
    async fn key_is_created_0600_once_and_shared_by_hubs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/oauth-dpop-key.pem");
        let a = DpopState::new(path.clone());
        let b = DpopState::new(path.clone());
        let (ka, kb) = tokio::join!(a.key(), b.key());
        let (ka, kb) = (ka.unwrap(), kb.unwrap());
        assert_eq!(
            ka.thumbprint, kb.thumbprint,
            "both hubs use the one key on disk"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            ["oauth-dpop-key.pem"],
            "no temporary file left behind"
        );
        // A restart reads the same key.
        let c = DpopState::new(path.clone());
        assert_eq!(c.key().await.unwrap().thumbprint, ka.thumbprint);
    }

    #[tokio::test]
    async fn loose_permissions_are_tightened_and_garbage_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth-dpop-key.pem");
        let first = DpopState::new(path.clone())
            .key()
            .await
            .unwrap()
            .thumbprint
            .clone();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = DpopState::new(path.clone())
            .key()
            .await
            .unwrap()
            .thumbprint
            .clone();
        assert_eq!(first, again);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::write(&path, "garbage").unwrap();
        let replaced = DpopState::new(path.clone())
            .key()
            .await
            .unwrap()
            .thumbprint
            .clone();
        assert_ne!(replaced, first);
        assert!(std::fs::read_dir(dir.path()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".corrupt-")
        }));
    }

    #[tokio::test]
    async fn proofs_are_fresh_bound_and_carry_the_origins_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let state = DpopState::new(dir.path().join("k.pem"));
        let url: Url = "https://rs.example:8443/mcp?session=1#frag"
            .parse()
            .unwrap();
        let p1 = state.proof("POST", &url, Some("tok")).await.unwrap();
        let p2 = state.proof("POST", &url, Some("tok")).await.unwrap();
        let jwk = state.key().await.unwrap().jwk.clone();
        let (h1, c1) = verify(&p1, &jwk);
        let (_, c2) = verify(&p2, &jwk);
        assert_eq!(h1["typ"], "dpop+jwt");
        assert_eq!(h1["jwk"], jwk);
        assert!(
            h1["jwk"].get("d").is_none(),
            "the proof never carries the private key"
        );
        assert_ne!(c1["jti"], c2["jti"]);
        assert_eq!(c1["htm"], "POST");
        assert_eq!(
            c1["htu"], "https://rs.example:8443/mcp",
            "no query or fragment"
        );
        assert_eq!(c1["ath"], sha256_b64("tok"));
        assert!(c1.get("nonce").is_none());

        let mut headers = HeaderMap::new();
        headers.insert("dpop-nonce", "n-1".parse().unwrap());
        assert!(state.remember_nonce(&url, &headers));
        assert!(
            !state.remember_nonce(&url, &headers),
            "the same nonce is not news"
        );
        let (_, c3) = verify(&state.proof("GET", &url, None).await.unwrap(), &jwk);
        assert_eq!(c3["nonce"], "n-1");
        assert!(c3.get("ath").is_none());
        // Another origin does not get it.
        let other: Url = "https://as.example/token".parse().unwrap();
        let (_, c4) = verify(&state.proof("POST", &other, None).await.unwrap(), &jwk);
        assert!(c4.get("nonce").is_none());
    }

    #[test]
    fn auto_follows_the_metadata() {
        let mut m: AuthServerMetadata = serde_json::from_str(
            r#"{"issuer":"https://as","authorization_endpoint":"https://as/a","token_endpoint":"https://as/t"}"#,
        )
        .unwrap();
        assert!(!wanted(DpopMode::Auto, &m, true));
        assert!(wanted(DpopMode::Always, &m, false));
        m.dpop_signing_alg_values_supported = Some(vec!["RS256".into()]);
        assert!(!wanted(DpopMode::Auto, &m, true));
        m.dpop_signing_alg_values_supported = Some(vec!["RS256".into(), "ES256".into()]);
        assert!(wanted(DpopMode::Auto, &m, true));
        // The authorization server offers DPoP, but the resource never said it takes it.
        assert!(!wanted(DpopMode::Auto, &m, false));
        assert!(!wanted(DpopMode::Never, &m, true));
    }
}
