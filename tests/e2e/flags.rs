//! The Node hub's flags and ours, each checked by its effect on the running binary.

use std::time::Duration;

use mcp_hub_tests::{HubCmd, request};
use serde_json::json;

use crate::{config, fixture_entry};

#[test]
fn several_config_files_merge_in_order_later_wins_per_server() {
    let global = config(&[
        ("shared", fixture_entry(&["--name", "from-global"])),
        ("only-global", fixture_entry(&[])),
    ]);
    let project = config(&[("shared", fixture_entry(&["--name", "from-project"]))]);
    let hub = HubCmd::new()
        .config("global.json", &global)
        .config("project.json", &project)
        .start();
    hub.wait_status(&["shared", "only-global"], "connected");
    let shared = hub.server("shared");
    assert_eq!(shared["serverInfo"]["name"], "from-project");
    assert!(
        shared["config_source"]
            .as_str()
            .unwrap()
            .ends_with("project.json"),
        "{shared}"
    );
    assert!(
        hub.server("only-global")["config_source"]
            .as_str()
            .unwrap()
            .ends_with("global.json")
    );
}

#[test]
fn a_missing_config_file_is_skipped() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .arg("--config")
        .arg("/nonexistent/mcp-hub-e2e.json")
        .start();
    hub.wait_status(&["a"], "connected");
}

#[test]
fn token_protects_mcp_and_api_but_not_health() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .arg("--token")
        .arg("e2e-s3cret")
        .start();
    assert_eq!(hub.get("/api/health").status, 200, "health stays open");
    let r = hub.get("/api/servers");
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    let r = request(
        hub.port,
        "GET",
        "/api/servers",
        &[("Authorization", "Bearer wrong")],
        None,
    );
    assert_eq!(r.status, 401);
    let r = request(
        hub.port,
        "GET",
        "/api/servers",
        &[("Authorization", "Bearer e2e-s3cret")],
        None,
    );
    assert_eq!(r.status, 200);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = request(
        hub.port,
        "POST",
        "/mcp",
        &[("Accept", "application/json, text/event-stream")],
        Some(init.to_string().as_bytes()),
    );
    assert_eq!(r.status, 401);
    assert!(
        !hub.stderr().contains("e2e-s3cret"),
        "the token never appears in logs"
    );
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let mut hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .arg("--log-format")
        .arg("json")
        .start();
    hub.wait_status(&["a"], "connected");
    hub.terminate();
    let stderr = hub.stderr();
    assert!(stderr.lines().count() >= 2, "{stderr}");
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
    }
}

#[test]
fn the_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, config(&[])).unwrap();
    let out = std::process::Command::new(mcp_hub_tests::bin("mcp-hub"))
        .args(["--port", &port, "--config"])
        .arg(&cfg)
        .env("HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Address already in use") || stderr.contains("EADDRINUSE"),
        "{stderr}"
    );
}

#[test]
fn hard_restart_exits_cleanly_and_restart_reconnects_every_server() {
    let mut hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let pid = hub.server("a")["pid"].as_u64();
    let r = hub.post("/api/restart", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "ok");
    let s = hub.wait_for(Duration::from_secs(20), |h| {
        let s = h.server("a");
        (s["status"] == "connected" && s["pid"].as_u64() != pid).then_some(s)
    });
    assert!(s["pid"].as_u64().is_some());
    assert_eq!(hub.get("/api/health").json()["state"], "restarted");

    let r = hub.post("/api/hard-restart", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let status = hub.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "hard-restart exits 0 so the plugin respawns it: {status:?}"
    );
}

#[test]
fn stop_with_disable_persists_into_the_config_file() {
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("a", fixture_entry(&[])), ("b", fixture_entry(&[]))]),
        )
        .start();
    hub.wait_status(&["a", "b"], "connected");
    let r = hub.post(
        "/api/servers/stop?disable=true",
        &json!({"server_name": "a"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["server"]["status"], "disabled");
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(hub.dir.path().join("servers.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["mcpServers"]["a"]["disabled"], true, "{file}");
    assert!(file["mcpServers"]["b"].get("disabled").is_none());
    let r = hub.post("/api/servers/start", &json!({"server_name": "a"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(hub.dir.path().join("servers.json")).unwrap(),
    )
    .unwrap();
    assert_ne!(file["mcpServers"]["a"]["disabled"], true, "{file}");
}

#[test]
fn dev_mode_restarts_a_server_when_its_files_change() {
    let cmd = HubCmd::new();
    let src = cmd.dir().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut entry = fixture_entry(&[]);
    entry["dev"] = json!({"enabled": true, "watch": ["**/*.py"], "cwd": src.display().to_string()});
    let hub = cmd
        .config(
            "servers.json",
            &config(&[("dev", entry), ("other", fixture_entry(&[]))]),
        )
        .start();
    hub.wait_status(&["dev", "other"], "connected");
    let pid = hub.server("dev")["pid"].as_u64();
    let other = hub.server("other")["pid"].as_u64();
    std::fs::write(src.join("ignored.txt"), "x").unwrap();
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(
        hub.server("dev")["pid"].as_u64(),
        pid,
        "a file outside the globs changes nothing"
    );
    std::fs::write(src.join("server.py"), "print('v2')").unwrap();
    hub.wait_for(Duration::from_secs(15), |h| {
        let s = h.server("dev");
        (s["status"] == "connected" && s["pid"].as_u64() != pid).then_some(())
    });
    assert_eq!(
        hub.server("other")["pid"].as_u64(),
        other,
        "only the dev server restarts"
    );
}
