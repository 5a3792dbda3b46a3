//! The skills extension (SEP-2640) through the real binary: the hub relays each server's skills
//! under URIs that keep same-named skills of different servers apart, never reads a skill file on
//! its own, and refuses to relay a skill file whose content does not match the entry its server
//! published (a tampered body, extra bytes, or a frontmatter that says something else).

use std::path::Path;

use mcp_hub_tests::{HubCmd, McpClient};
use serde_json::{Value, json};

use crate::{config, fixture_entry};

const SKILL: &str = "skill://pdf-processing/SKILL.md";
const FORMS: &str = "skill://pdf-processing/references/FORMS.md";

fn skills_server(mode: &str, log: &Path) -> Value {
    fixture_entry(&["--skills", mode, "--log", &log.display().to_string()])
}

fn unprefixed(mut entry: Value) -> Value {
    entry["prefix"] = json!(false);
    entry
}

/// The `resources/read` requests a fixture received, by URI.
fn reads(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["method"] == "resources/read")
        .filter_map(|m| m["params"]["uri"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn skills_are_relayed_per_server_and_tampered_files_never_reach_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let log = |n: &str| dir.path().join(format!("{n}.jsonl"));
    let mut hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("good", skills_server("ok", &log("good"))),
                ("evil", skills_server("tamper-digest", &log("evil"))),
                ("long", skills_server("tamper-size", &log("long"))),
                ("liar", skills_server("tamper-frontmatter", &log("liar"))),
                ("plain", fixture_entry(&[])),
                ("twin", unprefixed(skills_server("ok", &log("twin")))),
                ("twin2", unprefixed(skills_server("ok", &log("twin2")))),
            ]),
        )
        .start();
    let names = ["good", "evil", "long", "liar", "plain", "twin", "twin2"];
    hub.wait_status(&names, "connected");
    let mut c = McpClient::connect(hub.port);
    // Capabilities are fixed at initialize; a fresh session sees the settled set.
    let init = mcp_hub_tests::request(
        hub.port,
        "POST",
        "/mcp",
        &[("Accept", "application/json, text/event-stream")],
        Some(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "e2e", "version": "1"}}})
            .to_string()
            .as_bytes(),
        ),
    )
    .json();
    assert_eq!(
        init["result"]["capabilities"]["extensions"],
        json!({"io.modelcontextprotocol/skills": {}}),
        "{init}"
    );

    let listed = c.call("skills/list", json!({}));
    let skills = listed["result"]["skills"].as_array().expect("skills");
    let mut uris: Vec<&str> = skills.iter().filter_map(|s| s["uri"].as_str()).collect();
    uris.sort_unstable();
    // Prefixed servers' skills carry their namespace; of two unprefixed servers with the same
    // skill URI, the second is namespaced rather than shadowing the first.
    assert_eq!(
        uris,
        [
            format!("evil__{SKILL}"),
            format!("good__{SKILL}"),
            format!("liar__{SKILL}"),
            format!("long__{SKILL}"),
            SKILL.to_owned(),
            format!("twin2__{SKILL}"),
        ],
        "{listed}"
    );
    let good = skills
        .iter()
        .find(|s| s["uri"] == format!("good__{SKILL}"))
        .unwrap();
    assert_eq!(good["frontmatter"]["name"], "pdf-processing");
    let files: Vec<&str> = good["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["uri"].as_str())
        .collect();
    assert_eq!(files, [format!("good__{SKILL}"), format!("good__{FORMS}")]);
    assert!(listed["result"]["ttlMs"].is_u64() && listed["result"]["cacheScope"] == "private");

    // Listing (and connecting) read nothing: files are fetched when a host loads the skill.
    for n in ["good", "evil", "long", "liar", "twin", "twin2"] {
        assert_eq!(
            reads(&log(n)),
            Vec::<String>::new(),
            "{n} was read ahead of need"
        );
    }

    // Verified content passes, byte for byte.
    for uri in [format!("good__{SKILL}"), format!("good__{FORMS}")] {
        let r = c.call("resources/read", json!({"uri": uri}));
        assert!(r["result"]["contents"][0]["text"].is_string(), "{uri}: {r}");
    }
    // Each kind of tampering is refused, saying what did not match.
    for (server, why) in [
        ("evil", "digest mismatch"),
        ("long", "size mismatch"),
        ("liar", "frontmatter mismatch"),
    ] {
        let uri = format!("{server}__{SKILL}");
        let r = c.call("resources/read", json!({"uri": uri}));
        assert_eq!(r["error"]["code"], -32603, "{server}: {r}");
        let reason = r["error"]["data"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(why), "{server}: {r}");
        assert!(r.get("result").is_none(), "{server}: content relayed: {r}");
        // The entry was refreshed once (it might have been stale) before refusing.
        assert_eq!(reads(&log(server)), [SKILL], "{server}");
    }
    // The tampered servers' other files are still fine: only what fails is refused.
    let r = c.call("resources/read", json!({"uri": format!("evil__{FORMS}")}));
    assert!(r["result"]["contents"][0]["text"].is_string(), "{r}");

    // Same URI on two unprefixed servers: each read reaches its own server.
    for uri in [SKILL.to_owned(), format!("twin2__{SKILL}")] {
        let r = c.call("resources/read", json!({"uri": uri}));
        assert!(r["result"]["contents"][0]["text"].is_string(), "{uri}: {r}");
    }
    assert_eq!(reads(&log("twin")), [SKILL]);
    assert_eq!(reads(&log("twin2")), [SKILL]);

    // skills/get by exposed URI, and an unknown skill.
    let got = c.call("skills/get", json!({"uri": format!("good__{SKILL}")}));
    assert_eq!(
        got["result"]["skill"]["uri"],
        format!("good__{SKILL}"),
        "{got}"
    );
    let unknown = c.call("skills/get", json!({"uri": "good__skill://nope/SKILL.md"}));
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let cursor = c.call("skills/list", json!({"cursor": "x"}));
    assert_eq!(cursor["error"]["code"], -32602, "{cursor}");
    // Two clients: one's listing protects the other's reads too (entries are the server's).
    let mut other = McpClient::connect(hub.port);
    let r = other.call("resources/read", json!({"uri": format!("evil__{SKILL}")}));
    assert_eq!(r["error"]["code"], -32603, "{r}");
    hub.terminate();
}

#[test]
fn a_hub_without_skill_servers_does_not_offer_the_extension() {
    let hub = HubCmd::new()
        .config("servers.json", &config(&[("plain", fixture_entry(&[]))]))
        .start();
    hub.wait_status(&["plain"], "connected");
    let init = mcp_hub_tests::request(
        hub.port,
        "POST",
        "/mcp",
        &[("Accept", "application/json, text/event-stream")],
        Some(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "e2e", "version": "1"}}})
            .to_string()
            .as_bytes(),
        ),
    )
    .json();
    assert!(
        init["result"]["capabilities"].get("extensions").is_none(),
        "{init}"
    );
    let mut c = McpClient::connect(hub.port);
    let listed = c.call("skills/list", json!({}));
    assert_eq!(listed["result"]["skills"], json!([]), "{listed}");
}

/// A 2026-07-28 client (no session) gets the same skills and the same protection.
#[test]
fn a_stateless_client_lists_skills_and_gets_only_verified_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = |n: &str| dir.path().join(format!("{n}.jsonl"));
    let hub = HubCmd::new()
        .config(
            "servers.json",
            &config(&[
                ("good", skills_server("ok", &log("good"))),
                ("evil", skills_server("tamper-digest", &log("evil"))),
            ]),
        )
        .start();
    hub.wait_status(&["good", "evil"], "connected");
    let call = |id: u64, method: &str, params: Value| -> Value {
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}});
        let mut headers = vec![
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", method),
        ];
        let name = params["uri"].as_str().map(str::to_owned);
        if method == "resources/read" {
            headers.push(("Mcp-Name", name.as_deref().unwrap()));
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let r = mcp_hub_tests::request(
            hub.port,
            "POST",
            "/mcp",
            &headers,
            Some(body.to_string().as_bytes()),
        );
        mcp_hub_tests::jsonrpc_messages(&r)
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{method}: no answer: {}", r.text()))
    };
    let discovered = call(1, "server/discover", json!({}));
    assert_eq!(
        discovered["result"]["capabilities"]["extensions"],
        json!({"io.modelcontextprotocol/skills": {}}),
        "{discovered}"
    );
    let listed = call(2, "skills/list", json!({}));
    assert_eq!(
        listed["result"]["skills"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_eq!(listed["result"]["resultType"], "complete", "{listed}");
    let ok = call(
        3,
        "resources/read",
        json!({"uri": format!("good__{SKILL}")}),
    );
    assert!(ok["result"]["contents"][0]["text"].is_string(), "{ok}");
    let bad = call(
        4,
        "resources/read",
        json!({"uri": format!("evil__{SKILL}")}),
    );
    assert_eq!(bad["error"]["code"], -32603, "{bad}");
    assert!(bad.get("result").is_none(), "{bad}");
    let got = call(5, "skills/get", json!({"uri": format!("good__{SKILL}")}));
    assert_eq!(
        got["result"]["skill"]["uri"],
        format!("good__{SKILL}"),
        "{got}"
    );
}
