//! The handshake, over the same fake wire.

use super::*;

async fn handshake_with(answer: Value) -> Result<crate::ClientSession, TransportError> {
    let (out_tx, mut out_rx) = mpsc::channel(8);
    let (in_tx, in_rx) = crate::wire::inbound_channel();
    let wire = Arc::new(FakeWire {
        out: out_tx,
        inbound: Mutex::new(Some(in_tx.clone())),
        closes: AtomicUsize::new(0),
        exact: false,
    });
    let server = tokio::spawn(async move {
        let Some(Message::Request(init)) = out_rx.recv().await else {
            panic!("no initialize")
        };
        assert_eq!(init.method, "initialize");
        let p: Value = serde_json::from_str(init.params.unwrap().get()).unwrap();
        assert_eq!(p["protocolVersion"], json!("2025-11-25"));
        assert_eq!(p["clientInfo"]["name"], json!("mcp-hub"));
        assert_eq!(p["capabilities"], json!({"roots":{}}));
        let mut answer = answer;
        answer["jsonrpc"] = json!("2.0");
        answer["id"] = init.id.to_value();
        let msg = Message::from_str(&answer.to_string()).unwrap();
        in_tx.send(Ok(Inbound { msg, origin: None })).await.unwrap();
        // What follows a successful handshake (nothing follows a failed one).
        tokio::time::timeout(Duration::from_millis(500), out_rx.recv())
            .await
            .ok()
            .flatten()
    });
    let mut options = crate::SessionOptions::default();
    options.capabilities.insert("roots".into(), json!({}));
    let result = crate::connect::establish(
        WireParts {
            wire: wire.clone(),
            inbound: in_rx,
        },
        &options,
        Arc::new(Recorder::default()),
        "t",
    )
    .await;
    let after = server.await.unwrap();
    match &result {
        Ok(_) => {
            assert!(
                matches!(after, Some(Message::Notification(n)) if n.method == "notifications/initialized")
            );
            assert_eq!(wire.closes.load(Ordering::SeqCst), 0);
        }
        Err(_) => assert_eq!(wire.closes.load(Ordering::SeqCst), 1),
    }
    result.map(|(s, _)| s)
}

#[tokio::test]
async fn handshake_accepts_every_supported_version() {
    for v in mcp_hub_protocol::SUPPORTED_PROTOCOL_VERSIONS {
        let s = handshake_with(json!({"result":{"protocolVersion":v,"capabilities":{"tools":{}},"serverInfo":{"name":"srv","version":"1"}}}))
            .await
            .unwrap();
        assert_eq!(s.protocol_version(), *v);
        assert_eq!(s.initialize_result().server_info.name, "srv");
        assert_eq!(s.transport_kind(), "fake");
    }
}

#[tokio::test]
async fn handshake_rejects_unknown_and_modern_versions() {
    let e = handshake_with(json!({"result":{"protocolVersion":"2099-01-01","capabilities":{},"serverInfo":{"name":"s"}}}))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::UnsupportedVersion(v) if v == "2099-01-01"));
    let e = handshake_with(json!({"result":{"protocolVersion":"2026-07-28","capabilities":{},"serverInfo":{"name":"s"}}}))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::ModernOnly));
    let e = handshake_with(json!({"result":{"capabilities":{}}}))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Initialize(_)), "{e:?}");
}

#[tokio::test]
async fn handshake_recognises_modern_only_servers() {
    for error in [
        json!({"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2026-07-28"],"requested":"2025-11-25"}}),
        json!({"code":-32601,"message":"Method not found: initialize"}),
        json!({"code":-32602,"message":"Missing _meta","data":{"supported":["2026-07-28"]}}),
    ] {
        let e = handshake_with(json!({ "error": error })).await.unwrap_err();
        assert!(matches!(e, TransportError::ModernOnly), "{e:?}");
    }
    let e = handshake_with(json!({"error":{"code":-32603,"message":"boom"}}))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Initialize(m) if m.contains("boom")));
}
