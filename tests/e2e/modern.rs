//! The 2026-07-28 era on the hub's `/mcp`, beside the handshake era: a sessionless request with
//! modern `_meta` is served on its own; `initialize` + `Mcp-Session-Id` work as before.

use mcp_hub_tests::{HubCmd, McpClient, Response, request};
use serde_json::{Value, json};

use crate::{config, fixture_entry};

const V: &str = "2026-07-28";

pub(crate) fn meta(caps: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"}
    })
}

/// A modern POST with the standard headers derived from the body (overridable).
pub(crate) fn post(
    port: u16,
    id: i64,
    method: &str,
    params: Value,
    extra: &[(&str, &str)],
) -> Response {
    post_at(port, "/mcp", id, method, params, extra)
}

/// [`post`] to another endpoint (a profile's `/mcp/<name>`).
pub(crate) fn post_at(
    port: u16,
    path: &str,
    id: i64,
    method: &str,
    params: Value,
    extra: &[(&str, &str)],
) -> Response {
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut headers = vec![
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", V),
        ("Mcp-Method", method),
    ];
    if let Some(n) = &name {
        headers.push(("Mcp-Name", n));
    }
    for (k, v) in extra {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        headers.push((k, v));
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    request(
        port,
        "POST",
        path,
        &headers,
        Some(body.to_string().as_bytes()),
    )
}

/// The JSON-RPC answer of a response, JSON or SSE.
pub(crate) fn answer(r: &Response) -> Value {
    if r.header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"))
    {
        let text = r.text();
        let last = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|m| m.get("id").is_some())
            .unwrap_or_else(|| panic!("no answer on the stream: {text}"));
        return last;
    }
    r.json()
}

#[test]
fn both_eras_on_one_endpoint() {
    let hub = HubCmd::new()
        .config(
            "s.json",
            &config(&[("fx", fixture_entry(&["--name", "fx"]))]),
        )
        .start();
    hub.wait_status(&["fx"], "connected");
    let port = hub.port;

    let r = post(
        port,
        1,
        "server/discover",
        json!({"_meta": meta(json!({}))}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let d = r.json()["result"].clone();
    let versions = d["supportedVersions"].as_array().unwrap();
    assert!(
        versions.contains(&json!(V)) && versions.contains(&json!("2025-11-25")),
        "{d}"
    );
    assert_eq!(d["resultType"], "complete");
    assert!(d["ttlMs"].is_u64() && d["cacheScope"].is_string(), "{d}");
    assert_eq!(
        d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-hub"
    );
    assert!(d["capabilities"]["tools"].is_object(), "{d}");

    let r = post(
        port,
        2,
        "tools/list",
        json!({"_meta": meta(json!({}))}),
        &[],
    );
    let list = r.json()["result"].clone();
    assert_eq!(list["resultType"], "complete");
    assert_eq!(
        list["cacheScope"], "public",
        "an open hub's lists are the same for all"
    );
    assert!(
        list["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "fx__echo"),
        "{list}"
    );

    let r = post(
        port,
        3,
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "stateless"}, "_meta": meta(json!({}))}),
        &[],
    );
    let a = answer(&r);
    assert_eq!(a["id"], 3);
    assert_eq!(a["result"]["resultType"], "complete", "{a}");
    assert!(
        a["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("stateless"),
        "{a}"
    );

    // A version not spoken: -32022 naming what is, with the request's id.
    let mut m = meta(json!({}));
    m["io.modelcontextprotocol/protocolVersion"] = json!("1900-01-01");
    let r = post(
        port,
        4,
        "server/discover",
        json!({"_meta": m}),
        &[("MCP-Protocol-Version", "1900-01-01")],
    );
    assert_eq!(r.status, 400);
    let e = r.json();
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (json!(4), json!(-32022)),
        "{e}"
    );
    assert_eq!(e["error"]["data"]["requested"], "1900-01-01");
    assert!(
        e["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!(V))
    );

    // Headers must agree with the body.
    let r = post(
        port,
        5,
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "x"}, "_meta": meta(json!({}))}),
        &[("Mcp-Name", "fx__other")],
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32020))
    );
    assert_eq!(r.json()["id"], 5);

    // Missing `_meta` is -32602; removed methods are 404 -32601.
    let r = post(port, 6, "server/discover", json!({}), &[]);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32602))
    );
    let r = post(port, 7, "ping", json!({"_meta": meta(json!({}))}), &[]);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (404, json!(-32601))
    );

    // A tool whose upstream asks the client to sample: a client that did not declare sampling
    // gets -32021 (HTTP 400), not a request it cannot take.
    let r = post(
        port,
        8,
        "tools/call",
        json!({"name": "fx__test_missing_capability", "arguments": {}, "_meta": meta(json!({}))}),
        &[],
    );
    let e = answer(&r);
    assert_eq!(r.status, 400, "{e}");
    assert_eq!(e["error"]["code"], -32021, "{e}");
    assert!(
        e["error"]["data"]["requiredCapabilities"]["sampling"].is_object(),
        "{e}"
    );

    // A sessionless handshake-era request is refused, naming its id (it used to be null).
    let r = request(
        port,
        "POST",
        "/mcp",
        &[("Accept", "application/json, text/event-stream")],
        Some(br#"{"jsonrpc":"2.0","id":"abc","method":"tools/list"}"#),
    );
    assert_eq!((r.status, r.json()["id"].clone()), (400, json!("abc")));

    // The handshake era is untouched beside it.
    let mut c = McpClient::connect(port);
    let r = c.call(
        "tools/call",
        json!({"name": "fx__echo", "arguments": {"text": "session"}}),
    );
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("session"),
        "{r}"
    );
    assert!(r["result"].get("resultType").is_none(), "{r}");
}

/// A handshake-era upstream asks for sampling during a 2026-07-28 call: the hub parks the call
/// and hands the request to the client as an `InputRequiredResult` with a sealed
/// `requestState`; only an untouched state, retried for the same tool, resumes it.
#[test]
fn input_requests_bridge_a_legacy_upstream() {
    let hub = HubCmd::new()
        .config(
            "s.json",
            &config(&[("fx", fixture_entry(&["--name", "fx"]))]),
        )
        .start();
    hub.wait_status(&["fx"], "connected");
    let port = hub.port;
    let call = |id: i64, name: &str, extra: Value| {
        let mut params = json!({"name": name, "arguments": {"kind": "sampling"},
                                "_meta": meta(json!({"sampling": {}}))});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        answer(&post(port, id, "tools/call", params, &[]))
    };
    let first = call(1, "fx__ask_client", json!({}));
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required", "{first}");
    let (key, request) = r["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(request["method"], "sampling/createMessage", "{first}");
    let state = r["requestState"].as_str().unwrap().to_owned();

    // Altered, or presented for another tool: refused, and the parked call stays parked.
    let mut bad = state.clone();
    bad.insert(3, 'x');
    let e = call(
        2,
        "fx__ask_client",
        json!({"requestState": bad, "inputResponses": {}}),
    );
    assert_eq!(e["error"]["code"], -32602, "{e}");
    let e = call(
        3,
        "fx__echo",
        json!({"requestState": state, "inputResponses": {}}),
    );
    assert_eq!(e["error"]["code"], -32602, "{e}");

    let sampled = json!({"role": "assistant", "content": {"type": "text", "text": "from the client"},
                         "model": "m", "stopReason": "endTurn"});
    let done = call(
        4,
        "fx__ask_client",
        json!({"requestState": state, "inputResponses": {key.as_str(): sampled}}),
    );
    assert_eq!(done["id"], 4, "the retry's own id: {done}");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(
        done["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("from the client"),
        "{done}"
    );
    // Used once.
    let again = call(
        5,
        "fx__ask_client",
        json!({"requestState": state, "inputResponses": {}}),
    );
    assert_eq!(again["error"]["code"], -32602, "{again}");
}
