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
    heartbeat: Duration,
    /// Made at the first wait: a POST answered at once never needs it (nor its allocation).
    ticker: Option<tokio::time::Interval>,
    /// Whether the first write is still to come on a fresh POST stream (see `HOLD_FIRST`).
    first: bool,
    /// The call this body drives while it drains the stream (until the call ends).
    call: Option<Call>,
    _guard: AttachGuard,
}

impl Drop for Reader {
    fn drop(&mut self) {
        carry_on(self.call.take());
    }
}

/// The client went away (or the hub is stopping) before the call ended: a disconnect is not a
/// cancellation, so the call goes on in a task of its own and its answer waits on the stream
/// for a `Last-Event-ID` resumption.
fn carry_on(call: Option<Call>) {
    if let Some(call) = call
        && let Ok(rt) = tokio::runtime::Handle::try_current()
    {
        rt.spawn(call);
    }
}

/// A call that [`carry_on`]s if dropped while it runs.
struct Running(Option<Call>);

impl Drop for Running {
    fn drop(&mut self) {
        carry_on(self.0.take());
    }
}

/// Drives a POST's single call for up to [`HOLD_FIRST`] before its response is made, and gives
/// it back if it has not ended. A fast answer is then on the stream before the response head
/// exists, and the head, the priming event, the answer and the end of the body leave in one
/// write: hyper writes the head as soon as the body is first pending, so a hold in the body
/// alone still cost a second write and a second wake-up of the client per call.
pub(crate) async fn head_start(call: Call) -> Option<Call> {
    let mut running = Running(Some(call));
    let call = running.0.as_mut().expect("set just above");
    let ended = tokio::select! {
        biased;
        () = call.as_mut() => true,
        () = tokio::time::sleep(HOLD_FIRST) => false,
    };
    let call = running.0.take();
    if ended { None } else { call }
}

/// The next keep-alive: `period` after the first wait, then every `period` after the last.
async fn tick(ticker: &mut Option<tokio::time::Interval>, period: Duration) {
    let t = ticker.get_or_insert_with(|| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    t.tick().await;
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
    // A call given here has had its hold already (`head_start`).
    let first =
        matches!(start, Start::Beginning) && stream.kind == StreamKind::Post && call.is_none();
    let reader = Reader {
        first,
        stream,
        next,
        session,
        shutdown,
        heartbeat,
        ticker: None,
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
                _ = tick(&mut r.ticker, r.heartbeat) => {
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
mod head_start_tests {
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn a_call_that_ends_within_the_hold_is_done_before_the_head() {
        let (tx, rx) = oneshot::channel();
        let call: Call = Box::pin(async move {
            tokio::task::yield_now().await;
            let _ = tx.send(());
        });
        assert!(
            head_start(call).await.is_none(),
            "ended: nothing left to drive"
        );
        rx.await.expect("the call ran to its end");
    }

    #[tokio::test]
    async fn a_slow_call_is_given_back_to_the_body_unfinished() {
        let (go, wait) = oneshot::channel::<()>();
        let (tx, done) = oneshot::channel();
        let call: Call = Box::pin(async move {
            let _ = wait.await;
            let _ = tx.send(());
        });
        let rest = head_start(call)
            .await
            .expect("still running after the hold");
        go.send(()).unwrap();
        rest.await;
        done.await.expect("the body drove it to its end");
    }

    #[tokio::test]
    async fn a_client_gone_during_the_hold_does_not_cancel_the_call() {
        let (started_tx, started) = oneshot::channel();
        let (go, wait) = oneshot::channel::<()>();
        let (tx, done) = oneshot::channel();
        let call: Call = Box::pin(async move {
            let _ = started_tx.send(());
            let _ = wait.await;
            let _ = tx.send(());
        });
        // The request's future is dropped (hyper does so when the client disconnects) while
        // `head_start` holds the call.
        let request = tokio::spawn(head_start(call));
        started.await.unwrap();
        request.abort();
        match request.await {
            Err(e) => assert!(e.is_cancelled()),
            // Only if this thread was descheduled for the whole hold (3 ms) after `started`.
            Ok(rest) => {
                eprintln!("the hold ended before the abort; driving the call here");
                tokio::spawn(rest.expect("not ended: it waits for `go`"));
            }
        }
        go.send(()).expect("the call still waits for its answer");
        tokio::time::timeout(Duration::from_secs(5), done)
            .await
            .expect("the call carried on in a task of its own")
            .unwrap();
    }
}

#[cfg(test)]
mod heartbeat_tests {
    use std::sync::Arc;

    use http_body_util::BodyExt as _;

    use super::*;

    /// The next data frame of `body`, as text.
    async fn next_text(body: &mut Body) -> String {
        let frame = body.frame().await.expect("a frame").expect("no error");
        String::from_utf8(frame.into_data().expect("data").to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_sends_a_keep_alive_every_period_and_events_between() {
        let s = EventStream::new(1, StreamKind::Get, Arc::from("s"), CancellationToken::new());
        let guard = s.attach().expect("a first reader");
        let period = Duration::from_secs(10);
        let (session, shutdown) = (CancellationToken::new(), CancellationToken::new());
        let mut body = super::body(guard, Start::Now, session.clone(), shutdown, period, None);
        let started = tokio::time::Instant::now();
        assert!(next_text(&mut body).await.starts_with(": keep-alive"));
        assert_eq!(
            started.elapsed(),
            period,
            "the first one, a period after the first wait"
        );
        // An event in between goes out at once and does not move the beat.
        tokio::time::sleep(Duration::from_secs(4)).await;
        s.push(&mcp_hub_protocol::Message::notification(
            "notifications/x",
            None,
        ));
        assert!(next_text(&mut body).await.contains("notifications/x"));
        assert_eq!(started.elapsed(), Duration::from_secs(14));
        assert!(next_text(&mut body).await.starts_with(": keep-alive"));
        assert_eq!(started.elapsed(), 2 * period);
        // The session's end ends the body.
        session.cancel();
        assert!(body.frame().await.is_none());
    }
}
