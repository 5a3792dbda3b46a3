//! Reading the hub's SSE streams for the relay: a POST's response stream (resumed with
//! `Last-Event-ID` if it ends before its answer) and the session's standing GET stream.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use mcp_hub_core::protocol::sse;
use serde_json::Value;
use tokio::sync::mpsc;

use super::relay::{HttpClient, error_line, id_key, is_sse, lock, one_line};

/// Largest SSE event accepted from the hub.
pub(super) const MAX_EVENT: usize = 64 * 1024 * 1024;
/// Attempts to resume a POST stream that ended before its response (`Last-Event-ID`).
const RESUME_ATTEMPTS: usize = 5;

/// Reads one SSE response stream (or the standing GET stream) and writes its messages.
pub(super) struct StreamReader {
    pub(super) http: HttpClient,
    pub(super) out: mpsc::Sender<Bytes>,
    pub(super) in_flight: Arc<Mutex<HashSet<String>>>,
    /// A GET on the session, for resuming with `Last-Event-ID`.
    pub(super) resume: Request<Full<Bytes>>,
}

impl StreamReader {
    fn resume_request(&self, last_event_id: Option<&str>) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(self.resume.uri().clone());
        for (k, v) in self.resume.headers() {
            b = b.header(k, v);
        }
        if let Some(id) = last_event_id {
            b = b.header("last-event-id", id);
        }
        b.body(Full::new(Bytes::new()))
            .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
    }

    /// Forwards every message of `body`; `waiting` are the request ids this stream must answer.
    /// A stream that ends before answering them is resumed with `Last-Event-ID`; if that fails,
    /// they are answered with an error.
    pub(super) async fn follow(self, body: Incoming, mut waiting: Vec<String>) {
        let mut dec = sse::Decoder::new(MAX_EVENT);
        let mut body = body;
        let mut attempts = 0;
        loop {
            self.pump(&mut body, &mut dec, &mut waiting).await;
            if waiting.is_empty() {
                return;
            }
            let Some(last) = dec.last_event_id().map(str::to_owned) else {
                break;
            };
            attempts += 1;
            if attempts > RESUME_ATTEMPTS {
                break;
            }
            let delay = dec.retry().unwrap_or(200).min(5_000);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            match self.http.request(self.resume_request(Some(&last))).await {
                Ok(r) if r.status().is_success() && is_sse(r.headers()) => body = r.into_body(),
                _ => continue,
            }
        }
        for id in waiting {
            if lock(&self.in_flight).remove(&id) {
                let _ = self
                    .out
                    .send(error_line(
                        Some(&id),
                        -32603,
                        "the hub closed the response stream before answering",
                    ))
                    .await;
            }
        }
    }

    /// Reads events until the body ends; removes answered ids from `waiting`.
    async fn pump(&self, body: &mut Incoming, dec: &mut sse::Decoder, waiting: &mut Vec<String>) {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let Ok(events) = dec.feed(&data) else { return };
            for ev in events {
                if ev.event_type() != "message" || ev.data.trim().is_empty() {
                    continue;
                }
                if let Ok(v) = serde_json::from_str::<Value>(&ev.data)
                    && v.get("method").is_none()
                    && let Some(id) = id_key(&v)
                {
                    waiting.retain(|w| *w != id);
                    lock(&self.in_flight).remove(&id);
                }
                if self.out.send(one_line(&ev.data)).await.is_err() {
                    return;
                }
            }
        }
    }

    /// The session's standing GET stream, reopened when it ends. Returns `true` when the hub is
    /// gone (nothing listens, or it forgot the session), `false` when the hub has no GET stream.
    pub(super) async fn standing(self) -> bool {
        let mut failures = 0u32;
        let mut last: Option<String> = None;
        loop {
            match self
                .http
                .request(self.resume_request(last.as_deref()))
                .await
            {
                Ok(r) if r.status().is_success() && is_sse(r.headers()) => {
                    failures = 0;
                    let mut dec = sse::Decoder::new(MAX_EVENT);
                    let mut body = r.into_body();
                    let mut none = Vec::new();
                    self.pump(&mut body, &mut dec, &mut none).await;
                    if let Some(id) = dec.last_event_id() {
                        last = Some(id.to_owned());
                    }
                }
                Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => return false,
                Ok(r) if r.status() == StatusCode::NOT_FOUND => return true,
                Ok(_) => failures += 1,
                Err(_) => {
                    failures += 1;
                    if failures >= 3 {
                        return true;
                    }
                }
            }
            if failures > 20 {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(
                200 * u64::from(failures.min(10)) + 50,
            ))
            .await;
        }
    }
}
