use std::collections::HashMap;

use serde_json::{Map, Value};
use tokio::sync::broadcast;

/// The hub's lifecycle state, with the Node `mcp-hub`'s names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubState {
    /// Servers are starting.
    Starting,
    /// Every server finished its first connection attempt.
    Ready,
    /// A soft restart is in progress.
    Restarting,
    /// A soft restart finished.
    Restarted,
    /// Shutting down.
    Stopping,
    /// Stopped.
    Stopped,
    /// A fatal error.
    Error,
}

impl HubState {
    /// The Node hub's string.
    pub fn as_str(self) -> &'static str {
        match self {
            HubState::Starting => "starting",
            HubState::Ready => "ready",
            HubState::Restarting => "restarting",
            HubState::Restarted => "restarted",
            HubState::Stopping => "stopping",
            HubState::Stopped => "stopped",
            HubState::Error => "error",
        }
    }
}

/// An event for `/api/events` produced outside the registry (by the core crate).
#[derive(Debug, Clone)]
pub enum HubEvent {
    /// `hub_state` with this state (the API adds `server_id`, `pid`, `port`, `timestamp`).
    State(HubState),
    /// `log` `{type, message, data, code?}`.
    Log {
        /// `debug`, `info`, `warn` or `error`.
        level: &'static str,
        /// The message (already redacted).
        message: String,
        /// Structured data.
        data: Map<String, Value>,
        /// A machine-readable code (`CONNECTION_ERROR`, `CONFIG_RELOAD_ERROR`, …), as the Node
        /// hub puts on its error lines; mcphub.nvim files `error` lines under it.
        code: Option<String>,
    },
    /// `subscription_event` with this payload (it carries its own `type`: `config_changed`,
    /// `servers_updating`, `servers_updated`, `workspaces_updated`).
    Subscription(Map<String, Value>),
}

/// Process-level operations the REST API needs, implemented by `mcp-hub-core`.
#[async_trait::async_trait]
pub trait Control: Send + Sync + 'static {
    /// The current hub state.
    fn state(&self) -> HubState;

    /// Events to forward on `/api/events`.
    fn subscribe(&self) -> broadcast::Receiver<HubEvent>;

    /// Soft restart: reload the config and restart every server (`POST /api/restart`).
    async fn restart(&self) -> Result<(), String>;

    /// Hard restart: the process exits so that its supervisor (an editor plugin) respawns it
    /// (`POST /api/hard-restart`). Returns once the shutdown is initiated.
    async fn hard_restart(&self);

    /// Persists `disabled` for a server into the config file it came from
    /// (`POST /api/servers/stop?disable=true`, `POST /api/servers/start`).
    async fn persist_disabled(&self, server: &str, disabled: bool) -> Result<(), String>;

    /// The workspace cache: `{<port>: entry}` (`GET /api/workspaces`, health).
    fn workspaces(&self) -> Value;

    /// The config files this hub was started with.
    fn config_files(&self) -> Vec<String>;

    /// The merged config for the console (`GET /api/config`): `{files, servers: {name: entry}}`,
    /// each entry with its `config_source` and every secret redacted.
    fn config_view(&self) -> Value {
        serde_json::json!({ "files": self.config_files(), "servers": {} })
    }

    /// Marketplace catalogue filtered by the query (`search`, `category`, `tags`, `sort`).
    async fn marketplace(&self, query: &HashMap<String, String>) -> Result<Value, String>;

    /// Marketplace details of one entry: `{server, readmeContent}`.
    async fn marketplace_details(&self, mcp_id: &str) -> Result<Value, String>;

    /// Starts (or restarts) the OAuth flow of a server and returns the URL the user must open.
    async fn authorize(&self, server: &str) -> Result<String, String>;

    /// Completes an OAuth flow from the callback's query parameters; returns the server name.
    async fn oauth_callback(&self, query: &HashMap<String, String>) -> Result<String, String>;
}
