//! Against the workspace's fixture server (`mcp-hub-fixture --stdio`), including its
//! misbehaviour knobs.

use std::time::{Duration, Instant};

use mcp_hub_transport::{
    ClientSession, RequestError, RequestOptions, SessionOptions, StdioSpec, TransportError,
    TransportSpec,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::*;

async fn connect(spec: StdioSpec) -> (ClientSession, mcp_hub_transport::NotificationStream) {
    connect_with(spec, options())
        .await
        .expect("connect to the fixture")
}

async fn connect_with(
    spec: StdioSpec,
    options: SessionOptions,
) -> Result<(ClientSession, mcp_hub_transport::NotificationStream), TransportError> {
    ClientSession::connect(TransportSpec::Stdio(spec), options, handler()).await
}

fn logged(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn fixture_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("received.jsonl");
    let log_arg = log.to_str().unwrap();
    let Some(mut spec) = fixture(&["--list-changed-after", "50", "--log", log_arg]) else {
        return;
    };
    let (stderr_tx, mut stderr_rx) = mpsc::channel(64);
    spec.stderr = Some(stderr_tx);
    let handler = handler();
    let (session, mut notifications) =
        ClientSession::connect(TransportSpec::Stdio(spec), options(), handler.clone())
            .await
            .unwrap();
    let pid = session.pid().unwrap();
    assert_eq!(session.protocol_version(), "2025-11-25");

    let n = tokio::time::timeout(Duration::from_secs(5), notifications.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.method, "notifications/tools/list_changed");

    let echo = call_tool(
        &session,
        "echo",
        json!({"text": "x"}),
        RequestOptions::default(),
    )
    .await
    .unwrap();
    assert!(text(&echo).contains('x'), "{echo}");
    let add = call_tool(
        &session,
        "add",
        json!({"a": 1, "b": 2}),
        RequestOptions::default(),
    )
    .await
    .unwrap();
    assert!(text(&add).contains('3'), "{add}");
    let read = request(
        &session,
        "resources/read",
        json!({"uri": "test://static-text"}),
    )
    .await
    .unwrap();
    assert_eq!(read["contents"][0]["uri"], json!("test://static-text"));
    let prompt = request(
        &session,
        "prompts/get",
        json!({"name": "test_simple_prompt"}),
    )
    .await
    .unwrap();
    assert!(prompt["messages"].is_array());

    // Progress and log messages of a call reach its `related` channel.
    let (tx, mut rx) = mpsc::channel(16);
    let opts = RequestOptions {
        related: Some(tx),
        ..RequestOptions::default()
    };
    let params =
        json!({"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": 5}});
    let r = session
        .request("tools/call", Some(raw(params)), opts)
        .await
        .unwrap();
    assert!(
        text(&value(&r)).starts_with("Progress reported"),
        "{}",
        r.get()
    );
    let mut seen = Vec::new();
    while let Some(n) = rx.recv().await {
        seen.push(value(n.params.as_deref().unwrap()));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|p| p["progressToken"] == json!(5)));

    let (tx, mut rx) = mpsc::channel(16);
    let opts = RequestOptions {
        related: Some(tx),
        ..RequestOptions::default()
    };
    call_tool(&session, "test_tool_with_logging", json!({}), opts)
        .await
        .unwrap();
    let mut logs = 0;
    while let Some(n) = rx.recv().await {
        assert_eq!(n.method, "notifications/message");
        logs += 1;
    }
    assert_eq!(logs, 3);

    // Sampling is routed to the handler with the caller of the tool call.
    let opts = RequestOptions {
        requester: requester(3),
        ..RequestOptions::default()
    };
    let sampled = call_tool(&session, "test_sampling", json!({"prompt": "p"}), opts)
        .await
        .unwrap();
    assert_eq!(text(&sampled), "LLM response: sampled by the test");
    assert!(
        handler
            .calls()
            .contains(&("sampling/createMessage".to_owned(), Some(3)))
    );

    // A cancelled call reaches the server as notifications/cancelled with the id it got.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        call_tool(
            &session,
            "sleep",
            json!({"ms": 60000}),
            RequestOptions::default(),
        ),
    )
    .await;
    assert!(cancelled.is_err());
    let ping = request(&session, "ping", json!({})).await.unwrap();
    assert_eq!(ping, json!({}));

    session.close().await;
    assert!(gone(pid).await);

    let received = logged(&log);
    let sleep_id = received
        .iter()
        .find(|m| m["params"]["name"] == "sleep")
        .map(|m| m["id"].clone())
        .expect("the fixture saw the sleep call");
    assert!(
        sleep_id.is_i64(),
        "the hub allocates numeric ids: {sleep_id}"
    );
    assert!(
        received
            .iter()
            .any(|m| m["method"] == "notifications/cancelled"
                && m["params"]["requestId"] == sleep_id),
        "no cancellation for {sleep_id}"
    );
    // The upstream saw hub-allocated progress tokens, never the caller's.
    let progress_call = received
        .iter()
        .find(|m| m["params"]["name"] == "test_tool_with_progress")
        .unwrap();
    assert_ne!(progress_call["params"]["_meta"]["progressToken"], json!(5));
    assert_eq!(received[0]["method"], "initialize");
    assert_eq!(received[1]["method"], "notifications/initialized");

    // The fixture logs to stderr; those lines reached the sink.
    let mut lines = 0;
    while stderr_rx.try_recv().is_ok() {
        lines += 1;
    }
    assert!(lines > 0, "no stderr lines captured");
}

#[tokio::test]
async fn garbage_lines_are_skipped() {
    let Some(spec) = fixture(&["--garbage"]) else {
        return;
    };
    let (session, _n) = connect(spec).await;
    for i in 0..3 {
        let r = call_tool(
            &session,
            "echo",
            json!({"text": format!("m{i}")}),
            RequestOptions::default(),
        )
        .await
        .unwrap();
        assert!(text(&r).contains(&format!("m{i}")));
    }
    let pid = session.pid().unwrap();
    session.close().await;
    assert!(gone(pid).await);
}

#[tokio::test]
async fn an_oversize_line_is_skipped_and_the_session_goes_on() {
    let Some(spec) = fixture(&["--huge-result", "300000"]) else {
        return;
    };
    let opts = SessionOptions {
        max_message_bytes: 100_000,
        ..options()
    };
    let (session, _n) = connect_with(spec, opts).await.unwrap();
    let started = std::time::Instant::now();
    let huge = call_tool(
        &session,
        "huge",
        json!({}),
        RequestOptions {
            timeout: Some(Duration::from_secs(30)),
            ..RequestOptions::default()
        },
    )
    .await;
    // The answer was too big to take, but the caller learns it at once, not at its timeout.
    match &huge {
        Err(RequestError::Rpc(e)) => assert!(e.message.contains("exceeds"), "{e:?}"),
        other => panic!("expected an error for the oversize answer, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let r = call_tool(
        &session,
        "echo",
        json!({"text": "still here"}),
        RequestOptions::default(),
    )
    .await
    .unwrap();
    assert!(text(&r).contains("still here"));
    let pid = session.pid().unwrap();
    session.close().await;
    assert!(gone(pid).await);
}

#[tokio::test]
async fn a_crash_mid_call_fails_the_call_quickly_and_kills_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let Some(spec) = fixture(&[
        "--crash-after",
        "1",
        "--spawn-grandchild",
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]) else {
        return;
    };
    let (session, _n) = connect(spec).await;
    let pids = read_pidfile(&pidfile, 2).await;
    assert_eq!(pids[0], session.pid().unwrap());
    assert!(alive(pids[1]), "grandchild not running");

    let started = Instant::now();
    let r = call_tool(
        &session,
        "echo",
        json!({"text": "boom"}),
        RequestOptions::default(),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    match r {
        Err(RequestError::Closed(msg)) => assert!(msg.contains("exit status: 1"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(session.closed().await, TransportError::Exited { status } if status.contains("1"))
    );
    // The grandchild kept stdout open, yet the call failed; and it did not survive its parent.
    assert!(gone(pids[0]).await);
    assert!(!alive(pids[1]), "grandchild survived");
    // Requests on a dead session fail at once.
    assert!(matches!(
        request(&session, "ping", json!({})).await,
        Err(RequestError::Closed(_))
    ));
}

#[tokio::test]
async fn shutdown_escalates_to_sigterm_and_sigkill_for_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let Some(spec) = fixture(&[
        "--ignore-stdin-eof",
        "--ignore-sigterm",
        "--spawn-grandchild",
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]) else {
        return;
    };
    let opts = SessionOptions {
        shutdown_timeout: Duration::from_millis(300),
        ..options()
    };
    let (session, _n) = connect_with(spec, opts).await.unwrap();
    let pids = read_pidfile(&pidfile, 2).await;
    let started = Instant::now();
    session.close().await;
    let took = started.elapsed();
    // stdin EOF ignored (300 ms), SIGTERM ignored (300 ms), then SIGKILL.
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(gone(pids[0]).await);
    assert!(!alive(pids[1]), "grandchild survived");
}

#[tokio::test]
async fn a_well_behaved_server_exits_on_stdin_eof_without_signals() {
    let Some(spec) = fixture(&[]) else { return };
    let opts = SessionOptions {
        shutdown_timeout: Duration::from_secs(5),
        ..options()
    };
    let (session, _n) = connect_with(spec, opts).await.unwrap();
    let pid = session.pid().unwrap();
    let started = Instant::now();
    session.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(gone(pid).await);
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_child() {
    let Some(spec) = fixture(&[]) else { return };
    let (session, _n) = connect(spec).await;
    let pid = session.pid().unwrap();
    drop(session);
    assert!(gone(pid).await);
}

#[tokio::test]
async fn handshake_failures_are_reported_and_leave_no_process() {
    let Some(path) = fixture_path() else {
        eprintln!("SKIP: mcp-hub-fixture not found");
        return;
    };
    let path = path.to_str().unwrap();

    let started = Instant::now();
    let e = connect_with(spec("f", path, &["--stdio", "--exit-at-start"]), options())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, TransportError::Exited { status } if status.contains('3')),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let e = connect_with(
        spec("f", path, &["--stdio", "--protocol-version", "2026-07-28"]),
        options(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransportError::ModernOnly), "{e:?}");

    let e = connect_with(
        spec("f", path, &["--stdio", "--protocol-version", "1999-01-01"]),
        options(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, TransportError::UnsupportedVersion(ref v) if v == "1999-01-01"),
        "{e:?}"
    );

    let opts = SessionOptions {
        initialize_timeout: Duration::from_millis(300),
        ..options()
    };
    let e = connect_with(spec("f", path, &["--stdio", "--no-init-response"]), opts)
        .await
        .unwrap_err();
    assert!(
        matches!(e, TransportError::Initialize(ref m) if m.contains("initialize")),
        "{e:?}"
    );

    let (s, _n) = connect_with(
        spec("f", path, &["--stdio", "--protocol-version", "2024-11-05"]),
        options(),
    )
    .await
    .unwrap();
    assert_eq!(s.protocol_version(), "2024-11-05");
    let pid = s.pid().unwrap();
    s.close().await;
    assert!(gone(pid).await);

    let e = connect_with(spec("f", "/nonexistent/mcp-server", &[]), options())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Spawn { .. }), "{e:?}");
    assert!(e.to_string().contains("No such file"), "{e}");

    // A missing working directory is named as such, not as a missing command.
    let mut s = spec("f", path, &["--stdio"]);
    s.cwd = Some("/nonexistent/work-dir".into());
    let e = connect_with(s, options()).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("working directory") && text.contains("/nonexistent/work-dir"),
        "{text}"
    );
    let mut s = spec("f", path, &["--stdio"]);
    s.cwd = Some(path.into());
    let e = connect_with(s, options()).await.unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");
}

#[tokio::test]
async fn the_child_gets_exactly_the_given_environment_and_cwd() {
    let Some(script) = std::env::var("MCP_HUB_SERVER_EVERYTHING").ok() else {
        eprintln!("SKIP: MCP_HUB_SERVER_EVERYTHING is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec("env", "node", &[&script, "stdio"]);
    spec.env
        .push(("MCP_HUB_TEST_MARKER".into(), "marker-value".into()));
    spec.cwd = Some(dir.path().to_path_buf());
    let (session, _n) = connect_with(spec, options()).await.unwrap();
    let r = call_tool(&session, "get-env", json!({}), RequestOptions::default())
        .await
        .unwrap();
    let env: Value = serde_json::from_str(text(&r)).unwrap();
    assert_eq!(env["MCP_HUB_TEST_MARKER"], json!("marker-value"));
    // Nothing of the hub's own environment leaks beyond what the spec lists.
    let allowed: Vec<String> = base_env().into_iter().map(|(k, _)| k).collect();
    for key in env.as_object().unwrap().keys() {
        assert!(
            allowed.contains(key) || key == "MCP_HUB_TEST_MARKER",
            "unexpected variable {key} in the child's environment"
        );
    }
    let pid = session.pid().unwrap();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, dir.path().canonicalize().unwrap());
    session.close().await;
    assert!(gone(pid).await);
}

#[tokio::test]
async fn giving_up_on_connect_stops_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let Some(spec) = fixture(&["--no-init-response", "--pidfile", pidfile.to_str().unwrap()])
    else {
        return;
    };
    let attempt = tokio::time::timeout(Duration::from_millis(500), connect_with(spec, options()));
    assert!(attempt.await.is_err(), "initialize was never answered");
    let pid = read_pidfile(&pidfile, 1).await[0];
    assert!(gone(pid).await, "the abandoned child survived");
}
