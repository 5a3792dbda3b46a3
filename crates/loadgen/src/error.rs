use std::io;

/// Everything that can stop a benchmark run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadgenError {
    #[error("bad argument: {0}")]
    Usage(String),
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("reading /proc: {0}")]
    Proc(String),
    #[error("process: {0}")]
    Process(String),
}

impl From<hyper::Error> for LoadgenError {
    fn from(e: hyper::Error) -> Self {
        LoadgenError::Http(e.to_string())
    }
}

impl From<http::Error> for LoadgenError {
    fn from(e: http::Error) -> Self {
        LoadgenError::Http(e.to_string())
    }
}
