//! What clients may see: a server's `tools` filter and the top-level `profiles`.
//!
//! Both are validated here (patterns compile, names are usable in a URL path) so that a typo is
//! a load error with a file and line, never a filter that silently hides nothing. Matching
//! itself belongs to the registry; the patterns are kept as written.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::locate::FieldPath;

/// A server's (or a profile's) `tools` block: which upstream tool names are exposed.
///
/// A tool is exposed when `include` is empty or one of its patterns matches the tool's upstream
/// name, and no `exclude` pattern matches it. Patterns are globs (`*`, `?`, `[abc]`, `{a,b}`),
/// matched against the whole name, case-sensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolFilter {
    /// `include`: exposed names (all when empty).
    pub include: Vec<String>,
    /// `exclude`: hidden names, even when included.
    pub exclude: Vec<String>,
}

impl ToolFilter {
    /// Whether the filter lets every tool through.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// How a profile presents its tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProfileMode {
    /// `"full"` (the default): `tools/list` lists every tool the profile shows.
    #[default]
    Full,
    /// `"search"`: `tools/list` lists only the hub's `search_tools` and `call_tool`; the
    /// profile's tools are found with `search_tools` and called through `call_tool`.
    Search,
}

impl ProfileMode {
    /// `"full"` or `"search"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileMode::Full => "full",
            ProfileMode::Search => "search",
        }
    }
}

/// One entry of a profile's `servers`: a server name or glob, and the tools of those servers the
/// profile shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileServers {
    /// A server name, or a glob over server names (`"jira-*"`).
    pub pattern: String,
    /// Which of their tools (after the server's own `tools` filter) the profile shows.
    pub tools: ToolFilter,
}

/// A profile (`profiles.<name>`): a view of some servers and some of their tools, served at
/// `/mcp/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileConfig {
    /// Its key in `profiles`: letters, digits, `-` and `_`.
    pub name: String,
    /// Free text, shown by `GET /api/profiles` and the console.
    pub description: Option<String>,
    /// The servers it includes, in order. A server matched by several entries takes the first.
    pub servers: Vec<ProfileServers>,
    /// Full listing or search.
    pub mode: ProfileMode,
    /// The file that (last) defined it.
    pub config_source: PathBuf,
    /// The entry as written.
    pub raw: Value,
}

/// Whether a pattern has glob syntax (else it is a plain name).
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

type EntryError = (FieldPath, String);

fn check_glob(pattern: &str, at: FieldPath) -> Result<(), EntryError> {
    if pattern.is_empty() {
        return Err((at, "must be a non-empty pattern".into()));
    }
    globset::Glob::new(pattern)
        .map(|_| ())
        .map_err(|e| (at, format!("invalid glob pattern: {}", e.kind())))
}

fn patterns(v: Option<&Value>, at: FieldPath) -> Result<Vec<String>, EntryError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => check_glob(s, at.index(i)).map(|()| s.clone()),
                _ => Err((at.index(i), "must be a string (a tool name or glob)".into())),
            })
            .collect(),
        Some(_) => Err((at, "must be an array of tool names or globs".into())),
    }
}

/// Parses a `tools` block found at `at`.
pub(crate) fn parse_tool_filter(
    v: Option<&Value>,
    at: FieldPath,
) -> Result<ToolFilter, EntryError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(ToolFilter::default()),
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            return Err((
                at,
                "must be an object with `include` and/or `exclude`".into(),
            ));
        }
    };
    if let Some(k) = obj.keys().find(|k| *k != "include" && *k != "exclude") {
        return Err((
            at.child(k),
            "unknown key (expected include, exclude)".into(),
        ));
    }
    Ok(ToolFilter {
        include: patterns(obj.get("include"), at.child("include"))?,
        exclude: patterns(obj.get("exclude"), at.child("exclude"))?,
    })
}

/// Whether `name` can be a path segment of `/mcp/<name>`.
fn valid_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Validates one profile entry.
pub(crate) fn parse_profile(
    name: &str,
    entry: &Value,
    source: &Path,
) -> Result<ProfileConfig, EntryError> {
    let whole = FieldPath::default();
    if !valid_profile_name(name) {
        return Err((
            whole,
            "profile names must be 1 to 64 letters, digits, `-` or `_` (they are URL paths)".into(),
        ));
    }
    let Value::Object(obj) = entry else {
        return Err((whole, "must be an object".into()));
    };
    const KEYS: &[&str] = &["description", "servers", "mode"];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err((
            FieldPath::key(k),
            format!("unknown key (expected one of {})", KEYS.join(", ")),
        ));
    }
    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err((FieldPath::key("description"), "must be a string".into())),
    };
    let mode = match obj.get("mode") {
        None | Some(Value::Null) => ProfileMode::Full,
        Some(Value::String(s)) if s == "full" => ProfileMode::Full,
        Some(Value::String(s)) if s == "search" => ProfileMode::Search,
        Some(_) => {
            return Err((
                FieldPath::key("mode"),
                "must be \"full\" or \"search\"".into(),
            ));
        }
    };
    let at = FieldPath::key("servers");
    let servers = match obj.get("servers") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => check_glob(s, at.index(i)).map(|()| ProfileServers {
                    pattern: s.clone(),
                    tools: ToolFilter::default(),
                }),
                _ => Err((at.index(i), "must be a server name or glob".into())),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Object(map)) => map
            .iter()
            .map(|(pattern, v)| parse_profile_server(pattern, v, at.child(pattern)))
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => {
            return Err((
                at,
                "is required: an array of server names or globs, or an object of them".into(),
            ));
        }
        Some(_) => {
            return Err((
                at,
                "must be an array of server names or globs, or an object of them".into(),
            ));
        }
    };
    Ok(ProfileConfig {
        name: name.to_owned(),
        description,
        servers,
        mode,
        config_source: source.to_path_buf(),
        raw: entry.clone(),
    })
}

fn parse_profile_server(
    pattern: &str,
    v: &Value,
    at: FieldPath,
) -> Result<ProfileServers, EntryError> {
    check_glob(pattern, at.clone())?;
    let tools = match v {
        Value::Null | Value::Bool(true) => ToolFilter::default(),
        Value::Object(obj) => {
            if let Some(k) = obj.keys().find(|k| *k != "tools") {
                return Err((at.child(k), "unknown key (expected tools)".into()));
            }
            parse_tool_filter(obj.get("tools"), at.child("tools"))?
        }
        _ => {
            return Err((
                at,
                "must be an object (`{tools: {...}}`), true or null".into(),
            ));
        }
    };
    Ok(ProfileServers {
        pattern: pattern.to_owned(),
        tools,
    })
}

/// The merged `profiles` of several files, as one JSON object (for [`Config::to_json`]).
///
/// [`Config::to_json`]: crate::Config::to_json
pub(crate) fn profiles_json(profiles: &IndexMap<String, ProfileConfig>) -> Value {
    Value::Object(
        profiles
            .iter()
            .map(|(k, p)| (k.clone(), p.raw.clone()))
            .collect::<Map<String, Value>>(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn filters_validate_their_patterns() {
        let at = FieldPath::key("tools");
        let f =
            parse_tool_filter(Some(&json!({"include": ["get_*", "echo"]})), at.clone()).unwrap();
        assert_eq!(f.include, ["get_*", "echo"]);
        let (path, msg) =
            parse_tool_filter(Some(&json!({"include": ["a[b"]})), at.clone()).unwrap_err();
        assert_eq!(path.to_string(), "tools.include[0]");
        assert!(msg.contains("invalid glob"), "{msg}");
        let (path, _) = parse_tool_filter(Some(&json!({"inclde": []})), at.clone()).unwrap_err();
        assert_eq!(path.to_string(), "tools.inclde");
        let (path, _) = parse_tool_filter(Some(&json!({"exclude": "x"})), at).unwrap_err();
        assert_eq!(path.to_string(), "tools.exclude");
    }

    #[test]
    fn profiles_take_lists_or_objects() {
        let p = parse_profile("dev", &json!({"servers": ["a", "b-*"]}), Path::new("f")).unwrap();
        assert_eq!(p.servers.len(), 2);
        assert_eq!(p.mode, ProfileMode::Full);
        let p = parse_profile(
            "dev",
            &json!({"mode": "search", "servers": {"a": {"tools": {"exclude": ["x"]}}, "b": null}}),
            Path::new("f"),
        )
        .unwrap();
        assert_eq!(p.mode, ProfileMode::Search);
        assert_eq!(p.servers[0].tools.exclude, ["x"]);
        assert!(p.servers[1].tools.is_empty());
        assert!(parse_profile("a/b", &json!({"servers": []}), Path::new("f")).is_err());
        let (path, _) = parse_profile("x", &json!({"mode": "fast", "servers": []}), Path::new("f"))
            .unwrap_err();
        assert_eq!(path.to_string(), "mode");
        let (path, _) = parse_profile("x", &json!({}), Path::new("f")).unwrap_err();
        assert_eq!(path.to_string(), "servers");
    }
}
