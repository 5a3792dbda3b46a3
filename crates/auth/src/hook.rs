//! The [`AuthHook`] of one server: the bearer token for each request, refreshed before it
//! expires or when the server refuses it.

use std::sync::Arc;

use mcp_hub_transport::{AuthChallenge, AuthFailure, AuthHook};

use crate::AuthError;
use crate::challenge::BearerChallenge;
use crate::shared::{Inner, lock};
use crate::store::StoredTokens;
use crate::token::needs_refresh;

/// A token obtained this recently is not refreshed again on a 401: the 401 most likely answered
/// a request that still carried the previous token.
const FRESH_TOKEN_SECS: u64 = 5;

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

fn bearer(t: &StoredTokens) -> String {
    format!("Bearer {}", t.access_token.expose())
}

#[async_trait::async_trait]
impl AuthHook for ServerAuth {
    async fn authorization(&self) -> Result<Option<String>, AuthFailure> {
        let inner = &self.inner;
        let stored = inner.store.read(|d| d.tokens_for(&self.key).cloned());
        let t = match stored {
            Some(t) => t,
            None => match inner.import_node_login(&self.name, &self.key).await {
                Some(t) => t,
                None => return Ok(None),
            },
        };
        let now = inner.now_secs();
        if !needs_refresh(&t, now) {
            return Ok(Some(bearer(&t)));
        }
        match inner.refresh(&self.name, &self.key, t.updated_at).await {
            Ok(Some(new)) => Ok(Some(bearer(&new))),
            Ok(None) => Ok(None),
            // Not expired yet (only inside the margin): the old token still works.
            Err(e) if t.expires_at.is_some_and(|x| now < x) => {
                tracing::warn!(server = %self.name, error = %e, "token refresh failed; using the current token until it expires");
                Ok(Some(bearer(&t)))
            }
            Err(e) => Err(failure(e)),
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
        if challenge.status == 403 {
            // Step-up needs the user: the caller starts an authorization with this challenge.
            tracing::info!(server = %self.name, "the server wants more scopes (insufficient_scope)");
            return Ok(false);
        }
        let Some(t) = inner.store.read(|d| d.tokens_for(&self.key).cloned()) else {
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
