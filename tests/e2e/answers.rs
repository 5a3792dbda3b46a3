//! Every call gets its answer, even when the upstream answers badly or the client ends the
//! session while the call is in flight.

use std::time::Duration;

use mcp_hub_tests::{HubCmd, McpClient};
use serde_json::json;

use crate::config;

const T: Duration = Duration::from_secs(30);

/// A stdio server in `sh` that answers `tools/call` of `error_not_object`, `no_result` and
/// `cut_off` with a malformed response carrying the request's id, and ignores `ping`s so that
/// only a timeout could end such a call otherwise.
const BROKEN_SERVER: &str = r#"
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9][0-9]*\)[,}].*/\1/p')
  case $line in
    *'"initialize"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"broken","version":"1"}}}\n' "$id" ;;
    *'"tools/list"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"error_not_object","inputSchema":{"type":"object"}},{"name":"no_result","inputSchema":{"type":"object"}},{"name":"cut_off","inputSchema":{"type":"object"}}]}}\n' "$id" ;;
    *'"error_not_object"'*)
      printf '{"jsonrpc":"2.0","id":%s,"error":"boom"}\n' "$id" ;;
    *'"no_result"'*)
      printf '{"jsonrpc":"2.0","id":%s}\n' "$id" ;;
    *'"cut_off"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"ha\n' "$id" ;;
  esac
done
"#;

#[test]
fn a_malformed_answer_with_a_readable_id_fails_its_call_at_once() {
    let server = json!({"command": "/bin/sh", "args": ["-c", BROKEN_SERVER], "timeout": 600_000});
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("broken", server)]))
        .start();
    hub.wait_status(&["broken"], "connected");
    let mut c = McpClient::connect(hub.port);
    for tool in ["error_not_object", "no_result", "cut_off"] {
        // The server's timeout is ten minutes: only the malformed answer can end the call in T.
        let v = c
            .try_call(
                "tools/call",
                json!({"name": format!("broken__{tool}"), "arguments": {}}),
                T,
            )
            .unwrap_or_else(|e| panic!("{tool}: no answer within {T:?}: {e:?}"));
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("malformed"), "{tool}: {v}");
        let r = hub.call_tool("broken", tool, json!({}));
        assert!(r.status >= 400, "{tool}: {}", r.text());
        assert!(r.text().contains("malformed"), "{tool}: {}", r.text());
    }
    // The server is still the same connected one: a bad answer fails only its call.
    assert_eq!(hub.server("broken")["status"], "connected");
}

#[test]
fn deleting_a_session_answers_its_calls_in_flight() {
    let cmd = HubCmd::new();
    let log = cmd.dir().join("upstream.log");
    let entry = crate::fixture_entry(&["--log", &log.display().to_string()]);
    let hub = cmd.config("servers.json", &config(&[("a", entry)])).start();
    hub.wait_status(&["a"], "connected");
    let c = McpClient::connect(hub.port);
    std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            c.try_call_id(
                json!("long"),
                "tools/call",
                json!({"name": "a__sleep", "arguments": {"ms": 600_000}}),
                T,
            )
        });
        // The call has reached the upstream: it is in flight.
        hub.wait_for(T, |_| {
            std::fs::read_to_string(&log)
                .ok()?
                .contains("\"sleep\"")
                .then_some(())
        });
        assert_eq!(c.delete(&[]), 200);
        let answer = call
            .join()
            .expect("caller thread")
            .unwrap_or_else(|e| panic!("the POST stream ended without an answer: {e}"));
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("session ended"), "{answer}");
    });
    // The session is gone for good.
    let v = c.send(
        &json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
        &[],
        T,
    );
    assert_eq!(v.expect("answer").status, 404);
}
