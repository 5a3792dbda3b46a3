//! The [`AuthHook`] of one server: the credentials of each request (a bearer token, or a DPoP
//! token with a fresh proof), refresh before expiry, and what to do on 401/403 (refresh, a new
//! grant for servers that need no user, a DPoP nonce retry, or hand over to the user).

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};
use mcp_hub_transport::{AuthChallenge, AuthFailure, AuthHook};
use url::Url;

use crate::AuthError;
use crate::challenge::BearerChallenge;
use crate::manager::{Inner, lock};
use crate::store::StoredTokens;

/// Refresh this long before expiry (at most a quarter of the token's lifetime).
const REFRESH_MARGIN_SECS: u64 = 60;
/// A token obtained this recently is not refreshed again on a 401: the 401 most likely answered
/// a request that still carried the previous token.
const FRESH_TOKEN_SECS: u64 = 5;

/// Whether a token should be refreshed before use.
pub(crate) fn needs_refresh(t: &StoredTokens, now: u64) -> bool {
    let Some(expires_at) = t.expires_at else {
        return false;
    };
    let lifetime = expires_at.saturating_sub(t.obtained_at);
    let margin = REFRESH_MARGIN_SECS.min(lifetime / 4);
    now.saturating_add(margin) >= expires_at
}

fn is_dpop(t: &StoredTokens) -> bool {
    t.token_type.eq_ignore_ascii_case("dpop")
}

/// The [`AuthHook`] of one server.
pub(crate) struct ServerAuth {
    pub(crate) inner: Arc<Inner>,
    pub(crate) name: String,
    /// Canonical server URL: the token store key.
    pub(crate) key: String,
}

impl std::fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAuth")
            .field("server", &self.name)
            .finish_non_exhaustive()
    }
}

fn failure(e: AuthError) -> AuthFailure {
    AuthFailure(e.to_string())
}

fn sensitive(value: &str) -> Result<HeaderValue, AuthFailure> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| AuthFailure("a token holds characters a header cannot carry".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

impl ServerAuth {
    /// Whether this server's tokens come from a grant without a user.
    fn machine(&self) -> bool {
        self.inner
            .server(&self.name)
            .is_some_and(|s| !s.auth.grant.is_interactive())
    }

    fn stored(&self) -> Option<StoredTokens> {
        self.inner.store.read(|d| d.tokens_for(&self.key).cloned())
    }

    /// The tokens to use now: refreshed (or, for grants without a user, obtained again) when
    /// they expire soon.
    async fn current(&self) -> Result<Option<StoredTokens>, AuthError> {
        let inner = &self.inner;
        if self.stored().is_none() {
            // In cluster mode another replica may have obtained them.
            inner.store.pull(&self.key).await?;
        }
        let t = match self.stored() {
            Some(t) => t,
            // A login the Node mcp-hub saved for this server, converted once.
            None => match inner.import_node_login(&self.name, &self.key).await {
                Some(t) => t,
                None => return Ok(None),
            },
        };
        let now = inner.now_secs();
        if !needs_refresh(&t, now) {
            return Ok(Some(t));
        }
        let renewed = match inner.refresh(&self.name, &self.key, t.updated_at).await {
            Ok(None) if self.machine() => inner
                .obtain(&self.name, &self.key, Some(t.updated_at), None)
                .await
                .map(Some),
            other => other,
        };
        match renewed {
            // Not expired yet (only inside the margin): the old token still works.
            Err(e) if t.expires_at.is_some_and(|x| now < x) && self.stored().is_some() => {
                tracing::warn!(server = %self.name, error = %e, "token renewal failed; using the current token until it expires");
                Ok(Some(t))
            }
            other => other,
        }
    }
}

#[async_trait::async_trait]
impl AuthHook for ServerAuth {
    async fn authorization(&self) -> Result<Option<String>, AuthFailure> {
        Ok(self
            .current()
            .await
            .map_err(failure)?
            .map(|t| format!("{} {}", t.token_type, t.access_token.expose())))
    }

    async fn credentials(
        &self,
        method: &Method,
        url: &Url,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, AuthFailure> {
        let Some(t) = self.current().await.map_err(failure)? else {
            return Ok(Vec::new());
        };
        let token = t.access_token.expose();
        if !is_dpop(&t) {
            return Ok(vec![(
                http::header::AUTHORIZATION,
                sensitive(&format!("Bearer {token}"))?,
            )]);
        }
        // RFC 9449 §7.1: the DPoP scheme, and a new proof bound to this request and token.
        let proof = self
            .inner
            .dpop
            .proof(method.as_str(), url, Some(token))
            .await
            .map_err(failure)?;
        Ok(vec![
            (
                http::header::AUTHORIZATION,
                sensitive(&format!("DPoP {token}"))?,
            ),
            (HeaderName::from_static("dpop"), sensitive(&proof)?),
        ])
    }

    fn on_response(&self, url: &Url, headers: &http::HeaderMap) {
        if headers.contains_key("dpop-nonce") && self.stored().is_some_and(|t| is_dpop(&t)) {
            self.inner.dpop.remember_nonce(url, headers);
        }
    }

    async fn on_unauthorized(&self, challenge: &AuthChallenge) -> Result<bool, AuthFailure> {
        let inner = &self.inner;
        let parsed = challenge
            .www_authenticate
            .as_deref()
            .and_then(BearerChallenge::parse);
        if let Some(b) = &parsed
            && let Some(s) = lock(&inner.servers).get_mut(&self.name)
        {
            s.last_challenge = Some(b.clone());
        }
        let stored = self.stored();
        if parsed
            .as_ref()
            .is_some_and(|b| b.error.as_deref() == Some("use_dpop_nonce"))
            && stored.as_ref().is_some_and(is_dpop)
        {
            // RFC 9449 §9: the nonce came with this answer (`on_response`); prove again with it.
            tracing::debug!(server = %self.name, "the server wants a DPoP nonce; retrying with it");
            return Ok(true);
        }
        if self.machine() {
            return self.renew_without_user(challenge, stored).await;
        }
        if challenge.status == 403 {
            // Step-up needs the user: the caller starts an authorization with this challenge.
            tracing::info!(server = %self.name, "the server wants more scopes (insufficient_scope)");
            return Ok(false);
        }
        let Some(t) = stored else {
            return Ok(false);
        };
        if inner.now_secs().saturating_sub(t.obtained_at) < FRESH_TOKEN_SECS {
            return Ok(true);
        }
        match inner.refresh(&self.name, &self.key, t.updated_at).await {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Ok(false),
            Err(e) => Err(failure(e)),
        }
    }
}

impl ServerAuth {
    /// A 401 or 403 for a server whose grant needs no user: new tokens, at once.
    async fn renew_without_user(
        &self,
        challenge: &AuthChallenge,
        stored: Option<StoredTokens>,
    ) -> Result<bool, AuthFailure> {
        let inner = &self.inner;
        let seen = stored.as_ref().map(|t| t.updated_at);
        if challenge.status == 401
            && let Some(t) = &stored
        {
            if inner.now_secs().saturating_sub(t.obtained_at) < FRESH_TOKEN_SECS {
                return Ok(true);
            }
            if t.refresh_token.is_some()
                && let Some(_) = inner
                    .refresh(&self.name, &self.key, t.updated_at)
                    .await
                    .map_err(failure)?
            {
                return Ok(true);
            }
        }
        // A 403 asks for more scope: `obtain` requests the union (step-up without a user).
        inner
            .obtain(&self.name, &self.key, seen, Some(challenge))
            .await
            .map(|_| true)
            .map_err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

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
}
