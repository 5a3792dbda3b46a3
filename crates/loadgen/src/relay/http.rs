//! The Streamable HTTP upstream: one upstream session, initialized at start; each client
//! connection forwards over a kept-alive upstream connection of its own (HTTP/1.1 carries one
//! exchange at a time, and so does a client connection), reading a JSON or SSE answer.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use mcp_hub_protocol::sse::Decoder;

use super::answer_id;
use crate::client::{Session, Streamable, TransportKind, content_type};
use crate::error::LoadgenError;
use crate::http::{Conn, collect, next_chunk};

const MAX_EVENT_BYTES: usize = 16 << 20;

/// The upstream session (opened with the load generator's own client) and the headers every
/// forwarded POST carries.
pub(super) struct HttpUpstream {
    session: Streamable,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpUpstream {
    /// Initializes a session with the server at `url`.
    pub(super) async fn connect(url: &str) -> Result<HttpUpstream, LoadgenError> {
        let session = Session::open(TransportKind::Streamable, &[url.to_owned()])
            .await?
            .into_streamable()
            .ok_or_else(|| LoadgenError::Protocol("not a Streamable HTTP session".into()))?;
        let headers = session.post_headers();
        Ok(HttpUpstream { session, headers })
    }

    /// A new upstream connection (connected on first use).
    pub(super) fn conn(&self) -> Conn {
        self.session.sibling_conn()
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
                self.session.path(),
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
    let sse = content_type(&resp).starts_with("text/event-stream");
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
