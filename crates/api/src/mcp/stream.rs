//! One SSE stream of a downstream session: a buffer of encoded events that an attached HTTP body
//! drains and that a later `GET` with `Last-Event-ID` can replay.
//!
//! A response is never dropped. What the client has not taken yet ("pending") has a soft budget:
//! past it, producers wait ([`EventStream::admit`] before a call starts, [`EventStream::wait_room`]
//! before a call's next related notification is read, so the transport sheds what then piles up
//! behind that one call), and only progress and log notifications pushed anyway are shed,
//! counted and logged. A notification that only says "this changed" is not queued twice.
//! Essential events past a hard bound mean the client stopped reading altogether: the session is
//! ended loudly rather than buffered without bound. Events already handed to a connection stay
//! for replay within a bound of their own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mcp_hub_protocol::sse;
use mcp_hub_protocol::{Message, methods};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Pending events (not yet handed to a connection) past which producers wait and progress and
/// log notifications are shed. The byte budget bounds memory; the event budget bounds the
/// per-event overhead of many small notifications.
const PENDING_EVENTS: usize = 8192;
const PENDING_BYTES: usize = 4 * 1024 * 1024;
/// Pending essential events past which the client counts as gone: its session ends.
const HARD_PENDING_EVENTS: usize = 65_536;
const HARD_PENDING_BYTES: usize = 256 * 1024 * 1024;
/// Delivered events kept for `Last-Event-ID` replay.
const REPLAY_EVENTS: usize = 512;
const REPLAY_BYTES: usize = 4 * 1024 * 1024;
/// Most bytes handed to a connection at once (at least one whole event): what the client has
/// not read stays here, where it is counted, rather than in the connection's write buffer.
const FRAME_BYTES: usize = 256 * 1024;
/// Calls running at once on one stream (the calls of a JSON-RPC batch wait their turn).
const STREAM_CALLS: usize = 64;
/// Shedding is logged at most this often per stream (with the count since the last line).
const SHED_LOG_EVERY: Duration = Duration::from_secs(1);
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

/// What may happen to an event when the client does not keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Responses, requests, cancellations, the endpoint and priming events: never dropped.
    Essential,
    /// Progress and log notifications: shed past the budget.
    Sheddable,
    /// A notification that only says "this changed": one pending copy is enough.
    Coalesce,
}

fn class_of(msg: &Message) -> Class {
    let Message::Notification(n) = msg else {
        return Class::Essential;
    };
    match n.method.as_str() {
        methods::PROGRESS | methods::LOGGING_MESSAGE => Class::Sheddable,
        methods::TOOLS_LIST_CHANGED
        | methods::RESOURCES_LIST_CHANGED
        | methods::PROMPTS_LIST_CHANGED
        | methods::RESOURCES_UPDATED => Class::Coalesce,
        _ => Class::Essential,
    }
}

struct Event {
    seq: u64,
    bytes: Bytes,
    /// The message text of a [`Class::Coalesce`] event, to recognise a duplicate.
    coalesce: Option<Box<str>>,
}

struct State {
    events: VecDeque<Event>,
    bytes: usize,
    next_seq: u64,
    /// Events before this sequence number were handed to a connection.
    delivered: u64,
    pending_events: usize,
    pending_bytes: usize,
    attached: bool,
    /// Responses still owed on a POST stream.
    owed: usize,
    finished_at: Option<Instant>,
    /// Notifications shed since the last warning, in all, and when the last warning was.
    shed: u64,
    shed_total: u64,
    shed_logged_at: Option<Instant>,
}

impl State {
    fn has_room(&self) -> bool {
        self.pending_events < PENDING_EVENTS && self.pending_bytes < PENDING_BYTES
    }
}

pub(crate) struct EventStream {
    pub(crate) id: u64,
    pub(crate) kind: StreamKind,
    session: Arc<str>,
    /// Whether events carry `id:` fields (Streamable HTTP does; legacy SSE does not need them).
    with_ids: bool,
    state: Mutex<State>,
    /// The reader (one at a time) waits on this for new events: `notify_one` keeps a permit
    /// when it is not waiting, so no append is missed. A `Notify` rather than a `watch`: a
    /// `watch` send wakes a block of eight `Notify`s and costs ~3,800 instructions per call.
    changed: Notify,
    /// Producers wait on this for room (`notify_waiters`, see `wait_room`).
    room: Notify,
    calls: Arc<Semaphore>,
    /// Ends the session when its client stopped reading altogether.
    fail: CancellationToken,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EventStream {
    pub(crate) fn new(
        id: u64,
        kind: StreamKind,
        session: Arc<str>,
        fail: CancellationToken,
    ) -> Arc<EventStream> {
        Arc::new(EventStream {
            id,
            kind,
            session,
            with_ids: kind != StreamKind::Legacy,
            state: Mutex::new(State {
                events: VecDeque::new(),
                bytes: 0,
                // Sequence 0 is the priming event's; real events start at 1.
                next_seq: 1,
                delivered: 0,
                pending_events: 0,
                pending_bytes: 0,
                attached: false,
                owed: 0,
                finished_at: None,
                shed: 0,
                shed_total: 0,
                shed_logged_at: None,
            }),
            changed: Notify::new(),
            room: Notify::new(),
            calls: Arc::new(Semaphore::new(STREAM_CALLS)),
            fail,
        })
    }

    /// Appends an encoded event; essential ones past the hard bound end the session.
    fn append(&self, st: &mut State, ev: Event, essential: bool) {
        st.bytes += ev.bytes.len();
        if ev.seq >= st.delivered {
            st.pending_events += 1;
            st.pending_bytes += ev.bytes.len();
        }
        st.events.push_back(ev);
        if essential
            && (st.pending_events > HARD_PENDING_EVENTS || st.pending_bytes > HARD_PENDING_BYTES)
            && !self.fail.is_cancelled()
        {
            tracing::error!(
                target: "mcp_hub::api",
                session = %self.session,
                stream = self.id,
                pending_events = st.pending_events,
                pending_bytes = st.pending_bytes,
                "an MCP client stopped reading its answers; ending its session"
            );
            self.fail.cancel();
        }
    }

    /// Encodes and appends a message unless it is shed or redundant; false when not appended.
    fn push_message(&self, st: &mut State, msg: &Message) -> bool {
        let class = class_of(msg);
        let mut coalesce = None;
        match class {
            Class::Sheddable if !st.has_room() => {
                self.note_shed(st);
                return false;
            }
            Class::Coalesce => {
                let text = msg.to_string();
                if st
                    .events
                    .iter()
                    .any(|e| e.seq >= st.delivered && e.coalesce.as_deref() == Some(text.as_str()))
                {
                    return false;
                }
                coalesce = Some(text.into_boxed_str());
            }
            _ => {}
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let ev = Event {
            seq,
            bytes: Bytes::from(self.encode(seq, msg)),
            coalesce,
        };
        self.append(st, ev, class == Class::Essential);
        true
    }

    /// The SSE event of a message: the JSON is written straight into the event (one buffer, no
    /// intermediate text), which is one `data:` line unless embedded raw JSON (an upstream's
    /// result kept verbatim) holds line breaks; then the general encoder splits it.
    fn encode(&self, seq: u64, msg: &Message) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"event: message\n");
        if self.with_ids {
            sse::push_stream_event_id(&mut out, self.id, seq);
        }
        out.extend_from_slice(b"data: ");
        let data = out.len();
        if serde_json::to_writer(&mut out, msg).is_ok() && !sse::has_line_break(&out[data..]) {
            out.extend_from_slice(b"\n\n");
            return out;
        }
        out.clear();
        let id = self.with_ids.then(|| format!("{}-{seq}", self.id));
        sse::encode_event(&mut out, Some("message"), id.as_deref(), &msg.to_string());
        out
    }

    fn note_shed(&self, st: &mut State) {
        st.shed += 1;
        st.shed_total += 1;
        if st
            .shed_logged_at
            .is_none_or(|t| t.elapsed() >= SHED_LOG_EVERY)
        {
            tracing::warn!(
                target: "mcp_hub::api",
                session = %self.session,
                stream = self.id,
                shed = st.shed,
                total = st.shed_total,
                "an MCP client is not keeping up: progress/log notifications shed"
            );
            st.shed = 0;
            st.shed_logged_at = Some(Instant::now());
        }
    }

    /// The priming event (an id and empty data, with `retry`), for clients ≥ 2025-11-25.
    pub(crate) fn prime(&self) {
        // One block, so the `retry` travels with the priming event rather than as a separate
        // data-less block (which decoders do not dispatch as an event).
        let mut out = Vec::with_capacity(64);
        sse::push_retry_field(&mut out, RETRY_MS);
        sse::push_stream_event_id(&mut out, self.id, 0);
        out.extend_from_slice(b"data: \n\n");
        let mut st = lock(&self.state);
        let ev = Event {
            seq: 0,
            bytes: Bytes::from(out),
            coalesce: None,
        };
        self.append(&mut st, ev, true);
        drop(st);
        self.changed.notify_one();
    }

    /// Appends a named event with raw data (the legacy `endpoint` event).
    pub(crate) fn push_named(&self, event: &str, data: &str) {
        let mut st = lock(&self.state);
        let seq = st.next_seq;
        st.next_seq += 1;
        let mut out = Vec::new();
        let id = self.with_ids.then(|| format!("{}-{seq}", self.id));
        sse::encode_event(&mut out, Some(event), id.as_deref(), data);
        let ev = Event {
            seq,
            bytes: Bytes::from(out),
            coalesce: None,
        };
        self.append(&mut st, ev, true);
        drop(st);
        self.changed.notify_one();
    }

    /// Appends a JSON-RPC message (progress and log notifications may be shed when the client
    /// is far behind). Returns false when the stream has already ended.
    pub(crate) fn push(&self, msg: &Message) -> bool {
        let mut st = lock(&self.state);
        if st.finished_at.is_some() {
            return false;
        }
        let appended = self.push_message(&mut st, msg);
        drop(st);
        if appended {
            self.changed.notify_one();
        }
        true
    }

    /// Announces that `n` more responses will be written to this POST stream.
    pub(crate) fn expect_responses(&self, n: usize) {
        lock(&self.state).owed += n;
    }

    /// Writes one of the announced responses (or, with `None`, gives up on one: a cancelled
    /// request gets no response). The stream ends after the last one.
    pub(crate) fn respond(&self, msg: Option<&Message>) {
        let mut st = lock(&self.state);
        if let Some(msg) = msg {
            self.push_message(&mut st, msg);
        }
        st.owed = st.owed.saturating_sub(1);
        if st.owed == 0 && self.kind == StreamKind::Post {
            st.finished_at = Some(Instant::now());
        }
        drop(st);
        self.changed.notify_one();
        self.room.notify_waiters();
    }

    /// Ends the stream: attached bodies finish once they have sent what is buffered.
    pub(crate) fn finish(&self) {
        let mut st = lock(&self.state);
        if st.finished_at.is_none() {
            st.finished_at = Some(Instant::now());
        }
        drop(st);
        self.changed.notify_one();
        self.room.notify_waiters();
    }

    pub(crate) fn is_attached(&self) -> bool {
        lock(&self.state).attached
    }

    /// When the stream ended, if it did.
    pub(crate) fn finished_at(&self) -> Option<Instant> {
        lock(&self.state).finished_at
    }

    /// Waits until the client has taken enough that pending events are within budget (or the
    /// stream ended). Only a reader that is attached but slow holds producers back: with none
    /// (the client went away and may resume with `Last-Event-ID`), calls run to their end and
    /// their answers wait here, within the hard bound, so an abandoned stream cannot hold its
    /// calls (and its session) forever. Cancel-safe.
    pub(crate) async fn wait_room(&self) {
        loop {
            // Registered before the check, so a `notify_waiters` between the check and the
            // wait is not lost.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let st = lock(&self.state);
                if st.has_room() || !st.attached || st.finished_at.is_some() {
                    return;
                }
            }
            room.await;
        }
    }

    /// Waits for this stream's turn to run one more call (a bounded number run at once) and for
    /// room for what it will write. `None` when `cancelled` fires first.
    pub(crate) async fn admit(
        &self,
        cancelled: &CancellationToken,
    ) -> Option<OwnedSemaphorePermit> {
        let permit = tokio::select! {
            biased;
            _ = cancelled.cancelled() => return None,
            p = self.calls.clone().acquire_owned() => p.ok()?,
        };
        tokio::select! {
            biased;
            _ = cancelled.cancelled() => None,
            _ = self.wait_room() => Some(permit),
        }
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

    /// Counts events before `seq` as handed over (a reader that starts later skips them).
    fn deliver_up_to(&self, st: &mut State, seq: u64) {
        if seq <= st.delivered {
            return;
        }
        let from = st.delivered;
        for e in st.events.iter().filter(|e| e.seq >= from && e.seq < seq) {
            st.pending_events -= 1;
            st.pending_bytes -= e.bytes.len();
        }
        st.delivered = seq;
        // Delivered events stay for `Last-Event-ID` replay (a connection can die after taking
        // them), within their own bound; an oversized one does not stay at all.
        let mut kept = st
            .events
            .iter()
            .take_while(|e| e.seq < st.delivered)
            .count();
        while kept > 0 {
            let replay_bytes = st.bytes - st.pending_bytes;
            if kept <= REPLAY_EVENTS && replay_bytes <= REPLAY_BYTES {
                break;
            }
            if let Some(old) = st.events.pop_front() {
                st.bytes -= old.bytes.len();
            }
            kept -= 1;
        }
    }

    /// Encoded events from sequence `next` on (up to [`FRAME_BYTES`], at least one), moving
    /// `next` past them; and whether the stream is over.
    fn take_from(&self, next: &mut u64) -> (Bytes, bool) {
        let mut st = lock(&self.state);
        let from = *next;
        let mut taken: Vec<Bytes> = Vec::new();
        let mut size = 0;
        for e in st.events.iter().filter(|e| e.seq >= from) {
            if !taken.is_empty() && size + e.bytes.len() > FRAME_BYTES {
                break;
            }
            size += e.bytes.len();
            taken.push(e.bytes.clone());
            *next = e.seq + 1;
        }
        if from > 0 && !taken.is_empty() && *next - taken.len() as u64 > from {
            // A resumed cursor that points into replay history already trimmed.
            tracing::debug!(target: "mcp_hub::api", stream = self.id, from, "replay history no longer holds every event after the cursor");
        }
        self.deliver_up_to(&mut st, *next);
        let done = st.finished_at.is_some() && *next >= st.next_seq;
        drop(st);
        if !taken.is_empty() {
            self.room.notify_waiters();
        }
        let chunk = match taken.len() {
            0 => Bytes::new(),
            1 => taken.pop().unwrap_or_default(),
            _ => {
                let mut out = BytesMut::with_capacity(size);
                for b in &taken {
                    out.extend_from_slice(b);
                }
                out.freeze()
            }
        };
        (chunk, done)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let st = lock(&self.state);
        if st.shed > 0 {
            tracing::warn!(
                target: "mcp_hub::api",
                session = %self.session,
                stream = self.id,
                shed = st.shed,
                total = st.shed_total,
                "an MCP client is not keeping up: progress/log notifications shed"
            );
        }
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
        // Producers waiting for this reader to catch up no longer wait (see `wait_room`).
        self.stream.room.notify_waiters();
        if let Some(f) = self.on_detach.take() {
            f();
        }
    }
}

mod reader;

pub(crate) use reader::{Call, Start, body, head_start};

#[cfg(test)]
mod tests;
