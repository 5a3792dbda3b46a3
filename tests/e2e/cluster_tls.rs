//! Cluster mode over TLS (`rediss://`, docs/SCALE-OUT.md): replicas of the real binary reach a
//! real `redis-server` on its TLS port, trusting the test's own CA (`--cluster-ca-file`); a
//! replica that cannot verify Redis' certificate, or speaks plain TCP to the TLS port, does not
//! start, and says where it tried without the password. Skipped, saying so, without
//! `redis-server`, `openssl`, or TLS in the Redis build.

use std::time::Duration;

use mcp_hub_tests::redis::Redis;
use mcp_hub_tests::{HubCmd, McpClient};
use serde_json::json;

use crate::cluster::SECRET;
use crate::{config, fixture_entry};

const PASSWORD: &str = "tls-redis-pass-91ab";

fn tls_replica(redis: &Redis, ca: &std::path::Path) -> mcp_hub_tests::Hub {
    let hub = HubCmd::new()
        .config(
            "s.json",
            &config(&[("fx", fixture_entry(&["--name", "fx"]))]),
        )
        .args(&["--cluster", &redis.tls_url(), "--cluster-ttl-ms", "3000"])
        .args(&["--cluster-ca-file", &ca.display().to_string()])
        .env("MCP_HUB_CLUSTER_SECRET", SECRET)
        .start();
    hub.wait_status(&["fx"], "connected");
    hub
}

/// Runs the binary with these cluster arguments and expects it to refuse to start.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, config(&[])).expect("config");
    let out = std::process::Command::new(mcp_hub_tests::bin("mcp-hub"))
        .args(["--port", "0", "--config"])
        .arg(&cfg)
        .args(args)
        .env("MCP_HUB_CLUSTER_SECRET", SECRET)
        .env("HOME", dir.path())
        .output()
        .expect("run mcp-hub");
    assert!(!out.status.success(), "started: {args:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains(PASSWORD),
        "the Redis password was shown: {err}"
    );
    err
}

#[test]
fn replicas_share_state_over_tls() {
    let Some(redis) = Redis::start_tls(Some(PASSWORD)) else {
        return;
    };
    let (tls_port, ca) = redis.tls.clone().expect("TLS");
    let a = tls_replica(&redis, &ca);
    let b = tls_replica(&redis, &ca);
    // A session opened on A and used through B: the directory and membership went over TLS.
    let mut s = McpClient::connect(a.port);
    s.port = b.port;
    let r = s
        .try_call(
            "tools/call",
            json!({"name": "fx__echo", "arguments": {"text": "over tls"}}),
            Duration::from_secs(20),
        )
        .expect("forwarded call");
    assert_eq!(r["result"]["content"][0]["text"], "over tls", "{r}");
    let members = redis.command(&["KEYS", "mcp-hub:replica:*"]);
    assert!(members.contains("*2\r\n"), "{members}");
    for hub in [&a, &b] {
        let log = hub.stderr();
        assert!(log.contains("joined the cluster"), "{log}");
        assert!(
            log.contains(&format!("rediss://127.0.0.1:{tls_port}")),
            "{log}"
        );
        assert!(!log.contains(PASSWORD), "the Redis password was logged");
    }

    // Without the CA, the self-signed chain is not trusted (the public roots are): no start.
    let err = refused(&["--cluster", &redis.tls_url()]);
    assert!(
        err.contains(&format!("rediss://127.0.0.1:{tls_port}")),
        "{err}"
    );
    assert!(err.contains("certificate"), "{err}");
    // Plain TCP to the TLS port: no start either.
    let plain = redis.tls_url().replacen("rediss://", "redis://", 1);
    let err = refused(&[
        "--cluster",
        &plain,
        "--cluster-ca-file",
        &ca.display().to_string(),
    ]);
    assert!(err.contains("rediss://"), "a CA file is for TLS: {err}");
    let err = refused(&["--cluster", &plain]);
    assert!(
        err.contains(&format!("redis://127.0.0.1:{tls_port}")),
        "{err}"
    );
    // A CA file that cannot be read.
    let err = refused(&[
        "--cluster",
        &redis.tls_url(),
        "--cluster-ca-file",
        "/nonexistent/ca.pem",
    ]);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}
