//! The hub's HTTP surface over raw hyper: the unified `/mcp` endpoint (Streamable HTTP and legacy
//! HTTP+SSE), the REST management API of the Node `mcp-hub`, and the `/api/events` SSE stream.
//!
//! Owns: downstream sessions, HTTP routing, Host/Origin checks, body limits.
//!
//! Must not know: how servers are configured or spawned; it drives the hub through the registry and
//! the `Control` trait.
