//! Where variables come from: an injected [`EnvSource`], so that resolution is testable without
//! touching the real process environment.

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use serde_json::Value;

use crate::ConfigError;

/// A read-only view of an environment: the hub's own process environment in production, a map in
/// tests.
///
/// Used for `${VAR}` / `${env:VAR}` lookups, for `null` env values, for the safe list of variables
/// every stdio child inherits, and (through [`hub_env_from`]) for `MCP_HUB_ENV`.
pub trait EnvSource {
    /// The value of `name`, or `None` when it is not set (or not valid Unicode).
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment (`std::env::var_os`).
///
/// Variables whose value is not valid Unicode are treated as unset.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        // `var_os` panics on names containing `=` or NUL; such names can never be set anyway.
        if name.is_empty() || name.contains(['=', '\0']) {
            return None;
        }
        std::env::var_os(name).and_then(|v| v.into_string().ok())
    }
}

/// An environment held in a map; the usual choice in tests.
///
/// ```
/// use mcp_hub_config::{EnvSource, MapEnv};
///
/// let env = MapEnv::from_iter([("HOME", "/home/ada"), ("TOKEN", "t0k3n")]);
/// assert_eq!(env.var("HOME").as_deref(), Some("/home/ada"));
/// assert_eq!(env.var("MISSING"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapEnv(pub IndexMap<String, String>);

impl MapEnv {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(name.into(), value.into());
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        MapEnv(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl EnvSource for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<T: EnvSource + ?Sized> EnvSource for &T {
    fn var(&self, name: &str) -> Option<String> {
        (**self).var(name)
    }
}

/// The name of the variable that carries hub-wide environment for every server.
pub const MCP_HUB_ENV: &str = "MCP_HUB_ENV";

/// Parses the text of `MCP_HUB_ENV`: a JSON object whose pairs are injected into every server's
/// environment and are visible to placeholders (VS Code inputs travel here as `"input:<id>"` keys).
///
/// String values are kept, numbers and booleans are turned into their JSON text, `null` values are
/// dropped. Anything else (not an object, nested objects or arrays) is an error; the Node hub logs
/// a warning and ignores the whole variable in that case, which a caller can do too.
///
/// ```
/// use mcp_hub_config::parse_hub_env;
///
/// let env = parse_hub_env(r#"{"TOKEN": "abc", "PORT": 8080, "input:api-key": "k"}"#).unwrap();
/// assert_eq!(env["PORT"], "8080");
/// assert_eq!(env["input:api-key"], "k");
/// assert!(parse_hub_env("[1, 2]").is_err());
/// ```
pub fn parse_hub_env(text: &str) -> Result<IndexMap<String, String>, ConfigError> {
    // serde_json's messages carry a position, never the offending text, so they are safe to show.
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::HubEnv(format!("not valid JSON ({e})")))?;
    let Value::Object(map) = value else {
        return Err(ConfigError::HubEnv("must be a JSON object".into()));
    };
    let mut out = IndexMap::with_capacity(map.len());
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            Value::Array(_) | Value::Object(_) => {
                return Err(ConfigError::HubEnv(format!(
                    "the value of '{key}' must be a string, number or boolean"
                )));
            }
        };
        out.insert(key, text);
    }
    Ok(out)
}

/// Reads and parses [`MCP_HUB_ENV`] from `env`; an unset or empty variable gives an empty map.
pub fn hub_env_from(env: &dyn EnvSource) -> Result<IndexMap<String, String>, ConfigError> {
    match env.var(MCP_HUB_ENV) {
        Some(text) if !text.trim().is_empty() => parse_hub_env(&text),
        _ => Ok(IndexMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_env_shapes() {
        let env = parse_hub_env(r#"{"S": "s", "N": 1.5, "B": false, "Z": null}"#).unwrap();
        assert_eq!(
            env.into_iter().collect::<Vec<_>>(),
            [
                ("S".to_owned(), "s".to_owned()),
                ("N".into(), "1.5".into()),
                ("B".into(), "false".into()),
            ]
        );
        let err = parse_hub_env(r#"{"NESTED": {"secret": "v"}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MCP_HUB_ENV: the value of 'NESTED' must be a string, number or boolean"
        );
        assert!(parse_hub_env("\"str\"").is_err());
        assert!(parse_hub_env("{oops").is_err());
    }

    #[test]
    fn hub_env_from_an_environment() {
        assert!(hub_env_from(&MapEnv::new()).unwrap().is_empty());
        assert!(
            hub_env_from(&MapEnv::from_iter([(MCP_HUB_ENV, "  ")]))
                .unwrap()
                .is_empty()
        );
        let env = MapEnv::from_iter([(MCP_HUB_ENV, r#"{"A": "1"}"#)]);
        assert_eq!(hub_env_from(&env).unwrap()["A"], "1");
    }

    #[test]
    fn process_env_never_panics_on_odd_names() {
        for name in ["", "A=B", "NUL\0"] {
            assert_eq!(ProcessEnv.var(name), None);
        }
    }
}
