//! Limits that keep one client or one server from taking the hub down: the session table and
//! per-client quotas, slow request bodies, the connection cap, and the catalogue size.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mcp_hub_tests::{EventStream, HubCmd, McpClient, request, rss_kib, try_request};
use serde_json::json;

use crate::{config, fixture_entry};

const CALL: Duration = Duration::from_secs(30);

fn echo_ok(c: &McpClient, server: &str, text: &str, headers: &[(&str, &str)]) {
    let body = json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call",
        "params": {"name": format!("{server}__echo"), "arguments": {"text": text}}});
    let r = c.send(&body, headers, CALL).expect("answered");
    let v = mcp_hub_tests::jsonrpc_messages(&r)
        .into_iter()
        .find(|m| m["id"] == 77)
        .unwrap_or_else(|| panic!("no answer (HTTP {}): {}", r.status, r.text()));
    assert_eq!(v["result"]["content"][0]["text"], text, "{v}");
}

/// Opens `n` sessions as one client and completes each handshake; returns their ids in order.
fn open_sessions(port: u16, n: usize, headers: &[(&str, &str)]) -> Vec<String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "greedy", "version": "1"}}})
    .to_string();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let mut h = vec![("Accept", "application/json, text/event-stream")];
    h.extend_from_slice(headers);
    let mut ids = Vec::new();
    for _ in 0..n {
        let r = request(port, "POST", "/mcp", &h, Some(init.as_bytes()));
        assert_eq!(
            r.status,
            200,
            "a greedy client is never refused: {}",
            r.text()
        );
        let id = r.header("mcp-session-id").expect("id").to_owned();
        let mut h2 = h.clone();
        h2.push(("Mcp-Session-Id", &id));
        let done = request(port, "POST", "/mcp", &h2, Some(initialized.as_bytes()));
        assert_eq!(done.status, 202);
        ids.push(id);
    }
    ids
}

fn status_of(port: u16, session: &str, headers: &[(&str, &str)]) -> u16 {
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let mut h = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Mcp-Session-Id", session),
    ];
    h.extend_from_slice(headers);
    request(port, "POST", "/mcp", &h, Some(ping.as_bytes())).status
}

#[test]
fn one_client_filling_the_session_table_locks_nobody_out() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    // A well-behaved client listening on its GET stream, as SDK clients do.
    let mine = McpClient::connect(hub.port);
    let listening = EventStream::open(
        hub.port,
        "/mcp",
        &[
            ("Mcp-Session-Id", &mine.session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
    );
    // A greedy client opens more sessions than the table holds and never closes one.
    let greedy = open_sessions(hub.port, 1100, &[]);
    echo_ok(&mine, "a", "the listening session is kept", &[]);
    let newcomer = McpClient::try_connect(hub.port, &[]).expect("a newcomer gets a session");
    echo_ok(&newcomer, "a", "and it works", &[]);
    // The greedy client's least recently used sessions made room; its newest one works.
    assert_eq!(status_of(hub.port, &greedy[0], &[]), 404);
    assert_eq!(status_of(hub.port, &greedy[1099], &[]), 200);
    drop(listening);
}

#[test]
fn a_client_is_held_to_its_quota_and_others_keep_their_room() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .arg("--token")
        .arg("alice-token")
        .arg("--token")
        .arg("bob-token")
        .start();
    let alice = [("Authorization", "Bearer alice-token")];
    let bob = [("Authorization", "Bearer bob-token")];
    let bob_first = McpClient::try_connect(hub.port, &bob).expect("bob's first session");
    let ids = open_sessions(hub.port, 1100, &alice);
    // Bob's idle session was not evicted to make room for Alice, and Bob can open more.
    assert_eq!(status_of(hub.port, &bob_first.session, &bob), 200);
    let bob_second = McpClient::try_connect(hub.port, &bob).expect("bob gets a new session");
    echo_ok(&bob_second, "a", "bob is served", &bob);
    // Alice paid for her own excess with her own oldest sessions.
    assert_eq!(status_of(hub.port, &ids[0], &alice), 404);
    assert_eq!(status_of(hub.port, &ids[1099], &alice), 200);
}

#[test]
fn abandoned_uninitialized_sessions_do_not_lock_out_new_clients() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "greedy", "version": "1"}}})
    .to_string();
    for _ in 0..1000 {
        request(
            hub.port,
            "POST",
            "/mcp",
            &[("Accept", "application/json, text/event-stream")],
            Some(init.as_bytes()),
        );
    }
    // A well-behaved newcomer still gets a session (the oldest never-initialized one is evicted
    // when the table is full).
    let c = McpClient::try_connect(hub.port, &[]);
    assert!(
        c.is_ok(),
        "a new client is locked out: {:?}",
        c.err().map(|r| r.text())
    );
}

#[test]
fn a_request_body_sent_a_byte_at_a_time_is_cut_off() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let mut s = TcpStream::connect(("127.0.0.1", hub.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(40))).ok();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        hub.port
    );
    s.write_all(head.as_bytes()).expect("head");
    let mut writer = s.try_clone().expect("clone");
    // One byte every second, for longer than the body timeout.
    let drip = std::thread::spawn(move || {
        for _ in 0..60 {
            if writer.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let started = Instant::now();
    // Meanwhile everyone else is served.
    let mut c = McpClient::connect(hub.port);
    let v = c.call(
        "tools/call",
        json!({"name": "a__echo", "arguments": {"text": "x"}}),
    );
    assert_eq!(v["result"]["content"][0]["text"], "x");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 408"),
        "the slow body gets 408 Request Timeout (after {:?}): {text:?}",
        started.elapsed()
    );
    drip.join().expect("drip");
}

#[test]
fn descriptor_exhaustion_cannot_make_the_hub_unreachable() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[]))
        .nofile(128)
        .start();
    // More idle connections than the hub has descriptors.
    let idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", hub.port)).ok())
        .collect();
    assert!(idle.len() > 150, "connections opened: {}", idle.len());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let health = loop {
        match try_request(
            hub.port,
            "GET",
            "/api/health",
            &[],
            None,
            Duration::from_secs(2),
        ) {
            Ok(r) if r.status == 200 => break r,
            other => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "/api/health unreachable for 10 s with {} idle connections: {other:?}",
                    idle.len()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert_eq!(health.json()["status"], "ok");
    drop(idle);
}

#[test]
fn a_catalogue_of_60000_tools_stays_within_a_small_multiple_of_its_size() {
    let hub = HubCmd::new()
        .config(
            "servers.json",
            // 60,000 tools of ~400 bytes in pages of 5,000: a 24 MB catalogue.
            &config(&[(
                "big",
                fixture_entry(&["--tools", "60000", "--page-size", "5000"]),
            )]),
        )
        .arg("--max-list-items")
        .arg("60100")
        .start();
    hub.wait_status_within(&["big"], "connected", Duration::from_secs(120));
    let mut size = 0;
    // `/api/health` carries the same server objects (editor plugins poll it): both routes.
    for path in [
        "/api/servers",
        "/api/health",
        "/api/servers",
        "/api/health",
        "/api/servers",
    ] {
        let r = try_request(hub.port, "GET", path, &[], None, Duration::from_secs(60)).expect(path);
        assert_eq!(r.status, 200, "{path}");
        if path == "/api/servers" {
            size = r.body.len();
        }
    }
    let v: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(
        &request(hub.port, "GET", "/api/servers", &[], None).body,
    ))
    .expect("json");
    let tools = v["servers"][0]["capabilities"]["tools"]
        .as_array()
        .map_or(0, Vec::len);
    let rss = rss_kib(hub.pid()).expect("alive") * 1024;
    eprintln!(
        "catalogue: /api/servers {} MB, hub RSS {} MB",
        size / 1_000_000,
        rss / 1_000_000
    );
    assert!(
        tools > 60_000,
        "every tool is listed ({tools}): {}",
        v["servers"][0]["status"]
    );
    assert!(
        rss < 6 * size as u64,
        "hub RSS {rss} bytes is more than 6x the catalogue's JSON ({size} bytes)"
    );
}

#[test]
fn a_server_listing_more_than_the_limit_gets_a_clear_error() {
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("big", fixture_entry(&["--tools", "1000"])),
                ("a", fixture_entry(&[])),
            ]),
        )
        .arg("--max-list-items")
        .arg("500")
        .start();
    hub.wait_status(&["a"], "connected");
    let big = hub.wait_for(Duration::from_secs(30), |h| {
        let s = h.server("big");
        (s["status"] == "disconnected").then_some(s)
    });
    let error = big["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("tools") && error.contains("500"),
        "the error names the list and the limit: {error}"
    );
    assert_eq!(big["capabilities"]["tools"], json!([]));
    let mut c = McpClient::connect(hub.port);
    let v = c.call(
        "tools/call",
        json!({"name": "a__echo", "arguments": {"text": "fine"}}),
    );
    assert_eq!(v["result"]["content"][0]["text"], "fine");
}
