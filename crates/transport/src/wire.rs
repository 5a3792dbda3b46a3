//! The seam between the session engine and the concrete transports (stdio, Streamable HTTP,
//! legacy SSE). A wire moves whole JSON-RPC messages; the engine does everything else.

use std::sync::Arc;

use mcp_hub_protocol::{Message, RequestId};
use tokio::sync::mpsc;

use crate::TransportError;

/// A message received from the server.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) msg: Message,
    /// The id of the client request on whose HTTP response stream this message arrived, when it
    /// came on such a stream (Streamable HTTP). `None` for stdio, the GET stream and legacy SSE.
    pub(crate) origin: Option<RequestId>,
}

/// What an inbound channel carries: a message, or the fatal error that ended the connection
/// (after which the channel closes).
pub(crate) type InboundItem = Result<Inbound, TransportError>;

/// Bound of every wire's inbound channel; a slow engine applies backpressure to the reader.
pub(crate) const INBOUND_CAPACITY: usize = 256;

/// One open connection to a server, as the engine sees it.
#[async_trait::async_trait]
pub(crate) trait Wire: Send + Sync + 'static {
    /// Sends one message. Must not wait for the answer to a request: for HTTP, the POST's
    /// response (JSON or SSE) is read by a task that pushes what it carries into the inbound
    /// channel with `origin` set. Concurrent calls must be allowed.
    ///
    /// An HTTP status the transport cannot handle itself is reported as
    /// [`TransportError::HttpStatus`], so the engine can fall back from Streamable HTTP to legacy
    /// SSE when the `initialize` POST answers 400, 404 or 405.
    async fn send(&self, msg: Message) -> Result<(), TransportError>;

    /// Closes the connection: HTTP DELETE of the session; stdio: close stdin, wait, SIGTERM the
    /// process group, wait, SIGKILL. Idempotent. The inbound channel ends afterwards.
    async fn close(&self);

    /// `stdio`, `streamable-http` or `sse`.
    fn kind(&self) -> &'static str;

    /// The child's process id (stdio only).
    fn pid(&self) -> Option<u32> {
        None
    }

    /// Whether [`Inbound::origin`] is authoritative: a message without one then came on a
    /// stream that belongs to no request (Streamable HTTP's GET stream). On a single-channel wire
    /// (stdio, legacy SSE) nothing says which request a message belongs to.
    fn exact_origins(&self) -> bool {
        false
    }
}

/// A freshly opened wire and its inbound messages.
pub(crate) struct WireParts {
    pub(crate) wire: Arc<dyn Wire>,
    pub(crate) inbound: mpsc::Receiver<InboundItem>,
}
