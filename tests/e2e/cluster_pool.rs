//! Forwarded requests reuse kept-alive connections to their owner (docs/SCALE-OUT.md): twenty
//! calls of a session owned by A, sent to B one after the other, open one or two connections
//! from B to A, not twenty. Counted in the kernel's socket table (`/proc/net/tcp`, where a
//! closed connection stays in TIME_WAIT for a minute). Real replicas, a real `redis-server`.

use std::time::Duration;

use mcp_hub_tests::McpClient;
use mcp_hub_tests::redis::Redis;
use serde_json::json;

use crate::cluster::replica;

/// Sockets on loopback with `port` at one end, in any state (TIME_WAIT included).
fn sockets_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            cols.len() > 2 && (port_of(cols[1]) == Some(port) || port_of(cols[2]) == Some(port))
        })
        .count()
}

#[test]
fn forwarded_requests_reuse_their_connections() {
    if !std::path::Path::new("/proc/net/tcp").exists() {
        eprintln!("SKIP: no /proc/net/tcp to count connections in");
        return;
    }
    let Some(redis) = Redis::start(None) else {
        return;
    };
    let a = replica(&redis, 3000);
    let b = replica(&redis, 3000);
    let mut s = McpClient::connect(a.port);
    // The listening socket, and whatever the session's opening left.
    let before = sockets_on(a.port);
    s.port = b.port;
    for i in 0..20 {
        let r = s
            .try_call(
                "tools/call",
                json!({"name": "fx__echo", "arguments": {"text": format!("n{i}")}}),
                Duration::from_secs(20),
            )
            .expect("forwarded call");
        assert_eq!(r["result"]["content"][0]["text"], format!("n{i}"), "{r}");
    }
    let opened = sockets_on(a.port).saturating_sub(before);
    // Each B→A connection is two sockets here (both ends on loopback).
    assert!(
        opened <= 4,
        "{opened} sockets to A for 20 forwarded calls (one connection each would be 40)"
    );
}
