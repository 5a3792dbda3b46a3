//! Tool filters, profiles and the search mode, as a client that wants more than it was given
//! would probe them: hidden tools by guessed names, through `call_tool`, through REST; list
//! changes that are not its view's; a config edit under it; two profiles at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mcp_hub_tests::{HubCmd, McpClient};
use serde_json::{Value, json};

use crate::fixture_entry;

pub(crate) fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

fn tools_of(c: &mut McpClient) -> Vec<String> {
    names(&c.call("tools/list", json!({})))
}

/// A session's standalone GET stream, to watch the notifications nobody asked for.
pub(crate) struct Watch {
    sock: TcpStream,
    seen: String,
}

impl Watch {
    pub(crate) fn open(c: &McpClient) -> Watch {
        let mut sock = TcpStream::connect(("127.0.0.1", c.port)).expect("connect");
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {}\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n",
            c.path, c.port, c.session
        );
        sock.write_all(req.as_bytes()).expect("write");
        sock.set_read_timeout(Some(Duration::from_millis(100))).ok();
        let mut w = Watch {
            sock,
            seen: String::new(),
        };
        w.read_for(Duration::from_millis(300));
        assert!(w.seen.starts_with("HTTP/1.1 200"), "GET stream: {}", w.seen);
        w
    }

    /// Reads what arrives for `d`.
    pub(crate) fn read_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut buf = [0u8; 8192];
        while Instant::now() < end {
            match self.sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => {}
            }
        }
    }

    /// Reads until `needle` arrived (or `d` passed); whether it did.
    pub(crate) fn wait_for(&mut self, needle: &str, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end && !self.seen.contains(needle) {
            self.read_for(Duration::from_millis(100));
        }
        self.seen.contains(needle)
    }
}

fn write_config(hub: &mcp_hub_tests::Hub, v: &Value) {
    std::fs::write(hub.dir.path().join("servers.json"), v.to_string()).unwrap();
}

#[test]
fn a_server_tool_filter_hides_tools_everywhere_and_follows_reload() {
    let mut entry = fixture_entry(&["--name", "fx"]);
    entry["tools"] = json!({"include": ["echo", "add", "s*"], "exclude": ["sleep"]});
    let cfg = json!({"mcpServers": {"fx": entry}});
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .arg("--watch")
        .start();
    hub.wait_status(&["fx"], "connected");
    let pid = hub.server("fx")["pid"].as_u64().expect("pid");
    let mut c = McpClient::connect(hub.port);
    assert_eq!(tools_of(&mut c), ["fx__add", "fx__echo"]);

    // A hidden tool is unknown by its exposed name, over /mcp and over REST.
    let r = c.call("tools/call", json!({"name": "fx__pid", "arguments": {}}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(r["error"]["message"], "Unknown tool: fx__pid");
    let r = c.call(
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "hi"}}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "hi", "{r}");
    let rest = hub.call_tool("fx", "pid", json!({}));
    assert_eq!(rest.status, 404, "{}", rest.text());
    assert_eq!(rest.json()["code"], "TOOL_NOT_FOUND");
    let fx = hub.server("fx");
    let listed: Vec<&str> = fx["capabilities"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(listed, ["echo", "add"]);

    // A new filter applies without a restart, and the client hears that its list changed.
    let mut watch = Watch::open(&c);
    let mut entry = fixture_entry(&["--name", "fx"]);
    entry["tools"] = json!({"include": ["pid"]});
    write_config(&hub, &json!({"mcpServers": {"fx": entry}}));
    assert!(
        watch.wait_for("notifications/tools/list_changed", Duration::from_secs(20)),
        "{}",
        watch.seen
    );
    assert_eq!(tools_of(&mut c), ["fx__pid"]);
    assert_eq!(hub.server("fx")["pid"].as_u64(), Some(pid), "no restart");
    let r = c.call(
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "hi"}}),
    );
    assert_eq!(r["error"]["message"], "Unknown tool: fx__echo", "{r}");
    // Removing the filter shows everything again.
    write_config(
        &hub,
        &json!({"mcpServers": {"fx": fixture_entry(&["--name", "fx"])}}),
    );
    hub.wait_for(Duration::from_secs(20), |_| {
        (tools_of(&mut c).len() > 10).then_some(())
    });
    assert_eq!(hub.server("fx")["pid"].as_u64(), Some(pid), "no restart");
}

pub(crate) fn profiles_hub(extra: &[&str], profiles: Value) -> mcp_hub_tests::Hub {
    let cfg = json!({
        "mcpServers": {
            "a": fixture_entry(&["--name", "a"]),
            "b": fixture_entry(&["--name", "b"]),
        },
        "profiles": profiles,
    });
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .args(extra)
        .start();
    if extra.contains(&"--token") {
        // The hub-wide token of these tests is `admin-secret`.
        hub.wait_for(Duration::from_secs(30), |h| {
            let r = mcp_hub_tests::request(
                h.port,
                "GET",
                "/api/servers",
                &[("Authorization", "Bearer admin-secret")],
                None,
            );
            let v = r.json();
            let servers = v["servers"].as_array()?;
            (servers.len() == 2 && servers.iter().all(|s| s["status"] == "connected")).then_some(())
        });
    } else {
        hub.wait_status(&["a", "b"], "connected");
    }
    hub
}

fn error_of(r: &Value) -> String {
    r["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_profile_client_sees_its_tools_and_cannot_reach_the_rest() {
    let hub = profiles_hub(
        &[],
        json!({
            "dev": {"servers": {"a": {"tools": {"include": ["echo", "add", "s*"], "exclude": ["sleep"]}}}},
            "ops": {"description": "b only", "servers": ["b"]},
        }),
    );
    let mut dev = McpClient::try_connect_at(hub.port, "/mcp/dev", &[]).expect("dev session");
    assert_eq!(tools_of(&mut dev), ["a__add", "a__echo"]);
    let r = dev.call(
        "tools/call",
        json!({"name": "a__add", "arguments": {"a": 2, "b": 3}}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "5", "{r}");
    // Guessing names: a hidden tool of an included server, a tool of another server, the
    // prefix-less upstream name, a suffixed clash name: all "unknown", like a name that never was.
    for guess in ["a__sleep", "a__pid", "b__echo", "echo", "a__echo_1"] {
        let r = dev.call(
            "tools/call",
            json!({"name": guess, "arguments": {"text": "x"}}),
        );
        assert_eq!(error_of(&r), format!("Unknown tool: {guess}"), "{r}");
    }
    // Prompts, resources and completions of a server outside the profile are out of reach too.
    let prompts = dev.call("prompts/list", json!({}));
    let listed: Vec<&str> = prompts["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        !listed.is_empty() && listed.iter().all(|n| n.starts_with("a__")),
        "{listed:?}"
    );
    let hidden_prompt = listed[0].replacen("a__", "b__", 1);
    let r = dev.call("prompts/get", json!({"name": hidden_prompt}));
    assert_eq!(error_of(&r), format!("Unknown prompt: {hidden_prompt}"));
    let r = dev.call("resources/read", json!({"uri": "b__test://static-text"}));
    assert_eq!(r["error"]["code"], -32002, "{r}");
    let r = dev.call("resources/read", json!({"uri": "a__test://static-text"}));
    assert!(r["result"]["contents"].is_array(), "{r}");
    let r = dev.call(
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": hidden_prompt}, "argument": {"name": "x", "value": ""}}),
    );
    assert!(r.get("error").is_some(), "{r}");
    let resources = dev.call("resources/list", json!({}));
    assert!(
        resources["result"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["uri"].as_str().unwrap_or_default().starts_with("a__")),
        "{resources}"
    );

    // `/mcp` stays the full view; an unknown profile is 404.
    let mut full = McpClient::connect(hub.port);
    assert!(tools_of(&mut full).len() > 40);
    let nope = McpClient::try_connect_at(hub.port, "/mcp/nope", &[]).unwrap_err();
    assert_eq!(nope.status, 404);

    // REST lists the profiles and what they show.
    let p = hub.get("/api/profiles").json();
    assert_eq!(p["profiles"][0]["name"], "dev");
    assert_eq!(p["profiles"][0]["endpoint"], "/mcp/dev");
    assert_eq!(p["profiles"][0]["tools"], 2);
    assert_eq!(p["profiles"][1]["matchedServers"], json!(["b"]));
    assert_eq!(p["profiles"][1]["description"], "b only");
}

#[test]
fn two_profiles_at_once_stay_apart() {
    let hub = profiles_hub(
        &[],
        json!({"dev": {"servers": ["a"]}, "ops": {"servers": ["b"]}}),
    );
    let port = hub.port;
    let run = |profile: &'static str, own: &'static str, other: &'static str| {
        std::thread::spawn(move || {
            let mut c =
                McpClient::try_connect_at(port, &format!("/mcp/{profile}"), &[]).expect("session");
            let tools = tools_of(&mut c);
            assert!(
                tools.iter().all(|t| t.starts_with(own)),
                "{profile}: {tools:?}"
            );
            for i in 0..25 {
                let text = format!("{profile}-{i}");
                let r = c.call(
                    "tools/call",
                    json!({"name": format!("{own}echo"), "arguments": {"text": text}}),
                );
                assert_eq!(r["result"]["content"][0]["text"], text, "{r}");
                let r = c.call(
                    "tools/call",
                    json!({"name": format!("{other}echo"), "arguments": {"text": "x"}}),
                );
                assert_eq!(error_of(&r), format!("Unknown tool: {other}echo"));
            }
        })
    };
    let a = run("dev", "a__", "b__");
    let b = run("ops", "b__", "a__");
    a.join().expect("dev client");
    b.join().expect("ops client");
}

#[test]
fn list_changed_reaches_only_the_profiles_whose_view_changed() {
    let cfg = |blind_excludes: bool| {
        let blind = if blind_excludes {
            json!({"servers": {"late": {"tools": {"exclude": ["late_tool"]}}}})
        } else {
            json!({"servers": ["late"]})
        };
        json!({
            "mcpServers": {
                "late": fixture_entry(&["--name", "late", "--list-changed-after", "2500"]),
                "other": fixture_entry(&["--name", "other"]),
            },
            "profiles": {
                "sees": {"servers": ["late"]},
                "blind": blind,
                "elsewhere": {"servers": ["other"]},
            },
        })
    };
    let hub = HubCmd::new()
        .config("servers.json", &cfg(true).to_string())
        .arg("--watch")
        .start();
    hub.wait_status(&["late", "other"], "connected");
    let connect = |p: &str| McpClient::try_connect_at(hub.port, &format!("/mcp/{p}"), &[]).unwrap();
    let (mut sees, mut blind, elsewhere) =
        (connect("sees"), connect("blind"), connect("elsewhere"));
    let full = McpClient::connect(hub.port);
    let mut w_sees = Watch::open(&sees);
    let mut w_blind = Watch::open(&blind);
    let mut w_else = Watch::open(&elsewhere);
    let mut w_full = Watch::open(&full);
    const CHANGED: &str = "notifications/tools/list_changed";
    assert!(
        w_sees.wait_for(CHANGED, Duration::from_secs(20)),
        "{}",
        w_sees.seen
    );
    assert!(
        w_full.wait_for(CHANGED, Duration::from_secs(5)),
        "{}",
        w_full.seen
    );
    assert!(tools_of(&mut sees).contains(&"late__late_tool".to_owned()));
    w_blind.read_for(Duration::from_millis(1500));
    w_else.read_for(Duration::from_millis(10));
    assert!(!w_blind.seen.contains(CHANGED), "{}", w_blind.seen);
    assert!(!w_else.seen.contains(CHANGED), "{}", w_else.seen);
    assert!(!tools_of(&mut blind).contains(&"late__late_tool".to_owned()));

    // A profile edit changes only that profile's view: its sessions hear it, nobody else does.
    write_config(&hub, &cfg(false));
    assert!(
        w_blind.wait_for(CHANGED, Duration::from_secs(20)),
        "{}",
        w_blind.seen
    );
    assert!(tools_of(&mut blind).contains(&"late__late_tool".to_owned()));
    w_sees.read_for(Duration::from_millis(1000));
    w_else.read_for(Duration::from_millis(10));
    w_full.read_for(Duration::from_millis(10));
    assert_eq!(w_sees.seen.matches(CHANGED).count(), 1, "{}", w_sees.seen);
    assert_eq!(w_full.seen.matches(CHANGED).count(), 1, "{}", w_full.seen);
    assert!(!w_else.seen.contains(CHANGED), "{}", w_else.seen);
}

/// The skill both servers of [`skills_profile_hub`] serve.
pub(crate) const SKILLS_SKILL: &str = "skill://pdf-processing/SKILL.md";

/// Two servers with the same skills, `mine` and `theirs`, and a profile `dev` of `mine` only.
pub(crate) fn skills_profile_hub() -> mcp_hub_tests::Hub {
    let cfg = json!({
        "mcpServers": {
            "mine": fixture_entry(&["--skills", "ok"]),
            "theirs": fixture_entry(&["--skills", "ok"]),
        },
        "profiles": {"dev": {"servers": ["mine"]}},
    });
    let hub = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .start();
    hub.wait_status(&["mine", "theirs"], "connected");
    hub
}

#[test]
fn a_profile_lists_and_gets_only_its_servers_skills() {
    let hub = skills_profile_hub();
    let mut dev = McpClient::try_connect_at(hub.port, "/mcp/dev", &[]).expect("session");
    let listed = dev.call("skills/list", json!({}));
    let uris: Vec<&str> = listed["result"]["skills"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|s| s["uri"].as_str())
        .collect();
    assert_eq!(uris, [format!("mine__{SKILLS_SKILL}")], "{listed}");
    let got = dev.call(
        "skills/get",
        json!({"uri": format!("mine__{SKILLS_SKILL}")}),
    );
    assert!(got.get("result").is_some(), "{got}");
    let hidden = format!("theirs__{SKILLS_SKILL}");
    let r = dev.call("skills/get", json!({"uri": hidden}));
    assert_eq!(
        error_of(&r),
        format!("Invalid params: unknown skill: {hidden}"),
        "{r}"
    );
    let r = dev.call("resources/read", json!({"uri": hidden}));
    assert_eq!(r["error"]["code"], -32002, "{r}");
    // The full view still has both.
    let mut full = McpClient::connect(hub.port);
    let all = full.call("skills/list", json!({}));
    assert_eq!(
        all["result"]["skills"].as_array().map(Vec::len),
        Some(2),
        "{all}"
    );
}
