//! The OAuth client of the hub: one [`OAuthManager`] for all servers, one [`AuthHook`] per
//! remote server, pending authorizations keyed by `state`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_hub_transport::{AuthChallenge, AuthHook};
use url::Url;

use crate::AuthError;
use crate::challenge::{BearerChallenge, split_scope};
use crate::config::ClientConfig;
use crate::discovery::{Discovered, discover};
use crate::hook::ServerAuth;
use crate::http::{Http, HttpExchange, HttpResponse, TransportHttp};
use crate::pkce::{Pkce, random_token};
use crate::secret::Secret;
use crate::shared::{Inner, PendingFlow, ServerState, lock};
use crate::store::{Store, StoredTokens};
use crate::token::client_auth;
use crate::token::parse_token_response;
use crate::urls::{canonical_resource, check_url, display_url};

/// How long a started authorization may wait for its callback.
const PENDING_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// At most this many authorizations wait at once (the oldest is dropped).
const MAX_PENDING: usize = 64;
/// Step-up re-authorizations allowed in a row that add no scope the hub did not already hold.
const MAX_STEP_UP_WITHOUT_NEW_SCOPE: u32 = 1;

/// The hub's OAuth client for remote upstream servers.
#[derive(Clone)]
pub struct OAuthManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OAuthManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthManager")
            .field("store", &self.inner.store.path())
            .field("redirect_uri", &self.inner.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl OAuthManager {
    /// Loads the token store at `store_path` (created on first write, mode 0600) and uses
    /// `redirect_uri_base` (the hub's callback, e.g. `http://127.0.0.1:37373/api/oauth/callback`)
    /// as the redirect URI of every authorization. HTTP goes through the transport crate's client.
    pub fn new(store_path: PathBuf, redirect_uri_base: String) -> Result<Self, AuthError> {
        Self::with_http(store_path, redirect_uri_base, Arc::new(TransportHttp))
    }

    /// Like [`OAuthManager::new`] with another HTTP implementation.
    pub fn with_http(
        store_path: PathBuf,
        redirect_uri_base: String,
        http: Arc<dyn HttpExchange>,
    ) -> Result<Self, AuthError> {
        let redirect = Url::parse(&redirect_uri_base)
            .map_err(|e| AuthError::Invalid(format!("invalid redirect URI: {e}")))?;
        // OAuth 2.1 §2.3.1 / the MCP spec: redirect URIs are loopback or https.
        check_url(&redirect, None)?;
        if redirect.fragment().is_some() {
            return Err(AuthError::Invalid(
                "the redirect URI must not have a fragment".into(),
            ));
        }
        Ok(OAuthManager {
            inner: Arc::new(Inner {
                store: Store::load(store_path)?,
                redirect_uri: redirect_uri_base,
                http: Http(http),
                servers: Mutex::new(HashMap::new()),
                pending: Mutex::new(Vec::new()),
                refresh_locks: Mutex::new(HashMap::new()),
                clock_offset: AtomicI64::new(0),
                node_storage: Mutex::new(None),
                node_checked: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The hook the transport uses for `server_name` at `server_url`. Calling it again for the
    /// same server (e.g. after a configuration reload) updates its settings.
    pub fn hook(
        &self,
        server_name: &str,
        server_url: &Url,
        client: ClientConfig,
    ) -> Arc<dyn AuthHook> {
        {
            let mut servers = lock(&self.inner.servers);
            match servers.get_mut(server_name) {
                Some(s) => {
                    s.config = client;
                    s.url = Some(server_url.clone());
                }
                None => {
                    servers.insert(
                        server_name.to_owned(),
                        ServerState::new(client, Some(server_url.clone())),
                    );
                }
            }
        }
        Arc::new(ServerAuth {
            inner: self.inner.clone(),
            name: server_name.to_owned(),
            key: canonical_resource(server_url),
        })
    }

    /// Reads the Node `mcp-hub`'s `oauth-storage.json` at `path` when the store has no tokens
    /// for a server, and converts that server's saved login (once, into this store, 0600). The
    /// file itself is never written.
    pub fn import_node_storage(&self, path: PathBuf) {
        *lock(&self.inner.node_storage) = Some(path);
    }

    /// Whether tokens are stored for a server URL.
    pub fn has_tokens(&self, server_url: &Url) -> bool {
        let key = canonical_resource(server_url);
        self.inner.store.read(|d| d.tokens_for(&key).is_some())
    }

    /// Forgets the tokens of a server URL (the client registration is kept).
    pub async fn clear_tokens(&self, server_url: &Url) -> Result<(), AuthError> {
        let key = canonical_resource(server_url);
        self.inner
            .store
            .remove_tokens(&key, self.inner.now_ms())
            .await
    }

    /// Starts an authorization: discovery, client registration, PKCE and `state`. Returns the
    /// URL the user opens; the flow waits in memory until [`OAuthManager::complete`].
    ///
    /// `challenge` is what the server answered (a 401, or a 403 `insufficient_scope` for
    /// step-up); `None` when the user asks to authorize, which also resets the step-up limit.
    ///
    /// When [`OAuthManager::hook`] was called for `server_name`, the URL given there is used:
    /// `server_url` may be the URL of the failed request (a legacy SSE `/messages` endpoint).
    pub async fn start_authorization(
        &self,
        server_name: &str,
        server_url: &Url,
        challenge: Option<&AuthChallenge>,
    ) -> Result<String, AuthError> {
        let inner = &self.inner;
        // Tokens could not be kept: fail here, for the servers that need OAuth only.
        if let Some(e) = inner.store.unusable() {
            return Err(e);
        }
        let configured = lock(&inner.servers)
            .get(server_name)
            .and_then(|s| s.url.clone());
        let server_url = configured.as_ref().unwrap_or(server_url);
        let key = canonical_resource(server_url);
        let bearer = challenge
            .and_then(|c| c.www_authenticate.as_deref())
            .and_then(BearerChallenge::parse);
        let step_up = challenge.is_some_and(|c| c.status == 403)
            && bearer.as_ref().is_some_and(|b| b.is_insufficient_scope());
        let held = inner.store.read(|d| {
            d.tokens_for(&key)
                .and_then(|t| t.scope.as_deref().map(split_scope))
        });
        let (config, challenge_scopes, step_up_scopes) = {
            let mut servers = lock(&inner.servers);
            let state = servers.entry(server_name.to_owned()).or_insert_with(|| {
                ServerState::new(ClientConfig::default(), Some(server_url.clone()))
            });
            if let Some(b) = &bearer {
                state.last_challenge = Some(b.clone());
            }
            if challenge.is_none() {
                state.step_ups_without_new_scope = 0;
            }
            let challenged = bearer
                .as_ref()
                .or(state.last_challenge.as_ref())
                .and_then(|b| b.scope.clone());
            let step_up_scopes = if step_up {
                let mut have: Vec<String> = state.requested.clone().unwrap_or_default();
                union_into(&mut have, held.as_deref().unwrap_or_default());
                let mut want = have.clone();
                union_into(&mut want, challenged.as_deref().unwrap_or_default());
                if want.len() == have.len() {
                    state.step_ups_without_new_scope += 1;
                    if state.step_ups_without_new_scope > MAX_STEP_UP_WITHOUT_NEW_SCOPE {
                        tracing::warn!(
                            server = server_name,
                            "step-up authorization brought no new scope; not retrying"
                        );
                        return Err(AuthError::StepUpLimit(server_name.to_owned()));
                    }
                } else {
                    state.step_ups_without_new_scope = 0;
                }
                Some(want)
            } else {
                None
            };
            (state.config.clone(), challenged, step_up_scopes)
        };

        let known = |issuer: &str| {
            inner.store.read(|d| {
                d.clients
                    .iter()
                    .any(|c| c.issuer == issuer && c.redirect_uri == inner.redirect_uri)
            })
        };
        let found = discover(&inner.http, server_url, bearer.as_ref(), &known).await?;
        let Discovered {
            resource,
            resource_scopes,
            metadata,
            default_endpoints,
        } = found;
        if !default_endpoints && !metadata.supports_s256() {
            return Err(AuthError::PkceUnsupported {
                issuer: metadata.issuer,
            });
        }

        let mut scopes = step_up_scopes.or_else(|| match (challenge_scopes, &config.scopes) {
            (Some(mut c), Some(extra)) => {
                union_into(&mut c, extra);
                Some(c)
            }
            (Some(c), None) => Some(c),
            (None, Some(extra)) => Some(extra.clone()),
            (None, None) => resource_scopes,
        });
        if metadata.lists_scope("offline_access") && metadata.allows_refresh_grant() {
            union_into(
                scopes.get_or_insert_with(Vec::new),
                &["offline_access".to_owned()],
            );
        }

        let client = inner.client_for(&metadata, &config).await?;
        let pkce = Pkce::generate()?;
        let state = random_token(32)?;
        let mut url = Url::parse(&metadata.authorization_endpoint)
            .map_err(|_| AuthError::Discovery("invalid authorization endpoint".into()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &client.id)
                .append_pair("redirect_uri", &inner.redirect_uri)
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", &state);
            if let Some(s) = scopes.as_ref().filter(|s| !s.is_empty()) {
                q.append_pair("scope", &s.join(" "));
            }
            q.append_pair("resource", &resource);
        }

        {
            let mut servers = lock(&inner.servers);
            if let Some(s) = servers.get_mut(server_name) {
                s.requested = scopes.clone();
            }
        }
        let flow = PendingFlow {
            state: Secret::new(state),
            server_name: server_name.to_owned(),
            server_key: key,
            issuer: metadata.issuer.clone(),
            iss_required: metadata.authorization_response_iss_parameter_supported,
            verifier: pkce.verifier,
            client,
            token_endpoint: metadata.token_endpoint.clone(),
            resource,
            scopes,
            started: Instant::now(),
        };
        {
            let mut pending = lock(&inner.pending);
            // One authorization per server: the newest URL is the one the user sees.
            pending
                .retain(|p| p.server_name != server_name && p.started.elapsed() < PENDING_LIFETIME);
            if pending.len() >= MAX_PENDING {
                pending.remove(0);
            }
            pending.push(flow);
        }
        tracing::info!(
            server = server_name,
            issuer = %metadata.issuer,
            endpoint = %display_url(&url),
            step_up,
            "authorization required; waiting for the user"
        );
        Ok(url.to_string())
    }

    /// Whether an authorization URL returned by [`start_authorization`](Self::start_authorization)
    /// still waits for its callback. A callback consumes its `state` whatever the outcome
    /// (tokens, a denial, a failed exchange), and flows expire: such a URL is dead and a new
    /// authorization must be started.
    pub fn is_pending(&self, authorization_url: &str) -> bool {
        let Some(state) = Url::parse(authorization_url).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
        }) else {
            return false;
        };
        let pending = lock(&self.inner.pending);
        let mut found = false;
        for p in pending.iter() {
            // Every pending state is compared, in constant time.
            if p.state.ct_eq(&state) && p.started.elapsed() < PENDING_LIFETIME {
                found = true;
            }
        }
        found
    }

    /// Completes an authorization from the callback's query parameters: checks `state`
    /// (constant time) and `iss` (RFC 9207), exchanges the code with the PKCE verifier and
    /// stores the tokens. Returns the server's name.
    pub async fn complete(&self, query: &HashMap<String, String>) -> Result<String, AuthError> {
        let state = query
            .get("state")
            .ok_or(AuthError::MissingParameter("state"))?;
        let flow = {
            let mut pending = lock(&self.inner.pending);
            // Compare against every pending state so timing does not reveal a partial match.
            let mut found = None;
            for (i, p) in pending.iter().enumerate() {
                if p.state.ct_eq(state) {
                    found = Some(i);
                }
            }
            found.map(|i| pending.remove(i))
        }
        .ok_or(AuthError::UnknownState)?;
        if flow.started.elapsed() >= PENDING_LIFETIME {
            return Err(AuthError::StateExpired(flow.server_name));
        }
        match query.get("iss") {
            Some(iss) if *iss != flow.issuer => {
                tracing::warn!(server = %flow.server_name, "authorization response from an unexpected issuer; rejected");
                return Err(AuthError::IssuerParameterMismatch);
            }
            None if flow.iss_required => {
                tracing::warn!(server = %flow.server_name, "authorization response without the required iss; rejected");
                return Err(AuthError::IssuerParameterMismatch);
            }
            _ => {}
        }
        if let Some(error) = query.get("error") {
            return Err(AuthError::AuthorizationDenied {
                error: error.clone(),
                description: query.get("error_description").cloned(),
            });
        }
        let code = query
            .get("code")
            .ok_or(AuthError::MissingParameter("code"))?;
        let token_endpoint = Url::parse(&flow.token_endpoint)
            .map_err(|_| AuthError::Discovery("invalid token endpoint".into()))?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.inner.redirect_uri.as_str()),
            ("code_verifier", flow.verifier.expose()),
            ("resource", flow.resource.as_str()),
        ];
        let authorization = client_auth(&flow.client, &mut form);
        let resp = self
            .inner
            .http
            .post_form(&token_endpoint, &form, authorization)
            .await?;
        let token = parse_token_response(&resp)?;
        let now = self.inner.now_secs();
        let stored = StoredTokens {
            server_url: flow.server_key.clone(),
            issuer: flow.issuer.clone(),
            client_id: flow.client.id.clone(),
            resource: flow.resource.clone(),
            token_endpoint: flow.token_endpoint.clone(),
            token_endpoint_auth_method: flow.client.auth_method.clone(),
            access_token: token.access_token,
            token_type: "Bearer".into(),
            refresh_token: token.refresh_token,
            expires_at: token.expires_in.map(|e| now.saturating_add(e)),
            scope: token.scope.or_else(|| flow.scopes.map(|s| s.join(" "))),
            obtained_at: now,
            updated_at: self.inner.now_ms(),
        };
        self.inner.store.put_tokens(stored).await?;
        tracing::info!(server = %flow.server_name, issuer = %flow.issuer, "authorization complete; tokens stored");
        Ok(flow.server_name)
    }

    /// Completes an authorization from the full redirect URL (the manual callback: the user
    /// pastes the URL the browser was sent to).
    pub async fn complete_from_url(&self, url: &str) -> Result<String, AuthError> {
        let url = Url::parse(url)
            .map_err(|_| AuthError::Invalid("the callback URL is not a valid URL".into()))?;
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        self.complete(&query).await
    }

    /// Headless authorization, for tests and the conformance runner: fetches the authorization
    /// URL without a browser and expects the authorization server to redirect straight back to
    /// the redirect URI (an auto-approving server); then completes the flow.
    pub async fn complete_headless(&self, authorization_url: &str) -> Result<String, AuthError> {
        let url = Url::parse(authorization_url)
            .map_err(|_| AuthError::Invalid("invalid authorization URL".into()))?;
        check_url(&url, None)?;
        let resp: HttpResponse = self.inner.http.get(&url).await?;
        let location = resp
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|_| (300..400).contains(&resp.status))
            .ok_or_else(|| {
                AuthError::Invalid(format!(
                    "the authorization server answered {} instead of redirecting back; \
                     a user has to authorize in a browser",
                    resp.status
                ))
            })?;
        let target = url
            .join(location)
            .map_err(|_| AuthError::Invalid("invalid redirect location".into()))?;
        if !target
            .as_str()
            .starts_with(self.inner.redirect_uri.as_str())
        {
            return Err(AuthError::Invalid(
                "the authorization server redirected elsewhere than the hub's callback".into(),
            ));
        }
        self.complete_from_url(target.as_str()).await
    }

    /// Moves the manager's clock forward (tests of expiry).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, secs: i64) {
        self.inner
            .clock_offset
            .fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

fn union_into(into: &mut Vec<String>, more: &[String]) {
    for s in more {
        if !into.contains(s) {
            into.push(s.clone());
        }
    }
}
