//! Logging never stalls the hub: an undrained stderr, a server that talks without pause on its
//! stderr, a slow `/api/events` reader.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use mcp_hub_tests::{EventStream, HubCmd, McpClient, try_request};
use serde_json::json;

use crate::{config, fixture_entry};

const STEP: Duration = Duration::from_secs(10);

#[test]
fn an_undrained_stderr_never_blocks_requests_or_sigterm() {
    let mut hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("chatty", fixture_entry(&["--stderr-rate", "20000"])),
                ("a", fixture_entry(&[])),
            ]),
        )
        .arg("--log-level")
        .arg("debug")
        .stderr_unread()
        .start();
    // Whatever the hub writes to stderr now fills the pipe within a second and stays full.
    hub.wait_status(&["a", "chatty"], "connected");
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let health = try_request(hub.port, "GET", "/api/health", &[], None, STEP)
            .expect("/api/health answers while stderr is full");
        assert_eq!(health.status, 200);
        if let Ok(c) = McpClient::try_connect(hub.port, &[]) {
            let v = c
                .try_call_id(
                    json!(1),
                    "tools/call",
                    json!({"name": "a__echo", "arguments": {"text": "still here"}}),
                    STEP,
                )
                .expect("a call is answered while stderr is full");
            assert_eq!(v["result"]["content"][0]["text"], "still here", "{v}");
            calls += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(calls > 0, "calls went through");
    let status = hub.terminate();
    assert!(
        status.success(),
        "SIGTERM ends the hub cleanly with its stderr full: {status:?}"
    );
}

#[test]
fn a_chatty_server_is_rate_limited_and_a_slow_events_reader_keeps_the_hub_up() {
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("chatty", fixture_entry(&["--stderr-rate", "10000"]))]),
        )
        .arg("--auto-shutdown")
        .arg("--shutdown-delay")
        .arg("200")
        .start();
    // The only /api/events client reads its first event, then nothing for 6 s, with a small
    // receive window so that what it does not read backs up into the hub.
    let mut events = EventStream::open(hub.port, "/api/events", &[]);
    events.recv_buffer(4096);
    let first = events.next_event().expect("hub_state");
    assert_eq!(first.event, "hub_state");
    std::thread::sleep(Duration::from_secs(6));
    let mut hub = hub;
    assert!(
        hub.child.try_wait().expect("try_wait").is_none()
            && !hub.stderr().contains("no clients left"),
        "the hub is still running and not shutting down: a slow events client is not a client that left"
    );
    let health = try_request(hub.port, "GET", "/api/health", &[], None, STEP).expect("health");
    assert_eq!(health.status, 200);
    hub.wait_status(&["chatty"], "connected");

    // The log file: capped, private, and it says how much was suppressed.
    let log = hub.log_file();
    let dir = log.parent().expect("log dir").to_path_buf();
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).expect("log dir") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("metadata");
        total += meta.len();
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{} is private",
            entry.path().display()
        );
    }
    assert!(
        total < 30 * 1024 * 1024,
        "the log files stay under their cap ({total} bytes)"
    );
    let text = std::fs::read_to_string(&log).expect("log file");
    assert!(
        text.contains("suppressed"),
        "the log says how many stderr lines were suppressed"
    );
    // The slow client can still read: its stream was kept, and it sees fresh events.
    assert!(
        events.find(5000, |e| e.event == "heartbeat").is_some(),
        "the events client is still served"
    );
    let status = hub.terminate();
    assert!(status.success(), "{status:?}");
}
