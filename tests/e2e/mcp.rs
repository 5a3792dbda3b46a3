use mcp_hub_tests::{HubCmd, McpClient};
use serde_json::json;

use crate::{config, fixture_entry};

#[test]
fn tools_of_two_servers_are_namespaced_and_routed() {
    let mut servers = vec![
        ("one", fixture_entry(&["--name", "one"])),
        ("two.srv", fixture_entry(&["--name", "two"])),
    ];
    let everything = std::env::var("MCP_HUB_SERVER_EVERYTHING").ok();
    if let Some(path) = &everything {
        servers.push((
            "everything",
            json!({"command": "node", "args": [path, "stdio"]}),
        ));
    } else {
        eprintln!("note: MCP_HUB_SERVER_EVERYTHING is not set; testing with the fixture only");
    }
    let hub = HubCmd::new()
        .config("servers.json", &config(&servers))
        .start();
    let names: Vec<&str> = servers.iter().map(|(n, _)| *n).collect();
    hub.wait_status(&names, "connected");

    let mut c = McpClient::connect(hub.port);
    let list = c.call("tools/list", json!({}));
    let tools: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(tools.contains(&"one__echo".to_owned()), "{tools:?}");
    assert!(
        tools.contains(&"two_srv__echo".to_owned()),
        "the Node hub's id: non-alphanumerics become _: {tools:?}"
    );
    assert!(tools.iter().all(|t| mcp_hub_tests_name_ok(t)), "{tools:?}");

    let r = c.call(
        "tools/call",
        json!({"name": "two_srv__echo", "arguments": {"text": "routed"}}),
    );
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("routed"),
        "{r}"
    );

    if everything.is_some() {
        let r = c.call(
            "tools/call",
            json!({"name": "everything__echo", "arguments": {"message": "hello"}}),
        );
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("hello"),
            "{r}"
        );
    }
    let r = c.call(
        "tools/call",
        json!({"name": "nope__nothing", "arguments": {}}),
    );
    assert!(
        r["error"]["code"].is_i64(),
        "unknown tools are JSON-RPC errors: {r}"
    );
}

fn mcp_hub_tests_name_ok(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}
