//! Reading SSE response streams: the POST streams that answer requests (with resumption after a
//! drop) and the standalone GET stream for server-initiated messages.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use mcp_hub_protocol::{
    ErrorCode, ErrorObject, Incoming, Message, RequestId, sse::Event as SseEvent,
};
use tokio::time::Instant;

use super::{
    DEFAULT_RETRY, EVENT_STREAM, HEALTHY_STREAM, LAST_EVENT_ID, MAX_BACKOFF, MAX_RECONNECTS,
    MAX_RESUMES, Shared,
};
use crate::TransportError;
use crate::http_client::{self, SseReader};

/// How one response stream ended.
enum StreamEnd {
    /// The response to the originating request arrived.
    Answered,
    /// The body ended or broke; resumable if an event id was seen.
    Dropped,
    /// The wire is closing or dead; stop everything.
    Stop,
}

impl Shared {
    /// Decodes one event's data and pushes the messages it holds. Returns whether the response
    /// to `origin` was among them, or `None` when the wire is gone.
    async fn deliver(&self, event: &SseEvent, origin: Option<&RequestId>) -> Option<bool> {
        if event.event_type() != "message" || event.data.is_empty() {
            // Priming events and unknown event types carry no JSON-RPC message.
            return Some(false);
        }
        let msgs = match Incoming::from_slice(event.data.as_bytes()) {
            Ok(Incoming::Single(m)) => vec![m],
            Ok(Incoming::Batch(ms)) => ms,
            Err(e) => {
                tracing::warn!(server = %self.upstream.name, error = %e, "dropping an undecodable SSE message");
                // If it says which call it answers, that call fails now.
                match crate::salvage::unreadable_answer(event.data.as_bytes(), &e) {
                    Some(answer) => vec![answer],
                    None => return Some(false),
                }
            }
        };
        let mut answered = false;
        for msg in msgs {
            answered |= is_answer(&msg, origin);
            if !self.push(msg, origin.cloned()).await {
                return None;
            }
        }
        Some(answered)
    }

    /// Pumps one SSE body into the inbound channel until it ends, the response to `origin`
    /// arrives, or the wire closes. Keeps `cursor` up to date for resumption.
    async fn pump(
        &self,
        reader: &mut SseReader,
        origin: Option<&RequestId>,
        cursor: &mut Cursor,
    ) -> StreamEnd {
        loop {
            let next = tokio::select! {
                n = reader.next() => n,
                () = self.cancel.cancelled() => return StreamEnd::Stop,
            };
            if let Some(id) = reader.last_event_id() {
                cursor.last_event_id = Some(id.to_owned());
            }
            if let Some(retry) = reader.retry() {
                cursor.retry = Some(retry);
            }
            match next {
                Ok(Some(event)) => {
                    cursor.progressed = true;
                    match self.deliver(&event, origin).await {
                        None => return StreamEnd::Stop,
                        Some(true) => return StreamEnd::Answered,
                        Some(false) => {}
                    }
                }
                Ok(None) => return StreamEnd::Dropped,
                Err(e @ TransportError::Protocol(_)) => {
                    // An oversized event: the stream cannot be trusted past this point.
                    tracing::warn!(server = %self.upstream.name, error = %e, "dropping SSE stream");
                    return StreamEnd::Dropped;
                }
                Err(e) => {
                    tracing::debug!(server = %self.upstream.name, error = %e, "SSE stream broke");
                    return StreamEnd::Dropped;
                }
            }
        }
    }

    /// GET with `Accept: text/event-stream` (and `Last-Event-ID` when resuming).
    async fn open_get(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<http::Response<hyper::body::Incoming>, TransportError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, EVENT_STREAM);
        self.session_headers(&mut headers);
        if let Some(id) = last_event_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert(LAST_EVENT_ID, id);
        }
        self.exchange(Method::GET, &headers, Bytes::new(), self.request_timeout)
            .await
    }

    /// Reads the SSE answer to a POSTed request; if it drops before the response, resumes it
    /// with GET + `Last-Event-ID`. A stream that cannot be resumed fails its request at once with
    /// a JSON-RPC error saying why, rather than leaving it to its timeout: no event id to resume
    /// from, a refusal (any 4xx but 408/429, e.g. 405 or 409), an answer that is not an event
    /// stream, or [`MAX_RESUMES`] reconnections in a row that brought nothing (the server lost
    /// what it produced while the hub waited out `retry`).
    pub(super) async fn read_post_stream(&self, mut reader: SseReader, origin: Option<RequestId>) {
        let deadline = Instant::now() + self.request_timeout.saturating_mul(10);
        let mut cursor = Cursor::default();
        let mut fruitless = 0;
        loop {
            match self.pump(&mut reader, origin.as_ref(), &mut cursor).await {
                StreamEnd::Answered | StreamEnd::Stop => return,
                StreamEnd::Dropped => {}
            }
            let Some(id) = origin.clone() else {
                // Not a request: nothing is owed on this stream.
                return;
            };
            if std::mem::take(&mut cursor.progressed) {
                fruitless = 0;
            }
            match self.resume(id, &mut cursor, &mut fruitless, deadline).await {
                Some(r) => reader = r,
                None => return,
            }
        }
    }

    /// Reconnects to the stream of request `id`. `None` when the request has been failed (or the
    /// wire is gone).
    async fn resume(
        &self,
        id: RequestId,
        cursor: &mut Cursor,
        fruitless: &mut u32,
        deadline: Instant,
    ) -> Option<SseReader> {
        loop {
            *fruitless += 1;
            let Some(last) = cursor.last_event_id.clone() else {
                self.abandon(
                    id,
                    "stream ended before the response and cannot be resumed (no event id)",
                )
                .await;
                return None;
            };
            if *fruitless > MAX_RESUMES || Instant::now() >= deadline {
                let why = format!(
                    "stream ended before the response; {} reconnections with Last-Event-ID brought nothing",
                    *fruitless - 1
                );
                self.abandon(id, &why).await;
                return None;
            }
            if !self.sleep(cursor.delay(*fruitless)).await {
                return None;
            }
            let status = match self.open_get(Some(&last)).await {
                Ok(resp) if resp.status().is_success() && is_event_stream(&resp) => {
                    return Some(SseReader::new(resp.into_body(), self.max_message_bytes));
                }
                Ok(resp) => resp.status(),
                Err(e @ (TransportError::Unauthorized(_) | TransportError::Auth(_))) => {
                    self.fatal(e).await;
                    return None;
                }
                Err(TransportError::Closed) => return None,
                Err(e) => {
                    tracing::debug!(server = %self.upstream.name, error = %e, "resumption failed");
                    continue;
                }
            };
            if status == StatusCode::NOT_FOUND && self.has_session() {
                self.fatal(Shared::session_expired()).await;
                return None;
            }
            let refused = status.is_client_error()
                && status != StatusCode::REQUEST_TIMEOUT
                && status != StatusCode::TOO_MANY_REQUESTS;
            if refused || status.is_success() {
                let why = if refused {
                    format!(
                        "stream ended before the response; the server refused to resume it (HTTP {status})"
                    )
                } else {
                    "stream ended before the response; the server answered the resumption without an event stream".to_owned()
                };
                self.abandon(id, &why).await;
                return None;
            }
            tracing::debug!(server = %self.upstream.name, %status, "resumption failed; retrying");
        }
    }

    pub(super) fn has_session(&self) -> bool {
        self.state().session_id.is_some()
    }

    /// Fails a request whose response stream is lost for good.
    pub(super) async fn abandon(&self, id: RequestId, why: &str) {
        tracing::warn!(server = %self.upstream.name, request = %id, "{why}");
        let error = ErrorObject::new(ErrorCode::INTERNAL_ERROR, format!("upstream {why}"));
        self.push(Message::error(Some(id.clone()), error), Some(id))
            .await;
    }

    /// The standalone GET stream for server-initiated messages, kept open with bounded
    /// reconnection until the wire closes.
    pub(super) async fn run_get_stream(&self) {
        let mut cursor = Cursor::default();
        let mut failures: u32 = 0;
        loop {
            match self.open_get(cursor.last_event_id.as_deref()).await {
                Ok(resp) if resp.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    tracing::debug!(server = %self.upstream.name, "no GET stream offered (405)");
                    return;
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND && self.has_session() => {
                    return self.fatal(Shared::session_expired()).await;
                }
                Ok(resp) if resp.status() == StatusCode::CONFLICT => {
                    tracing::debug!(server = %self.upstream.name, "GET stream refused (409)");
                    return;
                }
                Ok(resp) if resp.status().is_success() => {
                    if !is_event_stream(&resp) {
                        tracing::debug!(server = %self.upstream.name, "GET answered without an event stream");
                        return;
                    }
                    let opened = Instant::now();
                    let mut reader = SseReader::new(resp.into_body(), self.max_message_bytes);
                    if let StreamEnd::Stop = self.pump(&mut reader, None, &mut cursor).await {
                        return;
                    }
                    if std::mem::take(&mut cursor.progressed) || opened.elapsed() >= HEALTHY_STREAM
                    {
                        failures = 0;
                    }
                }
                Ok(resp) => {
                    tracing::debug!(server = %self.upstream.name, status = %resp.status(), "GET stream refused");
                }
                Err(e @ (TransportError::Unauthorized(_) | TransportError::Auth(_))) => {
                    return self.fatal(e).await;
                }
                Err(TransportError::Closed) => return,
                Err(e) => {
                    tracing::debug!(server = %self.upstream.name, error = %e, "GET stream failed");
                }
            }
            failures += 1;
            if failures > MAX_RECONNECTS {
                tracing::warn!(server = %self.upstream.name, "giving up on the GET stream after repeated failures");
                return;
            }
            if !self.sleep(cursor.delay(failures)).await {
                return;
            }
        }
    }
}

/// Where a stream can be resumed from.
#[derive(Debug, Default)]
struct Cursor {
    last_event_id: Option<String>,
    retry: Option<Duration>,
    /// Whether any event arrived since the last reconnection.
    progressed: bool,
}

impl Cursor {
    /// The server's `retry` (or the default), doubled per consecutive failure, capped.
    fn delay(&self, failures: u32) -> Duration {
        let base = self.retry.unwrap_or(DEFAULT_RETRY);
        base.saturating_mul(1 << failures.saturating_sub(1).min(5))
            .min(MAX_BACKOFF.max(base))
    }
}

pub(super) fn is_event_stream(resp: &http::Response<hyper::body::Incoming>) -> bool {
    http_client::media_type(resp.headers()) == "text/event-stream"
}

/// Whether `msg` is the response (success or error) to `origin`.
fn is_answer(msg: &Message, origin: Option<&RequestId>) -> bool {
    match (msg, origin) {
        (Message::Response(_) | Message::Error(_), Some(origin)) => msg.id() == Some(origin),
        _ => false,
    }
}
