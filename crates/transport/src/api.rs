//! The public API of the transport crate. Everything here is re-exported at the crate root.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_hub_protocol::types::InitializeResult;
use mcp_hub_protocol::{ErrorObject, Message, Notification, RawValue, Request};
use tokio::sync::mpsc;

use crate::engine::Engine;

/// How to reach an upstream server.
#[derive(Debug, Clone)]
pub enum TransportSpec {
    /// A local child process speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio(StdioSpec),
    /// A remote server: Streamable HTTP, falling back to legacy HTTP+SSE when the `initialize`
    /// POST answers 400, 404 or 405.
    Http(HttpSpec),
    /// A remote server spoken to with Streamable HTTP only.
    StreamableHttp(HttpSpec),
    /// A remote server spoken to with the legacy HTTP+SSE transport only.
    Sse(HttpSpec),
}

/// A child process to spawn.
#[derive(Debug, Clone)]
pub struct StdioSpec {
    /// The server's name, used to tag its stderr in logs.
    pub name: String,
    /// Executable (looked up in `PATH` when not a path).
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// The child's complete environment: the child inherits nothing else from the hub.
    pub env: Vec<(String, String)>,
    /// Working directory; the hub's own when `None`.
    pub cwd: Option<PathBuf>,
    /// Where stderr lines go (besides `tracing`). Lines are dropped when the receiver is full.
    pub stderr: Option<mpsc::Sender<String>>,
}

/// A remote server endpoint.
#[derive(Clone)]
pub struct HttpSpec {
    /// The server's name, for logs.
    pub name: String,
    /// The MCP endpoint (Streamable HTTP) or SSE endpoint (legacy).
    pub url: url::Url,
    /// Static headers sent on every request (POST, GET and DELETE).
    pub headers: Vec<(String, String)>,
    /// Supplies bearer tokens and reacts to 401/403.
    pub auth: Option<Arc<dyn AuthHook>>,
}

impl fmt::Debug for HttpSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are often secrets: show names only.
        f.debug_struct("HttpSpec")
            .field("name", &self.name)
            .field("url", &crate::http_client::display_url(&self.url))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

/// The hook through which the auth crate authenticates requests to a remote upstream.
#[async_trait::async_trait]
pub trait AuthHook: Send + Sync + 'static {
    /// The `Authorization` header value to send, if any (e.g. `Bearer <token>`).
    async fn authorization(&self) -> Result<Option<String>, AuthFailure>;

    /// Called on 401, or on 403 with `insufficient_scope`. Returning `Ok(true)` means new
    /// credentials are available and the request should be retried; `Ok(false)` means the
    /// user has to authorise (the session fails with [`TransportError::Unauthorized`]).
    async fn on_unauthorized(&self, challenge: &AuthChallenge) -> Result<bool, AuthFailure>;

    /// The credential headers of one request to `url` with `method`: by default `Authorization`
    /// from [`authorization`](AuthHook::authorization). Sender-constrained tokens (DPoP,
    /// RFC 9449) need the method and URL to sign a fresh proof for every request.
    async fn credentials(
        &self,
        method: &http::Method,
        url: &url::Url,
    ) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, AuthFailure> {
        let _ = (method, url);
        let Some(value) = self.authorization().await? else {
            return Ok(Vec::new());
        };
        let mut value = http::HeaderValue::from_str(&value)
            .map_err(|_| AuthFailure("the auth hook returned an invalid header value".into()))?;
        value.set_sensitive(true);
        Ok(vec![(http::header::AUTHORIZATION, value)])
    }

    /// Sees the headers of every response from `url` (including 401/403, before
    /// [`on_unauthorized`](AuthHook::on_unauthorized)): servers hand out DPoP nonces there.
    fn on_response(&self, url: &url::Url, headers: &http::HeaderMap) {
        let _ = (url, headers);
    }
}

/// What a 401/403 answer said.
#[derive(Debug, Clone)]
pub struct AuthChallenge {
    /// 401 or 403.
    pub status: u16,
    /// The raw `WWW-Authenticate` header, if any.
    pub www_authenticate: Option<String>,
    /// The URL that was requested.
    pub url: url::Url,
}

/// An auth hook failure, shown to the user.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AuthFailure(pub String);

/// Options of a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// `clientInfo` sent in `initialize`.
    pub client_info: mcp_hub_protocol::types::Implementation,
    /// Capabilities the hub declares upstream (e.g. `sampling`, `elicitation`, `roots`).
    pub capabilities: serde_json::Map<String, serde_json::Value>,
    /// How long `initialize` may take.
    pub initialize_timeout: Duration,
    /// Default per-request timeout.
    pub request_timeout: Duration,
    /// Largest accepted message (stdio line, HTTP body, SSE event).
    pub max_message_bytes: usize,
    /// stdio shutdown: how long to wait after closing stdin before SIGTERM, and after SIGTERM
    /// before SIGKILL.
    pub shutdown_timeout: Duration,
    /// How long a request that was cancelled, timed out or abandoned stays "possibly responsible"
    /// for what the server sends (the server may not have seen the cancellation), unless the
    /// server answers it first. See [`Attribution::Abandoned`](crate::Attribution::Abandoned).
    pub abandoned_grace: Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            client_info: mcp_hub_protocol::types::Implementation {
                name: "mcp-hub".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                extra: Default::default(),
            },
            capabilities: Default::default(),
            initialize_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_message_bytes: 64 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(2),
            abandoned_grace: Duration::from_secs(30),
        }
    }
}

/// Options of one request.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Timeout; the session default when `None`.
    pub timeout: Option<Duration>,
    /// Whether a progress notification restarts the timeout.
    pub reset_timeout_on_progress: bool,
    /// Hard maximum however much progress arrives; `None` = 10 × timeout.
    pub max_total_timeout: Option<Duration>,
    /// Receives what belongs to this request: progress notifications (with the caller's original
    /// `progressToken` restored) and notifications attributed to it ([`Attribution::Exact`] or
    /// [`Attribution::Inferred`]; see [`crate::Attribution`]).
    ///
    /// [`Attribution::Exact`]: crate::Attribution::Exact
    /// [`Attribution::Inferred`]: crate::Attribution::Inferred
    pub related: Option<mpsc::Sender<Notification>>,
    /// The downstream client this request is made for; server-to-client requests and
    /// notifications are attributed to it (and never to anyone else) when the wire allows.
    pub requester: Option<crate::Requester>,
    /// Where the caller puts its reason before abandoning the request; it is sent upstream in
    /// `notifications/cancelled`.
    pub cancel_reason: Option<crate::CancelReason>,
    /// The span this request is made under (the hub's downstream span): the registry sends
    /// a child of it upstream in `params._meta.traceparent`, and an HTTP wire copies that into
    /// its `traceparent` header.
    pub trace: Option<mcp_hub_protocol::trace::TraceContext>,
    /// What the downstream client itself declared it can answer. A 2026-07-28 upstream is told
    /// per request which capabilities its client has, so its `clientCapabilities` are the hub's
    /// narrowed to these (sampling and elicitation; roots the hub can always answer): a server
    /// that needs what the caller lacks refuses the request as it would refuse the caller.
    /// `None`: the hub's own capabilities.
    pub client_features: Option<crate::ClientFeatures>,
}

/// Handles requests the server sends to the client (sampling, elicitation, roots, ping).
#[async_trait::async_trait]
pub trait ServerRequestHandler: Send + Sync + 'static {
    /// Answers one server-to-client request. `attribution` says which [`RequestOptions::requester`]
    /// it belongs to, when that can be known, and why not otherwise.
    async fn handle(
        &self,
        request: Request,
        attribution: crate::Attribution,
    ) -> Result<Box<RawValue>, ErrorObject>;
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The server answered with a JSON-RPC error; pass it on unchanged.
    #[error("upstream error {}: {}", .0.code, .0.message)]
    Rpc(ErrorObject),
    /// No answer in time; `notifications/cancelled` was sent upstream.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The connection is gone.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The request could not be sent.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Why a connection could not be made or was lost.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The child process could not be spawned.
    #[error("failed to start `{command}`: {reason}")]
    Spawn {
        /// The command.
        command: String,
        /// The OS error.
        reason: String,
        /// Its kind: `NotFound` (no such command or working directory) and `PermissionDenied`
        /// (not executable) do not go away by retrying.
        kind: std::io::ErrorKind,
    },
    /// The child exited.
    #[error("process exited ({status})")]
    Exited {
        /// Exit status description.
        status: String,
    },
    /// Connecting or an HTTP exchange failed.
    #[error("http error: {0}")]
    Http(String),
    /// The server answered with an HTTP status the transport cannot handle itself.
    #[error("HTTP {status}: {body}")]
    HttpStatus {
        /// The status code.
        status: u16,
        /// The start of the response body (bounded), for the error message.
        body: String,
    },
    /// The server wants authorisation.
    #[error("unauthorized")]
    Unauthorized(AuthChallenge),
    /// The auth hook failed.
    #[error("authorization failed: {0}")]
    Auth(#[from] AuthFailure),
    /// The server speaks only the stateless 2026-07-28 protocol over a transport on which the
    /// hub does not speak it.
    #[error(
        "upstream speaks only the stateless MCP 2026-07-28 protocol, which the hub does not speak over this transport"
    )]
    ModernOnly,
    /// The server answered `initialize` with a version the hub does not speak.
    #[error("upstream negotiated unsupported protocol version {0:?}")]
    UnsupportedVersion(String),
    /// `initialize` failed.
    #[error("initialize failed: {0}")]
    Initialize(String),
    /// A protocol violation.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The session was closed by the hub.
    #[error("closed")]
    Closed,
}

/// A live, initialised MCP client session. Cloning is cheap; all clones share the connection.
///
/// When the last clone is dropped the session is closed in the background (as by
/// [`ClientSession::close`], without waiting).
#[derive(Clone)]
pub struct ClientSession {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    engine: Arc<Engine>,
    init: InitializeResult,
    /// For a 2026-07-28 session: the `_meta` every request carries.
    modern: Option<crate::modern::input::ModernClient>,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        self.engine.close_detached();
    }
}

impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("server", &self.inner.init.server_info.name)
            .field("protocol_version", &self.inner.init.protocol_version)
            .field("transport", &self.transport_kind())
            .field("pid", &self.pid())
            .field("open", &self.is_open())
            .finish()
    }
}

/// Server notifications that belong to no particular request.
pub type NotificationStream = mpsc::Receiver<Notification>;

impl ClientSession {
    pub(crate) fn new(engine: Arc<Engine>, init: InitializeResult) -> Self {
        ClientSession {
            inner: Arc::new(SessionInner {
                engine,
                init,
                modern: None,
            }),
        }
    }

    /// A stateless 2026-07-28 session: `init` is built from the `server/discover` result.
    pub(crate) fn new_modern(
        engine: Arc<Engine>,
        init: InitializeResult,
        client: crate::modern::input::ModernClient,
    ) -> Self {
        ClientSession {
            inner: Arc::new(SessionInner {
                engine,
                init,
                modern: Some(client),
            }),
        }
    }

    /// Whether this session speaks the stateless 2026-07-28 revision (no handshake, no
    /// server-to-client requests; input is asked for with `InputRequiredResult`).
    pub fn is_modern(&self) -> bool {
        self.inner.modern.is_some()
    }

    /// Opens the transport, performs `initialize` / `notifications/initialized` and returns the
    /// session with the stream of unrelated server notifications (bounded; when the consumer falls
    /// behind, new notifications are dropped and a rate-limited warning is logged).
    ///
    /// [`TransportSpec::Http`] tries Streamable HTTP first and falls back to legacy HTTP+SSE when
    /// the `initialize` POST answers 400, 404 or 405, unless the answer is a JSON-RPC error of the
    /// stateless 2026-07-28 era ([`TransportError::ModernOnly`]). The hub offers
    /// [`LATEST_PROTOCOL_VERSION`](mcp_hub_protocol::LATEST_PROTOCOL_VERSION) and accepts any of
    /// [`SUPPORTED_PROTOCOL_VERSIONS`](mcp_hub_protocol::SUPPORTED_PROTOCOL_VERSIONS).
    pub async fn connect(
        spec: TransportSpec,
        options: SessionOptions,
        handler: Arc<dyn ServerRequestHandler>,
    ) -> Result<(ClientSession, NotificationStream), TransportError> {
        crate::connect::connect(spec, options, handler).await
    }

    /// The server's `initialize` result (for a 2026-07-28 session, what `server/discover` said, in
    /// the same shape).
    pub fn initialize_result(&self) -> &InitializeResult {
        &self.inner.init
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> &str {
        &self.inner.init.protocol_version
    }

    /// Sends a request and waits for its result. Dropping the future cancels the request upstream.
    ///
    /// A `_meta.progressToken` in `params` is replaced upstream by a session-unique token; the
    /// progress notifications for it reach [`RequestOptions::related`] with the original token.
    /// On timeout `notifications/cancelled` is sent upstream and [`RequestError::Timeout`]
    /// returned.
    ///
    /// On a 2026-07-28 session ([`is_modern`](Self::is_modern)) every request carries the
    /// era's `_meta`, and an `InputRequiredResult` made for a [`RequestOptions::requester`] is
    /// answered through the session's [`ServerRequestHandler`] (each input request attributed
    /// exactly to that requester) and retried with `inputResponses` and the server's
    /// `requestState`, for at most eight rounds. Without a requester it is returned as is.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
        options: RequestOptions,
    ) -> Result<Box<RawValue>, RequestError> {
        if let Some(client) = &self.inner.modern {
            return crate::modern::input::request(
                &self.inner.engine,
                client,
                method,
                params,
                options,
            )
            .await;
        }
        self.inner
            .engine
            .request(
                method,
                params,
                options,
                method != mcp_hub_protocol::methods::INITIALIZE,
            )
            .await
    }

    /// Sends a notification.
    pub async fn notify(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<(), TransportError> {
        self.inner.engine.notify(method, params).await
    }

    /// Resolves when the connection is gone, with the reason. Every pending request has failed by
    /// then.
    pub async fn closed(&self) -> TransportError {
        self.inner.engine.closed().await
    }

    /// How many upstream log messages could not be attributed to one downstream client and
    /// went to the hub's log instead.
    pub fn unattributed_logs(&self) -> u64 {
        self.inner.engine.unattributed_logs()
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.inner.engine.is_open()
    }

    /// The child's process id, for stdio sessions. It is also the id of the child's process group.
    pub fn pid(&self) -> Option<u32> {
        self.inner.engine.wire().pid()
    }

    /// The transport actually in use (`stdio`, `streamable-http` or `sse`).
    pub fn transport_kind(&self) -> &'static str {
        self.inner.engine.wire().kind()
    }

    /// Closes the session: DELETE for HTTP sessions; for stdio, close stdin, wait, SIGTERM the
    /// process group, wait, SIGKILL. Pending requests fail with [`RequestError::Closed`]. Returns
    /// when the transport is shut down (for stdio: the child has been reaped).
    pub async fn close(&self) {
        self.inner.engine.close().await;
    }
}

/// Convenience: a `Message` as written on a stdio line.
pub fn encode_line(msg: &Message) -> Vec<u8> {
    mcp_hub_protocol::into_stdio_line(msg.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pretty_printed_payload_still_goes_out_as_one_line() {
        let raw =
            mcp_hub_protocol::RawValue::from_string("{\n  \"text\": \"a\\nb\"\r\n}".to_owned())
                .unwrap();
        let line = encode_line(&Message::response(
            mcp_hub_protocol::RequestId::from(1),
            raw,
        ));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        let back = Message::from_slice(&line[..line.len() - 1]).unwrap();
        let Message::Response(r) = back else {
            panic!("a response")
        };
        let v: serde_json::Value = serde_json::from_str(r.result.get()).unwrap();
        assert_eq!(
            v["text"], "a\nb",
            "escaped newlines inside strings are untouched"
        );
    }
}
