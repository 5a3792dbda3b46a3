//! The set of upstream MCP servers managed as one: lifecycle (start, stop, restart with backoff),
//! the aggregated catalogue of tools/resources/templates/prompts with namespacing, and routing of
//! calls to their owners.
//!
//! Owns: each server's supervisor task and status, the catalogue snapshot (an immutable
//! [`Catalog`] swapped atomically), resource subscriptions, the event bus ([`RegistryEvent`]).
//!
//! Must not know: HTTP, configuration files, OAuth flows. Servers arrive as
//! [`ServerDefinition`]s whose [`Connector`] produces a transport spec at each connect (that is
//! where the core crate resolves placeholders and attaches auth).

mod catalog;
mod definition;
mod error;
mod events;
mod instances;
mod naming;
mod options;
mod registry;
mod routing;
mod status;
mod supervisor;

pub use catalog::{Catalog, CatalogEntry, CatalogList, Collision, ResourceRoute};
pub use definition::{ClientContext, Connector, Isolation, Prefix, ServerDefinition};
pub use error::{RegistryError, RouteError};
pub use events::{ListKind, RegistryEvent};
pub use naming::{NAMESPACE_SEPARATOR, default_server_id};
pub use options::{ClientRequestHandler, RegistryOptions};
pub use registry::Registry;
pub use routing::AggregateCapabilities;
pub use status::{RoutingStats, ServerSnapshot, ServerStatus};

pub use mcp_hub_transport::{
    Attribution, CancelReason, ClientFeatures, RequestError, RequestOptions, Requester,
    TransportError, TransportSpec,
};
