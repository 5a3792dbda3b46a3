//! Error messages that say what is wrong: the nesting limit, an impossible session id, a missing
//! working directory, a config file that ends too early.

use std::time::Duration;

use mcp_hub_tests::{HubCmd, McpClient, bin, try_request};
use serde_json::json;

use crate::{config, fixture_entry};

const T: Duration = Duration::from_secs(30);

#[test]
fn params_nested_deeper_than_the_limit_are_named_as_such() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let mut c = McpClient::connect(hub.port);
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    // Written by hand: serde_json would refuse to build a value this deep.
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":"deep","method":"tools/call","params":{{"name":"a__echo","arguments":{{"text":"x","deep":{deep}}}}}}}"#
    );
    let r = c.send_bytes(body.as_bytes(), &[], T).expect("answer");
    let text = r.text();
    assert!(text.contains("nested more than 128 levels"), "{text}");
    assert!(!text.contains("expected an object"), "{text}");
    // A shallow call on the same session still works.
    let v = c.call(
        "tools/call",
        json!({"name": "a__echo", "arguments": {"text": "ok"}}),
    );
    assert_eq!(v["result"]["content"][0]["text"], "ok", "{v}");
}

#[test]
fn a_session_id_that_is_not_visible_ascii_is_called_invalid_not_missing() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let accept = ("Accept", "application/json, text/event-stream");
    let bad = ("Mcp-Session-Id", "sessi\u{f3}n-\u{e9}");
    for (method, body) in [
        ("POST", Some(&list[..])),
        ("POST", Some(init.as_bytes())),
        ("GET", None),
        ("DELETE", None),
    ] {
        let accept = if method == "GET" {
            ("Accept", "text/event-stream")
        } else {
            accept
        };
        let r = try_request(hub.port, method, "/mcp", &[accept, bad], body, T).expect("answer");
        assert_eq!(r.status, 400, "{method}: {}", r.text());
        assert!(r.text().contains("visible ASCII"), "{method}: {}", r.text());
        assert!(
            r.header("mcp-session-id").is_none(),
            "{method}: no session may be opened"
        );
    }
}

#[test]
fn a_missing_cwd_is_reported_as_a_missing_working_directory() {
    let cmd = HubCmd::new();
    let missing = cmd.dir().join("no-such-dir");
    let mut entry = fixture_entry(&[]);
    entry["cwd"] = json!(missing.display().to_string());
    let hub = cmd.config("servers.json", &config(&[("a", entry)])).start();
    let error = hub.wait_for(Duration::from_secs(30), |h| {
        h.server("a")["error"].as_str().map(str::to_owned)
    });
    assert!(
        error.contains("working directory") && error.contains("no-such-dir"),
        "{error}"
    );
}

#[test]
fn a_config_file_that_ends_too_early_is_reported_where_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("servers.json");
    // The last `}` is missing: json5 alone would report 1:1.
    std::fs::write(
        &file,
        "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"}\n  }\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin("mcp-hub"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("servers.json:5:1:") && stderr.contains("object opened at 1:1"),
        "{stderr}"
    );
}
