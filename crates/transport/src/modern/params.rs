//! `x-mcp-header` (SEP-2243): a tool's input property annotated with a header name is mirrored
//! into `Mcp-Param-<Name>` on every call of that tool, so intermediaries can route on it without
//! reading the body. The wire learns the annotations from `tools/list` results as they pass; a
//! tool whose annotations are invalid is dropped from the list, as the spec requires of clients.

use std::collections::HashMap;

use mcp_hub_protocol::RawValue;
use serde_json::Value;

/// Header name and property path of each annotated input property, by tool name.
pub(crate) type Annotations = HashMap<String, Vec<(String, Vec<String>)>>;

/// Bound of the remembered tools (a server listing more is still served; the excess is not
/// mirrored).
const MAX_TOOLS: usize = 10_000;

/// Reads a `tools/list` result: the annotations of its valid tools go into `known`; the result
/// comes back without the tools whose annotations are invalid (unchanged when there are none).
pub(crate) fn learn(result: &RawValue, known: &mut Annotations) -> Option<Box<RawValue>> {
    if !result.get().contains("x-mcp-header") {
        return None;
    }
    let mut v: Value = serde_json::from_str(result.get()).ok()?;
    let tools = v.get_mut("tools")?.as_array_mut()?;
    let before = tools.len();
    tools.retain(|tool| {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return true;
        };
        let mut found = Vec::new();
        if !walk(tool.get("inputSchema"), &mut Vec::new(), &mut found) {
            tracing::debug!(tool = name, "dropping a tool with an invalid x-mcp-header");
            return false;
        }
        let mut seen = std::collections::HashSet::new();
        if !found
            .iter()
            .all(|(h, _)| seen.insert(h.to_ascii_lowercase()))
        {
            tracing::debug!(tool = name, "dropping a tool with a duplicate x-mcp-header");
            return false;
        }
        if !found.is_empty() && known.len() < MAX_TOOLS {
            known.insert(name.to_owned(), found);
        }
        true
    });
    if tools.len() == before {
        return None;
    }
    mcp_hub_protocol::to_raw(&v).ok()
}

/// Collects the annotations under `schema`; false when one is invalid.
fn walk(
    schema: Option<&Value>,
    path: &mut Vec<String>,
    found: &mut Vec<(String, Vec<String>)>,
) -> bool {
    let Some(props) = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return true;
    };
    for (key, prop) in props {
        path.push(key.clone());
        if let Some(h) = prop.get("x-mcp-header") {
            let ty = prop.get("type").and_then(Value::as_str);
            let valid = h.as_str().is_some_and(valid_name)
                && matches!(ty, Some("string" | "integer" | "boolean"));
            if !valid {
                return false;
            }
            found.push((h.as_str().unwrap_or_default().to_owned(), path.clone()));
        }
        if !walk(Some(prop), path, found) {
            return false;
        }
        path.pop();
    }
    true
}

/// A header-name token: visible ASCII without separators.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The `Mcp-Param-*` headers of a `tools/call` with `params`.
pub(crate) fn headers(params: &Value, known: &Annotations) -> Vec<(String, String)> {
    let Some(list) = params
        .get("name")
        .and_then(Value::as_str)
        .and_then(|n| known.get(n))
    else {
        return Vec::new();
    };
    let args = params.get("arguments");
    list.iter()
        .filter_map(|(header, path)| {
            let value = path.iter().try_fold(args?, |v, k| v.get(k))?;
            let text = match value {
                Value::String(s) => mcp_hub_protocol::modern::encode_header_value(s),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((format!("mcp-param-{}", header.to_ascii_lowercase()), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn annotated_properties_are_mirrored_and_invalid_tools_dropped() {
        let list = json!({"tools": [
            {"name": "ok", "inputSchema": {"type": "object", "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "n": {"type": "integer", "x-mcp-header": "N"},
                "inner": {"type": "object", "properties": {"flag": {"type": "boolean", "x-mcp-header": "Flag"}}},
                "plain": {"type": "number"}}}},
            {"name": "bad_type", "inputSchema": {"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}},
            {"name": "bad_name", "inputSchema": {"properties": {"a": {"type": "string", "x-mcp-header": "A B"}}}},
            {"name": "dup", "inputSchema": {"properties": {
                "a": {"type": "string", "x-mcp-header": "X"}, "b": {"type": "string", "x-mcp-header": "x"}}}},
            {"name": "none", "inputSchema": {"type": "object"}}
        ]});
        let raw = mcp_hub_protocol::to_raw(&list).unwrap();
        let mut known = Annotations::new();
        let kept: Value = serde_json::from_str(learn(&raw, &mut known).unwrap().get()).unwrap();
        let names: Vec<&str> = kept["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ok", "none"]);
        let h = headers(
            &json!({"name": "ok", "arguments": {"region": " é ", "n": 3, "inner": {"flag": true}, "plain": 1.5}}),
            &known,
        );
        assert_eq!(
            h,
            [
                (
                    "mcp-param-region".to_owned(),
                    "=?base64?IMOpIA==?=".to_owned()
                ),
                ("mcp-param-n".to_owned(), "3".to_owned()),
                ("mcp-param-flag".to_owned(), "true".to_owned()),
            ]
        );
        assert!(
            headers(
                &json!({"name": "ok", "arguments": {"region": null}}),
                &known
            )
            .is_empty()
        );
    }
}
