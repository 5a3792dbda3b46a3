//! Cluster mode and MRTR (docs/SCALE-OUT.md): a 2026-07-28 call parked on one replica (the
//! upstream, a handshake-era fixture, asked for an elicitation) is resumed by its retry on
//! another replica, which forwards it to the parking one; once that replica is dead, the retry
//! gets the expired-state error at once. Real replicas, a real `redis-server` (skipped, saying
//! so, without one).

use std::time::{Duration, Instant};

use mcp_hub_tests::redis::Redis;
use serde_json::{Value, json};

use crate::cluster::replica;
use crate::modern::meta;

/// One stateless `tools/call` of the fixture's `ask_client` (an elicitation), with `extra`
/// params (the retry's state and answers). Bounded: a hang fails the test.
fn ask(port: u16, id: i64, extra: Value) -> Result<Value, String> {
    let mut params = json!({"name": "fx__ask_client",
                            "arguments": {"kind": "elicitation", "text": "your name?"},
                            "_meta": meta(json!({"elicitation": {}}))});
    for (k, v) in extra.as_object().into_iter().flatten() {
        params[k] = v.clone();
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let r = mcp_hub_tests::try_request(
        port,
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "fx__ask_client"),
        ],
        Some(body.to_string().as_bytes()),
        Duration::from_secs(15),
    )?;
    mcp_hub_tests::jsonrpc_messages(&r)
        .into_iter()
        .find(|m| m["id"] == id)
        .ok_or_else(|| format!("HTTP {}: no answer: {}", r.status, r.text()))
}

/// Parks a call on the replica at `port`: its input request's key and its `requestState`.
fn park(port: u16, id: i64) -> (String, String) {
    let first = ask(port, id, json!({})).expect("first leg");
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required", "{first}");
    let key = r["inputRequests"]
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .unwrap_or_else(|| panic!("no input request: {first}"));
    (key, r["requestState"].as_str().expect("state").to_owned())
}

fn accepted(name: &str) -> Value {
    json!({"action": "accept", "content": {"answer": name}})
}

#[test]
fn a_parked_call_is_resumed_through_another_replica() {
    let Some(redis) = Redis::start(None) else {
        return;
    };
    let mut a = replica(&redis, 1500);
    let b = replica(&redis, 1500);

    // Parked on A; the state names A (a live member) in clear beside its seal.
    let (key, state) = park(a.port, 1);
    let (parker, _) = state.split_once(':').expect("stamped with its replica");
    let member = redis.command(&["EXISTS", &format!("mcp-hub:replica:{parker}")]);
    assert!(member.contains(":1"), "{member}");

    // A stamp altered to name B (a live replica) sends the retry to B, whose key does not open
    // A's seal: refused, and the call stays parked on A.
    let members = redis.command(&["KEYS", "mcp-hub:replica:*"]);
    let other = members
        .lines()
        .filter_map(|l| l.strip_prefix("mcp-hub:replica:"))
        .find(|id| *id != parker)
        .expect("B's id")
        .to_owned();
    let forged = format!("{other}:{}", state.split_once(':').map_or("", |(_, s)| s));
    let e = ask(
        a.port,
        11,
        json!({"requestState": forged, "inputResponses": {key.as_str(): accepted("Eve")}}),
    )
    .expect("forged stamp");
    assert_eq!(e["error"]["code"], -32602, "{e}");

    // The retry reaches B: B forwards it to A, where the call is parked, and relays its answer.
    let done = ask(
        b.port,
        2,
        json!({"requestState": state, "inputResponses": {key.as_str(): accepted("Ada")}}),
    )
    .expect("retry through B");
    assert_eq!(done["id"], 2, "the retry's own id: {done}");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    let text = done["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("elicitation/create answered") && text.contains("Ada"),
        "{done}"
    );
    // Used once, wherever it is presented again.
    for port in [a.port, b.port] {
        let again = ask(
            port,
            3,
            json!({"requestState": state, "inputResponses": {}}),
        )
        .expect("second retry");
        assert_eq!(again["error"]["code"], -32602, "{again}");
    }

    // A call parked on B and retried on B is served by B itself.
    let (key_b, state_b) = park(b.port, 4);
    let done = ask(
        b.port,
        5,
        json!({"requestState": state_b, "inputResponses": {key_b.as_str(): accepted("Bo")}}),
    )
    .expect("retry on B");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");

    // A dies with a call parked. Within its TTL (its membership key is still there, its port
    // refuses) and after it, the retry on B is told the state has expired, at once.
    let (key1, state1) = park(a.port, 6);
    a.sigkill();
    let t = Instant::now();
    let lost = ask(
        b.port,
        8,
        json!({"requestState": state1, "inputResponses": {key1.as_str(): accepted("x")}}),
    )
    .expect("retry after the kill");
    assert_eq!(lost["error"]["code"], -32602, "{lost}");
    assert!(
        lost["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{lost}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis
        .command(&["EXISTS", &format!("mcp-hub:replica:{parker}")])
        .contains(":1")
    {
        assert!(Instant::now() < deadline, "A's membership never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    let lost = ask(
        b.port,
        9,
        json!({"requestState": state1, "inputResponses": {key1.as_str(): accepted("x")}}),
    )
    .expect("retry after the TTL");
    assert_eq!(lost["error"]["code"], -32602, "{lost}");
    assert!(
        lost["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{lost}"
    );
    // The client restarts the call, on a live replica.
    let (_, again) = park(b.port, 10);
    assert!(!again.starts_with(parker), "{again}");
}
