//! Against the real `@modelcontextprotocol/server-everything` over stdio.

use std::time::{Duration, Instant};

use mcp_hub_transport::{ClientSession, RequestError, RequestOptions, TransportError};
use serde_json::json;
use tokio::sync::mpsc;

use crate::support::*;

#[tokio::test]
async fn everything_end_to_end() {
    let Some(spec) = everything() else { return };
    let handler = handler();
    let (session, mut notifications) = ClientSession::connect(
        mcp_hub_transport::TransportSpec::Stdio(spec),
        options(),
        handler.clone(),
    )
    .await
    .expect("connect to server-everything");
    let pid = session.pid().expect("a stdio session has a pid");
    assert_eq!(session.transport_kind(), "stdio");
    assert_eq!(session.protocol_version(), "2025-11-25");
    assert_eq!(
        session.initialize_result().server_info.name,
        "mcp-servers/everything"
    );

    // The tools that depend on client capabilities are registered after `initialized`, which
    // the server announces with list_changed.
    let changed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(n) = notifications.recv().await {
            if n.method == "notifications/tools/list_changed" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(changed, Ok(true), "no tools/list_changed");

    let tools = request(&session, "tools/list", json!({})).await.unwrap();
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for want in [
        "echo",
        "get-sum",
        "trigger-long-running-operation",
        "trigger-sampling-request",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }

    let echo = call_tool(
        &session,
        "echo",
        json!({"message": "hi"}),
        RequestOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(text(&echo), "Echo: hi");
    let sum = call_tool(
        &session,
        "get-sum",
        json!({"a": 2, "b": 40}),
        RequestOptions::default(),
    )
    .await
    .unwrap();
    assert!(text(&sum).contains("42"), "{sum}");

    // Progress reaches the caller with the caller's own token.
    let (tx, mut rx) = mpsc::channel(16);
    let opts = RequestOptions {
        related: Some(tx),
        requester: requester(7),
        ..RequestOptions::default()
    };
    let params = json!({
        "name": "trigger-long-running-operation",
        "arguments": {"duration": 0.6, "steps": 3},
        "_meta": {"progressToken": "caller-token"}
    });
    let done = session
        .request("tools/call", Some(raw(params)), opts)
        .await
        .unwrap();
    assert!(text(&value(&done)).contains("completed"), "{}", done.get());
    let mut progress = Vec::new();
    while let Some(n) = rx.recv().await {
        if n.method == "notifications/progress" {
            progress.push(value(n.params.as_deref().unwrap()));
        }
    }
    assert_eq!(progress.len(), 3, "{progress:?}");
    for (i, p) in progress.iter().enumerate() {
        assert_eq!(p["progressToken"], json!("caller-token"));
        assert_eq!(p["progress"], json!(i + 1));
        assert_eq!(p["total"], json!(3));
    }

    // A server-to-client request made while serving our call is attributed to our caller.
    let opts = RequestOptions {
        requester: requester(99),
        ..RequestOptions::default()
    };
    let sampled = call_tool(
        &session,
        "trigger-sampling-request",
        json!({"prompt": "hello"}),
        opts,
    )
    .await
    .unwrap();
    assert!(text(&sampled).contains("sampled by the test"), "{sampled}");
    assert!(
        handler
            .calls()
            .contains(&("sampling/createMessage".to_owned(), Some(99))),
        "{:?}",
        handler.calls()
    );
    // The server asks for roots on its own shortly after `initialized`.
    assert!(
        handler.calls().iter().any(|(m, _)| m == "roots/list"),
        "{:?}",
        handler.calls()
    );

    let resources = request(&session, "resources/list", json!({}))
        .await
        .unwrap();
    let first = resources["resources"][0]["uri"]
        .as_str()
        .expect("at least one resource")
        .to_owned();
    let read = request(&session, "resources/read", json!({"uri": first}))
        .await
        .unwrap();
    assert_eq!(read["contents"][0]["uri"], json!(first));

    let prompts = request(&session, "prompts/list", json!({})).await.unwrap();
    assert!(
        prompts["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "simple-prompt")
    );
    let prompt = request(&session, "prompts/get", json!({"name": "simple-prompt"}))
        .await
        .unwrap();
    assert!(!prompt["messages"].as_array().unwrap().is_empty());

    // Unknown methods come back as the server's JSON-RPC error, unchanged.
    match request(&session, "no/such/method", json!({})).await {
        Err(RequestError::Rpc(e)) => assert_eq!(e.code, -32601),
        other => panic!("{other:?}"),
    }

    session.close().await;
    assert!(!session.is_open());
    assert!(matches!(session.closed().await, TransportError::Closed));
    assert!(gone(pid).await, "server-everything survived close()");
}

#[tokio::test]
async fn everything_cancels_long_running_calls() {
    let Some(spec) = everything() else { return };
    let (session, _n) = ClientSession::connect(
        mcp_hub_transport::TransportSpec::Stdio(spec),
        options(),
        handler(),
    )
    .await
    .unwrap();
    let pid = session.pid().unwrap();

    // A timeout cancels upstream and fails promptly.
    let opts = RequestOptions {
        timeout: Some(Duration::from_millis(300)),
        ..RequestOptions::default()
    };
    let started = Instant::now();
    let r = call_tool(
        &session,
        "trigger-long-running-operation",
        json!({"duration": 30, "steps": 30}),
        opts,
    )
    .await;
    assert!(matches!(r, Err(RequestError::Timeout(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Dropping the request future cancels it too; the session stays usable.
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        call_tool(
            &session,
            "trigger-long-running-operation",
            json!({"duration": 30, "steps": 30}),
            RequestOptions::default(),
        ),
    )
    .await;
    assert!(dropped.is_err());
    let echo = call_tool(
        &session,
        "echo",
        json!({"message": "after"}),
        RequestOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(text(&echo), "Echo: after");

    session.close().await;
    assert!(gone(pid).await);
}

#[tokio::test]
async fn everything_killed_mid_call_fails_the_call_within_a_second() {
    let Some(spec) = everything() else { return };
    let (session, _n) = ClientSession::connect(
        mcp_hub_transport::TransportSpec::Stdio(spec),
        options(),
        handler(),
    )
    .await
    .unwrap();
    let pid = session.pid().unwrap();
    let s = session.clone();
    let call = tokio::spawn(async move {
        call_tool(
            &s,
            "trigger-long-running-operation",
            json!({"duration": 30, "steps": 30}),
            RequestOptions::default(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished());
    let pid_i32 = i32::try_from(pid).unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid_i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let killed = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .expect("the call did not fail within a second")
        .unwrap();
    match r {
        Err(RequestError::Closed(msg)) => {
            assert!(msg.contains("SIGKILL") || msg.contains("9"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    assert!(killed.elapsed() < Duration::from_secs(1));
    assert!(matches!(
        session.closed().await,
        TransportError::Exited { .. }
    ));
    assert!(!session.is_open());
    assert!(gone(pid).await);
}
