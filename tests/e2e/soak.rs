//! A bounded soak: steady load through the hub while one upstream crashes periodically, another
//! talks without pause on its stderr, the config is reloaded, and the only `/api/events` client
//! reads slowly (with `--auto-shutdown`, so losing it would stop the hub); then checks memory,
//! descriptors, lost responses, zombies, the events client and the log files.
//!
//! `MCP_HUB_SOAK_SECS` sets the load duration (default 60 s, which keeps the test under two
//! minutes); run longer on demand, e.g.
//! `MCP_HUB_SOAK_SECS=1800 cargo test -p mcp-hub-tests --test e2e soak -- --nocapture`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_hub_tests::{EventStream, HubCmd, McpClient, children, fd_count, rss_kib};
use serde_json::json;

use crate::{config, fixture_entry};

const WORKERS: usize = 6;

fn soak_secs() -> u64 {
    std::env::var("MCP_HUB_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        .max(45)
}

fn servers(generation: u64) -> String {
    let name = format!("gen-{generation}");
    config(&[
        ("steady", fixture_entry(&["--name", "steady"])),
        ("crashy", fixture_entry(&["--crash-after", "40"])),
        ("reloaded", fixture_entry(&["--name", &name])),
        ("chatty", fixture_entry(&["--stderr-rate", "5000"])),
    ])
}

/// What the slow `/api/events` reader saw.
#[derive(Debug, Default)]
struct Reader {
    events: u64,
    heartbeats: u64,
    /// Times its stream ended under it.
    ended: u64,
}

#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    results: u64,
    errors: u64,
    /// Requests with no answer, or more than one, or a broken HTTP exchange.
    lost: Vec<String>,
}

#[test]
fn soak_with_crashes_and_reloads_keeps_memory_fds_and_answers() {
    let secs = soak_secs();
    let hub = HubCmd::new()
        .config("servers.json", &servers(0))
        .arg("--watch")
        .arg("--auto-shutdown")
        .arg("--shutdown-delay")
        .arg("2000")
        .start();
    hub.wait_status(&["steady", "crashy", "reloaded", "chatty"], "connected");
    let pid = hub.pid();

    let stop = Arc::new(AtomicBool::new(false));
    // The only /api/events client, and a slow one: an event every 20 ms at most. It stays until
    // the very end (its departure would start the auto-shutdown timer).
    let reader_stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, port) = (reader_stop.clone(), hub.port);
        std::thread::spawn(move || {
            let mut seen = Reader::default();
            let mut events = EventStream::open(port, "/api/events", &[]);
            while !stop.load(Ordering::Relaxed) {
                match events.next_event() {
                    Some(e) => {
                        seen.events += 1;
                        seen.heartbeats += u64::from(e.event == "heartbeat");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    None => {
                        seen.ended += 1;
                        events = EventStream::open(port, "/api/events", &[]);
                    }
                }
            }
            seen
        })
    };
    // Baselines with the events client connected.
    std::thread::sleep(Duration::from_millis(500));
    let fds_baseline = fd_count(pid).expect("fds");
    let kids_baseline = children(pid).len();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let ids = Arc::new(AtomicU64::new(0));
    let port = hub.port;
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (stop, tally, ids) = (stop.clone(), tally.clone(), ids.clone());
            std::thread::spawn(move || {
                let c = McpClient::connect(port);
                let tools = [
                    "steady__echo",
                    "crashy__echo",
                    "reloaded__echo",
                    "steady__add",
                ];
                let mut i = 0usize;
                // Bounded by `stop` (set after the soak time) and a hard cap.
                while !stop.load(Ordering::Relaxed) && i < 1_000_000 {
                    let tool = tools[(i + w) % tools.len()];
                    i += 1;
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    let args = if tool == "steady__add" {
                        json!({"a": id, "b": 1})
                    } else {
                        json!({"text": format!("m{id}")})
                    };
                    let r = c.try_call_id(
                        json!(id),
                        "tools/call",
                        json!({"name": tool, "arguments": args}),
                        Duration::from_secs(30),
                    );
                    let mut t = tally.lock().expect("lock");
                    t.sent += 1;
                    match r {
                        Ok(v) if v["result"]["isError"] != true && v["result"].is_object() => {
                            let text = v["result"]["content"][0]["text"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            let want = if tool == "steady__add" {
                                (id + 1).to_string()
                            } else {
                                format!("m{id}")
                            };
                            if text == want {
                                t.results += 1;
                            } else {
                                t.lost.push(format!(
                                    "{tool} id {id}: answer for someone else: {text}"
                                ));
                            }
                        }
                        Ok(_) => t.errors += 1,
                        Err(e) => t.lost.push(format!("{tool} id {id}: {e}")),
                    }
                }
            })
        })
        .collect();

    let warm_at = Duration::from_secs((secs * 2 / 5).max(35));
    let started = Instant::now();
    let mut warm_rss = None;
    let mut peak_rss = 0;
    let mut reloads = 0u64;
    let mut last_reload = Instant::now();
    let mut trajectory = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(500));
        let rss = rss_kib(pid).expect("hub alive");
        peak_rss = peak_rss.max(rss);
        if trajectory.len() < (started.elapsed().as_secs() / 5) as usize {
            trajectory.push(rss / 1024);
        }
        // Warm: once allocator arenas, buffers and replay streams have grown to their working
        // size, which takes about 30 s at this load (measured: RSS climbs for ~30 s, then flat).
        if warm_rss.is_none() && started.elapsed() >= warm_at {
            warm_rss = Some(rss);
        }
        if last_reload.elapsed() >= Duration::from_secs(10) {
            reloads += 1;
            std::fs::write(hub.dir.path().join("servers.json"), servers(reloads))
                .expect("rewrite config");
            last_reload = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    let alive_after_load = rss_kib(pid).is_some();
    let load_time = started.elapsed();
    let crashes = hub.server("crashy")["restarts"].as_u64().unwrap_or(0);

    // Settle: every server back, then descriptors and children as before.
    hub.wait_for(Duration::from_secs(60), |h| {
        let s = h.server("reloaded");
        (s["serverInfo"]["name"] == format!("gen-{reloads}") && s["status"] == "connected")
            .then_some(())
    });
    // `crashy` keeps crashing, so its restart backoff sits at the 30 s maximum (±20 % jitter):
    // allow for one full backoff before it is back.
    hub.wait_status_within(
        &["steady", "crashy", "reloaded", "chatty"],
        "connected",
        Duration::from_secs(45),
    );
    let fds_after = hub.wait_for(Duration::from_secs(20), |_| {
        let n = fd_count(pid)?;
        (n <= fds_baseline).then_some(n)
    });
    let zombies = hub.wait_for(Duration::from_secs(10), |_| {
        let kids = children(pid);
        let z = kids.iter().filter(|(_, s)| *s == 'Z').count();
        (z == 0 && kids.len() == kids_baseline).then_some(z)
    });
    std::thread::sleep(Duration::from_secs(2));
    let final_rss = rss_kib(pid).expect("hub alive");
    let warm = warm_rss.expect("warm RSS");
    // The reader's next event (a heartbeat within 10 s) lets it see `reader_stop`.
    reader_stop.store(true, Ordering::Relaxed);
    let seen = reader.join().expect("events reader");
    let log_dir = hub.log_file().parent().expect("log dir").to_path_buf();
    let log_bytes: u64 = std::fs::read_dir(&log_dir)
        .expect("log dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let log = std::fs::read_to_string(hub.log_file()).unwrap_or_default();

    let t = tally.lock().expect("lock");
    eprintln!("soak: RSS every 5 s (MiB): {trajectory:?}");
    eprintln!(
        "soak: slow /api/events reader: {} events, {} heartbeats, stream ended {} times; log files {} KiB",
        seen.events,
        seen.heartbeats,
        seen.ended,
        log_bytes / 1024
    );
    eprintln!(
        "soak: {load_time:?} of load, {} requests ({:.0}/s), {} results, {} errors, {} lost; \
         crashy restarts {crashes}, config reloads {reloads}; RSS warm {warm} KiB, peak {peak_rss} KiB, \
         final {final_rss} KiB ({:+.1} %); fds baseline {fds_baseline}, after {fds_after}; zombies {zombies}",
        t.sent,
        t.sent as f64 / load_time.as_secs_f64(),
        t.results,
        t.errors,
        t.lost.len(),
        (final_rss as f64 - warm as f64) * 100.0 / warm as f64,
    );
    assert!(
        t.lost.is_empty(),
        "lost or misrouted responses: {:?}",
        &t.lost[..t.lost.len().min(10)]
    );
    assert_eq!(t.sent, t.results + t.errors);
    assert!(t.results > t.sent / 2, "most calls succeed: {t:?}");
    assert!(crashes >= 1, "the crashing server crashed");
    assert!(
        alive_after_load,
        "the hub outlived the load (auto-shutdown did not fire)"
    );
    assert_eq!(
        seen.ended, 0,
        "the slow events reader was served throughout"
    );
    assert!(
        seen.heartbeats >= load_time.as_secs() / 10 - 1,
        "the slow events reader kept getting heartbeats: {seen:?}"
    );
    assert!(
        log_bytes < 24 * 1024 * 1024,
        "the log files stay capped ({log_bytes} bytes)"
    );
    assert!(
        log.contains("suppressed"),
        "the chatty server's stderr was summarised"
    );
    assert!(reloads >= 1);
    assert!(
        final_rss <= warm + warm / 10,
        "RSS {final_rss} KiB is more than 10 % over its warm value {warm} KiB"
    );
}
