//! Cluster mode for operators (docs/SCALE-OUT.md, "Cluster-wide `/api/servers` and
//! `/api/events`"): replicas of the real binary sharing a real `redis-server` are seen and
//! steered as one hub. Every test skips (saying so) without `redis-server`;
//! `scripts/cluster-test.sh` installs it.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use mcp_hub_tests::Hub;
use mcp_hub_tests::events::EventLog;
use mcp_hub_tests::redis::Redis;
use serde_json::{Value, json};

use crate::cluster::replica;

/// This replica's id, as its `/api/servers` says.
fn id_of(hub: &Hub) -> String {
    let v = hub.get("/api/servers").json();
    v["cluster"]["replica"]
        .as_str()
        .unwrap_or_else(|| panic!("no cluster.replica in {v}"))
        .to_owned()
}

/// `fx`'s `replicas` member on `hub`, once it lists `n` replicas all with `status`.
fn wait_replicas(hub: &Hub, n: usize, status: &str) -> Vec<Value> {
    hub.wait_for(Duration::from_secs(20), |h| {
        let fx = h.server("fx");
        let list = fx["replicas"].as_array()?.clone();
        (list.len() == n && list.iter().all(|r| r["status"] == status)).then_some(list)
    })
}

/// Runs one Redis command given as raw arguments (RESP, so any bytes go through) and returns
/// Redis' raw answer.
fn resp(redis: &Redis, args: &[&[u8]]) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", redis.port)).expect("connect redis");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    // `redis://:<password>@…` when the test's Redis has one.
    let url = redis.url();
    if let Some(pw) = url
        .strip_prefix("redis://:")
        .and_then(|r| r.split_once('@'))
        .map(|(pw, _)| pw)
    {
        let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{pw}\r\n", pw.len());
        s.write_all(auth.as_bytes()).expect("auth");
        let mut ok = [0u8; 5];
        s.read_exact(&mut ok).expect("auth answer");
        assert_eq!(&ok, b"+OK\r\n");
    }
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    s.write_all(&out).expect("write redis");
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Waits (bounded) until `n` connections listen to the commands channel: each replica
/// subscribes in the background once it has started.
fn wait_listeners(redis: &Redis, n: usize) {
    let want = format!("mcp-hub:commands\r\n:{n}\r\n");
    for _ in 0..200 {
        if resp(redis, &[b"PUBSUB", b"NUMSUB", b"mcp-hub:commands"]).contains(&want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{n} replicas never all listened to the commands channel");
}

/// Subscribes to a channel on its own connection; `next` returns the payload of the next
/// message (bounded wait).
struct Sniffer(std::net::TcpStream, Vec<u8>);

impl Sniffer {
    fn open(redis: &Redis, channel: &str) -> Sniffer {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", redis.port)).expect("redis");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let cmd = format!(
            "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
            channel.len()
        );
        s.write_all(cmd.as_bytes()).expect("subscribe");
        let mut sn = Sniffer(s, Vec::new());
        // The confirmation: *3, $9, subscribe, $n, the channel, :1.
        for _ in 0..6 {
            sn.line();
        }
        sn
    }

    fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.1.windows(2).position(|w| w == b"\r\n") {
                let l = self.1[..i].to_vec();
                self.1.drain(..i + 2);
                return l;
            }
            let mut buf = [0u8; 65536];
            let n = self.0.read(&mut buf).expect("read redis");
            assert!(n > 0, "redis closed the subscription");
            self.1.extend_from_slice(&buf[..n]);
        }
    }

    /// The next message's payload (`*3`, `$7`, `message`, `$n`, the channel, `$n`, the
    /// payload: one line, as every payload of the hub's is).
    fn next(&mut self) -> Vec<u8> {
        for _ in 0..6 {
            self.line();
        }
        self.line()
    }
}

#[test]
fn replicas_are_seen_and_steered_as_one_hub() {
    // With a password: the replicas' pub/sub connections authenticate like the others.
    let Some(redis) = Redis::start(Some("ops-pass-7d2e")) else {
        return;
    };
    let a = replica(&redis, 1500);
    let b = replica(&redis, 1500);
    let mut c = replica(&redis, 1500);
    wait_listeners(&redis, 3);
    let (ida, idb, idc) = (id_of(&a), id_of(&b), id_of(&c));
    assert!(ida != idb && idb != idc && ida != idc);

    // Every replica lists every replica's status of `fx`, its own marked local; the Node hub's
    // top-level fields stay this replica's own.
    for (hub, me) in [(&a, &ida), (&b, &idb), (&c, &idc)] {
        let list = wait_replicas(hub, 3, "connected");
        let local: Vec<&Value> = list.iter().filter(|r| r["local"] == true).collect();
        assert_eq!(local.len(), 1, "{list:?}");
        assert_eq!(local[0]["replica"], **me);
        let v = hub.get("/api/servers").json();
        assert_eq!(v["servers"][0]["status"], "connected");
        assert!(v["servers"][0]["capabilities"]["tools"].is_array(), "{v}");
        assert!(v["timestamp"].is_string());
        let mut ids: Vec<String> = vec![ida.clone(), idb.clone(), idc.clone()];
        ids.sort();
        assert_eq!(v["cluster"]["replicas"], json!(ids));
        let info = hub
            .post("/api/servers/info", &json!({"server_name": "fx"}))
            .json();
        assert_eq!(info["server"]["name"], "fx");
        assert_eq!(info["server"]["replicas"].as_array().map(Vec::len), Some(3));
    }

    // A change on B alone (its `fx` child dies and is restarted): A's clients hear B's log
    // events about it, tagged B, and A's /api/servers shows B's new process while A's own
    // entry is unchanged.
    let events = EventLog::open(a.port);
    let from = events.len();
    let a_pid = a.server("fx")["pid"].clone();
    let old = b.server("fx")["pid"].as_u64().expect("B's fx pid");
    let pid = rustix::process::Pid::from_raw(old as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill B's fx");
    let got = events.wait_from(from, Duration::from_secs(20), |e| {
        e.event == "log" && e.json()["replica"] == idb.as_str() && e.data.contains("fx")
    });
    assert!(got.is_some(), "no log event from B: {:?}", events.all());
    a.wait_for(Duration::from_secs(20), |h| {
        let fx = h.server("fx");
        let at_b = fx["replicas"]
            .as_array()?
            .iter()
            .find(|r| r["replica"] == idb.as_str())?
            .clone();
        (at_b["status"] == "connected" && at_b["pid"].as_u64().is_some_and(|p| p != old))
            .then_some(())
    });
    assert_eq!(a.server("fx")["pid"], a_pid, "A's own fx was not touched");

    // A stop sent to A stops `fx` on B and C too; the answer says two others were told.
    let from = events.len();
    let r = a
        .post("/api/servers/stop", &json!({"server_name": "fx"}))
        .json();
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["cluster"]["replica"], ida.as_str(), "{r}");
    assert_eq!(r["cluster"]["notified"], 2, "{r}");
    for hub in [&b, &c] {
        hub.wait_status_within(&["fx"], "disconnected", Duration::from_secs(10));
    }
    let list = wait_replicas(&a, 3, "disconnected");
    assert_eq!(list.len(), 3);

    // A's /api/events carries B's and C's announcements, tagged with their replica, and A's own
    // once (tagged A), not echoed back through Redis.
    for id in [&idb, &idc] {
        let got = events.wait_from(from, Duration::from_secs(10), |e| {
            e.is_subscription("servers_updated") && e.json()["replica"] == **id
        });
        assert!(
            got.is_some(),
            "no servers_updated from {id}: {:?}",
            events.all()
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    let own: Vec<_> = events.all()[from..]
        .iter()
        .filter(|e| e.is_subscription("servers_updated") && e.json()["replica"] == ida.as_str())
        .cloned()
        .collect();
    assert_eq!(own.len(), 1, "A's own announcement exactly once: {own:?}");
    // hub_state and heartbeats stay local.
    assert!(
        events.all()[from..]
            .iter()
            .all(|e| e.event != "hub_state" || e.json()["replica"] == ida.as_str()),
        "{:?}",
        events.all()
    );

    // A start through C brings `fx` back everywhere.
    let r = c
        .post("/api/servers/start", &json!({"server_name": "fx"}))
        .json();
    assert_eq!(r["status"], "ok", "{r}");
    for hub in [&a, &b, &c] {
        hub.wait_status(&["fx"], "connected");
    }

    // Disable through B: every replica disables `fx`, only B writes its config file.
    let r = b
        .post(
            "/api/servers/stop?disable=true",
            &json!({"server_name": "fx"}),
        )
        .json();
    assert_eq!(r["status"], "ok", "{r}");
    for hub in [&a, &b, &c] {
        hub.wait_status_within(&["fx"], "disabled", Duration::from_secs(10));
    }
    let file = |h: &Hub| -> Value {
        serde_json::from_str(&std::fs::read_to_string(h.dir.path().join("s.json")).unwrap())
            .unwrap()
    };
    assert_eq!(file(&b)["mcpServers"]["fx"]["disabled"], true);
    assert!(file(&a)["mcpServers"]["fx"].get("disabled").is_none());
    assert!(file(&c)["mcpServers"]["fx"].get("disabled").is_none());
    let r = b
        .post("/api/servers/start", &json!({"server_name": "fx"}))
        .json();
    assert_eq!(r["status"], "ok", "{r}");
    for hub in [&a, &b, &c] {
        hub.wait_status(&["fx"], "connected");
    }

    // A replica that dies: its entries vanish from the others' view within its TTL.
    c.sigkill();
    let left = a.wait_for(Duration::from_secs(10), |h| {
        let v = h.get("/api/servers").json();
        let list = v["servers"][0]["replicas"].as_array()?.clone();
        (list.len() == 2).then_some(list)
    });
    assert!(
        left.iter().all(|r| r["replica"] != idc.as_str()),
        "{left:?}"
    );
    // Its status key expires with its own TTL too (renewed on its own beat, so within a TTL of
    // the membership key).
    a.wait_for(Duration::from_secs(5), |_| {
        redis
            .command(&["EXISTS", &format!("mcp-hub:servers:{idc}")])
            .contains(":0")
            .then_some(())
    });
    // The pub/sub side authenticated and never logged the password.
    for hub in [&a, &b, &c] {
        let log = hub.stderr();
        assert!(
            !log.contains("ops-pass-7d2e"),
            "the Redis password was logged"
        );
        assert!(!log.contains("cannot subscribe"), "{log}");
        assert!(!log.contains("cannot publish"), "{log}");
    }
}

#[test]
fn forged_and_malformed_messages_change_nothing() {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    let a = replica(&redis, 3000);
    let b = replica(&redis, 3000);
    wait_replicas(&a, 2, "connected");
    wait_listeners(&redis, 2);
    let idb = id_of(&b);
    let events = EventLog::open(a.port);
    let from = events.len();

    // Whoever can write to Redis but lacks the secret: a bare command, an envelope with a wrong
    // seal, one claiming to be B, junk, bytes that are not UTF-8, a huge message. Both replicas
    // received each (PUBLISH counts them) and ignored it.
    let forged_stop = json!({"op": "stop", "server": "fx"}).to_string();
    let envelope = json!({"replica": idb, "kind": "command", "id": "x1", "at": 0,
        "body": {"op": "stop", "server": "fx"}})
    .to_string();
    let event = json!({"replica": idb, "kind": "event", "id": "x2", "at": 0,
        "body": {"event": "log", "data": {"replica": idb, "type": "error", "message": "forged-event"}}})
    .to_string();
    let big = vec![b'a'; 9 << 20];
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        ("mcp-hub:commands", forged_stop.into_bytes()),
        (
            "mcp-hub:commands",
            format!("{}.{envelope}", "0".repeat(64)).into_bytes(),
        ),
        (
            "mcp-hub:commands",
            format!("{}.{envelope}", "zz".repeat(32)).into_bytes(),
        ),
        (
            "mcp-hub:events",
            format!("{}.{event}", "ab".repeat(32)).into_bytes(),
        ),
        ("mcp-hub:events", b"\xff\xfe\x00not utf-8".to_vec()),
        ("mcp-hub:commands", b"".to_vec()),
        ("mcp-hub:commands", big),
    ];
    for (channel, p) in &payloads {
        let n = resp(&redis, &[b"PUBLISH", channel.as_bytes(), p]);
        assert_eq!(n.trim(), ":2", "{channel}: {n}");
    }
    // A replica that is live in Redis (its membership key is not sealed: whoever writes Redis
    // can add one) but whose status does not carry the cluster's seal: listed as a member, never
    // shown as a server's status.
    let member = json!({"id": "f0", "addr": "127.0.0.1:9", "pid": 1, "started_ms": 1}).to_string();
    let status = format!(
        "{}.{}",
        "0".repeat(64),
        json!({"replica": "f0", "kind": "status",
        "id": "x3", "at": 0, "body": {"servers": [{"name": "fx", "status": "forged"}]}})
    );
    for cmd in [
        vec![
            &b"SET"[..],
            b"mcp-hub:replica:f0",
            member.as_bytes(),
            b"PX",
            b"60000",
        ],
        vec![b"SADD", b"mcp-hub:replicas", b"f0"],
        vec![
            b"SET",
            b"mcp-hub:servers:f0",
            status.as_bytes(),
            b"PX",
            b"60000",
        ],
    ] {
        let r = resp(&redis, &cmd);
        assert!(!r.starts_with('-'), "{r}");
    }
    std::thread::sleep(Duration::from_millis(1000));
    for hub in [&a, &b] {
        assert_eq!(
            hub.server("fx")["status"],
            "connected",
            "a forged stop was applied"
        );
    }
    assert!(
        events.all()[from..]
            .iter()
            .all(|e| !e.data.contains("forged-event")),
        "{:?}",
        events.all()
    );
    let v = a.get("/api/servers").json();
    assert!(
        v["cluster"]["replicas"]
            .as_array()
            .is_some_and(|l| l.contains(&json!("f0"))),
        "{v}"
    );
    let list = v["servers"][0]["replicas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        list.iter()
            .all(|r| r["replica"] != "f0" && r["status"] != "forged"),
        "a forged status was shown: {list:?}"
    );
    assert_eq!(list.len(), 2, "{list:?}");

    // Both replicas still serve, and still hear each other: a stop through B reaches A.
    let mut sniffer = Sniffer::open(&redis, "mcp-hub:commands");
    wait_listeners(&redis, 3);
    let r = b
        .post("/api/servers/stop", &json!({"server_name": "fx"}))
        .json();
    // Redis counts subscribers: A and the sniffer.
    assert_eq!(r["cluster"]["notified"], 2, "{r}");
    a.wait_status_within(&["fx"], "disconnected", Duration::from_secs(10));
    let captured = sniffer.next();
    assert!(
        String::from_utf8_lossy(&captured).contains("\"op\":\"stop\""),
        "{}",
        String::from_utf8_lossy(&captured)
    );
    // That genuine command, replayed once the servers are started again, is ignored: A has
    // seen its id, B wrote it.
    let r = a
        .post("/api/servers/start", &json!({"server_name": "fx"}))
        .json();
    assert_eq!(r["status"], "ok", "{r}");
    for hub in [&a, &b] {
        hub.wait_status(&["fx"], "connected");
    }
    let n = resp(&redis, &[b"PUBLISH", b"mcp-hub:commands", &captured]);
    assert_eq!(n.trim(), ":3", "A, B and the sniffer: {n}");
    std::thread::sleep(Duration::from_millis(1000));
    for hub in [&a, &b] {
        assert_eq!(
            hub.server("fx")["status"],
            "connected",
            "a replayed stop was applied"
        );
    }
}

#[test]
fn with_a_shared_watched_config_every_replica_ends_where_the_command_put_it() {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = dir.path().join("shared.json");
    std::fs::write(
        &shared,
        crate::config(&[("fx", crate::fixture_entry(&["--name", "fx"]))]),
    )
    .expect("write config");
    let start = || {
        let hub = mcp_hub_tests::HubCmd::new()
            .args(&[
                "--config",
                shared.to_str().expect("utf-8 path"),
                "--watch",
                "--cluster",
                &redis.url(),
                "--cluster-ttl-ms",
                "1500",
            ])
            .env("MCP_HUB_CLUSTER_SECRET", crate::cluster::SECRET)
            .start();
        hub.wait_status(&["fx"], "connected");
        hub
    };
    let (a, b) = (start(), start());
    wait_replicas(&a, 2, "connected");
    wait_listeners(&redis, 2);
    let file = || -> Value {
        serde_json::from_str(&std::fs::read_to_string(&shared).expect("read")).expect("json")
    };

    // Disabled through A: A writes the file, B applies the command and then reloads A's write;
    // both end disabled and stay so.
    let r = a
        .post(
            "/api/servers/stop?disable=true",
            &json!({"server_name": "fx"}),
        )
        .json();
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(file()["mcpServers"]["fx"]["disabled"], true);
    for hub in [&a, &b] {
        hub.wait_status_within(&["fx"], "disabled", Duration::from_secs(10));
    }
    std::thread::sleep(Duration::from_millis(1500));
    for hub in [&a, &b] {
        assert_eq!(hub.server("fx")["status"], "disabled");
    }
    // Enabled through B: likewise, the other way round.
    let r = b
        .post("/api/servers/start", &json!({"server_name": "fx"}))
        .json();
    assert_eq!(r["status"], "ok", "{r}");
    assert_ne!(file()["mcpServers"]["fx"]["disabled"], true);
    for hub in [&a, &b] {
        hub.wait_status(&["fx"], "connected");
    }
    std::thread::sleep(Duration::from_millis(1500));
    for hub in [&a, &b] {
        assert_eq!(hub.server("fx")["status"], "connected");
    }
}

#[test]
fn without_redis_a_replica_still_answers_with_its_own_view() {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    let a = replica(&redis, 1500);
    wait_replicas(&a, 1, "connected");
    let me = id_of(&a);
    drop(redis);

    // The server list is this replica's, with why the others' are missing.
    let t = std::time::Instant::now();
    let v = a.get("/api/servers").json();
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert_eq!(v["servers"][0]["status"], "connected", "{v}");
    assert_eq!(v["cluster"]["replica"], me.as_str());
    assert!(v["cluster"]["error"].is_string(), "{v}");
    let list = v["servers"][0]["replicas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["local"], true);
    // Commands still apply here; the answer says they reached nobody else.
    let r = a
        .post("/api/servers/stop", &json!({"server_name": "fx"}))
        .json();
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["cluster"]["notified"], 0, "{r}");
    assert!(r["cluster"]["error"].is_string(), "{r}");
    assert_eq!(a.server("fx")["status"], "disconnected");
    assert_eq!(a.get("/api/health").status, 200);
    // The outage is logged (once per kind), the password-free way.
    a.wait_for(Duration::from_secs(10), |h| {
        let log = h.stderr();
        (log.contains("lost the subscription to the other replicas")
            && log.contains("cannot publish this replica's server statuses"))
        .then_some(())
    });
}
