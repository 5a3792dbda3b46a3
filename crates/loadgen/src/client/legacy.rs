//! HTTP+SSE sessions (MCP 2024-11-05, the Node hub's `/mcp`): a GET stream whose `endpoint`
//! event names where to POST, answers on the stream, matched to their requests by id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use mcp_hub_protocol::sse::Decoder;
use mcp_hub_protocol::{Message, RawValue, RequestId};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{MAX_EVENT_BYTES, Reply, content_type, request_bytes};
use crate::error::LoadgenError;
use crate::http::{Conn, Target, collect, next_chunk, parse_url};

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Reply>>>>;

pub(super) fn lock(p: &Pending) -> MutexGuard<'_, HashMap<i64, oneshot::Sender<Reply>>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// An HTTP+SSE session: the GET stream (read by a task) and a second connection for POSTs.
#[derive(Debug)]
pub(crate) struct Legacy {
    pub(super) post_conn: Conn,
    pub(super) endpoint: String,
    pub(super) pending: Pending,
    pub(super) reader: JoinHandle<()>,
    pub(super) next_id: i64,
}

impl Legacy {
    pub(super) async fn connect(url: &str) -> Result<Legacy, LoadgenError> {
        let (target, path) = parse_url(url).await?;
        let mut get = Conn::new(target.clone());
        let resp = get
            .send(
                Method::GET,
                &path,
                &[(
                    header::ACCEPT,
                    HeaderValue::from_static("text/event-stream"),
                )],
                Bytes::new(),
            )
            .await?;
        if resp.status() != StatusCode::OK || !content_type(&resp).starts_with("text/event-stream")
        {
            return Err(LoadgenError::Http(format!(
                "GET {path}: {} {}",
                resp.status(),
                content_type(&resp)
            )));
        }
        let mut body = resp.into_body();
        let mut dec = Decoder::new(MAX_EVENT_BYTES);
        let endpoint = 'outer: loop {
            let Some(chunk) = next_chunk(&mut body).await? else {
                return Err(LoadgenError::Protocol(
                    "SSE stream ended before `endpoint`".into(),
                ));
            };
            let events = dec
                .feed(&chunk)
                .map_err(|e| LoadgenError::Protocol(e.to_string()))?;
            // Nothing can be pending before the first POST, so events after `endpoint` in the
            // same chunk carry nothing to wait for.
            if let Some(ev) = events.iter().find(|ev| ev.event_type() == "endpoint") {
                break 'outer endpoint_path(&target, &ev.data)?;
            }
        };
        let pending: Pending = Arc::default();
        let reader = tokio::spawn(read_stream(body, dec, pending.clone(), get));
        Ok(Legacy {
            post_conn: Conn::new(target),
            endpoint,
            pending,
            reader,
            next_id: 1,
        })
    }

    pub(super) async fn post(&mut self, body: Vec<u8>) -> Result<(), LoadgenError> {
        let endpoint = self.endpoint.clone();
        let resp = self
            .post_conn
            .send(
                Method::POST,
                &endpoint,
                &[(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                Bytes::from(body),
            )
            .await?;
        let status = resp.status();
        let text = collect(resp.into_body()).await?;
        if !status.is_success() {
            return Err(LoadgenError::Http(format!(
                "POST {endpoint}: {status}: {}",
                String::from_utf8_lossy(&text)
            )));
        }
        Ok(())
    }

    pub(super) async fn request(
        &mut self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Reply, LoadgenError> {
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if let Err(e) = self.post(request_bytes(id, method, params)).await {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        rx.await
            .map_err(|_| LoadgenError::Protocol(format!("{method}: SSE stream closed")))
    }
}

/// The endpoint event's data is a path (or, from some servers, an absolute URL on the same
/// origin).
pub(super) fn endpoint_path(target: &Target, data: &str) -> Result<String, LoadgenError> {
    let data = data.trim();
    if data.starts_with('/') {
        return Ok(data.to_owned());
    }
    let rest = data
        .strip_prefix("http://")
        .ok_or_else(|| LoadgenError::Protocol(format!("unusable endpoint event: {data}")))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority != target.authority && !authority.ends_with(&format!(":{}", target.addr.port())) {
        return Err(LoadgenError::Protocol(format!(
            "endpoint on another origin: {data}"
        )));
    }
    Ok(if path.is_empty() {
        "/".into()
    } else {
        path.into()
    })
}

pub(super) async fn read_stream(
    mut body: Incoming,
    mut dec: Decoder,
    pending: Pending,
    _conn: Conn,
) {
    // `_conn` keeps the GET connection's sender alive for as long as the stream is read.
    while let Ok(Some(chunk)) = next_chunk(&mut body).await {
        let Ok(events) = dec.feed(&chunk) else { break };
        let at = Instant::now();
        for ev in events {
            if ev.event_type() != "message" {
                continue;
            }
            let Ok(msg) = Message::from_str(&ev.data) else {
                continue;
            };
            let id = match msg.id() {
                Some(RequestId::Number(n))
                    if matches!(msg, Message::Response(_) | Message::Error(_)) =>
                {
                    *n
                }
                _ => continue,
            };
            if let Some(tx) = lock(&pending).remove(&id) {
                let _ = tx.send(Reply { msg, at });
            }
        }
    }
    // Dropping the senders wakes every waiting request with an error.
    lock(&pending).clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoint_forms() {
        let (t, _) = parse_url("http://127.0.0.1:4000/mcp").await.unwrap();
        assert_eq!(
            endpoint_path(&t, "/messages?sessionId=abc").unwrap(),
            "/messages?sessionId=abc"
        );
        assert_eq!(
            endpoint_path(&t, "http://127.0.0.1:4000/messages?sessionId=abc").unwrap(),
            "/messages?sessionId=abc"
        );
        assert_eq!(endpoint_path(&t, "http://localhost:4000/m").unwrap(), "/m");
        assert!(endpoint_path(&t, "http://evil.example/m").is_err());
        assert!(endpoint_path(&t, "messages").is_err());
    }
}
