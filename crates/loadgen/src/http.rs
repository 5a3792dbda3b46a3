//! One HTTP/1.1 keep-alive connection per client session, over hyper's connection-level API, so
//! that N sessions are exactly N sockets and no pool decides otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::LoadgenError;

/// Where requests go: a resolved address plus the `Host` header value.
#[derive(Debug)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    pub authority: String,
}

/// Splits `http://host:port/path?query` into a resolved target and the path (with query).
pub(crate) async fn parse_url(url: &str) -> Result<(Arc<Target>, String), LoadgenError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| LoadgenError::Usage(format!("only http:// URLs are supported: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(LoadgenError::Usage(format!("no host in {url}")));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = tokio::net::lookup_host(&with_port)
        .await?
        .next()
        .ok_or_else(|| LoadgenError::Usage(format!("{authority} does not resolve")))?;
    Ok((
        Arc::new(Target {
            addr,
            authority: authority.to_owned(),
        }),
        path.to_owned(),
    ))
}

/// A keep-alive connection that reconnects when the server closed it between requests.
#[derive(Debug)]
pub(crate) struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub(crate) fn new(target: Arc<Target>) -> Conn {
        Conn {
            target,
            sender: None,
        }
    }

    /// A new, not yet connected, connection to the same target.
    pub(crate) fn sibling(&self) -> Conn {
        Conn::new(self.target.clone())
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, LoadgenError> {
        let tcp = TcpStream::connect(self.target.addr).await?;
        // Requests are small and latency is what is measured: no Nagle delay.
        tcp.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            // The connection ends when the server closes it or the sender is dropped; either way
            // the next request notices and reconnects.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request. A request on a reused connection that the server had already closed
    /// is retried once on a fresh one (nothing was processed: hyper reports it as canceled).
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Response<Incoming>, LoadgenError> {
        let mut reused = true;
        loop {
            let mut sender = match self.sender.take() {
                Some(s) if !s.is_closed() => s,
                _ => {
                    reused = false;
                    self.connect().await?
                }
            };
            if sender.ready().await.is_err() {
                if reused {
                    reused = false;
                    continue;
                }
                return Err(LoadgenError::Http(
                    "connection closed before the request".into(),
                ));
            }
            let mut req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(http::header::HOST, &self.target.authority);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let req = req.body(Full::new(body.clone()))?;
            match sender.send_request(req).await {
                Ok(resp) => {
                    self.sender = Some(sender);
                    return Ok(resp);
                }
                Err(e) if reused && e.is_canceled() => {
                    reused = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Reads a whole (small) response body.
pub(crate) async fn collect(body: Incoming) -> Result<Bytes, LoadgenError> {
    Ok(body.collect().await?.to_bytes())
}

/// The next data chunk of a streaming body; `None` at its end.
pub(crate) async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, LoadgenError> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls() {
        let (t, p) = parse_url("http://127.0.0.1:3000/mcp").await.unwrap();
        assert_eq!(t.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(t.authority, "127.0.0.1:3000");
        assert_eq!(p, "/mcp");
        let (t, p) = parse_url("http://127.0.0.1:9").await.unwrap();
        assert_eq!((t.addr.port(), p.as_str()), (9, "/"));
        let (_, p) = parse_url("http://127.0.0.1:9/messages?sessionId=a")
            .await
            .unwrap();
        assert_eq!(p, "/messages?sessionId=a");
        assert!(parse_url("https://127.0.0.1/").await.is_err());
        assert!(parse_url("http:///x").await.is_err());
    }
}
