use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcp_hub_registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body::{self, Body, BodyError, RequestBody};
use crate::metrics::Rejection;
use crate::{ApiError, Control, Metrics, guard, limits, mcp, rest};

/// The Node `mcp-hub` release whose API this hub implements. Reported as `version` by
/// `/api/health` and first on the binary's `--version` line, because mcphub.nvim checks it.
pub const NODE_HUB_VERSION: &str = "4.2.1";

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Host names accepted in `Host` and `Origin` (DNS-rebinding protection). `*` accepts any.
    pub allowed_hosts: Vec<String>,
    /// Extra origins accepted (exact `scheme://host:port`), `*` for any.
    pub allowed_origins: Vec<String>,
    /// Bearer tokens that protect `/mcp`, `/sse`, `/messages` and `/api/*` (except
    /// `/api/health`). Empty: no protection.
    pub bearer_tokens: Vec<String>,
    /// Bearer tokens bound to a profile: `(profile, token)`. Such a token reaches only
    /// `/mcp/<profile>` (and its legacy `/sse` and `/messages`), nothing else. Any token, of
    /// either kind, turns protection on for every endpoint.
    pub profile_tokens: Vec<(String, String)>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most concurrent `/mcp` sessions.
    pub max_sessions: usize,
    /// Most requests in flight per `/mcp` session.
    pub max_in_flight_per_session: usize,
    /// Most `/mcp` sessions one client holds (one bearer token, else one address): past it, its
    /// own least recently used idle session makes room.
    pub max_sessions_per_client: usize,
    /// A `/mcp` session with no request, no call in flight and no open stream for this long is
    /// closed (sessions with an open stream do not expire).
    pub session_idle_timeout: Duration,
    /// Interval of `heartbeat` events and SSE keep-alive comments.
    pub heartbeat: Duration,
    /// How long in-flight responses may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// The port the hub listens on (reported in `hub_state` and health).
    pub port: u16,
    /// Reported as `server_id`.
    pub server_id: String,
    /// The Node hub API level reported as `version` in health (mcphub.nvim checks it).
    pub compat_version: String,
    /// This hub's identity, announced in the `initialize` result of `/mcp` (`_meta`, under
    /// [`mcp_hub_registry::HUB_INSTANCE_META_KEY`]) so that the hub recognises itself when a
    /// config entry points at its own endpoint.
    pub instance_id: Option<String>,
    /// Most connections served at once, and never more than the process's descriptor limit
    /// minus a reserve for upstreams and files (see `limits`). A few more get a short-lived service that answers only `/api/health`; the rest
    /// are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long a 2026-07-28 call parked for its client's input (MRTR) waits for the client's
    /// retry; past it the call is cancelled upstream and its `requestState` refused.
    pub parked_input_ttl: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            allowed_hosts: vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "[::1]".into(),
                "::1".into(),
            ],
            allowed_origins: Vec::new(),
            bearer_tokens: Vec::new(),
            profile_tokens: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            max_sessions: 1000,
            max_in_flight_per_session: 64,
            max_sessions_per_client: 500,
            session_idle_timeout: Duration::from_secs(10 * 60),
            heartbeat: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            port: 0,
            server_id: "mcp-hub".into(),
            compat_version: NODE_HUB_VERSION.into(),
            instance_id: None,
            max_connections: 4096,
            parked_input_ttl: Duration::from_secs(120),
        }
    }
}

pub(crate) struct Shared {
    pub(crate) config: ApiConfig,
    pub(crate) mcp: mcp::McpEndpoint,
    pub(crate) rest: rest::RestApi,
    pub(crate) shutdown: CancellationToken,
    pub(crate) registry: Registry,
    pub(crate) metrics: Metrics,
}

/// The hub's HTTP server. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("port", &self.shared.config.port)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// Builds the API over a registry. Installs the registry's client-request handler (sampling,
    /// elicitation and roots go to the downstream session that caused them).
    pub fn new(registry: Registry, control: Arc<dyn Control>, config: ApiConfig) -> Api {
        let shutdown = CancellationToken::new();
        let mcp = mcp::McpEndpoint::new(registry.clone(), &config, shutdown.clone());
        let rest = rest::RestApi::new(registry.clone(), control, &config, shutdown.clone());
        let shared = Arc::new(Shared {
            config,
            mcp,
            rest,
            shutdown,
            registry,
            metrics: Metrics::new(),
        });
        Api { shared }
    }

    /// Number of clients connected to `/api/events` (what auto-shutdown counts, as in the Node hub).
    pub fn event_clients(&self) -> usize {
        self.shared.rest.event_clients()
    }

    /// The hub's metrics (what `/metrics` serves), for the parts of the hub that count things
    /// the HTTP surface does not see, such as config reloads.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Serves only `GET /metrics` on `listener` (a scrape address of its own), with the same
    /// Host/Origin and bearer checks as the main listener, until `shutdown` fires.
    pub async fn serve_metrics(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ApiError> {
        crate::metrics::serve_metrics(self.shared.clone(), listener, shutdown).await;
        Ok(())
    }

    /// Makes this hub one replica of a cluster (`docs/SCALE-OUT.md`): requests for sessions other
    /// replicas own are forwarded to them, sessions created here are recorded in the cluster's
    /// directory. Call before serving; a second call is ignored.
    pub fn set_cluster(&self, cluster: Arc<dyn crate::Cluster>) {
        self.shared.mcp.set_cluster(cluster);
    }

    /// Makes `/api/servers`, `/api/events` and start/stop/refresh cover every replica of the
    /// cluster (`docs/SCALE-OUT.md`). Call before serving; a second call is ignored.
    pub fn set_fleet(&self, fleet: std::sync::Arc<dyn crate::Fleet>) {
        self.shared.rest.set_fleet(fleet);
    }

    /// Number of live `/mcp` sessions (Streamable HTTP and legacy SSE).
    pub fn mcp_sessions(&self) -> usize {
        self.shared.mcp.session_count()
    }

    /// Serves on `listener` until `shutdown` fires, then stops accepting, closes every SSE
    /// stream and MCP session, and waits up to the grace period for in-flight responses.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ApiError> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut slots = limits::Slots::new(self.shared.config.max_connections);
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(target: "mcp_hub::api", "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Every connection holds a slot; past the cap, a short-lived one that only serves
            // `/api/health`; past that, none (closed at once, so the backlog keeps moving).
            let Some(slot) = slots.take() else {
                self.shared.metrics.reject(Rejection::ConnectionClosed);
                drop(stream);
                continue;
            };
            if slot.overflow() {
                self.shared.metrics.reject(Rejection::ConnectionSpare);
            }
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let overflow = slot.overflow();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                let req = req.map(|b| b.map_err(|e| BodyError(e.into())).boxed_unsync());
                async move {
                    let route = crate::metrics::route_of(req.uri().path());
                    let declared = req.headers().get(http::header::CONTENT_LENGTH).cloned();
                    let metrics = shared.metrics.clone();
                    // Boxed: hyper keeps the service's future in a box of its own for the
                    // connection's whole life and moves it on every request, and the routes'
                    // future is several KB (every endpoint's state machine): a pointer is cheaper
                    // to move and to keep for each of thousands of idle connections.
                    let r = if overflow {
                        Box::pin(limits::overflow(shared, req, peer)).await
                    } else {
                        Box::pin(dispatch(shared, req, Some(peer))).await
                    };
                    metrics.request(route, declared.as_ref(), r.status());
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let header_timeout = match overflow {
                true => limits::OVERFLOW_HEADER_TIMEOUT,
                false => Duration::from_secs(30),
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(256 * 1024)
                .header_read_timeout(header_timeout)
                .keep_alive(!overflow)
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), svc);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(target: "mcp_hub::api", "connection from {peer}: {e}");
                }
                drop(slot);
            });
        }
        drop(listener);
        self.close().await;
        let _ = tokio::time::timeout(self.shared.config.shutdown_grace, graceful.shutdown()).await;
        let _ = TokioExecutor::new();
        Ok(())
    }

    /// Drains and closes the MCP side: in-flight calls finish (or are answered with an error)
    /// within the grace period while upstreams still run, then every SSE body ends and every
    /// session closes. [`Api::serve`] does this itself; a program that serves the API on its own
    /// server ([`Api::service`]) calls it before stopping the upstreams. Later requests are
    /// answered 503.
    pub async fn close(&self) {
        self.shared
            .mcp
            .drain(self.shared.config.shutdown_grace)
            .await;
        self.shared.shutdown.cancel();
        self.shared.mcp.close_all().await;
    }
}

/// The address a request came from, in its extensions (per-client session quotas).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// `/mcp/<profile>` (Streamable HTTP, and the Node hub's legacy `GET`), `/mcp/<profile>/sse` and
/// `/mcp/<profile>/messages`: the same handlers as `/mcp`, with the profile in the request's
/// extensions, which the session keeps.
async fn profile_endpoint(
    shared: &Shared,
    mut req: Request<RequestBody>,
    name: &str,
    tail: &str,
) -> Response<Body> {
    if shared.mcp.registry().profile(name).is_none() {
        return body::jsonrpc_error(
            StatusCode::NOT_FOUND,
            -32000,
            &format!("Not Found: no profile named '{name}'"),
        );
    }
    req.extensions_mut()
        .insert(crate::mcp::profile::ProfilePath(Arc::from(name)));
    match (tail, req.method()) {
        ("", _) => shared.mcp.handle_mcp(req).await,
        ("/sse", &Method::GET) => shared.mcp.handle_legacy_get(req).await,
        ("/messages" | "/message", &Method::POST) => shared.mcp.handle_legacy_post(req).await,
        _ => body::json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": format!("Cannot {} {}", req.method(), req.uri().path()), "code": "NOT_FOUND", "timestamp": body::now_iso()}),
        ),
    }
}

pub(crate) async fn dispatch(
    shared: Arc<Shared>,
    mut req: Request<RequestBody>,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    if let Some(peer) = peer {
        req.extensions_mut().insert(Peer(peer));
    }
    // The route is read from the request in place; only a profile's path is copied, as its
    // name travels with the request into `profile_endpoint`.
    let path = req.uri().path();
    if !guard::host_allowed(&shared.config, req.headers())
        || !guard::origin_allowed(&shared.config, req.headers())
    {
        shared.metrics.reject(Rejection::HostOrigin);
        return guard::forbidden_origin();
    }
    // The console's page and scripts hold no data; what they show comes from the protected API.
    // Not under a mount prefix: its pages name their assets and the API from the root.
    if crate::ui::is_console(path) && crate::service::mount_prefix(req.extensions()).is_empty() {
        return crate::ui::serve(req.method(), path);
    }
    let open = path == "/api/health" || path == "/api/oauth/callback";
    let principal = guard::principal(&shared.config, req.headers());
    let authorized = guard::no_tokens(&shared.config) || principal.is_some();
    if !open && !authorized {
        shared.metrics.reject(Rejection::Token);
        return guard::unauthorized();
    }
    // A token bound to a profile reaches that profile's endpoint and nothing else.
    let bound = principal.and_then(|p| guard::bound_profile(&shared.config, p));
    let profile_path = crate::mcp::profile::split_path(path);
    if let Some(bound) = bound
        && !open
        && profile_path.is_none_or(|(name, _)| name != bound)
    {
        return guard::wrong_profile();
    }
    if let Some((name, tail)) = profile_path {
        let (name, tail) = (name.to_owned(), tail.to_owned());
        return Box::pin(profile_endpoint(&shared, req, &name, &tail)).await;
    }
    let health = if authorized && bound.is_none() {
        crate::rest::HealthView::Full
    } else {
        crate::rest::HealthView::Liveness
    };
    // Only `/mcp`'s future is part of this one; the other routes' are boxed: this future is as
    // large as its largest branch, and it is moved into a box on every request (see `serve`).
    match path {
        "/mcp" => shared.mcp.handle_mcp(req).await,
        "/metrics" => crate::metrics::handle(&shared, req.method()),
        "/sse" if req.method() == Method::GET => Box::pin(shared.mcp.handle_legacy_get(req)).await,
        "/messages" | "/message" if req.method() == Method::POST => {
            Box::pin(shared.mcp.handle_legacy_post(req)).await
        }
        p if p.starts_with("/api/") => {
            Box::pin(shared.rest.handle(req, shared.mcp.session_count(), health)).await
        }
        _ => body::json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": format!("Cannot {} {}", req.method(), path), "code": "NOT_FOUND", "timestamp": body::now_iso()}),
        ),
    }
}
