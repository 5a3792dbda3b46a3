//! What a client writes in a `tools/call` reaches the upstream as written, over stdio and
//! Streamable HTTP: numbers no float holds, escapes, `_meta`; only the tool's name is swapped.
//! A name given twice is routed and sent as one name, so an upstream never reads a tool the hub
//! did not route. A stateless (2026-07-28) call's arguments pass the same way; what the hub takes
//! out of it (`inputResponses`) does not.

use std::path::Path;
use std::time::Duration;

use mcp_hub_tests::{HubCmd, McpClient, request, transcript_line};
use serde_json::json;

use crate::{StdioAndHttp, config, fixture_entry};

const T: Duration = Duration::from_secs(30);

/// The transcript line of the upstream's `tools/call` that mentions `marker`, as received.
fn received(log: &Path, marker: &str) -> String {
    transcript_line(log, T, |l| {
        l.contains("\"tools/call\"") && l.contains(marker)
    })
}

/// The answer to a body written by hand (a `Value` would rewrite what these tests check).
fn post(c: &McpClient, body: &str) -> String {
    let r = c.send_bytes(body.as_bytes(), &[], T).expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

#[test]
fn arguments_reach_the_upstream_as_the_client_wrote_them() {
    let pair = StdioAndHttp::start(|cmd| cmd);
    let hub = &pair.hub;
    let c = McpClient::connect(hub.port);
    // Written by hand: a `serde_json::Value` would turn the integer into a float and `1.50`
    // into `1.5`, and write the escapes as characters.
    let args = r#"{"text":"as-written","big":123456789012345678901234567890,"f":1.50,"e":"\u00e9\ud83d\ude00","neg":-0}"#;
    for (server, log) in pair.logs() {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"{server}","method":"tools/call","params":{{"name":"{server}__echo","arguments":{args},"_meta":{{"vendor.example/x":{{"v":1.0,"s":"{server}"}}}}}}}}"#
        );
        let answer = post(&c, &body);
        assert!(answer.contains("as-written"), "{server}: {answer}");
        let line = received(log, "as-written");
        assert!(
            line.contains(&format!(r#""arguments":{args}"#)),
            "{server}: {line}"
        );
        assert!(line.contains(r#""name":"echo""#), "{server}: {line}");
        let meta = format!(r#""_meta":{{"vendor.example/x":{{"v":1.0,"s":"{server}"}}}}"#);
        assert!(line.contains(&meta), "{server}: {line}");
    }
}

#[test]
fn a_name_given_twice_is_routed_and_sent_as_one() {
    let cmd = HubCmd::new();
    let a_log = cmd.dir().join("a.log");
    let b_log = cmd.dir().join("b.log");
    let hub = cmd
        .config(
            "servers.json",
            &config(&[
                ("a", fixture_entry(&["--log", &a_log.display().to_string()])),
                ("b", fixture_entry(&["--log", &b_log.display().to_string()])),
            ]),
        )
        .start();
    hub.wait_status(&["a", "b"], "connected");
    let mut c = McpClient::connect(hub.port);
    // JSON parsers keep the last of two equal keys; the hub routes by that one and sends only it.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b__echo","arguments":{"text":"twice"},"name":"a__echo"}}"#;
    let answer = post(&c, body);
    assert!(answer.contains("twice"), "{answer}");
    let line = received(&a_log, "twice");
    assert_eq!(line.matches(r#""name":"#).count(), 1, "{line}");
    assert!(line.contains(r#""name":"echo""#), "{line}");
    assert!(!line.contains("b__echo"), "{line}");
    // Nothing of it reached b: a later call on b is the first b logs.
    let v = c.call(
        "tools/call",
        json!({"name": "b__echo", "arguments": {"text": "after"}}),
    );
    assert_eq!(v["result"]["content"][0]["text"], "after", "{v}");
    received(&b_log, "after");
    let b = std::fs::read_to_string(&b_log).unwrap_or_default();
    assert!(!b.contains("twice"), "{b}");
}

#[test]
fn a_stateless_call_reaches_the_upstream_as_the_client_wrote_it() {
    let pair = StdioAndHttp::start(|cmd| cmd);
    let hub = &pair.hub;
    let meta = r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"e2e","version":"1"}}"#;
    for (server, log) in pair.logs() {
        let tool = format!("{server}__echo");
        let headers = [
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", tool.as_str()),
        ];
        let call = |id: u32, params: String| {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#);
            let r = request(hub.port, "POST", "/mcp", &headers, Some(body.as_bytes()));
            assert_eq!(r.status, 200, "{server}: {}", r.text());
            r.text()
        };
        let args = format!(
            r#"{{"text":"stateless-{server}","big":123456789012345678901234567890,"f":1.50,"e":"\u00e9"}}"#
        );
        let answer = call(
            1,
            format!(r#"{{"name":"{tool}","arguments":{args},"_meta":{meta}}}"#),
        );
        assert!(
            answer.contains(&format!("stateless-{server}")),
            "{server}: {answer}"
        );
        let line = received(log, &format!("stateless-{server}"));
        assert!(line.contains(r#""name":"echo""#), "{server}: {line}");
        assert!(
            line.contains(&format!(r#""arguments":{args}"#)),
            "{server}: {line}"
        );
        // `inputResponses` without a `requestState` answers nothing the hub parked: the hub takes
        // it out rather than hand it to a server that never asked.
        let answer = call(
            2,
            format!(
                r#"{{"name":"{tool}","arguments":{{"text":"taken-out-{server}"}},"inputResponses":{{"x":{{"result":{{}}}}}},"_meta":{meta}}}"#
            ),
        );
        assert!(
            answer.contains(&format!("taken-out-{server}")),
            "{server}: {answer}"
        );
        let line = received(log, &format!("taken-out-{server}"));
        assert!(line.contains(r#""name":"echo""#), "{server}: {line}");
        assert!(!line.contains("inputResponses"), "{server}: {line}");
    }
}
