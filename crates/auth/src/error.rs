//! The crate's one error type.

use std::path::PathBuf;

/// Why an OAuth step failed. Messages never contain a token, a secret, a code or a verifier.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token store could not be read or written.
    #[error("token store {path}: {reason}")]
    Store {
        /// The store file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The cluster's shared token store could not be read or written.
    #[error("shared token store: {0}")]
    Shared(String),
    /// An HTTP exchange with the server or its authorization server failed.
    #[error("{url}: {reason}")]
    Http {
        /// The URL requested (without its query).
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A URL is not acceptable for OAuth (scheme, host or address).
    #[error("refusing OAuth URL {url}: {reason}")]
    InsecureUrl {
        /// The URL.
        url: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Metadata could not be found or is unusable.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The authorization server metadata names another issuer than the one it was fetched for.
    #[error("authorization server metadata issuer {found:?} does not match {expected:?}")]
    IssuerMismatch {
        /// The issuer the metadata was fetched for.
        expected: String,
        /// The issuer the metadata claims.
        found: String,
    },
    /// The protected resource metadata describes another resource than the server.
    #[error("protected resource metadata is for {resource:?}, not for the server {server:?}")]
    ResourceMismatch {
        /// The `resource` of the metadata.
        resource: String,
        /// The server's URL.
        server: String,
    },
    /// The authorization server does not advertise PKCE with S256.
    #[error("authorization server {issuer} does not support PKCE S256; refusing to authorize")]
    PkceUnsupported {
        /// Its issuer.
        issuer: String,
    },
    /// No way to obtain a client id at this authorization server.
    #[error(
        "authorization server {issuer} supports neither client ID metadata documents nor dynamic \
         registration: configure `oauth.client_id` for this server"
    )]
    NoRegistration {
        /// Its issuer.
        issuer: String,
    },
    /// Dynamic client registration failed.
    #[error("client registration failed: {0}")]
    Registration(String),
    /// The callback's `state` matches no pending authorization.
    #[error("unknown or already used authorization state")]
    UnknownState,
    /// The pending authorization is too old.
    #[error("the authorization for server {0:?} expired; start it again")]
    StateExpired(String),
    /// The callback lacks a parameter.
    #[error("the authorization callback has no `{0}` parameter")]
    MissingParameter(&'static str),
    /// The callback's `iss` is missing or differs from the authorization server's issuer
    /// (RFC 9207). The callback's error parameters are deliberately not shown.
    #[error("the authorization response does not come from the expected issuer")]
    IssuerParameterMismatch,
    /// The user or the authorization server refused.
    #[error("authorization denied: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    AuthorizationDenied {
        /// The OAuth `error` code.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The token endpoint refused or answered something unusable.
    #[error("token endpoint: {0}")]
    Token(String),
    /// The refresh token was refused; the user has to authorize again.
    #[error("the refresh token was refused ({0}); authorization is required again")]
    RefreshRejected(String),
    /// Scope step-up was tried too often without success.
    #[error("server {0:?} keeps asking for more scopes after step-up authorization; giving up")]
    StepUpLimit(String),
    /// The server gets its tokens from a grant that needs no user: there is nothing to
    /// authorize in a browser.
    #[error(
        "server {server:?} obtains its tokens with the {grant} grant (its `auth` settings); \
         there is nothing to authorize in a browser"
    )]
    NotInteractive {
        /// The server.
        server: String,
        /// The configured grant.
        grant: &'static str,
    },
    /// The authorization server does not offer the configured grant.
    #[error("authorization server {issuer} does not support the {grant} grant")]
    GrantUnsupported {
        /// Its issuer.
        issuer: String,
        /// The grant type.
        grant: String,
    },
    /// A value is malformed.
    #[error("{0}")]
    Invalid(String),
}
