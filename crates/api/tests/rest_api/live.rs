//! With the fixture server over stdio: tool, resource and prompt calls, the events of starting,
//! stopping and refreshing, and a crash announced.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_calls() {
    let fx = need_fixture!();
    let hub = Hub::start(
        vec![fixture_def("fx", &fx, &["--instructions", "be nice"])],
        Duration::from_secs(10),
    )
    .await;

    let v = ok_json(
        &hub.post("/api/servers/info", json!({"server_name": "fx"}))
            .await,
    );
    let s = &v["server"];
    assert_server_shape(s);
    assert_eq!(s["status"], "connected", "{s}");
    assert_eq!(s["transport"], "stdio");
    assert!(s["pid"].as_u64().is_some());
    assert_eq!(s["instructions"], "be nice");
    assert!(s["protocolVersion"].is_string());
    assert_eq!(s["serverInfo"]["name"], "mcp-hub-fixture");
    let tools = s["capabilities"]["tools"].as_array().unwrap();
    let echo = tools
        .iter()
        .find(|t| t["name"] == "echo")
        .expect("echo listed");
    assert!(echo["inputSchema"].is_object(), "whole tool objects");

    let h = ok_json(&hub.get("/api/health").await);
    let caps = &h["mcpEndpoint"]["registeredCapabilities"];
    assert_eq!(caps["tools"], tools.len());
    assert!(h["mcpEndpoint"]["totalCapabilities"].as_u64().unwrap() > 0);

    // Tools by upstream name.
    let v = ok_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "echo", "arguments": {"text": "hi hub"}, "request_options": {"timeout": 5000}}),
        )
        .await,
    );
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hi hub"),
        "{v}"
    );
    // An empty Lua table for arguments.
    ok_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "pid", "arguments": []}),
        )
        .await,
    );
    // A tool-level error is a result.
    let v = ok_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "fail", "arguments": {"message": "nope"}}),
        )
        .await,
    );
    assert_eq!(v["result"]["isError"], true);

    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "nope"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "TOOL_NOT_FOUND",
    );
    assert_eq!(e["error"], "Tool not found");
    assert!(
        e["data"]["availableTools"]
            .as_array()
            .unwrap()
            .contains(&json!("echo"))
    );
    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "echo", "arguments": "str"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["data"]["args"], "str");
    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "sleep", "arguments": {"ms": 10000}, "request_options": {"timeout": 300}}),
        )
        .await,
        StatusCode::GATEWAY_TIMEOUT,
        "REQUEST_TIMEOUT",
    );
    assert_eq!(e["data"]["timeout"], 300);
    assert_eq!(e["data"]["tool"], "sleep");

    // Resources and prompts.
    let v = ok_json(
        &hub.post(
            "/api/servers/resources",
            json!({"server_name": "fx", "uri": "test://static-text"}),
        )
        .await,
    );
    assert_eq!(v["result"]["contents"][0]["uri"], "test://static-text");
    let e = err_json(
        &hub.post(
            "/api/servers/resources",
            json!({"server_name": "fx", "uri": "test://nope"}),
        )
        .await,
        StatusCode::BAD_GATEWAY,
        "RESOURCE_READ_ERROR",
    );
    assert!(e["data"]["originalError"]["code"].is_i64(), "{e}");
    assert!(
        e["error"].as_str().unwrap().starts_with("MCP error "),
        "{e}"
    );

    let v = ok_json(
        &hub.post(
            "/api/servers/prompts",
            json!({"server_name": "fx", "prompt": "test_prompt_with_arguments", "arguments": {"arg1": "a", "arg2": "b"}}),
        )
        .await,
    );
    assert!(v["result"]["messages"].is_array(), "{v}");
    let e = err_json(
        &hub.post(
            "/api/servers/prompts",
            json!({"server_name": "fx", "prompt": "nope"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "PROMPT_NOT_FOUND",
    );
    assert!(
        e["data"]["availablePrompts"]
            .as_array()
            .unwrap()
            .contains(&json!("test_simple_prompt"))
    );

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_while_starting_stopping_refreshing() {
    let fx = need_fixture!();
    let hub = Hub::start(
        vec![fixture_def("fx", &fx, &["--list-changed-after", "300"])],
        Duration::from_secs(10),
    )
    .await;
    let mut ev = hub.events().await;
    ev.until("hub_state", |n, _| n == "hub_state").await;

    let v = ok_json(
        &hub.post("/api/servers/stop", json!({"server_name": "fx"}))
            .await,
    );
    assert_eq!(v["server"]["status"], "disconnected");
    assert_eq!(v["server"]["capabilities"]["tools"], json!([]));
    let u = ev.subscription("servers_updated").await;
    assert_eq!(u["changes"]["modified"], json!(["fx"]));

    let v = ok_json(
        &hub.post("/api/servers/start", json!({"server_name": "fx"}))
            .await,
    );
    assert_eq!(v["server"]["status"], "connected");
    let u = ev.subscription("servers_updated").await;
    assert_eq!(u["changes"]["modified"], json!(["fx"]));

    // 300 ms after connecting the fixture adds `late_tool` and says so; the event carries the
    // whole new list.
    let t = ev.subscription("tool_list_changed").await;
    assert_eq!(t["server"], "fx");
    let tools = t["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "late_tool"), "{t}");
    assert!(tools.iter().all(|t| t["inputSchema"].is_object()));

    let v = ok_json(
        &hub.post("/api/servers/refresh", json!({"server_name": "fx"}))
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert!(
        v["server"]["capabilities"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "late_tool")
    );
    let v = ok_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "late_tool"}),
        )
        .await,
    );
    assert!(v["result"].is_object());

    drop(ev);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_crash_is_announced() {
    let fx = need_fixture!();
    let hub = Hub::start(
        vec![fixture_def("fx", &fx, &["--crash-after", "1"])],
        Duration::from_secs(10),
    )
    .await;
    let mut ev = hub.events().await;
    ev.until("hub_state", |n, _| n == "hub_state").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "echo", "arguments": {"text": "x"}}),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_NOT_CONNECTED",
    );
    assert_eq!(e["data"]["server"], "fx");
    let u = ev
        .until("servers_updated after the crash", |n, v| {
            n == "subscription_event"
                && v["type"] == "servers_updated"
                && v["reason"] == "server_status"
        })
        .await;
    assert_eq!(u["changes"]["modified"], json!(["fx"]));

    hub.shutdown().await;
}
