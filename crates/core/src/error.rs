use std::path::PathBuf;

/// Why the hub could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The configuration could not be loaded.
    #[error("{0}")]
    Config(#[from] mcp_hub_config::ConfigError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error (`EADDRINUSE` and friends).
        source: std::io::Error,
    },
    /// A file the hub needs could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The OTLP trace exporter could not be set up (a bad endpoint).
    #[error("otlp: {0}")]
    Otlp(String),
    /// The cluster (`--cluster`) could not be joined.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The OAuth token store could not be opened.
    #[error("oauth: {0}")]
    Auth(String),
    /// A server of that name is already configured.
    #[error("Server already exists: {0}")]
    ServerExists(String),
    /// A call through the hub failed: an unknown tool, prompt or resource, a server that is not
    /// connected, or the upstream's error.
    #[error(transparent)]
    Call(#[from] mcp_hub_registry::RouteError),
    /// An upstream's result did not have the shape of its method's result.
    #[error("invalid {method} result: {message}")]
    InvalidResult {
        /// The method.
        method: String,
        /// What did not fit.
        message: String,
    },
    /// No server of that name.
    #[error("Server not found: {0}")]
    ServerNotFound(String),
}
