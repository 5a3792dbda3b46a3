//! Cluster mode on `/mcp`: a request for a session another live replica owns is forwarded to
//! it, body streamed there and answer streamed back (JSON and SSE alike), with the cluster's
//! secret in [`REPLICA_HEADER`]; the owner serves it as if it came from the client, and never
//! forwards it again. See `docs/SCALE-OUT.md`.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::pool::{self, Pool};
use super::{Inner, lock, session_header};
use crate::body::{self, Body, RequestBody};
use crate::cluster::{Cluster, Owner};

/// Marks a request forwarded by another replica; its value is the cluster's secret.
pub(crate) const REPLICA_HEADER: &str = "x-mcp-hub-replica";

/// How long connecting to the owner may take: past it the owner is taken as gone (404) rather
/// than keeping the client waiting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a request names its session.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SessionIn {
    /// `Mcp-Session-Id` (Streamable HTTP).
    Header,
    /// `?sessionId=` (legacy `POST /messages`).
    Query,
}

/// Marks a request another replica forwarded here (its secret checked): it is served here,
/// never forwarded again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarded;

/// A session just created by a handler, in its response's extensions, for the directory.
#[derive(Debug, Clone)]
pub(crate) struct Created(pub(crate) Arc<str>);

impl Inner {
    /// Decides where a request is served. `Ok(req)`: here (not clustered, forwarded to us, no
    /// session named, the session is ours, or it is gone and the local handler answers 404).
    /// `Err(response)`: answered by the owner, or refused.
    pub(crate) async fn route_in_cluster(
        &self,
        mut req: Request<RequestBody>,
        from: SessionIn,
    ) -> Result<Request<RequestBody>, Response<Body>> {
        let Some(cluster) = self.cluster.get() else {
            return Ok(req);
        };
        // Removed whatever it holds: a client cannot pass its own value on.
        let forwarded = req
            .headers_mut()
            .remove(REPLICA_HEADER)
            .is_some_and(|v| cluster.authentic(v.as_bytes()));
        if forwarded {
            req.extensions_mut().insert(Forwarded);
            return Ok(req);
        }
        let id = match from {
            SessionIn::Header => session_header(req.headers())
                .ok()
                .flatten()
                .map(str::to_owned),
            SessionIn::Query => query_session(&req),
        };
        let Some(id) = id else { return Ok(req) };
        if lock(&self.sessions).contains_key(id.as_str()) {
            return Ok(req);
        }
        match cluster.locate(&id).await {
            Ok(Owner::Gone) => Ok(req),
            Ok(Owner::Replica(addr)) => {
                forward(cluster.as_ref(), &self.pool, &addr, req, &self.shutdown).await
            }
            Err(e) => {
                tracing::warn!(target: "mcp_hub::cluster", "session directory unavailable: {e}");
                Err(body::jsonrpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    -32000,
                    "Service Unavailable: the cluster's session directory cannot be read",
                ))
            }
        }
    }

    /// Records a session a handler just created (its id in the response's [`Created`]) before
    /// the response leaves: other replicas must find it from the client's next request on.
    /// When the directory refuses, the session is closed and the client told to retry.
    pub(crate) async fn claim_created(self: &Arc<Self>, resp: Response<Body>) -> Response<Body> {
        let (Some(cluster), Some(Created(id))) =
            (self.cluster.get(), resp.extensions().get::<Created>())
        else {
            return resp;
        };
        let id = id.clone();
        match cluster.claim(&id).await {
            Ok(()) => resp,
            Err(e) => {
                tracing::warn!(target: "mcp_hub::cluster", "session directory refused a new session: {e}");
                self.close_session(&id);
                body::jsonrpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    -32000,
                    "Service Unavailable: the cluster's session directory cannot be written",
                )
            }
        }
    }

    /// Tells the directory a session ended here (in the background: nobody waits for it).
    pub(crate) fn release_in_cluster(&self, id: &str) {
        // A session can end in a drop outside the runtime (at exit): then nobody can be told,
        // and the entry goes when its owner is found gone.
        if let (Some(cluster), Ok(rt)) = (
            self.cluster.get().cloned(),
            tokio::runtime::Handle::try_current(),
        ) {
            let id = id.to_owned();
            rt.spawn(async move { cluster.release(&id).await });
        }
    }
}

fn query_session(req: &Request<RequestBody>) -> Option<String> {
    req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sessionId" || k == "session_id")
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    })
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Sends `req` to the replica at `addr`, on a kept-alive connection when the pool has one. A
/// replica that cannot be reached gives the request back (`Ok`): it is gone, and the local
/// handler answers 404 so the client re-initializes.
pub(crate) async fn forward(
    cluster: &dyn Cluster,
    pool: &Arc<Pool>,
    addr: &str,
    req: Request<RequestBody>,
    shutdown: &CancellationToken,
) -> Result<Request<RequestBody>, Response<Body>> {
    let Some(mut out) = outgoing(cluster, req) else {
        return Err(body::status(StatusCode::INTERNAL_SERVER_ERROR));
    };
    while let Some(mut sender) = pool.checkout(addr) {
        // Idle in the pool means its last answer ended; the connection may still be settling.
        if !matches!(
            tokio::time::timeout(READY_WAIT, sender.ready()).await,
            Ok(Ok(()))
        ) {
            continue;
        }
        match sender.try_send_request(out).await {
            Ok(resp) => return Err(relay(resp, Some((pool.clone(), addr, sender)), shutdown)),
            // Never written (the owner had closed it): another connection gets it.
            Err(mut e) => match e.take_message() {
                Some(back) => out = back,
                None => return Err(failed(addr, &e.into_error())),
            },
        }
    }
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(target: "mcp_hub::cluster", %addr, "owner unreachable, its session is gone: {e}");
            return Ok(given_back(out));
        }
        Err(_) => {
            tracing::debug!(target: "mcp_hub::cluster", %addr, "owner did not accept in time, its session is gone");
            return Ok(given_back(out));
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(target: "mcp_hub::cluster", %addr, "handshake with owner failed: {e}");
            return Ok(given_back(out));
        }
    };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target: "mcp_hub::cluster", "forwarded connection: {e}");
        }
    });
    match sender.try_send_request(out).await {
        Ok(resp) => Err(relay(resp, Some((pool.clone(), addr, sender)), shutdown)),
        Err(mut e) => match e.take_message() {
            // Closed before a byte of it was written: the owner is going away.
            Some(back) => Ok(given_back(back)),
            None => Err(failed(addr, &e.into_error())),
        },
    }
}

/// How long a pooled connection may take to be ready for the next request.
const READY_WAIT: Duration = Duration::from_millis(50);

/// The request as the owner gets it: the client's own headers but the hop-by-hop ones, and
/// the cluster's secret. Its extensions ride along (a request given back needs them). `None`
/// when the secret cannot be a header value (never: it is checked at startup).
fn outgoing(cluster: &dyn Cluster, req: Request<RequestBody>) -> Option<Request<RequestBody>> {
    let (parts, body) = req.into_parts();
    let mut out = Request::builder().method(parts.method).uri(
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
    );
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            out = out.header(name, value);
        }
    }
    let secret = HeaderValue::from_str(cluster.secret()).ok()?;
    let mut out = out.header(REPLICA_HEADER, secret).body(body).ok()?;
    *out.extensions_mut() = parts.extensions;
    Some(out)
}

/// A request that could not be forwarded, for the local handler: without the secret.
fn given_back(mut req: Request<RequestBody>) -> Request<RequestBody> {
    req.headers_mut().remove(REPLICA_HEADER);
    req
}

/// The owner died with the request in flight: what it did is unknown.
fn failed(addr: &str, e: &hyper::Error) -> Response<Body> {
    tracing::debug!(target: "mcp_hub::cluster", %addr, "forwarded request failed: {e}");
    body::jsonrpc_error(
        StatusCode::BAD_GATEWAY,
        -32000,
        "Bad Gateway: the replica that owns this session failed during the request",
    )
}

/// The owner's answer, streamed back; its connection returns to the pool when it has ended.
fn relay(
    resp: Response<hyper::body::Incoming>,
    slot: Option<(Arc<Pool>, &str, pool::Sender)>,
    shutdown: &CancellationToken,
) -> Response<Body> {
    let (mut parts, incoming) = resp.into_parts();
    let hop: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|n| hop_by_hop(n))
        .cloned()
        .collect();
    for n in hop {
        parts.headers.remove(n);
    }
    let relayed = Relay {
        inner: incoming,
        stop: Box::pin(shutdown.clone().cancelled_owned()),
        slot: slot.map(|(p, a, s)| (p, a.to_owned(), s)),
    };
    Response::from_parts(parts, relayed.boxed_unsync())
}

pin_project_lite::pin_project! {
    /// The owner's answer, relayed: ends (cleanly, as far as the client can tell) when the owner's
    /// connection fails or this hub shuts down, so no relayed stream outlives either.
    struct Relay {
        #[pin]
        inner: hyper::body::Incoming,
        stop: Pin<Box<WaitForCancellationFutureOwned>>,
        // Where the connection goes back once the answer has ended.
        slot: Option<(Arc<Pool>, String, pool::Sender)>,
    }
}

impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if this.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(target: "mcp_hub::cluster", "relayed answer cut: {e}");
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                if let Some((pool, addr, sender)) = this.slot.take() {
                    pool.checkin(&addr, sender);
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
