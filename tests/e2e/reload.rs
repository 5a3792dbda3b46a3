use std::time::Duration;

use mcp_hub_tests::HubCmd;

use crate::{config, fixture_entry};

#[test]
fn a_config_edit_restarts_only_the_changed_server() {
    let initial = config(&[
        ("keep", fixture_entry(&["--name", "keep"])),
        ("change", fixture_entry(&["--name", "v1"])),
    ]);
    let hub = HubCmd::new()
        .config("servers.json", &initial)
        .arg("--watch")
        .start();
    hub.wait_status(&["keep", "change"], "connected");
    let keep_pid = hub.server("keep")["pid"].as_u64().expect("pid of keep");
    let change_pid = hub.server("change")["pid"].as_u64().expect("pid of change");

    let edited = config(&[
        ("keep", fixture_entry(&["--name", "keep"])),
        ("change", fixture_entry(&["--name", "v2"])),
        ("added", fixture_entry(&["--name", "added"])),
    ]);
    std::fs::write(hub.dir.path().join("servers.json"), edited).unwrap();
    hub.wait_for(Duration::from_secs(20), |h| {
        let c = h.server("change");
        let a = h.server("added");
        (c["serverInfo"]["name"] == "v2"
            && c["status"] == "connected"
            && a["status"] == "connected")
            .then_some(())
    });
    assert_eq!(
        hub.server("keep")["pid"].as_u64(),
        Some(keep_pid),
        "unchanged server kept its process"
    );
    assert_ne!(hub.server("change")["pid"].as_u64(), Some(change_pid));

    // A broken edit keeps the running config.
    std::fs::write(hub.dir.path().join("servers.json"), "{ not json").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(hub.server("keep")["status"], "connected");
    assert_eq!(hub.server("keep")["pid"].as_u64(), Some(keep_pid));
}

#[test]
fn a_deleted_config_file_keeps_the_running_config() {
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[("keep", fixture_entry(&["--name", "keep"]))]),
        )
        .arg("--watch")
        .start();
    hub.wait_status(&["keep"], "connected");
    let pid = hub.server("keep")["pid"].as_u64().expect("pid");
    let path = hub.dir.path().join("servers.json");
    std::fs::remove_file(&path).unwrap();
    // Wait until the watcher has acted on the deletion, whatever it did.
    hub.wait_for(Duration::from_secs(20), |h| {
        let e = h.stderr();
        (e.contains("config reload") || e.contains("config changed")).then_some(())
    });
    assert!(
        hub.stderr()
            .contains("keeping the running config until it is back"),
        "{}",
        hub.stderr()
    );
    let s = hub.server("keep");
    assert_eq!(s["status"], "connected", "{s}");
    assert_eq!(s["pid"].as_u64(), Some(pid), "the server was not restarted");

    // When the file is back, watching goes on from the running config.
    let restored = config(&[
        ("keep", fixture_entry(&["--name", "keep"])),
        ("added", fixture_entry(&["--name", "added"])),
    ]);
    std::fs::write(&path, restored).unwrap();
    hub.wait_status(&["keep", "added"], "connected");
    assert_eq!(hub.server("keep")["pid"].as_u64(), Some(pid));
}
