//! The HTTP body that drains an attached stream, and drives the call whose answer it carries.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt as _;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mcp_hub_protocol::sse;
use tokio_util::sync::CancellationToken;

use super::{AttachGuard, EventStream, FRAME_BYTES, StreamKind, lock};
use crate::body::Body;

/// A routed call driven by the body of the POST whose answer it writes (`Inner::proxied`).
pub(crate) type Call = Pin<Box<dyn Future<Output = ()> + Send>>;

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
    stream: std::sync::Arc<EventStream>,
    next: u64,
    session: CancellationToken,
    shutdown: CancellationToken,
    heartbeat: tokio::time::Interval,
    /// Whether the first write is still to come on a fresh POST stream (see `HOLD_FIRST`).
    first: bool,
    /// The call this body drives while it drains the stream (until the call ends).
    call: Option<Call>,
    _guard: AttachGuard,
}

impl Drop for Reader {
    fn drop(&mut self) {
        // The client went away (or the hub is stopping) before the call ended: a disconnect is
        // not a cancellation, so the call goes on in a task of its own and its answer waits on
        // the stream for a `Last-Event-ID` resumption.
        if let Some(call) = self.call.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(call);
        }
    }
}

/// Polls the driven call, if any: completes when it ends, never when there is none.
async fn drive(call: &mut Option<Call>) {
    match call {
        Some(c) => {
            c.await;
            *call = None;
        }
        None => std::future::pending().await,
    }
}

/// A fresh POST stream holds its first chunk (usually just the priming event) this long, so that
/// a fast upstream answer leaves in the same write: one wake-up of the client instead of two.
const HOLD_FIRST: Duration = Duration::from_millis(3);

/// The HTTP body that drains an attached stream: it ends when the stream is over, the session
/// ends or the hub shuts down, and sends a keep-alive comment every `heartbeat`. With `call`,
/// it also drives that call (whose answer ends the stream) in the connection's own task: no
/// task spawn and no cross-thread wake-up between the upstream's answer and its write.
pub(crate) fn body(
    guard: AttachGuard,
    start: Start,
    session: CancellationToken,
    shutdown: CancellationToken,
    heartbeat: Duration,
    call: Option<Call>,
) -> Body {
    let stream = guard.stream.clone();
    let next = match start {
        Start::Beginning => 0,
        Start::Now => {
            // What was sent while nobody listened is not replayed to a new reader: it no
            // longer counts against the budget.
            let mut st = lock(&stream.state);
            let now = st.next_seq;
            stream.deliver_up_to(&mut st, now);
            drop(st);
            stream.room.notify_waiters();
            now
        }
        Start::After(seq) => seq + 1,
    };
    let heartbeat = heartbeat.max(Duration::from_millis(100));
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let first = matches!(start, Start::Beginning) && stream.kind == StreamKind::Post;
    let reader = Reader {
        first,
        stream,
        next,
        session,
        shutdown,
        heartbeat: interval,
        call,
        _guard: guard,
    };
    let s = futures::stream::unfold(reader, |mut r| async move {
        // The call is first polled (sends its request upstream) in the first wait below: the
        // hold of the priming event, or the wait for the first event.
        loop {
            let (mut chunk, mut done) = r.stream.take_from(&mut r.next);
            if r.first && !chunk.is_empty() && !done {
                r.first = false;
                // A permit left by what was just taken would end the hold at once.
                let _ = r.stream.changed.notified().now_or_never();
                let hold = tokio::time::sleep(HOLD_FIRST);
                tokio::pin!(hold);
                tokio::select! {
                    _ = &mut hold => {}
                    _ = r.stream.changed.notified() => {}
                    _ = drive(&mut r.call) => {}
                }
                if chunk.len() < FRAME_BYTES {
                    let (more, now_done) = r.stream.take_from(&mut r.next);
                    if !more.is_empty() {
                        let mut joined = BytesMut::with_capacity(chunk.len() + more.len());
                        joined.extend_from_slice(&chunk);
                        joined.extend_from_slice(&more);
                        chunk = joined.freeze();
                    }
                    done = now_done;
                }
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
                _ = r.stream.changed.notified() => {}
                _ = drive(&mut r.call) => {}
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
