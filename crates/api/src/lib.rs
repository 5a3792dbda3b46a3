//! The hub's HTTP surface over raw hyper: the unified `/mcp` endpoint (Streamable HTTP and legacy
//! HTTP+SSE) and each profile's `/mcp/<profile>` (its view of the catalogue, search mode's
//! `search_tools`/`call_tool`), the REST management API of the Node `mcp-hub`, the `/api/events` SSE stream, and
//! the web console at `/ui/` (static assets compiled into the binary).
//!
//! Owns: downstream MCP sessions, HTTP routing, Host/Origin checks, bearer protection of the
//! hub's endpoints, body limits and timeouts, the connection cap, graceful drain, the Prometheus
//! exposition of `/metrics` ([`Metrics`]).
//!
//! Must not know: how servers are configured or spawned, OAuth protocol details, files. It drives
//! servers through the [`Registry`](mcp_hub_registry::Registry) and everything process-level
//! (restart, config persistence, workspaces, marketplace, OAuth) through the [`Control`] trait
//! that `mcp-hub-core` implements.

mod body;
mod cluster;
mod control;
mod error;
mod fleet;
mod guard;
mod limits;
mod mcp;
mod metrics;
mod rest;
mod server;
mod service;
mod ui;

pub use body::BoxError;
pub use cluster::{Cluster, Owner};
pub use control::{Control, HubEvent, HubState};
pub use error::ApiError;
pub use fleet::{Fleet, FleetMessage, ReplicaServers};
pub use metrics::Metrics;
pub use server::{Api, ApiConfig, NODE_HUB_VERSION};
pub use service::{ClientAddr, HubService, ResponseBody};
