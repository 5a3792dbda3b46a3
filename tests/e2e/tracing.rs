//! W3C trace context across the hop: a client's `traceparent` (in `_meta` or the HTTP header)
//! becomes the parent of the hub's span, and the upstream message carries a child of it in
//! `params._meta`, over stdio and over Streamable HTTP alike.

use std::path::Path;
use std::time::Duration;

use mcp_hub_tests::{HttpFixture, HubCmd, McpClient};
use serde_json::{Value, json};

use crate::{config, fixture_entry};

const T: Duration = Duration::from_secs(30);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The `tools/call` the upstream logged whose `echo` text is `text`.
fn logged_call(log: &Path, text: &str) -> Value {
    let deadline = std::time::Instant::now() + T;
    loop {
        let found = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|m| m["method"] == "tools/call" && m["params"]["arguments"]["text"] == text);
        if let Some(m) = found {
            return m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no logged call {text} in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks the upstream's `traceparent` is a child in the client's trace, not the client's own.
fn assert_child_of_client(call: &Value) -> String {
    let tp = call["params"]["_meta"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent upstream: {call}"));
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00", "{tp}");
    assert_eq!(parts[1], TRACE, "the client's trace continues: {tp}");
    assert_ne!(
        parts[2], CLIENT_SPAN,
        "the hub's own span is the parent upstream: {tp}"
    );
    assert_eq!(parts[2].len(), 16, "{tp}");
    assert_ne!(parts[2], "0000000000000000", "{tp}");
    assert_eq!(parts[3], "01", "the sampled flag is kept: {tp}");
    tp.to_owned()
}

fn echo(c: &McpClient, name: &str, text: &str, meta: Option<Value>, headers: &[(&str, &str)]) {
    let mut params = json!({"name": name, "arguments": {"text": text}});
    if let Some(m) = meta {
        params["_meta"] = m;
    }
    let body = json!({"jsonrpc": "2.0", "id": text, "method": "tools/call", "params": params});
    let r = c.send(&body, headers, T).expect("an answer");
    let answers = mcp_hub_tests::jsonrpc_messages(&r);
    assert!(
        answers.iter().any(|m| m["id"] == text
            && m["result"]["isError"] != true
            && m.get("result").is_some()),
        "{}",
        r.text()
    );
}

#[test]
fn trace_context_reaches_stdio_and_http_upstreams_as_a_child_of_the_client() {
    let cmd = HubCmd::new();
    let stdio_log = cmd.dir().join("stdio.log");
    let http_log = cmd.dir().join("http.log");
    let http = HttpFixture::start(0, &["--log", &http_log.display().to_string()]);
    let hub = cmd
        .config(
            "servers.json",
            &config(&[
                (
                    "s",
                    fixture_entry(&["--log", &stdio_log.display().to_string()]),
                ),
                ("h", json!({"url": http.url()})),
            ]),
        )
        .start();
    hub.wait_status(&["s", "h"], "connected");
    let c = McpClient::connect(hub.port);
    let parent = format!("00-{TRACE}-{CLIENT_SPAN}-01");

    // In `_meta`, with vendor state, over both transports.
    let meta =
        json!({"traceparent": parent, "tracestate": "congo=t61rcWkgMzE", "progressToken": "p1"});
    for (server, log) in [("s", &stdio_log), ("h", &http_log)] {
        let text = format!("meta-{server}");
        echo(
            &c,
            &format!("{server}__echo"),
            &text,
            Some(meta.clone()),
            &[],
        );
        let call = logged_call(log, &text);
        assert_child_of_client(&call);
        assert_eq!(call["params"]["_meta"]["tracestate"], "congo=t61rcWkgMzE");
        // The rest of `_meta` goes on as before.
        assert!(
            call["params"]["_meta"].get("progressToken").is_some(),
            "{call}"
        );
    }

    // In the HTTP header only.
    for (server, log) in [("s", &stdio_log), ("h", &http_log)] {
        let text = format!("header-{server}");
        echo(
            &c,
            &format!("{server}__echo"),
            &text,
            None,
            &[("traceparent", &parent)],
        );
        assert_child_of_client(&logged_call(log, &text));
    }

    // Two calls in one trace get two distinct hub spans.
    let a = assert_child_of_client(&logged_call(&stdio_log, "meta-s"));
    let b = assert_child_of_client(&logged_call(&stdio_log, "header-s"));
    assert_ne!(a, b);
}

#[test]
fn a_malformed_traceparent_is_never_forwarded() {
    let cmd = HubCmd::new();
    let log = cmd.dir().join("stdio.log");
    let hub = cmd
        .config(
            "servers.json",
            &config(&[("s", fixture_entry(&["--log", &log.display().to_string()]))]),
        )
        .start();
    hub.wait_status(&["s"], "connected");
    let c = McpClient::connect(hub.port);
    let bad = [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx-evil: 1",
        "garbage",
    ];
    for (i, tp) in bad.iter().enumerate() {
        let text = format!("bad-{i}");
        echo(
            &c,
            "s__echo",
            &text,
            Some(json!({"traceparent": tp, "tracestate": "evil=1"})),
            &[],
        );
        let call = logged_call(&log, &text);
        let line = call.to_string();
        assert!(!line.contains("evil"), "{line}");
        assert!(!line.contains("garbage"), "{line}");
        // Tracing is off and the client's value is void: no trace context at all upstream.
        assert!(
            call["params"]["_meta"].get("traceparent").is_none(),
            "{line}"
        );
    }
    // A bad header with a good `_meta`: `_meta` wins, the header is ignored.
    let parent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    echo(
        &c,
        "s__echo",
        "good-meta",
        Some(json!({"traceparent": parent})),
        &[("traceparent", "00-nonsense")],
    );
    assert_child_of_client(&logged_call(&log, "good-meta"));
}
