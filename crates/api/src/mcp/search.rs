//! The search mode of a profile: instead of every tool, `tools/list` offers two hub tools.
//! `search_tools` ranks the profile's tools for a query (BM25 in the registry's view) and
//! returns the best ones with their full schemas; `call_tool` calls one of them by name. The
//! gate (`profile`) turns `call_tool` into the direct call it stands for before routing, so
//! progress, cancellation and server-to-client requests behave exactly as for a direct call.

use mcp_hub_protocol::{ErrorCode, ErrorObject, RawValue};
use mcp_hub_registry::View;
use serde_json::{Map, Value, json};

use super::dispatch::{err, raw};

pub(crate) const SEARCH_TOOLS: &str = "search_tools";
pub(crate) const CALL_TOOL: &str = "call_tool";

/// Results when the query does not say how many.
const DEFAULT_LIMIT: usize = 5;
/// The most results one search returns (their schemas are what the model reads).
const MAX_LIMIT: usize = 20;

/// The `initialize` instructions of a search profile.
pub(crate) const INSTRUCTIONS: &str = "This endpoint lists only two tools. Call search_tools with \
a few words about what you want to do to find the right tools (it returns their input schemas), \
then call_tool with one of their names and its arguments.";

/// What a search-mode `tools/list` lists, as a JSON array.
pub(crate) const HUB_TOOLS: &str = r#"[{"name":"search_tools","title":"Search tools","description":"Finds the tools that can do what you describe. Returns the best matches with their full input schemas; call one with call_tool.","inputSchema":{"type":"object","properties":{"query":{"type":"string","description":"What you want to do, in a few words"},"limit":{"type":"integer","minimum":1,"maximum":20,"description":"How many tools to return (default 5)"}},"required":["query"]}},{"name":"call_tool","title":"Call a tool","description":"Calls a tool found with search_tools, by its exact name, with arguments that follow its input schema.","inputSchema":{"type":"object","properties":{"name":{"type":"string","description":"The tool's name as search_tools returned it"},"arguments":{"type":"object","description":"The tool's arguments"}},"required":["name"]}}]"#;

/// Answers `search_tools`: a tool result whose text (and `structuredContent`) holds the best
/// matching tools, whole.
pub(crate) fn search_tools(
    view: &View,
    params: &Map<String, Value>,
) -> Result<Box<RawValue>, ErrorObject> {
    let args = params
        .get("arguments")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let Some(query) = args.get("query").and_then(Value::as_str) else {
        return Err(err(
            ErrorCode::INVALID_PARAMS,
            "Invalid params: search_tools needs a `query` string",
        ));
    };
    let limit = args
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_LIMIT, |n| usize::try_from(n).unwrap_or(MAX_LIMIT))
        .clamp(1, MAX_LIMIT);
    let tools: Vec<Value> = view
        .search(query, limit)
        .into_iter()
        .map(|e| e.item())
        .collect();
    let text = if tools.is_empty() {
        "No tool matches that query. Try other words.".to_owned()
    } else {
        serde_json::to_string(&tools).unwrap_or_default()
    };
    Ok(raw(&json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": {"tools": tools},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_tools_are_valid_and_small() {
        let v: Vec<Value> = serde_json::from_str(HUB_TOOLS).unwrap();
        let names: Vec<&str> = v.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, [SEARCH_TOOLS, CALL_TOOL]);
        assert!(HUB_TOOLS.len() < 4096);
    }
}
