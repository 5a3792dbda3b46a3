//! Stage 1: reading files, parsing JSON/JSON5, merging them in order and validating entries.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::ConfigError;
use crate::locate::{FieldPath, Seg, line_of};
use crate::server::{ConfigWarning, ServerConfig, parse_server};
use crate::views::{ProfileConfig, parse_profile};

/// The merged configuration of one or more files, validated but not resolved.
///
/// Build it with [`load`] (files) or [`load_from_strs`] (text you already have); resolve servers
/// with [`Config::resolve_server`] / [`Config::resolve_all`]; compare two with
/// [`ConfigDiff::between`](crate::ConfigDiff::between).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The servers, in order of first appearance; a later file's definition replaces the earlier
    /// one in place.
    pub servers: IndexMap<String, ServerConfig>,
    /// Every other top-level key (`inputs`, `nativeMCPServers`, …) as raw JSON; a later file
    /// replaces an earlier file's value of the same key wholesale.
    pub extra: Map<String, Value>,
    /// VS Code `inputs` of every file, by `id` (a later file wins per id). Their `default` values
    /// back `${input:id}`.
    pub inputs: IndexMap<String, Value>,
    /// The top-level `profiles` of every file, by name: a later file's profile replaces an
    /// earlier one of the same name entirely (like servers) and keeps its position.
    pub profiles: IndexMap<String, ProfileConfig>,
    /// The files that were read, in order.
    pub files: Vec<PathBuf>,
    /// The files that did not exist and were skipped, as the Node hub does.
    pub skipped: Vec<PathBuf>,
    /// Oddities that did not prevent loading.
    pub warnings: Vec<ConfigWarning>,
}

impl Config {
    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.get(name)
    }

    /// The server names, in config order.
    pub fn server_names(&self) -> impl Iterator<Item = &str> {
        self.servers.keys().map(String::as_str)
    }

    /// The merged configuration as one JSON object, shaped like the Node hub's merged config
    /// (the `newConfig` of its `config_changed` event): the extra top-level keys, then
    /// `mcpServers` with every entry as written plus its `config_source`. Nothing is resolved.
    pub fn to_json(&self) -> Value {
        let mut root = self.extra.clone();
        let servers = self
            .servers
            .iter()
            .map(|(name, s)| (name.clone(), Value::Object(s.raw.clone())))
            .collect();
        root.insert("mcpServers".into(), Value::Object(servers));
        if !self.profiles.is_empty() {
            root.insert(
                "profiles".into(),
                crate::views::profiles_json(&self.profiles),
            );
        }
        Value::Object(root)
    }
}

/// Reads, parses and merges `paths` in order. Stops at the first error.
///
/// * Each file may be strict JSON or JSON5 (comments, trailing commas, unquoted keys, single
///   quotes, hex numbers; `Infinity`/`NaN` become `null`, as JSON has no such numbers).
/// * Servers come from `servers` (VS Code) if the file has it, else from `mcpServers`.
/// * A later file's server replaces an earlier one of the same name **entirely** (no deep merge);
///   other top-level keys are replaced wholesale.
/// * A file that does not exist is skipped and listed in [`Config::skipped`]; any other read
///   error is an error.
///
/// ```
/// # fn main() -> Result<(), mcp_hub_config::ConfigError> {
/// let dir = tempfile::tempdir().unwrap();
/// let global = dir.path().join("global.json");
/// let project = dir.path().join("project.json5");
/// std::fs::write(&global, r#"{"mcpServers": {"fs": {"command": "fs-server", "env": {"A": "1"}}}}"#).unwrap();
/// std::fs::write(&project, "{ mcpServers: { fs: { command: 'fs-server', args: ['--ro'] } } } // JSON5").unwrap();
///
/// let config = mcp_hub_config::load(&[global, project.clone(), dir.path().join("missing.json")])?;
/// let fs = config.server("fs").unwrap();
/// assert!(fs.env.is_empty(), "the later definition replaced the whole entry");
/// assert_eq!(fs.config_source, project);
/// assert_eq!(config.skipped.len(), 1);
/// # Ok(()) }
/// ```
pub fn load(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    load_reporting_all(paths).map_err(|mut errors| errors.swap_remove(0))
}

/// Like [`load`], but goes on after an error and returns **every** error found (a file that does
/// not parse contributes its syntax error only). For a `check` command.
pub fn load_reporting_all(paths: &[PathBuf]) -> Result<Config, Vec<ConfigError>> {
    let mut loader = Loader::default();
    for path in paths {
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => loader.add(path, &text),
                Err(_) => loader.errors.push(ConfigError::Read {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the file is not valid UTF-8",
                    ),
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                loader.config.skipped.push(path.clone());
            }
            Err(source) => loader.errors.push(ConfigError::Read {
                path: path.clone(),
                source,
            }),
        }
    }
    loader.finish()
}

/// Like [`load`] for text already in memory: each item is a path (used in errors and as
/// `config_source`; it is not read) and that file's text.
///
/// ```
/// use mcp_hub_config::load_from_strs;
///
/// let err = load_from_strs([("bad.json", "{\n  \"mcpServers\": {,}\n}")]).unwrap_err();
/// assert_eq!(err.to_string(), "bad.json:2:18: invalid JSON5: expected identifier");
/// ```
pub fn load_from_strs<'a, P>(
    files: impl IntoIterator<Item = (P, &'a str)>,
) -> Result<Config, ConfigError>
where
    P: AsRef<Path>,
{
    let mut loader = Loader::default();
    for (path, text) in files {
        loader.add(path.as_ref(), text);
    }
    loader.finish().map_err(|mut errors| errors.swap_remove(0))
}

/// Parses one file's text into a JSON value, with positions on syntax errors.
pub(crate) fn parse_text(path: &Path, text: &str) -> Result<Value, ConfigError> {
    json5::from_str::<Value>(text).map_err(|e| {
        let end = json5::Position::from_offset(text.len(), text);
        let mut pos = e.position().unwrap_or(end);
        let message = match e.code() {
            // json5 places an end-of-file error at the start of the construct left open (the
            // root object of a file missing its last `}` is at 1:1): report the end of the
            // file, and where that construct starts.
            Some(code) if is_eof(code) && pos != end => {
                let opened = format!("{}:{}", pos.line + 1, pos.column + 1);
                pos = end;
                match code {
                    json5::ErrorCode::EofParsingObject => format!(
                        "{code}: the file ends before the object opened at {opened} is closed"
                    ),
                    json5::ErrorCode::EofParsingArray => format!(
                        "{code}: the file ends before the array opened at {opened} is closed"
                    ),
                    _ => {
                        format!("{code}: the file ends before what starts at {opened} is complete")
                    }
                }
            }
            Some(code) => code.to_string(),
            None => strip_position(&e.to_string()),
        };
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line: pos.line + 1,
            column: pos.column + 1,
            message,
        }
    })
}

fn is_eof(code: json5::ErrorCode) -> bool {
    use json5::ErrorCode::*;
    matches!(
        code,
        EofParsingArray
            | EofParsingBool
            | EofParsingComment
            | EofParsingEscapeSequence
            | EofParsingIdentifier
            | EofParsingNull
            | EofParsingNumber
            | EofParsingObject
            | EofParsingString
            | EofParsingValue
    )
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Which key holds a file's servers: VS Code's `servers` wins over `mcpServers`.
pub(crate) fn servers_key(root: &Map<String, Value>) -> Option<&'static str> {
    if root.contains_key("servers") {
        Some("servers")
    } else if root.contains_key("mcpServers") {
        Some("mcpServers")
    } else {
        None
    }
}

#[derive(Default)]
struct Loader {
    config: Config,
    errors: Vec<ConfigError>,
}

impl Loader {
    fn add(&mut self, path: &Path, text: &str) {
        let root = match parse_text(path, text) {
            Ok(Value::Object(root)) => root,
            Ok(_) => {
                self.errors.push(ConfigError::InvalidFile {
                    path: path.to_path_buf(),
                    line: Some(1),
                    key: String::new(),
                    message: "the top level must be an object".into(),
                });
                return;
            }
            Err(e) => {
                self.errors.push(e);
                return;
            }
        };
        self.config.files.push(path.to_path_buf());
        let warn = |server: Option<&str>, message: String| ConfigWarning {
            path: path.to_path_buf(),
            server: server.map(str::to_owned),
            message,
        };

        if root.contains_key("servers") && root.contains_key("mcpServers") {
            self.config.warnings.push(warn(
                None,
                "both `servers` and `mcpServers` are present; `mcpServers` is ignored".into(),
            ));
        }
        if let Some(key) = servers_key(&root) {
            match &root[key] {
                Value::Null => {}
                Value::Object(servers) => {
                    for (name, entry) in servers {
                        let mut notes = Vec::new();
                        match parse_server(name, entry, path, &mut notes) {
                            Ok(server) => {
                                self.config.servers.insert(name.clone(), server);
                            }
                            Err((field, message)) => {
                                self.errors
                                    .push(server_error(path, text, key, name, &field, message));
                            }
                        }
                        self.config
                            .warnings
                            .extend(notes.into_iter().map(|m| warn(Some(name), m)));
                    }
                }
                _ => self.errors.push(ConfigError::InvalidFile {
                    path: path.to_path_buf(),
                    line: line_of(text, &[Seg::Key(key.into())]),
                    key: key.into(),
                    message: "must be an object mapping server names to entries".into(),
                }),
            }
        }

        if let Some(Value::Array(inputs)) = root.get("inputs") {
            for input in inputs {
                if let Some(id) = input.get("id").and_then(Value::as_str) {
                    self.config.inputs.insert(id.to_owned(), input.clone());
                }
            }
        }
        match root.get("profiles") {
            None | Some(Value::Null) => {}
            Some(Value::Object(profiles)) => {
                for (name, entry) in profiles {
                    match parse_profile(name, entry, path) {
                        Ok(p) => {
                            self.config.profiles.insert(name.clone(), p);
                        }
                        Err((field, message)) => {
                            let mut segs =
                                vec![Seg::Key("profiles".into()), Seg::Key(name.clone())];
                            segs.extend(field.0.iter().cloned());
                            self.errors.push(ConfigError::InvalidProfile {
                                path: path.to_path_buf(),
                                line: line_of(text, &segs),
                                profile: name.clone(),
                                field: field.to_string(),
                                message,
                            });
                        }
                    }
                }
            }
            Some(_) => self.errors.push(ConfigError::InvalidFile {
                path: path.to_path_buf(),
                line: line_of(text, &[Seg::Key("profiles".into())]),
                key: "profiles".into(),
                message: "must be an object mapping profile names to profiles".into(),
            }),
        }
        for (key, value) in root {
            if key != "servers" && key != "mcpServers" && key != "profiles" {
                self.config.extra.insert(key, value);
            }
        }
    }

    fn finish(mut self) -> Result<Config, Vec<ConfigError>> {
        // A plain server name no file defines is most likely a typo; a glob may match servers
        // added later, so it is not checked.
        let mut notes = Vec::new();
        for p in self.config.profiles.values() {
            for s in &p.servers {
                if !crate::views::is_glob(&s.pattern)
                    && !self.config.servers.contains_key(&s.pattern)
                {
                    notes.push(ConfigWarning {
                        path: p.config_source.clone(),
                        server: None,
                        message: format!(
                            "profile '{}': no server named '{}' is configured",
                            p.name, s.pattern
                        ),
                    });
                }
            }
        }
        self.config.warnings.extend(notes);
        if self.errors.is_empty() {
            Ok(self.config)
        } else {
            Err(self.errors)
        }
    }
}

fn server_error(
    path: &Path,
    text: &str,
    servers_key: &str,
    server: &str,
    field: &FieldPath,
    message: String,
) -> ConfigError {
    let mut segs = vec![Seg::Key(servers_key.into()), Seg::Key(server.into())];
    segs.extend(field.0.iter().cloned());
    ConfigError::InvalidServer {
        path: path.to_path_buf(),
        line: line_of(text, &segs),
        server: server.to_owned(),
        field: field.to_string(),
        message,
    }
}
