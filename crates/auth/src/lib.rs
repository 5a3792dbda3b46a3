//! Authentication toward protected upstream MCP servers: the hub as an OAuth 2.1 client
//! (RFC 9728 / RFC 8414 / OIDC discovery, pre-registered clients, Client ID Metadata Documents,
//! RFC 7591 dynamic registration, authorization code with PKCE S256, `state`, RFC 8707
//! `resource`, RFC 9207 `iss`, refresh, scope step-up) and the token store file.
//!
//! Owns: OAuth protocol logic, the [`mcp_hub_transport::AuthHook`] implementation, and the
//! token store (0600, atomic writes). See `docs/AUTH.md`.
//!
//! Must not know: the registry, the API's routes, configuration file formats (the core turns a
//! server's `oauth` object into a [`ClientConfig`]). Static `headers` auth is the transport's.
//!
//! Entry point: [`OAuthManager`]. The core builds one, passes [`OAuthManager::hook`] to each
//! remote server's transport, calls [`OAuthManager::start_authorization`] when a connection
//! fails with `Unauthorized`, and [`OAuthManager::complete`] from the callback route.

mod authcode;
mod challenge;
mod client;
mod config;
mod discovery;
mod dpop;
mod error;
mod hook;
mod http;
mod jose;
mod machine;
mod manager;
mod node_import;
mod pending;
mod pkce;
mod secret;
mod shared;
mod store;
mod token;
mod urls;

pub use challenge::{BearerChallenge, Challenge, parse_challenges};
pub use config::{AuthConfig, ClientAuth, ClientConfig, Credential, DpopMode, Grant, Source};
pub use discovery::{AuthServerMetadata, ProtectedResourceMetadata};
pub use error::AuthError;
pub use http::{HttpExchange, HttpResponse, OAUTH_HTTP_TIMEOUT, TransportHttp};
pub use manager::OAuthManager;
pub use pkce::{Pkce, s256_challenge};
pub use secret::Secret;
pub use shared::{SharedLock, SharedTokens};
pub use urls::{
    authorization_server_metadata_urls, canonical_resource, check_url, is_forbidden_ip,
    protected_resource_metadata_urls,
};

#[cfg(test)]
mod e2e_tests;
