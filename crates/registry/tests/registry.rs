//! The registry driving real fixture server processes: parallel start, namespacing and collision
//! reports, list_changed propagation, crash restart with backoff.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_hub_registry::{
    Connector, Prefix, Registry, RegistryEvent, RegistryOptions, RequestOptions, ServerDefinition,
    ServerStatus,
};
use mcp_hub_transport::{StdioSpec, TransportSpec};
use serde_json::{Map, Value, json};

fn fixture() -> Option<PathBuf> {
    mcp_hub_fixture::built_binary()
}

struct Fixed(TransportSpec);

#[async_trait::async_trait]
impl Connector for Fixed {
    async fn spec(&self) -> Result<TransportSpec, String> {
        Ok(self.0.clone())
    }
}

fn def(name: &str, prefix: Prefix, args: &[&str]) -> Option<ServerDefinition> {
    let path = fixture()?;
    let env = std::env::vars()
        .filter(|(k, _)| k == "PATH" || k == "HOME")
        .collect();
    Some(ServerDefinition {
        name: name.to_owned(),
        display_name: None,
        description: None,
        transport_type: "stdio",
        prefix,
        disabled: false,
        request_timeout: None,
        config_source: None,
        connector: Arc::new(Fixed(TransportSpec::Stdio(StdioSpec {
            name: name.to_owned(),
            command: path.display().to_string(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env,
            cwd: None,
            stderr: None,
        }))),
    })
}

fn fast() -> RegistryOptions {
    RegistryOptions {
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        initialize_timeout: Duration::from_secs(10),
        ..RegistryOptions::default()
    }
}

macro_rules! need_fixture {
    () => {
        if fixture().is_none() {
            eprintln!("skipping: mcp-hub-fixture is not built (cargo build --workspace --bins) and MCP_HUB_FIXTURE is unset");
            return;
        }
    };
}

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
