//! The hub's HTTP side as a value a program mounts in a server of its own: a hyper
//! [`Service`](hyper::service::Service) (and, with the `tower` feature, a
//! [`tower_service::Service`]) serving `/mcp`, the legacy `/sse` + `/messages`, and `/api/*`
//! under a path prefix the program chooses. Requests go through exactly the routes, checks and
//! limits the hub's own listener uses ([`crate::server::dispatch`]); what a listener does per
//! connection (the connection cap, header and keep-alive timeouts) is the host server's job.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;

use crate::body::{self, BoxError};
use crate::server::{Api, Shared, dispatch};

/// The body of every response the hub's service gives: a full buffer or an SSE stream.
pub type ResponseBody = body::Body;

/// Where a request came from, for the per-client session quota of `/mcp` when no bearer token
/// identifies the client. The hub's own listener knows it; a host server that does should put
/// it in the request's extensions (axum: from `ConnectInfo`). Without it, every client that
/// has no token shares one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The prefix the hub is mounted under, in a request's extensions, for the URLs the hub
/// announces (the legacy transport's `endpoint` event).
#[derive(Debug, Clone)]
pub(crate) struct MountPrefix(Arc<str>);

/// The prefix a request was mounted under (`""` at the root).
pub(crate) fn mount_prefix(ext: &http::Extensions) -> &str {
    ext.get::<MountPrefix>().map_or("", |p| &p.0)
}

/// The hub's HTTP side as a service: see [`Api::service`]. Cheap to clone.
#[derive(Clone)]
pub struct HubService {
    shared: Arc<Shared>,
    prefix: Arc<str>,
    /// Whether requests arrive with `prefix` in their path (then it is stripped here) or
    /// without it (the host router stripped it, as axum's `nest_service` does).
    strip: bool,
}

impl std::fmt::Debug for HubService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubService")
            .field("prefix", &self.prefix)
            .field("strip", &self.strip)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The HTTP side as a service to mount in a server of the program's own, at the root
    /// (`/mcp`, `/sse`, `/messages`, `/api/*`, and the console at `/ui/`). See
    /// [`HubService::at`] and [`HubService::nested`] for a prefix.
    pub fn service(&self) -> HubService {
        HubService {
            shared: self.shared.clone(),
            prefix: Arc::from(""),
            strip: false,
        }
    }
}

/// `/hub/` → `/hub`, `hub` → `/hub`, `/` → ``.
fn normalize_prefix(prefix: &str) -> Arc<str> {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        Arc::from("")
    } else if p.starts_with('/') {
        Arc::from(p)
    } else {
        Arc::from(format!("/{p}"))
    }
}

impl HubService {
    /// Requests arrive with `prefix` in their path (`/hub/mcp`, `/hub/api/servers`), which the
    /// service strips; anything outside it is answered 404. For a host router that hands the
    /// whole path on (hyper's `service_fn`, axum's `fallback_service` or `route_service`).
    pub fn at(mut self, prefix: &str) -> HubService {
        self.prefix = normalize_prefix(prefix);
        self.strip = true;
        self
    }

    /// Requests arrive with the `prefix` the host router mounted the hub under already taken
    /// off their path (axum's `nest_service("/hub", …)`); the prefix is only used in the URLs
    /// the hub announces to clients (the legacy `endpoint` event).
    pub fn nested(mut self, prefix: &str) -> HubService {
        self.prefix = normalize_prefix(prefix);
        self.strip = false;
        self
    }

    /// The mount prefix (`""` at the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Serves one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, b) = req.into_parts();
        if self.strip && !self.prefix.is_empty() {
            match strip(&parts.uri, &self.prefix) {
                Some(uri) => parts.uri = uri,
                None => return body::status(StatusCode::NOT_FOUND),
            }
        }
        if self.shared.shutdown.is_cancelled() {
            return body::jsonrpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                -32000,
                "Service Unavailable: the hub is shutting down",
            );
        }
        let peer = parts.extensions.get::<ClientAddr>().map(|a| a.0);
        parts.extensions.insert(MountPrefix(self.prefix.clone()));
        let req = Request::from_parts(
            parts,
            b.map_err(|e| body::BodyError(e.into())).boxed_unsync(),
        );
        dispatch(self.shared.clone(), req, peer).await
    }
}

/// `uri` with `prefix` taken off its path; `None` when the path is not under it.
fn strip(uri: &Uri, prefix: &str) -> Option<Uri> {
    let rest = uri.path().strip_prefix(prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut b = Uri::builder().path_and_query(pq);
    if let Some(s) = uri.scheme() {
        b = b.scheme(s.clone());
    }
    if let Some(a) = uri.authority() {
        b = b.authority(a.clone());
    }
    b.build().ok()
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

impl<B> hyper::service::Service<Request<B>> for HubService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

#[cfg(feature = "tower")]
impl<B> tower_service::Service<Request<B>> for HubService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        // Back-pressure is per session (quotas, bounded channels), not per service.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_stripped_only_at_a_segment_boundary() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(
            strip(&u("/hub/messages?sessionId=a"), "/hub").unwrap(),
            u("/messages?sessionId=a")
        );
        assert_eq!(strip(&u("/hub"), "/hub").unwrap(), u("/"));
        assert_eq!(
            strip(&u("http://h:1/hub/mcp"), "/hub").unwrap(),
            u("http://h:1/mcp")
        );
        assert!(strip(&u("/hubble/mcp"), "/hub").is_none());
        assert!(strip(&u("/mcp"), "/hub").is_none());
        assert_eq!(&*normalize_prefix("hub/"), "/hub");
        assert_eq!(&*normalize_prefix("/"), "");
    }
}
