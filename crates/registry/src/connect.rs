//! One connection attempt: resolve the server's spec, connect and initialize, and classify how it
//! ended (connected, worth retrying, needs the user, or cannot heal by itself).

use std::io::ErrorKind;
use std::sync::{Arc, Weak};

use mcp_hub_protocol::{ErrorCode, ErrorObject, RawValue, Request};
use mcp_hub_transport::{
    Attribution, AuthChallenge, ClientSession, NotificationStream, Requester, ServerRequestHandler,
    SessionOptions, TransportError,
};

use crate::shared::Inner;
use crate::{RegistryOptions, ServerDefinition};

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

/// Hands a server's requests to the registry's client handler. On a per-session instance
/// (`owner`), everything not tied to a call of the owner is still the owner's.
pub(crate) struct UpstreamHandler {
    server: Arc<str>,
    inner: Weak<Inner>,
    owner: Option<Requester>,
}

impl UpstreamHandler {
    pub(crate) fn new(server: &str, inner: &Arc<Inner>, owner: Option<Requester>) -> Self {
        UpstreamHandler {
            server: Arc::from(server),
            inner: Arc::downgrade(inner),
            owner,
        }
    }
}

#[async_trait::async_trait]
impl ServerRequestHandler for UpstreamHandler {
    async fn handle(
        &self,
        request: Request,
        attribution: Attribution,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let attribution = match (self.owner, attribution) {
            (Some(_), a @ (Attribution::Exact(_) | Attribution::Inferred(_))) => a,
            (Some(owner), Attribution::Abandoned(_)) => Attribution::Abandoned(owner),
            (Some(owner), _) => Attribution::Inferred(Requester { call: 0, ..owner }),
            (None, a) => a,
        };
        let handler = self
            .inner
            .upgrade()
            .and_then(|i| (*i.client_handler.load_full()).clone());
        match handler {
            Some(h) => h.handle(&self.server, request, attribution).await,
            None => Err(ErrorObject::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("no client can answer {}", request.method),
            )),
        }
    }
}

/// The options of every upstream session of the registry.
pub(crate) fn session_options(opts: &RegistryOptions) -> SessionOptions {
    SessionOptions {
        client_info: opts.client_info.clone(),
        capabilities: opts.client_capabilities.clone(),
        initialize_timeout: opts.initialize_timeout,
        request_timeout: opts.request_timeout,
        max_message_bytes: opts.max_message_bytes,
        abandoned_grace: opts.abandoned_grace,
        ..SessionOptions::default()
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
    let opts = session_options(&inner.opts);
    let handler = Arc::new(UpstreamHandler::new(&def.name, inner, None));
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
