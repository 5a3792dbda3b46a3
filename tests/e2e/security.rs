//! Hostile input at the hub's front door: placeholders in requests, DNS rebinding, bearer tokens,
//! session ids and the token file's mode. Secrets in logs and messages: `secrets.rs`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use mcp_hub_tests::{Fault, FaultyHttp, HubCmd, McpClient, request, try_request};
use serde_json::json;

use crate::{config, fixture_entry};

const T: Duration = Duration::from_secs(30);
const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");

/// Waits until every server is connected, asking `/api/servers` with these headers.
fn wait_connected(hub: &mcp_hub_tests::Hub, headers: &[(&str, &str)]) {
    hub.wait_for(Duration::from_secs(30), |hub| {
        let r = try_request(hub.port, "GET", "/api/servers", headers, None, T).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let all = v["servers"]
            .as_array()?
            .iter()
            .all(|s| s["status"] == "connected");
        all.then_some(())
    });
}

fn init_body() -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}})
    .to_string()
}

#[test]
fn placeholders_in_requests_are_never_resolved_or_run() {
    let cmd = HubCmd::new();
    let from_config = cmd.dir().join("config-ran");
    let from_request = cmd.dir().join("request-ran");
    // Positive control: the user's own config may run a command.
    let mut entry = fixture_entry(&[]);
    entry["env"] = json!({"PROBE": format!("${{cmd: touch {}}}", from_config.display())});
    let hub = cmd.config("servers.json", &config(&[("a", entry)])).start();
    hub.wait_status(&["a"], "connected");
    assert!(from_config.exists(), "a ${{cmd:}} in the config file runs");

    let touch = format!("${{cmd: touch {}}}", from_request.display());
    let hostile = [
        touch.clone(),
        format!("$(touch {})", from_request.display()),
        format!("`touch {}`", from_request.display()),
        "${HOME}".to_owned(),
        "${env:PATH}".to_owned(),
        "${input:secret}".to_owned(),
    ];
    let mut c = McpClient::connect(hub.port);
    for text in &hostile {
        // Arguments are passed through verbatim: the upstream sees (and echoes) the literal text.
        let v = c
            .try_call(
                "tools/call",
                json!({"name": "a__echo", "arguments": {"text": text}}),
                T,
            )
            .expect("answer");
        assert_eq!(
            v["result"]["content"][0]["text"].as_str(),
            Some(text.as_str()),
            "{v}"
        );
        let r = hub.call_tool("a", "echo", json!({"text": text}));
        assert_eq!(
            r.json()["result"]["content"][0]["text"].as_str(),
            Some(text.as_str())
        );
        // In names, URIs and prompt arguments they are just unknown names.
        let v = c
            .try_call("tools/call", json!({"name": text, "arguments": {}}), T)
            .expect("answer");
        assert!(
            v["error"].is_object() || v["result"]["isError"] == true,
            "{v}"
        );
        let v = c
            .try_call("resources/read", json!({"uri": text}), T)
            .expect("answer");
        assert!(v["error"].is_object(), "{v}");
        let v = c.try_call("prompts/get", json!({"name": "a__test_prompt_with_arguments", "arguments": {"arg1": text, "arg2": text}}), T).expect("answer");
        assert!(
            v["result"]["messages"].is_array() || v["error"].is_object(),
            "{v}"
        );
        let r = hub.post(
            "/api/servers/tools",
            &json!({"server_name": text, "tool": "echo", "arguments": {}}),
        );
        assert!(r.status >= 400);
        let r = hub.post("/api/servers/start", &json!({"server_name": text}));
        assert!(r.status >= 400);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !from_request.exists(),
        "a request made the hub run a command"
    );
}

#[test]
fn no_request_reaches_a_file_or_url_the_hub_was_not_configured_for() {
    let canary = FaultyHttp::start(Fault::Hang);
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let mut c = McpClient::connect(hub.port);
    let canary_url = format!("http://127.0.0.1:{}/mcp", canary.port);
    // resources/read of URIs no server announced: the hub owns no file or URL reader.
    for uri in [
        "file:///etc/passwd",
        canary_url.as_str(),
        "file:///proc/self/environ",
    ] {
        let v = c
            .try_call("resources/read", json!({"uri": uri}), T)
            .expect("answer");
        assert!(v["error"].is_object(), "{v}");
        assert!(!v.to_string().contains("root:"), "{v}");
    }
    // Server names that look like paths or URLs are unknown servers.
    for name in ["../../etc/passwd", canary_url.as_str(), "/bin/sh"] {
        let r = hub.post("/api/servers/start", &json!({"server_name": name}));
        assert!(r.status >= 400, "{}", r.text());
        let r = hub.post("/api/servers/info", &json!({"server_name": name}));
        assert!(r.status >= 400, "{}", r.text());
    }
    // The OAuth callbacks cannot be pointed at another server.
    let r = hub.post(
        "/api/oauth/manual_callback",
        &json!({"url": format!("{canary_url}?code=x&state=y")}),
    );
    assert!(r.status >= 400, "{}", r.text());
    let r = hub.get(&format!(
        "/api/oauth/callback?code=x&state=y&server_name={}",
        canary_url
    ));
    assert!(r.status >= 400, "{}", r.text());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        canary.accepted(),
        0,
        "a request made the hub connect to an unconfigured URL"
    );
    // The hub spawned nothing but its configured server.
    let kids = mcp_hub_tests::children(hub.pid());
    assert_eq!(kids.len(), 1, "{kids:?}");
}

#[test]
fn dns_rebinding_is_refused_on_every_endpoint() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .arg("--allowed-host")
        .arg("hub.internal")
        .start();
    hub.wait_status(&["a"], "connected");
    let port = hub.port;
    let evil_host = format!("evil.example:{port}");
    let init = init_body();
    for path in ["/mcp", "/api/servers", "/sse", "/api/events"] {
        let (method, body) = if path == "/mcp" {
            ("POST", Some(init.as_bytes()))
        } else {
            ("GET", None)
        };
        let r = try_request(port, method, path, &[ACCEPT, ("Host", &evil_host)], body, T)
            .expect("answer");
        assert_eq!(r.status, 403, "Host {evil_host} on {path}: {}", r.text());
        let r = try_request(
            port,
            method,
            path,
            &[ACCEPT, ("Origin", "http://evil.example")],
            body,
            T,
        )
        .expect("answer");
        assert_eq!(r.status, 403, "Origin on {path}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], -32000);
    }
    // Loopback names and the configured extra host are fine.
    let ok_origin = format!("http://localhost:{port}");
    let ok_host = format!("hub.internal:{port}");
    for headers in [
        vec![("Origin", ok_origin.as_str())],
        vec![("Host", ok_host.as_str())],
        vec![("Host", "localhost")],
    ] {
        let mut h = vec![ACCEPT];
        h.extend(headers.iter().copied());
        let r = try_request(port, "POST", "/mcp", &h, Some(init.as_bytes()), T).expect("answer");
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
    }
}

#[test]
fn bearer_tokens_guard_everything_but_health() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .arg("--token")
        .arg("alpha-token-0123456789")
        .arg("--token")
        .arg("beta-token-9876543210")
        .start();
    wait_connected(&hub, &[("Authorization", "Bearer alpha-token-0123456789")]);
    let init = init_body();
    assert_eq!(hub.get("/api/health").status, 200, "health stays open");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer alpha-token-012345678"),
        Some("Bearer alpha-token-01234567890"),
        Some("Basic YWxwaGE6"),
    ] {
        let mut h = vec![ACCEPT];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        let r =
            try_request(hub.port, "POST", "/mcp", &h, Some(init.as_bytes()), T).expect("answer");
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer"))
        );
        assert_eq!(r.json()["error"]["code"], -32001);
        let r = try_request(hub.port, "GET", "/api/servers", &h, None, T).expect("answer");
        assert_eq!(r.status, 401, "{auth:?}");
    }
    for token in ["alpha-token-0123456789", "beta-token-9876543210"] {
        let auth = format!("Bearer {token}");
        let c = McpClient::try_connect(hub.port, &[("Authorization", &auth)])
            .expect("a valid token opens a session");
        let r = c
            .send(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                &[("Authorization", &auth)],
                T,
            )
            .expect("answer");
        assert_eq!(r.status, 200);
        let r = c
            .send(
                &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
                &[],
                T,
            )
            .expect("answer");
        assert_eq!(r.status, 401, "every request of a session needs the token");
    }
}

/// With `--token`, `/api/health` stays open for liveness checks but tells a caller without the
/// token only status, state, versions and counts: no server objects (tool schemas, errors, config
/// paths, pids), no workspaces. With the token, or with no token configured, it is the full
/// payload mcphub.nvim reads.
#[test]
fn health_without_the_token_tells_only_what_a_liveness_check_needs() {
    const TOKEN: &str = "health-token-0123456789";
    let cmd = HubCmd::new();
    let dir = cmd.dir().display().to_string();
    let mut failing = fixture_entry(&[]);
    failing["cwd"] = json!(format!("{dir}/no-such-dir"));
    let hub = cmd
        .config(
            "servers.json",
            &config(&[("a", fixture_entry(&[])), ("broken", failing)]),
        )
        .arg("--token")
        .arg(TOKEN)
        .start();
    let auth = format!("Bearer {TOKEN}");
    let full = hub.wait_for(Duration::from_secs(30), |hub| {
        let r = try_request(
            hub.port,
            "GET",
            "/api/health",
            &[("Authorization", &auth)],
            None,
            T,
        )
        .ok()?;
        let v = r.json();
        let servers = v["servers"].as_array()?;
        let settled = servers.iter().any(|s| s["status"] == "connected")
            && servers.iter().any(|s| s["error"].is_string());
        settled.then_some(v)
    });
    assert!(full["workspaces"].is_object(), "{full}");
    let full_text = full.to_string();
    assert!(
        full_text.contains("echo") && full_text.contains(&dir),
        "{full_text}"
    );
    for headers in [vec![], vec![("Authorization", "Bearer wrong-token")]] {
        let r = try_request(hub.port, "GET", "/api/health", &headers, None, T).expect("answer");
        assert_eq!(r.status, 200, "health stays open");
        let v = r.json();
        // What mcphub.nvim's check_server reads.
        assert_eq!(v["status"], "ok", "{v}");
        assert_eq!(v["server_id"], full["server_id"]);
        assert_eq!(v["version"], full["version"]);
        assert_eq!(v["state"], full["state"]);
        assert_eq!(v["serverCounts"]["total"], 2, "{v}");
        assert_eq!(v["serverCounts"]["byStatus"]["connected"], 1, "{v}");
        assert!(v["mcpEndpoint"]["registeredCapabilities"]["tools"].as_u64() > Some(0));
        for key in ["servers", "workspaces", "connections"] {
            assert!(v.get(key).is_none(), "{key} given away: {v}");
        }
        let text = r.text();
        for leak in [dir.as_str(), "echo", "no-such-dir", "pid", "inputSchema"] {
            assert!(!text.contains(leak), "{leak} given away: {text}");
        }
    }

    // Without --token nothing changes: the full payload, as the Node hub serves it.
    let open = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    open.wait_status(&["a"], "connected");
    let v = open.get("/api/health").json();
    assert!(v["servers"].as_array().is_some_and(|s| s.len() == 1), "{v}");
    assert!(v["workspaces"].is_object(), "{v}");
}

#[test]

fn sessions_are_bound_to_the_principal_that_created_them() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .arg("--token")
        .arg("alpha-token-0123456789")
        .arg("--token")
        .arg("beta-token-9876543210")
        .start();
    wait_connected(&hub, &[("Authorization", "Bearer alpha-token-0123456789")]);
    let alpha = ("Authorization", "Bearer alpha-token-0123456789");
    let beta = ("Authorization", "Bearer beta-token-9876543210");
    let c = McpClient::try_connect(hub.port, &[alpha]).expect("session");
    let r = c
        .send(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[beta],
            T,
        )
        .expect("answer");
    assert!(
        r.status == 404 || r.status == 403,
        "another principal used the session: {}",
        r.status
    );
    assert_ne!(
        c.delete(&[beta]),
        200,
        "another principal ended the session"
    );
}

#[test]
fn session_ids_are_unguessable() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let init = init_body();
    let ids: Vec<String> = (0..200)
        .map(|_| {
            let r = request(hub.port, "POST", "/mcp", &[ACCEPT], Some(init.as_bytes()));
            let id = r.header("mcp-session-id").expect("id").to_owned();
            assert_eq!(
                request(hub.port, "DELETE", "/mcp", &[("Mcp-Session-Id", &id)], None).status,
                200
            );
            id
        })
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    for id in &ids {
        assert!(
            id.len() >= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "at least 128 bits as hex: {id}"
        );
    }
    // Bits look uniform: each bit position is set in roughly half of the ids (binomial n=200,
    // p=0.5: outside 55..145 has probability ~1e-10 per position).
    let bits = ids[0].len() * 4;
    for pos in 0..bits {
        let ones = ids
            .iter()
            .filter(|id| {
                let nibble = u8::from_str_radix(&id[pos / 4..pos / 4 + 1], 16).unwrap_or(0);
                nibble & (8 >> (pos % 4)) != 0
            })
            .count();
        assert!(
            (55..=145).contains(&ones),
            "bit {pos} set in {ones}/200 ids"
        );
    }
    // Consecutive ids share no long prefix (no counter inside).
    for w in ids.windows(2) {
        let common = w[0]
            .bytes()
            .zip(w[1].bytes())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(common < 8, "{} and {}", w[0], w[1]);
    }
}

#[test]
fn the_token_file_is_kept_private() {
    let cmd = HubCmd::new();
    let data = cmd.dir().join("home/data/mcp-hub");
    std::fs::create_dir_all(&data).expect("dir");
    let tokens = data.join("oauth-tokens.json");
    std::fs::write(&tokens, r#"{"version":1,"clients":[],"tokens":[]}"#).expect("write");
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut hub = cmd
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let mode = hub.wait_for(Duration::from_secs(5), |_| {
        let m = std::fs::metadata(&tokens).ok()?.permissions().mode() & 0o777;
        (m == 0o600).then_some(m)
    });
    assert_eq!(mode, 0o600, "a world-readable token file is tightened");
    hub.terminate();
    assert_eq!(
        std::fs::metadata(&tokens)
            .expect("still there")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}
