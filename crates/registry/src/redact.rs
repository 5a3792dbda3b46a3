//! Scrubbing a server's secrets from the errors the registry stores, logs and hands out.
//!
//! Transport errors can carry what the server's configuration resolved to: the URL (with a key in
//! its query, path or userinfo) in an HTTP error, the command in a spawn error, an upstream's
//! error page quoting the URL, an OS or TLS message naming a host. Every such message passes
//! through the server's [`Connector::redact`] before it becomes a status `error`, a log line or a
//! call's error.

use mcp_hub_transport::{AuthFailure, RequestError, TransportError};

use crate::Connector;

/// `e` with every message scrubbed. A JSON-RPC error of the upstream is its own answer and passes
/// through unchanged.
pub(crate) fn request_error(e: RequestError, c: &dyn Connector) -> RequestError {
    match e {
        RequestError::Closed(why) => RequestError::Closed(c.redact(why)),
        RequestError::Transport(t) => RequestError::Transport(transport_error(t, c)),
        e @ (RequestError::Rpc(_) | RequestError::Timeout(_)) => e,
    }
}

/// `e` with every message scrubbed.
pub(crate) fn transport_error(e: TransportError, c: &dyn Connector) -> TransportError {
    use TransportError as T;
    match e {
        T::Spawn {
            command,
            reason,
            kind,
        } => T::Spawn {
            command: c.redact(command),
            reason: c.redact(reason),
            kind,
        },
        T::Exited { status } => T::Exited {
            status: c.redact(status),
        },
        T::Http(m) => T::Http(c.redact(m)),
        T::HttpStatus { status, body } => T::HttpStatus {
            status,
            body: c.redact(body),
        },
        T::Auth(AuthFailure(m)) => T::Auth(AuthFailure(c.redact(m))),
        T::UnsupportedVersion(v) => T::UnsupportedVersion(c.redact(v)),
        T::Initialize(m) => T::Initialize(c.redact(m)),
        T::Protocol(m) => T::Protocol(c.redact(m)),
        e @ (T::Unauthorized(_) | T::ModernOnly | T::Closed) => e,
    }
}
