//! Where the hub's config comes from: a layer given in code (the builder's `Config` and strings,
//! and servers added at run time) under the layer read from the config files, merged by the
//! config crate's rule (a file's server replaces a code server of the same name entirely).
//! Keeping the layers apart is what lets a reload re-read the files without losing what the
//! embedding program configured, and tells which servers a file backs.

use std::path::{Path, PathBuf};

use mcp_hub_config::{Config, ConfigError, ServerConfig};
use serde_json::{Value, json};

/// The `config_source` of servers given as text or added at run time: they have no file.
pub const CODE_SOURCE: &str = "<code>";

/// Configuration given in code, in the order the builder received it.
#[derive(Debug, Clone)]
pub(crate) enum CodeConfig {
    Config(Box<Config>),
    Text(String),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Layers {
    pub(crate) code: Config,
    pub(crate) files: Config,
}

impl Layers {
    /// What the hub runs: the code layer, then the files over it.
    pub(crate) fn merged(&self) -> Config {
        let mut out = self.code.clone();
        for (name, sc) in &self.files.servers {
            out.servers.insert(name.clone(), sc.clone());
        }
        // Profiles merge like servers: by name, files over code.
        for (name, p) in &self.files.profiles {
            out.profiles.insert(name.clone(), p.clone());
        }
        out.extra
            .extend(self.files.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.inputs.extend(
            self.files
                .inputs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        out.files = self.files.files.clone();
        out.skipped = self.files.skipped.clone();
        out.warnings.extend(self.files.warnings.iter().cloned());
        out
    }

    /// Whether a config file defines `name` (then run-time changes are written to it).
    pub(crate) fn file_of(&self, name: &str) -> Option<PathBuf> {
        self.files.server(name).map(|sc| sc.config_source.clone())
    }
}

/// Builds the code layer from what the builder was given, merged in order.
pub(crate) fn code_layer(parts: &[CodeConfig]) -> Result<Config, ConfigError> {
    let mut out = Config::default();
    for part in parts {
        let next = match part {
            CodeConfig::Config(c) => (**c).clone(),
            CodeConfig::Text(text) => {
                mcp_hub_config::load_from_strs([(CODE_SOURCE, text.as_str())])?
            }
        };
        for (name, sc) in next.servers {
            out.servers.insert(name, sc);
        }
        for (name, p) in next.profiles {
            out.profiles.insert(name, p);
        }
        out.extra.extend(next.extra);
        out.inputs.extend(next.inputs);
        out.warnings.extend(next.warnings);
    }
    out.files.clear();
    Ok(out)
}

/// One server entry (the JSON a config file would hold under `mcpServers`), validated exactly
/// as a file's entry is, with `source` as its `config_source`.
pub(crate) fn parse_entry(
    name: &str,
    entry: &Value,
    source: &Path,
) -> Result<ServerConfig, ConfigError> {
    let mut entry = entry.clone();
    if let Some(m) = entry.as_object_mut() {
        m.remove("config_source");
    }
    let text = json!({ "mcpServers": { name: entry } }).to_string();
    let mut config = mcp_hub_config::load_from_strs([(source, text.as_str())])?;
    for w in &config.warnings {
        tracing::warn!(target: "mcp_hub::config", "{w}");
    }
    config
        .servers
        .shift_remove(name)
        .ok_or_else(|| ConfigError::ServerNotInFile {
            path: source.to_path_buf(),
            server: name.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_override_code_and_keep_code_servers() {
        let code = code_layer(&[
            CodeConfig::Text(r#"{mcpServers: {a: {command: "x"}, b: {command: "y"}}}"#.into()),
            CodeConfig::Config(Box::new(
                mcp_hub_config::load_from_strs([(
                    "c.json",
                    r#"{"mcpServers": {"c": {"url": "https://h/mcp"}}}"#,
                )])
                .unwrap(),
            )),
        ])
        .unwrap();
        let files = mcp_hub_config::load_from_strs([(
            "/etc/f.json",
            r#"{"mcpServers": {"b": {"command": "z"}}}"#,
        )])
        .unwrap();
        let layers = Layers { code, files };
        let merged = layers.merged();
        let names: Vec<_> = merged.server_names().collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(matches!(&merged.server("b").unwrap().kind,
            mcp_hub_config::ServerKind::Stdio { command, .. } if command == "z"));
        assert_eq!(
            merged.server("a").unwrap().config_source,
            Path::new(CODE_SOURCE)
        );
        assert_eq!(
            layers.file_of("b").as_deref(),
            Some(Path::new("/etc/f.json"))
        );
        assert_eq!(layers.file_of("a"), None);
    }

    #[test]
    fn an_entry_is_validated_like_a_file_entry() {
        let bad = json!({"command": 3, "url": "x"});
        let err = parse_entry("s", &bad, Path::new(CODE_SOURCE)).unwrap_err();
        assert_eq!(err.server(), Some("s"));
        assert!(parse_entry("s", &json!("npx"), Path::new(CODE_SOURCE)).is_err());
        let good = json!({"command": "x", "args": ["a"], "config_source": "/ignored"});
        let sc = parse_entry("s", &good, Path::new("/f.json")).unwrap();
        assert_eq!(sc.config_source, Path::new("/f.json"));
    }

    /// Profiles are part of both layers: a hub configured in code with files on top serves the
    /// profiles of both (a merge that knew only servers once dropped them all).
    #[test]
    fn profiles_of_code_and_files_both_survive_the_merge() {
        let code = code_layer(&[CodeConfig::Text(
            r#"{mcpServers: {a: {command: "x"}}, profiles: {dev: {servers: ["a"]}, ops: {servers: ["a"]}}}"#
                .into(),
        )])
        .unwrap();
        let files = mcp_hub_config::load_from_strs([(
            "/etc/f.json",
            r#"{"mcpServers": {"b": {"command": "z"}}, "profiles": {"ops": {"servers": ["b"]}}}"#,
        )])
        .unwrap();
        let merged = Layers { code, files }.merged();
        let names: Vec<_> = merged.profiles.keys().map(String::as_str).collect();
        assert_eq!(names, ["dev", "ops"]);
        let ops: Vec<_> = merged.profiles["ops"]
            .servers
            .iter()
            .map(|s| s.pattern.as_str())
            .collect();
        assert_eq!(
            ops,
            ["b"],
            "the file's profile replaces the code's of the same name"
        );
    }
}
