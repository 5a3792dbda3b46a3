//! MCP client connections to upstream servers: stdio child processes, Streamable HTTP and legacy
//! HTTP+SSE, under one transport-independent client session engine.
//!
//! Owns: sockets and child processes toward upstream servers, framing, request/response
//! correlation, timeouts, cancellation, progress routing, the auth hook.
//!
//! Must not know: configuration files, the registry, the hub's downstream API.
//!
//! The entry point is [`ClientSession::connect`]: it opens the transport described by a
//! [`TransportSpec`], performs the `initialize` handshake (or, with a server that speaks only the
//! stateless 2026-07-28 revision, `server/discover`) and returns a cheap-to-clone handle.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use mcp_hub_protocol::{ErrorCode, ErrorObject, RawValue, Request};
//! use mcp_hub_transport::{
//!     Attribution, ClientSession, RequestOptions, ServerRequestHandler, SessionOptions,
//!     StdioSpec, TransportSpec,
//! };
//!
//! /// Refuses every server-to-client request (sampling, elicitation, roots).
//! struct NoClientFeatures;
//!
//! #[async_trait::async_trait]
//! impl ServerRequestHandler for NoClientFeatures {
//!     async fn handle(
//!         &self,
//!         request: Request,
//!         _attribution: Attribution,
//!     ) -> Result<Box<RawValue>, ErrorObject> {
//!         Err(ErrorObject::new(ErrorCode::METHOD_NOT_FOUND, request.method))
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = TransportSpec::Stdio(StdioSpec {
//!     name: "everything".into(),
//!     command: "npx".into(),
//!     args: vec!["-y".into(), "@modelcontextprotocol/server-everything".into()],
//!     env: vec![("PATH".into(), "/usr/bin:/bin".into())],
//!     cwd: None,
//!     stderr: None,
//! });
//! let (session, mut notifications) =
//!     ClientSession::connect(spec, SessionOptions::default(), Arc::new(NoClientFeatures)).await?;
//! println!("speaking {} with {}", session.protocol_version(), session.initialize_result().server_info.name);
//!
//! let params = RawValue::from_string(r#"{"name":"echo","arguments":{"message":"hi"}}"#.into())?;
//! let result = session.request("tools/call", Some(params), RequestOptions::default()).await?;
//! println!("{}", result.get());
//!
//! while let Ok(n) = notifications.try_recv() {
//!     println!("server said {}", n.method);
//! }
//! session.close().await; // stdin closed, then SIGTERM, then SIGKILL of the process group
//! # Ok(())
//! # }
//! ```
//!
//! Layout: `engine` correlates requests and responses over a `wire::Wire`, which each transport
//! implements (`stdio`, `streamable`, `sse_client`), and attributes what the server sends to the
//! downstream client that caused it (`routing` holds the public types of that); `connect` runs
//! the handshake and the transport fallback; `modern` detects a server's protocol era (the
//! `server/discover` probe) and holds the stateless 2026-07-28 client (`modern::http`, the wire;
//! `modern::input`, MRTR through the caller); `process` holds the process-group handling and
//! documents what happens to children when the hub dies.

mod api;
mod connect;
mod engine;
mod http_client;
mod ids;
mod modern;
mod process;
mod routing;
mod salvage;
mod sse_client;
mod stdio;
mod streamable;
mod wire;

pub use api::*;
pub use http_client::HttpClient;
pub use ids::{IdHasher, IdMap};
pub use process::{unwatch_group, watch_group};
pub use routing::{Attribution, CancelReason, ClientFeatures, Requester, UPSTREAM_LOG_TARGET};
