/// What can go wrong in cluster mode. Messages never hold the shared secret or a Redis password.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The cluster settings cannot work.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// Redis refused or could not be reached.
    #[error("Redis at {url}: {reason}")]
    Redis {
        /// The URL without credentials.
        url: String,
        /// What Redis or the connection said.
        reason: String,
    },
    /// A value in Redis is not what a replica writes there.
    #[error("unexpected value under {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why it was refused.
        reason: String,
    },
    /// No randomness from the operating system.
    #[error("no randomness for a replica id: {0}")]
    Random(String),
}

impl ClusterError {
    pub(crate) fn redis(url: &str, e: redis::RedisError) -> ClusterError {
        // The error's own text names the failing command or the server's answer, never the
        // URL it was opened with.
        ClusterError::Redis {
            url: url.to_owned(),
            reason: e.to_string(),
        }
    }
}
