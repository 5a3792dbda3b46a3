//! Secrets the hub resolves from its config (placeholders in env, headers, URLs, commands) and
//! the tokens it is given never reach a log line, an event, a status or an error body.

use std::time::Duration;

use mcp_hub_tests::{
    EventStream, Fault, FaultyHttp, HttpFixture, HubCmd, McpClient, bin, try_request,
};
use serde_json::json;

use crate::{config, fixture_entry};

const T: Duration = Duration::from_secs(30);

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

#[test]
fn secrets_never_reach_a_log_line() {
    const TOKEN: &str = "hub-bearer-S3CR3T-4e1f0c";
    const WRONG: &str = "wrong-bearer-S3CR3T-77aa1";
    const ENV_SECRET: &str = "env-value-S3CR3T-9b2d";
    const HEADER_SECRET: &str = "header-value-S3CR3T-51c0";
    const CMD_SECRET: &str = "cmd-output-S3CR3T-e3a8";
    let remote = HttpFixture::start(0, &[]);
    let mut stdio = fixture_entry(&[]);
    stdio["env"] = json!({"API_KEY": "${E2E_SECRET_VALUE}", "FROM_CMD": format!("${{cmd: echo {CMD_SECRET}}}")});
    let remote_entry =
        json!({"url": remote.url(), "headers": {"Authorization": "Bearer ${E2E_SECRET_HEADER}"}});
    let mut hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("local", stdio), ("remote", remote_entry)]),
        )
        .arg("--token")
        .arg(TOKEN)
        .arg("--log-level")
        .arg("trace")
        .arg("--log-format")
        .arg("json")
        .env("E2E_SECRET_VALUE", ENV_SECRET)
        .env("E2E_SECRET_HEADER", HEADER_SECRET)
        .start();
    let auth = format!("Bearer {TOKEN}");
    let h = [("Authorization", auth.as_str())];
    wait_connected(&hub, &h);
    // A full run: sessions, calls to both servers, failures, a wrong token, a restart.
    let mut c = McpClient::try_connect(hub.port, &h).expect("session");
    for tool in [
        "local__echo",
        "remote__echo",
        "local__fail",
        "nope__nothing",
    ] {
        let body = json!({"jsonrpc": "2.0", "id": tool, "method": "tools/call", "params": {"name": tool, "arguments": {"text": "hello"}}});
        assert_eq!(c.send(&body, &h, T).expect("answer").status, 200);
    }
    let wrong = format!("Bearer {WRONG}");
    let r = try_request(
        hub.port,
        "GET",
        "/api/servers",
        &[("Authorization", &wrong)],
        None,
        T,
    )
    .expect("answer");
    assert_eq!(r.status, 401);
    let r = try_request(
        hub.port,
        "POST",
        "/api/servers/stop",
        &h,
        Some(br#"{"server_name":"local"}"#),
        T,
    )
    .expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = try_request(
        hub.port,
        "POST",
        "/api/servers/start",
        &h,
        Some(br#"{"server_name":"local"}"#),
        T,
    )
    .expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = try_request(hub.port, "POST", "/api/restart", &h, Some(b"{}"), T).expect("answer");
    assert!(r.status < 500, "{}", r.text());
    std::thread::sleep(Duration::from_secs(2));
    // More traffic to log; after the hub's restart the session may be gone, which is fine.
    let _ = c.try_call("ping", json!({}), T);
    hub.terminate();

    let mut text = hub.stderr();
    text.push_str(&std::fs::read_to_string(hub.log_file()).unwrap_or_default());
    let lines = text.lines().count();
    assert!(lines > 20, "the run logged something ({lines} lines)");
    for secret in [TOKEN, WRONG, ENV_SECRET, HEADER_SECRET, CMD_SECRET] {
        let hits: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(secret))
            .take(3)
            .collect();
        assert!(
            hits.is_empty(),
            "{secret} appears in the logs:\n{}",
            hits.join("\n")
        );
    }
}

/// Every value a placeholder resolved into a server's `url` (query, userinfo, path) or `command`
/// stays out of every channel a connection failure reaches: WARN lines and hyper's TRACE lines
/// on stderr, the log file, `/api/events` log events, the `error` of `/api/servers`,
/// `/api/servers/info` and `/api/health`, REST and MCP error bodies, and `mcp-hub check`.
#[test]
fn secrets_in_urls_and_commands_never_leave_the_hub() {
    const QUERY: &str = "query-S3CR3T-7d1c";
    const USERINFO: &str = "userinfo-S3CR3T-a9e2";
    const PATH: &str = "path-S3CR3T-0b4f";
    const COMMAND: &str = "command-S3CR3T-5e6a";
    let secrets = [QUERY, USERINFO, PATH, COMMAND];
    // An upstream whose error page quotes the request target (path and query), as Express's does.
    let echo = FaultyHttp::start(Fault::EchoPath);
    let mut live = HttpFixture::start(0, &[]);
    let cmd = HubCmd::new();
    let password_file = cmd.dir().join("password");
    std::fs::write(&password_file, USERINFO).expect("write");
    let servers = config(&[
        (
            "query",
            json!({"url": "http://127.0.0.1:1/mcp?api_key=${env:E2E_QUERY}"}),
        ),
        (
            "userinfo",
            json!({"url": format!("http://ada:${{cmd: cat {}}}@127.0.0.1:1/mcp", password_file.display())}),
        ),
        (
            "path",
            json!({"url": format!("http://127.0.0.1:{}/${{env:E2E_PATH}}/mcp?api_key=${{env:E2E_QUERY}}", echo.port)}),
        ),
        (
            "command",
            json!({"command": "/nonexistent/${env:E2E_COMMAND}/server"}),
        ),
        (
            "live",
            json!({"url": format!("{}?api_key=${{env:E2E_QUERY}}", live.url())}),
        ),
    ]);
    let env = [
        ("E2E_QUERY", QUERY),
        ("E2E_PATH", PATH),
        ("E2E_COMMAND", COMMAND),
    ];
    let mut cmd = cmd
        .config("servers.json", &servers)
        .arg("--log-level")
        .arg("trace");
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let mut hub = cmd.start();
    let port = hub.port;
    // `/api/events` from the start until the hub exits: every (re)start that fails logs.
    let events = std::thread::spawn(move || {
        let mut stream = EventStream::open(port, "/api/events", &[]);
        let mut seen = Vec::new();
        let mut failures = 0;
        while seen.len() < 5000 {
            let Some(e) = stream.next_event() else { break };
            if e.event == "log" && e.data.to_lowercase().contains("failed to connect") {
                failures += 1;
            }
            seen.push(e.data);
        }
        (seen, failures)
    });
    let failing = ["query", "userinfo", "path", "command"];
    hub.wait_for(Duration::from_secs(30), |h| {
        let v = h.get("/api/servers").json();
        let list = v["servers"].as_array()?.clone();
        let ok = list.iter().all(|s| {
            if s["name"] == "live" {
                s["status"] == "connected"
            } else {
                s["error"].is_string()
            }
        });
        ok.then_some(())
    });
    let mut bodies = Vec::new();
    for path in ["/api/servers", "/api/health"] {
        bodies.push(hub.get(path).text());
    }
    for name in failing {
        bodies.push(
            hub.post("/api/servers/info", &json!({"server_name": name}))
                .text(),
        );
        let r = hub.post("/api/servers/start", &json!({"server_name": name}));
        assert!(r.status >= 400, "{name}: {}", r.text());
        bodies.push(r.text());
    }
    // A connected server whose upstream goes away: its calls fail with a transport error.
    let mut client = McpClient::connect(hub.port);
    live.kill();
    let r = hub.call_tool("live", "echo", json!({"message": "x"}));
    assert!(r.status >= 400, "{}", r.text());
    bodies.push(r.text());
    let v = client
        .try_call(
            "tools/call",
            json!({"name": "live__echo", "arguments": {"message": "x"}}),
            T,
        )
        .expect("answer");
    assert!(
        v["error"].is_object() || v["result"]["isError"] == true,
        "{v}"
    );
    bodies.push(v.to_string());
    hub.terminate();
    // The stream ended with the hub.
    let (events, failures) = events.join().expect("events thread");
    assert!(
        failures > 0,
        "the event stream carried the failures: {events:?}"
    );

    let check = std::process::Command::new(bin("mcp-hub"))
        .args(["check", "--config"])
        .arg(hub.dir.path().join("servers.json"))
        .envs(env)
        .output()
        .expect("mcp-hub check");
    let check_out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check_out.contains("ok    query"), "{check_out}");

    let stderr = hub.stderr();
    let log = std::fs::read_to_string(hub.log_file()).unwrap_or_default();
    assert!(
        stderr.to_lowercase().contains("failed to connect") && stderr.contains("TRACE"),
        "the run logged the failures at trace level:\n{stderr}"
    );
    assert!(log.to_lowercase().contains("failed to connect"), "{log}");
    let channels = [
        ("stderr", stderr),
        ("log file", log),
        ("/api/events", events.join("\n")),
        ("REST and MCP bodies", bodies.join("\n")),
        ("mcp-hub check", check_out),
    ];
    for (channel, text) in &channels {
        for secret in secrets {
            let hits: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(secret))
                .take(3)
                .collect();
            assert!(
                hits.is_empty(),
                "{secret} reached {channel}:\n{}",
                hits.join("\n")
            );
        }
    }
}
