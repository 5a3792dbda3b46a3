//! Carrying over the logins the Node `mcp-hub` saved, so switching hubs needs no
//! re-authorization. Its `oauth-storage.json` (plaintext, keyed by each server's URL as written
//! in the config) is only read, never changed; an entry is converted into this hub's store
//! (0600) the first time a server has no tokens here.

use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::discovery::discover;
use crate::manager::{Inner, lock};
use crate::secret::Secret;
use crate::store::{StoredClient, StoredTokens};
use crate::urls::canonical_resource;

/// One server's entry: `{clientInfo, tokens, codeVerifier}` (every part may be `null`).
#[derive(Debug, Deserialize)]
struct NodeEntry {
    #[serde(rename = "clientInfo", default)]
    client_info: Option<NodeClient>,
    #[serde(default)]
    tokens: Option<NodeTokens>,
}

/// The dynamic registration the Node hub obtained (RFC 7591 client information).
#[derive(Debug, Deserialize)]
struct NodeClient {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<Secret>,
    #[serde(default)]
    client_secret_expires_at: Option<u64>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

/// The token response as the Node hub saved it (no issue time is recorded).
#[derive(Debug, Deserialize)]
struct NodeTokens {
    access_token: Secret,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    scope: Option<String>,
}

/// A usable entry and when the file was last written (unix seconds).
struct Found {
    client: Option<NodeClient>,
    tokens: NodeTokens,
    written_at: Option<u64>,
}

/// Looks the server up: by its URL as written in the config or as resolved, else by any key that
/// is the same server URL. Entries without an access token (the Node hub creates empty ones for
/// every remote server) do not count.
fn find(path: &Path, names: &[String], key: &str) -> Option<Found> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the Node mcp-hub's OAuth storage");
            return None;
        }
    };
    let written_at = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let all: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    let same_server = |k: &str| {
        names.iter().any(|n| n == k) || Url::parse(k).is_ok_and(|u| canonical_resource(&u) == key)
    };
    all.into_iter()
        .filter(|(k, _)| same_server(k))
        .filter_map(|(_, v)| serde_json::from_value::<NodeEntry>(v).ok())
        .find_map(|e| {
            let tokens = e.tokens.filter(|t| !t.access_token.expose().is_empty())?;
            Some(Found {
                client: e.client_info,
                tokens,
                written_at,
            })
        })
}

impl Inner {
    /// Converts the Node hub's saved login of `server_name` (store key `key`) into this hub's
    /// store, once per server and process. `None` when there is none.
    pub(crate) async fn import_node_login(
        &self,
        server_name: &str,
        key: &str,
    ) -> Option<StoredTokens> {
        // Asked on every request to a server without tokens: answered without allocating once
        // the server has been checked.
        if lock(&self.node_checked).contains(key) {
            return None;
        }
        let path = lock(&self.node_storage).clone()?;
        if !lock(&self.node_checked).insert(key.to_owned()) {
            return None;
        }
        let (url, written) = {
            let servers = lock(&self.servers);
            let s = servers.get(server_name)?;
            (s.url.clone(), s.config.config_url.clone())
        };
        let names: Vec<String> = written
            .into_iter()
            .chain(url.as_ref().map(|u| u.to_string()))
            .collect();
        let lookup = (path.clone(), key.to_owned());
        let found = tokio::task::spawn_blocking(move || find(&lookup.0, &names, &lookup.1))
            .await
            .ok()??;
        // The Node hub kept neither the issuer nor the token endpoint; discovery finds them, so
        // the token can be refreshed. Without them it is used until the server refuses it.
        let known = |_: &str| false;
        let discovered = match &url {
            Some(u) => match discover(&self.http, u, None, &known).await {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::warn!(server = server_name, error = %e, "imported OAuth login: discovery failed; the token cannot be refreshed");
                    None
                }
            },
            None => None,
        };
        let (issuer, token_endpoint, resource) = match &discovered {
            Some(d) => (
                d.metadata.issuer.clone(),
                d.metadata.token_endpoint.clone(),
                d.resource.clone(),
            ),
            None => (String::new(), String::new(), key.to_owned()),
        };
        let client = found.client;
        let client_id = client
            .as_ref()
            .and_then(|c| c.client_id.clone())
            .unwrap_or_default();
        let auth_method = client
            .as_ref()
            .and_then(|c| c.token_endpoint_auth_method.clone())
            .unwrap_or_else(|| "none".into());
        if let Some(c) = &client
            && let Some(secret) = c.client_secret.clone()
            && !issuer.is_empty()
            && !client_id.is_empty()
        {
            let stored = StoredClient {
                issuer: issuer.clone(),
                redirect_uri: c.redirect_uris.first().cloned().unwrap_or_default(),
                client_id: client_id.clone(),
                client_secret: Some(secret),
                client_secret_expires_at: c.client_secret_expires_at,
                token_endpoint_auth_method: auth_method.clone(),
                updated_at: self.now_ms(),
            };
            if let Err(e) = self.store.put_client(stored).await {
                tracing::warn!(server = server_name, error = %e, "cannot save the imported client registration");
            }
        }
        let t = found.tokens;
        let expires_in = match t.expires_in {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        // The expiry is estimated from the file's write time; only worth acting on when the
        // token can be refreshed, otherwise it is used until the server says 401.
        let expires_at = match (&t.refresh_token, expires_in, found.written_at) {
            (Some(_), Some(e), Some(w)) if !token_endpoint.is_empty() => Some(w.saturating_add(e)),
            _ => None,
        };
        let stored = StoredTokens {
            server_url: key.to_owned(),
            issuer,
            client_id,
            resource,
            token_endpoint,
            token_endpoint_auth_method: auth_method,
            access_token: t.access_token,
            token_type: "Bearer".into(),
            refresh_token: t.refresh_token.filter(|r| !r.expose().is_empty()),
            expires_at,
            scope: t.scope.filter(|s| !s.trim().is_empty()),
            // When it was issued is unknown: 0, so the first refusal refreshes at once.
            obtained_at: 0,
            updated_at: self.now_ms(),
        };
        if let Err(e) = self.store.put_tokens(stored.clone()).await {
            tracing::warn!(server = server_name, error = %e, "cannot save the imported OAuth login; using it for now");
        }
        tracing::info!(server = server_name, from = %path.display(),
            "'{server_name}': using the OAuth login saved by the Node mcp-hub");
        Some(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_entries_with_tokens_by_config_url_or_same_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth-storage.json");
        std::fs::write(
            &path,
            r#"{
              "https://empty.example/mcp": {"clientInfo": null, "tokens": null, "codeVerifier": null},
              "https://${HOST}/mcp": {"clientInfo": {"client_id": "c1"}, "tokens": {"access_token": "t1", "token_type": "Bearer"}},
              "https://other.example/mcp#frag": {"tokens": {"access_token": "t2", "expires_in": "60", "refresh_token": "r2"}}
            }"#,
        )
        .unwrap();
        assert!(find(&path, &[], "https://empty.example/mcp").is_none());
        let f = find(
            &path,
            &["https://${HOST}/mcp".into()],
            "https://x.example/mcp",
        )
        .unwrap();
        assert_eq!(f.tokens.access_token.expose(), "t1");
        assert_eq!(f.client.unwrap().client_id.as_deref(), Some("c1"));
        let f = find(&path, &[], "https://other.example/mcp").unwrap();
        assert_eq!(f.tokens.access_token.expose(), "t2");
        assert!(f.written_at.is_some());
        assert!(find(&dir.path().join("missing.json"), &[], "https://x/mcp").is_none());
        std::fs::write(&path, "not json").unwrap();
        assert!(find(&path, &[], "https://other.example/mcp").is_none());
    }
}
