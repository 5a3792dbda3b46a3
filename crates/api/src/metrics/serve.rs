//! A listener of its own for scrapers (`--metrics-listen`): only `GET /metrics`, behind the
//! same Host/Origin and bearer checks as the main listener, one short request per connection
//! budget (no SSE, no bodies), so a scraper never competes with clients for connection slots.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Rejection, route_of};
use crate::body::{self, Body};
use crate::guard;
use crate::server::Shared;

/// Connections served at once on the metrics address: a few scrapers, not a crowd.
const MAX_CONNECTIONS: usize = 16;

pub(crate) async fn serve_metrics(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(target: "mcp_hub::api", "metrics listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            shared.metrics.reject(Rejection::ConnectionClosed);
            continue;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let svc = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(answer(&shared, req)) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .header_read_timeout(Duration::from_secs(10))
            .timer(hyper_util::rt::TokioTimer::new())
            .serve_connection(TokioIo::new(stream), svc);
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.as_mut()).await;
                }
            }
            drop(permit);
        });
    }
}

fn answer(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let route = route_of(req.uri().path());
    let r = if !guard::host_allowed(&shared.config, req.headers())
        || !guard::origin_allowed(&shared.config, req.headers())
    {
        shared.metrics.reject(Rejection::HostOrigin);
        guard::forbidden_origin()
    } else if !guard::bearer_ok(&shared.config, req.headers()) {
        shared.metrics.reject(Rejection::Token);
        guard::unauthorized()
    } else if req.uri().path() == "/metrics" {
        super::handle(shared, req.method())
    } else {
        body::status(StatusCode::NOT_FOUND)
    };
    shared.metrics.request(route, None, r.status());
    r
}
