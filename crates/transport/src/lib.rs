//! MCP client connections to upstream servers: stdio child processes, Streamable HTTP and legacy
//! HTTP+SSE, under one transport-independent client session engine.
//!
//! Owns: sockets and child processes toward upstream servers, framing, request/response
//! correlation, timeouts, cancellation, progress routing, the auth hook.
//!
//! Must not know: configuration files, the registry, the hub's downstream API.
//!
//! The entry point is [`ClientSession::connect`]: it opens the transport described by a
//! [`TransportSpec`], performs the `initialize` handshake and returns a cheap-to-clone handle.

mod api;
mod http_client;
mod sse_client;
mod streamable;
mod wire;

pub use api::*;
pub use http_client::HttpClient;
