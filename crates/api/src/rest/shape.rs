//! The Node hub's "server object" and the other JSON shapes built from registry snapshots.

use bytes::Bytes;
use mcp_hub_registry::{ItemList, ServerSnapshot, ServerStatus};
use serde_json::{Map, Value, json};

use crate::body;

/// One server as `GET /api/servers` shows it: every field of the Node hub's `getServerInfo()`
/// in its order, then ours (`transport`, `pid`, `restarts`, `protocolVersion`, `instructions`,
/// `serverCapabilities`, `routing`, `calls`), which Node-hub clients ignore.
///
/// As JSON pieces: the server's lists are embedded as the text the registry keeps (shared, not
/// copied), so serving a catalogue of many thousand tools does not re-serialise it per call.
pub(crate) fn server_json(s: &ServerSnapshot) -> Vec<Bytes> {
    // Only a connected server's lists can be called; the Node hub also empties them on
    // disconnect, and stale lists would invite calls that can only fail.
    let connected = s.status == ServerStatus::Connected;
    let list = |l: &ItemList| -> Bytes {
        if connected && !l.is_empty() {
            Bytes::from_owner(l.clone())
        } else {
            Bytes::from_static(b"[]")
        }
    };
    let mut head = String::from("{");
    member(&mut head, "name", s.name.clone().into());
    member(&mut head, "displayName", s.display_name.clone().into());
    member(&mut head, "description", s.description.clone().into());
    member(&mut head, "transportType", s.transport_type.into());
    member(&mut head, "status", s.status.as_str().into());
    member(&mut head, "error", s.error.clone().into());
    head.push_str(",\"capabilities\":{\"tools\":");
    let mut tail = String::from("{");
    member(&mut tail, "uptime", s.uptime_secs().into());
    member(
        &mut tail,
        "lastStarted",
        s.last_started.map(body::iso_time).into(),
    );
    member(
        &mut tail,
        "authorizationUrl",
        s.authorization_url.clone().into(),
    );
    member(
        &mut tail,
        "serverInfo",
        s.server_info.clone().unwrap_or(Value::Null),
    );
    member(&mut tail, "config_source", s.config_source.clone().into());
    member(&mut tail, "transport", s.transport_in_use.into());
    member(&mut tail, "pid", s.pid.into());
    member(&mut tail, "restarts", s.restarts.into());
    member(
        &mut tail,
        "protocolVersion",
        s.protocol_version.clone().into(),
    );
    member(&mut tail, "instructions", s.instructions.clone().into());
    member(
        &mut tail,
        "serverCapabilities",
        s.capabilities
            .clone()
            .map(Value::Object)
            .unwrap_or(Value::Null),
    );
    let r = &s.routing;
    member(
        &mut tail,
        "routing",
        json!({
            "isolation": r.isolation,
            "instances": r.instances,
            "unattributedRequests": r.unattributed_requests,
            "unattributedLogs": r.unattributed_logs,
        }),
    );
    member(&mut tail, "calls", crate::metrics::calls_json(&s.calls));
    // `tail` starts with the `{` its members were written after: it becomes the `}` that ends
    // the capabilities and the `,` that continues the object.
    tail.replace_range(0..1, "},");
    tail.push('}');
    vec![
        Bytes::from(head),
        list(&s.tools),
        Bytes::from_static(b",\"resources\":"),
        list(&s.resources),
        Bytes::from_static(b",\"resourceTemplates\":"),
        list(&s.resource_templates),
        Bytes::from_static(b",\"prompts\":"),
        list(&s.prompts),
        Bytes::from(tail),
    ]
}

/// Appends `"key":value` to an object being written (`out` starts with its `{`).
fn member(out: &mut String, key: &str, v: Value) {
    if out.len() > 1 {
        out.push(',');
    }
    out.push_str(&Value::from(key).to_string());
    out.push(':');
    out.push_str(&v.to_string());
}

/// [`server_json`] as a value (a deep copy of the lists: for payloads built as values).
pub(crate) fn server_object(s: &ServerSnapshot) -> Value {
    let text: Vec<u8> = server_json(s).concat();
    serde_json::from_slice(&text).unwrap_or_else(|_| Value::Object(Map::new()))
}

/// `{"<key>": <each server object> … , "timestamp": …}` (or a single object with `many` false)
/// as JSON pieces, the lists shared rather than copied.
pub(crate) fn wrap_servers(key: &str, many: bool, servers: &[ServerSnapshot]) -> Vec<Bytes> {
    let mut out = vec![Bytes::from(format!(
        "{{{}:{}",
        Value::from(key),
        if many { "[" } else { "" }
    ))];
    for (i, s) in servers.iter().enumerate() {
        if i > 0 {
            out.push(Bytes::from_static(b","));
        }
        out.extend(server_json(s));
    }
    out.push(Bytes::from(format!(
        "{},\"timestamp\":{}}}",
        if many { "]" } else { "" },
        Value::from(body::now_iso())
    )));
    out
}

/// The names of the items of a list (tools, prompts), for `availableTools`/`availablePrompts`.
pub(crate) fn names(list: &ItemList) -> Vec<Value> {
    list.strings("name").map(Value::String).collect()
}

/// Whether a list (tools, prompts) has an item of that name.
pub(crate) fn has_name(list: &ItemList, name: &str) -> bool {
    list.strings("name").any(|n| n == name)
}

/// Characters that must not reach an HTML page verbatim.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;

    fn snapshot(status: ServerStatus) -> ServerSnapshot {
        ServerSnapshot {
            name: "everything".into(),
            display_name: "Everything".into(),
            description: "d".into(),
            transport_type: "stdio",
            transport_in_use: Some("stdio"),
            status,
            error: None,
            tools: ItemList::from_values(&[
                json!({"name": "echo", "inputSchema": {"type": "object"}}),
            ]),
            resources: ItemList::from_values(&[json!({"uri": "test://a", "name": "a"})]),
            resource_templates: ItemList::default(),
            prompts: ItemList::from_values(&[json!({"name": "p"})]),
            last_started: Some(UNIX_EPOCH + Duration::from_millis(1_764_000_000_123)),
            connected_at: Some(std::time::Instant::now()),
            authorization_url: None,
            server_info: Some(json!({"name": "fx", "version": "1"})),
            instructions: Some("use me".into()),
            capabilities: Some(Map::new()),
            protocol_version: Some("2025-11-25".into()),
            config_source: Some("./config.json".into()),
            pid: Some(42),
            restarts: 1,
            routing: Default::default(),
            calls: Default::default(),
        }
    }

    #[test]
    fn server_object_has_the_node_fields_in_order_then_ours() {
        let v = server_object(&snapshot(ServerStatus::Connected));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "name",
                "displayName",
                "description",
                "transportType",
                "status",
                "error",
                "capabilities",
                "uptime",
                "lastStarted",
                "authorizationUrl",
                "serverInfo",
                "config_source",
                "transport",
                "pid",
                "restarts",
                "protocolVersion",
                "instructions",
                "serverCapabilities",
                "routing",
                "calls"
            ]
        );
        assert_eq!(v["status"], "connected");
        assert_eq!(v["lastStarted"], "2025-11-24T16:00:00.123Z");
        assert_eq!(v["capabilities"]["tools"][0]["name"], "echo");
        assert_eq!(
            v["capabilities"]["tools"][0]["inputSchema"]["type"],
            "object"
        );
        assert_eq!(v["capabilities"]["resourceTemplates"], json!([]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["config_source"], "./config.json");
    }

    #[test]
    fn the_servers_payload_is_valid_json_with_the_lists_embedded() {
        let list = [
            snapshot(ServerStatus::Connected),
            snapshot(ServerStatus::Disconnected),
        ];
        let v: Value = serde_json::from_slice(&wrap_servers("servers", true, &list).concat())
            .expect("valid JSON");
        assert_eq!(v["servers"][0], server_object(&list[0]));
        assert_eq!(v["servers"][1]["capabilities"]["tools"], json!([]));
        assert!(v["timestamp"].is_string());
        let one: Value =
            serde_json::from_slice(&wrap_servers("server", false, &list[..1]).concat())
                .expect("valid JSON");
        assert_eq!(one["server"]["name"], "everything");
        assert!(has_name(&list[0].tools, "echo"));
        assert_eq!(names(&list[0].prompts), [json!("p")]);
    }

    #[test]
    fn lists_are_empty_unless_connected() {
        let v = server_object(&snapshot(ServerStatus::Disconnected));
        assert_eq!(v["capabilities"]["tools"], json!([]));
        assert_eq!(v["capabilities"]["prompts"], json!([]));
        assert_eq!(v["uptime"], 0);
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
