//! SIGTERM under load: the hub exits in time, leaves no child and no half-written file, and
//! answers every call in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_hub_tests::{Hub, HubCmd, McpClient, children, wait_dead};
use serde_json::json;

use super::CALL;
use crate::{config, fixture_entry};

#[derive(Debug, Default)]
struct Outcomes {
    /// A JSON-RPC result.
    answered: usize,
    /// A JSON-RPC error, or a 4xx/5xx with a body: a clean failure.
    errors: usize,
    /// The connection was refused: the hub had stopped accepting (clean).
    refused: usize,
    /// Anything else: a stream that ended without an answer, a reset mid-response.
    broken: Vec<String>,
}

struct SigtermRun {
    hub: Hub,
    outcomes: Outcomes,
    status: std::process::ExitStatus,
    took: Duration,
    fixture_pids: Vec<u32>,
    servers: String,
    tokens: std::path::PathBuf,
    token_text: &'static str,
}

/// Eight clients call a slow and a fast server in a loop; after 2 s the hub gets SIGTERM.
fn sigterm_under_load() -> SigtermRun {
    let cmd = HubCmd::new();
    let pidfile = cmd.dir().join("slow.pid");
    let servers = config(&[
        (
            "slow",
            fixture_entry(&[
                "--delay-ms",
                "150",
                "--pidfile",
                pidfile.to_str().expect("utf-8"),
            ]),
        ),
        ("fast", fixture_entry(&[])),
    ]);
    // A token file from an earlier run: the hub may read it but must leave it whole.
    let data = cmd.dir().join("home/data/mcp-hub");
    std::fs::create_dir_all(&data).expect("data dir");
    let tokens = data.join("oauth-tokens.json");
    let token_text = r#"{"version":1,"clients":[],"tokens":[]}"#;
    std::fs::write(&tokens, token_text).expect("token file");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let mut hub = cmd.config("servers.json", &servers).start();
    hub.wait_status(&["slow", "fast"], "connected");
    let fixture_pids: Vec<u32> = children(hub.pid()).into_iter().map(|(p, _)| p).collect();
    assert!(fixture_pids.len() >= 2, "{fixture_pids:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let port = hub.port;
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            std::thread::spawn(move || {
                let Ok(c) = McpClient::try_connect(port, &[]) else {
                    return;
                };
                for i in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let tool = if i % 2 == 0 {
                        "slow__echo"
                    } else {
                        "fast__echo"
                    };
                    let id = json!(format!("w{w}-{i}"));
                    let r = c.try_call_id(
                        id,
                        "tools/call",
                        json!({"name": tool, "arguments": {"text": "load"}}),
                        CALL,
                    );
                    let mut o = outcomes.lock().expect("lock");
                    match r {
                        Ok(v) if v["result"].is_object() => o.answered += 1,
                        Ok(_) => o.errors += 1,
                        Err(e) if e.starts_with("connect:") => {
                            o.refused += 1;
                            break;
                        }
                        Err(e) if e.starts_with("HTTP 5") || e.starts_with("HTTP 4") => {
                            o.errors += 1
                        }
                        Err(e) => o.broken.push(e),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    let status = hub.terminate();
    let took = sent.elapsed();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("lock"));
    eprintln!("SIGTERM under load: {outcomes:?}, exit {status:?} after {took:?}");
    SigtermRun {
        hub,
        outcomes,
        status,
        took,
        fixture_pids,
        servers,
        tokens,
        token_text,
    }
}

#[test]
fn sigterm_under_load_exits_in_time_with_no_child_left_and_files_intact() {
    let run = sigterm_under_load();
    assert!(
        run.status.success(),
        "exit status {:?}; stderr:\n{}",
        run.status,
        run.hub.stderr()
    );
    assert!(
        run.took < Duration::from_secs(10),
        "shutdown took {:?} (grace is 5 s)",
        run.took
    );
    assert!(
        run.outcomes.answered > 20,
        "there was load: {:?}",
        run.outcomes
    );
    for pid in run.fixture_pids {
        assert!(
            wait_dead(pid, Duration::from_secs(5)),
            "child {pid} survived the hub"
        );
    }
    assert_eq!(
        std::fs::read_to_string(run.hub.dir.path().join("servers.json")).expect("config"),
        run.servers
    );
    assert_eq!(
        std::fs::read_to_string(&run.tokens).expect("token file"),
        run.token_text
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&run.tokens)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]

fn sigterm_under_load_answers_every_in_flight_call() {
    let run = sigterm_under_load();
    assert!(
        run.outcomes.broken.is_empty(),
        "requests cut off without an answer: {:?}",
        run.outcomes.broken
    );
}
