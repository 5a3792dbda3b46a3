//! `GET /metrics`: the hub's figures in the Prometheus text format (0.0.4), on the main listener
//! (behind the bearer token like `/api/*`) and optionally on an address of its own.
//!
//! Two kinds of figures. What the HTTP surface sees as it happens (requests by route and status,
//! body bytes, rejections, config reloads) is counted here in `prometheus-client` families.
//! Everything about servers, tools and sessions is read at scrape time from where it already
//! lives (the registry's call figures and snapshots, the session table, see `scrape`), so the
//! call path pays for no second bookkeeping.
//!
//! Label values are bounded: routes are a fixed set, statuses are those the hub sends, tools are
//! those the configured servers list (unknown names are one value), reasons and outcomes are
//! fixed words.

mod scrape;
mod serve;

use std::sync::{Arc, OnceLock};

use http::{HeaderValue, Method, Response, StatusCode, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as PromRegistry;

use crate::body::{self, Body};
use crate::server::Shared;

pub(crate) use scrape::Census;

/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    node_hub_version: &'static str,
}

/// Why a request was turned away before it was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Host or Origin not allowed (DNS-rebinding protection).
    HostOrigin,
    /// No valid bearer token.
    Token,
    /// Body larger than the limit.
    BodyLimit,
    /// Body too slow to arrive.
    BodyTimeout,
    /// No room for another MCP session (the table, or the client's quota).
    SessionLimit,
    /// Too many `/api/events` clients.
    EventClients,
    /// Past the connection cap: served `/api/health` only.
    ConnectionSpare,
    /// Past the connection cap and its spare slots: closed at once.
    ConnectionClosed,
}

impl Rejection {
    fn as_str(self) -> &'static str {
        match self {
            Rejection::HostOrigin => "host_origin",
            Rejection::Token => "token",
            Rejection::BodyLimit => "body_limit",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::SessionLimit => "session_limit",
            Rejection::EventClients => "event_clients_limit",
            Rejection::ConnectionSpare => "connection_cap_health_only",
            Rejection::ConnectionClosed => "connection_cap_closed",
        }
    }
}

/// The fixed route label of a request path.
pub(crate) fn route_of(path: &str) -> &'static str {
    match path {
        "/mcp" => "/mcp",
        "/sse" => "/sse",
        "/messages" | "/message" => "/messages",
        "/metrics" => "/metrics",
        "/api/health" => "/api/health",
        "/api/events" => "/api/events",
        "/api/servers" => "/api/servers",
        p if p.starts_with("/api/servers/") => "/api/servers/*",
        p if p.starts_with("/api/") => "/api/*",
        p if crate::ui::is_console(p) => "/ui",
        _ => "other",
    }
}

struct Inner {
    families: PromRegistry,
    http: Family<HttpLabels, Counter>,
    body_bytes: Family<RouteLabel, Counter>,
    rejected: Family<ReasonLabel, Counter>,
    reloads: Family<OutcomeLabel, Counter>,
    /// The series every `tools/call` counts (`/mcp`, 200, and `/mcp`'s body bytes), looked up in
    /// their families once: a lookup hashes the labels with SipHash under a lock, ~1,300
    /// instructions per request. Made on first use, so the exposition is as without them.
    mcp_ok: OnceLock<Counter>,
    mcp_bytes: OnceLock<Counter>,
}

/// The hub's metrics: cheap to clone, shared by every listener.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut families = PromRegistry::with_prefix("mcp_hub");
        let http = Family::<HttpLabels, Counter>::default();
        families.register(
            "http_requests",
            "HTTP requests served, by route and status",
            http.clone(),
        );
        let body_bytes = Family::<RouteLabel, Counter>::default();
        families.register(
            "http_request_body_bytes",
            "Request body bytes received, by route (as the Content-Length header declares them)",
            body_bytes.clone(),
        );
        let rejected = Family::<ReasonLabel, Counter>::default();
        families.register(
            "rejected_requests",
            "Requests and connections turned away before being served, by reason",
            rejected.clone(),
        );
        let reloads = Family::<OutcomeLabel, Counter>::default();
        families.register(
            "config_reloads",
            "Config reloads, by outcome (ok, failed)",
            reloads.clone(),
        );
        // Both outcomes exist from the start, so a rate over them is defined before the first.
        for outcome in ["ok", "failed"] {
            let _ = reloads.get_or_create(&OutcomeLabel { outcome });
        }
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                node_hub_version: crate::NODE_HUB_VERSION,
            })
            .set(1);
        families.register(
            "build_info",
            "This hub's version and the Node mcp-hub API level it implements (always 1)",
            build,
        );
        Metrics {
            inner: Arc::new(Inner {
                families,
                http,
                body_bytes,
                rejected,
                reloads,
                mcp_ok: OnceLock::new(),
                mcp_bytes: OnceLock::new(),
            }),
        }
    }

    /// Counts a config reload (applied, or refused and the running config kept).
    pub fn config_reload(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.inner
            .reloads
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub(crate) fn reject(&self, why: Rejection) {
        self.inner
            .rejected
            .get_or_create(&ReasonLabel {
                reason: why.as_str(),
            })
            .inc();
    }

    /// Counts a request when its response head is ready. Limits that the handlers enforce are
    /// recognised by their status here, so the handlers need not know about metrics.
    pub(crate) fn request(
        &self,
        route: &'static str,
        content_length: Option<&HeaderValue>,
        status: StatusCode,
    ) {
        let inner = &*self.inner;
        let count = |route, status: StatusCode| {
            inner
                .http
                .get_or_create(&HttpLabels {
                    route,
                    status: status.as_u16(),
                })
                .clone()
        };
        let mcp = route == "/mcp";
        if mcp && status == StatusCode::OK {
            inner.mcp_ok.get_or_init(|| count(route, status)).inc();
        } else {
            count(route, status).inc();
        }
        let declared = content_length
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = declared.filter(|&n| n > 0) {
            let bytes = || {
                inner
                    .body_bytes
                    .get_or_create(&RouteLabel { route })
                    .clone()
            };
            if mcp {
                inner.mcp_bytes.get_or_init(bytes).inc_by(n);
            } else {
                bytes().inc_by(n);
            }
        }
        let why = match (status, route) {
            (StatusCode::PAYLOAD_TOO_LARGE, _) => Some(Rejection::BodyLimit),
            (StatusCode::REQUEST_TIMEOUT, _) => Some(Rejection::BodyTimeout),
            (StatusCode::SERVICE_UNAVAILABLE, "/mcp" | "/sse") => Some(Rejection::SessionLimit),
            (StatusCode::SERVICE_UNAVAILABLE, "/api/events") => Some(Rejection::EventClients),
            _ => None,
        };
        if let Some(why) = why {
            self.reject(why);
        }
    }

    /// The exposition: the families counted here, then the figures read from the registry and
    /// the session table.
    pub(crate) fn render(&self, census: Census) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.families);
        scrape::render(&mut out, census);
        out
    }

    /// The `/metrics` response.
    pub(crate) fn respond(&self, census: Census) -> Response<Body> {
        let text = self.render(census);
        let mut r = Response::new(body::full(text));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

pub(crate) use serve::serve_metrics;

/// A server's tool-call summary as `/api/servers` shows it (`calls`): counts, the error rate,
/// and quantiles in milliseconds from the same histograms `/metrics` exports (`null` before the
/// first call).
pub(crate) fn calls_json(c: &mcp_hub_registry::CallSnapshot) -> serde_json::Value {
    let ms = |q: Option<f64>| q.map(|s| (s * 1e6).round() / 1e3);
    let errors = c.error_count();
    let by_kind: serde_json::Map<String, serde_json::Value> = mcp_hub_registry::ErrorKind::ALL
        .iter()
        .zip(c.errors)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.as_str().to_owned(), n.into()))
        .collect();
    serde_json::json!({
        "total": c.calls,
        "errors": errors,
        "errorRate": if c.calls == 0 { 0.0 } else { errors as f64 / c.calls as f64 },
        "errorsByKind": by_kind,
        "inFlight": c.in_flight,
        "p50Ms": ms(c.total.quantile(0.5)),
        "p99Ms": ms(c.total.quantile(0.99)),
        "upstreamP50Ms": ms(c.upstream.quantile(0.5)),
        "upstreamP99Ms": ms(c.upstream.quantile(0.99)),
    })
}

/// What a scrape reads, from where it lives.
pub(crate) fn gather(shared: &Shared) -> Census {
    let (sessions, mcp_streams) = shared.mcp.census();
    let catalog = shared.registry.catalog();
    Census {
        observation: shared.registry.observe(),
        servers: shared.registry.snapshots(),
        sessions,
        mcp_streams,
        event_clients: shared.rest.event_clients() as u64,
        catalog: [
            catalog.tools().len() as u64,
            catalog.resources().len() as u64,
            catalog.resource_templates().len() as u64,
            catalog.prompts().len() as u64,
        ],
    }
}

/// `/metrics` on a listener whose Host/Origin and bearer checks have passed.
pub(crate) fn handle(shared: &Shared, method: &Method) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = body::status(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    shared.metrics.respond(gather(shared))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(m: &Metrics) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &m.inner.families).unwrap();
        out
    }

    #[test]
    fn the_cached_mcp_series_count_like_the_others() {
        let m = Metrics::new();
        assert!(
            !exposition(&m).contains(r#"route="/mcp""#),
            "no series before use"
        );
        let len = HeaderValue::from_static("10");
        m.request("/mcp", Some(&len), StatusCode::OK);
        m.request("/mcp", Some(&len), StatusCode::OK);
        m.request("/mcp", None, StatusCode::ACCEPTED);
        m.request("/api/health", Some(&len), StatusCode::OK);
        let text = exposition(&m);
        for series in [
            r#"http_requests_total{route="/mcp",status="200"} 2"#,
            r#"http_requests_total{route="/mcp",status="202"} 1"#,
            r#"http_requests_total{route="/api/health",status="200"} 1"#,
            r#"http_request_body_bytes_total{route="/mcp"} 20"#,
            r#"http_request_body_bytes_total{route="/api/health"} 10"#,
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
    }
}
