//! Comparing two loaded configurations, so a hot reload touches only what changed.

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::load::Config;
use crate::server::{Prefix, RemoteTransport, ServerConfig};

/// The fields whose change means a server must be restarted (or stopped/started).
///
/// The Node hub's list (`command`, `args`, `env`, `disabled`, `url`, `headers`, `dev`, `name`,
/// `cwd`, `config_source`) plus this hub's `type` (it selects the remote transport), `prefix`,
/// `timeout` and the credentials `auth` and `oauth`. A change to anything else (`description`,
/// unknown keys) is not significant.
pub const SIGNIFICANT_FIELDS: &[&str] = &[
    "command",
    "args",
    "env",
    "disabled",
    "url",
    "headers",
    "dev",
    "name",
    "cwd",
    "config_source",
    "type",
    "prefix",
    "timeout",
    "isolation",
    "maxInstances",
    "roots",
    "auth",
    "oauth",
];

/// What changed between two configurations, server by server.
///
/// Serializes to the Node hub's `changes` object: `{added, removed, modified, unchanged,
/// details: {<name>: {modifiedFields, oldValues, newValues}}}`. It is computed from the entries
/// as written, so it never contains a resolved secret (it does contain literal values from the
/// files, as the Node hub's does).
///
/// ```
/// use mcp_hub_config::{load_from_strs, ConfigDiff};
///
/// let old = load_from_strs([("c.json", r#"{"mcpServers": {
///     "a": {"command": "a"}, "b": {"command": "b"}, "c": {"url": "https://c.example/mcp"}}}"#)]).unwrap();
/// let new = load_from_strs([("c.json", r#"{"mcpServers": {
///     "a": {"command": "a", "description": "cosmetic"}, "b": {"command": "b", "args": ["-v"]},
///     "d": {"command": "d"}}}"#)]).unwrap();
///
/// let diff = ConfigDiff::between(&old, &new);
/// assert_eq!(diff.added, ["d"]);
/// assert_eq!(diff.removed, ["c"]);
/// assert_eq!(diff.modified, ["b"]);
/// assert_eq!(diff.unchanged, ["a"]);
/// assert_eq!(diff.details["b"].modified_fields, ["args"]);
/// assert_eq!(diff.to_json()["details"]["b"]["newValues"]["args"], serde_json::json!(["-v"]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConfigDiff {
    /// Servers only in the new config, in its order.
    pub added: Vec<String>,
    /// Servers only in the old config, in its order.
    pub removed: Vec<String>,
    /// Servers in both whose significant fields differ, in the new config's order.
    pub modified: Vec<String>,
    /// Servers in both with no significant difference, in the new config's order.
    pub unchanged: Vec<String>,
    /// For each modified server, what changed.
    pub details: IndexMap<String, ServerChange>,
    /// Servers listed in `unchanged` whose entry nevertheless differs in fields that need no
    /// restart (`description`, unknown keys): refresh what you show, keep the connection.
    /// Not part of the serialized form.
    #[serde(skip)]
    pub metadata_changed: Vec<String>,
}

/// The significant differences of one modified server.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerChange {
    /// The fields that differ, in [`SIGNIFICANT_FIELDS`] order.
    pub modified_fields: Vec<String>,
    /// Their old values as written (absent fields are omitted).
    pub old_values: Map<String, Value>,
    /// Their new values as written (absent fields are omitted).
    pub new_values: Map<String, Value>,
}

impl ServerChange {
    /// Whether `disabled` is the only thing that changed: the server can be stopped or started
    /// rather than restarted with a new definition.
    pub fn only_disabled_changed(&self) -> bool {
        self.modified_fields == ["disabled"]
    }
}

impl ConfigDiff {
    /// Compares `old` with `new`.
    ///
    /// Fields are compared by meaning where the meaning is obvious: an absent `disabled` equals
    /// `false`, absent `args` equals `[]`, absent `env`/`headers` equal `{}`, `null` equals
    /// absent, `type` only matters through the remote transport it selects, `prefix: true`
    /// equals no prefix. Anything else is compared as JSON.
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let mut diff = ConfigDiff::default();
        for (name, new_server) in &new.servers {
            let Some(old_server) = old.servers.get(name) else {
                diff.added.push(name.clone());
                continue;
            };
            let change = compare(old_server, new_server);
            if change.modified_fields.is_empty() {
                diff.unchanged.push(name.clone());
                if !same_metadata(old_server, new_server) {
                    diff.metadata_changed.push(name.clone());
                }
            } else {
                diff.modified.push(name.clone());
                diff.details.insert(name.clone(), change);
            }
        }
        diff.removed = old
            .servers
            .keys()
            .filter(|name| !new.servers.contains_key(*name))
            .cloned()
            .collect();
        diff
    }

    /// Whether anything needs doing: a server was added, removed or modified.
    pub fn is_significant(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty())
    }

    /// The Node hub's `changes` JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn compare(old: &ServerConfig, new: &ServerConfig) -> ServerChange {
    let mut change = ServerChange::default();
    for &field in SIGNIFICANT_FIELDS {
        if normalized(old, field) == normalized(new, field) {
            continue;
        }
        change.modified_fields.push(field.to_owned());
        if let Some(v) = present(old, field) {
            change.old_values.insert(field.to_owned(), shown(field, v));
        }
        if let Some(v) = present(new, field) {
            change.new_values.insert(field.to_owned(), shown(field, v));
        }
    }
    change
}

/// Keys of `auth`/`oauth` that hold credentials: their values never leave the file.
const CREDENTIAL_KEYS: &[&str] = &[
    "client_secret",
    "clientSecret",
    "private_key",
    "assertion",
    "id_token",
    "idp_client_secret",
];

/// A value as the diff shows it: credentials inside `auth`/`oauth` are replaced (the diff
/// reaches `/api/events`), everything else is as written.
fn shown(field: &str, v: &Value) -> Value {
    match (field, v) {
        ("auth" | "oauth", Value::Object(map)) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if CREDENTIAL_KEYS.contains(&k.as_str()) && !v.is_null() {
                        Value::from("[redacted]")
                    } else {
                        v.clone()
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        _ => v.clone(),
    }
}

fn present<'s>(server: &'s ServerConfig, field: &str) -> Option<&'s Value> {
    server.raw.get(field).filter(|v| !v.is_null())
}

fn normalized(server: &ServerConfig, field: &str) -> Value {
    match field {
        "disabled" => Value::Bool(server.disabled),
        "prefix" => match &server.prefix {
            Prefix::Default => Value::Bool(true),
            Prefix::Disabled => Value::Bool(false),
            Prefix::Custom(p) => Value::String(p.clone()),
        },
        // Only what `type` selects matters; a kind switch is already a `command`/`url` change.
        "type" if server.is_stdio() => Value::Null,
        "type" => match server.remote_transport() {
            RemoteTransport::Auto => Value::Null,
            RemoteTransport::StreamableHttp => Value::from("streamable-http"),
            RemoteTransport::Sse => Value::from("sse"),
        },
        "timeout" => server
            .timeout
            .map_or(Value::Null, |t| Value::from(t.as_millis() as u64)),
        "args" => present(server, field)
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new())),
        "env" | "headers" => present(server, field)
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
        _ => present(server, field).cloned().unwrap_or(Value::Null),
    }
}

fn same_metadata(old: &ServerConfig, new: &ServerConfig) -> bool {
    let rest = |s: &ServerConfig| -> Map<String, Value> {
        s.raw
            .iter()
            .filter(|(k, _)| !SIGNIFICANT_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    rest(old) == rest(new)
}
