//! One SSE stream of a downstream session: a bounded buffer of encoded events that an attached
//! HTTP body drains and that a later `GET` with `Last-Event-ID` can replay.
//!
//! The buffer *is* the queue: writers append without ever waiting (the registry's fan-out and
//! upstream calls must not stall on a slow client), and when a reader falls further behind than
//! the bound, the oldest events are lost and a warning is logged.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mcp_hub_protocol::Message;
use mcp_hub_protocol::sse;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::body::Body;

/// Most events kept per stream.
const MAX_EVENTS: usize = 512;
/// Most bytes kept per stream (the newest event is kept whatever its size).
const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Sent in the priming event so that clients that lost the connection come back soon.
pub(crate) const RETRY_MS: u64 = 1000;

/// What a stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// The answer stream of one POST (ends after its responses).
    Post,
    /// The session's standalone GET stream.
    Get,
    /// The single stream of a legacy HTTP+SSE session (its end ends the session).
    Legacy,
}

struct State {
    events: VecDeque<(u64, Bytes)>,
    bytes: usize,
    next_seq: u64,
    attached: bool,
    pending: usize,
    finished_at: Option<Instant>,
}

pub(crate) struct EventStream {
    pub(crate) id: u64,
    pub(crate) kind: StreamKind,
    /// Whether events carry `id:` fields (Streamable HTTP does; legacy SSE does not need them).
    with_ids: bool,
    state: Mutex<State>,
    changed: watch::Sender<()>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EventStream {
    pub(crate) fn new(id: u64, kind: StreamKind) -> Arc<EventStream> {
        let (changed, _) = watch::channel(());
        Arc::new(EventStream {
            id,
            kind,
            with_ids: kind != StreamKind::Legacy,
            state: Mutex::new(State {
                events: VecDeque::new(),
                bytes: 0,
                // Sequence 0 is the priming event's; real events start at 1.
                next_seq: 1,
                attached: false,
                pending: 0,
                finished_at: None,
            }),
            changed,
        })
    }

    fn push_encoded(&self, st: &mut State, encode: impl FnOnce(&mut Vec<u8>, Option<&str>)) {
        let seq = st.next_seq;
        st.next_seq += 1;
        let id = self.with_ids.then(|| format!("{}-{seq}", self.id));
        let mut out = Vec::new();
        encode(&mut out, id.as_deref());
        st.bytes += out.len();
        st.events.push_back((seq, Bytes::from(out)));
        while st.events.len() > 1 && (st.events.len() > MAX_EVENTS || st.bytes > MAX_BYTES) {
            if let Some((_, old)) = st.events.pop_front() {
                st.bytes -= old.len();
            }
        }
    }

    /// The priming event (an id and empty data, with `retry`), for clients ≥ 2025-11-25.
    pub(crate) fn prime(&self) {
        // One block, so the `retry` travels with the priming event rather than as a separate
        // data-less block (which decoders do not dispatch as an event).
        let mut out = format!("retry: {RETRY_MS}\n").into_bytes();
        sse::encode_event(&mut out, None, Some(&format!("{}-0", self.id)), "");
        let mut st = lock(&self.state);
        st.bytes += out.len();
        st.events.push_back((0, Bytes::from(out)));
        drop(st);
        self.changed.send_replace(());
    }

    /// Appends a named event with raw data (the legacy `endpoint` event).
    pub(crate) fn push_named(&self, event: &str, data: &str) {
        let mut st = lock(&self.state);
        self.push_encoded(&mut st, |out, id| {
            sse::encode_event(out, Some(event), id, data)
        });
        drop(st);
        self.changed.send_replace(());
    }

    /// Appends a JSON-RPC message. Returns false when the stream has already ended.
    pub(crate) fn push(&self, msg: &Message) -> bool {
        let text = msg.to_string();
        let mut st = lock(&self.state);
        if st.finished_at.is_some() {
            return false;
        }
        self.push_encoded(&mut st, |out, id| {
            sse::encode_event(out, Some("message"), id, &text)
        });
        drop(st);
        self.changed.send_replace(());
        true
    }

    /// Announces that `n` more responses will be written to this POST stream.
    pub(crate) fn expect_responses(&self, n: usize) {
        lock(&self.state).pending += n;
    }

    /// Writes one of the announced responses (or, with `None`, gives up on one: a cancelled
    /// request gets no response). The stream ends after the last one.
    pub(crate) fn respond(&self, msg: Option<&Message>) {
        let text = msg.map(|m| m.to_string());
        let mut st = lock(&self.state);
        if let Some(text) = text {
            self.push_encoded(&mut st, |out, id| {
                sse::encode_event(out, Some("message"), id, &text)
            });
        }
        st.pending = st.pending.saturating_sub(1);
        if st.pending == 0 && self.kind == StreamKind::Post {
            st.finished_at = Some(Instant::now());
        }
        drop(st);
        self.changed.send_replace(());
    }

    /// Ends the stream: attached bodies finish once they have sent what is buffered.
    pub(crate) fn finish(&self) {
        let mut st = lock(&self.state);
        if st.finished_at.is_none() {
            st.finished_at = Some(Instant::now());
        }
        drop(st);
        self.changed.send_replace(());
    }

    pub(crate) fn is_attached(&self) -> bool {
        lock(&self.state).attached
    }

    /// When the stream ended, if it did.
    pub(crate) fn finished_at(&self) -> Option<Instant> {
        lock(&self.state).finished_at
    }

    /// The sequence number of the newest event (0 when none).
    pub(crate) fn last_seq(&self) -> u64 {
        lock(&self.state).next_seq - 1
    }

    /// Marks the stream attached to an HTTP body; `None` when another body already has it.
    pub(crate) fn attach(self: &Arc<Self>) -> Option<AttachGuard> {
        let mut st = lock(&self.state);
        if st.attached {
            return None;
        }
        st.attached = true;
        Some(AttachGuard {
            stream: self.clone(),
            on_detach: None,
        })
    }

    /// Encoded events from sequence `next` on, moving `next` past them; and whether the stream
    /// is over.
    fn take_from(&self, next: &mut u64) -> (Bytes, bool) {
        let mut st = lock(&self.state);
        let mut out = BytesMut::new();
        let mut first = true;
        let from = *next;
        for (seq, bytes) in st.events.iter().filter(|(seq, _)| *seq >= from) {
            if first && *seq > *next && *next > 0 {
                tracing::warn!(
                    target: "mcp_hub::api",
                    stream = self.id,
                    lost = *seq - *next,
                    "a slow MCP client lost SSE events (buffer bound reached)"
                );
            }
            first = false;
            out.extend_from_slice(bytes);
            *next = *seq + 1;
        }
        let done = st.finished_at.is_some() && *next >= st.next_seq;
        // Delivered events stay for `Last-Event-ID` replay (a connection can die after taking
        // them), but only within the byte bound: an oversized one, such as a huge tool result,
        // is not kept once it has been handed to a connection.
        while st.bytes > MAX_BYTES && st.events.front().is_some_and(|(seq, _)| *seq < *next) {
            if let Some((_, old)) = st.events.pop_front() {
                st.bytes -= old.len();
            }
        }
        (out.freeze(), done)
    }
}

/// Held by the HTTP body that is draining a stream; detaches it when the body is dropped (the
/// client went away or the stream ended).
pub(crate) struct AttachGuard {
    stream: Arc<EventStream>,
    on_detach: Option<Box<dyn FnOnce() + Send>>,
}

impl AttachGuard {
    /// Runs `f` when the body goes away (a legacy session ends with its stream).
    pub(crate) fn on_detach(mut self, f: impl FnOnce() + Send + 'static) -> AttachGuard {
        self.on_detach = Some(Box::new(f));
        self
    }
}

impl Drop for AttachGuard {
    fn drop(&mut self) {
        lock(&self.stream.state).attached = false;
        if let Some(f) = self.on_detach.take() {
            f();
        }
    }
}

/// Where a body starts reading.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start {
    /// Everything buffered, including a priming event.
    Beginning,
    /// Only what is appended from now on.
    Now,
    /// What came after this sequence number (`Last-Event-ID`).
    After(u64),
}

struct Reader {
    stream: Arc<EventStream>,
    next: u64,
    changed: watch::Receiver<()>,
    session: CancellationToken,
    shutdown: CancellationToken,
    heartbeat: tokio::time::Interval,
    /// Whether the first write is still to come on a fresh POST stream (see `HOLD_FIRST`).
    first: bool,
    _guard: AttachGuard,
}

/// A fresh POST stream holds its first chunk (usually just the priming event) this long, so that
/// a fast upstream answer leaves in the same write: one wake-up of the client instead of two.
const HOLD_FIRST: Duration = Duration::from_millis(3);

/// The HTTP body that drains an attached stream: it ends when the stream is over, the session
/// ends or the hub shuts down, and sends a keep-alive comment every `heartbeat`.
pub(crate) fn body(
    guard: AttachGuard,
    start: Start,
    session: CancellationToken,
    shutdown: CancellationToken,
    heartbeat: Duration,
) -> Body {
    let stream = guard.stream.clone();
    let next = match start {
        Start::Beginning => 0,
        Start::Now => stream.last_seq() + 1,
        Start::After(seq) => seq + 1,
    };
    let heartbeat = heartbeat.max(Duration::from_millis(100));
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let first = matches!(start, Start::Beginning) && stream.kind == StreamKind::Post;
    let reader = Reader {
        first,
        changed: stream.changed.subscribe(),
        stream,
        next,
        session,
        shutdown,
        heartbeat: interval,
        _guard: guard,
    };
    let s = futures::stream::unfold(reader, |mut r| async move {
        loop {
            let (mut chunk, mut done) = r.stream.take_from(&mut r.next);
            if r.first && !chunk.is_empty() && !done {
                r.first = false;
                r.changed.borrow_and_update();
                let hold = tokio::time::sleep(HOLD_FIRST);
                tokio::pin!(hold);
                tokio::select! {
                    _ = &mut hold => {}
                    _ = r.changed.changed() => {}
                }
                let (more, now_done) = r.stream.take_from(&mut r.next);
                if !more.is_empty() {
                    let mut joined = BytesMut::with_capacity(chunk.len() + more.len());
                    joined.extend_from_slice(&chunk);
                    joined.extend_from_slice(&more);
                    chunk = joined.freeze();
                }
                done = now_done;
            }
            if !chunk.is_empty() {
                return Some((Ok::<_, Infallible>(Frame::data(chunk)), r));
            }
            if done {
                return None;
            }
            tokio::select! {
                _ = r.shutdown.cancelled() => return None,
                _ = r.session.cancelled() => return None,
                res = r.changed.changed() => if res.is_err() { return None },
                _ = r.heartbeat.tick() => {
                    let mut out = Vec::new();
                    sse::encode_comment(&mut out, "keep-alive");
                    return Some((Ok(Frame::data(Bytes::from(out))), r));
                }
            }
        }
    });
    StreamBody::new(s).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use mcp_hub_protocol::Message;

    use super::*;

    #[test]
    fn events_carry_stream_ids_and_replay_after_a_cursor() {
        let s = EventStream::new(7, StreamKind::Post);
        s.prime();
        s.expect_responses(1);
        s.push(&Message::notification("notifications/progress", None));
        s.respond(Some(&Message::response(
            1.into(),
            mcp_hub_protocol::empty_object(),
        )));
        let mut next = 2;
        let (bytes, done) = s.take_from(&mut next);
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.starts_with("event: message\nid: 7-2\n"), "{text}");
        assert!(!text.contains("7-1\n"));
        assert!(done);
        assert_eq!(next, 3);
    }

    #[test]
    fn buffer_is_bounded() {
        let s = EventStream::new(1, StreamKind::Get);
        for _ in 0..(MAX_EVENTS + 10) {
            s.push(&Message::notification("x", None));
        }
        assert_eq!(lock(&s.state).events.len(), MAX_EVENTS);
        let mut next = 0;
        let (bytes, done) = s.take_from(&mut next);
        assert!(!done);
        assert_eq!(next, (MAX_EVENTS + 11) as u64);
        assert!(!bytes.is_empty());
    }

    #[test]
    fn a_stream_has_one_reader() {
        let s = EventStream::new(1, StreamKind::Get);
        let g = s.attach().unwrap();
        assert!(s.attach().is_none());
        drop(g);
        assert!(s.attach().is_some());
    }
}
