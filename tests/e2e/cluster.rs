//! Cluster mode (`--cluster`, docs/SCALE-OUT.md): replicas of the real binary sharing a real
//! `redis-server`. Sessions are forwarded to the replica that owns them, a dead replica's
//! sessions get 404 and recover by re-initializing, stateless requests are served anywhere.
//! Each test skips (saying so) when there is no `redis-server`; `scripts/cluster-test.sh`
//! installs it.

use std::time::{Duration, Instant};

use mcp_hub_tests::legacy::LegacyClient;
use mcp_hub_tests::redis::Redis;
use mcp_hub_tests::{Hub, HubCmd, McpClient, request};
use serde_json::{Value, json};

use crate::modern::{answer, meta, post};
use crate::{config, fixture_entry};

pub(crate) const SECRET: &str = "cluster-test-secret-0123456789";

/// A replica of the cluster at `redis`, serving the fixture as `fx`.
pub(crate) fn replica(redis: &Redis, ttl_ms: u64) -> Hub {
    let hub = HubCmd::new()
        .config(
            "s.json",
            &config(&[("fx", fixture_entry(&["--name", "fx"]))]),
        )
        .args(&[
            "--cluster",
            &redis.url(),
            "--cluster-ttl-ms",
            &ttl_ms.to_string(),
        ])
        .env("MCP_HUB_CLUSTER_SECRET", SECRET)
        .start();
    hub.wait_status(&["fx"], "connected");
    hub
}

/// The session is unknown: HTTP 404 with JSON-RPC -32001, the spec's "re-initialize" signal.
fn assert_gone(c: &McpClient, what: &str) {
    let r = c
        .send(
            &json!({"jsonrpc": "2.0", "id": 99, "method": "tools/list"}),
            &[],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(r.status, 404, "{what}: {}", r.text());
    assert_eq!(r.json()["error"]["code"], -32001, "{what}: {}", r.text());
}

fn echo(c: &mut McpClient, text: &str) -> Result<Value, String> {
    c.try_call(
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": text}}),
        Duration::from_secs(20),
    )
}

#[test]
fn sessions_are_forwarded_to_their_replica() {
    let Some(redis) = Redis::start(Some("redis-pass-5f1c")) else {
        return;
    };
    let a = replica(&redis, 3000);
    let b = replica(&redis, 3000);
    let c = replica(&redis, 3000);

    // A session opened on A, used through B and C (as a round-robin balancer would).
    let mut s = McpClient::connect(a.port);
    for (i, port) in [b.port, c.port, a.port, b.port].into_iter().enumerate() {
        s.port = port;
        let r = echo(&mut s, &format!("hop {i}")).expect("forwarded call");
        assert_eq!(r["result"]["content"][0]["text"], format!("hop {i}"), "{r}");
    }
    // The session's GET stream, opened through C; a change of A's catalogue (caused by a call
    // made through B) reaches it: streams work through the hop.
    let mut stream = mcp_hub_tests::EventStream::open(
        c.port,
        "/mcp",
        &[
            ("Mcp-Session-Id", &s.session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
    );
    stream.deadline(Duration::from_secs(15));
    s.port = b.port;
    s.try_call(
        "tools/call",
        json!({"name": "fx__test_trigger_tool_change", "arguments": {}}),
        Duration::from_secs(20),
    )
    .expect("trigger a tool change");
    let changed = stream.find(20, |e| e.data.contains("notifications/tools/list_changed"));
    assert!(
        changed.is_some(),
        "no list_changed on the relayed GET stream"
    );
    drop(stream);

    // A client's own X-Mcp-Hub-Replica header is not a replica's: dropped, and the request is
    // still forwarded (not served by B as if B owned the session, which would be a 404).
    s.port = b.port;
    let r = s
        .send(
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
            &[("X-Mcp-Hub-Replica", "not-the-secret-at-all")],
            Duration::from_secs(10),
        )
        .expect("forged header");
    assert_eq!(r.status, 200, "{}", r.text());

    // Legacy HTTP+SSE: the stream on A, the messages through B.
    let mut legacy = LegacyClient::connect(a.port);
    legacy.post_via(b.port);
    let tools = legacy.names("tools/list", "tools", "name");
    assert!(tools.contains(&"fx__echo".to_owned()), "{tools:?}");

    // DELETE through C ends it on A; then it is gone everywhere.
    s.port = c.port;
    assert_eq!(s.delete(&[]), 200);
    for port in [a.port, b.port, c.port] {
        s.port = port;
        assert_gone(&s, "deleted session");
    }

    // Neither the shared secret nor the Redis password reaches a log.
    for hub in [&a, &b, &c] {
        let log = hub.stderr();
        assert!(!log.contains(SECRET), "the cluster secret was logged");
        assert!(
            !log.contains("redis-pass-5f1c"),
            "the Redis password was logged"
        );
        assert!(log.contains("joined the cluster"), "{log}");
    }
    // The directory holds no entry for the deleted session.
    let left = redis.command(&["EXISTS", &format!("mcp-hub:session:{}", s.session)]);
    assert!(left.contains(":0"), "{left}");
}

#[test]
fn a_dead_replicas_sessions_get_404_and_recover() {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    let a = replica(&redis, 1500);
    let mut b = replica(&redis, 1500);
    let mut c = replica(&redis, 1500);
    let mut on_b = McpClient::connect(b.port);
    let mut on_c = McpClient::connect(c.port);
    on_b.port = a.port;
    echo(&mut on_b, "before").expect("forwarded before the kill");

    // SIGKILL: B's membership key is still there (its TTL has not passed) but the connection is
    // refused, so A answers 404 at once rather than after the TTL.
    b.sigkill();
    let t = Instant::now();
    assert_gone(&on_b, "dead replica's session, within its TTL");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // After the TTL too (the directory entry is then dropped as well).
    std::thread::sleep(Duration::from_millis(2000));
    assert_gone(&on_b, "dead replica's session, after its TTL");
    let entry = redis.command(&["EXISTS", &format!("mcp-hub:session:{}", on_b.session)]);
    assert!(entry.contains(":0"), "{entry}");
    // The client re-initializes (through the balancer: here A) and carries on.
    let mut again = McpClient::connect(a.port);
    assert_eq!(
        echo(&mut again, "after")
            .expect("new session")
            .pointer("/result/content/0/text"),
        Some(&json!("after"))
    );

    // A clean stop (SIGTERM) leaves the cluster first: 404 at once, no TTL to wait.
    on_c.port = a.port;
    echo(&mut on_c, "still there").expect("C's session through A");
    let status = c.terminate();
    assert!(status.success(), "{status:?}");
    assert_gone(&on_c, "stopped replica's session");
    // Only A's membership key is left: B's expired, C deleted its own on the way out.
    let members = redis.command(&["KEYS", "mcp-hub:replica:*"]);
    assert!(members.starts_with("*1\r\n"), "{members}");

    // Stateless (2026-07-28) requests are served by any replica, with no session at all.
    let r = post(
        a.port,
        1,
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "anywhere"}, "_meta": meta(json!({}))}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(answer(&r)["result"]["content"][0]["text"], "anywhere");
}

#[test]
fn cluster_flags_are_checked() {
    // No secret: refused before anything starts.
    let out = std::process::Command::new(mcp_hub_tests::bin("mcp-hub"))
        .args(["--port", "0", "--config", "/nonexistent.json"])
        .args(["--cluster", "redis://127.0.0.1:1"])
        .env_remove("MCP_HUB_CLUSTER_SECRET")
        .output()
        .expect("run mcp-hub");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cluster-secret"), "{err}");

    // A secret too short to be one.
    let out = std::process::Command::new(mcp_hub_tests::bin("mcp-hub"))
        .args(["--port", "0", "--config", "/nonexistent.json"])
        .args(["--cluster", "redis://127.0.0.1:1"])
        .env("MCP_HUB_CLUSTER_SECRET", "short")
        .output()
        .expect("run mcp-hub");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 16"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Redis unreachable: the replica does not start (it would hand out sessions nobody else
    // could find), and says where it tried, without the password.
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, config(&[])).expect("config");
    let out = std::process::Command::new(mcp_hub_tests::bin("mcp-hub"))
        .args(["--port", "0", "--config"])
        .arg(&cfg)
        .args(["--cluster", "redis://:hunter2-pass@127.0.0.1:1"])
        .env("MCP_HUB_CLUSTER_SECRET", SECRET)
        .env("HOME", dir.path())
        .output()
        .expect("run mcp-hub");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redis://127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
}

#[test]
fn a_single_hub_needs_no_redis() {
    // Without --cluster nothing cluster-related runs: the forwarding header means nothing.
    let hub = HubCmd::new()
        .config(
            "s.json",
            &config(&[("fx", fixture_entry(&["--name", "fx"]))]),
        )
        .start();
    hub.wait_status(&["fx"], "connected");
    let r = request(
        hub.port,
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", "no-such-session"),
            ("X-Mcp-Hub-Replica", SECRET),
        ],
        Some(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
    );
    assert_eq!(r.status, 404, "{}", r.text());
}

/// What one client thread of [`a_replica_killed_under_load`] saw.
#[derive(Debug, Default)]
struct Seen {
    answered: u64,
    /// Stateless calls that failed once and were answered on their retry.
    retried: u64,
    /// Session calls answered 404 (the session was gone), then re-initialized.
    reinitialized: u64,
    /// Session calls lost with a connection the kill cut (to the dead replica, or relayed to
    /// it); the client sends the next one, as after any lost connection.
    cut: u64,
    /// Calls answered after the kill.
    after_kill: u64,
    failures: Vec<String>,
}

fn stateless_echo(port: u16, id: i64) -> Result<(), String> {
    stateless_call(port, id, "fx__echo")
}

/// A 2026-07-28 `tools/call` of `tool` (an echo) with no session; `Ok` when it echoed.
pub(crate) fn stateless_call(port: u16, id: i64, tool: &str) -> Result<(), String> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": {"text": "x"}, "_meta": meta(json!({}))}});
    let r = mcp_hub_tests::try_request(
        port,
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", tool),
        ],
        Some(body.to_string().as_bytes()),
        Duration::from_secs(20),
    )?;
    let msgs = mcp_hub_tests::jsonrpc_messages(&r);
    match msgs.iter().find(|m| m["id"] == id) {
        Some(m) if m["result"]["content"][0]["text"] == "x" => Ok(()),
        _ => Err(format!("HTTP {}: {}", r.status, r.text())),
    }
}

#[test]
fn a_replica_killed_under_load() {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    kill_under_load(&redis, false);
}

#[test]
fn a_replica_killed_under_load_behind_haproxy() {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    kill_under_load(&redis, true);
}

/// Three replicas; four stateless clients and six session clients (two sessions opened on each
/// replica) call without pause; one replica is SIGKILLed mid-load. Either the clients spread
/// their calls themselves, round robin (`haproxy: false`), or everything goes through a real
/// HAProxy. Checks: no stateless call fails after one retry; the dead replica's sessions get
/// 404 and recover by re-initializing; every client is answered after the kill; no session of
/// a live replica is ever told it is gone.
fn kill_under_load(redis: &Redis, haproxy: bool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let a = replica(redis, 1500);
    let mut b = replica(redis, 1500);
    let c = replica(redis, 1500);
    let lb = if haproxy {
        match mcp_hub_tests::haproxy::Haproxy::start(&[a.port, b.port, c.port]) {
            Some(lb) => Some(lb),
            None => return,
        }
    } else {
        None
    };
    // Where each call goes: through the balancer, or to the next replica in turn.
    let ports = match &lb {
        Some(lb) => [lb.port; 3],
        None => [a.port, b.port, c.port],
    };
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..4usize {
        let (stop, killed) = (stop.clone(), killed.clone());
        threads.push(std::thread::spawn(move || {
            let mut seen = Seen::default();
            let mut n = t;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = n as i64;
                let ok = if stateless_echo(ports[n % 3], id).is_ok() {
                    true
                } else {
                    seen.retried += 1;
                    // A client's retry comes after a short backoff (the balancer's health
                    // check, every 200 ms, has then seen the dead replica).
                    std::thread::sleep(Duration::from_millis(250));
                    match stateless_echo(ports[(n + 1) % 3], id) {
                        Ok(()) => true,
                        Err(e) => {
                            seen.failures.push(format!("stateless after retry: {e}"));
                            false
                        }
                    }
                };
                if ok {
                    seen.answered += 1;
                    if killed.load(Ordering::Relaxed) {
                        seen.after_kill += 1;
                    }
                }
            }
            (false, seen)
        }));
    }
    // Sessions are opened on the replicas directly (so two of them are B's for certain); their
    // calls then go through the balancer or round robin.
    let owners = [a.port, b.port, c.port];
    for t in 0..6usize {
        let (stop, killed) = (stop.clone(), killed.clone());
        threads.push(std::thread::spawn(move || {
            let mut seen = Seen::default();
            let on_b = t % 3 == 1;
            let mut s = McpClient::connect(owners[t % 3]);
            let mut n = t;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                s.port = ports[n % 3];
                let r = echo(&mut s, "y");
                let after = killed.load(Ordering::Relaxed);
                match r {
                    Ok(v) if v.pointer("/result/content/0/text") == Some(&json!("y")) => {
                        seen.answered += 1;
                        if after {
                            seen.after_kill += 1;
                        }
                    }
                    Ok(v) if v["error"]["code"] == -32001 => {
                        if !on_b {
                            seen.failures
                                .push("a live replica's session got 404".into());
                        }
                        seen.reinitialized += 1;
                        // A new session through the balancer, or (round robin) on the replica
                        // that answered 404, which is live.
                        s = McpClient::connect(ports[n % 3]);
                    }
                    // Lost with a connection the kill cut: to the dead replica itself, or a
                    // call relayed to it as it died (502, or an answer cut short).
                    Err(_) if after => seen.cut += 1,
                    Ok(v) => seen.failures.push(format!("bad answer {v}")),
                    Err(e) => seen.failures.push(format!("session call: {e}")),
                }
            }
            (on_b, seen)
        }));
    }
    std::thread::sleep(Duration::from_millis(700));
    // Set just before the kill: a call that fails from then on may be the kill's doing.
    killed.store(true, Ordering::Relaxed);
    b.sigkill();
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for th in threads {
        let (on_b, seen) = th.join().expect("client thread");
        eprintln!(
            "client (session on B: {on_b}): answered {} ({} after the kill), retried {}, re-initialized {}, cut {}, failures {}",
            seen.answered,
            seen.after_kill,
            seen.retried,
            seen.reinitialized,
            seen.cut,
            seen.failures.len()
        );
        assert!(
            seen.failures.is_empty(),
            "{} failures, first: {:?}",
            seen.failures.len(),
            seen.failures.first()
        );
        assert!(seen.after_kill > 0, "never answered after the kill");
        if on_b {
            assert!(seen.reinitialized >= 1, "a session on B never got 404");
        }
        total += seen.answered;
    }
    eprintln!("{total} calls answered");
}
