//! Recognising MCP hubs among the upstreams, so that a hub listed in its own configuration is
//! refused rather than served to itself in a loop.

use mcp_hub_protocol::types::InitializeResult;
use serde_json::Value;

/// The `_meta` key under which a hub's own MCP endpoint announces its instance identity in the
/// `initialize` result (a random string per process).
pub const HUB_INSTANCE_META_KEY: &str = "io.github.mcp-hub-rs/hub-instance";

/// `serverInfo.name` of the hubs' MCP endpoints: this hub's, and the Node `mcp-hub`'s (which
/// uses it to recognise, and skip, an upstream that is a hub).
pub const HUB_SERVER_NAMES: [&str; 2] = ["mcp-hub", "mcp-hub-internal-endpoint"];

/// Whether an upstream's `initialize` result comes from an MCP hub (this one, another instance,
/// or a Node `mcp-hub`).
pub fn is_hub(init: &InitializeResult) -> bool {
    HUB_SERVER_NAMES.contains(&init.server_info.name.as_str())
}

/// Whether an upstream's `initialize` result comes from the hub whose instance identity is
/// `instance`, i.e. the hub is talking to itself.
pub fn is_this_hub(init: &InitializeResult, instance: &str) -> bool {
    !instance.is_empty()
        && is_hub(init)
        && init
            .extra
            .get("_meta")
            .and_then(|m| m.get(HUB_INSTANCE_META_KEY))
            .and_then(Value::as_str)
            == Some(instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(v: Value) -> InitializeResult {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn recognises_both_hubs_and_itself_by_instance() {
        let node = init(
            serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
            "serverInfo": {"name": "mcp-hub-internal-endpoint", "version": "1.0.0"}}),
        );
        assert!(is_hub(&node));
        assert!(!is_this_hub(&node, "abc"));
        let me = init(
            serde_json::json!({"protocolVersion": "2025-11-25", "capabilities": {},
            "serverInfo": {"name": "mcp-hub", "version": "0.1.0"},
            "_meta": {HUB_INSTANCE_META_KEY: "abc"}}),
        );
        assert!(is_hub(&me));
        assert!(is_this_hub(&me, "abc"));
        assert!(!is_this_hub(&me, "another"));
        assert!(!is_this_hub(&me, ""));
        let other = init(
            serde_json::json!({"protocolVersion": "2025-11-25", "capabilities": {},
            "serverInfo": {"name": "everything", "version": "1"},
            "_meta": {HUB_INSTANCE_META_KEY: "abc"}}),
        );
        assert!(!is_hub(&other));
        assert!(!is_this_hub(&other, "abc"), "only a hub can be this hub");
    }
}
