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
