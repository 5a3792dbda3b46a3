//! Minimal MCP clients that behave like real ones on the wire: `initialize`, the session header
//! and protocol-version header, `notifications/initialized`, then requests. Three transports:
//! Streamable HTTP (POST /mcp, answers as JSON or SSE), legacy HTTP+SSE (GET stream with an
//! `endpoint` event, POST /messages, answers on the stream, correlated by id) and stdio.

mod legacy;
mod stdio;
mod streamable;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, header};
use hyper::body::Incoming;
use mcp_hub_protocol::{
    LATEST_PROTOCOL_VERSION, MODERN_PROTOCOL_VERSION, Message, RawValue, Request, RequestId,
};
use serde::Deserialize;

use crate::error::LoadgenError;
pub(crate) use legacy::Legacy;
pub(crate) use stdio::StdioSession;
pub(crate) use streamable::Streamable;

/// Largest SSE event accepted (a `tools/list` of 5,000 tools is well under this).
const MAX_EVENT_BYTES: usize = 64 << 20;
/// How long opening a session may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How the client reaches the server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum TransportKind {
    /// Streamable HTTP (MCP 2025-03-26 and later).
    Streamable,
    /// HTTP+SSE (MCP 2024-11-05; the Node hub's `/mcp`).
    Legacy,
    /// Newline-delimited JSON-RPC on a child process's stdin/stdout.
    Stdio,
    /// Streamable HTTP at the stateless 2026-07-28 revision: no `initialize`, no session;
    /// every request carries `_meta` and the `Mcp-Method`/`Mcp-Name` headers.
    Stateless,
}

/// A response and the moment it was decoded (before any trailing bytes were drained).
#[derive(Debug)]
pub(crate) struct Reply {
    pub msg: Message,
    pub at: Instant,
}

/// One open MCP session.
#[derive(Debug)]
pub(crate) enum Session {
    Streamable(Streamable),
    Legacy(Legacy),
    Stdio(Box<StdioSession>),
}

impl Session {
    /// Connects and runs the initialization handshake. `target` is the URL for HTTP
    /// transports and the command line for stdio.
    pub(crate) async fn open(
        kind: TransportKind,
        target: &[String],
    ) -> Result<Session, LoadgenError> {
        let fut = async {
            let mut s = match kind {
                TransportKind::Streamable => {
                    Session::Streamable(Streamable::new(url_of(target)?).await?)
                }
                TransportKind::Legacy => Session::Legacy(Legacy::connect(url_of(target)?).await?),
                TransportKind::Stdio => Session::Stdio(Box::new(StdioSession::spawn(target)?)),
                TransportKind::Stateless => {
                    let mut s = Streamable::new(url_of(target)?).await?;
                    s.stateless = true;
                    s.version = Some(HeaderValue::from_static(MODERN_PROTOCOL_VERSION));
                    return Ok(Session::Streamable(s));
                }
            };
            s.initialize().await?;
            Ok(s)
        };
        tokio::time::timeout(OPEN_TIMEOUT, fut)
            .await
            .map_err(|_| LoadgenError::Timeout("opening an MCP session".into()))?
    }

    async fn initialize(&mut self) -> Result<(), LoadgenError> {
        let params = mcp_hub_protocol::to_raw(&serde_json::json!({
            "protocolVersion": LATEST_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-hub-loadgen", "version": env!("CARGO_PKG_VERSION")},
        }))
        .map_err(|e| LoadgenError::Protocol(e.to_string()))?;
        let reply = self.request("initialize", Some(params)).await?;
        let Message::Response(r) = reply.msg else {
            return Err(LoadgenError::Protocol(format!(
                "initialize failed: {}",
                reply.msg
            )));
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InitResult {
            protocol_version: String,
        }
        let init: InitResult = serde_json::from_str(r.result.get())
            .map_err(|e| LoadgenError::Protocol(format!("initialize result: {e}")))?;
        if let Session::Streamable(s) = self {
            s.version = HeaderValue::from_str(&init.protocol_version).ok();
        }
        self.notify("notifications/initialized").await
    }

    /// Sends a request and waits for its response.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Reply, LoadgenError> {
        match self {
            Session::Streamable(s) => s.request(method, params).await,
            Session::Legacy(s) => s.request(method, params).await,
            Session::Stdio(s) => s.request(method, params).await,
        }
    }

    async fn notify(&mut self, method: &str) -> Result<(), LoadgenError> {
        let body = Message::notification(method, None).to_vec();
        match self {
            Session::Streamable(s) => s.post(body).await.map(drop),
            Session::Legacy(s) => s.post(body).await,
            Session::Stdio(s) => s.write(body).await,
        }
    }

    /// Ends the session politely (DELETE for Streamable HTTP, stdin EOF for stdio).
    pub(crate) async fn close(self) {
        match self {
            Session::Streamable(mut s) => {
                if let Some(h) = s.session_headers().first().cloned() {
                    let path = s.path.clone();
                    let _ = s.conn.send(Method::DELETE, &path, &[h], Bytes::new()).await;
                }
            }
            Session::Legacy(s) => s.reader.abort(),
            Session::Stdio(s) => s.shutdown().await,
        }
    }
}

fn url_of(target: &[String]) -> Result<&str, LoadgenError> {
    match target {
        [url] => Ok(url),
        _ => Err(LoadgenError::Usage(
            "an HTTP transport takes exactly one URL".into(),
        )),
    }
}

fn request_bytes(id: i64, method: &str, params: Option<Box<RawValue>>) -> Vec<u8> {
    Message::Request(Request {
        id: RequestId::from(id),
        method: method.to_owned(),
        params,
    })
    .to_vec()
}

fn is_reply_to(msg: &Message, id: i64) -> bool {
    matches!(msg, Message::Response(_) | Message::Error(_))
        && msg.id() == Some(&RequestId::from(id))
}

pub(crate) fn content_type(resp: &http::Response<Incoming>) -> &str {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl Session {
    /// The Streamable HTTP session inside, if it is one.
    pub(crate) fn into_streamable(self) -> Option<Streamable> {
        match self {
            Session::Streamable(s) => Some(s),
            _ => None,
        }
    }

    /// The stdio session inside, if it is one.
    pub(crate) fn into_stdio(self) -> Option<Box<StdioSession>> {
        match self {
            Session::Stdio(s) => Some(s),
            _ => None,
        }
    }

    /// The Streamable HTTP session inside, if it is one.
    pub(crate) fn as_streamable(&self) -> Option<&Streamable> {
        match self {
            Session::Streamable(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_matched_by_id_and_kind() {
        let r = Message::from_str(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#).unwrap();
        assert!(is_reply_to(&r, 3));
        assert!(!is_reply_to(&r, 4));
        let q = Message::from_str(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).unwrap();
        assert!(
            !is_reply_to(&q, 3),
            "a server request with the same id is not a reply"
        );
        let s = Message::from_str(r#"{"jsonrpc":"2.0","id":"3","result":{}}"#).unwrap();
        assert!(!is_reply_to(&s, 3), "ids keep their type");
    }
}
