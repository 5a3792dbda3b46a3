//! W3C trace context across the hop: a client's `traceparent` (in `_meta` or the HTTP header)
//! becomes the parent of the hub's span, and the upstream message carries a child of it in
//! `params._meta`, over stdio and over Streamable HTTP alike.

use std::path::Path;
use std::time::Duration;

use mcp_hub_tests::{HubCmd, McpClient, transcript_line};
use serde_json::{Value, json};

use crate::{StdioAndHttp, config, fixture_entry};

const T: Duration = Duration::from_secs(30);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The `tools/call` the upstream logged whose `echo` text is `text`.
fn logged_call(log: &Path, text: &str) -> Value {
    let line = transcript_line(log, T, |l| {
        serde_json::from_str::<Value>(l)
            .is_ok_and(|m| m["method"] == "tools/call" && m["params"]["arguments"]["text"] == text)
    });
    serde_json::from_str(&line).expect("a JSON line")
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
    let pair = StdioAndHttp::start(|cmd| cmd);
    let hub = &pair.hub;
    let c = McpClient::connect(hub.port);
    let parent = format!("00-{TRACE}-{CLIENT_SPAN}-01");

    // In `_meta`, with vendor state, over both transports.
    let meta =
        json!({"traceparent": parent, "tracestate": "congo=t61rcWkgMzE", "progressToken": "p1"});
    for (server, log) in pair.logs() {
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
    for (server, log) in pair.logs() {
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
    let a = assert_child_of_client(&logged_call(&pair.stdio_log, "meta-s"));
    let b = assert_child_of_client(&logged_call(&pair.stdio_log, "header-s"));
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

/// The span id in the `traceparent` an upstream received.
fn upstream_span_id(call: &Value) -> String {
    let tp = call["params"]["_meta"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent upstream: {call}"));
    tp.split('-').nth(2).unwrap_or_default().to_owned()
}

/// Span kinds in OTLP.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;

#[test]
fn exported_spans_show_the_upstream_call_as_a_child_of_the_downstream_request() {
    let receiver = crate::otlp_receiver::Receiver::start();
    let pair = StdioAndHttp::start(|cmd| {
        cmd.args(&["--otlp-endpoint", &receiver.url()])
            .env("OTEL_SERVICE_NAME", "hub-under-test")
            // Export every 100 ms instead of every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
    });
    let hub = &pair.hub;
    let c = McpClient::connect(hub.port);
    let parent = format!("00-{TRACE}-{CLIENT_SPAN}-01");

    for (server, log) in pair.logs() {
        let text = format!("otlp-{server}");
        echo(
            &c,
            &format!("{server}__echo"),
            &text,
            Some(json!({"traceparent": parent})),
            &[],
        );
        let upstream_sees = upstream_span_id(&logged_call(log, &text));
        let (down, up) = receiver.wait(T, |spans| {
            let up = spans.iter().find(|s| s.span_id() == upstream_sees)?;
            let down = spans.iter().find(|s| s.span_id() == up.parent_span_id())?;
            Some((down.clone(), up.clone()))
        });
        // The hub's span continues the client's trace under the client's span.
        assert_eq!(down.trace_id(), TRACE);
        assert_eq!(down.parent_span_id(), CLIENT_SPAN);
        assert_eq!(down.span.kind, SERVER);
        assert_eq!(down.service, "hub-under-test");
        assert_eq!(down.attr("mcp.method.name").as_deref(), Some("tools/call"));
        assert_eq!(down.attr("mcp.tool"), Some(format!("{server}__echo")));
        assert_eq!(down.attr("mcp.server").as_deref(), Some(server));
        assert_eq!(down.attr("mcp.era").as_deref(), Some("2025-11-25"));
        assert_eq!(down.attr("mcp.outcome").as_deref(), Some("ok"));
        let session = down.attr("mcp.session").expect("a session attribute");
        assert_ne!(
            session, c.session,
            "the session id is a secret: only a hash is exported"
        );
        // The upstream span is its child, and it is the span whose id went upstream.
        assert_eq!(up.trace_id(), TRACE);
        assert_eq!(up.span.kind, CLIENT);
        assert_eq!(up.attr("mcp.tool").as_deref(), Some("echo"));
        assert_eq!(up.attr("mcp.server").as_deref(), Some(server));
        assert_eq!(up.attr("mcp.outcome").as_deref(), Some("ok"));
        assert!(up.span.start_time_unix_nano >= down.span.start_time_unix_nano);
        assert!(up.span.end_time_unix_nano <= down.span.end_time_unix_nano);
    }

    // No client context: the hub starts the trace, and the upstream joins it.
    echo(&c, "s__echo", "otlp-root", None, &[]);
    let call = logged_call(&pair.stdio_log, "otlp-root");
    let tp = call["params"]["_meta"]["traceparent"]
        .as_str()
        .expect("a traceparent")
        .to_owned();
    let trace = tp.split('-').nth(1).unwrap_or_default().to_owned();
    assert_ne!(trace, TRACE);
    let root = receiver.wait(T, |spans| {
        spans
            .iter()
            .find(|s| s.trace_id() == trace && s.span.kind == SERVER)
            .cloned()
    });
    assert!(root.span.parent_span_id.is_empty(), "{root:?}");
    let up = receiver.wait(T, |spans| {
        spans
            .iter()
            .find(|s| s.span_id() == upstream_span_id(&call))
            .cloned()
    });
    assert_eq!(up.parent_span_id(), root.span_id());

    // A client that did not sample: nothing exported for it, context still propagated.
    let unsampled = format!("00-{TRACE}-{CLIENT_SPAN}-00");
    echo(
        &c,
        "s__echo",
        "unsampled",
        Some(json!({"traceparent": unsampled})),
        &[],
    );
    let call = logged_call(&pair.stdio_log, "unsampled");
    let tp = call["params"]["_meta"]["traceparent"]
        .as_str()
        .expect("a traceparent");
    assert!(tp.ends_with("-00"), "{tp}");
    // A later sampled call's spans arrive; the unsampled one's never do.
    echo(
        &c,
        "s__echo",
        "after",
        Some(json!({"traceparent": parent})),
        &[],
    );
    let after = upstream_span_id(&logged_call(&pair.stdio_log, "after"));
    receiver.wait(T, |spans| {
        spans.iter().any(|s| s.span_id() == after).then_some(())
    });
    let unsampled_id = upstream_span_id(&call);
    receiver.wait(T, |spans| {
        (!spans.iter().any(|s| s.span_id() == unsampled_id)).then_some(())
    });
}

#[test]
fn a_collector_that_is_down_or_hangs_neither_fails_nor_holds_calls() {
    // One endpoint refuses connections (nothing listens), one accepts and never answers.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let hang = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hang_port = hang.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        // Bounded: the test makes a handful of connections at most.
        for conn in hang.incoming().take(64).flatten() {
            held.push(conn);
        }
    });
    for port in [closed, hang_port] {
        let cmd = HubCmd::new();
        let hub = cmd
            .config("servers.json", &config(&[("s", fixture_entry(&[]))]))
            .args(&["--otlp-endpoint", &format!("http://127.0.0.1:{port}")])
            .env("OTEL_BSP_SCHEDULE_DELAY", "10")
            .start();
        hub.wait_status(&["s"], "connected");
        let c = McpClient::connect(hub.port);
        for i in 0..50 {
            let started = std::time::Instant::now();
            echo(&c, "s__echo", &format!("c{i}"), None, &[]);
            // An export waits up to 5 s; a call that waited on one would show it.
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "call {i} took {:?} with the collector on port {port}",
                started.elapsed()
            );
        }
    }
}

#[test]
fn a_stateless_2026_request_carries_its_trace_context_upstream() {
    let cmd = HubCmd::new();
    let log = cmd.dir().join("stdio.log");
    let hub = cmd
        .config(
            "servers.json",
            &config(&[("s", fixture_entry(&["--log", &log.display().to_string()]))]),
        )
        .start();
    hub.wait_status(&["s"], "connected");
    let parent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let v = "2026-07-28";
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "s__echo",
        "arguments": {"text": "stateless"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": v,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
            "traceparent": parent,
        }
    }});
    let r = mcp_hub_tests::request(
        hub.port,
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", v),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "s__echo"),
        ],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_child_of_client(&logged_call(&log, "stateless"));
}

#[test]
fn queued_spans_are_flushed_when_the_hub_stops() {
    let receiver = crate::otlp_receiver::Receiver::start();
    let cmd = HubCmd::new();
    let log = cmd.dir().join("stdio.log");
    let mut hub = cmd
        .config(
            "servers.json",
            &config(&[("s", fixture_entry(&["--log", &log.display().to_string()]))]),
        )
        .args(&["--otlp-endpoint", &receiver.url()])
        // No scheduled export during the test: only the shutdown flush can deliver the span.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .start();
    hub.wait_status(&["s"], "connected");
    let c = McpClient::connect(hub.port);
    echo(&c, "s__echo", "last", None, &[]);
    let sent = upstream_span_id(&logged_call(&log, "last"));
    assert!(hub.terminate().success());
    receiver.wait(T, |spans| {
        spans.iter().any(|s| s.span_id() == sent).then_some(())
    });
}
