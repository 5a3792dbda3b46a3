//! The REST management API of the Node `mcp-hub` 4.2.1 (`/api/*`) and its `/api/events`
//! Server-Sent Events stream. Routes, payloads and event names follow the Node hub so that
//! mcphub.nvim and other clients keep working; where the Node hub is defective (every error a
//! 500, HTML error pages, reflected XSS in the OAuth callback, ...) this one does better, as
//! `docs/API.md` lists.

mod calls;
mod events;
mod fleet;
mod health;
mod input;
mod market;
mod oauth;
mod pump;
mod reply;
mod routes;
mod seen;
mod shape;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use mcp_hub_registry::Registry;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::body::{self, Body, RequestBody};
use crate::{ApiConfig, Control};
use events::EventHub;
pub(crate) use health::HealthView;
use reply::Failure;

/// How long after a REST operation on a server its status changes still count as caused by
/// that operation (the route itself announces them).
const OWN_CHANGE_GRACE: Duration = Duration::from_secs(1);

/// The `busy` key of an operation that may touch any server (an OAuth callback, before the
/// control tells which server it was).
const ALL_SERVERS: &str = "*";

pub(crate) struct RestApi {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    registry: Registry,
    control: Arc<dyn Control>,
    port: u16,
    server_id: String,
    compat_version: String,
    heartbeat: Duration,
    max_body_bytes: usize,
    shutdown: CancellationToken,
    events: Arc<EventHub>,
    /// What `/api/events` clients last saw of each server's status.
    seen: seen::SeenStatus,
    /// Servers a REST route is operating on (or just did), whose status events the pump must
    /// not announce a second time.
    busy: Mutex<HashMap<String, Busy>>,
    pump: OnceLock<()>,
    /// Cluster mode: the other replicas.
    fleet: OnceLock<Arc<dyn crate::Fleet>>,
}

struct Busy {
    ops: usize,
    until: Instant,
}

/// Marks a server as being operated on by a route until dropped (plus a grace period).
struct BusyGuard<'a> {
    inner: &'a Inner,
    server: String,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut busy = lock(&self.inner.busy);
        if let Some(b) = busy.get_mut(&self.server) {
            b.ops = b.ops.saturating_sub(1);
            b.until = Instant::now() + OWN_CHANGE_GRACE;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn busy(&self, server: &str) -> BusyGuard<'_> {
        let mut busy = lock(&self.busy);
        let now = Instant::now();
        busy.retain(|_, b| b.ops > 0 || b.until > now);
        busy.entry(server.to_owned())
            .or_insert(Busy { ops: 0, until: now })
            .ops += 1;
        BusyGuard {
            inner: self,
            server: server.to_owned(),
        }
    }

    /// Whether a route is (or was just) operating on the server.
    fn is_busy(&self, server: &str) -> bool {
        let busy = lock(&self.busy);
        let now = Instant::now();
        [server, ALL_SERVERS]
            .iter()
            .any(|k| busy.get(*k).is_some_and(|b| b.ops > 0 || b.until > now))
    }

    /// `servers_updated {changes: {modified}, reason?}`. Clients refresh every server on it, so
    /// what they will see becomes what they have seen.
    fn announce(&self, modified: &[String], reason: Option<&str>) {
        self.seen.refreshed(&self.registry);
        self.events.servers_updated(modified, reason);
    }

    fn ensure_pump(self: &Arc<Self>) {
        self.pump.get_or_init(|| pump::spawn(self));
    }
}

impl RestApi {
    pub(crate) fn new(
        registry: Registry,
        control: Arc<dyn Control>,
        config: &ApiConfig,
        shutdown: CancellationToken,
    ) -> RestApi {
        let inner = Arc::new(Inner {
            registry,
            control,
            port: config.port,
            server_id: config.server_id.clone(),
            compat_version: config.compat_version.clone(),
            heartbeat: config.heartbeat.max(Duration::from_millis(10)),
            max_body_bytes: config.max_body_bytes,
            shutdown,
            events: Arc::new(EventHub::default()),
            seen: seen::SeenStatus::default(),
            busy: Mutex::new(HashMap::new()),
            pump: OnceLock::new(),
            fleet: OnceLock::new(),
        });
        // Started now when a runtime is at hand (events must flow before the first request),
        // else on the first request.
        if tokio::runtime::Handle::try_current().is_ok() {
            inner.ensure_pump();
        }
        RestApi { inner }
    }

    /// Clients connected to `/api/events` (what auto-shutdown counts, as in the Node hub),
    /// including one recently dropped for being slow: it did not leave.
    pub(crate) fn event_clients(&self) -> usize {
        self.inner.events.present()
    }

    /// Serves one `/api/*` request. `mcp_sessions` is the number of live `/mcp` sessions, for
    /// the health payload; `health` says which payload the caller may see.
    pub(crate) async fn handle(
        &self,
        req: Request<RequestBody>,
        mcp_sessions: usize,
        health: HealthView,
    ) -> Response<Body> {
        self.inner.ensure_pump();
        let (parts, incoming) = req.into_parts();
        let path = normalize(parts.uri.path());
        let Some(route) = ROUTES.iter().find(|r| r.path == path) else {
            return Failure::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("Cannot {} {}", parts.method, parts.uri.path()),
            )
            .with("method", parts.method.as_str())
            .with("path", parts.uri.path())
            .into_response();
        };
        // HEAD is GET without the body (hyper drops it), as Express does; not for the stream.
        let method = if parts.method == Method::HEAD && !matches!(route.id, RouteId::Events) {
            Method::GET
        } else {
            parts.method.clone()
        };
        if !route.methods.contains(&method) {
            let allow: Vec<&str> = route.methods.iter().map(Method::as_str).collect();
            let mut f = Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                format!(
                    "Method {} not allowed for {}",
                    parts.method,
                    parts.uri.path()
                ),
            )
            .with("allowed", allow.clone());
            f.allow = Some(allow.join(", "));
            return f.into_response();
        }
        let query = parse_query(parts.uri.query());
        let body = if parts.method == Method::POST {
            match read_json(incoming, self.inner.max_body_bytes).await {
                Ok(b) => b,
                Err(f) => return f.into_response(),
            }
        } else {
            Map::new()
        };
        let inner = &self.inner;
        let reply = match route.id {
            RouteId::Health if health == HealthView::Liveness => {
                Ok(inner.health_liveness(mcp_sessions))
            }
            RouteId::Health => Ok(inner.health(mcp_sessions)),
            RouteId::Servers => Ok(inner.servers_view().await),
            RouteId::Info => inner.info_view(&body).await,
            RouteId::Start => inner.start(&body).await,
            RouteId::Stop => inner.stop(&body, &query).await,
            RouteId::Refresh => inner.refresh(&body).await,
            RouteId::RefreshAll => Ok(inner.refresh_all().await),
            RouteId::Tools => inner.call_tool(&body).await,
            RouteId::Resources => inner.read_resource(&body).await,
            RouteId::Prompts => inner.get_prompt(&body).await,
            RouteId::Authorize => inner.authorize(&body).await,
            RouteId::OauthCallback => Ok(inner.oauth_callback(&query).await),
            RouteId::ManualCallback => inner.manual_callback(&body).await,
            RouteId::Restart => inner.restart().await,
            RouteId::HardRestart => Ok(inner.hard_restart().await),
            RouteId::Workspaces => Ok(inner.workspaces()),
            RouteId::Config => Ok(reply::ok(inner.control.config_view())),
            RouteId::Profiles => Ok(reply::ok(inner.profiles())),
            RouteId::Marketplace => inner.marketplace(&query).await,
            RouteId::MarketplaceDetails => inner.marketplace_details(&body).await,
            RouteId::Events => inner.subscribe_events(),
        };
        reply.unwrap_or_else(Failure::into_response)
    }
}

#[derive(Debug, Clone, Copy)]
enum RouteId {
    Health,
    Servers,
    Info,
    Start,
    Stop,
    Refresh,
    RefreshAll,
    Tools,
    Resources,
    Prompts,
    Authorize,
    OauthCallback,
    ManualCallback,
    Restart,
    HardRestart,
    Workspaces,
    Config,
    Profiles,
    Marketplace,
    MarketplaceDetails,
    Events,
}

struct Route {
    path: &'static str,
    methods: &'static [Method],
    id: RouteId,
}

const GET: &[Method] = &[Method::GET];
const POST: &[Method] = &[Method::POST];

/// Paths relative to `/api`, lower case (Express routes are case-insensitive).
#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route { path: "/health", methods: GET, id: RouteId::Health },
    Route { path: "/servers", methods: GET, id: RouteId::Servers },
    Route { path: "/servers/info", methods: POST, id: RouteId::Info },
    Route { path: "/servers/start", methods: POST, id: RouteId::Start },
    Route { path: "/servers/stop", methods: POST, id: RouteId::Stop },
    Route { path: "/servers/refresh", methods: POST, id: RouteId::Refresh },
    // The Node hub serves only GET although its README documents POST; both work here.
    Route { path: "/refresh", methods: &[Method::GET, Method::POST], id: RouteId::RefreshAll },
    Route { path: "/servers/tools", methods: POST, id: RouteId::Tools },
    Route { path: "/servers/resources", methods: POST, id: RouteId::Resources },
    Route { path: "/servers/prompts", methods: POST, id: RouteId::Prompts },
    Route { path: "/servers/authorize", methods: POST, id: RouteId::Authorize },
    Route { path: "/oauth/callback", methods: GET, id: RouteId::OauthCallback },
    Route { path: "/oauth/manual_callback", methods: POST, id: RouteId::ManualCallback },
    Route { path: "/restart", methods: POST, id: RouteId::Restart },
    Route { path: "/hard-restart", methods: POST, id: RouteId::HardRestart },
    Route { path: "/workspaces", methods: GET, id: RouteId::Workspaces },
    Route { path: "/config", methods: GET, id: RouteId::Config },
    Route { path: "/profiles", methods: GET, id: RouteId::Profiles },
    Route { path: "/marketplace", methods: GET, id: RouteId::Marketplace },
    Route { path: "/marketplace/details", methods: POST, id: RouteId::MarketplaceDetails },
    Route { path: "/events", methods: GET, id: RouteId::Events },
];

/// `/api/Servers/` → `/servers` (Express: case-insensitive, optional trailing slash).
fn normalize(path: &str) -> String {
    let rest = path.strip_prefix("/api").unwrap_or(path);
    let rest = if rest.len() > 1 {
        rest.strip_suffix('/').unwrap_or(rest)
    } else {
        rest
    };
    rest.to_ascii_lowercase()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// Reads a JSON request body. An empty body is `{}` (as Express leaves it); a body that is
/// valid JSON but not an object has no fields, so the route reports the missing one.
async fn read_json(incoming: RequestBody, limit: usize) -> Result<Map<String, Value>, Failure> {
    let bytes = match body::read_limited(incoming, limit).await {
        Ok(b) => b,
        Err(StatusCode::PAYLOAD_TOO_LARGE) => {
            return Err(Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "Request body too large",
            )
            .with("limit", limit));
        }
        Err(StatusCode::REQUEST_TIMEOUT) => {
            return Err(Failure::new(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "The request body did not arrive in time",
            ));
        }
        Err(_) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "Could not read the request body",
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Ok(Map::new()),
        Err(e) => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!("Invalid JSON in request body: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_like_express() {
        assert_eq!(normalize("/api/health"), "/health");
        assert_eq!(normalize("/api/Servers/Info/"), "/servers/info");
        assert_eq!(normalize("/api/"), "/");
        assert_eq!(normalize("/api"), "");
    }

    #[test]
    fn query_strings_decode() {
        let q = parse_query(Some("disable=true&search=a%20b&tags=x,y"));
        assert_eq!(q["disable"], "true");
        assert_eq!(q["search"], "a b");
        assert_eq!(q["tags"], "x,y");
        assert!(parse_query(None).is_empty());
    }

    #[test]
    fn every_route_is_reachable() {
        for r in ROUTES {
            assert_eq!(normalize(&format!("/api{}", r.path)), r.path);
            assert!(!r.methods.is_empty());
        }
    }
}
