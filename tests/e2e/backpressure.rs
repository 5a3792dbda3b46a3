//! Answers are never dropped when a client's response stream fills up: the hub holds back the
//! producers (calls not yet started, the related notifications of a call) and sheds only
//! progress and log notifications, counted and logged.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mcp_hub_tests::{
    EventStream, HubCmd, McpClient, jsonrpc_messages, parse_response, try_request,
};
use serde_json::{Value, json};

use crate::{config, fixture_entry};

const LONG: Duration = Duration::from_secs(60);

/// Opens a 2025-03-26 session (the last revision with JSON-RPC batches) by hand.
fn session_2025_03_26(port: u16) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "batcher", "version": "1"}}});
    let accept = ("Accept", "application/json, text/event-stream");
    let r = try_request(
        port,
        "POST",
        "/mcp",
        &[accept],
        Some(init.to_string().as_bytes()),
        LONG,
    )
    .expect("initialize");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-03-26");
    let id = r.header("mcp-session-id").expect("session id").to_owned();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = try_request(
        port,
        "POST",
        "/mcp",
        &[accept, ("Mcp-Session-Id", &id)],
        Some(note.to_string().as_bytes()),
        LONG,
    )
    .expect("initialized");
    assert_eq!(r.status, 202);
    id
}

#[test]
fn a_batch_of_1000_calls_gets_1000_answers() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let session = session_2025_03_26(hub.port);
    let batch: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": "a__echo", "arguments": {"text": format!("b{i}")}}})
        })
        .collect();
    let r = try_request(
        hub.port,
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", &session),
            ("MCP-Protocol-Version", "2025-03-26"),
        ],
        Some(Value::Array(batch).to_string().as_bytes()),
        LONG,
    )
    .expect("the batch is answered");
    assert_eq!(r.status, 200);
    let answers: Vec<Value> = jsonrpc_messages(&r)
        .into_iter()
        .filter(|m| m.get("id").is_some() && m.get("method").is_none())
        .collect();
    let ids: BTreeSet<i64> = answers.iter().filter_map(|m| m["id"].as_i64()).collect();
    assert_eq!(
        (answers.len(), ids.len()),
        (1000, 1000),
        "every call of the batch is answered exactly once"
    );
    for m in &answers {
        let i = m["id"].as_i64().unwrap_or(-1);
        assert_eq!(
            m["result"]["content"][0]["text"],
            format!("b{i}"),
            "call {i} ran and got its own answer: {m}"
        );
    }
}

#[test]
fn a_legacy_client_that_pauses_gets_every_large_result() {
    const SIZE: usize = 3_000_000;
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("a", fixture_entry(&["--huge-result", &SIZE.to_string()]))]),
        )
        .start();
    hub.wait_status(&["a"], "connected");
    let mut sse = EventStream::open(hub.port, "/sse", &[]);
    let endpoint = sse.next_event().expect("endpoint event");
    assert_eq!(endpoint.event, "endpoint");
    let post = |msg: Value| {
        let r = try_request(
            hub.port,
            "POST",
            &endpoint.data,
            &[],
            Some(msg.to_string().as_bytes()),
            LONG,
        )
        .expect("POST /messages");
        assert_eq!(r.status, 202, "{}", r.text());
    };
    post(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "legacy", "version": "1"}}}),
    );
    sse.find(10, |e| e.data.contains("\"id\":0"))
        .expect("initialize answered");
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    for id in 1..=6 {
        post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "a__huge", "arguments": {}}}));
    }
    // The client reads nothing while 18 MB of answers are due (5 s: long enough for a debug
    // fixture on a busy machine to produce them all while it waits).
    std::thread::sleep(Duration::from_secs(5));
    sse.deadline(LONG);
    let mut got = BTreeSet::new();
    while got.len() < 6 {
        let Some(e) = sse.next_event() else { break };
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            continue;
        };
        if let Some(id) = v["id"].as_i64() {
            let text = v["result"]["content"][0]["text"].as_str().unwrap_or("");
            assert_eq!(text.len(), SIZE, "answer {id} arrives whole");
            got.insert(id);
        }
    }
    assert_eq!(got, (1..=6).collect(), "every answer reached the client");
}

#[test]
fn five_thousand_progress_notifications_reach_a_client_that_stalls() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let c = McpClient::connect(hub.port);
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "a__progress", "arguments": {"count": 5000, "pad": 2000}, "_meta": {"progressToken": "p"}}})
    .to_string();
    // 5,000 notifications of ~2 KB: more than the socket buffers and the connection's write
    // buffer hold while the client does not read, so the rest waits in the hub.
    let mut s = TcpStream::connect(("127.0.0.1", hub.port)).expect("connect");
    s.set_read_timeout(Some(LONG)).ok();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
         Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
         Mcp-Session-Id: {}\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n{call}",
        hub.port,
        c.session,
        call.len()
    );
    s.write_all(head.as_bytes()).expect("request");
    // The client stalls for 2 s while the tool reports its progress, then reads.
    std::thread::sleep(Duration::from_secs(2));
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let msgs = jsonrpc_messages(&parse_response(&raw));
    let steps: Vec<u64> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "p")
        .filter_map(|m| m["params"]["progress"].as_u64())
        .collect();
    assert_eq!(
        (steps.len(), steps.first(), steps.last()),
        (5000, Some(&1), Some(&5000)),
        "every progress notification arrives"
    );
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "in order");
    let answer = msgs.iter().find(|m| m["id"] == 1).expect("the result");
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "sent 5000 progress notifications"
    );
}
