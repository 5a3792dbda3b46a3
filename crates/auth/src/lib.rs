//! Authentication for the hub: OAuth 2.1 toward protected upstream servers (PKCE S256, discovery,
//! client registration, token refresh, token storage), static header auth, and bearer-token
//! protection of the hub's own endpoints.
//!
//! Owns: OAuth protocol logic and the token store file.
//!
//! Must not know: the registry, the API's routes, configuration file formats.
