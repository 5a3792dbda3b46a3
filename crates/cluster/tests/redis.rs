//! The cluster crate against a real `redis-server` (Debian's package; `scripts/cluster-test.sh`
//! installs it). Each test starts its own on a loopback port and skips, saying so, without one.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcp_hub_cluster::{Cluster, ClusterConfig, Location, SharedSecret};

struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis() -> Option<Redis> {
    let bin = std::env::var("MCP_HUB_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = Command::new(&bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!(
                "SKIP: no redis-server (Debian's redis-server; scripts/cluster-test.sh installs it)"
            );
            return None;
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis { child, port });
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("redis-server did not start");
}

async fn join(r: &Redis, advertise: &str) -> Cluster {
    let secret = SharedSecret::new("a-test-secret-of-some-length").unwrap();
    let mut c = ClusterConfig::new(format!("redis://127.0.0.1:{}", r.port), advertise, secret);
    c.ttl = Duration::from_millis(600);
    Cluster::join(c).await.expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_directory() {
    let Some(r) = redis() else { return };
    let a = join(&r, "127.0.0.1:1001").await;
    let b = join(&r, "127.0.0.1:1002").await;
    let live = a.replicas().await.unwrap();
    assert_eq!(live.len(), 2);
    assert!(live.iter().any(|x| x.addr == "127.0.0.1:1002"));

    a.claim_session("s1").await.unwrap();
    assert_eq!(a.locate_session("s1").await.unwrap(), Location::Here);
    match b.locate_session("s1").await.unwrap() {
        Location::Remote(owner) => assert_eq!(owner.addr, "127.0.0.1:1001"),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.locate_session("nope").await.unwrap(), Location::Gone);
    a.release_session("s1").await.unwrap();
    assert_eq!(b.locate_session("s1").await.unwrap(), Location::Gone);

    // A replica that leaves is gone at once, and its sessions with it.
    a.claim_session("s2").await.unwrap();
    a.leave().await;
    assert_eq!(b.locate_session("s2").await.unwrap(), Location::Gone);
    assert_eq!(b.replicas().await.unwrap().len(), 1);
    // A heartbeat keeps a live replica past its TTL.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(b.replica(b.replica_id()).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lock_holder_at_a_time() {
    let Some(r) = redis() else { return };
    let replicas = [
        join(&r, "127.0.0.1:1").await,
        join(&r, "127.0.0.1:2").await,
        join(&r, "127.0.0.1:3").await,
    ];
    let inside = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in replicas.iter().cycle().take(12) {
        let (c, inside, entered) = (c.clone(), inside.clone(), entered.clone());
        tasks.push(tokio::spawn(async move {
            let lock = c
                .lock("refresh:x", Duration::from_secs(5), Duration::from_secs(10))
                .await
                .unwrap()
                .expect("the lock within the wait");
            assert_eq!(
                inside.fetch_add(1, Ordering::SeqCst),
                0,
                "two holders at once"
            );
            entered.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            assert!(c.unlock(lock).await.unwrap());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(entered.load(Ordering::SeqCst), 12);

    // A holder that dies: its lease expires and the next one gets the lock; the late release
    // of the first does not delete the second's.
    let first = replicas[0]
        .lock("refresh:y", Duration::from_millis(200), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(
        replicas[1]
            .lock("refresh:y", Duration::from_secs(5), Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    let second = replicas[1]
        .lock("refresh:y", Duration::from_secs(5), Duration::from_secs(2))
        .await
        .unwrap()
        .expect("after the first lease");
    assert!(!replicas[0].unlock(first).await.unwrap());
    assert!(
        replicas[2]
            .lock("refresh:y", Duration::from_secs(5), Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    assert!(replicas[1].unlock(second).await.unwrap());

    // Shared values.
    assert_eq!(replicas[0].shared_get("k").await.unwrap(), None);
    replicas[0].shared_set("k", "v1").await.unwrap();
    assert_eq!(
        replicas[2].shared_get("k").await.unwrap().as_deref(),
        Some("v1")
    );
    replicas[1].shared_delete("k").await.unwrap();
    assert_eq!(replicas[2].shared_get("k").await.unwrap(), None);
}

/// The next message a listener gets within `ms`, if any.
async fn next(
    rx: &mut tokio::sync::mpsc::Receiver<mcp_hub_cluster::Message>,
    ms: u64,
) -> Option<mcp_hub_cluster::Message> {
    tokio::time::timeout(Duration::from_millis(ms), rx.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_commands_and_statuses_between_replicas() {
    use mcp_hub_cluster::MessageKind;
    let Some(r) = redis() else { return };
    let a = join(&r, "127.0.0.1:1").await;
    let b = join(&r, "127.0.0.1:2").await;
    // Same namespace, another secret: a different cluster by mistake, or an intruder.
    let mut cfg = ClusterConfig::new(
        format!("redis://127.0.0.1:{}", r.port),
        "127.0.0.1:3",
        SharedSecret::new("another-secret-entirely").unwrap(),
    );
    cfg.ttl = Duration::from_millis(600);
    let stranger = Cluster::join(cfg).await.expect("join");
    let mut at_a = a.listen().expect("first listen");
    assert!(a.listen().is_none(), "one listener per replica");
    let mut at_b = b.listen().expect("listen");
    // Subscriptions are made by the listener tasks: wait until both are in.
    for _ in 0..100 {
        if a.send_command(r#"{"probe":1}"#).await.unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while next(&mut at_b, 100).await.is_some() {}

    a.emit_event(r#"{"event":"log","data":{"n":1}}"#);
    let m = next(&mut at_b, 5000).await.expect("A's event at B");
    assert_eq!(m.replica, a.replica_id());
    assert_eq!(m.kind, MessageKind::Event);
    assert_eq!(m.body, r#"{"event":"log","data":{"n":1}}"#);
    assert_eq!(b.send_command(r#"{"op":"stop"}"#).await.unwrap(), 1);
    let m = next(&mut at_a, 5000).await.expect("B's command at A");
    assert_eq!(
        (m.kind, m.body.as_str()),
        (MessageKind::Command, r#"{"op":"stop"}"#)
    );
    // Nobody hears itself, and the stranger's messages open nowhere.
    stranger.emit_event(r#"{"event":"log","data":{}}"#);
    stranger.send_command(r#"{"op":"stop"}"#).await.unwrap();
    assert!(next(&mut at_a, 500).await.is_none());
    assert!(next(&mut at_b, 100).await.is_none());
    // Not JSON: refused before it is sent.
    assert!(a.send_command("not json").await.is_err());

    // Statuses: every live replica, its own body; the stranger's seal does not open here.
    a.publish_status(r#"{"servers":[{"name":"fx","status":"connected"}]}"#.into());
    stranger.publish_status(r#"{"servers":[]}"#.into());
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = b.statuses().await.unwrap();
        if seen.iter().any(|s| s.body.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.len(), 3);
    for s in &seen {
        let expected = (s.replica.id == a.replica_id())
            .then(|| r#"{"servers":[{"name":"fx","status":"connected"}]}"#.to_owned());
        assert_eq!(s.body, expected, "{}", s.replica.id);
    }
    // Renewed past its TTL while the replica lives; gone at once when it leaves.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(b.statuses().await.unwrap().iter().any(|s| s.body.is_some()));
    a.leave().await;
    let left = b.statuses().await.unwrap();
    assert!(left.iter().all(|s| s.replica.id != a.replica_id()));
    assert!(left.iter().all(|s| s.body.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_value_is_taken_once() {
    let Some(r) = redis() else { return };
    let replicas = [
        join(&r, "127.0.0.1:1").await,
        join(&r, "127.0.0.1:2").await,
        join(&r, "127.0.0.1:3").await,
    ];
    // Twelve takers on three replicas at once: exactly one gets it.
    replicas[0]
        .shared_set_for("pending:a", "flow", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        replicas[1]
            .shared_get("pending:a")
            .await
            .unwrap()
            .as_deref(),
        Some("flow")
    );
    let mut tasks = Vec::new();
    for c in replicas.iter().cycle().take(12) {
        let c = c.clone();
        tasks.push(tokio::spawn(
            async move { c.shared_take("pending:a").await },
        ));
    }
    let mut got = Vec::new();
    for t in tasks {
        if let Some(v) = t.await.unwrap().unwrap() {
            got.push(v);
        }
    }
    assert_eq!(got, ["flow"]);
    assert_eq!(replicas[2].shared_get("pending:a").await.unwrap(), None);
    // It expires with its TTL.
    replicas[0]
        .shared_set_for("pending:b", "flow", Duration::from_millis(150))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(replicas[1].shared_take("pending:b").await.unwrap(), None);
}
