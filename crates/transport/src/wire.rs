//! The seam between the session engine and the concrete transports (stdio, Streamable HTTP,
//! legacy SSE). A wire moves whole JSON-RPC messages; the engine does everything else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use mcp_hub_protocol::{Message, RequestId};
use tokio::sync::mpsc;

use crate::TransportError;

/// A message received from the server.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) msg: Message,
    /// The id of the client request on whose HTTP response stream this message arrived, when it
    /// came on such a stream (Streamable HTTP). `None` for stdio, the GET stream and legacy SSE.
    pub(crate) origin: Option<RequestId>,
}

/// What an inbound channel carries: a message, or the fatal error that ended the connection
/// (after which the channel closes).
pub(crate) type InboundItem = Result<Inbound, TransportError>;

/// Bound of every wire's inbound channel; a slow engine applies backpressure to the reader.
pub(crate) const INBOUND_CAPACITY: usize = 256;

/// Settles pending requests from a wire's own reader task (the engine implements it).
pub(crate) trait Resolver: Send + Sync {
    /// Hands a response (or an error response with an id) to the request it answers.
    fn resolve_response(&self, msg: Message);
}

/// What the sending and the receiving half of an inbound channel share.
#[derive(Default)]
struct Shortcut {
    /// Items sent into the channel that the engine has not finished dispatching.
    unsettled: AtomicU64,
    resolver: OnceLock<Weak<dyn Resolver>>,
}

/// The sending half of a wire's inbound channel.
///
/// A response that finds nothing before it in the channel is handed to its pending request by
/// the wire's reader task itself: the engine's reader would only have taken it out of the
/// channel and done the same, one task wake-up later. Anything queued before it (a progress
/// or log notification of the same call, a fatal error) must be dispatched first, so with
/// anything unsettled the response queues behind it like every other message.
#[derive(Clone)]
pub(crate) struct InboundTx {
    tx: mpsc::Sender<InboundItem>,
    shortcut: Arc<Shortcut>,
}

impl std::fmt::Debug for InboundTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundTx")
            .field(
                "unsettled",
                &self.shortcut.unsettled.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

/// The receiving half; the engine calls [`InboundRx::settled`] after dispatching each item.
pub(crate) struct InboundRx {
    rx: mpsc::Receiver<InboundItem>,
    shortcut: Arc<Shortcut>,
}

/// A bounded inbound channel ([`INBOUND_CAPACITY`]).
pub(crate) fn inbound_channel() -> (InboundTx, InboundRx) {
    let (tx, rx) = mpsc::channel(INBOUND_CAPACITY);
    let shortcut = Arc::new(Shortcut::default());
    (
        InboundTx {
            tx,
            shortcut: shortcut.clone(),
        },
        InboundRx { rx, shortcut },
    )
}

/// The channel's receiver is gone: nobody will read what follows.
#[derive(Debug)]
pub(crate) struct Gone;

impl InboundTx {
    /// Delivers one item, waiting while the channel is full.
    pub(crate) async fn send(&self, item: InboundItem) -> Result<(), Gone> {
        let item = match self.resolve_directly(item) {
            Ok(()) => return Ok(()),
            Err(item) => item,
        };
        let mut raised = Raised::new(&self.shortcut.unsettled, 1);
        self.tx.send(item).await.map_err(|_| Gone)?;
        // Queued: the engine lowers the count once it has dispatched the item.
        raised.keep();
        Ok(())
    }

    /// [`InboundTx::send`], giving up after `limit`.
    pub(crate) async fn send_timeout(
        &self,
        item: InboundItem,
        limit: std::time::Duration,
    ) -> Result<(), Gone> {
        tokio::time::timeout(limit, self.send(item))
            .await
            .map_err(|_| Gone)?
    }

    /// Delivers one item if there is room now.
    pub(crate) fn try_send(&self, item: InboundItem) -> Result<(), Gone> {
        let mut raised = Raised::new(&self.shortcut.unsettled, 1);
        self.tx.try_send(item).map_err(|_| Gone)?;
        raised.keep();
        Ok(())
    }

    fn resolve_directly(&self, item: InboundItem) -> Result<(), InboundItem> {
        // An error without id goes to the engine, which attributes it when it can.
        let is_answer = match &item {
            Ok(Inbound { msg, .. }) => match msg {
                Message::Response(_) => true,
                Message::Error(e) => e.id.is_some(),
                Message::Request(_) | Message::Notification(_) => false,
            },
            Err(_) => false,
        };
        // Acquire: whatever the engine did for the items before this one (a notification
        // put on the request's own channel) is visible before the request is settled.
        if !is_answer || self.shortcut.unsettled.load(Ordering::Acquire) != 0 {
            return Err(item);
        }
        let Some(resolver) = self.shortcut.resolver.get().and_then(Weak::upgrade) else {
            return Err(item);
        };
        if let Ok(inbound) = item {
            resolver.resolve_response(inbound.msg);
        }
        Ok(())
    }
}

/// A count raised by `unit` for something on its way into a queue, lowered again unless it got
/// there (a send that failed, or was dropped while waiting for room). Used for the inbound
/// channel's unsettled items and for stdio's queued lines.
pub(crate) struct Raised<'a> {
    count: &'a AtomicU64,
    unit: u64,
    armed: bool,
}

impl<'a> Raised<'a> {
    pub(crate) fn new(count: &'a AtomicU64, unit: u64) -> Self {
        count.fetch_add(unit, Ordering::AcqRel);
        Raised {
            count,
            unit,
            armed: true,
        }
    }

    /// It got there: whoever takes it out lowers the count.
    pub(crate) fn keep(&mut self) {
        self.armed = false;
    }
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.count.fetch_sub(self.unit, Ordering::AcqRel);
        }
    }
}

impl InboundRx {
    /// Lets the wires settle responses directly from now on.
    pub(crate) fn set_resolver(&self, resolver: Weak<dyn Resolver>) {
        let _ = self.shortcut.resolver.set(resolver);
    }

    pub(crate) async fn recv(&mut self) -> Option<InboundItem> {
        self.rx.recv().await
    }

    /// The item last received has been dispatched completely.
    pub(crate) fn settled(&self) {
        self.shortcut.unsettled.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One open connection to a server, as the engine sees it.
#[async_trait::async_trait]
pub(crate) trait Wire: Send + Sync + 'static {
    /// Sends one message. Must not wait for the answer to a request: for HTTP, what of the
    /// POST's response (JSON or SSE) has arrived with its head is read here, the rest by a task,
    /// and what it carries goes into the inbound channel with `origin` set. Concurrent calls
    /// must be allowed.
    ///
    /// An HTTP status the transport cannot handle itself is reported as
    /// [`TransportError::HttpStatus`], so the engine can fall back from Streamable HTTP to legacy
    /// SSE when the `initialize` POST answers 400, 404 or 405.
    async fn send(&self, msg: Message) -> Result<(), TransportError>;

    /// Closes the connection: HTTP DELETE of the session; stdio: close stdin, wait, SIGTERM the
    /// process group, wait, SIGKILL. Idempotent. The inbound channel ends afterwards.
    async fn close(&self);

    /// `stdio`, `streamable-http` or `sse`.
    fn kind(&self) -> &'static str;

    /// The child's process id (stdio only).
    fn pid(&self) -> Option<u32> {
        None
    }

    /// Whether [`Inbound::origin`] is authoritative: a message without one then came on a
    /// stream that belongs to no request (Streamable HTTP's GET stream). On a single-channel wire
    /// (stdio, legacy SSE) nothing says which request a message belongs to.
    fn exact_origins(&self) -> bool {
        false
    }
}

/// A freshly opened wire and its inbound messages.
pub(crate) struct WireParts {
    pub(crate) wire: Arc<dyn Wire>,
    pub(crate) inbound: InboundRx,
}

#[cfg(test)]
mod tests {
    use super::*;

    use mcp_hub_protocol::{ErrorCode, ErrorObject, Notification};

    /// Records what reaches it directly.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<Message>>);

    impl Resolver for Recorder {
        fn resolve_response(&self, msg: Message) {
            self.0.lock().unwrap().push(msg);
        }
    }

    fn response(id: i64) -> InboundItem {
        Ok(Inbound {
            msg: Message::response(RequestId::Number(id), mcp_hub_protocol::empty_object()),
            origin: None,
        })
    }

    fn notification() -> InboundItem {
        Ok(Inbound {
            msg: Message::Notification(Notification {
                method: "notifications/progress".into(),
                params: None,
            }),
            origin: None,
        })
    }

    fn setup() -> (InboundTx, InboundRx, Arc<Recorder>) {
        let (tx, rx) = inbound_channel();
        let recorder = Arc::new(Recorder::default());
        let resolver: Arc<dyn Resolver> = recorder.clone();
        rx.set_resolver(Arc::downgrade(&resolver));
        (tx, rx, recorder)
    }

    #[tokio::test]
    async fn a_response_with_nothing_before_it_is_settled_by_the_sender() {
        let (tx, mut rx, recorder) = setup();
        tx.send(response(1)).await.unwrap();
        let error = Ok(Inbound {
            msg: Message::error(
                Some(RequestId::Number(2)),
                ErrorObject::new(ErrorCode::INTERNAL_ERROR, "no"),
            ),
            origin: None,
        });
        tx.send(error).await.unwrap();
        assert_eq!(recorder.0.lock().unwrap().len(), 2);
        drop(tx);
        assert!(
            rx.recv().await.is_none(),
            "nothing went through the channel"
        );
    }

    #[tokio::test]
    async fn a_response_behind_an_undispatched_message_waits_its_turn() {
        let (tx, mut rx, recorder) = setup();
        tx.send(notification()).await.unwrap();
        tx.send(response(1)).await.unwrap();
        assert!(recorder.0.lock().unwrap().is_empty(), "must not overtake");
        // Taken out of the channel but not yet dispatched: still in the way.
        let first = rx.recv().await.unwrap().unwrap();
        assert!(first.msg.method().is_some());
        tx.send(response(2)).await.unwrap();
        assert!(recorder.0.lock().unwrap().is_empty(), "must not overtake");
        rx.settled();
        assert_eq!(
            rx.recv().await.unwrap().unwrap().msg.id(),
            Some(&RequestId::Number(1))
        );
        rx.settled();
        assert_eq!(
            rx.recv().await.unwrap().unwrap().msg.id(),
            Some(&RequestId::Number(2))
        );
        rx.settled();
        // All dispatched: the next one goes straight to its request again.
        tx.send(response(3)).await.unwrap();
        assert_eq!(recorder.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_error_item_and_an_anonymous_error_take_the_channel() {
        let (tx, mut rx, recorder) = setup();
        let anonymous = Ok(Inbound {
            msg: Message::error(None, ErrorObject::new(ErrorCode::PARSE_ERROR, "?")),
            origin: None,
        });
        tx.send(anonymous).await.unwrap();
        assert!(rx.recv().await.is_some());
        rx.settled();
        tx.send(Err(TransportError::Closed)).await.unwrap();
        tx.send(response(1)).await.unwrap();
        assert!(recorder.0.lock().unwrap().is_empty());
        assert!(matches!(rx.recv().await, Some(Err(TransportError::Closed))));
    }

    #[tokio::test]
    async fn a_send_given_up_while_the_channel_is_full_does_not_block_the_shortcut() {
        let (tx, mut rx, recorder) = setup();
        for _ in 0..INBOUND_CAPACITY {
            tx.try_send(notification()).unwrap();
        }
        assert!(tx.try_send(notification()).is_err(), "full");
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            tx.send(notification()),
        )
        .await;
        assert!(waiting.is_err(), "the channel is full");
        for _ in 0..INBOUND_CAPACITY {
            rx.recv().await.unwrap().unwrap();
            rx.settled();
        }
        tx.send(response(1)).await.unwrap();
        assert_eq!(
            recorder.0.lock().unwrap().len(),
            1,
            "the abandoned sends left no count behind"
        );
    }

    #[tokio::test]
    async fn without_a_resolver_everything_takes_the_channel() {
        let (tx, mut rx) = inbound_channel();
        tx.send(response(1)).await.unwrap();
        assert!(rx.recv().await.unwrap().is_ok());
    }
}
