use std::sync::Arc;

use mcp_hub_protocol::Notification;

use crate::ServerStatus;

/// Which list of a server changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// Tools.
    Tools,
    /// Resources and resource templates.
    Resources,
    /// Prompts.
    Prompts,
}

/// Something that happened in the registry. Delivered on a bounded broadcast channel: a consumer
/// that falls behind misses events (and is told so by the channel), it never stalls the registry.
#[derive(Debug, Clone)]
pub enum RegistryEvent {
    /// A server's status (or error, or authorization URL) changed.
    ServerStatus {
        /// The server.
        server: Arc<str>,
        /// Its new status.
        status: ServerStatus,
    },
    /// A server's list changed (after a re-list); the catalogue has been rebuilt.
    ListChanged {
        /// The server.
        server: Arc<str>,
        /// Which list.
        kind: ListKind,
    },
    /// The aggregated catalogue changed in the named lists (what `/mcp` announces with
    /// `notifications/*/list_changed`).
    CatalogChanged {
        /// Tools changed.
        tools: bool,
        /// Resources or templates changed.
        resources: bool,
        /// Prompts changed.
        prompts: bool,
    },
    /// The profiles were replaced ([`Registry::set_profiles`](crate::Registry::set_profiles)):
    /// their views may show something else now.
    ProfilesChanged,
    /// An upstream `notifications/resources/updated` (URI already namespaced as exposed).
    ResourceUpdated {
        /// The server.
        server: Arc<str>,
        /// The exposed URI.
        uri: String,
    },
    /// A notification from a server that belongs to no request and to no client in particular
    /// (a log message caused by no call, a URL elicitation completing). The API delivers it only
    /// where it cannot be anybody else's.
    ServerNotification {
        /// The server.
        server: Arc<str>,
        /// The notification, verbatim.
        notification: Notification,
    },
    /// A notification from a per-session instance of an isolated server: it belongs to that
    /// downstream session and no other.
    SessionNotification {
        /// The server.
        server: Arc<str>,
        /// The downstream session ([`Requester::session`](crate::Requester::session)).
        session: u64,
        /// The notification, verbatim.
        notification: Notification,
    },
}
