//! The registry driving real fixture server processes: parallel start, namespacing and collision
//! reports, list_changed propagation, crash restart with backoff.

mod common;

use std::time::{Duration, Instant};

use common::{def, fast, fixture};
use mcp_hub_registry::{Prefix, Registry, RegistryEvent, RequestOptions, ServerStatus};
use serde_json::{Map, Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_start_in_parallel_and_a_slow_one_delays_nobody() {
    need_fixture!();
    let reg = Registry::new(fast());
    // `--delay-ms` only delays tool calls; a server that never answers initialize is the slow one.
    reg.upsert(def("stuck", Prefix::Default, &["--no-init-response"]).unwrap());
    let start = Instant::now();
    for i in 0..8 {
        reg.upsert(def(&format!("s{i}"), Prefix::Default, &[]).unwrap());
    }
    loop {
        let ready = reg
            .snapshots()
            .iter()
            .filter(|s| s.status == ServerStatus::Connected)
            .count();
        let listed = reg
            .catalog()
            .tools()
            .iter()
            .filter(|t| &*t.original == "echo")
            .count();
        if ready == 8 && listed == 8 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "8 servers did not connect while one hangs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        reg.snapshot("stuck").unwrap().status,
        ServerStatus::Connecting
    );
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collisions_are_reported_and_calls_route_to_the_owner() {
    need_fixture!();
    let reg = Registry::new(fast());
    reg.upsert(def("a", Prefix::None, &["--name", "a"]).unwrap());
    reg.upsert(def("b", Prefix::None, &["--name", "b"]).unwrap());
    reg.upsert(def("c", Prefix::Custom("see".into()), &["--name", "c"]).unwrap());
    reg.wait_settled(Duration::from_secs(10)).await;
    let cat = reg.catalog();
    assert_eq!(cat.tool("echo").unwrap().server.as_ref(), "a");
    assert_eq!(cat.tool("echo_1").unwrap().server.as_ref(), "b");
    assert!(cat.tool("see__echo").is_some());
    assert!(
        cat.collisions()
            .iter()
            .any(|c| c.wanted == "echo" && c.kept_by == "a" && c.server == "b"),
        "{:?}",
        cat.collisions()
    );

    let mut p = Map::new();
    p.insert("name".into(), json!("echo_1"));
    p.insert("arguments".into(), json!({"text": "to b"}));
    let r = reg.call_tool(p, RequestOptions::default()).await.unwrap();
    let v: Value = serde_json::from_str(r.get()).unwrap();
    assert!(v["content"][0]["text"].as_str().unwrap().contains("to b"));
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_refreshes_only_that_server_and_is_announced() {
    need_fixture!();
    let reg = Registry::new(fast());
    let mut events = reg.events();
    reg.upsert(def("late", Prefix::Default, &["--list-changed-after", "300"]).unwrap());
    reg.upsert(def("calm", Prefix::Default, &[]).unwrap());
    reg.wait_settled(Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_list = false;
    let mut saw_catalog = false;
    while !(saw_list && saw_catalog) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(RegistryEvent::ListChanged { server, .. })) if &*server == "late" => {
                saw_list = true
            }
            Ok(Ok(RegistryEvent::CatalogChanged { tools: true, .. }))
                if reg.catalog().tool("late__late_tool").is_some() =>
            {
                saw_catalog = true
            }
            Ok(Ok(_)) => {}
            other => panic!("no list change seen: {other:?}"),
        }
    }
    assert!(reg.catalog().tool("late__late_tool").is_some());
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_comes_back_with_a_new_process_and_its_tools_vanish_meanwhile() {
    need_fixture!();
    let reg = Registry::new(fast());
    let mut events = reg.events();
    reg.upsert(def("crashy", Prefix::Default, &["--crash-after", "1"]).unwrap());
    reg.wait_settled(Duration::from_secs(10)).await;
    let pid = reg.snapshot("crashy").unwrap().pid;
    let mut p = Map::new();
    p.insert("name".into(), json!("crashy__echo"));
    p.insert("arguments".into(), json!({"text": "boom"}));
    let err = reg
        .call_tool(p, RequestOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("closed") || err.to_string().contains("exited"),
        "{err}"
    );
    // Disconnected → tools gone → connected again with another pid.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut went_down = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(RegistryEvent::ServerStatus {
                status: ServerStatus::Disconnected,
                ..
            })) => {
                went_down = true;
                assert!(
                    reg.catalog().tool("crashy__echo").is_none(),
                    "tools vanish while the server is down"
                );
            }
            Ok(Ok(RegistryEvent::ServerStatus {
                status: ServerStatus::Connected,
                ..
            })) if went_down => break,
            Ok(Ok(_)) => {}
            other => panic!("no restart seen: {other:?}"),
        }
    }
    let snap = reg.snapshot("crashy").unwrap();
    assert_ne!(snap.pid, pid);
    assert!(snap.restarts >= 1);
    assert!(reg.catalog().tool("crashy__echo").is_some());
    reg.shutdown().await;
}
