//! Token endpoint answers and refreshing: parsing (errors never echo the body), when to
//! refresh, and the refresh grant itself.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use url::Url;

use crate::AuthError;
use crate::http::HttpResponse;
use crate::secret::Secret;
use crate::shared::{Client, Inner};
use crate::store::StoredTokens;

/// Refresh this long before expiry (at most a quarter of the token's lifetime).
const REFRESH_MARGIN_SECS: u64 = 60;

/// A successful token response.
pub(crate) struct TokenResponse {
    pub(crate) access_token: Secret,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) expires_in: Option<u64>,
    pub(crate) scope: Option<String>,
}

/// Parses a token endpoint answer; errors carry only `error` and `error_description`.
pub(crate) fn parse_token_response(resp: &HttpResponse) -> Result<TokenResponse, AuthError> {
    if !resp.is_success() {
        return Err(AuthError::Token(oauth_error_text(resp)));
    }
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
    }
    let raw: Raw = serde_json::from_slice(&resp.body)
        .map_err(|_| AuthError::Token("the response is not a token response".into()))?;
    if raw.access_token.expose().is_empty() {
        return Err(AuthError::Token("empty access_token".into()));
    }
    if let Some(t) = &raw.token_type
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(AuthError::Token(format!(
            "unsupported token_type {t:?} (only Bearer)"
        )));
    }
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
        .map(str::to_owned)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl Inner {
    /// Refreshes the tokens of `key` unless someone else already replaced the version the
    /// caller saw (`seen`, the `updated_at` of that version). `Ok(None)`: no usable tokens are
    /// left (no refresh token, or it was refused) and the user must authorize again.
    pub(crate) async fn refresh(
        &self,
        server_name: &str,
        key: &str,
        seen: u64,
    ) -> Result<Option<StoredTokens>, AuthError> {
        let gate = self.refresh_lock(key);
        let _one_at_a_time = gate.lock().await;
        let Some(current) = self.store.read(|d| d.tokens_for(key).cloned()) else {
            return Ok(None);
        };
        if current.updated_at != seen {
            return Ok(Some(current));
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            tracing::info!(
                server = server_name,
                "access token expired or rejected and no refresh token; authorization required"
            );
            self.store.remove_tokens(key, self.now_ms()).await?;
            return Ok(None);
        };
        if current.token_endpoint.is_empty() {
            // Imported from the Node hub without discovery: it cannot be refreshed.
            tracing::info!(
                server = server_name,
                "imported token refused and cannot be refreshed; authorization required"
            );
            self.store.remove_tokens(key, self.now_ms()).await?;
            return Ok(None);
        }
        let endpoint = Url::parse(&current.token_endpoint)
            .map_err(|_| AuthError::Discovery("invalid stored token endpoint".into()))?;
        let client = Client {
            id: current.client_id.clone(),
            secret: self.secret_of(server_name, &current.issuer, &current.client_id),
            auth_method: current.token_endpoint_auth_method.clone(),
        };
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("resource", current.resource.as_str()),
        ];
        let authorization = client_auth(&client, &mut form);
        let resp = self.http.post_form(&endpoint, &form, authorization).await?;
        if matches!(resp.status, 400 | 401) {
            let code = oauth_error_code(&resp).unwrap_or_default();
            tracing::warn!(server = server_name, status = resp.status, error = %code, "refresh token refused; authorization required");
            self.store.remove_tokens(key, self.now_ms()).await?;
            return Ok(None);
        }
        let token = parse_token_response(&resp)?;
        let now = self.now_secs();
        let updated = StoredTokens {
            access_token: token.access_token,
            // Public clients get rotated refresh tokens; otherwise the old one stays valid.
            refresh_token: token.refresh_token.or(Some(refresh_token)),
            expires_at: token.expires_in.map(|e| now.saturating_add(e)),
            scope: token.scope.or(current.scope.clone()),
            obtained_at: now,
            updated_at: self.now_ms().max(current.updated_at + 1),
            ..current
        };
        self.store.put_tokens(updated.clone()).await?;
        tracing::info!(server = server_name, "access token refreshed");
        Ok(Some(updated))
    }
}

/// Whether a token should be refreshed before use.
pub(crate) fn needs_refresh(t: &StoredTokens, now: u64) -> bool {
    let Some(expires_at) = t.expires_at else {
        return false;
    };
    let lifetime = expires_at.saturating_sub(t.obtained_at);
    let margin = REFRESH_MARGIN_SECS.min(lifetime / 4);
    now.saturating_add(margin) >= expires_at
}

/// Adds client authentication to a token request: form fields, or the `Authorization` value.
pub(crate) fn client_auth<'a>(
    client: &'a Client,
    form: &mut Vec<(&'static str, &'a str)>,
) -> Option<String> {
    match (client.auth_method.as_str(), &client.secret) {
        ("client_secret_post", Some(secret)) => {
            form.push(("client_id", &client.id));
            form.push(("client_secret", secret.expose()));
            None
        }
        ("none", _) | (_, None) => {
            form.push(("client_id", &client.id));
            None
        }
        (_, Some(secret)) => {
            // RFC 6749 §2.3.1: both parts are form-encoded before joining.
            let pair = format!(
                "{}:{}",
                form_encode(&client.id),
                form_encode(secret.expose())
            );
            Some(format!("Basic {}", STANDARD.encode(pair)))
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

    fn tokens(obtained_at: u64, expires_at: Option<u64>) -> StoredTokens {
        StoredTokens {
            server_url: "https://a/mcp".into(),
            issuer: "https://as".into(),
            client_id: "c".into(),
            resource: "https://a/mcp".into(),
            token_endpoint: "https://as/token".into(),
            token_endpoint_auth_method: "none".into(),
            access_token: Secret::new("at"),
            token_type: "Bearer".into(),
            refresh_token: None,
            expires_at,
            scope: None,
            obtained_at,
            updated_at: 0,
        }
    }

    #[test]
    fn refresh_timing() {
        // One hour token: refreshed from one minute before expiry.
        let t = tokens(1000, Some(4600));
        assert!(!needs_refresh(&t, 1000));
        assert!(!needs_refresh(&t, 4539));
        assert!(needs_refresh(&t, 4540));
        assert!(needs_refresh(&t, 9999));
        // Short-lived token: the margin is a quarter of its lifetime.
        let t = tokens(1000, Some(1020));
        assert!(!needs_refresh(&t, 1014));
        assert!(needs_refresh(&t, 1015));
        // No expiry known: used until the server says 401.
        assert!(!needs_refresh(&tokens(1000, None), u64::MAX));
    }

    #[test]
    fn token_response_parsing() {
        let ok = |body: &str| HttpResponse {
            status: 200,
            headers: Default::default(),
            body: body.as_bytes().to_vec().into(),
        };
        let t = parse_token_response(&ok(
            r#"{"access_token":"a","token_type":"bearer","expires_in":"60","refresh_token":"r","scope":"x y"}"#,
        ))
        .unwrap();
        assert_eq!(t.expires_in, Some(60));
        assert_eq!(t.scope.as_deref(), Some("x y"));
        assert!(parse_token_response(&ok(r#"{"access_token":"a","token_type":"DPoP"}"#)).is_err());
        assert!(parse_token_response(&ok(r#"{"access_token":""}"#)).is_err());
        let err = parse_token_response(&HttpResponse {
            status: 400,
            headers: Default::default(),
            body: br#"{"error":"invalid_grant","error_description":"bad code","refresh_token":"leak"}"#
                .to_vec()
                .into(),
        })
        .err()
        .unwrap()
        .to_string();
        assert_eq!(err, "token endpoint: HTTP 400: invalid_grant (bad code)");
    }

    #[test]
    fn client_authentication_shapes() {
        let mut form = Vec::new();
        let c = Client {
            id: "id 1".into(),
            secret: Some(Secret::new("p:w")),
            auth_method: "client_secret_basic".into(),
        };
        let auth = client_auth(&c, &mut form).unwrap();
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
        assert!(client_auth(&c, &mut form).is_none());
        assert_eq!(form, [("client_id", "id 1"), ("client_secret", "p:w")]);

        let c = Client {
            auth_method: "none".into(),
            ..c
        };
        let mut form = Vec::new();
        assert!(client_auth(&c, &mut form).is_none());
        assert_eq!(form, [("client_id", "id 1")]);
    }
}
