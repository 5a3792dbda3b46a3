//! Cluster mode and OAuth through the real binary (docs/SCALE-OUT.md): replicas share one
//! OAuth-protected upstream (`mcp_hub_tests::oauth_server`: an authorization server whose
//! access tokens live a few seconds, in front of the fixture), through a real `redis-server`
//! (skipped, saying so, without one). The authorization server counts the grants it serves and
//! the stale refresh tokens it is sent: one login serves every replica, each expiry is
//! refreshed exactly once, no refresh token is lost, and calls succeed on every replica, also
//! for clients that come through a real HAProxy while a replica is SIGKILLed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mcp_hub_tests::oauth_server::{MACHINE_CLIENT, OAuthServer, pending_key};
use mcp_hub_tests::redis::Redis;
use mcp_hub_tests::{Hub, HubCmd, McpClient};
use serde_json::{Value, json};

use crate::cluster::SECRET;
use crate::config;

/// A replica serving `remote` (the protected upstream, with these extra settings).
fn replica(redis: &Redis, upstream: &OAuthServer, extra: Value) -> Hub {
    replica_with(redis, upstream, extra, &[])
}

fn replica_with(redis: &Redis, upstream: &OAuthServer, extra: Value, args: &[&str]) -> Hub {
    let mut entry = json!({"url": upstream.url()});
    for (k, v) in extra.as_object().into_iter().flatten() {
        entry[k] = v.clone();
    }
    HubCmd::new()
        .config("s.json", &config(&[("remote", entry)]))
        .args(&["--cluster", &redis.url(), "--cluster-ttl-ms", "1500"])
        .args(args)
        .env("MCP_HUB_CLUSTER_SECRET", SECRET)
        .start()
}

/// Starts the authorization on `on`, approves it at the authorization server, and returns the
/// callback (path and query) for the test to deliver.
fn login_started_on(on: &Hub, upstream: &OAuthServer) -> String {
    let r = on.post("/api/servers/authorize", &json!({"server_name": "remote"}));
    let url = r.json()["authorizationUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("no authorization URL: {}", r.text()))
        .to_owned();
    upstream.approve(&url)
}

/// A replica left `remote` unauthorized; a login on another replica connects it, without
/// anyone asking this one (the login is announced to every replica).
fn reconnect(hub: &Hub) {
    hub.wait_status(&["remote"], "connected");
}

fn echo(c: &mut McpClient, text: &str) -> Result<(), String> {
    let r = c.try_call(
        "tools/call",
        json!({"name": "remote__echo", "arguments": {"text": text}}),
        Duration::from_secs(20),
    )?;
    match r.pointer("/result/content/0/text") {
        Some(t) if t == text => Ok(()),
        _ => Err(format!("bad answer {r}")),
    }
}

/// No two grants of a kind closer than `gap`: two replicas serving one expiry would be
/// milliseconds apart.
fn assert_spaced(times: &[Instant], gap: Duration, what: &str) {
    for w in times.windows(2) {
        let between = w[1].duration_since(w[0]);
        assert!(between >= gap, "two {what} {between:?} apart: {times:?}");
    }
}

#[test]
fn three_replicas_refresh_a_shared_token_once_per_expiry() {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    // Tokens live 4 s: each replica's hook renews from about 3 s on.
    let upstream = OAuthServer::start(4);
    let a = replica(&redis, &upstream, json!({}));
    let mut b = replica(&redis, &upstream, json!({}));
    let c = replica(&redis, &upstream, json!({}));
    for hub in [&a, &b, &c] {
        hub.wait_status(&["remote"], "unauthorized");
    }
    // The user logs in once, through A; B and C use that login (no grant of theirs).
    let callback = login_started_on(&a, &upstream);
    let r = a.get(&callback);
    assert_eq!(r.status, 200, "{}", r.text());
    a.wait_status(&["remote"], "connected");
    reconnect(&b);
    reconnect(&c);
    assert_eq!(upstream.ledger().count("authorization_code"), 1);
    let refused_before = upstream.ledger().refused;

    // Every replica calls the upstream without pause for 10 s: two or three expiries.
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads: Vec<_> = [a.port, b.port, c.port]
        .into_iter()
        .enumerate()
        .map(|(i, port)| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut s = McpClient::connect(port);
                let (mut ok, mut failures) = (0u32, Vec::new());
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match echo(&mut s, &format!("r{i}-{n}")) {
                        Ok(()) => ok += 1,
                        Err(e) => {
                            failures.push(e);
                            // B's client, after the kill: nothing more to see there.
                            if i == 1 {
                                break;
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(30));
                }
                (i, ok, failures)
            })
        })
        .collect();
    // Meanwhile clients reach the cluster as users would, through a real HAProxy (round
    // robin, health-checked): two stateless clients (2026-07-28) that retry a failed call once,
    // and a session client that re-initializes when its session is gone.
    let killed = Arc::new(AtomicBool::new(false));
    let lb = mcp_hub_tests::haproxy::Haproxy::start(&[a.port, b.port, c.port]);
    for k in 0..3usize {
        let Some(port) = lb.as_ref().map(|lb| lb.port) else {
            break;
        };
        let (stop, killed) = (stop.clone(), killed.clone());
        threads.push(std::thread::spawn(move || {
            let (mut ok, mut failures) = (0u32, Vec::new());
            let mut session = (k == 2).then(|| McpClient::connect(port));
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = (1000 * (k + 1) + n) as i64;
                match session.as_mut() {
                    None => {
                        let first = crate::cluster::stateless_call(port, id, "remote__echo");
                        let answered = first.is_ok() || {
                            // The balancer's health check (every 200 ms) then knows.
                            std::thread::sleep(Duration::from_millis(250));
                            crate::cluster::stateless_call(port, id, "remote__echo")
                                .map_err(|e| failures.push(format!("after a retry: {e}")))
                                .is_ok()
                        };
                        ok += u32::from(answered);
                    }
                    Some(s) => {
                        let text = format!("lb-{n}");
                        let answer = s.try_call(
                            "tools/call",
                            json!({"name": "remote__echo", "arguments": {"text": text}}),
                            Duration::from_secs(20),
                        );
                        // Read after the call: one in flight when B died is cut by the kill
                        // (HAProxy's 502), and the flag is set before the SIGKILL.
                        let after = killed.load(Ordering::Relaxed);
                        match answer {
                            Ok(r) if r.pointer("/result/content/0/text") == Some(&json!(text)) => {
                                ok += 1;
                            }
                            // Its replica died: the spec's 404, then a new session.
                            Ok(r) if r["error"]["code"] == -32001 && after => {
                                session = Some(McpClient::connect(port));
                            }
                            // A call cut by the kill (the relay's connection dropped).
                            Err(_) if after => {}
                            Ok(r) => failures.push(format!("bad answer {r}")),
                            Err(e) => failures.push(e),
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            (10 + k, ok, failures)
        }));
    }
    // Once B has served its share, it is SIGKILLed right after a refresh (not holding the
    // lock): the others carry on with the shared token.
    let start = Instant::now();
    while upstream.ledger().count("refresh_token") < 1 {
        assert!(start.elapsed() < Duration::from_secs(8), "no refresh");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    killed.store(true, Ordering::Relaxed);
    b.sigkill();
    std::thread::sleep(Duration::from_millis(7000));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let (i, ok, failures) = t.join().expect("client thread");
        let who = match i {
            10.. => format!("client {} through HAProxy", i - 10),
            _ => format!("replica {i}"),
        };
        eprintln!("{who}: {ok} calls answered, {} failed", failures.len());
        assert!(ok > 0, "{who} answered nothing");
        if i != 1 {
            assert!(failures.is_empty(), "{who}: {failures:?}");
        }
    }
    let ledger = upstream.ledger();
    let refreshes = ledger.times("refresh_token");
    eprintln!(
        "{} refreshes; {} requests relayed; grants {:?}",
        refreshes.len(),
        ledger.relayed,
        ledger.grants.iter().map(|(g, _)| g).collect::<Vec<_>>()
    );
    assert!(refreshes.len() >= 3, "{} refreshes", refreshes.len());
    // Exactly one refresh per expiry: a token renewed from 2 to 3 s after it was obtained.
    assert_spaced(&refreshes, Duration::from_millis(1500), "refreshes");
    assert_eq!(ledger.stale_refreshes, 0, "a refresh token was used twice");
    assert_eq!(ledger.count("authorization_code"), 1, "one login");
    // No call reached the upstream with an expired token.
    assert_eq!(
        ledger.refused, refused_before,
        "requests refused under load"
    );
}

#[test]
fn replicas_starting_together_make_one_machine_grant() {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    let upstream = OAuthServer::start(4);
    let auth = json!({"auth": {"type": "client_credentials",
        "client_id": MACHINE_CLIENT.0, "client_secret": MACHINE_CLIENT.1}});
    let hubs: Vec<Hub> = (0..3)
        .map(|_| replica(&redis, &upstream, auth.clone()))
        .collect();
    for hub in &hubs {
        hub.wait_status(&["remote"], "connected");
    }
    assert_eq!(
        upstream.ledger().count("client_credentials"),
        1,
        "one grant"
    );
    // Calls on every replica through two expiries: one grant per expiry.
    let mut clients: Vec<McpClient> = hubs.iter().map(|h| McpClient::connect(h.port)).collect();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(7) {
        for c in &mut clients {
            n += 1;
            echo(c, &format!("m{n}")).expect("call");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ledger = upstream.ledger();
    let grants = ledger.times("client_credentials");
    assert!(grants.len() >= 3, "{grants:?}");
    assert_spaced(
        &grants,
        Duration::from_millis(1500),
        "client_credentials grants",
    );
    for hub in &hubs {
        assert!(
            !hub.stderr().contains(MACHINE_CLIENT.1),
            "the client secret was logged"
        );
    }
}

fn state_of(url_or_callback: &str) -> String {
    let query = url_or_callback.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("state="))
        .expect("state")
        .to_owned()
}

/// The authorization code flow's pending state is shared: a login started on A completes when
/// the browser's callback reaches B, the tokens then serve A, and the callback is consumed for
/// the whole cluster. Each replica with its own redirect URI (the default: B must exchange
/// the code with A's), then all with one public redirect URI (`--oauth-redirect-url`, the
/// balancer's: the callback may reach any replica).
#[test]
fn a_login_started_on_one_replica_completes_on_another() {
    login_across_replicas(&[]);
    login_across_replicas(&[
        "--oauth-redirect-url",
        "http://127.0.0.1:9/api/oauth/callback",
    ]);
}

fn login_across_replicas(args: &[&str]) {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    let upstream = OAuthServer::start(600);
    let a = replica_with(&redis, &upstream, json!({}), args);
    let b = replica_with(&redis, &upstream, json!({}), args);
    let c = replica_with(&redis, &upstream, json!({}), args);
    for hub in [&a, &b, &c] {
        hub.wait_status(&["remote"], "unauthorized");
    }
    let callback = login_started_on(&a, &upstream);
    // The pending state is in Redis under a hash of `state`, never the state itself (each
    // replica started a flow of its own when it found the server unauthorized).
    let key = format!("mcp-hub:{}", pending_key(&state_of(&callback)));
    assert!(redis.command(&["EXISTS", &key]).contains(":1"));
    let keys = redis.command(&["KEYS", "mcp-hub:shared:oauth:pending:*"]);
    assert!(!keys.contains(&state_of(&callback)), "{keys}");

    let r = b.get(&callback);
    assert_eq!(r.status, 200, "{}", r.text());
    b.wait_status(&["remote"], "connected");
    assert!(redis.command(&["EXISTS", &key]).contains(":0"), "taken");

    // Consumed everywhere: a replay on A (which started it) or on C is refused, and A's
    // `authorize` hands out a new URL rather than the dead one.
    for hub in [&a, &c] {
        let r = hub.get(&callback);
        assert_eq!(r.status, 400, "{}", r.text());
    }
    let r = a.post("/api/servers/authorize", &json!({"server_name": "remote"}));
    let again = r.json()["authorizationUrl"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(!again.is_empty(), "{}", r.text());
    assert_ne!(state_of(&again), state_of(&callback));

    // The tokens B obtained serve A and C: no second login.
    reconnect(&a);
    reconnect(&c);
    for hub in [&a, &b, &c] {
        let mut s = McpClient::connect(hub.port);
        echo(&mut s, "after the login").expect("call");
    }
    assert_eq!(upstream.ledger().count("authorization_code"), 1);
}
