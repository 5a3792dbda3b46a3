//! Streamable HTTP sessions: POST /mcp with the session and protocol-version headers, answers
//! as JSON or as an SSE stream; and the stateless 2026-07-28 form (`_meta` and routing headers on
//! every request, no session).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use mcp_hub_protocol::sse::Decoder;
use mcp_hub_protocol::{MODERN_PROTOCOL_VERSION, Message, RawValue};
use std::time::Instant;

use super::{MAX_EVENT_BYTES, Reply, content_type, is_reply_to, request_bytes};
use crate::error::LoadgenError;
use crate::http::{Conn, collect, next_chunk, parse_url};

/// A Streamable HTTP session on one keep-alive connection.
#[derive(Debug)]
pub(crate) struct Streamable {
    pub(super) conn: Conn,
    pub(super) path: String,
    pub(super) session: Option<HeaderValue>,
    pub(super) version: Option<HeaderValue>,
    pub(super) next_id: i64,
    /// 2026-07-28: `_meta` and routing headers on every request, no session.
    pub(super) stateless: bool,
}

const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");

impl Streamable {
    pub(super) async fn new(url: &str) -> Result<Streamable, LoadgenError> {
        let (target, path) = parse_url(url).await?;
        Ok(Streamable {
            conn: Conn::new(target),
            path,
            session: None,
            version: None,
            next_id: 1,
            stateless: false,
        })
    }

    /// Opens the session's standalone `GET` stream on its own keep-alive connection (which then
    /// carries nothing else); the returned `Conn` must live as long as the stream is read.
    pub(crate) async fn open_get_stream(&self) -> Result<(Incoming, Conn), LoadgenError> {
        get_stream(self.sibling_conn(), &self.path, self.session_headers()).await
    }

    /// Turns the session into its `GET` stream, on the connection that carried the handshake:
    /// one socket per session, as an idle client holds.
    pub(crate) async fn into_get_stream(self) -> Result<(Incoming, Conn), LoadgenError> {
        let headers = self.session_headers();
        get_stream(self.conn, &self.path, headers).await
    }

    pub(super) fn session_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut h = Vec::with_capacity(2);
        if let Some(s) = &self.session {
            h.push((SESSION_HEADER, s.clone()));
        }
        if let Some(v) = &self.version {
            h.push((VERSION_HEADER, v.clone()));
        }
        h
    }

    /// What every POST of this session carries: its content type, the answers it accepts, and
    /// the session's own headers.
    pub(crate) fn post_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            ),
        ];
        headers.extend(self.session_headers());
        headers
    }

    /// The endpoint's path (with its query).
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// A new keep-alive connection to the same endpoint, not yet connected.
    pub(crate) fn sibling_conn(&self) -> Conn {
        self.conn.sibling()
    }

    pub(super) async fn post(
        &mut self,
        body: Vec<u8>,
    ) -> Result<http::Response<Incoming>, LoadgenError> {
        self.post_with(body, Vec::new()).await
    }

    pub(super) async fn post_with(
        &mut self,
        body: Vec<u8>,
        extra: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<http::Response<Incoming>, LoadgenError> {
        let mut headers = self.post_headers();
        headers.extend(extra);
        let path = self.path.clone();
        let resp = self
            .conn
            .send(Method::POST, &path, &headers, Bytes::from(body))
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = collect(resp.into_body()).await.unwrap_or_default();
            return Err(LoadgenError::Http(format!(
                "POST {path}: {status}: {}",
                String::from_utf8_lossy(&text)
            )));
        }
        if self.session.is_none()
            && let Some(s) = resp.headers().get(SESSION_HEADER)
        {
            self.session = Some(s.clone());
        }
        Ok(resp)
    }

    pub(super) async fn request(
        &mut self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Reply, LoadgenError> {
        let id = self.next_id;
        self.next_id += 1;
        let resp = if self.stateless {
            let (params, headers) = stateless_request(method, params)?;
            self.post_with(request_bytes(id, method, Some(params)), headers)
                .await?
        } else {
            self.post(request_bytes(id, method, params)).await?
        };
        if resp.status() == StatusCode::ACCEPTED {
            return Err(LoadgenError::Protocol(format!(
                "{method}: 202 without a response"
            )));
        }
        if content_type(&resp).starts_with("text/event-stream") {
            let mut body = resp.into_body();
            let mut dec = Decoder::new(MAX_EVENT_BYTES);
            let mut found = None;
            while let Some(chunk) = next_chunk(&mut body).await? {
                let events = dec
                    .feed(&chunk)
                    .map_err(|e| LoadgenError::Protocol(e.to_string()))?;
                for ev in events {
                    if found.is_some() || ev.data.is_empty() || ev.event_type() != "message" {
                        continue;
                    }
                    let msg = Message::from_str(&ev.data)
                        .map_err(|e| LoadgenError::Protocol(format!("SSE message: {e}")))?;
                    if is_reply_to(&msg, id) {
                        found = Some(Reply {
                            msg,
                            at: Instant::now(),
                        });
                    }
                }
                // The server ends the stream once it has sent every response it owes; reading to
                // the end keeps the connection reusable.
            }
            found.ok_or_else(|| {
                LoadgenError::Protocol(format!("{method}: SSE stream ended without a response"))
            })
        } else {
            let bytes = collect(resp.into_body()).await?;
            let at = Instant::now();
            let msg = Message::from_slice(&bytes)
                .map_err(|e| LoadgenError::Protocol(format!("{method}: {e}")))?;
            if !is_reply_to(&msg, id) {
                return Err(LoadgenError::Protocol(format!(
                    "{method}: reply to another id"
                )));
            }
            Ok(Reply { msg, at })
        }
    }
}

pub(super) async fn get_stream(
    mut conn: Conn,
    path: &str,
    mut headers: Vec<(HeaderName, HeaderValue)>,
) -> Result<(Incoming, Conn), LoadgenError> {
    headers.push((
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    ));
    let resp = conn.send(Method::GET, path, &headers, Bytes::new()).await?;
    if resp.status() != StatusCode::OK || !content_type(&resp).starts_with("text/event-stream") {
        return Err(LoadgenError::Http(format!(
            "GET {path}: {} ({})",
            resp.status(),
            content_type(&resp)
        )));
    }
    Ok((resp.into_body(), conn))
}

type Headers = Vec<(HeaderName, HeaderValue)>;

/// A 2026-07-28 request's params (with `_meta`) and routing headers.
pub(super) fn stateless_request(
    method: &str,
    params: Option<Box<RawValue>>,
) -> Result<(Box<RawValue>, Headers), LoadgenError> {
    let mut p: serde_json::Map<String, serde_json::Value> = match params {
        Some(p) => {
            serde_json::from_str(p.get()).map_err(|e| LoadgenError::Protocol(e.to_string()))?
        }
        None => serde_json::Map::new(),
    };
    p.insert(
        "_meta".into(),
        serde_json::json!({
            "io.modelcontextprotocol/protocolVersion": MODERN_PROTOCOL_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "mcp-hub-loadgen", "version": env!("CARGO_PKG_VERSION")},
        }),
    );
    let mut headers = vec![(
        HeaderName::from_static("mcp-method"),
        HeaderValue::from_str(method).map_err(|e| LoadgenError::Protocol(e.to_string()))?,
    )];
    let name = p
        .get("name")
        .or_else(|| p.get("uri"))
        .and_then(serde_json::Value::as_str);
    if let Some(n) = name.and_then(|n| HeaderValue::from_str(n).ok()) {
        headers.push((HeaderName::from_static("mcp-name"), n));
    }
    let raw = mcp_hub_protocol::to_raw(&p).map_err(|e| LoadgenError::Protocol(e.to_string()))?;
    Ok((raw, headers))
}
