//! The hub's client identity at an authorization server (pre-registered, a Client ID Metadata
//! Document, or RFC 7591 dynamic registration) and how it authenticates at the token endpoint.

use serde::Deserialize;
use url::Url;

use crate::AuthError;
use crate::config::ClientConfig;
use crate::discovery::AuthServerMetadata;
use crate::secret::Secret;
use crate::shared::{Client, Inner};
use crate::store::StoredClient;
use crate::token::oauth_error_text;

/// `client_name` sent in dynamic registration.
const CLIENT_NAME: &str = "MCP Hub";

impl Inner {
    /// The client identity for an authorization server, in the spec's order: pre-registered,
    /// then a Client ID Metadata Document, then a stored or new dynamic registration.
    pub(crate) async fn client_for(
        &self,
        metadata: &AuthServerMetadata,
        config: &ClientConfig,
    ) -> Result<Client, AuthError> {
        let inner = self;
        if let Some(id) = config.client_id.as_deref().filter(|i| !i.is_empty()) {
            let secret = config
                .client_secret
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Secret::new);
            let auth_method = secret_method(metadata, secret.is_some());
            return Ok(Client {
                id: id.to_owned(),
                secret,
                auth_method,
            });
        }
        if metadata.client_id_metadata_document_supported
            && let Some(cimd) = config.client_metadata_url.as_deref()
        {
            let u = Url::parse(cimd)
                .map_err(|_| AuthError::Invalid(format!("invalid client_metadata_url {cimd:?}")))?;
            if u.scheme() != "https" || u.path().trim_matches('/').is_empty() {
                return Err(AuthError::Invalid(
                    "client_metadata_url must be an https URL with a path".into(),
                ));
            }
            return Ok(Client {
                id: cimd.to_owned(),
                secret: None,
                auth_method: "none".into(),
            });
        }
        let now = inner.now_secs();
        let stored = inner
            .store
            .read(|d| d.client_for(&metadata.issuer, &inner.redirect_uri).cloned());
        if let Some(c) = stored {
            let expired = c
                .client_secret_expires_at
                .is_some_and(|e| e != 0 && e <= now);
            if !expired {
                return Ok(Client {
                    id: c.client_id,
                    secret: c.client_secret,
                    auth_method: c.token_endpoint_auth_method,
                });
            }
            inner
                .store
                .remove_client(&metadata.issuer, &inner.redirect_uri, inner.now_ms())
                .await?;
        }
        let Some(endpoint) = metadata.registration_endpoint.as_deref() else {
            return Err(AuthError::NoRegistration {
                issuer: metadata.issuer.clone(),
            });
        };
        self.register(metadata, endpoint).await
    }

    /// RFC 7591 dynamic client registration.
    async fn register(
        &self,
        metadata: &AuthServerMetadata,
        endpoint: &str,
    ) -> Result<Client, AuthError> {
        let inner = self;
        let url = Url::parse(endpoint)
            .map_err(|_| AuthError::Discovery("invalid registration endpoint".into()))?;
        let requested = if metadata.supports_auth_method("none") {
            "none".to_owned()
        } else {
            secret_method(metadata, true)
        };
        let mut grant_types = vec!["authorization_code"];
        if metadata.allows_refresh_grant() {
            grant_types.push("refresh_token");
        }
        let body = serde_json::json!({
            "client_name": CLIENT_NAME,
            "redirect_uris": [inner.redirect_uri],
            "grant_types": grant_types,
            "response_types": ["code"],
            "token_endpoint_auth_method": requested,
            // The hub runs on the user's machine and redirects to loopback.
            "application_type": "native",
        });
        let resp = inner.http.post_json(&url, &body).await?;
        if !resp.is_success() {
            return Err(AuthError::Registration(oauth_error_text(&resp)));
        }
        #[derive(Deserialize)]
        struct Registered {
            client_id: String,
            #[serde(default)]
            client_secret: Option<Secret>,
            #[serde(default)]
            client_secret_expires_at: Option<u64>,
            #[serde(default)]
            token_endpoint_auth_method: Option<String>,
        }
        let r: Registered = serde_json::from_slice(&resp.body).map_err(|_| {
            AuthError::Registration(
                "the registration response is not a client information document".into(),
            )
        })?;
        if r.client_id.is_empty() {
            return Err(AuthError::Registration("empty client_id".into()));
        }
        let secret = r.client_secret.filter(|s| !s.expose().is_empty());
        let auth_method = r.token_endpoint_auth_method.unwrap_or(requested);
        let stored = StoredClient {
            issuer: metadata.issuer.clone(),
            redirect_uri: inner.redirect_uri.clone(),
            client_id: r.client_id.clone(),
            client_secret: secret.clone(),
            client_secret_expires_at: r.client_secret_expires_at,
            token_endpoint_auth_method: auth_method.clone(),
            updated_at: inner.now_ms(),
        };
        inner.store.put_client(stored).await?;
        tracing::info!(issuer = %metadata.issuer, method = %auth_method, "registered the hub as an OAuth client");
        Ok(Client {
            id: r.client_id,
            secret,
            auth_method,
        })
    }
}

/// The client authentication method for a client with (or without) a secret.
fn secret_method(metadata: &AuthServerMetadata, has_secret: bool) -> String {
    if !has_secret {
        return "none".into();
    }
    if metadata.supports_auth_method("client_secret_basic") {
        "client_secret_basic".into()
    } else if metadata.supports_auth_method("client_secret_post") {
        "client_secret_post".into()
    } else {
        "client_secret_basic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_method_choice() {
        let mut m: AuthServerMetadata = serde_json::from_str(
            r#"{"issuer":"https://as","authorization_endpoint":"https://as/a","token_endpoint":"https://as/t"}"#,
        )
        .unwrap();
        assert_eq!(secret_method(&m, false), "none");
        assert_eq!(secret_method(&m, true), "client_secret_basic");
        m.token_endpoint_auth_methods_supported = Some(vec!["client_secret_post".into()]);
        assert_eq!(secret_method(&m, true), "client_secret_post");
        assert!(!m.supports_s256());
    }
}
