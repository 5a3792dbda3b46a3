//! The Node hub's "server object" and the other JSON shapes built from registry snapshots.

use mcp_hub_registry::{ServerSnapshot, ServerStatus};
use serde_json::{Map, Value, json};

use crate::body;

/// One server as `GET /api/servers` shows it: every field of the Node hub's `getServerInfo()`
/// in its order, then ours (`transport`, `pid`, `restarts`, `protocolVersion`, `instructions`,
/// `serverCapabilities`, `routing`), which Node-hub clients ignore.
pub(crate) fn server_object(s: &ServerSnapshot) -> Value {
    // Only a connected server's lists can be called; the Node hub also empties them on
    // disconnect, and stale lists would invite calls that can only fail.
    let connected = s.status == ServerStatus::Connected;
    let list = |l: &[Value]| {
        if connected {
            Value::Array(l.to_vec())
        } else {
            Value::Array(Vec::new())
        }
    };
    let mut o = Map::new();
    o.insert("name".into(), s.name.clone().into());
    o.insert("displayName".into(), s.display_name.clone().into());
    o.insert("description".into(), s.description.clone().into());
    o.insert("transportType".into(), s.transport_type.into());
    o.insert("status".into(), s.status.as_str().into());
    o.insert("error".into(), s.error.clone().into());
    o.insert(
        "capabilities".into(),
        json!({
            "tools": list(&s.tools),
            "resources": list(&s.resources),
            "resourceTemplates": list(&s.resource_templates),
            "prompts": list(&s.prompts),
        }),
    );
    o.insert("uptime".into(), s.uptime_secs().into());
    o.insert(
        "lastStarted".into(),
        s.last_started.map(body::iso_time).into(),
    );
    o.insert(
        "authorizationUrl".into(),
        s.authorization_url.clone().into(),
    );
    o.insert(
        "serverInfo".into(),
        s.server_info.clone().unwrap_or(Value::Null),
    );
    o.insert("config_source".into(), s.config_source.clone().into());
    o.insert("transport".into(), s.transport_in_use.into());
    o.insert("pid".into(), s.pid.into());
    o.insert("restarts".into(), s.restarts.into());
    o.insert("protocolVersion".into(), s.protocol_version.clone().into());
    o.insert("instructions".into(), s.instructions.clone().into());
    o.insert(
        "serverCapabilities".into(),
        s.capabilities
            .clone()
            .map(Value::Object)
            .unwrap_or(Value::Null),
    );
    let r = &s.routing;
    o.insert(
        "routing".into(),
        json!({
            "isolation": r.isolation,
            "instances": r.instances,
            "unattributedRequests": r.unattributed_requests,
            "unattributedLogs": r.unattributed_logs,
        }),
    );
    Value::Object(o)
}

/// The names of the items of a list (tools, prompts), for `availableTools`/`availablePrompts`.
pub(crate) fn names(list: &[Value]) -> Vec<Value> {
    list.iter().filter_map(|t| t.get("name").cloned()).collect()
}

/// Whether a list (tools, prompts) has an item of that name.
pub(crate) fn has_name(list: &[Value], name: &str) -> bool {
    list.iter()
        .any(|t| t.get("name").and_then(Value::as_str) == Some(name))
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
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

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
            tools: Arc::new(vec![
                json!({"name": "echo", "inputSchema": {"type": "object"}}),
            ]),
            resources: Arc::new(vec![json!({"uri": "test://a", "name": "a"})]),
            resource_templates: Arc::new(Vec::new()),
            prompts: Arc::new(vec![json!({"name": "p"})]),
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
                "routing"
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
