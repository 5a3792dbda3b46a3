//! The OAuth client of the hub: one [`OAuthManager`] for all servers, one [`AuthHook`] per
//! remote server, pending authorizations keyed by `state`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mcp_hub_transport::{AuthChallenge, AuthFailure, AuthHook};
use serde::Deserialize;
use url::Url;

use crate::AuthError;
use crate::challenge::{BearerChallenge, split_scope};
use crate::config::ClientConfig;
use crate::discovery::{AuthServerMetadata, Discovered, discover};
use crate::http::{Http, HttpExchange, HttpResponse, TransportHttp};
use crate::pkce::{Pkce, random_token};
use crate::secret::Secret;
use crate::store::{Store, StoredClient, StoredTokens};
use crate::urls::{canonical_resource, check_url, display_url};

/// How long a started authorization may wait for its callback.
const PENDING_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// At most this many authorizations wait at once (the oldest is dropped).
const MAX_PENDING: usize = 64;
/// Refresh this long before expiry (at most a quarter of the token's lifetime).
const REFRESH_MARGIN_SECS: u64 = 60;
/// A token obtained this recently is not refreshed again on a 401: the 401 most likely answered
/// a request that still carried the previous token.
const FRESH_TOKEN_SECS: u64 = 5;
/// Step-up re-authorizations allowed in a row that add no scope the hub did not already hold.
const MAX_STEP_UP_WITHOUT_NEW_SCOPE: u32 = 1;
/// `client_name` sent in dynamic registration.
const CLIENT_NAME: &str = "MCP Hub";

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

struct Inner {
    store: Store,
    redirect_uri: String,
    http: Http,
    servers: Mutex<HashMap<String, ServerState>>,
    pending: Mutex<Vec<PendingFlow>>,
    refresh_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Seconds added to the wall clock (tests move time forward with it).
    clock_offset: AtomicI64,
}

/// What the hub remembers about one configured server between requests.
#[derive(Debug, Clone)]
struct ServerState {
    config: ClientConfig,
    /// The configured server URL (from [`OAuthManager::hook`]).
    url: Option<Url>,
    /// The last `Bearer` challenge the server sent (its scopes drive the next authorization).
    last_challenge: Option<BearerChallenge>,
    /// Scopes of the last authorization request.
    requested: Option<Vec<String>>,
    /// Step-up authorizations in a row that brought no new scope.
    step_ups_without_new_scope: u32,
}

impl ServerState {
    fn new(config: ClientConfig, url: Option<Url>) -> ServerState {
        ServerState {
            config,
            url,
            last_challenge: None,
            requested: None,
            step_ups_without_new_scope: 0,
        }
    }
}

/// An authorization waiting for its callback.
#[derive(Debug)]
struct PendingFlow {
    state: Secret,
    server_name: String,
    server_key: String,
    issuer: String,
    iss_required: bool,
    verifier: Secret,
    client: Client,
    token_endpoint: String,
    resource: String,
    scopes: Option<Vec<String>>,
    started: Instant,
}

/// The client identity used at one authorization server.
#[derive(Debug, Clone)]
struct Client {
    id: String,
    secret: Option<Secret>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    auth_method: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
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

        let client = self.client_for(&metadata, &config).await?;
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

    /// The client identity for an authorization server, in the spec's order: pre-registered,
    /// then a Client ID Metadata Document, then a stored or new dynamic registration.
    async fn client_for(
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

    /// Moves the manager's clock forward (tests of expiry).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, secs: i64) {
        self.inner.clock_offset.fetch_add(secs, Ordering::SeqCst);
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

/// Adds client authentication to a token request: form fields, or the `Authorization` value.
fn client_auth<'a>(client: &'a Client, form: &mut Vec<(&'static str, &'a str)>) -> Option<String> {
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

fn union_into(into: &mut Vec<String>, more: &[String]) {
    for s in more {
        if !into.contains(s) {
            into.push(s.clone());
        }
    }
}

/// A successful token response.
struct TokenResponse {
    access_token: Secret,
    refresh_token: Option<Secret>,
    expires_in: Option<u64>,
    scope: Option<String>,
}

/// Parses a token endpoint answer; errors carry only `error` and `error_description`.
fn parse_token_response(resp: &HttpResponse) -> Result<TokenResponse, AuthError> {
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
fn oauth_error_text(resp: &HttpResponse) -> String {
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
    fn now_secs(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        now.saturating_add_signed(self.clock_offset.load(Ordering::SeqCst))
    }

    fn now_ms(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        now.saturating_add_signed(
            self.clock_offset
                .load(Ordering::SeqCst)
                .saturating_mul(1000),
        )
    }

    fn refresh_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.refresh_locks)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// The secret of a client id, from the server's configuration or its stored registration.
    fn secret_of(&self, server_name: &str, issuer: &str, client_id: &str) -> Option<Secret> {
        let configured = lock(&self.servers).get(server_name).and_then(|s| {
            (s.config.client_id.as_deref() == Some(client_id))
                .then(|| s.config.client_secret.clone())
                .flatten()
        });
        configured.map(Secret::new).or_else(|| {
            self.store.read(|d| {
                d.clients
                    .iter()
                    .find(|c| c.issuer == issuer && c.client_id == client_id)
                    .and_then(|c| c.client_secret.clone())
            })
        })
    }

    /// Refreshes the tokens of `key` unless someone else already replaced the version the
    /// caller saw (`seen`, the `updated_at` of that version). `Ok(None)`: no usable tokens are
    /// left (no refresh token, or it was refused) and the user must authorize again.
    async fn refresh(
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
fn needs_refresh(t: &StoredTokens, now: u64) -> bool {
    let Some(expires_at) = t.expires_at else {
        return false;
    };
    let lifetime = expires_at.saturating_sub(t.obtained_at);
    let margin = REFRESH_MARGIN_SECS.min(lifetime / 4);
    now.saturating_add(margin) >= expires_at
}

/// The [`AuthHook`] of one server.
struct ServerAuth {
    inner: Arc<Inner>,
    name: String,
    /// Canonical server URL: the token store key.
    key: String,
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
        let Some(t) = inner.store.read(|d| d.tokens_for(&self.key).cloned()) else {
            return Ok(None);
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
