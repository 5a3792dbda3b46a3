//! The engine over a scripted in-memory wire.

mod attribution;
mod handshake;
mod timeouts;

use std::sync::atomic::AtomicUsize;

use mcp_hub_protocol::{ErrorCode, ErrorObject};
use serde_json::{Value, json};

use super::*;
use crate::wire::{Inbound, InboundTx};
use crate::{Attribution, ClientFeatures};

struct FakeWire {
    out: mpsc::Sender<Message>,
    inbound: Mutex<Option<InboundTx>>,
    closes: AtomicUsize,
    /// Plays Streamable HTTP (origins are authoritative) rather than stdio.
    exact: bool,
}

#[async_trait::async_trait]
impl Wire for FakeWire {
    async fn send(&self, msg: Message) -> Result<(), TransportError> {
        self.out
            .send(msg)
            .await
            .map_err(|_| TransportError::Exited {
                status: "peer gone".into(),
            })
    }

    async fn close(&self) {
        self.closes.fetch_add(1, Ordering::SeqCst);
        self.inbound.lock().unwrap().take();
    }

    fn kind(&self) -> &'static str {
        "fake"
    }

    fn exact_origins(&self) -> bool {
        self.exact
    }
}

/// The server's side of the fake wire.
struct Peer {
    sent: mpsc::Receiver<Message>,
    inbound: InboundTx,
    wire: Arc<FakeWire>,
}

impl Peer {
    async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(5), self.sent.recv())
            .await
            .expect("the engine sent nothing")
            .expect("wire closed")
    }

    async fn next_request(&mut self) -> Request {
        match self.next().await {
            Message::Request(r) => r,
            other => panic!("expected a request, got {other}"),
        }
    }

    async fn push(&self, msg: Value) {
        self.push_from(msg, None).await;
    }

    async fn push_from(&self, msg: Value, origin: Option<RequestId>) {
        let msg = Message::from_str(&msg.to_string()).unwrap();
        self.inbound
            .send(Ok(Inbound { msg, origin }))
            .await
            .unwrap();
    }

    async fn respond(&self, id: &RequestId, result: Value) {
        self.push(json!({"jsonrpc":"2.0","id":id.to_value(),"result":result}))
            .await;
    }

    fn nothing_sent(&mut self) -> bool {
        matches!(
            self.sent.try_recv(),
            Err(mpsc::error::TryRecvError::Empty | mpsc::error::TryRecvError::Disconnected)
        )
    }
}

/// Records the calls it gets and answers with a fixed result, or waits forever on
/// `never_answer`.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, Attribution)>>,
    dropped: Arc<AtomicUsize>,
}

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl ServerRequestHandler for Recorder {
    async fn handle(
        &self,
        request: Request,
        attribution: Attribution,
    ) -> Result<Box<RawValue>, ErrorObject> {
        self.calls
            .lock()
            .unwrap()
            .push((request.method.clone(), attribution));
        match request.method.as_str() {
            "never_answer" => {
                let _flag = DropFlag(self.dropped.clone());
                std::future::pending::<()>().await;
                unreachable!()
            }
            "fail" => Err(ErrorObject::new(ErrorCode(-1), "refused")),
            _ => Ok(RawValue::from_string(r#"{"roots":[]}"#.to_owned()).unwrap()),
        }
    }
}

fn setup_with(handler: Arc<dyn ServerRequestHandler>) -> (Arc<Engine>, NotificationRx, Peer) {
    setup_wire(handler, false)
}

/// A grace period long enough that no test outlives it by accident.
const GRACE: Duration = Duration::from_secs(30);

fn setup_wire(
    handler: Arc<dyn ServerRequestHandler>,
    exact: bool,
) -> (Arc<Engine>, NotificationRx, Peer) {
    let (out_tx, out_rx) = mpsc::channel(64);
    let (in_tx, in_rx) = crate::wire::inbound_channel();
    let wire = Arc::new(FakeWire {
        out: out_tx,
        inbound: Mutex::new(Some(in_tx.clone())),
        closes: AtomicUsize::new(0),
        exact,
    });
    let (engine, notifications) = Engine::start(
        WireParts {
            wire: wire.clone(),
            inbound: in_rx,
        },
        handler,
        "test",
        Duration::from_secs(10),
        GRACE,
    );
    (
        engine,
        notifications,
        Peer {
            sent: out_rx,
            inbound: in_tx,
            wire,
        },
    )
}

type NotificationRx = mpsc::Receiver<Notification>;

fn setup() -> (Arc<Engine>, NotificationRx, Peer) {
    setup_with(Arc::new(Recorder::default()))
}

fn raw(v: Value) -> Option<Box<RawValue>> {
    Some(mcp_hub_protocol::to_raw(&v).unwrap())
}

fn value(r: &RawValue) -> Value {
    serde_json::from_str(r.get()).unwrap()
}

fn params(n: &Notification) -> Value {
    value(n.params.as_deref().unwrap())
}

fn cancelled_id(msg: &Message) -> Option<RequestId> {
    match msg {
        Message::Notification(n) if n.method == methods::CANCELLED => {
            Some(n.params_as::<CancelledParams>().unwrap().request_id)
        }
        _ => None,
    }
}

#[tokio::test]
async fn responses_are_matched_to_their_requests_in_any_order() {
    let (engine, _n, mut peer) = setup();
    let e1 = engine.clone();
    let a =
        tokio::spawn(async move { e1.request("a", None, RequestOptions::default(), true).await });
    let first = peer.next_request().await;
    let e2 = engine.clone();
    let b =
        tokio::spawn(async move { e2.request("b", None, RequestOptions::default(), true).await });
    let second = peer.next_request().await;
    assert_ne!(first.id, second.id);
    assert!(matches!(first.id, RequestId::Number(_)));
    peer.respond(&second.id, json!({"who":"b"})).await;
    peer.push(json!({"jsonrpc":"2.0","id":first.id.to_value(),"error":{"code":-32602,"message":"nope","data":{"x":1}}}))
        .await;
    assert_eq!(value(&b.await.unwrap().unwrap()), json!({"who":"b"}));
    match a.await.unwrap() {
        Err(RequestError::Rpc(e)) => {
            assert_eq!(e.code, -32602);
            assert_eq!(e.message, "nope");
            assert_eq!(e.data.unwrap().get(), r#"{"x":1}"#);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn string_spelled_ids_are_tolerated_and_unknown_ids_ignored() {
    let (engine, _n, mut peer) = setup();
    let e = engine.clone();
    let call =
        tokio::spawn(async move { e.request("x", None, RequestOptions::default(), true).await });
    let req = peer.next_request().await;
    let RequestId::Number(n) = req.id else {
        panic!()
    };
    peer.respond(&RequestId::from("999999"), json!({"stray":true}))
        .await;
    peer.respond(&RequestId::from(n.to_string()), json!({"ok":true}))
        .await;
    assert_eq!(value(&call.await.unwrap().unwrap()), json!({"ok":true}));
}

#[tokio::test]
async fn dropping_a_request_cancels_it_but_never_initialize() {
    let (engine, _n, mut peer) = setup();
    let e = engine.clone();
    let call = tokio::spawn(async move {
        e.request("tools/call", None, RequestOptions::default(), true)
            .await
    });
    let req = peer.next_request().await;
    call.abort();
    let _ = call.await;
    assert_eq!(cancelled_id(&peer.next().await), Some(req.id));

    let e = engine.clone();
    let init = tokio::spawn(async move {
        e.request("initialize", None, RequestOptions::default(), false)
            .await
    });
    let _ = peer.next_request().await;
    init.abort();
    let _ = init.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(peer.nothing_sent());
}

#[tokio::test]
async fn progress_tokens_are_unique_and_unknown_tokens_dropped() {
    let (engine, mut general, mut peer) = setup();
    let mut tokens = Vec::new();
    let mut calls = Vec::new();
    let mut related = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = mpsc::channel(4);
        related.push(rx);
        let e = engine.clone();
        calls.push(tokio::spawn(async move {
            let opts = RequestOptions {
                related: Some(tx),
                ..Default::default()
            };
            // Both callers chose the same token; upstream must see two different ones.
            e.request(
                "tools/call",
                raw(json!({"name":"t","arguments":{"big":1e300},"_meta":{"progressToken":1,"other":"kept"}})),
                opts,
                true,
            )
            .await
        }));
        let req = peer.next_request().await;
        let p = value(req.params.as_deref().unwrap());
        assert_eq!(p["_meta"]["other"], json!("kept"));
        assert_eq!(p["arguments"]["big"], json!(1e300));
        tokens.push((req.id, p["_meta"]["progressToken"].clone()));
    }
    assert_ne!(tokens[0].1, tokens[1].1);
    peer.push(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":tokens[1].1,"progress":0.5,"total":1,"message":"half"}}))
        .await;
    peer.push(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"hub-p-unknown","progress":1}}))
        .await;
    peer.push(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}))
        .await;
    for (id, _) in &tokens {
        peer.respond(id, json!({})).await;
    }
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let got = related[1].recv().await.unwrap();
    assert_eq!(
        params(&got),
        json!({"progressToken":1,"progress":0.5,"total":1,"message":"half"})
    );
    // The slot is gone, so its sender is dropped: the first caller got nothing at all.
    assert!(related[0].recv().await.is_none());
    assert!(related[1].recv().await.is_none());
    assert!(general.try_recv().is_err());
}

#[tokio::test]
async fn upstream_cancellation_aborts_the_handler() {
    let handler = Arc::new(Recorder::default());
    let (_engine, _n, mut peer) = setup_with(handler.clone());
    peer.push(json!({"jsonrpc":"2.0","id":9,"method":"never_answer"}))
        .await;
    for _ in 0..100 {
        if !handler.calls.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    peer.push(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9,"reason":"user"}}))
        .await;
    for _ in 0..100 {
        if handler.dropped.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(handler.dropped.load(Ordering::SeqCst), 1);
    // A cancelled request gets no answer.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(peer.nothing_sent());
}

#[tokio::test]
async fn too_many_server_requests_are_refused_not_queued() {
    let handler = Arc::new(Recorder::default());
    let (_engine, _n, mut peer) = setup_with(handler.clone());
    for i in 0..MAX_SERVER_REQUESTS + 1 {
        peer.push(json!({"jsonrpc":"2.0","id":i,"method":"never_answer"}))
            .await;
    }
    match peer.next().await {
        Message::Error(e) => {
            assert_eq!(e.id, Some(RequestId::from(MAX_SERVER_REQUESTS as i64)));
            assert_eq!(e.error.code, ErrorCode::INTERNAL_ERROR.0);
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_dead_connection_fails_everything_at_once() {
    let (engine, mut general, mut peer) = setup();
    let mut calls = Vec::new();
    for _ in 0..3 {
        let e = engine.clone();
        calls.push(tokio::spawn(async move {
            e.request("x", None, RequestOptions::default(), true).await
        }));
        peer.next_request().await;
    }
    peer.inbound
        .send(Err(TransportError::Exited {
            status: "signal: 9 (SIGKILL)".into(),
        }))
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(1), engine.closed())
        .await
        .unwrap();
    assert!(matches!(reason, TransportError::Exited { .. }));
    for c in calls {
        match c.await.unwrap() {
            Err(RequestError::Closed(msg)) => assert!(msg.contains("SIGKILL"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(!engine.is_open());
    assert!(matches!(
        engine
            .request("late", None, RequestOptions::default(), true)
            .await,
        Err(RequestError::Closed(_))
    ));
    assert!(engine.notify("n", None).await.is_err());
    // The session stream ends.
    assert!(general.recv().await.is_none());
}

#[tokio::test]
async fn close_fails_pending_and_closes_the_wire() {
    let (engine, _n, mut peer) = setup();
    let e = engine.clone();
    let call =
        tokio::spawn(async move { e.request("x", None, RequestOptions::default(), true).await });
    peer.next_request().await;
    engine.close().await;
    assert!(matches!(call.await.unwrap(), Err(RequestError::Closed(_))));
    assert!(matches!(engine.closed().await, TransportError::Closed));
    assert_eq!(peer.wire.closes.load(Ordering::SeqCst), 1);
    // No cancellation is sent for requests failed by the close itself.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(peer.nothing_sent());
}

#[tokio::test]
async fn a_slow_notification_consumer_never_blocks_responses() {
    let (engine, mut general, mut peer) = setup();
    for i in 0..NOTIFICATION_CAPACITY + 50 {
        peer.push(json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":format!("x://{i}")}}))
            .await;
    }
    let e = engine.clone();
    let call =
        tokio::spawn(async move { e.request("x", None, RequestOptions::default(), true).await });
    let req = peer.next_request().await;
    peer.respond(&req.id, json!({"still":"alive"})).await;
    let got = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .expect("response blocked behind notifications")
        .unwrap()
        .unwrap();
    assert_eq!(value(&got), json!({"still":"alive"}));
    let mut n = 0;
    while general.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, NOTIFICATION_CAPACITY);
}

#[tokio::test]
async fn an_error_without_id_goes_to_the_only_pending_request() {
    let (engine, _n, mut peer) = setup();
    let e = engine.clone();
    let call =
        tokio::spawn(async move { e.request("x", None, RequestOptions::default(), true).await });
    peer.next_request().await;
    peer.push(json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}))
        .await;
    assert!(matches!(
        call.await.unwrap(),
        Err(RequestError::Rpc(e)) if e.code == -32700
    ));
}

#[test]
fn rewriting_keeps_every_other_value_verbatim() {
    let p = RawValue::from_string(
        r#"{"name":"n","arguments":{"x":1e400,"y":[1.50]},"_meta":{"progressToken":"t","k":{"a":1}}}"#
            .to_owned(),
    )
    .unwrap();
    let (new, original) = rewrite_progress_token(&p, "hub-p-1").unwrap();
    assert_eq!(original.get(), r#""t""#);
    // Members in their order, values as written.
    assert_eq!(
        new.get(),
        r#"{"name":"n","arguments":{"x":1e400,"y":[1.50]},"_meta":{"progressToken":"hub-p-1","k":{"a":1}}}"#
    );
    // No token, or a token of an invalid type: untouched.
    for s in [
        r#"{"name":"progressToken"}"#,
        r#"{"_meta":{"progressToken":null}}"#,
        r#"{"_meta":"progressToken"}"#,
    ] {
        let p = RawValue::from_string(s.to_owned()).unwrap();
        assert!(rewrite_progress_token(&p, "x").is_none(), "{s}");
    }
}
