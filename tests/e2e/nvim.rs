//! mcphub.nvim's side of the contract, played by the test: its `--version` check, its health
//! check, its `/api/events` subscription with a refresh of every server on `servers_updating`,
//! `servers_updated` and `hub_state ready`, and its server toggle (it writes `disabled` into the
//! config file itself, then calls `start` or `stop?disable=true`). The UI's view of the servers
//! changes only through those refreshes, as in the plugin.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mcp_hub_tests::events::EventLog;
use mcp_hub_tests::{HubCmd, bin};
use serde_json::{Value, json};

use crate::{config, fixture_entry};

/// `validation.validate_version`: the first `x.y.z` of the first line; major 4, minor ≥ 2.
pub(crate) fn plugin_accepts_version(output: &str) -> Result<(u64, u64, u64), String> {
    let line = output.lines().next().unwrap_or_default();
    let bytes = line.as_bytes();
    // Lua's `(%d+)%.(%d+)%.(%d+)`: the leftmost position where three dot-separated numbers start.
    for start in 0..bytes.len() {
        if !bytes[start].is_ascii_digit() || (start > 0 && bytes[start - 1].is_ascii_digit()) {
            continue;
        }
        let mut parts = Vec::new();
        let mut i = start;
        for n in 0..3 {
            let from = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == from {
                break;
            }
            parts.push(line[from..i].parse::<u64>().map_err(|e| e.to_string())?);
            if n < 2 {
                if i < bytes.len() && bytes[i] == b'.' {
                    i += 1;
                } else {
                    break;
                }
            }
        }
        if let [major, minor, patch] = parts[..] {
            return if major == 4 && minor >= 2 {
                Ok((major, minor, patch))
            } else {
                Err(format!(
                    "Incompatible mcp-hub version. Found {line}, required 4.2.1"
                ))
            };
        }
    }
    Err(format!("Invalid version format: {line:?}"))
}

/// The plugin's state: the server list as its UI shows it.
struct Plugin {
    port: u16,
    events: EventLog,
    seen: usize,
    view: HashMap<String, Value>,
    refreshes: usize,
}

impl Plugin {
    fn attach(port: u16) -> Plugin {
        let mut p = Plugin {
            port,
            events: EventLog::open(port),
            seen: 0,
            view: HashMap::new(),
            refreshes: 0,
        };
        p.refresh();
        p
    }

    /// `hub:refresh()`: `GET /api/health`, every server replaced.
    fn refresh(&mut self) {
        let h = mcp_hub_tests::request(self.port, "GET", "/api/health", &[], None).json();
        self.view = h["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (s["name"].as_str().unwrap_or_default().to_owned(), s.clone()))
            .collect();
        self.refreshes += 1;
    }

    /// Handles events until the view satisfies `f` (bounded).
    fn until(&mut self, what: &str, f: impl Fn(&HashMap<String, Value>) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !f(&self.view) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "the UI never showed {what}: {:?}",
                self.view
            );
            let Some((i, e)) = self.events.wait_from(self.seen, left, |_| true) else {
                continue;
            };
            self.seen = i + 1;
            let refreshing = e.is_subscription("servers_updated")
                || e.is_subscription("servers_updating")
                || (e.event == "hub_state"
                    && matches!(e.json()["state"].as_str(), Some("ready" | "restarted")));
            if refreshing {
                self.refresh();
            }
        }
    }

    fn status(&self, server: &str) -> &str {
        self.view
            .get(server)
            .and_then(|s| s["status"].as_str())
            .unwrap_or("missing")
    }
}

/// `config_manager.update_server_config`: reads the file, sets the key, writes it back in place.
fn write_disabled(path: &Path, server: &str, disabled: bool) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["mcpServers"][server]["disabled"] = json!(disabled);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn initializes(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"method\":\"initialize\""))
        .count()
}

#[test]
fn the_plugin_accepts_the_version_line() {
    let out = Command::new(bin("mcp-hub"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(plugin_accepts_version(&text), Ok((4, 2, 1)), "{text}");
    // The check itself, against what it must refuse.
    assert!(plugin_accepts_version("mcp-hub 0.1.0").is_err());
    assert!(plugin_accepts_version("4.1.9").is_err());
    assert!(plugin_accepts_version("nothing").is_err());
    assert_eq!(plugin_accepts_version("v4.3.0-beta"), Ok((4, 3, 0)));
}

/// The "Done when" scenario of issue 12: 20 toggles through start/stop with `disable`, each
/// ending with the UI showing the server connected with its tools.
#[test]
fn twenty_toggles_through_the_plugin_end_connected_with_tools() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fx-messages.jsonl");
    let fx = fixture_entry(&["--name", "fx", "--log", log.to_str().unwrap()]);
    let mut cfg: Value =
        serde_json::from_str(&config(&[("fx", fx), ("other", fixture_entry(&[]))])).unwrap();
    // What mcphub.nvim keeps in the same file.
    cfg["nativeMCPServers"] = json!({"neovim": {"disabled": false}});
    cfg["mcpServers"]["fx"]["autoApprove"] = json!(["echo"]);
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .args(&["--watch", "--auto-shutdown", "--shutdown-delay", "60000"])
        .start();
    let file = hub.dir.path().join("servers.json");

    // Setup: the version check, then the health check of `check_server`.
    let out = Command::new(bin("mcp-hub"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(plugin_accepts_version(&String::from_utf8_lossy(&out.stdout)).is_ok());
    let health = hub.get("/api/health").json();
    assert_eq!(health["server_id"], "mcp-hub");
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["version"], "4.2.1",
        "else the plugin restarts the hub"
    );

    let mut ui = Plugin::attach(hub.port);
    ui.until("both servers connected", |v| {
        ["fx", "other"]
            .iter()
            .all(|s| v.get(*s).is_some_and(|o| o["status"] == "connected"))
    });
    let other_pid = ui.view["other"]["pid"].clone();
    let mut pids = vec![ui.view["fx"]["pid"].clone()];
    for round in 1..=20 {
        write_disabled(&file, "fx", true);
        let r = hub.post(
            "/api/servers/stop?disable=true",
            &json!({"server_name": "fx"}),
        );
        assert_eq!(r.status, 200, "round {round}: stop: {}", r.text());
        assert_eq!(r.json()["server"]["status"], "disabled");
        ui.until("fx disabled", |v| {
            v.get("fx").is_some_and(|o| o["status"] == "disabled")
        });

        if round % 4 == 0 {
            // A user's pause: the config watcher sees the stop's writes before the next start.
            std::thread::sleep(Duration::from_millis(500));
        }
        write_disabled(&file, "fx", false);
        let r = hub.post("/api/servers/start", &json!({"server_name": "fx"}));
        assert_eq!(r.status, 200, "round {round}: start: {}", r.text());
        assert_eq!(r.json()["server"]["status"], "connected");
        ui.until("fx connected with its tools", |v| {
            v.get("fx").is_some_and(|o| {
                o["status"] == "connected"
                    && o["capabilities"]["tools"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t["name"] == "echo"))
            })
        });
        pids.push(ui.view["fx"]["pid"].clone());
    }
    // Once things are quiet, the view still says connected: no late event undid it.
    std::thread::sleep(Duration::from_millis(600));
    ui.until("fx still connected", |v| {
        v.get("fx").is_some_and(|o| o["status"] == "connected")
    });
    assert_eq!(ui.status("fx"), "connected");
    // One spawn per start (the hub's own config writes never restarted it a second time), the
    // other server untouched, and the file the plugin reads says enabled.
    assert_eq!(initializes(&log), 21, "one initialize per start");
    let mut distinct = pids.clone();
    distinct.sort_by_key(Value::to_string);
    distinct.dedup();
    assert_eq!(distinct.len(), 21, "a new process each round: {pids:?}");
    assert_eq!(ui.view["other"]["pid"], other_pid);
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(on_disk["mcpServers"]["fx"]["disabled"], false);
    assert_eq!(on_disk["nativeMCPServers"]["neovim"]["disabled"], false);
    assert!(
        ui.events
            .all()
            .iter()
            .all(|e| e.event != "log" || e.json()["type"] != "error"),
        "no error the plugin would list among its issues"
    );
}

/// The plugin's own toggle in its UI writes the file only (no REST call) and relies on `--watch`:
/// the view follows through `servers_updated`, which comes when the server has connected.
#[test]
fn toggling_in_the_file_alone_reaches_connected_through_events() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("fx", fixture_entry(&[]))]))
        .arg("--watch")
        .start();
    let file = hub.dir.path().join("servers.json");
    let mut ui = Plugin::attach(hub.port);
    ui.until("fx connected", |v| {
        v.get("fx").is_some_and(|o| o["status"] == "connected")
    });
    for _ in 0..3 {
        write_disabled(&file, "fx", true);
        ui.until("fx disabled", |v| {
            v.get("fx").is_some_and(|o| o["status"] == "disabled")
        });
        write_disabled(&file, "fx", false);
        ui.until("fx connected", |v| {
            v.get("fx").is_some_and(|o| {
                o["status"] == "connected"
                    && o["capabilities"]["tools"]
                        .as_array()
                        .is_some_and(|t| !t.is_empty())
            })
        });
    }
}
