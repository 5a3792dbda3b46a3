//! Hostile or careless downstream clients: disconnects mid-stream, slow readers, too many
//! requests, oversized bodies and headers, requests out of order, a stalled request head.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_hub_tests::{HubCmd, McpClient, fd_count, request, try_request};
use serde_json::json;

use super::{CALL, echo_ok};
use crate::{config, fixture_entry};

#[test]
fn a_client_that_disconnects_mid_stream_disturbs_nobody() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let c = McpClient::connect(hub.port);
    let mut other = McpClient::connect(hub.port);
    echo_ok(&mut other, "a", "warm");
    let baseline = fd_count(hub.pid()).unwrap_or(0);
    for i in 0..20 {
        let body = json!({"jsonrpc": "2.0", "id": 1000 + i, "method": "tools/call", "params": {"name": "a__sleep", "arguments": {"ms": 500}}}).to_string();
        let mut s = TcpStream::connect(("127.0.0.1", hub.port)).expect("connect");
        let req = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {}\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n{body}",
            hub.port,
            c.session,
            body.len()
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut head = [0u8; 64];
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let n = s.read(&mut head).unwrap_or(0);
        assert!(
            String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head[..n])
        );
        drop(s); // gone mid-stream
        echo_ok(&mut other, "a", &format!("other client {i}"));
    }
    // The abandoned calls end by themselves; descriptors go back to where they were.
    let fds = hub.wait_for(Duration::from_secs(15), |h| {
        let n = fd_count(h.pid())?;
        (n <= baseline + 2).then_some(n)
    });
    eprintln!("hub fds: {baseline} before, {fds} after 20 abandoned streams");
    let mut again = McpClient::resume(c.port, &c.session);
    echo_ok(&mut again, "a", "the disconnected session still works");
}

#[test]
fn a_slow_reader_does_not_stall_other_clients() {
    const SIZE: usize = 20 * 1024 * 1024;
    let hub = HubCmd::new()
        .config(
            "servers.json",
            // The fast client uses its own upstream: a fixture busy producing 20 MB would slow
            // its own other calls, which says nothing about the hub.
            &config(&[
                ("big", fixture_entry(&["--huge-result", &SIZE.to_string()])),
                ("steady", fixture_entry(&[])),
            ]),
        )
        .start();
    hub.wait_status(&["big", "steady"], "connected");
    let slow = McpClient::connect(hub.port);
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "big__huge", "arguments": {}}}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", hub.port)).expect("connect");
    s.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {}\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n{body}",
            hub.port, slow.session, body.len()
        )
        .as_bytes(),
    )
    .expect("write");
    // Read nothing for a while; everyone else carries on.
    let mut fast = McpClient::connect(hub.port);
    let started = Instant::now();
    for i in 0..20 {
        let t = Instant::now();
        echo_ok(&mut fast, "steady", &format!("fast {i}"));
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "a call waited {:?} behind a slow reader",
            t.elapsed()
        );
    }
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    // Then the slow reader drains and gets the whole answer.
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the slow answer");
    assert!(raw.len() > SIZE, "the slow reader got {} bytes", raw.len());
}

#[test]
fn in_flight_requests_per_session_are_limited() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let c = Arc::new(McpClient::connect(hub.port));
    // 64 calls in flight (the default limit), then one more.
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || {
                c.try_call_id(
                    json!(format!("slow-{i}")),
                    "tools/call",
                    json!({"name": "a__sleep", "arguments": {"ms": 4000}}),
                    CALL,
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let extra = c
        .try_call_id(
            json!("one-too-many"),
            "tools/call",
            json!({"name": "a__echo", "arguments": {"text": "x"}}),
            CALL,
        )
        .expect("an answer");
    assert!(
        extra["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Too many requests in flight")),
        "{extra}"
    );
    // Another session is not limited by this one.
    let mut other = McpClient::connect(hub.port);
    echo_ok(&mut other, "a", "another session");
    for h in handles {
        let v = h.join().expect("caller").expect("answer");
        assert!(v["result"].is_object(), "{v}");
    }
    let v = c
        .try_call_id(
            json!("after"),
            "tools/call",
            json!({"name": "a__echo", "arguments": {"text": "y"}}),
            CALL,
        )
        .expect("answer");
    assert_eq!(v["result"]["content"][0]["text"], "y");
}

#[test]
fn body_and_header_limits_are_clear_errors() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let accept = ("Accept", "application/json, text/event-stream");
    // Body over 4 MiB.
    let big = vec![b' '; 5 * 1024 * 1024];
    let r = try_request(hub.port, "POST", "/mcp", &[accept], Some(&big), CALL).expect("an answer");
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], -32000);
    // A 1 MiB header, and too many headers.
    let huge = "a".repeat(1 << 20);
    let r = try_request(
        hub.port,
        "GET",
        "/api/health",
        &[("X-Big", &huge)],
        None,
        CALL,
    )
    .expect("an answer");
    assert_eq!(r.status, 431);
    let names: Vec<String> = (0..200).map(|i| format!("X-H{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let r = try_request(hub.port, "GET", "/api/health", &many, None, CALL).expect("an answer");
    assert_eq!(r.status, 431);
    // Broken JSON and a wrong protocol version are JSON-RPC errors.
    let r = try_request(
        hub.port,
        "POST",
        "/mcp",
        &[accept],
        Some(b"{\"jsonrpc\":"),
        CALL,
    )
    .expect("an answer");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    let mut c = McpClient::connect(hub.port);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let r = try_request(
        hub.port,
        "POST",
        "/mcp",
        &[
            accept,
            ("Mcp-Session-Id", &c.session),
            ("MCP-Protocol-Version", "1999-01-01"),
        ],
        Some(ping.as_bytes()),
        CALL,
    )
    .expect("an answer");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]["code"].is_i64());
    echo_ok(&mut c, "a", "still serving");
}

#[test]
fn requests_without_initialized_or_after_delete_get_clear_answers() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "rude", "version": "1"}}});
    let r = request(
        hub.port,
        "POST",
        "/mcp",
        &[("Accept", "application/json, text/event-stream")],
        Some(init.to_string().as_bytes()),
    );
    let session = r.header("mcp-session-id").expect("session").to_owned();
    let c = McpClient::resume(hub.port, &session);
    // No `notifications/initialized`: the hub still answers (leniently) rather than hanging.
    let v = c
        .try_call_id(json!(1), "tools/list", json!({}), CALL)
        .expect("an answer");
    assert!(
        v["result"]["tools"].is_array() || v["error"]["code"].is_i64(),
        "{v}"
    );
    assert_eq!(c.delete(&[]), 200);
    let r = c
        .send(
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            &[],
            CALL,
        )
        .expect("an answer");
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Session not found"))
    );
    assert_eq!(c.delete(&[]), 404, "a second DELETE finds nothing");
    let mut other = McpClient::connect(hub.port);
    echo_ok(&mut other, "a", "others unaffected");
}

#[test]
fn a_stalled_request_head_is_dropped_by_the_header_timeout() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let mut s = TcpStream::connect(("127.0.0.1", hub.port)).expect("connect");
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(45))).ok();
    let started = Instant::now();
    let mut c = McpClient::connect(hub.port);
    echo_ok(&mut c, "a", "served while another connection stalls");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(40),
        "the stalled connection was closed after {took:?}"
    );
    assert!(
        buf.is_empty() || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
}

// ------------------------------------------------------------------------------------------------
// Remote upstream faults
