//! Discovery: Protected Resource Metadata (RFC 9728), the choice of authorization server, and its
//! metadata (RFC 8414 / OpenID Connect Discovery), with the 2025-03-26 fallbacks.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::AuthError;
use crate::challenge::BearerChallenge;
use crate::http::Http;
use crate::urls::{
    authorization_server_metadata_urls, canonical_resource, check_url, display_url,
    protected_resource_metadata_urls, resource_covers, same_issuer,
};

/// RFC 9728 Protected Resource Metadata (the fields the hub uses).
#[derive(Debug, Clone, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The protected resource's identifier.
    #[serde(default)]
    pub resource: Option<String>,
    /// Issuers of authorization servers that protect it.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource knows.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// RFC 9728 §2: the resource accepts DPoP proofs with these algorithms.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 9728 §2: the resource accepts only DPoP-bound tokens.
    #[serde(default)]
    pub dpop_bound_access_tokens_required: bool,
}

/// RFC 8414 / OIDC authorization server metadata (the fields the hub uses).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// Where the user authorizes.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// RFC 7591 dynamic registration.
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    /// Scopes the server knows.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// Grant types; RFC 8414 default is `authorization_code` and `implicit`.
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
    /// PKCE methods; absent means the hub must not proceed.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Client authentication methods at the token endpoint; RFC 8414 default is
    /// `client_secret_basic`.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Client ID Metadata Documents (URL client ids).
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    /// RFC 9207: the authorization response carries `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Algorithms accepted for `private_key_jwt` client assertions.
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 9449 §5.1: algorithms accepted for DPoP proofs (DPoP support).
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

impl AuthServerMetadata {
    /// Whether PKCE with S256 is advertised.
    pub fn supports_s256(&self) -> bool {
        self.code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m == "S256"))
    }

    /// Whether a token endpoint auth method is supported (absent list: RFC 8414 default).
    pub fn supports_auth_method(&self, method: &str) -> bool {
        match &self.token_endpoint_auth_methods_supported {
            Some(m) => m.iter().any(|m| m == method),
            None => method == "client_secret_basic",
        }
    }

    /// Whether `scopes_supported` lists a scope.
    pub fn lists_scope(&self, scope: &str) -> bool {
        self.scopes_supported
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| s == scope))
    }

    /// Whether a grant type may be used: listed, or the list is absent (its RFC 8414 default
    /// names only `authorization_code` and `implicit`, but many servers omit the list).
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types_supported
            .as_ref()
            .is_none_or(|g| g.iter().any(|g| g == grant))
    }

    /// Whether the `refresh_token` grant is usable (listed, or the list is absent).
    pub fn allows_refresh_grant(&self) -> bool {
        self.grant_types_supported
            .as_ref()
            .is_none_or(|g| g.iter().any(|g| g == "refresh_token"))
    }
}

/// Everything discovery found for one server.
#[derive(Debug, Clone)]
pub(crate) struct Discovered {
    /// The RFC 8707 `resource` value.
    pub(crate) resource: String,
    /// `scopes_supported` of the Protected Resource Metadata.
    pub(crate) resource_scopes: Option<Vec<String>>,
    /// The resource metadata says the resource takes DPoP-bound tokens.
    pub(crate) resource_dpop: bool,
    /// The authorization server's metadata (endpoints validated).
    pub(crate) metadata: AuthServerMetadata,
    /// No metadata at all: 2025-03-26 default endpoints at the server's origin.
    pub(crate) default_endpoints: bool,
}

/// Runs discovery for a server. `known_issuer` tells which authorization servers the hub
/// already has a client registration with, so a server listing several keeps using the same one.
pub(crate) async fn discover(
    http: &Http,
    server: &Url,
    challenge: Option<&BearerChallenge>,
    known_issuer: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Result<Discovered, AuthError> {
    let prm = fetch_protected_resource_metadata(http, server, challenge).await?;
    let Some(prm) = prm else {
        tracing::debug!(server = %display_url(server), "no protected resource metadata; using the 2025-03-26 discovery");
        return legacy_discovery(http, server).await;
    };
    let resource = match &prm.resource {
        Some(r) => {
            let parsed = Url::parse(r).map_err(|_| AuthError::ResourceMismatch {
                resource: r.clone(),
                server: display_url(server),
            })?;
            if !resource_covers(&parsed, server) {
                return Err(AuthError::ResourceMismatch {
                    resource: r.clone(),
                    server: display_url(server),
                });
            }
            r.clone()
        }
        None => canonical_resource(server),
    };
    let issuer = prm
        .authorization_servers
        .iter()
        .find(|i| known_issuer(i))
        .or_else(|| prm.authorization_servers.first())
        .ok_or_else(|| {
            AuthError::Discovery("protected resource metadata lists no authorization server".into())
        })?
        .clone();
    let issuer_url = Url::parse(&issuer)
        .map_err(|_| AuthError::Discovery(format!("invalid authorization server {issuer:?}")))?;
    check_url(&issuer_url, Some(server))?;
    let metadata = fetch_authorization_server_metadata(http, server, &issuer_url, Some(&issuer))
        .await?
        .ok_or_else(|| {
            AuthError::Discovery(format!(
                "no authorization server metadata found for issuer {issuer}"
            ))
        })?;
    Ok(Discovered {
        resource,
        resource_dpop: prm.dpop_bound_access_tokens_required
            || prm
                .dpop_signing_alg_values_supported
                .as_ref()
                .is_some_and(|a| !a.is_empty()),
        resource_scopes: prm.scopes_supported.filter(|s| !s.is_empty()),
        metadata,
        default_endpoints: false,
    })
}

async fn fetch_protected_resource_metadata(
    http: &Http,
    server: &Url,
    challenge: Option<&BearerChallenge>,
) -> Result<Option<ProtectedResourceMetadata>, AuthError> {
    let mut candidates = Vec::new();
    if let Some(rm) = challenge.and_then(|c| c.resource_metadata.as_deref()) {
        match server.join(rm) {
            Ok(u) => {
                check_url(&u, Some(server))?;
                candidates.push(u);
            }
            Err(_) => {
                tracing::warn!(server = %display_url(server), "ignoring an invalid resource_metadata URL in WWW-Authenticate")
            }
        }
    }
    for u in protected_resource_metadata_urls(server) {
        if !candidates.contains(&u) {
            candidates.push(u);
        }
    }
    for url in candidates {
        let resp = http.get_json(&url).await?;
        if !resp.is_success() {
            tracing::debug!(url = %display_url(&url), status = resp.status, "no protected resource metadata here");
            continue;
        }
        match serde_json::from_slice::<ProtectedResourceMetadata>(&resp.body) {
            Ok(prm) if !prm.authorization_servers.is_empty() => {
                tracing::debug!(url = %display_url(&url), "protected resource metadata found");
                return Ok(Some(prm));
            }
            _ => {
                tracing::warn!(url = %display_url(&url), "unusable protected resource metadata");
            }
        }
    }
    Ok(None)
}

/// Tries the metadata locations of an issuer in order. With `expected` the document's `issuer`
/// must match it, or the document is not used (RFC 8414 §3.3).
async fn fetch_authorization_server_metadata(
    http: &Http,
    server: &Url,
    issuer: &Url,
    expected: Option<&str>,
) -> Result<Option<AuthServerMetadata>, AuthError> {
    let mut mismatch = None;
    for url in authorization_server_metadata_urls(issuer) {
        let resp = http.get_json(&url).await?;
        if !resp.is_success() {
            tracing::debug!(url = %display_url(&url), status = resp.status, "no authorization server metadata here");
            continue;
        }
        let Ok(metadata) = serde_json::from_slice::<AuthServerMetadata>(&resp.body) else {
            tracing::warn!(url = %display_url(&url), "unusable authorization server metadata");
            continue;
        };
        if let Some(expected) = expected
            && !same_issuer(&metadata.issuer, expected)
        {
            tracing::warn!(url = %display_url(&url), "authorization server metadata names another issuer; ignored");
            mismatch = Some(AuthError::IssuerMismatch {
                expected: expected.to_owned(),
                found: metadata.issuer.clone(),
            });
            continue;
        }
        validate_endpoints(&metadata, server)?;
        return Ok(Some(metadata));
    }
    match mismatch {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

fn validate_endpoints(m: &AuthServerMetadata, server: &Url) -> Result<(), AuthError> {
    for e in [Some(&m.authorization_endpoint), Some(&m.token_endpoint)]
        .into_iter()
        .chain([m.registration_endpoint.as_ref()])
        .flatten()
    {
        let u = Url::parse(e)
            .map_err(|_| AuthError::Discovery(format!("invalid endpoint {e:?} in metadata")))?;
        check_url(&u, Some(server))?;
    }
    Ok(())
}

/// 2025-03-26: the authorization base URL is the server URL without its path; metadata there,
/// or else the default endpoints `/authorize`, `/token` and `/register`.
async fn legacy_discovery(http: &Http, server: &Url) -> Result<Discovered, AuthError> {
    let mut base = server.clone();
    base.set_path("/");
    base.set_query(None);
    base.set_fragment(None);
    let resource = canonical_resource(server);
    // The 2025-03-26 servers often put the authorization server under a path of their own
    // origin, so the issuer of this document is not compared with the origin.
    if let Some(metadata) = fetch_authorization_server_metadata(http, server, &base, None).await? {
        return Ok(Discovered {
            resource,
            resource_scopes: None,
            resource_dpop: false,
            metadata,
            default_endpoints: false,
        });
    }
    let origin = base.as_str().trim_end_matches('/').to_owned();
    let endpoint = |p: &str| format!("{origin}{p}");
    Ok(Discovered {
        resource,
        resource_scopes: None,
        resource_dpop: false,
        metadata: AuthServerMetadata {
            issuer: origin.clone(),
            authorization_endpoint: endpoint("/authorize"),
            token_endpoint: endpoint("/token"),
            registration_endpoint: Some(endpoint("/register")),
            scopes_supported: None,
            grant_types_supported: None,
            code_challenge_methods_supported: Some(vec!["S256".into()]),
            token_endpoint_auth_methods_supported: None,
            client_id_metadata_document_supported: false,
            authorization_response_iss_parameter_supported: false,
            token_endpoint_auth_signing_alg_values_supported: None,
            dpop_signing_alg_values_supported: None,
        },
        default_endpoints: true,
    })
}
