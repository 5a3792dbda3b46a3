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
}

/// Kills what a failed test left running.
struct Reap(Vec<u32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                signal(pid, Signal::KILL);
            }
        }
    }
}

/// Waits until `file` holds a pid, and returns it.
fn pid_in(hub: &mcp_hub_tests::Hub, file: &std::path::Path) -> u32 {
    hub.wait_for(Duration::from_secs(20), |_| {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    })
}

/// A `${cmd:}` that records its pid and then takes ten minutes.
fn slow_command(pid_file: &std::path::Path) -> String {
    format!("${{cmd: echo $$ > {}; exec sleep 600}}", pid_file.display())
}

#[test]
fn sigterm_during_a_slow_placeholder_command_stops_it_at_once() {
    let cmd = HubCmd::new();
    let pid_file = cmd.dir().join("cmd.pid");
    let mut slow = fixture_entry(&[]);
    slow["env"] = serde_json::json!({"TOKEN": slow_command(&pid_file)});
    let mut hub = cmd
        .config(
            "servers.json",
            &config(&[("a", fixture_entry(&[])), ("slow", slow)]),
        )
        .start();
    hub.wait_status(&["a"], "connected");
    let command = pid_in(&hub, &pid_file);
    let _reap = Reap(vec![command]);
    assert!(alive(command));
    signal(hub.pid(), Signal::TERM);
    // Well before the command's 30 s timeout.
    let status = hub.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        wait_dead(command, Duration::from_secs(5)),
        "the ${{cmd:}} command outlived the hub"
    );
}

#[test]
fn sigkill_of_the_hub_leaves_neither_a_command_nor_a_grandchild() {
    let cmd = HubCmd::new();
    let cmd_pid = cmd.dir().join("cmd.pid");
    let grandchild_pid = cmd.dir().join("grandchild.pid");
    let mut slow = fixture_entry(&[]);
    slow["env"] = serde_json::json!({"TOKEN": slow_command(&cmd_pid)});
    // A wrapper that leaves a grandchild behind, as `npx` or `sh -c` servers do.
    let forks = serde_json::json!({
        "command": "/bin/sh",
        "args": ["-c", format!(
            "sleep 600 & echo $! > {}; exec {}",
            grandchild_pid.display(),
            mcp_hub_tests::fixture().display()
        )],
    });
    let mut hub = cmd
        .config("servers.json", &config(&[("forks", forks), ("slow", slow)]))
        .start();
    hub.wait_status(&["forks"], "connected");
    let server = hub.server("forks")["pid"].as_u64().expect("pid") as u32;
    let command = pid_in(&hub, &cmd_pid);
    let grandchild = pid_in(&hub, &grandchild_pid);
    let _reap = Reap(vec![server, command, grandchild]);
    for pid in [server, command, grandchild] {
        assert!(alive(pid), "{pid}");
    }
    hub.child.kill().expect("SIGKILL");
    let _ = hub.child.wait();
    for (what, pid) in [
        ("the server", server),
        ("the ${cmd:} command", command),
        ("the server's grandchild", grandchild),
    ] {
        assert!(
            wait_dead(pid, Duration::from_secs(10)),
            "{what} ({pid}) outlived the SIGKILLed hub"
        );
    }
}
