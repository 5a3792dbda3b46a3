//! The set of upstream MCP servers managed as one: lifecycle (start, stop, restart with backoff),
//! the aggregated catalogue of tools/resources/templates/prompts with namespacing, and routing of
//! calls to their owners.
//!
//! Owns: each server's supervisor task and status, the catalogue snapshot (an immutable
//! [`Catalog`] swapped atomically), each server's tool filter ([`ToolFilter`]), the profiles and
//! their [`View`]s of the catalogue (with the search index of search mode), resource
//! subscriptions, the event bus ([`RegistryEvent`]), the call figures per server and tool
//! ([`Registry::observe`]).
//!
//! Must not know: HTTP, configuration files, OAuth flows. Servers arrive as
//! [`ServerDefinition`]s whose [`Connector`] produces a transport spec at each connect (that is
//! where the core crate resolves placeholders and attaches auth).

mod all_servers;
mod catalog;
mod connect;
mod definition;
mod entry;
mod error;
mod events;
mod filter;
mod hubs;
mod instances;
mod items;
mod lists;
mod naming;
mod observe;
mod options;
mod params;
mod prepared;
mod profiles;
mod redact;
mod registry;
mod routing;
mod search;
mod shared;
mod skills;
mod state;
mod status;
mod supervisor;
mod sync;
pub mod trace;
mod view;

pub use all_servers::AggregateCapabilities;
pub use catalog::{Catalog, CatalogEntry, CatalogList, Collision, ListJson, ResourceRoute};
pub use definition::{ClientContext, Connector, Isolation, Prefix, ServerDefinition};
pub use error::{RegistryError, RouteError};
pub use events::{ListKind, RegistryEvent};
pub use filter::ToolFilter;
pub use hubs::{HUB_INSTANCE_META_KEY, HUB_SERVER_NAMES, is_hub, is_this_hub};
pub use items::ItemList;
pub use naming::{NAMESPACE_SEPARATOR, default_server_id};
pub use observe::{
    CallSnapshot, ErrorKind, HistogramSnapshot, LATENCY_BOUNDS, Observation, ServerObservation,
    is_tool_error,
};
pub use options::{ClientRequestHandler, RegistryOptions};
pub use params::NamedParams;
pub use registry::Registry;
pub use skills::{SKILLS_EXTENSION, SKILLS_GET, SKILLS_LIST};
pub use status::{RoutingStats, ServerSnapshot, ServerStatus};
pub use view::{Profile, ProfileMode, ProfileServers, View};

pub use mcp_hub_transport::{
    Attribution, CancelReason, ClientFeatures, IdMap, RequestError, RequestOptions, Requester,
    TransportError, TransportSpec,
};
