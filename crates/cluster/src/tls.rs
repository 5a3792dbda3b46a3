//! `rediss://`: TLS to Redis, over rustls (the TLS library the hub already uses, with ring).
//! The server's certificate is checked against the Mozilla roots (webpki-roots) or, when the
//! cluster is given a CA file, against that CA alone (a private CA, or a self-signed
//! certificate). Verification cannot be turned off: Redis holds tokens and client secrets.

use std::path::Path;

use crate::ClusterError;

/// The Redis client for `url`, trusting `ca_file` (PEM) instead of the public roots if given.
pub(crate) fn client(
    url: &str,
    ca_file: Option<&Path>,
    shown_url: &str,
) -> Result<redis::Client, ClusterError> {
    let invalid = |e: redis::RedisError| {
        ClusterError::Config(format!("invalid Redis URL {shown_url}: {:?}", e.kind()))
    };
    let Some(ca_file) = ca_file else {
        return redis::Client::open(url).map_err(invalid);
    };
    if !url.starts_with("rediss://") {
        return Err(ClusterError::Config(format!(
            "a CA file is for TLS: use a rediss:// URL instead of {shown_url}"
        )));
    }
    let pem = std::fs::read(ca_file).map_err(|e| {
        ClusterError::Config(format!(
            "cannot read the CA file {}: {e}",
            ca_file.display()
        ))
    })?;
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
    .map_err(invalid)
}
