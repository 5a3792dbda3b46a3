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

/// Waits until the named tool is in the catalogue (bounded).
async fn has_tool(hub: &HubHandle, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !tools(hub).iter().any(|t| t == name) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never listed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_helpers_with_notifications_per_call() {
    use mcp_hub_core::protocol::catalog::Content;
    use mcp_hub_core::{CallNotification, CallOptions};

    let Some(fixture) = fixture() else {
        eprintln!("skipping: mcp-hub-fixture is not built (cargo build --workspace --bins)");
        return;
    };
    let hub = Hub::builder()
        .config_str(
            json!({"mcpServers": {
                "one": {"command": fixture, "args": ["--name", "one"]},
                "two": {"command": fixture, "args": ["--name", "two"], "prefix": "b"}
            }})
            .to_string(),
        )
        .listen(false)
        .start()
        .await
        .unwrap();
    hub.registry().wait_settled(Duration::from_secs(30)).await;
    has_tool(&hub, "b__progress").await;

    // Lists under exposed names.
    let listed = hub.list_tools();
    assert!(
        listed
            .iter()
            .any(|t| t.name == "one__echo" && t.input_schema.is_object())
    );
    assert!(listed.iter().any(|t| t.name == "b__echo"));
    let resources = hub.list_resources();
    let static_text = resources
        .iter()
        .find(|r| r.name == "static-text" && r.uri.contains("one"))
        .unwrap_or_else(|| panic!("{resources:?}"));
    assert!(!hub.list_resource_templates().is_empty());
    assert!(
        hub.list_prompts()
            .iter()
            .any(|p| p.name == "b__test_prompt_with_arguments"
                && p.arguments.iter().any(|a| a.name == "arg1" && a.required))
    );

    // Typed results.
    let r = hub
        .call_tool("one__echo", json!({"text": "typed"}), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(r.content[0].as_text(), Some("typed"));
    assert!(!r.is_error);
    let r = hub
        .call_tool("one__fail", json!({"message": "nope"}), CallOptions::new())
        .await
        .unwrap();
    assert!(r.is_error, "a tool's own failure is a result");
    let r = hub
        .call_tool("one__links", json!({}), CallOptions::new())
        .await
        .unwrap();
    assert!(
        matches!(&r.content[1], Content::Resource { resource, .. } if resource.text.as_deref() == Some("embedded"))
    );
    assert!(matches!(
        hub.call_tool("nobody__echo", json!({}), CallOptions::new())
            .await,
        Err(CoreError::Call(_))
    ));
    let read = hub
        .read_resource(&static_text.uri, CallOptions::new())
        .await
        .unwrap();
    assert!(read.contents[0].text.is_some(), "{read:?}");
    let prompt = hub
        .get_prompt(
            "b__test_prompt_with_arguments",
            [
                ("arg1".to_owned(), "x".to_owned()),
                ("arg2".to_owned(), "y".to_owned()),
            ],
            CallOptions::new(),
        )
        .await
        .unwrap();
    assert!(!prompt.messages.is_empty());

    // Progress per call: two calls at once, to two servers and to the same one, each see
    // exactly their own.
    let call = |tool: &'static str, count: u64| {
        let hub = hub.clone();
        async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(256);
            let r = hub
                .call_tool(
                    tool,
                    json!({"count": count}),
                    CallOptions::new().notifications(tx),
                )
                .await
                .unwrap();
            let mut progress = Vec::new();
            while let Ok(n) = rx.try_recv() {
                match n {
                    CallNotification::Progress(p) => progress.push(p),
                    other => panic!("unexpected {other:?}"),
                }
            }
            (r, progress)
        }
    };
    for (a, b) in [
        ("one__progress", "b__progress"),
        ("one__progress", "one__progress"),
    ] {
        let ((ra, pa), (rb, pb)) = tokio::join!(call(a, 5), call(b, 8));
        assert_eq!(
            ra.content[0].as_text(),
            Some("sent 5 progress notifications")
        );
        assert_eq!(
            rb.content[0].as_text(),
            Some("sent 8 progress notifications")
        );
        assert_eq!(pa.len(), 5, "{pa:?}");
        assert_eq!(pb.len(), 8, "{pb:?}");
        let token = |p: &[mcp_hub_core::protocol::types::ProgressParams]| {
            let mut t: Vec<String> = p
                .iter()
                .map(|p| format!("{:?}", p.progress_token))
                .collect();
            t.dedup();
            t
        };
        let (ta, tb) = (token(&pa), token(&pb));
        assert_eq!(ta.len(), 1, "one token per call");
        assert_eq!(tb.len(), 1);
        assert_ne!(ta, tb, "each call has its own token");
        let steps: Vec<f64> = pb.iter().map(|p| p.progress).collect();
        assert_eq!(steps, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    }

    // Log lines the server sends while serving the call come with it.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    hub.call_tool(
        "b__log",
        json!({"text": "working", "count": 2}),
        CallOptions::new().notifications(tx),
    )
    .await
    .unwrap();
    let mut logs = Vec::new();
    while let Ok(n) = rx.try_recv() {
        if let CallNotification::Log(l) = n {
            logs.push(l.data);
        }
    }
    assert_eq!(logs, [json!("working #0"), json!("working #1")]);

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_and_the_file_watcher_do_not_fight() {
    let Some(fixture) = fixture() else {
        eprintln!("skipping: mcp-hub-fixture is not built (cargo build --workspace --bins)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("servers.json5");
    std::fs::write(
        &file,
        format!(
            "// watched\n{{ mcpServers: {{ filed: {{ command: '{}', args: ['--name', 'filed'] }} }} }}\n",
            fixture.display()
        ),
    )
    .unwrap();
    let hub = Hub::builder()
        .config_file(&file)
        .watch(true)
        .listen(false)
        .workspace_folder(dir.path())
        .start()
        .await
        .unwrap();
    hub.registry().wait_settled(Duration::from_secs(30)).await;

    // Two changes at once: both applied, one after the other.
    let entry = |n: &str| json!({"command": fixture, "args": ["--name", n]});
    let (a, b) = tokio::join!(
        hub.add_server("a", entry("a")),
        hub.add_server("b", entry("b"))
    );
    a.unwrap();
    b.unwrap();
    for n in ["a", "b", "filed"] {
        assert_eq!(
            hub.registry().snapshot(n).unwrap().status,
            ServerStatus::Connected,
            "{n}"
        );
    }

    // The hub's own write of the watched file: the watcher's reload finds nothing new, so the
    // server is not restarted a second time and nothing more is announced.
    hub.update_server(
        "filed",
        json!({"command": fixture, "args": ["--name", "filed"], "prefix": "f2"}),
    )
    .await
    .unwrap();
    let pid = hub.registry().snapshot("filed").unwrap().pid;
    let mut rx = hub.events();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut after = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let HubEvent::Subscription(m) = ev {
            after.push(m["type"].clone());
        }
    }
    assert!(
        after.is_empty(),
        "the watcher reloaded the hub's own write: {after:?}"
    );
    assert_eq!(hub.registry().snapshot("filed").unwrap().pid, pid);
    assert!(tools(&hub).contains(&"f2__echo".to_owned()));

    // An edit by someone else is still picked up, and keeps the servers added in code.
    std::fs::write(
        &file,
        json!({"mcpServers": {"filed": {"command": fixture, "args": ["--name", "filed"], "prefix": "f3"}}})
            .to_string(),
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !tools(&hub).contains(&"f3__echo".to_owned()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the edit was not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hub.registry().snapshot("a").is_some() && hub.registry().snapshot("b").is_some());
    hub.shutdown().await;
}
