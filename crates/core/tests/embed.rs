//! The embedding API end to end: a hub started in-process with a fixture server, a tool call
//! through the registry, a hot reload through the handle, and a shutdown that leaves no child.

use std::path::PathBuf;
use std::time::Duration;

use mcp_hub_core::Hub;
use mcp_hub_core::registry::{RequestOptions, ServerStatus};
use serde_json::{Map, Value, json};

fn fixture() -> Option<PathBuf> {
    mcp_hub_fixture::built_binary()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_call_reload_and_shut_down_cleanly() {
    let Some(fixture) = fixture() else {
        eprintln!("skipping: mcp-hub-fixture is not built (cargo build --workspace --bins)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("servers.json");
    let write = |servers: Value| {
        std::fs::write(&config, json!({"mcpServers": servers}).to_string()).unwrap()
    };
    write(json!({"demo": {"command": fixture, "args": ["--name", "demo"]}}));

    let hub = Hub::builder()
        .config_file(&config)
        .port(0)
        .workspace_folder(dir.path())
        .start()
        .await
        .unwrap();
    assert!(hub.local_addr().ip().is_loopback());
    hub.registry().wait_settled(Duration::from_secs(20)).await;
    let snap = hub.registry().snapshot("demo").unwrap();
    assert_eq!(snap.status, ServerStatus::Connected, "{:?}", snap.error);

    let mut params = Map::new();
    params.insert("name".into(), json!("demo__echo"));
    params.insert("arguments".into(), json!({"text": "embedded"}));
    let r = hub
        .registry()
        .call_tool(params, RequestOptions::default())
        .await
        .unwrap();
    let v: Value = serde_json::from_str(r.get()).unwrap();
    assert_eq!(v["content"][0]["text"], "embedded");

    write(json!({
        "demo": {"command": fixture, "args": ["--name", "demo"]},
        "second": {"command": fixture, "args": ["--name", "second"], "prefix": "two"}
    }));
    let diff = hub.reload().await.unwrap();
    assert_eq!(diff.added, vec!["second".to_owned()]);
    assert!(diff.modified.is_empty() && diff.unchanged == vec!["demo".to_owned()]);
    hub.registry().wait_settled(Duration::from_secs(20)).await;
    assert!(hub.registry().catalog().tool("two__echo").is_some());
    assert_eq!(
        hub.registry().snapshot("demo").unwrap().pid,
        snap.pid,
        "the unchanged server kept its process"
    );

    let pids: Vec<u32> = hub
        .registry()
        .snapshots()
        .iter()
        .filter_map(|s| s.pid)
        .collect();
    assert_eq!(pids.len(), 2);
    hub.shutdown().await;
    for pid in pids {
        // Reaped, not just killed: a zombie would still have a /proc entry.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left behind"
        );
    }
}
