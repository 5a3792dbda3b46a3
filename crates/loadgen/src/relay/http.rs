//! The Streamable HTTP upstream: one upstream session, initialized at start; each client
//! connection forwards over a kept-alive upstream connection of its own (HTTP/1.1 carries one
//! exchange at a time, and so does a client connection), reading a JSON or SSE answer.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use mcp_hub_protocol::sse::Decoder;

use super::answer_id;
use crate::error::LoadgenError;
use crate::http::{Conn, Target, collect, next_chunk, parse_url};

const SESSION: HeaderName = HeaderName::from_static("mcp-session-id");
const VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const MAX_EVENT_BYTES: usize = 16 << 20;

pub(super) struct HttpUpstream {
    target: Arc<Target>,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpUpstream {
    /// Initializes a session with the server at `url`.
    pub(super) async fn connect(url: &str) -> Result<HttpUpstream, LoadgenError> {
        let (target, path) = parse_url(url).await?;
        let mut up = HttpUpstream {
            target,
            path,
            headers: vec![
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (
                    header::ACCEPT,
                    HeaderValue::from_static("application/json, text/event-stream"),
                ),
            ],
        };
        let mut conn = up.conn();
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"relay-floor","version":"0"}}}"#;
        let resp = conn
            .send(
                Method::POST,
                &up.path,
                &up.headers,
                Bytes::from_static(init),
            )
            .await?;
        let session = resp.headers().get(SESSION).cloned();
        let answer = read_answer(resp, 0).await?;
        let version = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["result"]["protocolVersion"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                LoadgenError::Protocol("upstream initialize: no protocolVersion".into())
            })?;
        if let Some(s) = session {
            up.headers.push((SESSION, s));
        }
        up.headers.push((
            VERSION,
            HeaderValue::from_str(&version).map_err(|e| LoadgenError::Protocol(e.to_string()))?,
        ));
        let done = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let resp = conn
            .send(
                Method::POST,
                &up.path,
                &up.headers,
                Bytes::from_static(done),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(LoadgenError::Http(format!(
                "upstream notifications/initialized: {}",
                resp.status()
            )));
        }
        let _ = collect(resp.into_body()).await;
        Ok(up)
    }

    /// A new upstream connection (connected on first use).
    pub(super) fn conn(&self) -> Conn {
        Conn::new(self.target.clone())
    }

    /// POSTs `request` (with the relay's id `ours`) and returns the answer's JSON text.
    pub(super) async fn exchange(
        &self,
        conn: &mut Conn,
        request: Vec<u8>,
        ours: u64,
    ) -> Option<Vec<u8>> {
        let resp = conn
            .send(
                Method::POST,
                &self.path,
                &self.headers,
                Bytes::from(request),
            )
            .await
            .ok()?;
        read_answer(resp, ours).await.ok()
    }
}

/// The answer to request `id` in a response: its JSON body, or the SSE event that carries it.
async fn read_answer(
    resp: http::Response<hyper::body::Incoming>,
    id: u64,
) -> Result<Vec<u8>, LoadgenError> {
    if resp.status() != StatusCode::OK {
        return Err(LoadgenError::Http(format!("upstream: {}", resp.status())));
    }
    let sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let mut body = resp.into_body();
    if !sse {
        return Ok(collect(body).await?.to_vec());
    }
    let mut dec = Decoder::new(MAX_EVENT_BYTES);
    while let Some(chunk) = next_chunk(&mut body).await? {
        for ev in dec
            .feed(&chunk)
            .map_err(|e| LoadgenError::Protocol(e.to_string()))?
        {
            if answer_id(ev.data.as_bytes()) == Some(id) {
                return Ok(ev.data.into_bytes());
            }
        }
    }
    Err(LoadgenError::Protocol(
        "upstream: the stream ended without the answer".into(),
    ))
}
