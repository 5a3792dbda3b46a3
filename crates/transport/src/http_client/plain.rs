//! Kept-alive HTTP/1.1 connections to `http://` upstreams, pooled by authority, each driven by
//! the task that uses it.
//!
//! hyper's connections are normally driven by a task of their own: a request is handed to that
//! task, which writes it, reads the answer and hands the head and then each piece of the body
//! back, a wake-up of another task (often on another thread) at every step. For an upstream on
//! loopback or in the same cluster those wake-ups are most of what a call costs the hub
//! (docs/BENCHMARKS-HISTORY.md). Here an HTTP/1.1 connection, which carries one exchange at a
//! time anyway, belongs to the exchange that uses it: the sender drives it until the response
//! head is in, and the body ([`DrivenBody`]) drives it while it is read. A body read to its end
//! puts the connection back in the pool; one dropped earlier closes it. hyper-util's pooled
//! client (which also spawns a task per request to hand connections back) is left to
//! `https://`, where TLS and the network cost far more than the bookkeeping.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{CONNECT_TIMEOUT, describe, display_uri};
use crate::TransportError;

/// How long a ready connection is kept unused (hyper-util's default, which this replaces).
const IDLE: Duration = Duration::from_secs(90);
/// Idle connections kept per authority; more are closed as their exchanges end.
const MAX_KEPT: usize = 256;
/// Sends of one request on connections that turned out to be closed before it was written
/// (the server closed an idle connection as we took it); the last try is a fresh connection.
const MAX_TRIES: usize = 3;

/// How much of an unread body's rest is skipped, when it has arrived, to keep its connection.
const DRAIN_ON_DROP: usize = 64 * 1024;

type Sender = SendRequest<Full<Bytes>>;
type Driver = Connection<TokioIo<TcpStream>, Full<Bytes>>;

struct Conn {
    sender: Sender,
    /// What reads and writes the socket: polled only by the exchange that holds the connection.
    driver: Pin<Box<Driver>>,
    /// The driver has finished: the connection is closed.
    ended: bool,
    used: Instant,
}

impl Conn {
    /// Lets the connection read and write what it can. False once it is closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.ended
            && let Poll::Ready(r) = self.driver.as_mut().poll(cx)
        {
            self.ended = true;
            if let Err(e) = r {
                tracing::debug!("upstream connection ended: {}", describe(&e));
            }
        }
        !self.ended
    }
}

/// The idle connections, by `host:port`.
#[derive(Default)]
pub(super) struct PlainPool {
    conns: Mutex<HashMap<Authority, Vec<Conn>>>,
}

impl PlainPool {
    /// Sends `req` (an absolute `http://` URI) and returns once the response head is in. The
    /// body holds the connection until it is read to its end.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<DrivenBody>, TransportError> {
        let uri = req.uri().clone();
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| TransportError::Http(format!("{}: no host", display_uri(&uri))))?;
        to_origin_form(&mut req, &authority);
        for attempt in 1..=MAX_TRIES {
            let pooled = if attempt < MAX_TRIES {
                self.checkout(&authority)
            } else {
                None
            };
            let mut conn = match pooled {
                Some(conn) => conn,
                None => connect(&authority, &uri).await?,
            };
            let mut answer = std::pin::pin!(conn.sender.try_send_request(req));
            let answer = std::future::poll_fn(|cx| {
                conn.drive(cx);
                answer.as_mut().poll(cx)
            })
            .await;
            match answer {
                Ok(resp) => {
                    let home = Some((self.clone(), authority));
                    return Ok(resp.map(|body| DrivenBody {
                        body,
                        conn: Some(conn),
                        home,
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the connection was closing. Another one gets it.
                    Some(back) => req = back,
                    None => {
                        return Err(TransportError::Http(format!(
                            "{}: {}",
                            display_uri(&uri),
                            describe(&e.into_error())
                        )));
                    }
                },
            }
        }
        Err(TransportError::Http(format!(
            "{}: the connection closed before the request was sent",
            display_uri(&uri)
        )))
    }

    /// Takes the most recently used idle connection, dropping long-idle ones.
    fn checkout(&self, authority: &Authority) -> Option<Conn> {
        let mut conns = lock(&self.conns);
        let list = conns.get_mut(authority)?;
        list.retain(|c| c.used.elapsed() <= IDLE);
        list.pop()
    }

    /// Takes back a connection whose exchange has ended, if it can carry another one.
    fn keep(&self, authority: Authority, mut conn: Conn, cx: &mut Context<'_>) {
        // The driver notices the end of the exchange and asks for the next request.
        if !conn.drive(cx) || !conn.sender.is_ready() {
            return;
        }
        conn.used = Instant::now();
        let mut conns = lock(&self.conns);
        let list = conns.entry(authority).or_default();
        if list.len() < MAX_KEPT {
            list.push(conn);
        }
    }
}

/// A response body that drives its own connection while it is read, and gives the connection
/// back to the pool once it has been read to its end.
pub(crate) struct DrivenBody {
    body: Incoming,
    conn: Option<Conn>,
    home: Option<(Arc<PlainPool>, Authority)>,
}

impl std::fmt::Debug for DrivenBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrivenBody")
            .field("holds_connection", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl DrivenBody {
    fn release(&mut self, cx: &mut Context<'_>) {
        if let (Some(conn), Some((pool, authority))) = (self.conn.take(), self.home.take()) {
            pool.keep(authority, conn, cx);
        }
    }
}

impl Body for DrivenBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(conn) = &mut this.conn {
            conn.drive(cx);
        }
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.is_none() {
            this.release(cx);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for DrivenBody {
    fn drop(&mut self) {
        if self.conn.is_none() {
            return;
        }
        // A reader that stops at the message it wanted (an SSE stream ends just after the
        // answer) leaves the end of the body unread, usually already in the buffer; an empty
        // body (`202 Accepted`) is never read at all. What has arrived is read here without
        // waiting, within a bound: a body that has ended gives its connection back, anything
        // else leaves the connection mid-answer, so it closes with the body.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut left = DRAIN_ON_DROP;
        loop {
            if let Some(conn) = &mut self.conn {
                conn.drive(&mut cx);
            }
            match Pin::new(&mut self.body).poll_frame(&mut cx) {
                Poll::Ready(None) => return self.release(&mut cx),
                Poll::Ready(Some(Ok(frame))) => {
                    let len = frame.data_ref().map_or(0, Bytes::len);
                    match left.checked_sub(len) {
                        Some(l) => left = l,
                        None => return,
                    }
                }
                Poll::Ready(Some(Err(_))) | Poll::Pending => return,
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// HTTP/1.1 to an origin server: the path in the request line, the authority in `Host`.
fn to_origin_form(req: &mut Request<Full<Bytes>>, authority: &Authority) {
    if !req.headers().contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        req.headers_mut().insert(header::HOST, host);
    }
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(path);
}

async fn connect(authority: &Authority, uri: &Uri) -> Result<Conn, TransportError> {
    let failed = |what: String| TransportError::Http(format!("{}: {what}", display_uri(uri)));
    // `[::1]` in a URL is `::1` to the resolver.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| failed(format!("no connection within {CONNECT_TIMEOUT:?}")))?
    .map_err(|e| failed(format!("connect: {e}")))?;
    // Small requests and answers go out as they are written, not after the peer's delayed ACK.
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(describe(&e)))?;
    // The URL as messages show it: no userinfo, no query (where keys tend to live).
    tracing::trace!(upstream = %display_uri(uri), "opened an HTTP/1.1 connection");
    Ok(Conn {
        sender,
        driver: Box::pin(conn),
        ended: false,
        used: Instant::now(),
    })
}

#[cfg(test)]
mod tests;
