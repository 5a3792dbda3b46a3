//! The token endpoint: one request shape for every grant (client authentication, a DPoP proof
//! and the one retry a `use_dpop_nonce` answer calls for), token responses, and refresh.

use serde::Deserialize;
use url::Url;

use crate::AuthError;
use crate::client::Client;
use crate::config::{Credential, Grant};
use crate::discovery::AuthServerMetadata;
use crate::http::HttpResponse;
use crate::manager::Inner;
use crate::secret::Secret;
use crate::store::StoredTokens;

/// A successful token response.
#[derive(Debug)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: Secret,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) expires_in: Option<u64>,
    pub(crate) scope: Option<String>,
    /// `Bearer`, or `DPoP` for a token bound to the hub's key.
    pub(crate) token_type: String,
    /// RFC 8693 `issued_token_type` (token exchange).
    pub(crate) issued_token_type: Option<String>,
}

/// What a token endpoint answered.
#[derive(Debug)]
pub(crate) enum Outcome {
    Issued(TokenResponse),
    /// An error response: its status, OAuth `error` code and a displayable text (never the raw
    /// body).
    Refused {
        status: u16,
        code: String,
        text: String,
    },
}

impl Outcome {
    /// The tokens, or the refusal as an error.
    pub(crate) fn issued(self) -> Result<TokenResponse, AuthError> {
        match self {
            Outcome::Issued(t) => Ok(t),
            Outcome::Refused { text, .. } => Err(AuthError::Token(text)),
        }
    }
}

/// One token request.
pub(crate) struct TokenRequest<'a> {
    pub(crate) endpoint: &'a str,
    /// The authorization server's issuer: the audience of `private_key_jwt` assertions.
    pub(crate) issuer: &'a str,
    pub(crate) client: &'a Client,
    /// Send a DPoP proof (and accept a `DPoP` token).
    pub(crate) dpop: bool,
    /// The grant's parameters (client authentication is added).
    pub(crate) form: Vec<(&'static str, String)>,
}

impl Inner {
    /// Sends a token request. A `400 use_dpop_nonce` with a new `DPoP-Nonce` (RFC 9449 §8) is
    /// answered once with a fresh proof carrying that nonce (and, for `private_key_jwt`, a
    /// fresh assertion).
    pub(crate) async fn request_token(&self, req: TokenRequest<'_>) -> Result<Outcome, AuthError> {
        let url = Url::parse(req.endpoint)
            .map_err(|_| AuthError::Discovery("invalid token endpoint".into()))?;
        let mut retried = false;
        loop {
            let mut form = req.form.clone();
            let authorization = self.client_auth(req.client, req.issuer, &mut form)?;
            let proof = match req.dpop {
                true => Some(self.dpop.proof("POST", &url, None).await?),
                false => None,
            };
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let resp = self
                .http
                .post_form(&url, &pairs, authorization, proof)
                .await?;
            let new_nonce = req.dpop && self.dpop.remember_nonce(&url, &resp.headers);
            if resp.is_success() {
                return parse_token_response(&resp, req.dpop).map(Outcome::Issued);
            }
            let code = oauth_error_code(&resp).unwrap_or_default();
            if code == "use_dpop_nonce" && new_nonce && !retried {
                tracing::debug!(endpoint = %crate::urls::display_url(&url), "the authorization server wants a DPoP nonce; retrying with it");
                retried = true;
                continue;
            }
            return Ok(Outcome::Refused {
                status: resp.status,
                code,
                text: oauth_error_text(&resp),
            });
        }
    }

    /// The client that obtained stored tokens, with its current credential (from the server's
    /// `oauth` or `auth` settings, or its stored registration).
    async fn stored_client(
        &self,
        server_name: &str,
        t: &StoredTokens,
    ) -> Result<Client, AuthError> {
        let server = self.server(server_name);
        let configured = server.as_ref().and_then(|s| match &s.auth.grant {
            Grant::ClientCredentials { client, .. }
            | Grant::JwtBearer { client, .. }
            | Grant::EnterpriseManaged { client, .. } => {
                (client.client_id == t.client_id).then(|| client.clone())
            }
            Grant::AuthorizationCode => None,
        });
        if let Some(c) = &configured
            && matches!(c.credential, Credential::PrivateKey { .. })
        {
            return Client::configured(c, None).await;
        }
        let secret = configured
            .and_then(|c| match c.credential {
                Credential::Secret(s) => Some(s),
                _ => None,
            })
            .or_else(|| {
                server.as_ref().and_then(|s| {
                    (s.config.client_id.as_deref() == Some(t.client_id.as_str()))
                        .then(|| s.config.client_secret.clone().map(Secret::new))
                        .flatten()
                })
            })
            .or_else(|| {
                self.store.read(|d| {
                    d.clients
                        .iter()
                        .find(|c| c.issuer == t.issuer && c.client_id == t.client_id)
                        .and_then(|c| c.client_secret.clone())
                })
            });
        Ok(Client {
            id: t.client_id.clone(),
            secret,
            auth_method: t.token_endpoint_auth_method.clone(),
            key: None,
        })
    }

    /// Refreshes the tokens of `key` unless someone else already replaced the version the
    /// caller saw (`seen`, the `updated_at` of that version). `Ok(None)`: no usable tokens are
    /// left (no refresh token, or it was refused): a new grant is needed.
    pub(crate) async fn refresh(
        &self,
        server_name: &str,
        key: &str,
        seen: u64,
    ) -> Result<Option<StoredTokens>, AuthError> {
        let gate = self.refresh_lock(key);
        let _one_at_a_time = gate.lock().await;
        // In cluster mode, one replica at a time too: under the cluster's lock, the shared copy
        // is read first, so a replica that waited uses what the other one obtained.
        let cluster_lock = match self.store.shared() {
            Some(shared) => Some(shared.lock(key).await.map_err(AuthError::Shared)?),
            None => None,
        };
        let result = match self.store.pull(key).await {
            Ok(()) => self.refresh_held(server_name, key, seen).await,
            Err(e) => Err(e),
        };
        if let Some(l) = cluster_lock {
            l.release().await;
        }
        result
    }

    /// [`refresh`](Self::refresh) once its locks are held.
    async fn refresh_held(
        &self,
        server_name: &str,
        key: &str,
        seen: u64,
    ) -> Result<Option<StoredTokens>, AuthError> {
        let Some(current) = self.store.read(|d| d.tokens_for(key).cloned()) else {
            return Ok(None);
        };
        if current.updated_at != seen {
            return Ok(Some(current));
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            tracing::info!(
                server = server_name,
                "access token expired or rejected and no refresh token; a new grant is required"
            );
            self.store.remove_tokens(key, self.now_ms()).await?;
            return Ok(None);
        };
        let client = self.stored_client(server_name, &current).await?;
        let outcome = self
            .request_token(TokenRequest {
                endpoint: &current.token_endpoint,
                issuer: &current.issuer,
                client: &client,
                // A bound refresh token (public clients) needs a proof; one bound access token
                // is renewed as a bound one.
                dpop: current.token_type.eq_ignore_ascii_case("dpop"),
                form: vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", refresh_token.expose().to_owned()),
                    ("resource", current.resource.clone()),
                ],
            })
            .await?;
        let token = match outcome {
            Outcome::Refused { status, code, .. } if matches!(status, 400 | 401) => {
                tracing::warn!(server = server_name, status, error = %code, "refresh token refused; a new grant is required");
                self.store.remove_tokens(key, self.now_ms()).await?;
                return Ok(None);
            }
            other => other.issued()?,
        };
        let now = self.now_secs();
        let updated = StoredTokens {
            access_token: token.access_token,
            // Public clients get rotated refresh tokens; otherwise the old one stays valid.
            refresh_token: token.refresh_token.or(Some(refresh_token)),
            expires_at: token.expires_in.map(|e| now.saturating_add(e)),
            scope: token.scope.or(current.scope.clone()),
            token_type: token.token_type,
            obtained_at: now,
            updated_at: self.now_ms().max(current.updated_at + 1),
            ..current
        };
        self.store.put_tokens(updated.clone()).await?;
        tracing::info!(server = server_name, "access token refreshed");
        Ok(Some(updated))
    }

    /// Stores what a token endpoint issued for a server.
    pub(crate) async fn store_tokens(
        &self,
        server_key: &str,
        metadata: &AuthServerMetadata,
        client: &Client,
        resource: &str,
        token: TokenResponse,
        requested_scopes: Option<&[String]>,
    ) -> Result<StoredTokens, AuthError> {
        let now = self.now_secs();
        let stored = StoredTokens {
            server_url: server_key.to_owned(),
            issuer: metadata.issuer.clone(),
            client_id: client.id.clone(),
            resource: resource.to_owned(),
            token_endpoint: metadata.token_endpoint.clone(),
            token_endpoint_auth_method: client.auth_method.clone(),
            access_token: token.access_token,
            token_type: token.token_type,
            refresh_token: token.refresh_token,
            expires_at: token.expires_in.map(|e| now.saturating_add(e)),
            scope: token
                .scope
                .or_else(|| requested_scopes.map(|s| s.join(" "))),
            obtained_at: now,
            updated_at: self.now_ms(),
        };
        self.store.put_tokens(stored.clone()).await?;
        Ok(stored)
    }
}

/// Parses a successful token endpoint answer. `DPoP` tokens are accepted only when a proof was
/// sent (`dpop`); errors carry no part of the body.
pub(crate) fn parse_token_response(
    resp: &HttpResponse,
    dpop: bool,
) -> Result<TokenResponse, AuthError> {
    #[derive(Deserialize)]
    struct Raw {
        access_token: Secret,
        #[serde(default)]
        token_type: Option<String>,
        #[serde(default)]
        refresh_token: Option<Secret>,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
        #[serde(default)]
        scope: Option<String>,
        #[serde(default)]
        issued_token_type: Option<String>,
    }
    let raw: Raw = serde_json::from_slice(&resp.body)
        .map_err(|_| AuthError::Token("the response is not a token response".into()))?;
    if raw.access_token.expose().is_empty() {
        return Err(AuthError::Token("empty access_token".into()));
    }
    let token_type = match raw.token_type.as_deref() {
        None => "Bearer",
        Some(t) if t.eq_ignore_ascii_case("bearer") => "Bearer",
        Some(t) if t.eq_ignore_ascii_case("dpop") && dpop => "DPoP",
        // RFC 8693 §2.2.1: an exchanged token that is not an access token.
        Some("N_A") if raw.issued_token_type.is_some() => "N_A",
        Some(t) => {
            return Err(AuthError::Token(format!(
                "unsupported token_type {:?}",
                truncate(t, 40)
            )));
        }
    };
    // Some servers send expires_in as a string.
    let expires_in = match raw.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(TokenResponse {
        access_token: raw.access_token,
        refresh_token: raw.refresh_token.filter(|r| !r.expose().is_empty()),
        expires_in,
        scope: raw.scope.filter(|s| !s.trim().is_empty()),
        token_type: token_type.to_owned(),
        issued_token_type: raw.issued_token_type,
    })
}

/// `HTTP <status>: <error> (<error_description>)` from an OAuth error response. The raw body is
/// never shown: it could echo credentials.
pub(crate) fn oauth_error_text(resp: &HttpResponse) -> String {
    #[derive(Deserialize)]
    struct OAuthErrorBody {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthErrorBody>(&resp.body) {
        Ok(e) => {
            let mut s = format!("HTTP {}: {}", resp.status, truncate(&e.error, 100));
            if let Some(d) = e.error_description {
                s.push_str(&format!(" ({})", truncate(&d, 300)));
            }
            s
        }
        Err(_) => format!("HTTP {}", resp.status),
    }
}

fn oauth_error_code(resp: &HttpResponse) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()?
        .get("error")?
        .as_str()
        .map(|s| truncate(s, 100))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: Default::default(),
            body: body.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn token_response_parsing() {
        let t = parse_token_response(
            &ok(r#"{"access_token":"a","token_type":"bearer","expires_in":"60","refresh_token":"r","scope":"x y"}"#),
            false,
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(60));
        assert_eq!(t.scope.as_deref(), Some("x y"));
        assert_eq!(t.token_type, "Bearer");
        // A DPoP token is only accepted when the hub asked for one with a proof.
        let dpop = r#"{"access_token":"a","token_type":"DPoP"}"#;
        assert!(parse_token_response(&ok(dpop), false).is_err());
        assert_eq!(
            parse_token_response(&ok(dpop), true).unwrap().token_type,
            "DPoP"
        );
        // Asked for DPoP, got an unbound token: it is used as what it is.
        let bearer = r#"{"access_token":"a","token_type":"Bearer"}"#;
        assert_eq!(
            parse_token_response(&ok(bearer), true).unwrap().token_type,
            "Bearer"
        );
        assert!(parse_token_response(&ok(r#"{"access_token":""}"#), false).is_err());
        let err = oauth_error_text(&HttpResponse {
            status: 400,
            headers: Default::default(),
            body: br#"{"error":"invalid_grant","error_description":"bad code","refresh_token":"leak"}"#
                .to_vec()
                .into(),
        });
        assert_eq!(err, "HTTP 400: invalid_grant (bad code)");
    }
}
