//! The hub's client identity at an authorization server (pre-registered, Client ID Metadata
//! Document, dynamic registration) and how it authenticates at token endpoints
//! (`none`, `client_secret_basic`, `client_secret_post`, `private_key_jwt`).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, json};
use url::Url;

use crate::AuthError;
use crate::config::{ClientAuth, ClientConfig, Credential};
use crate::discovery::AuthServerMetadata;
use crate::jose::SigningKey;
use crate::manager::{Inner, OAuthManager};
use crate::pkce::random_token;
use crate::secret::Secret;
use crate::store::StoredClient;
use crate::token::oauth_error_text;

/// `client_name` sent in dynamic registration.
const CLIENT_NAME: &str = "MCP Hub";
/// RFC 7523 §2.2.
const JWT_BEARER_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a `private_key_jwt` assertion: it is used once, at once.
const ASSERTION_LIFETIME_SECS: u64 = 60;

/// The client identity used at one authorization server.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) id: String,
    pub(crate) secret: Option<Secret>,
    /// `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub(crate) auth_method: String,
    /// The `private_key_jwt` key.
    pub(crate) key: Option<Arc<SigningKey>>,
}

impl Client {
    /// A public client: `client_id` in the body, nothing else.
    pub(crate) fn public(id: &str) -> Client {
        Client {
            id: id.to_owned(),
            secret: None,
            auth_method: "none".into(),
            key: None,
        }
    }

    /// A configured client (`auth.client_id` with its secret or key), authenticating the way
    /// the authorization server supports.
    pub(crate) async fn configured(
        auth: &ClientAuth,
        metadata: Option<&AuthServerMetadata>,
    ) -> Result<Client, AuthError> {
        match &auth.credential {
            Credential::None => Ok(Client::public(&auth.client_id)),
            Credential::Secret(s) => Ok(Client {
                id: auth.client_id.clone(),
                secret: Some(s.clone()),
                auth_method: match metadata {
                    Some(m) => secret_method(m, true),
                    None => "client_secret_basic".into(),
                },
                key: None,
            }),
            Credential::PrivateKey { key, algorithm } => {
                if let Some(m) = metadata
                    && m.token_endpoint_auth_methods_supported.is_some()
                    && !m.supports_auth_method("private_key_jwt")
                {
                    return Err(AuthError::Invalid(format!(
                        "authorization server {} does not accept private_key_jwt client \
                         authentication",
                        m.issuer
                    )));
                }
                let pem = key.read().await?;
                let key = SigningKey::from_pem(pem.expose(), algorithm.as_deref())?;
                if let Some(m) = metadata
                    && let Some(algs) = &m.token_endpoint_auth_signing_alg_values_supported
                    && !algs.iter().any(|a| a == key.alg())
                {
                    return Err(AuthError::Invalid(format!(
                        "authorization server {} does not accept {} client assertions",
                        m.issuer,
                        key.alg()
                    )));
                }
                Ok(Client {
                    id: auth.client_id.clone(),
                    secret: None,
                    auth_method: "private_key_jwt".into(),
                    key: Some(Arc::new(key)),
                })
            }
        }
    }
}

impl OAuthManager {
    /// The client identity for an authorization server, in the spec's order: pre-registered,
    /// then a Client ID Metadata Document, then a stored or new dynamic registration.
    pub(crate) async fn client_for(
        &self,
        metadata: &AuthServerMetadata,
        config: &ClientConfig,
    ) -> Result<Client, AuthError> {
        let inner = &self.inner;
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
                key: None,
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
            return Ok(Client::public(cimd));
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
                    key: None,
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
        let inner = &self.inner;
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
        let body = json!({
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
            key: None,
        })
    }
}

/// The client authentication method for a client with (or without) a secret.
pub(crate) fn secret_method(metadata: &AuthServerMetadata, has_secret: bool) -> String {
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

impl Inner {
    /// Adds client authentication to a token request: form fields, or the `Authorization`
    /// value. `audience` is the authorization server's issuer (the `aud` of a
    /// `private_key_jwt` assertion, RFC 7523bis).
    pub(crate) fn client_auth(
        &self,
        client: &Client,
        audience: &str,
        form: &mut Vec<(&'static str, String)>,
    ) -> Result<Option<String>, AuthError> {
        match (client.auth_method.as_str(), &client.secret, &client.key) {
            ("private_key_jwt", _, Some(key)) => {
                let now = self.now_secs();
                let claims = json!({
                    "iss": client.id,
                    "sub": client.id,
                    "aud": audience,
                    "iat": now,
                    "exp": now + ASSERTION_LIFETIME_SECS,
                    "jti": random_token(16)?,
                });
                let mut header = Map::new();
                header.insert("typ".into(), "JWT".into());
                form.push(("client_assertion_type", JWT_BEARER_ASSERTION_TYPE.into()));
                form.push(("client_assertion", key.jwt(header, &claims)?));
                Ok(None)
            }
            ("client_secret_post", Some(secret), _) => {
                form.push(("client_id", client.id.clone()));
                form.push(("client_secret", secret.expose().to_owned()));
                Ok(None)
            }
            ("client_secret_basic", Some(secret), _) => {
                // RFC 6749 §2.3.1: both parts are form-encoded before joining.
                let pair = format!(
                    "{}:{}",
                    form_encode(&client.id),
                    form_encode(secret.expose())
                );
                Ok(Some(format!("Basic {}", STANDARD.encode(pair))))
            }
            _ => {
                if !client.id.is_empty() {
                    form.push(("client_id", client.id.clone()));
                }
                Ok(None)
            }
        }
    }
}

/// Percent-encodes all but the unreserved characters (so a space is `%20`, which both form
/// decoders and plain URL decoders read back correctly).
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OAuthManager;

    fn inner() -> (tempfile::TempDir, OAuthManager) {
        let dir = tempfile::tempdir().unwrap();
        let m =
            OAuthManager::new(dir.path().join("t.json"), "http://127.0.0.1:9/cb".into()).unwrap();
        (dir, m)
    }

    #[test]
    fn client_authentication_shapes() {
        let (_dir, m) = inner();
        let c = Client {
            id: "id 1".into(),
            secret: Some(Secret::new("p:w")),
            auth_method: "client_secret_basic".into(),
            key: None,
        };
        let mut form = Vec::new();
        let auth = m
            .inner
            .client_auth(&c, "https://as", &mut form)
            .unwrap()
            .unwrap();
        assert!(form.is_empty());
        let decoded = STANDARD
            .decode(auth.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"id%201:p%3Aw");

        let c = Client {
            auth_method: "client_secret_post".into(),
            ..c
        };
        let mut form = Vec::new();
        assert!(
            m.inner
                .client_auth(&c, "https://as", &mut form)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            form,
            [
                ("client_id", "id 1".to_owned()),
                ("client_secret", "p:w".to_owned())
            ]
        );

        let c = Client {
            auth_method: "none".into(),
            ..c
        };
        let mut form = Vec::new();
        assert!(
            m.inner
                .client_auth(&c, "https://as", &mut form)
                .unwrap()
                .is_none()
        );
        assert_eq!(form, [("client_id", "id 1".to_owned())]);
    }

    #[test]
    fn private_key_jwt_assertion_is_signed_for_the_issuer() {
        let (_dir, m) = inner();
        let (key, _) = SigningKey::generate_es256().unwrap();
        let jwk = key.public_jwk();
        let c = Client {
            id: "svc".into(),
            secret: None,
            auth_method: "private_key_jwt".into(),
            key: Some(Arc::new(key)),
        };
        let mut form = Vec::new();
        assert!(
            m.inner
                .client_auth(&c, "https://as.example", &mut form)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            form[0],
            (
                "client_assertion_type",
                JWT_BEARER_ASSERTION_TYPE.to_owned()
            )
        );
        let (header, claims) = crate::jose::tests::verify(&form[1].1, &jwk);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["iss"], "svc");
        assert_eq!(claims["sub"], "svc");
        assert_eq!(claims["aud"], "https://as.example");
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert!(exp > iat && exp - iat <= ASSERTION_LIFETIME_SECS);
        // Two assertions never share a jti.
        let mut again = Vec::new();
        m.inner
            .client_auth(&c, "https://as.example", &mut again)
            .unwrap();
        let (_, claims2) =
            crate::jose::tests::verify(&again[1].1, &c.key.as_ref().unwrap().public_jwk());
        assert_ne!(claims["jti"], claims2["jti"]);
    }

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
