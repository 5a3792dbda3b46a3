/// Errors of the HTTP server itself (not of requests: those become HTTP responses).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The listener failed.
    #[error("listener error: {0}")]
    Io(#[from] std::io::Error),
}
