//! One connection attempt: resolve the server's spec, connect and initialize, and classify how it
//! ended (connected, worth retrying, needs the user, or cannot heal by itself).

use std::io::ErrorKind;
use std::sync::{Arc, Weak};

use mcp_hub_protocol::{ErrorCode, ErrorObject, RawValue, Request};
use mcp_hub_transport::{
    AuthChallenge, ClientSession, NotificationStream, ServerRequestHandler, SessionOptions,
    TransportError,
};

use crate::ServerDefinition;
use crate::shared::Inner;

/// How a connection attempt ended.
pub(crate) enum Attempt {
    Connected(ClientSession, NotificationStream),
    /// Retry after backoff.
    Retry(String),
    /// Do not retry until the config changes or the user asks: retrying cannot help (the config
    /// does not resolve, the command does not exist or is not executable, the protocol is not
    /// supported, the server is this hub itself).
    Fatal(String),
    /// Needs user authorisation.
    Unauthorized(String, Option<String>),
}

pub(crate) const UNAUTHORIZED: &str = "Unauthorized: the server requires authorization";

struct UpstreamHandler {
    server: Arc<str>,
    inner: Weak<Inner>,
}

#[async_trait::async_trait]
impl ServerRequestHandler for UpstreamHandler {
    async fn handle(
        &self,
        request: Request,
        caller: Option<u64>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let handler = self
            .inner
            .upgrade()
            .and_then(|i| (*i.client_handler.load_full()).clone());
        match handler {
            Some(h) => h.handle(&self.server, request, caller).await,
            None => Err(ErrorObject::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("no client can answer {}", request.method),
            )),
        }
    }
}

/// Whether a connect error can go away without anything changing: a missing command (or
/// working directory) or one that is not executable stays so until someone installs it or
/// edits the config, and retrying it only fills the logs.
fn cannot_heal(e: &TransportError) -> bool {
    match e {
        TransportError::Spawn { kind, .. } => {
            matches!(kind, ErrorKind::NotFound | ErrorKind::PermissionDenied)
        }
        TransportError::ModernOnly | TransportError::UnsupportedVersion(_) => true,
        _ => false,
    }
}

pub(crate) async fn connect(inner: &Arc<Inner>, def: &ServerDefinition) -> Attempt {
    let spec = match def.connector.spec().await {
        Ok(spec) => spec,
        Err(e) => return Attempt::Fatal(def.connector.redact(e)),
    };
    let opts = SessionOptions {
        client_info: inner.opts.client_info.clone(),
        capabilities: inner.opts.client_capabilities.clone(),
        initialize_timeout: inner.opts.initialize_timeout,
        request_timeout: inner.opts.request_timeout,
        max_message_bytes: inner.opts.max_message_bytes,
        ..SessionOptions::default()
    };
    let handler = Arc::new(UpstreamHandler {
        server: Arc::from(def.name.as_str()),
        inner: Arc::downgrade(inner),
    });
    let connecting = ClientSession::connect(spec, opts, handler);
    // Every message about the server is scrubbed of what its configuration resolved to.
    let outcome = tokio::time::timeout(inner.opts.initialize_timeout, connecting)
        .await
        .map(|r| r.map_err(|e| crate::redact::transport_error(e, &*def.connector)));
    match outcome {
        Err(_) => Attempt::Retry(format!(
            "no answer to initialize within {:?}",
            inner.opts.initialize_timeout
        )),
        Ok(Ok((session, notes))) => {
            let init = session.initialize_result();
            let me = inner.opts.hub_instance.as_deref().unwrap_or_default();
            if crate::hubs::is_this_hub(init, me) {
                session.close().await;
                return Attempt::Fatal(
                    "this entry points at this hub itself; a hub never connects to itself".into(),
                );
            }
            if crate::hubs::is_hub(init) {
                tracing::info!(target: "mcp_hub::registry", server = %def.name,
                    "'{}' is another MCP hub ({})", def.name, init.server_info.name);
            }
            Attempt::Connected(session, notes)
        }
        Ok(Err(TransportError::Unauthorized(challenge))) => {
            needs_authorization(def, &challenge).await
        }
        Ok(Err(e)) if cannot_heal(&e) => Attempt::Fatal(e.to_string()),
        Ok(Err(e)) => Attempt::Retry(e.to_string()),
    }
}

/// What to do when a server refuses the hub's credentials: wait for the user to open an
/// authorization URL, or give up with the reason authorising cannot help.
pub(crate) async fn needs_authorization(
    def: &ServerDefinition,
    challenge: &AuthChallenge,
) -> Attempt {
    match def.connector.authorization_url(challenge).await {
        Ok(url) => Attempt::Unauthorized(UNAUTHORIZED.to_owned(), url),
        Err(reason) => Attempt::Fatal(def.connector.redact(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_or_unrunnable_commands_count_as_permanent() {
        let spawn = |kind| TransportError::Spawn {
            command: "x".into(),
            reason: "r".into(),
            kind,
        };
        assert!(cannot_heal(&spawn(ErrorKind::NotFound)));
        assert!(cannot_heal(&spawn(ErrorKind::PermissionDenied)));
        assert!(
            !cannot_heal(&spawn(ErrorKind::Other)),
            "e.g. too many open files"
        );
        assert!(!cannot_heal(&TransportError::Exited {
            status: "exit status: 1".into()
        }));
        assert!(!cannot_heal(&TransportError::Http("refused".into())));
        assert!(cannot_heal(&TransportError::ModernOnly));
    }
}
