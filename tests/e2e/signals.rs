//! Signals the hub gets from outside: SIGHUP, SIGTERM while a `${cmd:}` placeholder is still
//! running, and SIGKILL, after which nothing the hub started may live on.

use std::time::Duration;

use mcp_hub_tests::{HubCmd, alive, children, wait_dead};
use rustix::process::{Pid, Signal, kill_process};

use crate::{config, fixture_entry};

fn signal(pid: u32, sig: Signal) {
    let pid = Pid::from_raw(pid as i32).expect("pid");
    kill_process(pid, sig).expect("kill");
}

#[test]
fn sighup_is_a_graceful_shutdown() {
    let mut hub = HubCmd::new()
        .config("servers.json", &config(&[("a", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["a"], "connected");
    let kids: Vec<u32> = children(hub.pid()).into_iter().map(|(p, _)| p).collect();
    assert!(!kids.is_empty());
    signal(hub.pid(), Signal::HUP);
    let status = hub.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}: SIGHUP's default action kills the hub at once"
    );
    assert!(
        hub.stderr().contains("shutting down (SIGHUP)"),
        "{}",
        hub.stderr()
    );
    for pid in kids {
        assert!(wait_dead(pid, Duration::from_secs(5)), "child {pid} left");
    }
    let _ = alive;
}
