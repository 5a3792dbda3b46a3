//! The grants that need no user, run by the hook when a server answers 401 (or 403 for more
//! scope): `client_credentials` (secret or `private_key_jwt`), `jwt_bearer` (a workload's JWT,
//! RFC 7523 §2.1) and `enterprise_managed` (SEP-990: the user's ID token exchanged at the
//! identity provider for an ID-JAG, RFC 8693, then that assertion at the server's authorization
//! server).

use mcp_hub_transport::AuthChallenge;

use crate::AuthError;
use crate::client::Client;
use crate::config::{ClientAuth, Grant, Source};
use crate::discovery::Discovered;
use crate::jose::sha256_b64;
use crate::manager::{Inner, lock};
use crate::store::StoredTokens;
use crate::token::{Outcome, TokenRequest, TokenResponse};

/// RFC 7523 §2.1.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693 §2.1.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3.
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The Identity Assertion JWT Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant).
const ID_JAG_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

impl Inner {
    /// Obtains and stores tokens for `server_name` with its configured grant, unless tokens
    /// newer than the version the caller saw (`seen`) appeared meanwhile. `challenge` is the
    /// answer that called for it (its `resource_metadata` and `scope` drive discovery).
    pub(crate) async fn obtain(
        &self,
        server_name: &str,
        key: &str,
        seen: Option<u64>,
        challenge: Option<&AuthChallenge>,
    ) -> Result<StoredTokens, AuthError> {
        let gate = self.refresh_lock(key);
        let _one_at_a_time = gate.lock().await;
        // In cluster mode, under the same cluster-wide lock as a refresh, after reading the
        // shared copy: replicas that need a token at once (all starting together, or all
        // seeing it expire) make one grant, and the others use its result.
        let cluster_lock = match self.store.shared() {
            Some(shared) => Some(shared.lock(key).await.map_err(AuthError::Shared)?),
            None => None,
        };
        let result = match self.store.pull(key).await {
            Ok(()) => self.obtain_held(server_name, key, seen, challenge).await,
            Err(e) => Err(e),
        };
        if let Some(l) = cluster_lock {
            l.release().await;
        }
        result
    }

    /// [`obtain`](Self::obtain) once its locks are held.
    async fn obtain_held(
        &self,
        server_name: &str,
        key: &str,
        seen: Option<u64>,
        challenge: Option<&AuthChallenge>,
    ) -> Result<StoredTokens, AuthError> {
        if let Some(current) = self.store.read(|d| d.tokens_for(key).cloned())
            && Some(current.updated_at) != seen
        {
            return Ok(current);
        }
        let server = self
            .server(server_name)
            .ok_or_else(|| AuthError::Invalid(format!("unknown server {server_name:?}")))?;
        let url = server
            .url
            .clone()
            .ok_or_else(|| AuthError::Invalid(format!("no URL for server {server_name:?}")))?;
        let grant = server.auth.grant.clone();
        let configured_scopes = match &grant {
            Grant::ClientCredentials { scopes, .. }
            | Grant::JwtBearer { scopes, .. }
            | Grant::EnterpriseManaged { scopes, .. } => scopes.clone(),
            Grant::AuthorizationCode => {
                return Err(AuthError::Invalid(format!(
                    "server {server_name:?} needs a user to authorize"
                )));
            }
        };
        let (choice, _) =
            self.choose_scopes(server_name, &url, challenge, configured_scopes.as_deref())?;
        let Discovered {
            resource,
            resource_scopes,
            resource_dpop,
            metadata,
            ..
        } = self.discover(&url, choice.bearer.as_ref()).await?;
        let grant_type = match grant {
            Grant::ClientCredentials { .. } => "client_credentials",
            _ => JWT_BEARER,
        };
        if !metadata.allows_grant(grant_type) {
            return Err(AuthError::GrantUnsupported {
                issuer: metadata.issuer.clone(),
                grant: grant_type.to_owned(),
            });
        }
        let scopes = choice.scopes.or(resource_scopes);
        let dpop = crate::dpop::wanted(
            server.auth.dpop,
            &metadata,
            choice.dpop_challenge || resource_dpop,
        );
        let mut form: Vec<(&'static str, String)> = vec![("grant_type", grant_type.into())];
        let client = match &grant {
            Grant::ClientCredentials { client, .. } => {
                Client::configured(client, Some(&metadata)).await?
            }
            Grant::JwtBearer {
                client, assertion, ..
            } => {
                let assertion = assertion.read().await?;
                let fingerprint = sha256_b64(assertion.expose());
                if let Some((refused, why)) = &server.refused_assertion
                    && *refused == fingerprint
                {
                    // SEP-1933: a refused assertion is not retried; a new one (a rotated file,
                    // a new placeholder value, a reload) is.
                    return Err(why.clone());
                }
                form.push(("assertion", assertion.expose().to_owned()));
                Client::configured(client, Some(&metadata)).await?
            }
            Grant::EnterpriseManaged {
                client,
                idp_token_endpoint,
                idp_client,
                id_token,
                ..
            } => {
                let id_jag = self
                    .exchange_id_token(
                        idp_token_endpoint,
                        idp_client.as_ref(),
                        id_token,
                        &metadata.issuer,
                        &resource,
                        scopes.as_deref(),
                    )
                    .await?;
                form.push(("assertion", id_jag.expose().to_owned()));
                Client::configured(client, Some(&metadata)).await?
            }
            Grant::AuthorizationCode => unreachable!("refused above"),
        };
        if let Some(s) = scopes.as_ref().filter(|s| !s.is_empty()) {
            form.push(("scope", s.join(" ")));
        }
        form.push(("resource", resource.clone()));
        let outcome = self
            .request_token(TokenRequest {
                endpoint: &metadata.token_endpoint,
                issuer: &metadata.issuer,
                client: &client,
                dpop,
                form: form.clone(),
            })
            .await?;
        let token = match outcome {
            Outcome::Issued(t) => t,
            Outcome::Refused { text, .. } => {
                let e = AuthError::Token(text);
                if matches!(grant, Grant::JwtBearer { .. })
                    && let Some((_, assertion)) = form.iter().find(|(k, _)| *k == "assertion")
                    && let Some(s) = lock(&self.servers).get_mut(server_name)
                {
                    s.refused_assertion = Some((sha256_b64(assertion), e.clone()));
                }
                tracing::warn!(server = server_name, grant = grant.name(), error = %e, "token request refused");
                return Err(e);
            }
        };
        self.set_requested(server_name, &scopes);
        let stored = self
            .store_tokens(key, &metadata, &client, &resource, token, scopes.as_deref())
            .await?;
        tracing::info!(
            server = server_name,
            issuer = %metadata.issuer,
            grant = grant.name(),
            token_type = %stored.token_type,
            "access token obtained"
        );
        Ok(stored)
    }

    /// SEP-990 step 1: the ID token for an ID-JAG at the identity provider (RFC 8693).
    async fn exchange_id_token(
        &self,
        endpoint: &str,
        idp_client: Option<&ClientAuth>,
        id_token: &Source,
        audience: &str,
        resource: &str,
        scopes: Option<&[String]>,
    ) -> Result<crate::secret::Secret, AuthError> {
        let id_token = id_token.read().await?;
        let client = match idp_client {
            Some(c) => Client::configured(c, None).await?,
            None => Client::public(""),
        };
        let mut form: Vec<(&'static str, String)> = vec![
            ("grant_type", TOKEN_EXCHANGE.into()),
            ("requested_token_type", ID_JAG_TYPE.into()),
            ("subject_token", id_token.expose().to_owned()),
            ("subject_token_type", ID_TOKEN_TYPE.into()),
            ("audience", audience.to_owned()),
            ("resource", resource.to_owned()),
        ];
        if let Some(s) = scopes.filter(|s| !s.is_empty()) {
            form.push(("scope", s.join(" ")));
        }
        let outcome = self
            .request_token(TokenRequest {
                endpoint,
                // The identity provider's issuer is not configured; its token endpoint is the
                // audience RFC 7523 also accepts.
                issuer: endpoint,
                client: &client,
                dpop: false,
                form,
            })
            .await?;
        let TokenResponse {
            access_token,
            issued_token_type,
            ..
        } = match outcome {
            Outcome::Issued(t) => t,
            Outcome::Refused { text, .. } => {
                return Err(AuthError::Token(format!(
                    "the identity provider refused the token exchange: {text}"
                )));
            }
        };
        if issued_token_type.as_deref() != Some(ID_JAG_TYPE) {
            return Err(AuthError::Token(
                "the identity provider did not issue an ID-JAG".into(),
            ));
        }
        Ok(access_token)
    }
}
