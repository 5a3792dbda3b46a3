//! What a profile's endpoint advertises and serves: only its own servers' capabilities and
//! skills, in both eras.

use mcp_hub_tests::HubCmd;
use serde_json::{Value, json};

use crate::fixture_entry;
use crate::profiles::{SKILLS_SKILL, skills_profile_hub};
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

#[test]
fn a_stateless_client_of_a_profile_lists_and_gets_only_its_servers_skills() {
    let hub = skills_profile_hub();
    let port = hub.port;
    let listed = ask(port, "/mcp/dev", 1, "skills/list", json!({}), &[]);
    let uris: Vec<&str> = listed["result"]["skills"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|s| s["uri"].as_str())
        .collect();
    assert_eq!(uris, [format!("mine__{SKILLS_SKILL}")], "{listed}");
    let got = ask(
        port,
        "/mcp/dev",
        2,
        "skills/get",
        json!({"uri": format!("mine__{SKILLS_SKILL}")}),
        &[],
    );
    assert!(got.get("result").is_some(), "{got}");
    let hidden = format!("theirs__{SKILLS_SKILL}");
    let r = ask(
        port,
        "/mcp/dev",
        3,
        "skills/get",
        json!({"uri": hidden}),
        &[],
    );
    assert_eq!(
        r["error"]["message"],
        format!("Invalid params: unknown skill: {hidden}"),
        "{r}"
    );
    let r = ask(
        port,
        "/mcp/dev",
        4,
        "resources/read",
        json!({"uri": hidden}),
        &[],
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let all = ask(port, "/mcp", 5, "skills/list", json!({}), &[]);
    assert_eq!(
        all["result"]["skills"].as_array().map(Vec::len),
        Some(2),
        "{all}"
    );
}
