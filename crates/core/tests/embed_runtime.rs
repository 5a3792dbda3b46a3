//! Configuring an embedded hub from code and changing its servers at run time: no listener, a
//! config given as a value and as text, servers added, updated, disabled, enabled and removed
//! through the hub (catalogue, status and events follow; a file-backed server's file follows),
//! and a reload that keeps what the program configured.

use std::path::PathBuf;
use std::time::Duration;

use mcp_hub_core::api::HubEvent;
use mcp_hub_core::registry::ServerStatus;
use mcp_hub_core::{CoreError, Hub, HubHandle};
use serde_json::{Value, json};
use tokio::sync::broadcast;

fn fixture() -> Option<PathBuf> {
    mcp_hub_fixture::built_binary()
}

/// The `type`s of the subscription events received until `servers_updated` (bounded).
async fn events_until_updated(rx: &mut broadcast::Receiver<HubEvent>) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if let HubEvent::Subscription(m) = ev {
            let t = m["type"].as_str().unwrap_or_default().to_owned();
            seen.push(t.clone());
            if t == "servers_updated" {
                break;
            }
        }
    }
    seen
}

fn tools(hub: &HubHandle) -> Vec<String> {
    let mut t: Vec<String> = hub
        .registry()
        .catalog()
        .tools()
        .iter()
        .map(|e| e.exposed.to_string())
        .collect();
    t.sort();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_from_code_without_a_listener_and_changed_at_run_time() {
    let Some(fixture) = fixture() else {
        eprintln!("skipping: mcp-hub-fixture is not built (cargo build --workspace --bins)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("servers.json");
    std::fs::write(
        &file,
        json!({"mcpServers": {"filed": {"command": fixture, "args": ["--name", "filed"]}}})
            .to_string(),
    )
    .unwrap();
    let as_value = mcp_hub_core::config::load_from_strs([(
        "inline.json",
        json!({"mcpServers": {"valued": {"command": fixture, "args": ["--name", "valued"]}}})
            .to_string()
            .as_str(),
    )])
    .unwrap();
    let as_text = format!(
        "{{ mcpServers: {{ texted: {{ command: '{}', args: ['--name', 'texted'], prefix: 'tx' }} }} }} // JSON5",
        fixture.display()
    );
    let hub = Hub::builder()
        .config(as_value)
        .config_str(as_text)
        .config_file(&file)
        .listen(false)
        .workspace_folder(dir.path())
        .start()
        .await
        .unwrap();
    hub.registry().wait_settled(Duration::from_secs(30)).await;
    for name in ["valued", "texted", "filed"] {
        let s = hub.registry().snapshot(name).unwrap();
        assert_eq!(s.status, ServerStatus::Connected, "{name}: {:?}", s.error);
    }
    assert!(tools(&hub).contains(&"tx__echo".to_owned()));
    assert_eq!(
        hub.config().server("texted").unwrap().config_source,
        PathBuf::from(mcp_hub_core::CODE_SOURCE)
    );

    // Add: the server starts, its tools join the catalogue, the reload events are announced.
    let mut rx = hub.events();
    let entry = json!({"command": fixture, "args": ["--name", "added"]});
    let diff = hub.add_server("added", entry.clone()).await.unwrap();
    assert_eq!(diff.added, ["added"]);
    assert_eq!(
        events_until_updated(&mut rx).await,
        ["config_changed", "servers_updating", "servers_updated"]
    );
    assert_eq!(
        hub.registry().snapshot("added").unwrap().status,
        ServerStatus::Connected
    );
    assert!(tools(&hub).contains(&"added__echo".to_owned()));
    assert!(matches!(
        hub.add_server("added", entry).await,
        Err(CoreError::ServerExists(_))
    ));
    assert!(hub.add_server("bad", json!({"command": 3})).await.is_err());
    assert!(hub.registry().snapshot("bad").is_none());

    // Update: a new prefix renames its tools.
    let pid = hub.registry().snapshot("added").unwrap().pid;
    let diff = hub
        .update_server(
            "added",
            json!({"command": fixture, "args": ["--name", "added"], "prefix": "renamed"}),
        )
        .await
        .unwrap();
    assert_eq!(diff.modified, ["added"]);
    let after = tools(&hub);
    assert!(
        after.contains(&"renamed__echo".to_owned()) && !after.contains(&"added__echo".to_owned())
    );
    assert_ne!(
        hub.registry().snapshot("added").unwrap().pid,
        pid,
        "restarted"
    );

    // Disable and enable: stopped in place, tools gone, then back.
    let mut rx = hub.events();
    hub.disable_server("added").await.unwrap();
    assert_eq!(
        events_until_updated(&mut rx).await,
        ["config_changed", "servers_updating", "servers_updated"]
    );
    assert_eq!(
        hub.registry().snapshot("added").unwrap().status,
        ServerStatus::Disabled
    );
    assert!(!tools(&hub).iter().any(|t| t.starts_with("renamed__")));
    assert!(hub.config().server("added").unwrap().disabled);
    hub.enable_server("added").await.unwrap();
    assert_eq!(
        hub.registry().snapshot("added").unwrap().status,
        ServerStatus::Connected
    );
    assert!(tools(&hub).contains(&"renamed__echo".to_owned()));

    // A file-backed server: the change is written to its file.
    hub.disable_server("filed").await.unwrap();
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(on_disk["mcpServers"]["filed"]["disabled"], true);
    hub.update_server(
        "filed",
        json!({"command": fixture, "args": ["--name", "filed"], "prefix": "ff"}),
    )
    .await
    .unwrap();
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(on_disk["mcpServers"]["filed"]["prefix"], "ff");
    assert!(
        on_disk["mcpServers"]["filed"]
            .get("config_source")
            .is_none()
    );
    assert!(tools(&hub).contains(&"ff__echo".to_owned()));

    // A reload re-reads the file and keeps the servers given in code and added at run time.
    let diff = hub.reload().await.unwrap();
    assert!(diff.added.is_empty() && diff.removed.is_empty() && diff.modified.is_empty());
    assert_eq!(hub.config().servers.len(), 4);
    assert!(tools(&hub).contains(&"ff__echo".to_owned()));

    // Remove: stopped, gone from the catalogue, the config and the file.
    hub.remove_server("added").await.unwrap();
    assert!(hub.registry().snapshot("added").is_none());
    assert!(!tools(&hub).iter().any(|t| t.starts_with("renamed__")));
    hub.remove_server("filed").await.unwrap();
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(on_disk["mcpServers"].get("filed").is_none());
    assert!(matches!(
        hub.remove_server("filed").await,
        Err(CoreError::ServerNotFound(_))
    ));
    let mut left: Vec<String> = hub.config().server_names().map(str::to_owned).collect();
    left.sort();
    assert_eq!(left, ["texted", "valued"]);

    let pids: Vec<u32> = hub
        .registry()
        .snapshots()
        .iter()
        .filter_map(|s| s.pid)
        .collect();
    hub.shutdown().await;
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left behind"
        );
    }
}
