//! `/metrics`: the Prometheus exposition, its protection, its bounded label sets, and the call
//! summaries of `/api/servers` and `mcp-hub list` read from the same figures.

use std::collections::BTreeSet;
use std::time::Duration;

use mcp_hub_tests::{HubCmd, McpClient, request};
use serde_json::{Value, json};

use crate::{config, fixture_entry};

/// The series of an exposition (name and labels, without the value), and the value of each.
fn series(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_owned(), v.parse::<f64>().expect("sample value"))
        })
        .collect()
}

fn value(text: &str, key: &str) -> Option<f64> {
    series(text)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn scrape(port: u16, headers: &[(&str, &str)]) -> String {
    let r = request(port, "GET", "/metrics", headers, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn metrics_count_calls_per_tool_errors_and_latency() {
    let hub = HubCmd::new()
        .config("c.json", &config(&[("fx", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["fx"], "connected");
    let mut c = McpClient::connect(hub.port);
    for i in 0..5 {
        let r = c.call(
            "tools/call",
            json!({"name": "fx__echo", "arguments": {"text": format!("hi {i}")}}),
        );
        assert_eq!(r["result"]["content"][0]["text"], format!("hi {i}"), "{r}");
    }
    let r = c.call("tools/call", json!({"name": "fx__fail", "arguments": {}}));
    assert_eq!(r["result"]["isError"], true, "{r}");
    let r = c.call(
        "tools/call",
        json!({"name": "nope__nothing", "arguments": {}}),
    );
    assert!(r.get("error").is_some(), "{r}");
    // The REST API's call path counts too.
    let r = hub.call_tool("fx", "echo", json!({"text": "rest"}));
    assert_eq!(r.status, 200, "{}", r.text());

    let text = scrape(hub.port, &[]);
    let echo = r#"{server="fx",tool="echo"}"#;
    assert_eq!(
        value(&text, &format!("mcp_hub_tool_calls_total{echo}")),
        Some(6.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("mcp_hub_tool_call_duration_seconds_count{echo}")
        ),
        Some(6.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("mcp_hub_tool_upstream_duration_seconds_count{echo}")
        ),
        Some(6.0)
    );
    assert_eq!(
        value(
            &text,
            r#"mcp_hub_tool_call_duration_seconds_bucket{server="fx",tool="echo",le="+Inf"}"#
        ),
        Some(6.0)
    );
    assert_eq!(
        value(
            &text,
            r#"mcp_hub_tool_errors_total{server="fx",tool="fail",kind="tool_error"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"mcp_hub_tool_calls_total{server="",tool="__unknown__"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"mcp_hub_tool_calls_in_flight{server="fx",tool="echo"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            r#"mcp_hub_server_status{server="fx",status="connected"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"mcp_hub_server_status{server="fx",status="disconnected"}"#
        ),
        Some(0.0)
    );
    assert!(
        value(
            &text,
            r#"mcp_hub_server_catalog_items{server="fx",list="tools"}"#
        )
        .is_some_and(|n| n > 5.0)
    );
    assert!(
        value(
            &text,
            r#"mcp_hub_server_routed_bytes_total{server="fx",direction="in"}"#
        )
        .is_some_and(|n| n > 0.0)
    );
    assert!(
        value(
            &text,
            r#"mcp_hub_server_last_connect_duration_seconds{server="fx"}"#
        )
        .is_some_and(|n| n > 0.0)
    );
    assert_eq!(
        value(
            &text,
            r#"mcp_hub_sessions{era="handshake",transport="streamable-http"}"#
        ),
        Some(1.0)
    );
    assert!(
        value(
            &text,
            r#"mcp_hub_http_requests_total{route="/mcp",status="200"}"#
        )
        .is_some_and(|n| n >= 8.0),
        "{text}"
    );
    assert!(text.contains("mcp_hub_build_info{version=\""));
    assert_eq!(
        value(&text, r#"mcp_hub_config_reloads_total{outcome="failed"}"#),
        Some(0.0)
    );

    // The same figures, summed per server, in /api/servers and `mcp-hub list`.
    let fx = hub.server("fx");
    let calls = &fx["calls"];
    assert_eq!(calls["total"], 7, "{fx}");
    assert_eq!(calls["errors"], 1);
    assert_eq!(calls["errorsByKind"]["tool_error"], 1);
    assert!(calls["p50Ms"].as_f64().is_some_and(|v| v > 0.0), "{calls}");
    assert!(calls["p99Ms"].as_f64() >= calls["p50Ms"].as_f64());
    let out = std::process::Command::new(mcp_hub_tests::bin("mcp-hub"))
        .args(["list", "--url", &hub.url("")])
        .output()
        .expect("mcp-hub list");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("calls: 7, errors: 1 (14.3%), p50 "),
        "{stdout}"
    );
}

#[test]
fn inventing_tool_names_does_not_grow_the_metrics() {
    let hub = HubCmd::new()
        .config("c.json", &config(&[("fx", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["fx"], "connected");
    let c = McpClient::connect(hub.port);
    // Batches (protocol 2025-03-26) keep 10,000 calls to a few hundred requests.
    let batch_client = {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "hostile", "version": "1"}}});
        let r = request(
            hub.port,
            "POST",
            "/mcp",
            &[("Accept", "application/json, text/event-stream")],
            Some(init.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("mcp-session-id").expect("session").to_owned()
    };
    drop(c);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut name = move || {
        // xorshift: different names every call, no two alike in practice.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        match seed % 3 {
            0 => format!("fx__{seed:x}"),
            1 => format!("{seed:x}"),
            _ => format!("srv{}__tool", seed % 1000),
        }
    };
    let send = |n: usize, name: &mut dyn FnMut() -> String| {
        let mut sent = 0;
        while sent < n {
            let k = (n - sent).min(50);
            let batch: Vec<Value> = (0..k)
                .map(|i| {
                    json!({"jsonrpc": "2.0", "id": sent + i, "method": "tools/call",
                    "params": {"name": name(), "arguments": {}}})
                })
                .collect();
            let r = request(
                hub.port,
                "POST",
                "/mcp",
                &[
                    ("Accept", "application/json, text/event-stream"),
                    ("Mcp-Session-Id", &batch_client),
                    ("MCP-Protocol-Version", "2025-03-26"),
                ],
                Some(Value::Array(batch).to_string().as_bytes()),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            sent += k;
        }
    };
    send(50, &mut name);
    // A few through the REST API too (it refuses names the server does not list before routing).
    for _ in 0..20 {
        let r = hub.call_tool("fx", &name(), json!({}));
        assert!(r.status >= 400, "{}", r.text());
    }
    // A first scrape, so the scrape's own request counter exists in both.
    scrape(hub.port, &[]);
    let before = scrape(hub.port, &[]);
    let keys = |t: &str| -> BTreeSet<String> { series(t).into_iter().map(|(k, _)| k).collect() };
    send(10_000, &mut name);
    for _ in 0..20 {
        let _ = hub.call_tool("fx", &name(), json!({}));
    }
    let after = scrape(hub.port, &[]);
    assert_eq!(keys(&before), keys(&after), "new series appeared");
    let unknown = r#"mcp_hub_tool_calls_total{server="",tool="__unknown__"}"#;
    assert_eq!(value(&after, unknown), Some(10_050.0));
    assert!(
        after.len() < before.len() + 200,
        "the exposition grew from {} to {} bytes",
        before.len(),
        after.len()
    );
}

#[test]
fn metrics_need_the_token_and_can_have_an_address_of_their_own() {
    let mport = free_port();
    let listen = format!("127.0.0.1:{mport}");
    let hub = HubCmd::new()
        .config("c.json", &config(&[("fx", fixture_entry(&[]))]))
        .args(&["--token", "s3cret", "--metrics-listen", &listen])
        .start();
    let auth = [("Authorization", "Bearer s3cret")];
    let r = request(hub.port, "GET", "/metrics", &[], None);
    assert_eq!(r.status, 401);
    assert!(!r.text().contains("mcp_hub_"));
    let text = scrape(hub.port, &auth);
    assert_eq!(
        value(&text, r#"mcp_hub_rejected_requests_total{reason="token"}"#),
        Some(1.0),
        "{text}"
    );
    // The scrape address: the same checks, nothing but /metrics.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", mport)).is_err() {
        assert!(std::time::Instant::now() < deadline, "no metrics listener");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(request(mport, "GET", "/metrics", &[], None).status, 401);
    assert_eq!(
        request(
            mport,
            "GET",
            "/metrics",
            &[
                ("Authorization", "Bearer s3cret"),
                ("Origin", "http://evil.example")
            ],
            None
        )
        .status,
        403
    );
    assert_eq!(
        request(mport, "GET", "/api/servers", &auth, None).status,
        404
    );
    assert_eq!(request(mport, "GET", "/mcp", &auth, None).status, 404);
    let text = scrape(mport, &auth);
    assert!(
        value(&text, r#"mcp_hub_rejected_requests_total{reason="token"}"#)
            .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            r#"mcp_hub_rejected_requests_total{reason="host_origin"}"#
        )
        .is_some_and(|n| n >= 1.0)
    );
}
