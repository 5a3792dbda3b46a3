//! Attribution of server messages to downstream clients: exact by stream, sound by candidates,
//! and never a guess between two clients.

use super::*;

const SAMPLING: ClientFeatures = ClientFeatures {
    sampling: true,
    elicitation: false,
    roots: false,
};

fn requester(session: u64, call: u64, features: ClientFeatures) -> Requester {
    Requester {
        session,
        call,
        features,
    }
}

/// A call in flight for `who`, with its related channel and its cancel-reason cell.
struct Call {
    id: RequestId,
    related: mpsc::Receiver<Notification>,
    reason: CancelReason,
    task: tokio::task::JoinHandle<Outcome>,
}

async fn start_call(engine: &Arc<Engine>, peer: &mut Peer, who: Option<Requester>) -> Call {
    start_call_for(engine, peer, who, Duration::from_secs(3600)).await
}

async fn start_call_for(
    engine: &Arc<Engine>,
    peer: &mut Peer,
    who: Option<Requester>,
    timeout: Duration,
) -> Call {
    let (tx, related) = mpsc::channel(16);
    let reason = CancelReason::new();
    let opts = RequestOptions {
        timeout: Some(timeout),
        related: Some(tx),
        requester: who,
        cancel_reason: Some(reason.clone()),
        ..Default::default()
    };
    let e = engine.clone();
    let task = tokio::spawn(async move { e.request("tools/call", None, opts, true).await });
    let id = peer.next_request().await.id;
    Call {
        id,
        related,
        reason,
        task,
    }
}

fn log(data: &str) -> Value {
    json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":data}})
}

/// Sends a server request and returns the attribution the handler saw.
async fn ask(peer: &mut Peer, handler: &Recorder, id: &str, method: &str) -> Attribution {
    peer.push(json!({"jsonrpc":"2.0","id":id,"method":method}))
        .await;
    // The handler answers at once; its answer going out means it has recorded the call.
    let answer = peer.next().await;
    assert_eq!(answer.id(), Some(&RequestId::from(id)), "{answer}");
    let calls = handler.calls.lock().unwrap();
    calls.last().expect("the handler was called").1
}

/// Cancels a call the way a client does: reason first, then the future goes away.
async fn cancel(call: Call, peer: &mut Peer, why: &str) -> RequestId {
    call.reason.set(why);
    call.task.abort();
    let _ = call.task.await;
    let msg = peer.next().await;
    let Message::Notification(n) = &msg else {
        panic!("expected a cancellation, got {msg}")
    };
    assert_eq!(n.method, methods::CANCELLED);
    assert_eq!(
        params(n)["reason"],
        why,
        "the client's own reason goes upstream"
    );
    assert_eq!(cancelled_id(&msg).as_ref(), Some(&call.id));
    call.id
}

#[tokio::test]
async fn one_session_in_flight_gets_its_logs_and_requests() {
    let handler = Arc::new(Recorder::default());
    let (engine, mut general, mut peer) = setup_with(handler.clone());
    let a = requester(1, 10, SAMPLING);
    let mut older = start_call(&engine, &mut peer, Some(a)).await;
    let a2 = requester(1, 11, SAMPLING);
    let mut newer = start_call(&engine, &mut peer, Some(a2)).await;
    peer.push(log("x")).await;
    peer.push(json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}))
        .await;
    // Two calls of the same session: the session is certain, its newest call carries it.
    assert_eq!(
        ask(&mut peer, &handler, "s1", "sampling/createMessage").await,
        Attribution::Inferred(a2)
    );
    assert_eq!(
        newer.related.recv().await.unwrap().method,
        "notifications/message"
    );
    assert_eq!(
        general.recv().await.unwrap().method,
        "notifications/tools/list_changed"
    );
    assert!(older.related.try_recv().is_err());
    for c in [&older, &newer] {
        peer.respond(&c.id, json!({})).await;
    }
    older.task.await.unwrap().unwrap();
    newer.task.await.unwrap().unwrap();
    assert_eq!(engine.unattributed_logs(), 0);
}

#[tokio::test]
async fn two_sessions_in_flight_are_never_guessed_between() {
    let handler = Arc::new(Recorder::default());
    let (engine, mut general, mut peer) = setup_with(handler.clone());
    let a = requester(1, 10, SAMPLING);
    let b = requester(2, 20, SAMPLING);
    let mut ca = start_call(&engine, &mut peer, Some(a)).await;
    let mut cb = start_call(&engine, &mut peer, Some(b)).await;
    peer.push(log("whose?")).await;
    assert_eq!(
        ask(&mut peer, &handler, "s1", "sampling/createMessage").await,
        Attribution::Ambiguous
    );
    // Neither call, nor the session stream, got the log: it went to the hub's log.
    assert!(ca.related.try_recv().is_err());
    assert!(cb.related.try_recv().is_err());
    assert!(general.try_recv().is_err());
    assert_eq!(engine.unattributed_logs(), 1);
    for c in [&ca, &cb] {
        peer.respond(&c.id, json!({})).await;
    }
    ca.task.await.unwrap().unwrap();
    cb.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn only_clients_that_can_answer_are_candidates() {
    let handler = Arc::new(Recorder::default());
    let (engine, _general, mut peer) = setup_with(handler.clone());
    // A cannot sample and has a slow call; B can and calls a sampling tool.
    let a = requester(1, 10, ClientFeatures::default());
    let b = requester(2, 20, SAMPLING);
    let ca = start_call(&engine, &mut peer, Some(a)).await;
    let cb = start_call(&engine, &mut peer, Some(b)).await;
    assert_eq!(
        ask(&mut peer, &handler, "s1", "sampling/createMessage").await,
        Attribution::Inferred(b)
    );
    // Nobody in flight can elicit.
    assert_eq!(
        ask(&mut peer, &handler, "s2", "elicitation/create").await,
        Attribution::Unattributed
    );
    for c in [&ca, &cb] {
        peer.respond(&c.id, json!({})).await;
    }
    ca.task.await.unwrap().unwrap();
    cb.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_cancelled_call_stays_responsible_until_answered() {
    let handler = Arc::new(Recorder::default());
    let (engine, mut general, mut peer) = setup_with(handler.clone());
    let a = requester(1, 10, SAMPLING);
    let b = requester(2, 20, SAMPLING);
    let ca = start_call(&engine, &mut peer, Some(a)).await;
    let a_id = cancel(ca, &mut peer, "user pressed stop").await;
    // The server ignores the cancellation and asks for A's sampling while B has the only call
    // in flight: it must not reach B.
    let mut cb = start_call(&engine, &mut peer, Some(b)).await;
    assert_eq!(
        ask(&mut peer, &handler, "s1", "sampling/createMessage").await,
        Attribution::Ambiguous
    );
    peer.push(log("from A's work")).await;
    // Nothing is delivered anywhere while it is ambiguous.
    assert_eq!(
        ask(&mut peer, &handler, "s2", "roots/list").await,
        Attribution::Unattributed,
        "nobody in flight declared roots"
    );
    assert!(cb.related.try_recv().is_err());
    assert!(general.try_recv().is_err());
    // The server finally answers A's request: it is done with it, so B is the only candidate.
    peer.respond(&a_id, json!({})).await;
    assert_eq!(
        ask(&mut peer, &handler, "s3", "sampling/createMessage").await,
        Attribution::Inferred(b)
    );
    peer.respond(&cb.id, json!({})).await;
    cb.task.await.unwrap().unwrap();
    // A alone: what comes now for A is known to be A's, and abandoned.
    let ca = start_call(&engine, &mut peer, Some(a)).await;
    cancel(ca, &mut peer, "again").await;
    assert_eq!(
        ask(&mut peer, &handler, "s4", "sampling/createMessage").await,
        Attribution::Abandoned(a)
    );
}

#[tokio::test(start_paused = true)]
async fn the_grace_period_ends_a_silent_cancellation() {
    let handler = Arc::new(Recorder::default());
    let (engine, _general, mut peer) = setup_with(handler.clone());
    let a = requester(1, 10, SAMPLING);
    let b = requester(2, 20, SAMPLING);
    let ca = start_call(&engine, &mut peer, Some(a)).await;
    cancel(ca, &mut peer, "stop").await;
    let cb = start_call(&engine, &mut peer, Some(b)).await;
    assert_eq!(
        ask(&mut peer, &handler, "s1", "sampling/createMessage").await,
        Attribution::Ambiguous
    );
    tokio::time::advance(GRACE + Duration::from_millis(1)).await;
    assert_eq!(
        ask(&mut peer, &handler, "s2", "sampling/createMessage").await,
        Attribution::Inferred(b)
    );
    peer.respond(&cb.id, json!({})).await;
    cb.task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_call_stays_responsible_too() {
    let handler = Arc::new(Recorder::default());
    let (engine, _general, mut peer) = setup_with(handler.clone());
    let a = requester(1, 10, SAMPLING);
    let ca = start_call_for(&engine, &mut peer, Some(a), Duration::from_secs(10)).await;
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(matches!(
        ca.task.await.unwrap(),
        Err(RequestError::Timeout(_))
    ));
    assert!(cancelled_id(&peer.next().await).is_some());
    let b = requester(2, 20, SAMPLING);
    let cb = start_call(&engine, &mut peer, Some(b)).await;
    assert_eq!(
        ask(&mut peer, &handler, "s1", "sampling/createMessage").await,
        Attribution::Ambiguous
    );
    peer.respond(&cb.id, json!({})).await;
    cb.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_hubs_own_requests_are_internal() {
    let handler = Arc::new(Recorder::default());
    let (engine, mut general, mut peer) = setup_with(handler.clone());
    assert_eq!(
        ask(&mut peer, &handler, "s0", "roots/list").await,
        Attribution::Unattributed
    );
    // Nothing was caused by a client: the log is published for the consumer's own rules.
    peer.push(log("startup")).await;
    assert_eq!(
        general.recv().await.unwrap().method,
        "notifications/message"
    );
    // The hub's own request that takes notifications (no downstream requester) gets its logs,
    // but never a client's request.
    let mut internal = start_call(&engine, &mut peer, None).await;
    assert_eq!(
        ask(&mut peer, &handler, "s1", "roots/list").await,
        Attribution::Internal
    );
    peer.push(log("while listing")).await;
    // With a client's call in flight as well, a log could be either's: nobody gets it.
    let a = requester(1, 10, SAMPLING);
    let mut ca = start_call(&engine, &mut peer, Some(a)).await;
    peer.push(log("whose?")).await;
    for c in [&internal, &ca] {
        peer.respond(&c.id, json!({})).await;
    }
    internal.task.await.unwrap().unwrap();
    ca.task.await.unwrap().unwrap();
    assert_eq!(
        internal.related.recv().await.unwrap().method,
        "notifications/message"
    );
    assert!(internal.related.try_recv().is_err());
    assert!(ca.related.try_recv().is_err());
    // A request of the hub's that takes no notifications: the log is nobody's, published for
    // the consumer's own rules.
    let e = engine.clone();
    let plain = tokio::spawn(async move {
        e.request("tools/list", None, RequestOptions::default(), true)
            .await
    });
    let plain_id = peer.next_request().await.id;
    peer.push(log("during a list")).await;
    peer.respond(&plain_id, json!({})).await;
    plain.await.unwrap().unwrap();
    assert_eq!(
        general.recv().await.unwrap().method,
        "notifications/message",
        "no client's call caused it either"
    );
    assert_eq!(engine.unattributed_logs(), 3);
}

#[tokio::test]
async fn streams_attribute_exactly_and_the_get_stream_never() {
    let handler = Arc::new(Recorder::default());
    let (engine, mut general, mut peer) = setup_wire(handler.clone(), true);
    let a = requester(1, 10, SAMPLING);
    let b = requester(2, 20, SAMPLING);
    let mut ca = start_call(&engine, &mut peer, Some(a)).await;
    let mut cb = start_call(&engine, &mut peer, Some(b)).await;
    let internal = start_call(&engine, &mut peer, None).await;
    peer.push_from(
        json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage"}),
        Some(cb.id.clone()),
    )
    .await;
    peer.next().await;
    peer.push_from(log("a"), Some(ca.id.clone())).await;
    peer.push_from(
        json!({"jsonrpc":"2.0","id":"s2","method":"roots/list"}),
        Some(internal.id.clone()),
    )
    .await;
    peer.next().await;
    // On the standalone GET stream, even a single candidate is no reason to guess.
    peer.push(json!({"jsonrpc":"2.0","id":"s3","method":"sampling/createMessage"}))
        .await;
    peer.next().await;
    assert_eq!(
        ca.related.recv().await.unwrap().method,
        "notifications/message"
    );
    assert!(cb.related.try_recv().is_err());
    let a_id = ca.id.clone();
    cancel(ca, &mut peer, "stop").await;
    peer.push_from(
        json!({"jsonrpc":"2.0","id":"s4","method":"sampling/createMessage"}),
        Some(a_id.clone()),
    )
    .await;
    peer.next().await;
    assert_eq!(
        handler
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(_, a)| *a)
            .collect::<Vec<_>>(),
        vec![
            Attribution::Exact(b),
            Attribution::Internal,
            Attribution::Unattributed,
            Attribution::Abandoned(a),
        ]
    );
    for c in [&cb, &internal] {
        peer.respond(&c.id, json!({})).await;
    }
    assert!(general.try_recv().is_err());
}
