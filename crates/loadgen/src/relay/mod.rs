//! The floor a relay sits on: a bare relay with nothing but what any relay shared by many
//! clients must do, so the benchmark can tell the hub's own cost from the machine's. It serves
//! Streamable HTTP, answers `initialize` itself, takes notifications with `202`, and forwards
//! every other request to one upstream with its id swapped for one of its own (two clients may
//! both send id 1), answering the POST as `application/json` with the client's id put back. The
//! upstream is a stdio child (`stdio`: answers matched back by id) or a Streamable HTTP server
//! (`http`: one upstream session, a kept-alive upstream connection per client connection).
//!
//! What it leaves out, and the hub pays for: sessions and their streams, routing a call by its
//! tool name and renaming it, the catalogue, progress and server→client requests, cancellation,
//! timeouts, metrics, auth, restarts. Its figures are a bound under any hub, not a competitor.

mod http;
mod stdio;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcp_hub_protocol::RawValue;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::error::LoadgenError;

/// Where the relay forwards to.
#[derive(Debug)]
pub(crate) enum UpstreamSpec {
    /// A stdio server's command line.
    Command(Vec<String>),
    /// A Streamable HTTP server's endpoint URL.
    Url(String),
}

/// Starts the upstream, listens on 127.0.0.1:`port` (0: any) and prints
/// `listening on 127.0.0.1:PORT`; serves until killed or until the upstream ends.
pub(crate) async fn serve(port: u16, upstream: UpstreamSpec) -> Result<(), LoadgenError> {
    let upstream = Upstream::start(upstream).await?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    upstream.run(listener).await
}

/// The two members a relay reads of every message; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a str>,
}

enum Upstream {
    Stdio(stdio::StdioUpstream),
    Http(Arc<http::HttpUpstream>),
}

/// How one client connection reaches the upstream.
#[derive(Clone)]
enum Route {
    Stdio(Arc<stdio::Shared>),
    Http(
        Arc<http::HttpUpstream>,
        Arc<tokio::sync::Mutex<crate::http::Conn>>,
    ),
}

impl Upstream {
    async fn start(spec: UpstreamSpec) -> Result<Upstream, LoadgenError> {
        Ok(match spec {
            UpstreamSpec::Command(c) => Upstream::Stdio(stdio::StdioUpstream::spawn(&c).await?),
            UpstreamSpec::Url(u) => {
                Upstream::Http(Arc::new(http::HttpUpstream::connect(&u).await?))
            }
        })
    }

    /// Serves HTTP on `listener` until the upstream ends (a stdio child exits).
    async fn run(self, listener: TcpListener) -> Result<(), LoadgenError> {
        type Ended = std::pin::Pin<Box<dyn std::future::Future<Output = LoadgenError> + Send>>;
        let (route, ended): (Box<dyn Fn() -> Route + Send + Sync>, Ended) = match self {
            Upstream::Stdio(s) => {
                let shared = s.shared.clone();
                (
                    Box::new(move || Route::Stdio(shared.clone())),
                    Box::pin(s.ended()),
                )
            }
            // An HTTP upstream has no process to watch: it never ends the relay.
            Upstream::Http(h) => (
                Box::new(move || {
                    Route::Http(h.clone(), Arc::new(tokio::sync::Mutex::new(h.conn())))
                }),
                Box::pin(std::future::pending()),
            ),
        };
        let accept = async {
            loop {
                let (sock, _) = listener.accept().await?;
                let _ = sock.set_nodelay(true);
                let route = route();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(route.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        };
        tokio::select! {
            r = accept => r,
            e = ended => Err(e),
        }
    }
}

/// Ids of requests the relay sends upstream: its own, so clients' ids never collide there.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

async fn handle(route: Route, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        return Ok(status(StatusCode::METHOD_NOT_ALLOWED));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let Ok(head) = serde_json::from_slice::<Head<'_>>(&body) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let (Some(id), Some(method)) = (head.id, head.method) else {
        return Ok(status(StatusCode::ACCEPTED));
    };
    if method == "initialize" {
        let answer = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{{"protocolVersion":"2025-11-25","capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"relay-floor","version":"0"}}}}}}"#,
            id.get()
        );
        let mut resp = json(answer.into_bytes());
        resp.headers_mut()
            .insert("mcp-session-id", HeaderValue::from_static("floor"));
        return Ok(resp);
    }
    let ours = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let request = swap_id(&body, id, ours.to_string().as_bytes());
    let answer = match &route {
        Route::Stdio(s) => s.exchange(request, ours).await,
        Route::Http(h, conn) => h.exchange(&mut *conn.lock().await, request, ours).await,
    };
    let Some(answer) = answer else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    let Ok(Head {
        id: Some(theirs), ..
    }) = serde_json::from_slice::<Head<'_>>(&answer)
    else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    let mut out = swap_id(&answer, theirs, id.get().as_bytes());
    while out.last().is_some_and(u8::is_ascii_whitespace) {
        out.pop();
    }
    Ok(json(out))
}

/// `text` with the bytes of `id` (a value borrowed from it) replaced by `with`.
fn swap_id(text: &[u8], id: &RawValue, with: &[u8]) -> Vec<u8> {
    let start = id.get().as_ptr() as usize - text.as_ptr() as usize;
    let end = start + id.get().len();
    let mut out = Vec::with_capacity(text.len() + with.len() + 1);
    out.extend_from_slice(&text[..start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&text[end..]);
    out
}

/// The answer `id` is waiting for, as a number (the relay's own ids are).
fn answer_id(text: &[u8]) -> Option<u64> {
    let head = serde_json::from_slice::<Head<'_>>(text).ok()?;
    if head.method.is_some() {
        return None;
    }
    head.id?.get().parse().ok()
}

fn json(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = code;
    resp
}

#[cfg(test)]
mod tests;
