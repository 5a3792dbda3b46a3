use std::process::Command;

use mcp_hub_tests::bin;

#[test]
fn version_and_help() {
    let out = Command::new(bin("mcp-hub"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    // The Node hub's release first (mcphub.nvim checks it), then ours.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("4.2.1 (mcp-hub-rs {})\n", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(bin("mcp-hub")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--port",
        "--config",
        "--watch",
        "--auto-shutdown",
        "--shutdown-delay",
        "--host",
        "--log-format",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn missing_port_or_config_is_a_usage_error() {
    let out = Command::new(bin("mcp-hub"))
        .args(["--config", "x.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));
    let out = Command::new(bin("mcp-hub"))
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn check_reports_every_error_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"mcpServers": {"a": {"command": "echo", "args": ["${HOME}"]}}}"#,
    )
    .unwrap();
    let out = Command::new(bin("mcp-hub"))
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok    a"));

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"mcpServers": {
  "x": {"command": "echo", "args": ["${NO_SUCH_VARIABLE_E2E}"]},
  "y": {"url": "${ALSO_MISSING_E2E}"}
}}"#,
    )
    .unwrap();
    let out = Command::new(bin("mcp-hub"))
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("NO_SUCH_VARIABLE_E2E") && stdout.contains("ALSO_MISSING_E2E"),
        "{stdout}"
    );

    let syntax = dir.path().join("syntax.json");
    std::fs::write(&syntax, "{\n  \"mcpServers\": {,}\n}").unwrap();
    let out = Command::new(bin("mcp-hub"))
        .args(["check", "--config"])
        .arg(&syntax)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("syntax.json") && stderr.contains('2'),
        "file and line expected: {stderr}"
    );
}

#[test]
fn list_talks_to_a_token_protected_hub() {
    const TOKEN: &str = "list-token-0123456789";
    let hub = mcp_hub_tests::HubCmd::new()
        .config(
            "servers.json",
            &crate::config(&[("alpha", crate::fixture_entry(&[]))]),
        )
        .env("MCP_HUB_TOKEN", TOKEN)
        .start();
    hub.wait_for(std::time::Duration::from_secs(30), |h| {
        let r = mcp_hub_tests::try_request(
            h.port,
            "GET",
            "/api/health",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
            std::time::Duration::from_secs(5),
        )
        .ok()?;
        (r.json()["servers"][0]["status"] == "connected").then_some(())
    });
    let port = hub.port.to_string();
    let list = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(bin("mcp-hub"));
        cmd.args(["list", "--port", &port]).args(args);
        cmd.env_remove("MCP_HUB_TOKEN");
        if let Some(t) = env {
            cmd.env("MCP_HUB_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let out = list(&[], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("MCP_HUB_TOKEN"),
        "{stderr}"
    );
    for out in [list(&["--token", TOKEN], None), list(&[], Some(TOKEN))] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("alpha") && stdout.contains("connected"),
            "{stdout}"
        );
    }
    let out = list(&["--token", "wrong-token"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
}
