//! The search mode of a profile: two hub tools instead of the catalogue, BM25 search over the
//! profile's tools, `call_tool` routed exactly as a direct call; and the quality of the search
//! on natural-language queries (`tests/fixtures/search-queries.json`, figure in docs/CONFIG.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mcp_hub_tests::{HubCmd, McpClient, jsonrpc_messages};
use serde_json::{Value, json};

use crate::fixture_entry;

fn search(c: &mut McpClient, query: &str, limit: u64) -> Vec<String> {
    let r = c.call(
        "tools/call",
        json!({"name": "search_tools", "arguments": {"query": query, "limit": limit}}),
    );
    r["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("search_tools answered {r}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

fn search_hub(entry: Value, extra: &[&str]) -> mcp_hub_tests::Hub {
    let cfg = json!({
        "mcpServers": {"fx": entry},
        "profiles": {"find": {"mode": "search", "servers": {"fx": {"tools": {"exclude": ["pid"]}}}}},
    });
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .args(extra)
        .start();
    hub.wait_status(&["fx"], "connected");
    hub
}

#[test]
fn search_mode_lists_two_tools_and_reaches_only_the_profiles_tools() {
    let hub = search_hub(fixture_entry(&["--name", "fx"]), &[]);
    let init = mcp_hub_tests::request(
        hub.port,
        "POST",
        "/mcp/find",
        &[("Accept", "application/json, text/event-stream")],
        Some(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "e2e", "version": "1"}}})
            .to_string()
            .as_bytes(),
        ),
    )
    .json();
    let instructions = init["result"]["instructions"].as_str().unwrap_or_default();
    assert!(
        instructions.starts_with("This endpoint lists only two tools"),
        "{init}"
    );
    let mut c = McpClient::try_connect_at(hub.port, "/mcp/find", &[]).expect("session");
    let list = c.call("tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["search_tools", "call_tool"]);

    let found = search(&mut c, "add two numbers", 5);
    assert_eq!(
        found.first().map(String::as_str),
        Some("fx__add"),
        "{found:?}"
    );
    // The hit comes whole: its schema is what the model needs to call it.
    let r = c.call(
        "tools/call",
        json!({"name": "search_tools", "arguments": {"query": "add two numbers", "limit": 1}}),
    );
    assert_eq!(
        r["result"]["structuredContent"]["tools"][0]["inputSchema"]["required"],
        json!(["a", "b"])
    );
    // A hidden tool is never found, not even by its own name.
    assert!(!search(&mut c, "pid process id", 20).contains(&"fx__pid".to_owned()));

    let r = c.call(
        "tools/call",
        json!({"name": "call_tool", "arguments": {"name": "fx__add", "arguments": {"a": 2, "b": 3}}}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "5", "{r}");
    // Guessing the hidden tool's name, through call_tool or directly: unknown.
    for params in [
        json!({"name": "call_tool", "arguments": {"name": "fx__pid", "arguments": {}}}),
        json!({"name": "fx__pid", "arguments": {}}),
    ] {
        let r = c.call("tools/call", params);
        assert_eq!(r["error"]["message"], "Unknown tool: fx__pid", "{r}");
    }
    let r = c.call(
        "tools/call",
        json!({"name": "call_tool", "arguments": {"arguments": {}}}),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = c.call(
        "tools/call",
        json!({"name": "search_tools", "arguments": {}}),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

#[test]
fn call_tool_carries_progress_and_cancellation_like_a_direct_call() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fx.log");
    let mut entry = fixture_entry(&["--name", "fx"]);
    entry["args"]
        .as_array_mut()
        .unwrap()
        .extend([json!("--log"), json!(log.display().to_string())]);
    let hub = search_hub(entry, &[]);
    let c = McpClient::try_connect_at(hub.port, "/mcp/find", &[]).expect("session");

    // Progress: the call's notifications come back on its stream with the caller's token.
    let r = c
        .send(
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                "name": "call_tool", "arguments": {"name": "fx__progress", "arguments": {"count": 5}},
                "_meta": {"progressToken": "tok-7"}}}),
            &[],
            Duration::from_secs(30),
        )
        .unwrap();
    let msgs = jsonrpc_messages(&r);
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 5, "{msgs:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok-7")
    );
    assert!(
        msgs.iter()
            .any(|m| m["id"] == 7 && m.get("result").is_some())
    );

    // Cancellation: the upstream hears it, as for a direct call.
    let port = hub.port;
    let session = c.session.clone();
    let slow = std::thread::spawn(move || {
        let mut c = McpClient::resume(port, &session);
        c.path = "/mcp/find".into();
        c.send(
            &json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {
                "name": "call_tool", "arguments": {"name": "fx__sleep", "arguments": {"ms": 600000}}}}),
            &[],
            Duration::from_secs(60),
        )
    });
    let wait_log = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(needle)
        {
            assert!(Instant::now() < deadline, "the upstream never saw {needle}");
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    wait_log("\"sleep\"");
    let r = c
        .send(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": "slow", "reason": "user"}}),
            &[],
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(r.status, 202);
    wait_log("notifications/cancelled");
    let answered = slow
        .join()
        .expect("thread")
        .expect("the slow call's stream ended");
    assert!(
        !jsonrpc_messages(&answered)
            .iter()
            .any(|m| m["id"] == "slow"),
        "a cancelled call gets no answer: {}",
        answered.text()
    );
}

fn python() -> Option<String> {
    let p = std::env::var("MCP_HUB_PYTHON").ok();
    if p.is_none() {
        eprintln!("SKIP: MCP_HUB_PYTHON is not set (run scripts/setup-test-peers.sh)");
    }
    p
}

/// Two Python SDK clients on a search profile, each answering sampling, elicitation and roots
/// with its own name, call an isolated server's `ask_client` through `call_tool`: every request
/// reaches its own caller, as it does for direct calls (`routing.rs`).
#[test]
fn call_tool_routes_server_requests_to_their_caller() {
    let Some(python) = python() else { return };
    let mut iso = fixture_entry(&[]);
    iso["isolation"] = json!("session");
    iso["maxInstances"] = json!(4);
    let cfg = json!({
        "mcpServers": {"iso": iso},
        "profiles": {"find": {"mode": "search", "servers": ["iso"]}},
    });
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .start();
    hub.wait_status(&["iso"], "connected");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/py_two_clients.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(format!("http://127.0.0.1:{}/mcp/find", hub.port))
        .arg("iso__")
        .arg("6")
        .arg("exact")
        .arg("call_tool")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

/// The figure in docs/CONFIG.md: for each query a person wrote against server-everything's and
/// the fixture's tools, is a tool that person would pick among the first five results?
#[test]
fn search_finds_the_right_tool_for_natural_language_queries() {
    let Ok(everything) = std::env::var("MCP_HUB_SERVER_EVERYTHING") else {
        eprintln!("SKIP: MCP_HUB_SERVER_EVERYTHING is not set (run scripts/setup-test-peers.sh)");
        return;
    };
    let cfg = json!({
        "mcpServers": {
            "everything": {"command": "node", "args": [everything, "stdio"]},
            "fx": fixture_entry(&["--name", "fx"]),
        },
        "profiles": {"find": {"mode": "search", "servers": ["*"]}},
    });
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .start();
    hub.wait_status(&["everything", "fx"], "connected");
    let mut c = McpClient::try_connect_at(hub.port, "/mcp/find", &[]).expect("session");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/search-queries.json");
    let queries: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(queries.len() >= 50, "{} queries", queries.len());
    let (mut top1, mut top5) = (0, 0);
    for q in &queries {
        let query = q["query"].as_str().unwrap();
        let expect: Vec<&str> = q["expect"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let found = search(&mut c, query, 5);
        let rank = found.iter().position(|f| expect.contains(&f.as_str()));
        match rank {
            Some(0) => {
                top1 += 1;
                top5 += 1;
            }
            Some(_) => top5 += 1,
            None => eprintln!("miss: {query:?} → {found:?} (expected one of {expect:?})"),
        }
    }
    let n = queries.len();
    let rate = top5 as f64 / n as f64;
    eprintln!(
        "search quality: {top5}/{n} queries ({:.1} %) have a right tool in the top 5, {top1}/{n} ({:.1} %) at the top",
        rate * 100.0,
        top1 as f64 * 100.0 / n as f64
    );
    assert!(rate >= 0.9, "top-5 hit rate {rate:.3} is below 0.9");
}

/// With the benchmark's catalogue (50 upstreams, 6,000 tools, a 2.15 MB full `tools/list`), a
/// search-mode client reads a few hundred bytes, and can still find and call any tool.
#[test]
fn a_search_profile_over_six_thousand_tools_lists_under_4_kb() {
    let mut servers = serde_json::Map::new();
    let mut names = Vec::new();
    for i in 0..50 {
        let name = format!("fx{i}");
        servers.insert(name.clone(), fixture_entry(&["--tools", "100"]));
        names.push(name);
    }
    let cfg = json!({
        "mcpServers": servers,
        "profiles": {"find": {"mode": "search", "servers": ["*"]}},
    });
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .start();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    hub.wait_status_within(&refs, "connected", Duration::from_secs(120));
    let full = McpClient::connect(hub.port);
    let r = full
        .send(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[],
            Duration::from_secs(60),
        )
        .unwrap();
    let all = r.json()["result"]["tools"].as_array().map_or(0, Vec::len);
    let full_bytes = r.body.len();
    assert!(all >= 6000, "{all} tools");

    let c = McpClient::try_connect_at(hub.port, "/mcp/find", &[]).expect("session");
    let r = c
        .send(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[],
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(
        r.body.len() < 4096,
        "search-mode tools/list is {} bytes (the full one: {full_bytes} bytes)",
        r.body.len()
    );
    eprintln!(
        "search-mode tools/list: {} bytes over {all} tools (the full list: {full_bytes} bytes)",
        r.body.len()
    );
    let mut c = c;
    let found = search(&mut c, "extra tool number 42 fx17", 5);
    assert!(found.contains(&"fx17__tool_42".to_owned()), "{found:?}");
    let r = c.call(
        "tools/call",
        json!({"name": "call_tool", "arguments": {"name": "fx17__tool_42", "arguments": {"text": "hi"}}}),
    );
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("hi")),
        "{r}"
    );
}
