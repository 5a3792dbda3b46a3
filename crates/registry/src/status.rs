use std::time::{Instant, SystemTime};

use serde_json::{Map, Value};

use crate::ItemList;

/// A server's status, with the names the Node `mcp-hub` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerStatus {
    /// Starting or restarting.
    Connecting,
    /// Initialised and serving.
    Connected,
    /// Stopped or failed (see the error).
    Disconnected,
    /// Needs the user to authorise (see the authorization URL).
    Unauthorized,
    /// Disabled in the config or by a stop with `disable`.
    Disabled,
}

impl ServerStatus {
    /// The Node hub's string.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::Connecting => "connecting",
            ServerStatus::Connected => "connected",
            ServerStatus::Disconnected => "disconnected",
            ServerStatus::Unauthorized => "unauthorized",
            ServerStatus::Disabled => "disabled",
        }
    }
}

/// Everything known about one server at one moment. Cheap to clone (lists are shared).
#[derive(Debug, Clone)]
pub struct ServerSnapshot {
    /// The configuration key.
    pub name: String,
    /// Display name (the key when the config has none).
    pub display_name: String,
    /// Description (empty when none).
    pub description: String,
    /// `stdio` or `sse`, as the Node hub reports it.
    pub transport_type: &'static str,
    /// The transport actually in use while connected (`stdio`, `streamable-http`, `sse`).
    pub transport_in_use: Option<&'static str>,
    /// Status.
    pub status: ServerStatus,
    /// The last error, if any.
    pub error: Option<String>,
    /// Upstream tools as the server listed them (all pages), each item verbatim.
    pub tools: ItemList,
    /// Upstream resources.
    pub resources: ItemList,
    /// Upstream resource templates.
    pub resource_templates: ItemList,
    /// Upstream prompts.
    pub prompts: ItemList,
    /// When the current connection attempt (or run) started.
    pub last_started: Option<SystemTime>,
    /// When the server became connected.
    pub connected_at: Option<Instant>,
    /// OAuth authorisation URL while unauthorized.
    pub authorization_url: Option<String>,
    /// Upstream `serverInfo`.
    pub server_info: Option<Value>,
    /// Upstream `instructions`.
    pub instructions: Option<String>,
    /// Upstream capabilities.
    pub capabilities: Option<Map<String, Value>>,
    /// Negotiated protocol version.
    pub protocol_version: Option<String>,
    /// Config file the server came from.
    pub config_source: Option<String>,
    /// Child process id (stdio).
    pub pid: Option<u32>,
    /// How many times the supervisor restarted the server after a failure.
    pub restarts: u32,
    /// How what the server sends to clients is routed, and what could not be.
    pub routing: RoutingStats,
    /// Tool calls to this server, every tool added up (see [`Registry::observe`] for the
    /// figures per tool).
    ///
    /// [`Registry::observe`]: crate::Registry::observe
    pub calls: crate::CallSnapshot,
}

/// Routing figures of one server, shown in `/api/servers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingStats {
    /// `"shared"` or `"session"` (see [`Isolation`](crate::Isolation)).
    pub isolation: &'static str,
    /// Per-session instances running (isolation `session`).
    pub instances: usize,
    /// Server-to-client requests the hub answered itself because it could not name the client
    /// that caused them (or that client could not answer), since the server was added.
    pub unattributed_requests: u64,
    /// Log messages of the current connections that reached no client (they went to the hub's
    /// log and `/api/events`).
    pub unattributed_logs: u64,
}

impl ServerSnapshot {
    /// Whole seconds since the server connected (0 when not connected).
    pub fn uptime_secs(&self) -> u64 {
        match (self.status, self.connected_at) {
            (ServerStatus::Connected, Some(at)) => at.elapsed().as_secs(),
            _ => 0,
        }
    }
}
