//! Kept-alive HTTP/1.1 connections to `http://` upstreams, pooled by authority.
//!
//! hyper-util's pooled client spawns a task per HTTP/1 request (to put the connection back once
//! it is ready again) and keys, locks and wraps every checkout; for an upstream on loopback or
//! in the same cluster that is a measurable share of what the hub spends per call
//! (docs/BENCHMARKS-HISTORY.md). Here a connection never leaves the pool's list while it is
//! open: a request takes one whose previous exchange has ended (hyper's `is_ready`: its
//! response body was read to the end), puts it back as soon as the response head is in, and
//! the connection's own task marks it ready again when the body is done. No task per request,
//! no hand-back. `https://` keeps hyper-util's client (TLS and HTTP/2 by ALPN), where the
//! network costs far more than the bookkeeping.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use super::{CONNECT_TIMEOUT, describe, display_uri};
use crate::TransportError;
use crate::ids::IdHasher;

/// How long a ready connection is kept unused (hyper-util's default, which this replaces).
const IDLE: Duration = Duration::from_secs(90);
/// Connections kept per authority. Beyond this, a connection serves its one exchange and closes.
const MAX_KEPT: usize = 256;
/// Sends of one request on connections that turned out to be closed before it was written
/// (the server closed an idle connection as we took it); the last try is a fresh connection.
const MAX_TRIES: usize = 3;

type Sender = SendRequest<Full<Bytes>>;

struct Conn {
    sender: Sender,
    used: Instant,
}

/// The open connections, by `host:port`. `Authority` hashes itself a byte at a time
/// (lowercased), which cost SipHash ~1,000 instructions per lookup, twice per call; the keys are
/// the configured upstreams' authorities, never chosen by a client, so the hub's own hasher for
/// such keys (FNV-1a over bytes) does.
#[derive(Default)]
pub(super) struct PlainPool {
    conns: Mutex<HashMap<Authority, Vec<Conn>, BuildHasherDefault<IdHasher>>>,
}

impl PlainPool {
    /// Sends `req` (an absolute `http://` URI) and returns once the response head is in.
    pub(super) async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, TransportError> {
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
            match conn.sender.try_send_request(req).await {
                Ok(resp) => {
                    self.keep(authority, conn);
                    return Ok(resp);
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

    /// Takes the most recently used ready connection, dropping closed and long-idle ones.
    fn checkout(&self, authority: &Authority) -> Option<Conn> {
        let mut conns = lock(&self.conns);
        let list = conns.get_mut(authority)?;
        let stale = |c: &Conn| c.sender.is_ready() && c.used.elapsed() > IDLE;
        list.retain(|c| !(c.sender.is_closed() || stale(c)));
        let i = list.iter().rposition(|c| c.sender.is_ready())?;
        Some(list.swap_remove(i))
    }

    /// Puts a connection back as soon as its response head is in: it is busy until the caller
    /// has read the body, and ready again after that.
    fn keep(&self, authority: Authority, mut conn: Conn) {
        if conn.sender.is_closed() {
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
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream connection ended: {}", describe(&e));
        }
    });
    Ok(Conn {
        sender,
        used: Instant::now(),
    })
}

#[cfg(test)]
mod tests;
