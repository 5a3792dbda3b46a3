//! Profiles in the 2026-07-28 (stateless) era, probed the way a client that wants more than its
//! profile gives would: the same endpoint in both eras must show the same view; hidden tools
//! guessed by name, behind a mismatched `Mcp-Name`, through search mode's `call_tool`; a parked
//! call's `requestState` presented at another endpoint; tokens of other profiles; two profiles
//! at once (`subscriptions/listen` streams: `profiles_listen`).

use std::time::Duration;

use mcp_hub_tests::{HubCmd, McpClient, Response};
use serde_json::{Value, json};

use crate::fixture_entry;
use crate::modern::{answer, meta, post_at};

pub(crate) fn names(list: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = list["result"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// A stateless request to `path` with the standard headers and `_meta`; its JSON-RPC answer.
pub(crate) fn ask(
    port: u16,
    path: &str,
    id: i64,
    method: &str,
    params: Value,
    extra: &[(&str, &str)],
) -> Value {
    answer(&send(port, path, id, method, params, json!({}), extra))
}

pub(crate) fn send(
    port: u16,
    path: &str,
    id: i64,
    method: &str,
    mut params: Value,
    caps: Value,
    extra: &[(&str, &str)],
) -> Response {
    params["_meta"] = meta(caps);
    post_at(port, path, id, method, params, extra)
}

pub(crate) fn hub(extra: &[&str], watch: bool) -> mcp_hub_tests::Hub {
    let cfg = config(&["echo", "add", "s*", "ask_client"]);
    let mut cmd = HubCmd::new()
        .config("servers.json", &cfg.to_string())
        .args(extra);
    if watch {
        cmd = cmd.arg("--watch");
    }
    let hub = cmd.start();
    if extra.contains(&"--token") {
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

/// Servers `a` and `b` (the fixture, with instructions of their own); profile `dev` shows `a`'s
/// tools that `dev_tools` includes (but never `sleep`), `ops` all of `b`, `find` is search mode
/// over `a` without `pid`.
pub(crate) fn config(dev_tools: &[&str]) -> Value {
    json!({
        "mcpServers": {
            "a": fixture_entry(&["--name", "a", "--instructions", "A-INSTRUCTIONS"]),
            "b": fixture_entry(&["--name", "b", "--instructions", "B-INSTRUCTIONS"]),
        },
        "profiles": {
            "dev": {"servers": {"a": {"tools": {"include": dev_tools, "exclude": ["sleep"]}}}},
            "ops": {"servers": ["b"]},
            "find": {"mode": "search", "servers": {"a": {"tools": {"exclude": ["pid"]}}}},
        },
    })
}

#[test]
fn both_eras_on_one_profile_see_the_same_view() {
    let hub = hub(&[], false);
    let port = hub.port;
    let mut session = McpClient::try_connect_at(port, "/mcp/dev", &[]).expect("dev session");

    let d = ask(port, "/mcp/dev", 1, "server/discover", json!({}), &[]);
    let versions = d["result"]["supportedVersions"]
        .as_array()
        .expect("versions");
    assert!(versions.contains(&json!("2026-07-28")), "{d}");
    let instructions = d["result"]["instructions"].as_str().unwrap_or_default();
    assert!(
        instructions.contains("A-INSTRUCTIONS") && !instructions.contains("B-INSTRUCTIONS"),
        "{d}"
    );

    // Every list is the session's list, item for item.
    for (method, key) in [
        ("tools/list", "tools"),
        ("prompts/list", "prompts"),
        ("resources/list", "resources"),
        ("resources/templates/list", "resourceTemplates"),
    ] {
        let stateless = ask(port, "/mcp/dev", 2, method, json!({}), &[]);
        assert_eq!(stateless["result"]["resultType"], "complete", "{stateless}");
        let handshake = session.call(method, json!({}));
        assert_eq!(
            stateless["result"][key], handshake["result"][key],
            "{method}: the eras disagree"
        );
    }
    let tools = names(
        &ask(port, "/mcp/dev", 3, "tools/list", json!({}), &[]),
        "tools",
    );
    assert_eq!(tools, ["a__add", "a__ask_client", "a__echo"]);

    let r = ask(
        port,
        "/mcp/dev",
        4,
        "tools/call",
        json!({"name": "a__add", "arguments": {"a": 2, "b": 3}}),
        &[],
    );
    assert_eq!(r["result"]["content"][0]["text"], "5", "{r}");

    // Guessed names: a hidden tool of the profile's server, another server's tool, the
    // upstream's own name, a clash suffix: refused exactly as the session is refused.
    for (i, guess) in [
        "a__sleep",
        "a__pid",
        "b__echo",
        "echo",
        "a__echo_1",
        "call_tool",
    ]
    .into_iter()
    .enumerate()
    {
        let params = json!({"name": guess, "arguments": {"text": "x", "name": "a__pid"}});
        let r = send(
            port,
            "/mcp/dev",
            10 + i as i64,
            "tools/call",
            params.clone(),
            json!({}),
            &[],
        );
        assert_eq!(r.status, 200, "{guess}: {}", r.text());
        let stateless = answer(&r);
        let handshake = session.call("tools/call", params);
        assert_eq!(stateless["error"], handshake["error"], "{guess}");
        assert_eq!(
            stateless["error"]["message"],
            format!("Unknown tool: {guess}"),
            "{stateless}"
        );
    }

    // A header that names a visible tool does not carry a body that names a hidden one, nor
    // the other way round: both are header mismatches, refused before anything is routed.
    for (body_name, header_name) in [("a__sleep", "a__echo"), ("a__echo", "a__sleep")] {
        let r = send(
            port,
            "/mcp/dev",
            20,
            "tools/call",
            json!({"name": body_name, "arguments": {"text": "x", "ms": 1}}),
            json!({}),
            &[("Mcp-Name", header_name)],
        );
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], -32020, "{}", r.text());
    }

    // Prompts, resources and completions outside the view.
    let prompts = names(
        &ask(port, "/mcp/dev", 21, "prompts/list", json!({}), &[]),
        "prompts",
    );
    assert!(
        !prompts.is_empty() && prompts.iter().all(|p| p.starts_with("a__")),
        "{prompts:?}"
    );
    let hidden_prompt = prompts[0].replacen("a__", "b__", 1);
    let r = ask(
        port,
        "/mcp/dev",
        22,
        "prompts/get",
        json!({"name": hidden_prompt}),
        &[],
    );
    assert_eq!(
        r["error"]["message"],
        format!("Unknown prompt: {hidden_prompt}"),
        "{r}"
    );
    let r = ask(
        port,
        "/mcp/dev",
        23,
        "resources/read",
        json!({"uri": "b__test://static-text"}),
        &[],
    );
    assert_eq!(
        r["error"]["code"], -32602,
        "the 2026-07-28 'not found': {r}"
    );
    let r = ask(
        port,
        "/mcp/dev",
        24,
        "resources/read",
        json!({"uri": "a__test://static-text"}),
        &[],
    );
    assert!(r["result"]["contents"].is_array(), "{r}");
    let r = ask(
        port,
        "/mcp/dev",
        25,
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": hidden_prompt}, "argument": {"name": "x", "value": ""}}),
        &[],
    );
    assert!(r.get("error").is_some(), "{r}");

    // The full endpoint is still the full view, in both eras.
    let all = names(
        &ask(port, "/mcp", 26, "tools/list", json!({}), &[]),
        "tools",
    );
    assert!(all.contains(&"b__echo".to_owned()) && all.contains(&"a__sleep".to_owned()));
    // An unknown profile is 404 in this era too.
    let r = send(
        port,
        "/mcp/nope",
        27,
        "tools/list",
        json!({}),
        json!({}),
        &[],
    );
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn search_mode_and_input_requests_in_the_stateless_era() {
    let hub = hub(&[], false);
    let port = hub.port;
    let d = ask(port, "/mcp/find", 1, "server/discover", json!({}), &[]);
    let instructions = d["result"]["instructions"].as_str().unwrap_or_default();
    assert!(
        instructions.starts_with("This endpoint lists only two tools"),
        "{d}"
    );

    let r = send(
        port,
        "/mcp/find",
        2,
        "tools/list",
        json!({}),
        json!({}),
        &[],
    );
    assert!(r.body.len() < 4096, "{} bytes", r.body.len());
    assert_eq!(names(&r.json(), "tools"), ["call_tool", "search_tools"]);

    let r = ask(
        port,
        "/mcp/find",
        3,
        "tools/call",
        json!({"name": "search_tools", "arguments": {"query": "add two numbers"}}),
        &[],
    );
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    let found: Vec<&str> = r["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(found.first(), Some(&"a__add"), "{found:?}");
    let r = ask(
        port,
        "/mcp/find",
        4,
        "tools/call",
        json!({"name": "call_tool", "arguments": {"name": "a__add", "arguments": {"a": 2, "b": 3}}}),
        &[],
    );
    assert_eq!(r["result"]["content"][0]["text"], "5", "{r}");
    // The hidden tool, the other server's tool: through call_tool or directly, unknown.
    for (i, (outer, target)) in [
        ("call_tool", "a__pid"),
        ("call_tool", "b__echo"),
        ("a__pid", "a__pid"),
        ("b__echo", "b__echo"),
    ]
    .into_iter()
    .enumerate()
    {
        let params = if outer == "call_tool" {
            json!({"name": "call_tool", "arguments": {"name": target, "arguments": {"text": "x"}}})
        } else {
            json!({"name": target, "arguments": {"text": "x"}})
        };
        let r = ask(port, "/mcp/find", 10 + i as i64, "tools/call", params, &[]);
        assert_eq!(
            r["error"]["message"],
            format!("Unknown tool: {target}"),
            "{r}"
        );
    }

    // An upstream's sampling request during call_tool reaches the 2026-07-28 caller as an
    // input request, and the call resumes on its retry at the same endpoint only.
    let call = |id: i64, path: &str, caps: Value, extra: Value| {
        let mut params = json!({"name": "call_tool",
            "arguments": {"name": "a__ask_client", "arguments": {"kind": "sampling"}}});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        let r = send(port, path, id, "tools/call", params, caps, &[]);
        (r.status, answer(&r))
    };
    let (_, first) = call(21, "/mcp/find", json!({"sampling": {}}), json!({}));
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let (key, asked) = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(asked["method"], "sampling/createMessage", "{first}");
    let state = first["result"]["requestState"].as_str().unwrap().to_owned();
    let sampled = json!({"role": "assistant", "content": {"type": "text", "text": "from the client"},
                         "model": "m", "stopReason": "endTurn"});
    let retry = json!({"requestState": state, "inputResponses": {key.as_str(): sampled}});
    // The state is the profile's: presented at the full endpoint, or the retry's body naming
    // the target directly there, it is refused and the parked call stays parked.
    let (_, e) = call(22, "/mcp", json!({"sampling": {}}), retry.clone());
    assert_eq!(e["error"]["code"], -32602, "{e}");
    let mut direct = retry.clone();
    direct["name"] = json!("a__ask_client");
    direct["arguments"] = json!({"kind": "sampling"});
    let r = send(
        port,
        "/mcp",
        23,
        "tools/call",
        direct,
        json!({"sampling": {}}),
        &[],
    );
    assert_eq!(answer(&r)["error"]["code"], -32602, "{}", r.text());
    let (_, done) = call(24, "/mcp/find", json!({"sampling": {}}), retry);
    assert_eq!(done["id"], 24, "{done}");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(
        done["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("from the client")),
        "{done}"
    );
    // A caller that did not declare sampling is told so (-32021), as on `/mcp`. (Last: on a
    // stdio upstream the call it abandons keeps later requests ambiguous for a while.)
    let (status, e) = call(20, "/mcp/find", json!({}), json!({}));
    assert_eq!(
        (status, e["error"]["code"].clone()),
        (400, json!(-32021)),
        "{e}"
    );
}

/// A profile's endpoint serves this era with the profile's view (it used to refuse it with
/// -32022): the tokens hold exactly as for sessions, and the hub-wide token on a profile's
/// endpoint gets the profile's view, not the full one.
#[test]
fn a_profile_is_not_a_way_around_its_view_in_the_stateless_era() {
    let hub = hub(
        &[
            "--token",
            "admin-secret",
            "--profile-token",
            "dev=dev-secret",
        ],
        false,
    );
    let port = hub.port;
    let list = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let extra: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        send(port, path, 7, "tools/list", json!({}), json!({}), &extra)
    };
    for token in ["dev-secret", "admin-secret"] {
        let r = list("/mcp/dev", Some(token));
        assert_eq!(r.status, 200, "{token}: {}", r.text());
        let v = r.json();
        assert_eq!(
            names(&v, "tools"),
            ["a__add", "a__ask_client", "a__echo"],
            "{token}"
        );
        assert_eq!(v["result"]["cacheScope"], "private", "{v}");
    }
    for (path, token, status) in [
        ("/mcp", Some("dev-secret"), 403),
        ("/mcp/ops", Some("dev-secret"), 403),
        ("/mcp/dev", None, 401),
        ("/mcp/dev", Some("wrong"), 401),
    ] {
        let r = list(path, token);
        assert_eq!(r.status, status, "{path} {token:?}: {}", r.text());
    }
    let auth = [("Authorization", "Bearer dev-secret")];
    let r = send(
        port,
        "/mcp/dev",
        8,
        "tools/call",
        json!({"name": "b__echo", "arguments": {"text": "x"}}),
        json!({}),
        &auth,
    );
    assert_eq!(
        answer(&r)["error"]["message"],
        "Unknown tool: b__echo",
        "{}",
        r.text()
    );
    let r = send(
        port,
        "/mcp/dev",
        9,
        "tools/call",
        json!({"name": "a__echo", "arguments": {"text": "mine"}}),
        json!({}),
        &auth,
    );
    assert_eq!(
        answer(&r)["result"]["content"][0]["text"],
        "mine",
        "{}",
        r.text()
    );
    // A listen stream is no way around the token either.
    let r = send(
        port,
        "/mcp/ops",
        10,
        "subscriptions/listen",
        json!({}),
        json!({}),
        &auth,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // The hub-wide token still gets the full view on /mcp.
    let r = list("/mcp", Some("admin-secret"));
    assert!(names(&r.json(), "tools").contains(&"b__echo".to_owned()));
}

#[test]
fn two_profiles_in_two_eras_at_once_stay_apart() {
    let hub = hub(&[], false);
    let port = hub.port;
    let stateless = |profile: &'static str, own: &'static str, other: &'static str| {
        std::thread::spawn(move || {
            let path = format!("/mcp/{profile}");
            for i in 0..20 {
                let text = format!("{profile}-stateless-{i}");
                let r = ask(
                    port,
                    &path,
                    i,
                    "tools/call",
                    json!({"name": format!("{own}echo"), "arguments": {"text": text}}),
                    &[],
                );
                assert_eq!(r["result"]["content"][0]["text"], text, "{r}");
                let r = ask(
                    port,
                    &path,
                    100 + i,
                    "tools/call",
                    json!({"name": format!("{other}echo"), "arguments": {"text": "x"}}),
                    &[],
                );
                assert_eq!(
                    r["error"]["message"],
                    format!("Unknown tool: {other}echo"),
                    "{r}"
                );
                let tools = names(
                    &ask(port, &path, 200 + i, "tools/list", json!({}), &[]),
                    "tools",
                );
                assert!(
                    tools.iter().all(|t| t.starts_with(own)),
                    "{profile}: {tools:?}"
                );
            }
        })
    };
    let session = |profile: &'static str, own: &'static str| {
        std::thread::spawn(move || {
            let mut c =
                McpClient::try_connect_at(port, &format!("/mcp/{profile}"), &[]).expect("session");
            for i in 0..20 {
                let text = format!("{profile}-session-{i}");
                let r = c.call(
                    "tools/call",
                    json!({"name": format!("{own}echo"), "arguments": {"text": text}}),
                );
                assert_eq!(r["result"]["content"][0]["text"], text, "{r}");
            }
        })
    };
    let threads = [
        stateless("dev", "a__", "b__"),
        stateless("ops", "b__", "a__"),
        session("dev", "a__"),
        session("ops", "b__"),
    ];
    for t in threads {
        t.join().expect("client thread");
    }
}
