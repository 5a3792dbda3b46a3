//! The machine-wide workspace cache: several hubs sharing one `workspaces.json`, the Node hub's
//! lock protocol with stale-lock recovery, pruning of dead hubs, and change notifications.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mcp_hub_core::{WorkspaceCache, WorkspaceEntry, WorkspaceError, WorkspaceState};
use serde_json::{Value, json};

fn cache_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join("workspaces.json")
}

fn lock_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// A pid that certainly belonged to a process that has exited (and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn `true`");
    let pid = child.id();
    child.wait().expect("wait for `true`");
    pid
}

fn read_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read cache")).expect("json")
}

#[tokio::test]
async fn two_hubs_register_update_and_deregister() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = cache_path(&dir);
    let hub_a = WorkspaceCache::new(&path);
    let hub_b = WorkspaceCache::new(&path);

    hub_a
        .register(WorkspaceEntry::new(40001, "/proj/a", vec!["a.json".into()]))
        .await
        .expect("register a");
    hub_b
        .register(WorkspaceEntry::new(
            40002,
            "/proj/b",
            vec!["b1.json".into(), "b2.json".into()],
        ))
        .await
        .expect("register b");

    // The file is what Node hubs and mcphub.nvim read: keyed by port string, Node field names,
    // two-space pretty JSON, and no lock left behind.
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.starts_with("{\n  \"40001\": {\n    \"cwd\": \"/proj/a\""),
        "{text}"
    );
    assert!(!lock_path(&path).exists());
    let file = read_file(&path);
    let b = &file["40002"];
    assert_eq!(b["config_files"], json!(["b1.json", "b2.json"]));
    assert_eq!(b["pid"], json!(std::process::id()));
    assert_eq!(b["port"], json!(40002));
    assert_eq!(b["state"], "active");
    assert_eq!(b["activeConnections"], 0);
    assert_eq!(b["shutdownStartedAt"], Value::Null);
    assert_eq!(b["shutdownDelay"], Value::Null);
    assert!(b["startTime"].as_str().is_some_and(|s| s.ends_with('Z')));

    assert!(
        hub_a
            .set_active_connections(40001, 3)
            .await
            .expect("update")
    );
    assert!(hub_b.start_shutdown(40002, 5000).await.expect("shutdown"));
    // Updating an entry that does not exist writes nothing, like the Node hub.
    assert!(!hub_a.update(49999, |e| e.port = 1).await.expect("update"));

    let all = hub_b.read_all().await.expect("read_all");
    assert_eq!(all["40001"]["activeConnections"], 3);
    assert_eq!(all["40002"]["state"], "shutting_down");
    assert_eq!(all["40002"]["shutdownDelay"], 5000);
    assert!(all["40002"]["shutdownStartedAt"].is_string());
    assert_eq!(all["40002"]["activeConnections"], 0);
    assert!(all.get("49999").is_none());

    assert!(hub_b.cancel_shutdown(40002).await.expect("cancel"));
    let all = hub_a.read_all().await.expect("read_all");
    assert_eq!(all["40002"]["state"], "active");
    assert_eq!(all["40002"]["shutdownDelay"], Value::Null);

    hub_a.deregister(40001).await.expect("deregister");
    let all = hub_b.read_all().await.expect("read_all");
    let keys: Vec<&String> = all.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["40002"]);
    hub_b.deregister(40002).await.expect("deregister");
    assert_eq!(read_file(&path), json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = cache_path(&dir);
    let hubs = [
        Arc::new(WorkspaceCache::new(&path)),
        Arc::new(WorkspaceCache::new(&path)),
    ];
    hubs[0]
        .register(WorkspaceEntry::new(41000, "/shared", vec![]))
        .await
        .expect("register shared");

    let mut tasks = Vec::new();
    for (h, hub) in hubs.iter().enumerate() {
        for i in 0..6u16 {
            let hub = hub.clone();
            let port = 41001 + u16::try_from(h).expect("small") * 100 + i;
            tasks.push(tokio::spawn(async move {
                hub.register(WorkspaceEntry::new(port, "/p", vec![]))
                    .await?;
                // Read-modify-write of one shared counter: a lost update would show.
                hub.update(41000, |e| e.active_connections += 1).await?;
                Ok::<_, WorkspaceError>(())
            }));
        }
    }
    for t in tasks {
        t.await.expect("join").expect("write");
    }

    let all = hubs[1].read_all().await.expect("read_all");
    let map = all.as_object().expect("object");
    assert_eq!(map.len(), 13, "{all:#}");
    assert_eq!(all["41000"]["activeConnections"], 12);
    for port in [41001, 41006, 41101, 41106] {
        assert_eq!(all[port.to_string()]["port"], port);
    }
    assert!(!lock_path(&path).exists());
}

#[tokio::test]
async fn lock_of_a_dead_process_is_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = cache_path(&dir);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(lock_path(&path), dead_pid().to_string()).expect("write lock");

    let hub = WorkspaceCache::new(&path);
    let started = Instant::now();
    hub.register(WorkspaceEntry::new(42000, "/p", vec![]))
        .await
        .expect("register despite stale lock");
    // One full round of retries (10 × 100 ms) before the lock is judged.
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!lock_path(&path).exists());
    assert_eq!(read_file(&path)["42000"]["port"], 42000);
}

#[tokio::test]
async fn lock_of_a_live_process_is_respected_unless_ancient() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = cache_path(&dir);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let lock = lock_path(&path);
    std::fs::write(&lock, std::process::id().to_string()).expect("write lock");

    let hub = WorkspaceCache::new(&path);
    let err = hub
        .register(WorkspaceEntry::new(42001, "/p", vec![]))
        .await
        .expect_err("a live holder keeps its lock");
    match err {
        WorkspaceError::LockBusy { holder, .. } => {
            assert_eq!(holder, Some(u64::from(std::process::id())));
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(lock.exists(), "a live lock must not be removed");
    assert!(!path.exists());

    // The same pid, but the lock is far older than any critical section: the pid was reused.
    let old = SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .and_then(|f| f.set_modified(old))
        .expect("age the lock");
    hub.register(WorkspaceEntry::new(42001, "/p", vec![]))
        .await
        .expect("register after breaking an ancient lock");
    assert!(!lock.exists());
}

#[tokio::test]
async fn dead_hubs_are_pruned_on_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = cache_path(&dir);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut ghost = WorkspaceEntry::new(43000, "/ghost", vec![]);
    ghost.pid = dead_pid();
    let live = WorkspaceEntry::new(43001, "/live", vec![]);
    let doc = json!({"43000": ghost, "43001": live});
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json")).expect("write");

    let hub = WorkspaceCache::new(&path);
    let all = hub.read_all().await.expect("read_all");
    assert!(all.get("43000").is_none(), "{all:#}");
    assert_eq!(all["43001"]["cwd"], "/live");
    // The dead entry is gone from the file too, for every other reader.
    let file = read_file(&path);
    assert!(file.get("43000").is_none());
    assert_eq!(file["43001"]["state"], json!(WorkspaceState::Active));
}

#[tokio::test]
async fn corrupt_or_missing_files_are_handled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = cache_path(&dir);
    let hub = WorkspaceCache::new(&path);
    assert_eq!(hub.read_all().await.expect("missing file"), json!({}));

    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, "[1, 2").expect("write");
    assert!(matches!(
        hub.read_all().await,
        Err(WorkspaceError::Corrupt { .. })
    ));
    // A writer under the lock starts a corrupt file afresh rather than failing forever.
    hub.register(WorkspaceEntry::new(44000, "/p", vec![]))
        .await
        .expect("register over a corrupt file");
    let all = hub.read_all().await.expect("read_all");
    assert_eq!(all.as_object().map(|m| m.len()), Some(1));
}

async fn next_change(rx: &mut tokio::sync::broadcast::Receiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a change notification within 5 s")
        .expect("channel open")
}

#[tokio::test]
async fn watch_reports_changes_by_any_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = cache_path(&dir);
    let watcher_hub = WorkspaceCache::new(&path);
    let other_hub = WorkspaceCache::new(&path);
    let mut rx = watcher_hub.watch().expect("watch");
    let mut rx2 = watcher_hub.watch().expect("second subscriber");

    other_hub
        .register(WorkspaceEntry::new(45000, "/other", vec![]))
        .await
        .expect("register");
    let seen = next_change(&mut rx).await;
    assert_eq!(seen["45000"]["cwd"], "/other");
    assert_eq!(next_change(&mut rx2).await, seen);

    // A write in place, as the Node hub does it.
    let mut doc = seen.clone();
    doc["45001"] = serde_json::to_value(WorkspaceEntry::new(45001, "/node", vec![])).expect("v");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    let seen = next_change(&mut rx).await;
    assert_eq!(seen["45001"]["cwd"], "/node");

    other_hub.deregister(45000).await.expect("deregister");
    let seen = next_change(&mut rx).await;
    assert!(seen.get("45000").is_none());
    assert_eq!(seen["45001"]["port"], 45001);
}
