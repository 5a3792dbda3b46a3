//! Routes that need no live server: health and listing, protocol-level errors, calls on
//! servers that cannot serve, start/stop/refresh with the persisted disable, control routes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_server_listing() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let h = ok_json(&hub.get("/api/health").await);
    let keys: Vec<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "status",
            "state",
            "server_id",
            "version",
            "hub_version",
            "activeClients",
            "timestamp",
            "servers",
            "connections",
            "mcpEndpoint",
            "workspaces"
        ]
    );
    assert_eq!(h["status"], "ok");
    assert_eq!(h["state"], "ready");
    assert_eq!(h["server_id"], "mcp-hub");
    assert_eq!(h["version"], "4.2.1", "mcphub.nvim requires exactly this");
    assert_eq!(h["hub_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["activeClients"], 0);
    assert_eq!(
        h["connections"],
        json!({"totalConnections": 0, "connections": []})
    );
    assert_eq!(
        h["mcpEndpoint"],
        json!({"activeClients": 0, "registeredCapabilities": {"tools": 0, "resources": 0, "resourceTemplates": 0, "prompts": 0}, "totalCapabilities": 0})
    );
    assert_eq!(h["workspaces"]["current"], hub.addr.port().to_string());
    assert_eq!(h["workspaces"]["allActive"], workspaces_value());
    assert_eq!(h["servers"].as_array().unwrap().len(), 2);

    let v = ok_json(&hub.get("/api/servers").await);
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    servers.iter().for_each(assert_server_shape);
    assert_eq!(servers[0]["name"], "off");
    assert_eq!(servers[0]["displayName"], "off");
    assert_eq!(servers[0]["description"], "off server");
    assert_eq!(servers[0]["transportType"], "stdio");
    assert_eq!(servers[0]["status"], "disabled");
    assert_eq!(servers[0]["error"], Value::Null);
    assert_eq!(servers[1]["name"], "broken");
    assert_eq!(servers[1]["status"], "disconnected");
    assert_eq!(servers[1]["error"], "Variable 'NOPE' not found");
    assert_eq!(servers[1]["capabilities"]["tools"], json!([]));
    assert_eq!(servers[1]["serverInfo"], Value::Null);
    assert_iso(&servers[1]["lastStarted"]);

    // Trailing slash and case, as Express accepts them.
    ok_json(&hub.get("/api/Servers/").await);

    let v = ok_json(
        &hub.post("/api/servers/info", json!({"server_name": "broken"}))
            .await,
    );
    assert_server_shape(&v["server"]);
    assert_eq!(v["server"]["name"], "broken");
    let e = err_json(
        &hub.post("/api/servers/info", json!({})).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["error"], "Missing server name");
    assert_eq!(e["data"]["field"], "server_name");
    let e = err_json(
        &hub.post("/api/servers/info", json!({"server_name": "nope"}))
            .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );
    assert_eq!(e["error"], "Server not found");
    assert_eq!(e["data"]["server"], "nope");

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_level_errors() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let e = err_json(
        &hub.get("/api/nope").await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    );
    assert_eq!(e["error"], "Cannot GET /api/nope");

    let r = hub.get("/api/servers/tools").await;
    let e = err_json(&r, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "POST");
    assert_eq!(e["data"]["allowed"], json!(["POST"]));
    let r = hub.post("/api/health", json!({})).await;
    err_json(&r, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "GET");
    let r = hub.raw(Method::HEAD, "/api/health", Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.is_empty());
    let r = hub.raw(Method::DELETE, "/api/events", Bytes::new()).await;
    err_json(&r, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");

    let r = hub
        .raw(
            Method::POST,
            "/api/servers/info",
            Bytes::from_static(b"{\"server_name\": "),
        )
        .await;
    err_json(&r, StatusCode::BAD_REQUEST, "INVALID_JSON");

    let big = format!("{{\"server_name\": \"{}\"}}", "x".repeat(MAX_BODY + 1));
    let r = hub
        .raw(Method::POST, "/api/servers/info", Bytes::from(big))
        .await;
    let e = err_json(&r, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    assert_eq!(e["data"]["limit"], MAX_BODY);

    // Valid JSON that is not an object has no fields.
    let r = hub
        .raw(
            Method::POST,
            "/api/servers/info",
            Bytes::from_static(b"[\"off\"]"),
        )
        .await;
    err_json(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let e = err_json(
        &hub.post("/api/servers/info", json!({"server_name": 7}))
            .await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["data"]["field"], "server_name");

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_unusable_servers_fail_cleanly() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let cases = [
        (
            "/api/servers/tools",
            json!({}),
            "Missing server name",
            "server_name",
        ),
        (
            "/api/servers/tools",
            json!({"server_name": "off"}),
            "Missing tool name",
            "tool",
        ),
        (
            "/api/servers/resources",
            json!({"server_name": "off"}),
            "Missing resource URI",
            "uri",
        ),
        (
            "/api/servers/prompts",
            json!({"server_name": "off"}),
            "Missing prompt name",
            "prompt",
        ),
    ];
    for (path, body, msg, field) in cases {
        let e = err_json(
            &hub.post(path, body).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        );
        assert_eq!(e["error"], msg);
        assert_eq!(e["data"]["field"], field);
    }

    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "nope", "tool": "echo"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );
    assert_eq!(e["data"]["tool"], "echo");
    assert_eq!(e["data"]["operation"], "tool_call");

    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "off", "tool": "echo"}),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_NOT_CONNECTED",
    );
    assert_eq!(e["data"]["status"], "disabled");
    assert_eq!(e["data"]["server"], "off");
    let e = err_json(
        &hub.post(
            "/api/servers/resources",
            json!({"server_name": "broken", "uri": "x://y"}),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_NOT_CONNECTED",
    );
    assert_eq!(e["data"]["status"], "disconnected");
    assert_eq!(e["data"]["uri"], "x://y");
    err_json(
        &hub.post(
            "/api/servers/prompts",
            json!({"server_name": "broken", "prompt": "p"}),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_NOT_CONNECTED",
    );

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_refresh_and_persisted_disable() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    // Enabling a disabled server persists `disabled: false` first; its connect then fails.
    let e = err_json(
        &hub.post("/api/servers/start", json!({"server_name": "off"}))
            .await,
        StatusCode::BAD_GATEWAY,
        "CONNECTION_ERROR",
    );
    assert_eq!(
        e["error"],
        "Failed to connect to \"off\" MCP server: Variable 'NOPE' not found"
    );
    assert_eq!(hub.control.calls().persisted, [("off".to_owned(), false)]);

    // A plain stop does not disable.
    let v = ok_json(
        &hub.post("/api/servers/stop", json!({"server_name": "off"}))
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert_eq!(v["server"]["status"], "disconnected");
    assert_eq!(hub.control.calls().persisted.len(), 1);

    let v = ok_json(
        &hub.post(
            "/api/servers/stop?disable=true",
            json!({"server_name": "off"}),
        )
        .await,
    );
    assert_eq!(v["server"]["status"], "disabled");
    assert_server_shape(&v["server"]);
    assert_eq!(hub.control.calls().persisted[1], ("off".to_owned(), true));

    // Stopping a disabled server keeps it disabled and persists nothing.
    let v = ok_json(
        &hub.post(
            "/api/servers/stop?disable=false",
            json!({"server_name": "off"}),
        )
        .await,
    );
    assert_eq!(v["server"]["status"], "disabled");
    assert_eq!(hub.control.calls().persisted.len(), 2);

    err_json(
        &hub.post("/api/servers/start", json!({"server_name": "nope"}))
            .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );
    err_json(
        &hub.post("/api/servers/stop", json!({})).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );

    let v = ok_json(
        &hub.post("/api/servers/refresh", json!({"server_name": "broken"}))
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert_eq!(v["server"]["name"], "broken");
    err_json(
        &hub.post("/api/servers/refresh", json!({"server_name": "nope"}))
            .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );

    for r in [
        hub.get("/api/refresh").await,
        hub.post("/api/refresh", json!({})).await,
    ] {
        let v = ok_json(&r);
        assert_eq!(v["status"], "ok");
        let names: Vec<&str> = v["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["off", "broken"]);
    }

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_routes() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let v = ok_json(&hub.post("/api/restart", json!({})).await);
    assert_eq!(v["status"], "ok");
    assert_eq!(hub.control.calls().restarts, 1);
    *hub.control.fail_restart.lock().unwrap() = true;
    let e = err_json(
        &hub.raw(Method::POST, "/api/restart", Bytes::new()).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "HUB_RESTART_ERROR",
    );
    assert_eq!(e["error"], "config file is broken");

    let v = ok_json(
        &hub.raw(Method::POST, "/api/hard-restart", Bytes::new())
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert_eq!(hub.control.calls().hard_restarts, 1);

    let v = ok_json(&hub.get("/api/workspaces").await);
    assert_eq!(v["workspaces"], workspaces_value());

    let v = ok_json(
        &hub.get("/api/marketplace?search=ti%20me&category=dev&tags=a,b&sort=stars")
            .await,
    );
    assert_eq!(v["servers"][0]["id"], "time");
    let q = hub.control.calls().marketplace_queries[0].clone();
    assert_eq!(q["search"], "ti me");
    assert_eq!(q["category"], "dev");
    assert_eq!(q["tags"], "a,b");
    assert_eq!(q["sort"], "stars");
    err_json(
        &hub.get("/api/marketplace?fail=1").await,
        StatusCode::BAD_GATEWAY,
        "MARKETPLACE_ERROR",
    );

    // The Node hub's nesting: {server: {server, readmeContent}}.
    let v = ok_json(
        &hub.post("/api/marketplace/details", json!({"mcpId": "time"}))
            .await,
    );
    assert_eq!(v["server"]["server"]["id"], "time");
    assert_eq!(v["server"]["readmeContent"], "# Time");
    let e = err_json(
        &hub.post("/api/marketplace/details", json!({})).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["error"], "Missing mcpId in request body");
    err_json(
        &hub.post("/api/marketplace/details", json!({"mcpId": "nope"}))
            .await,
        StatusCode::NOT_FOUND,
        "MARKETPLACE_ERROR",
    );
    err_json(
        &hub.post("/api/marketplace/details", json!({"mcpId": "gone"}))
            .await,
        StatusCode::NOT_FOUND,
        "MARKETPLACE_ERROR",
    );
    err_json(
        &hub.post("/api/marketplace/details", json!({"mcpId": "boom"}))
            .await,
        StatusCode::BAD_GATEWAY,
        "MARKETPLACE_ERROR",
    );

    hub.shutdown().await;
}
