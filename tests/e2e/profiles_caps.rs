//! What a profile's endpoint advertises: only its own servers' capabilities, in both eras.

use mcp_hub_tests::HubCmd;
use serde_json::{Value, json};

use crate::fixture_entry;
use crate::profiles_modern::ask;

/// A profile advertises only what its own servers offer, in both eras: a client of a profile
/// without the skills server must not be told to call `skills/list` (it would get nothing, or an
/// error) because another server of the hub has skills.
#[test]
fn a_profile_advertises_only_its_servers_capabilities() {
    let cfg = json!({
        "mcpServers": {
            "skilled": fixture_entry(&["--skills", "ok"]),
            "plain": fixture_entry(&[]),
        },
        "profiles": {"plain": {"servers": ["plain"]}},
    });
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .start();
    hub.wait_status(&["skilled", "plain"], "connected");
    let skills = |caps: &Value| {
        caps["extensions"]
            .as_object()
            .is_some_and(|e| !e.is_empty())
    };
    let initialize = |path: &str| {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"}}});
        let r = mcp_hub_tests::request(
            hub.port,
            "POST",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            Some(body.to_string().as_bytes()),
        );
        let v = r.json();
        v["result"]["capabilities"].clone()
    };

    let full = initialize("/mcp");
    assert!(skills(&full), "the full view has the skills server: {full}");
    assert!(full["tools"].is_object(), "{full}");
    let plain = initialize("/mcp/plain");
    assert!(!skills(&plain), "a profile without it: {plain}");
    assert!(
        plain["tools"].is_object() && plain["prompts"].is_object(),
        "{plain}"
    );

    let d = ask(hub.port, "/mcp", 1, "server/discover", json!({}), &[]);
    assert!(skills(&d["result"]["capabilities"]), "{d}");
    let d = ask(hub.port, "/mcp/plain", 2, "server/discover", json!({}), &[]);
    let caps = &d["result"]["capabilities"];
    assert!(!skills(caps) && caps["tools"].is_object(), "{d}");
}
