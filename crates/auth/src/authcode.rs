//! The authorization code flow (a user in a browser): discovery, client identity, PKCE, `state`
//! and the scopes to ask for; then the callback (`state`, RFC 9207 `iss`, the code exchange).
//! Pending authorizations are keyed by `state`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mcp_hub_transport::AuthChallenge;
use url::Url;

use crate::AuthError;
use crate::challenge::{BearerChallenge, split_scope};
use crate::client::Client;
use crate::config::{AuthConfig, ClientConfig};
use crate::discovery::{AuthServerMetadata, Discovered, discover};
use crate::http::HttpResponse;
use crate::manager::{Inner, OAuthManager, ServerState, lock, union_into};
use crate::pkce::{Pkce, random_token};
use crate::secret::Secret;
use crate::token::TokenRequest;
use crate::urls::{canonical_resource, check_url, display_url};

/// How long a started authorization may wait for its callback.
pub(crate) const PENDING_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// At most this many authorizations wait at once (the oldest is dropped).
const MAX_PENDING: usize = 64;
/// Step-up re-authorizations allowed in a row that add no scope the hub did not already hold.
const MAX_STEP_UP_WITHOUT_NEW_SCOPE: u32 = 1;

/// An authorization waiting for its callback.
#[derive(Debug)]
pub(crate) struct PendingFlow {
    pub(crate) state: Secret,
    pub(crate) server_name: String,
    pub(crate) server_key: String,
    pub(crate) metadata: AuthServerMetadata,
    pub(crate) verifier: Secret,
    pub(crate) client: Client,
    pub(crate) resource: String,
    pub(crate) scopes: Option<Vec<String>>,
    /// Exchange the code with a DPoP proof (RFC 9449).
    pub(crate) dpop: bool,
    /// The redirect URI the code is bound to: the one of the replica that started the flow,
    /// whichever replica completes it.
    pub(crate) redirect_uri: String,
    pub(crate) started: Instant,
}

/// What a server asked for, and what the hub should request: the step-up union when the
/// challenge is `insufficient_scope`, else the challenge's scopes (plus the configured ones),
/// else the configured ones, else the resource's `scopes_supported`.
pub(crate) struct ScopeChoice {
    pub(crate) bearer: Option<BearerChallenge>,
    pub(crate) step_up: bool,
    pub(crate) scopes: Option<Vec<String>>,
    /// The server's (last) challenge used the `DPoP` scheme.
    pub(crate) dpop_challenge: bool,
}

impl Inner {
    /// Records the server's challenge and works out the scopes to request. Fails when step-up
    /// keeps bringing nothing new.
    pub(crate) fn choose_scopes(
        &self,
        server_name: &str,
        server_url: &Url,
        challenge: Option<&AuthChallenge>,
        configured: Option<&[String]>,
    ) -> Result<(ScopeChoice, Option<Vec<String>>), AuthError> {
        let key = canonical_resource(server_url);
        let bearer = challenge
            .and_then(|c| c.www_authenticate.as_deref())
            .and_then(BearerChallenge::parse);
        let step_up = challenge.is_some_and(|c| c.status == 403)
            && bearer.as_ref().is_some_and(|b| b.is_insufficient_scope());
        let held = self.store.read(|d| {
            d.tokens_for(&key)
                .and_then(|t| t.scope.as_deref().map(split_scope))
        });
        let mut servers = lock(&self.servers);
        let state = servers.entry(server_name.to_owned()).or_insert_with(|| {
            ServerState::new(
                ClientConfig::default(),
                AuthConfig::default(),
                Some(server_url.clone()),
            )
        });
        if let Some(b) = &bearer {
            state.last_challenge = Some(b.clone());
        }
        if challenge.is_none() {
            state.step_ups_without_new_scope = 0;
        }
        let latest = bearer.as_ref().or(state.last_challenge.as_ref());
        let dpop_challenge = latest.is_some_and(|b| b.dpop);
        let challenged = latest.and_then(|b| b.scope.clone());
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
        let scopes = step_up_scopes.or_else(|| match (challenged, configured) {
            (Some(mut c), Some(extra)) => {
                union_into(&mut c, extra);
                Some(c)
            }
            (Some(c), None) => Some(c),
            (None, Some(extra)) => Some(extra.to_vec()),
            (None, None) => None,
        });
        let choice = ScopeChoice {
            bearer,
            step_up,
            scopes,
            dpop_challenge,
        };
        Ok((choice, held))
    }

    /// Remembers the scopes just requested (the base of the next step-up).
    pub(crate) fn set_requested(&self, server_name: &str, scopes: &Option<Vec<String>>) {
        if let Some(s) = lock(&self.servers).get_mut(server_name) {
            s.requested = scopes.clone();
        }
    }

    /// Discovery for a server, preferring an authorization server the hub is registered with.
    pub(crate) async fn discover(
        &self,
        server_url: &Url,
        bearer: Option<&BearerChallenge>,
    ) -> Result<Discovered, AuthError> {
        let known = |issuer: &str| {
            self.store.read(|d| {
                d.clients
                    .iter()
                    .any(|c| c.issuer == issuer && c.redirect_uri == self.redirect_uri)
            })
        };
        discover(&self.http, server_url, bearer, &known).await
    }
}

impl OAuthManager {
    /// Starts an authorization: discovery, client registration, PKCE and `state`. Returns the
    /// URL the user opens; the flow waits in memory until [`OAuthManager::complete`].
    ///
    /// `challenge` is what the server answered (a 401, or a 403 `insufficient_scope` for
    /// step-up); `None` when the user asks to authorize, which also resets the step-up limit.
    ///
    /// When [`OAuthManager::hook`] was called for `server_name`, the URL given there is used:
    /// `server_url` may be the URL of the failed request (a legacy SSE `/messages` endpoint).
    ///
    /// A server configured with a grant that needs no user (`auth.type` other than
    /// `authorization_code`) gets [`AuthError::NotInteractive`]: its tokens come from the hook.
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
        let server = inner.server(server_name);
        if let Some(s) = &server
            && !s.auth.grant.is_interactive()
        {
            return Err(AuthError::NotInteractive {
                server: server_name.to_owned(),
                grant: s.auth.grant.name(),
            });
        }
        let configured_url = server.as_ref().and_then(|s| s.url.clone());
        let server_url = configured_url.as_ref().unwrap_or(server_url);
        let key = canonical_resource(server_url);
        let config = server
            .as_ref()
            .map(|s| s.config.clone())
            .unwrap_or_default();
        let dpop_mode = server.as_ref().map(|s| s.auth.dpop).unwrap_or_default();
        let (choice, _) =
            inner.choose_scopes(server_name, server_url, challenge, config.scopes.as_deref())?;

        let Discovered {
            resource,
            resource_scopes,
            resource_dpop,
            metadata,
            default_endpoints,
        } = inner.discover(server_url, choice.bearer.as_ref()).await?;
        if !default_endpoints && !metadata.supports_s256() {
            return Err(AuthError::PkceUnsupported {
                issuer: metadata.issuer,
            });
        }
        let mut scopes = choice.scopes.or(resource_scopes);
        if metadata.lists_scope("offline_access") && metadata.allows_refresh_grant() {
            union_into(
                scopes.get_or_insert_with(Vec::new),
                &["offline_access".to_owned()],
            );
        }

        let client = self.client_for(&metadata, &config).await?;
        let dpop =
            crate::dpop::wanted(dpop_mode, &metadata, choice.dpop_challenge || resource_dpop);
        let pkce = Pkce::generate()?;
        let state = random_token(32)?;
        let mut url = Url::parse(&metadata.authorization_endpoint)
            .map_err(|_| AuthError::Discovery("invalid authorization endpoint".into()))?;
        let jkt = match dpop {
            true => Some(inner.dpop.key().await?.thumbprint.clone()),
            false => None,
        };
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
            if let Some(jkt) = &jkt {
                // RFC 9449 §10: binds the code to the hub's key.
                q.append_pair("dpop_jkt", jkt);
            }
        }

        inner.set_requested(server_name, &scopes);
        let issuer = metadata.issuer.clone();
        let flow = PendingFlow {
            state: Secret::new(state),
            server_name: server_name.to_owned(),
            server_key: key,
            metadata,
            verifier: pkce.verifier,
            client,
            resource,
            scopes,
            dpop,
            redirect_uri: inner.redirect_uri.clone(),
            started: Instant::now(),
        };
        // In cluster mode, first where every replica finds it.
        inner.share_pending(&flow).await?;
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
            issuer = %issuer,
            endpoint = %display_url(&url),
            step_up = choice.step_up,
            dpop,
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

    /// [`is_pending`](Self::is_pending), for the whole cluster in cluster mode: a flow this
    /// replica started may have been completed (or refused) by a callback on another one.
    pub async fn is_pending_anywhere(&self, authorization_url: &str) -> bool {
        let state = Url::parse(authorization_url).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
        });
        match state {
            Some(state) => match self.inner.shared_pending_exists(&state).await {
                Some(shared) => shared,
                None => self.is_pending(authorization_url),
            },
            None => false,
        }
    }

    /// Completes an authorization from the callback's query parameters: checks `state`
    /// (constant time) and `iss` (RFC 9207), exchanges the code with the PKCE verifier and
    /// stores the tokens. Returns the server's name.
    pub async fn complete(&self, query: &HashMap<String, String>) -> Result<String, AuthError> {
        let state = query
            .get("state")
            .ok_or(AuthError::MissingParameter("state"))?;
        let local = {
            let mut pending = lock(&self.inner.pending);
            // Compare against every pending state so timing does not reveal a partial match.
            let mut found = None;
            for (i, p) in pending.iter().enumerate() {
                if p.state.ct_eq(state) {
                    found = Some(i);
                }
            }
            found.map(|i| pending.remove(i))
        };
        // In cluster mode the shared copy decides, wherever the flow started: a callback
        // consumes it for every replica.
        let flow = match self.inner.take_shared_pending(state).await? {
            Some(shared) => shared,
            None => local.ok_or(AuthError::UnknownState)?,
        };
        if flow.started.elapsed() >= PENDING_LIFETIME {
            return Err(AuthError::StateExpired(flow.server_name));
        }
        // RFC 9207 / SEP-2468: simple string comparison, no URL normalization.
        match query.get("iss") {
            Some(iss) if *iss != flow.metadata.issuer => {
                tracing::warn!(server = %flow.server_name, "authorization response from an unexpected issuer; rejected");
                return Err(AuthError::IssuerParameterMismatch);
            }
            None if flow.metadata.authorization_response_iss_parameter_supported => {
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
        let token = self
            .inner
            .request_token(TokenRequest {
                endpoint: &flow.metadata.token_endpoint,
                issuer: &flow.metadata.issuer,
                client: &flow.client,
                dpop: flow.dpop,
                form: vec![
                    ("grant_type", "authorization_code".into()),
                    ("code", code.clone()),
                    ("redirect_uri", flow.redirect_uri.clone()),
                    ("code_verifier", flow.verifier.expose().to_owned()),
                    ("resource", flow.resource.clone()),
                ],
            })
            .await?
            .issued()?;
        let token_type = token.token_type.clone();
        self.inner
            .store_tokens(
                &flow.server_key,
                &flow.metadata,
                &flow.client,
                &flow.resource,
                token,
                flow.scopes.as_deref(),
            )
            .await?;
        tracing::info!(server = %flow.server_name, issuer = %flow.metadata.issuer, token_type = %token_type, "authorization complete; tokens stored");
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
}
