//! `mcp-hub-core`: the embeddable MCP hub. Composes config, transport, registry, auth and api into
//! a [`Hub`] that other Rust programs can start, drive and shut down.
//!
//! Owns: wiring the layers together, turning config entries into registry definitions
//! (placeholders are resolved at each connect), config watching and hot reload, `dev` restarts,
//! the hub state and event bus behind `/api/events`, process-level files (workspace cache,
//! marketplace cache, OAuth token store paths).
//!
//! Must not know: HTTP routing or MCP wire details; those live in `api` and `transport`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_hub_core::CoreError> {
//! use mcp_hub_core::Hub;
//!
//! let hub = Hub::builder()
//!     .config_file("servers.json")
//!     .port(0) // an ephemeral port on 127.0.0.1
//!     .start()
//!     .await?;
//! println!("MCP endpoint: http://{}/mcp", hub.local_addr());
//! hub.registry().wait_settled(std::time::Duration::from_secs(30)).await;
//! for s in hub.registry().snapshots() {
//!     println!("{}: {}", s.name, s.status.as_str());
//! }
//! hub.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Embedding
//!
//! Configure from code as well as files ([`HubBuilder::config`], [`HubBuilder::config_str`]),
//! change servers while the hub runs ([`HubHandle::add_server`], [`HubHandle::update_server`],
//! [`HubHandle::disable_server`], [`HubHandle::remove_server`], …: the same path as a config
//! reload, with its events), and pick how HTTP is served: the hub's own listener, none
//! ([`HubBuilder::listen`]`(false)`), or your server ([`HubHandle::http_service`], a hyper
//! service, a `tower::Service` with the `tower` feature). Without HTTP, use the typed calls:
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_hub_core::CoreError> {
//! use mcp_hub_core::{CallNotification, CallOptions, Hub};
//! use serde_json::json;
//!
//! let hub = Hub::builder()
//!     .config_str(r#"{ mcpServers: { everything: { command: "mcp-server-everything" } } }"#)
//!     .listen(false)
//!     .start()
//!     .await?;
//! hub.registry().wait_settled(std::time::Duration::from_secs(30)).await;
//! for tool in hub.list_tools() {
//!     println!("{}: {}", tool.name, tool.description.unwrap_or_default());
//! }
//! let (tx, mut progress) = tokio::sync::mpsc::channel(64);
//! let call = hub.call_tool(
//!     "everything__longRunningOperation",
//!     json!({"duration": 2, "steps": 4}),
//!     CallOptions::new().notifications(tx),
//! );
//! let watch = async {
//!     while let Some(n) = progress.recv().await {
//!         if let CallNotification::Progress(p) = n {
//!             println!("progress {}", p.progress);
//!         }
//!     }
//! };
//! let (result, ()) = tokio::join!(call, watch);
//! println!("{:?}", result?.content);
//! hub.add_server("more", json!({"url": "https://mcp.example.com/mcp"})).await?;
//! hub.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! `examples/embed_axum.rs` mounts the hub in an axum application; docs/ARCHITECTURE.md
//! ("Embedding") says how each piece goes through the same paths as the binary.
//!
//! The sub-crates are re-exported for embedders: [`config`], [`protocol`], [`transport`],
//! [`registry`], [`auth`], [`api`].

mod builder;
mod calls;
mod clustering;
mod configview;
mod connector;
mod control;
mod dev;
mod error;
mod fleet;
mod hub;
mod inner;
mod layers;
mod logbridge;
mod marketplace;
mod otel;
mod paths;
mod reload;
mod servers;
mod workspace;

pub use builder::HubBuilder;
pub use calls::{CallNotification, CallOptions};
pub use error::CoreError;
pub use hub::{Hub, HubHandle};
pub use layers::CODE_SOURCE;
pub use logbridge::HubLogLayer;
pub use marketplace::{DEFAULT_README_BASE, DEFAULT_REGISTRY_URL, Marketplace, MarketplaceError};
pub use otel::endpoint_in_env as otlp_endpoint_in_env;
pub use paths::Paths;
pub use workspace::{WorkspaceCache, WorkspaceEntry, WorkspaceError, WorkspaceState};

pub use mcp_hub_api as api;
pub use mcp_hub_auth as auth;
pub use mcp_hub_cluster as cluster;
pub use mcp_hub_config as config;
pub use mcp_hub_protocol as protocol;
pub use mcp_hub_registry as registry;
pub use mcp_hub_transport as transport;
