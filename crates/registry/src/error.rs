use mcp_hub_transport::RequestError;

/// Errors of lifecycle operations.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// No server of that name.
    #[error("Server not found: {0}")]
    ServerNotFound(String),
    /// Connecting failed.
    #[error("Failed to connect to \"{server}\" MCP server: {reason}")]
    Connect {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The registry is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
}

/// Errors of routed calls.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    /// No server of that name.
    #[error("Server not found: {0}")]
    ServerNotFound(String),
    /// The server exists but is not connected.
    #[error("Server not connected: {0}")]
    ServerNotConnected(String),
    /// No tool of that (exposed) name.
    #[error("Tool not found: {0}")]
    UnknownTool(String),
    /// No prompt of that (exposed) name.
    #[error("Prompt not found: {0}")]
    UnknownPrompt(String),
    /// No resource or template matches the URI.
    #[error("Resource not found: {0}")]
    UnknownResource(String),
    /// The request was malformed (missing name, non-object params).
    #[error("Invalid params: {0}")]
    InvalidParams(String),
    /// A per-session instance of an isolated server could not be had (the maximum is reached, or
    /// it failed to start); the message says which and what to do.
    #[error("{0}")]
    Isolation(String),
    /// A skill file's content does not match the entry the server published for it (digest,
    /// size or frontmatter), even after the entry was refreshed: it is not relayed.
    #[error("Skill file failed verification: {uri}: {reason}")]
    SkillVerification {
        /// The file, as exposed.
        uri: String,
        /// What did not match.
        reason: String,
    },
    /// The upstream answered with an error or the call failed.
    #[error(transparent)]
    Upstream(#[from] RequestError),
}
