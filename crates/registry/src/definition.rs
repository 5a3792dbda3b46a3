use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mcp_hub_transport::{AuthChallenge, TransportSpec};

/// How a server's tools, prompts and resource URIs are namespaced in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Prefix {
    /// The Node `mcp-hub` shape: the server name with every character outside `[A-Za-z0-9]`
    /// turned into `_`, then `__`, then the upstream name.
    #[default]
    Default,
    /// A custom prefix, followed by `__`.
    Custom(String),
    /// No prefix: upstream names are exposed unchanged (a clash with another server is reported
    /// and the later one gets a numeric suffix).
    None,
}

/// Whether downstream sessions share one upstream connection of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// One connection (one process) serves every downstream session. What the server sends to
    /// the client (sampling, elicitation, roots, logs) is attributed by the rules of
    /// [`Attribution`](mcp_hub_transport::Attribution) and answered by the hub when nobody can be
    /// named.
    #[default]
    Shared,
    /// Each downstream session that uses the server gets its own connection (for stdio, its own
    /// process), started on first use and closed when the session ends or after an idle timeout;
    /// at most `max_instances` at once. What an instance sends can only be its session's.
    Session {
        /// The most instances running at once; past it a call fails with a clear error.
        max_instances: usize,
    },
}

impl Isolation {
    /// `"shared"` or `"session"`, as the config spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Isolation::Shared => "shared",
            Isolation::Session { .. } => "session",
        }
    }
}

/// What the hub does for a server that needs the client's context.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientContext {
    /// Shared or per-session connections.
    pub isolation: Isolation,
    /// The roots the hub answers `roots/list` with when it cannot ask the client that caused the
    /// request (URIs, e.g. `file:///home/me/project`). `None`: such a request gets an error.
    pub roots: Option<Vec<String>>,
}

/// Produces the transport spec of a server at each (re)connect.
///
/// The core crate implements it by resolving the server's placeholders (so `${cmd: ...}` runs at
/// connect time and a failure only affects this server) and attaching auth.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The spec to connect with, or a user-facing error (for example an unresolved variable).
    async fn spec(&self) -> Result<TransportSpec, String>;

    /// Called when the server answered 401/403 and the auth hook could not fix it: returns the
    /// URL the user must open to authorise (`None` when the hub cannot run OAuth for this
    /// server), or why authorising cannot help (for example a scope step-up retried too often).
    async fn authorization_url(&self, challenge: &AuthChallenge) -> Result<Option<String>, String> {
        let _ = challenge;
        Ok(None)
    }

    /// `text` without what this server's configuration resolved to (a key in its URL, a secret
    /// in its command, …). Every error about the server passes through here before it is stored
    /// as its status, logged or returned to a caller. The default changes nothing.
    fn redact(&self, text: String) -> String {
        text
    }
}

/// One upstream server as the registry knows it.
#[derive(Clone)]
pub struct ServerDefinition {
    /// The configuration key; unique.
    pub name: String,
    /// A display name (`name` in the config entry).
    pub display_name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// `"stdio"` or `"sse"` as the Node hub reports `transportType` (all remote servers are `sse`).
    pub transport_type: &'static str,
    /// Namespacing.
    pub prefix: Prefix,
    /// A disabled server is known but never started.
    pub disabled: bool,
    /// Default timeout of calls routed to this server.
    pub request_timeout: Option<Duration>,
    /// The config file that defined it, as given.
    pub config_source: Option<String>,
    /// Isolation and fallback roots.
    pub client_context: ClientContext,
    /// Which of its tools are exposed anywhere (the catalogue, the REST API, events). Changed
    /// without a restart by [`Registry::set_tool_filter`](crate::Registry::set_tool_filter).
    pub tools: crate::ToolFilter,
    /// Produces the transport spec.
    pub connector: Arc<dyn Connector>,
}

impl fmt::Debug for ServerDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerDefinition")
            .field("name", &self.name)
            .field("transport_type", &self.transport_type)
            .field("prefix", &self.prefix)
            .field("disabled", &self.disabled)
            .field("client_context", &self.client_context)
            .field("tools", &self.tools)
            .finish_non_exhaustive()
    }
}
