//! The transport-independent client session engine.
//!
//! One reader task per session consumes the wire's inbound channel and dispatches: responses to
//! the pending request they answer, progress to the request that asked for it, notifications to
//! the request they belong to or to the session's notification stream, and server-to-client
//! requests to the [`ServerRequestHandler`] (each in its own task, at most
//! [`MAX_SERVER_REQUESTS`] at once).
//!
//! The reader never waits on anything but the wire: everything it hands on goes through
//! `try_send` into bounded channels (dropping with a rate-limited warning when a consumer is
//! full), and what it has to send upstream (ping answers, refusals) goes through a bounded reply
//! queue drained by its own task. A slow consumer therefore cannot stall responses, and a
//! server that floods the hub cannot grow any queue without bound.
//!
//! What the server sends back is attributed to the downstream client that caused it (see
//! `attribution`): progress by its session-unique token, everything else by the request stream it
//! came on (Streamable HTTP) or, on single-channel wires, by the calls that could have caused it.
//! List-changed and resource-updated notifications describe the session, not a request, and
//! always go to the session stream. Inbound dispatch lives in `inbound`.

mod attribution;
mod inbound;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcp_hub_protocol::object::RawObject;
use mcp_hub_protocol::types::CancelledParams;
use mcp_hub_protocol::{Message, Notification, RawValue, Request, RequestId, methods};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::wire::{Wire, WireParts};
use crate::{
    CancelReason, RequestError, RequestOptions, Requester, ServerRequestHandler, TransportError,
};
use attribution::{Ghost, LogLimiter};

/// Capacity of the session notification stream.
pub(crate) const NOTIFICATION_CAPACITY: usize = 1024;
/// Server-to-client requests handled at once; more are refused with an error.
pub(crate) const MAX_SERVER_REQUESTS: usize = 32;
/// Messages the engine itself queues for sending (ping answers, refusals, cancellations).
const REPLY_CAPACITY: usize = 256;
/// At most one "dropped" warning per kind in this interval.
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Prefix of the progress tokens the engine sends upstream.
const TOKEN_PREFIX: &str = "hub-p-";

type Outcome = Result<Box<RawValue>, RequestError>;

struct Slot {
    tx: oneshot::Sender<Outcome>,
    related: Option<mpsc::Sender<Notification>>,
    requester: Option<Requester>,
    cancel_reason: Option<CancelReason>,
    /// Present when the caller asked for progress: only then can progress reset its timeout.
    progress: Option<Progress>,
}

/// A request's progress: the token sent upstream, the caller's own (verbatim JSON), and what
/// wakes the waiting caller when progress arrives.
struct Progress {
    token: Arc<str>,
    original: Box<RawValue>,
    heard: Arc<Notify>,
}

#[derive(Default)]
struct DropLog {
    count: u64,
    last: Option<Instant>,
}

impl DropLog {
    fn note(&mut self, server: &str, what: &str) {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|l| now.duration_since(l) >= DROP_WARN_INTERVAL)
        {
            tracing::warn!(
                server,
                dropped = self.count,
                "{what}: consumer is not keeping up, messages dropped"
            );
            self.count = 0;
            self.last = Some(now);
        }
    }
}

#[derive(Default)]
struct State {
    pending: crate::IdMap<i64, Slot>,
    /// Upstream progress token → pending request id.
    progress: HashMap<Arc<str>, i64>,
    /// Server-to-client requests being handled: id → (generation, task).
    server_requests: HashMap<RequestId, (u64, AbortHandle)>,
    /// Requests given up on (cancelled, timed out, abandoned) that the server may still be
    /// working on, oldest first.
    ghosts: VecDeque<Ghost>,
    /// Upstream log messages that reached no client and went to the hub's log.
    logs: LogLimiter,
    closed: bool,
    dropped_session: DropLog,
    dropped_related: DropLog,
    dropped_replies: DropLog,
}

/// The shared core of a session.
pub(crate) struct Engine {
    name: String,
    wire: Arc<dyn Wire>,
    state: Mutex<State>,
    next_id: AtomicI64,
    next_token: AtomicU64,
    next_generation: AtomicU64,
    default_timeout: Duration,
    abandoned_grace: Duration,
    replies: mpsc::Sender<Message>,
    closed: watch::Sender<Option<TransportError>>,
    close_requested: AtomicBool,
    server_request_slots: Arc<Semaphore>,
    /// The session notification stream, for what the hub itself has to announce there (a
    /// 2026-07-28 listen stream that was lost and is back). Weak: the stream ends with the
    /// reader, as before.
    session_notifications: mpsc::WeakSender<Notification>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.name)
            .field("kind", &self.wire.kind())
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the reader and reply tasks over an opened wire.
    pub(crate) fn start(
        parts: WireParts,
        handler: Arc<dyn ServerRequestHandler>,
        name: &str,
        default_timeout: Duration,
        abandoned_grace: Duration,
    ) -> (Arc<Engine>, mpsc::Receiver<Notification>) {
        let (reply_tx, reply_rx) = mpsc::channel(REPLY_CAPACITY);
        let (notif_tx, notif_rx) = mpsc::channel(NOTIFICATION_CAPACITY);
        let engine = Arc::new(Engine {
            name: name.to_owned(),
            wire: parts.wire,
            state: Mutex::new(State::default()),
            next_id: AtomicI64::new(0),
            next_token: AtomicU64::new(0),
            next_generation: AtomicU64::new(0),
            default_timeout,
            abandoned_grace,
            replies: reply_tx,
            closed: watch::channel(None).0,
            close_requested: AtomicBool::new(false),
            server_request_slots: Arc::new(Semaphore::new(MAX_SERVER_REQUESTS)),
            session_notifications: notif_tx.downgrade(),
        });
        tokio::spawn(reply_loop(engine.wire.clone(), reply_rx));
        let resolver: Arc<dyn crate::wire::Resolver> = engine.clone();
        parts.inbound.set_resolver(Arc::downgrade(&resolver));
        tokio::spawn(read_loop(engine.clone(), parts.inbound, notif_tx, handler));
        (engine, notif_rx)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters
        // more than losing the session, so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a notification of the hub's own on the session notification stream (dropped when
    /// the stream's consumer is full or gone, like the server's own).
    pub(crate) fn publish_own(&self, n: Notification) {
        if let Some(tx) = self.session_notifications.upgrade()
            && let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(n)
        {
            self.lock()
                .dropped_session
                .note(&self.name, "session notifications");
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn wire(&self) -> &Arc<dyn Wire> {
        &self.wire
    }

    /// Upstream log messages that reached no client (they went to the hub's log).
    pub(crate) fn unattributed_logs(&self) -> u64 {
        self.lock().logs.total
    }

    pub(crate) fn is_open(&self) -> bool {
        self.closed.borrow().is_none()
    }

    /// Why the session ended, once it has.
    pub(crate) fn closed_reason(&self) -> Option<TransportError> {
        self.closed.borrow().clone()
    }

    pub(crate) async fn closed(&self) -> TransportError {
        let mut rx = self.closed.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or(TransportError::Closed),
            // The sender lives as long as `self`; this cannot happen while we hold `&self`.
            Err(_) => TransportError::Closed,
        }
    }

    /// Sends a request and waits for its outcome. `cancellable` is false only for
    /// `initialize`, which must never be cancelled.
    pub(crate) async fn request(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
        options: RequestOptions,
        cancellable: bool,
    ) -> Outcome {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut params = params;
        let mut progress = None;
        let rewritten = params
            .as_deref()
            .filter(|p| p.get().contains("progressToken"))
            .and_then(|p| {
                let token: Arc<str> = Arc::from(format!(
                    "{TOKEN_PREFIX}{}",
                    self.next_token.fetch_add(1, Ordering::Relaxed) + 1
                ));
                rewrite_progress_token(p, &token).map(|(new, original)| (new, token, original))
            });
        if let Some((new, token, original)) = rewritten {
            params = Some(new);
            progress = Some(Progress {
                token,
                original,
                heard: Arc::new(Notify::new()),
            });
        }
        let heard = progress.as_ref().map(|p| p.heard.clone());
        let (tx, mut rx) = oneshot::channel();
        {
            let mut st = self.lock();
            if st.closed {
                drop(st);
                return Err(RequestError::Closed(self.closed_message()));
            }
            if let Some(p) = &progress {
                st.progress.insert(p.token.clone(), id);
            }
            st.pending.insert(
                id,
                Slot {
                    tx,
                    related: options.related,
                    requester: options.requester,
                    cancel_reason: options.cancel_reason,
                    progress,
                },
            );
        }
        let mut guard = PendingGuard {
            engine: self,
            id,
            cancellable,
            armed: true,
        };
        let msg = Message::Request(Request {
            id: RequestId::Number(id),
            method: method.to_owned(),
            params,
        });
        let timeout = options.timeout.unwrap_or(self.default_timeout);
        let start = Instant::now();
        let hard = start + options.max_total_timeout.unwrap_or(timeout * 10);
        let mut deadline = (start + timeout).min(hard);
        // Sending counts against the timeout: a child that stopped reading stdin (full pipe,
        // full queue) must not hang the caller.
        match tokio::time::timeout_at(deadline, self.wire.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                guard.armed = false;
                self.forget(id);
                return Err(RequestError::Transport(e));
            }
            Err(_) => {
                if let Some(slot) = self.forget(id) {
                    guard.armed = false;
                    if cancellable {
                        // Over HTTP the server may have the request already; elsewhere an
                        // unknown id in a cancellation is ignored.
                        self.give_up(id, slot, "request timed out before it could be sent");
                    }
                    return Err(RequestError::Timeout(start.elapsed()));
                }
                // Answered while the send was still finishing: the outcome is in `rx`.
            }
        }
        loop {
            tokio::select! {
                biased;
                outcome = &mut rx => {
                    guard.armed = false;
                    return outcome.unwrap_or_else(|_| Err(RequestError::Closed(self.closed_message())));
                }
                // Without a progress token nothing can arrive here.
                () = async {
                    match &heard {
                        Some(n) => n.notified().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if options.reset_timeout_on_progress {
                        deadline = (Instant::now() + timeout).min(hard);
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    if let Some(slot) = self.forget(id) {
                        guard.armed = false;
                        let elapsed = start.elapsed();
                        if cancellable {
                            self.give_up(id, slot, &format!("request timed out after {elapsed:?}"));
                        }
                        return Err(RequestError::Timeout(elapsed));
                    }
                    // The answer arrived at the deadline: it is already in `rx`.
                    deadline = hard.max(Instant::now()) + Duration::from_secs(3600);
                }
            }
        }
    }

    /// Sends a notification.
    pub(crate) async fn notify(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<(), TransportError> {
        if let Some(reason) = self.closed_reason() {
            return Err(reason);
        }
        self.wire
            .send(Message::Notification(Notification {
                method: method.to_owned(),
                params,
            }))
            .await
    }

    /// Closes the session: pending requests fail at once, then the wire is closed.
    pub(crate) async fn close(&self) {
        self.close_requested.store(true, Ordering::Relaxed);
        self.fail_all(TransportError::Closed);
        self.wire.close().await;
    }

    /// Like [`Engine::close`], from a context that cannot wait (a destructor).
    pub(crate) fn close_detached(self: &Arc<Self>) {
        if self.close_requested.swap(true, Ordering::Relaxed) {
            return;
        }
        self.fail_all(TransportError::Closed);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let wire = self.wire.clone();
            rt.spawn(async move { wire.close().await });
        }
    }

    fn closed_message(&self) -> String {
        self.closed_reason()
            .map_or_else(|| "session closed".to_owned(), |r| r.to_string())
    }

    /// Removes a pending request; its slot if it was still pending.
    fn forget(&self, id: i64) -> Option<Slot> {
        let mut st = self.lock();
        let slot = st.pending.remove(&id)?;
        if let Some(p) = &slot.progress {
            st.progress.remove(&p.token);
        }
        Some(slot)
    }

    /// A pending request the hub gives up on (`why`, unless its caller left a reason): the server
    /// is told, and the request stays possibly responsible for what the server sends for a grace
    /// period, since the server may not have seen the cancellation.
    fn give_up(&self, id: i64, slot: Slot, why: &str) {
        if let Some(requester) = slot.requester {
            self.lock().remember_ghost(Ghost {
                id,
                requester,
                related: slot.related.is_some(),
                until: Instant::now() + self.abandoned_grace,
            });
        }
        let reason = slot
            .cancel_reason
            .as_ref()
            .and_then(CancelReason::get)
            .unwrap_or(why)
            .to_owned();
        self.send_cancel(id, &reason);
    }

    fn send_cancel(&self, id: i64, reason: &str) {
        if !self.is_open() {
            return;
        }
        let params = CancelledParams {
            request_id: RequestId::Number(id),
            reason: Some(reason.to_owned()),
        };
        let Ok(params) = mcp_hub_protocol::to_raw(&params) else {
            return;
        };
        self.queue_reply(Message::Notification(Notification {
            method: methods::CANCELLED.to_owned(),
            params: Some(params),
        }));
    }

    fn queue_reply(&self, msg: Message) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.replies.try_send(msg) {
            self.lock()
                .dropped_replies
                .note(&self.name, "outgoing control messages");
        }
    }

    /// Ends the session: every pending request fails with `reason`, handlers are aborted.
    fn fail_all(&self, reason: TransportError) {
        let (pending, handlers) = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            st.progress.clear();
            st.ghosts.clear();
            (
                std::mem::take(&mut st.pending),
                std::mem::take(&mut st.server_requests),
            )
        };
        let message = reason.to_string();
        self.closed.send_replace(Some(reason));
        for (_, slot) in pending {
            let _ = slot.tx.send(Err(RequestError::Closed(message.clone())));
        }
        for (_, (_, task)) in handlers {
            task.abort();
        }
    }
}

/// Removes a pending request (and cancels it upstream) when the request future is dropped
/// before it finished.
struct PendingGuard<'a> {
    engine: &'a Engine,
    id: i64,
    cancellable: bool,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(slot) = self.engine.forget(self.id)
            && self.cancellable
        {
            self.engine
                .give_up(self.id, slot, "the request was abandoned by the client");
        }
    }
}

async fn reply_loop(wire: Arc<dyn Wire>, mut replies: mpsc::Receiver<Message>) {
    while let Some(msg) = replies.recv().await {
        if let Err(e) = wire.send(msg).await {
            tracing::debug!(error = %e, "could not send a control message upstream");
        }
    }
}

async fn read_loop(
    engine: Arc<Engine>,
    mut inbound: crate::wire::InboundRx,
    notifications: mpsc::Sender<Notification>,
    handler: Arc<dyn ServerRequestHandler>,
) {
    let reason = loop {
        match inbound.recv().await {
            Some(Ok(item)) => {
                engine.dispatch(item, &notifications, &handler);
                inbound.settled();
            }
            Some(Err(e)) => break e,
            None => break TransportError::Closed,
        }
    };
    let reason = if engine.close_requested.load(Ordering::Relaxed) {
        TransportError::Closed
    } else {
        reason
    };
    if !matches!(reason, TransportError::Closed) {
        tracing::warn!(server = %engine.name, %reason, "upstream connection lost");
    }
    engine.fail_all(reason);
}

/// Notifications about the session as a whole, which never belong to one request.
fn is_session_level(method: &str) -> bool {
    method.ends_with("/list_changed") || method == methods::RESOURCES_UPDATED
}

/// Replaces `_meta.progressToken` in request params with `token`; returns the new params and the
/// original token. Everything else is kept as written, in its order.
fn rewrite_progress_token(
    params: &RawValue,
    token: &str,
) -> Option<(Box<RawValue>, Box<RawValue>)> {
    if !params.get().contains("progressToken") {
        return None;
    }
    let top = RawObject::parse(params)?;
    let meta = RawObject::parse(top.get("_meta")?)?;
    let original = meta.get("progressToken")?;
    serde_json::from_str::<RequestId>(original.get()).ok()?;
    let meta = meta.with_str("progressToken", token);
    Some((top.with_raw("_meta", &meta), original.to_owned()))
}

#[cfg(test)]
mod tests;
