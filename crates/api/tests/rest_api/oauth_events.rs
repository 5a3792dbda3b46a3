//! The OAuth routes and the `/api/events` stream, without live servers.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_routes() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let v = ok_json(
        &hub.post("/api/servers/authorize", json!({"server_name": "broken"}))
            .await,
    );
    assert_eq!(
        v["authorizationUrl"],
        "https://auth.example/authorize?client_id=x"
    );
    err_json(
        &hub.post("/api/servers/authorize", json!({"server_name": "zz"}))
            .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );
    let e = err_json(
        &hub.post("/api/servers/authorize", json!({"server_name": "off"}))
            .await,
        StatusCode::BAD_REQUEST,
        "OPEN_REQUEST_ERROR",
    );
    assert_eq!(
        e["error"],
        "No authorization URL available for server 'off'"
    );

    // The browser callback: HTML, everything escaped, no script; `state` identifies the flow.
    let r = hub.get("/api/oauth/callback?code=good&state=broken").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    assert!(
        r.text
            .contains("<code>broken</code> Authorization Successful"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("<script"));
    let q = hub.control.calls().callbacks[0].clone();
    assert_eq!(q["code"], "good");
    assert_eq!(q["state"], "broken");

    // A Node-style redirect URI that names the server.
    let r = hub
        .get("/api/oauth/callback?server_name=broken&code=good")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = hub
        .get("/api/oauth/callback?server_name=broken&code=bad&state=s")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("Authorization Failed"));
    assert!(
        r.text
            .contains("invalid_grant: &lt;b&gt;bad&lt;/b&gt; code"),
        "{}",
        r.text
    );

    let xss = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    for code in ["good", "bad"] {
        let r = hub
            .get(&format!(
                "/api/oauth/callback?server_name={xss}&code={code}"
            ))
            .await;
        assert!(!r.text.contains("<script>alert(1)"), "{}", r.text);
        assert!(
            r.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{}",
            r.text
        );
    }

    let r = hub.get("/api/oauth/callback?server_name=broken").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("Missing code parameter"));
    let calls = hub.control.calls().callbacks.len();
    let r = hub
        .get("/api/oauth/callback?state=s&error=access_denied&error_description=no")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("access_denied: no"));
    assert_eq!(
        hub.control.calls().callbacks.len(),
        calls + 1,
        "errors go to the control too"
    );

    // The headless variant.
    let url = "http://localhost:37373/api/oauth/callback?code=good&state=broken";
    let v = ok_json(
        &hub.post("/api/oauth/manual_callback", json!({"url": url}))
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert_eq!(v["message"], "Authorization successful for server 'broken'");
    assert_eq!(v["server_name"], "broken");
    let e = err_json(
        &hub.post("/api/oauth/manual_callback", json!({})).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["error"], "Missing URL parameter");
    err_json(
        &hub.post("/api/oauth/manual_callback", json!({"url": "not a url"}))
            .await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    let e = err_json(
        &hub.post(
            "/api/oauth/manual_callback",
            json!({"url": "http://localhost/cb?state=x"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["error"], "Missing code parameter");
    let e = err_json(
        &hub.post(
            "/api/oauth/manual_callback",
            json!({"url": "http://localhost/cb?server_name=broken&code=bad"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "MANUAL_OAUTH_CALLBACK_ERROR",
    );
    assert_eq!(e["data"]["server"], "broken");

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream() {
    let hub = Hub::start(offline_servers(), Duration::from_millis(200)).await;
    let mut ev = hub.events().await;

    // hub_state first.
    let (name, v) = ev.next(STEP).await.expect("hub_state");
    assert_eq!(name, "hub_state");
    assert_eq!(v["state"], "ready");
    assert_eq!(v["server_id"], "mcp-hub");
    assert_eq!(v["pid"], std::process::id());
    assert_eq!(v["port"], hub.addr.port());
    assert_eq!(hub.api.event_clients(), 1);

    let h = ok_json(&hub.get("/api/health").await);
    assert_eq!(h["activeClients"], 1);
    assert_eq!(h["connections"]["totalConnections"], 1);
    let c = &h["connections"]["connections"][0];
    assert_eq!(c["id"].as_str().unwrap().len(), 36);
    assert_eq!(c["state"], "connected");
    assert_iso(&c["connectedAt"]);
    assert_iso(&c["lastEventAt"]);

    let hb = ev.until("heartbeat", |n, _| n == "heartbeat").await;
    assert_eq!(hb["connections"], 1);

    // Events of the core, forwarded.
    let mut data = Map::new();
    data.insert("server".into(), "off".into());
    hub.control.emit(HubEvent::Log {
        level: "warn",
        message: "multi\nline".into(),
        data,
        code: Some("SOME_CODE".into()),
    });
    let log = ev.until("log", |n, _| n == "log").await;
    assert_eq!(log["type"], "warn");
    assert_eq!(log["message"], "multi\nline");
    assert_eq!(log["data"]["server"], "off");
    assert_eq!(log["code"], "SOME_CODE");

    let mut cfg = Map::new();
    cfg.insert("type".into(), "config_changed".into());
    cfg.insert("isSignificant".into(), false.into());
    hub.control.emit(HubEvent::Subscription(cfg));
    let v = ev.subscription("config_changed").await;
    assert_eq!(v["isSignificant"], false);

    hub.control.emit(HubEvent::State(HubState::Restarted));
    let v = ev
        .until("hub_state restarted", |n, v| {
            n == "hub_state" && v["state"] == "restarted"
        })
        .await;
    assert_eq!(v["has_restarted"], true);

    // REST lifecycle routes announce the server, as the Node hub does.
    ok_json(
        &hub.post(
            "/api/servers/stop?disable=true",
            json!({"server_name": "off"}),
        )
        .await,
    );
    let v = ev.subscription("servers_updated").await;
    assert_eq!(v["changes"], json!({"modified": ["off"]}));

    // A status change nobody asked for through REST is announced too (our extension), but a
    // server failing again the way it failed before is no change: `broken` is retried first and
    // only `off` (disabled → disconnected) is announced.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let reg = hub.registry.clone();
    tokio::spawn(async move {
        let _ = reg.start("broken").await;
        let _ = reg.start("off").await;
    });
    let v = ev
        .until("servers_updated from a status change", |n, v| {
            n == "subscription_event" && v["type"] == "servers_updated"
        })
        .await;
    assert_eq!(v["reason"], "server_status");
    assert_eq!(v["changes"]["modified"], json!(["off"]));

    // A departed client is forgotten at once.
    drop(ev);
    let api = hub.api.clone();
    wait_until("the client to be forgotten", || api.event_clients() == 0).await;

    // Streams end on shutdown.
    let mut ev = hub.events().await;
    ev.next(STEP).await.expect("hub_state");
    hub.stop.cancel();
    let deadline = Instant::now() + STEP;
    loop {
        match ev.next(STEP).await {
            None => break,
            Some(_) => assert!(Instant::now() < deadline, "stream did not end"),
        }
    }
    hub.shutdown().await;
}
