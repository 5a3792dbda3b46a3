//! Deadlines: a request times out (and is cancelled upstream), progress moves its deadline up to
//! the hard maximum only when asked to, and a send that cannot complete still times out.

use super::*;

#[tokio::test(start_paused = true)]
async fn timeout_cancels_upstream() {
    let (engine, _n, mut peer) = setup();
    let e = engine.clone();
    let call = tokio::spawn(async move {
        let opts = RequestOptions {
            timeout: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        e.request("slow", None, opts, true).await
    });
    let req = peer.next_request().await;
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(err, RequestError::Timeout(d) if d >= Duration::from_secs(3) && d < Duration::from_secs(4)),
        "{err:?}"
    );
    assert_eq!(cancelled_id(&peer.next().await), Some(req.id.clone()));
    // A late answer is ignored and the session stays usable.
    peer.respond(&req.id, json!({})).await;
    let e = engine.clone();
    let next = tokio::spawn(async move {
        e.request("fast", None, RequestOptions::default(), true)
            .await
    });
    let req2 = peer.next_request().await;
    peer.respond(&req2.id, json!({"n":2})).await;
    assert_eq!(value(&next.await.unwrap().unwrap()), json!({"n":2}));
    assert!(engine.is_open());
}

#[tokio::test(start_paused = true)]
async fn progress_resets_the_timeout_up_to_the_hard_maximum() {
    let (engine, _n, mut peer) = setup();
    let (rel_tx, mut rel_rx) = mpsc::channel(16);
    let e = engine.clone();
    let call = tokio::spawn(async move {
        let opts = RequestOptions {
            timeout: Some(Duration::from_secs(2)),
            reset_timeout_on_progress: true,
            max_total_timeout: Some(Duration::from_secs(5)),
            related: Some(rel_tx),
            ..Default::default()
        };
        e.request(
            "tools/call",
            raw(json!({"name":"long","_meta":{"progressToken":"mine"}})),
            opts,
            true,
        )
        .await
    });
    let req = peer.next_request().await;
    let token = value(req.params.as_deref().unwrap())["_meta"]["progressToken"].clone();
    assert_ne!(token, json!("mine"));
    // Progress every 1.5 s keeps the request alive past its 2 s timeout ...
    for i in 1..=5 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if call.is_finished() {
            break;
        }
        peer.push(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":token,"progress":i}}))
            .await;
    }
    // ... but not past the 5 s hard maximum.
    let err = call.await.unwrap().unwrap_err();
    let RequestError::Timeout(elapsed) = err else {
        panic!("{err:?}")
    };
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_millis(5500),
        "{elapsed:?}"
    );
    // The caller saw the progress with its own token.
    let first = rel_rx.recv().await.unwrap();
    assert_eq!(params(&first)["progressToken"], json!("mine"));
    assert_eq!(params(&first)["progress"], json!(1));
    assert_eq!(cancelled_id(&peer.next().await), Some(req.id));
}

#[tokio::test(start_paused = true)]
async fn without_reset_progress_does_not_extend_the_timeout() {
    let (engine, _n, mut peer) = setup();
    let e = engine.clone();
    let call = tokio::spawn(async move {
        let opts = RequestOptions {
            timeout: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        e.request("x", raw(json!({"_meta":{"progressToken":7}})), opts, true)
            .await
    });
    let req = peer.next_request().await;
    let token = value(req.params.as_deref().unwrap())["_meta"]["progressToken"].clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    peer.push(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":token,"progress":1}}))
        .await;
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(err, RequestError::Timeout(d) if d < Duration::from_millis(2100)),
        "{err:?}"
    );
}

/// A wire whose sends never complete, like a child that stopped reading its stdin.
struct StuckWire;

#[async_trait::async_trait]
impl Wire for StuckWire {
    async fn send(&self, _msg: Message) -> Result<(), TransportError> {
        std::future::pending().await
    }

    async fn close(&self) {}

    fn kind(&self) -> &'static str {
        "stuck"
    }
}

#[tokio::test(start_paused = true)]
async fn a_send_that_cannot_complete_still_times_out() {
    let (_in_tx, in_rx) = crate::wire::inbound_channel();
    let (engine, _n) = Engine::start(
        WireParts {
            wire: Arc::new(StuckWire),
            inbound: in_rx,
        },
        Arc::new(Recorder::default()),
        "stuck",
        Duration::from_secs(1),
        GRACE,
    );
    let err = engine
        .request("x", None, RequestOptions::default(), true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Timeout(d) if d == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(engine.lock().pending.is_empty());
}
