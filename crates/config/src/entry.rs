//! Parsing and validating one server entry into a [`ServerConfig`]: every key checked, every
//! error naming its field, nothing resolved.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::Value;

use crate::locate::FieldPath;
use crate::server::{
    DEFAULT_DEV_WATCH, DEFAULT_MAX_INSTANCES, DevConfig, EnvValue, Isolation, Prefix,
    RemoteTransport, ServerConfig, ServerKind,
};
use crate::template::has_placeholder;

pub(crate) fn transport_for(server_type: Option<&str>) -> RemoteTransport {
    match server_type {
        Some("sse") => RemoteTransport::Sse,
        Some("streamable-http" | "streamableHttp" | "http") => RemoteTransport::StreamableHttp,
        _ => RemoteTransport::Auto,
    }
}

/// A validation failure inside one entry: where and what.
pub(crate) type EntryError = (FieldPath, String);

/// Validates one entry. Warnings are pushed as messages (the caller adds file and server).
pub(crate) fn parse_server(
    name: &str,
    entry: &Value,
    source: &Path,
    warnings: &mut Vec<String>,
) -> Result<ServerConfig, EntryError> {
    let whole = FieldPath::default();
    if name.is_empty() {
        return Err((whole, "server names must not be empty".into()));
    }
    let Value::Object(obj) = entry else {
        return Err((whole, "must be an object".into()));
    };
    let get = |key: &str| obj.get(key).filter(|v| !v.is_null());

    let command = get("command")
        .map(|v| non_empty_string(v, "command"))
        .transpose()?;
    let url = get("url").map(|v| non_empty_string(v, "url")).transpose()?;
    let server_type = get("type")
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| (FieldPath::key("type"), "must be a string".to_owned()))
        })
        .transpose()?;

    let kind = match (command, url) {
        (Some(_), Some(_)) => {
            return Err((
                whole,
                "cannot mix stdio (`command`) and remote (`url`) fields".into(),
            ));
        }
        (None, None) => {
            return Err((
                whole,
                "must have either `command` (stdio) or `url` (remote)".into(),
            ));
        }
        (Some(command), None) => {
            for key in ["url", "headers", "auth", "oauth"] {
                if get(key).is_some() {
                    warnings.push(format!("`{key}` is ignored for a stdio server"));
                }
            }
            ServerKind::Stdio {
                command,
                args: parse_args(get("args"))?,
                cwd: get("cwd")
                    .map(|v| string(v, &FieldPath::key("cwd")))
                    .transpose()?,
            }
        }
        (None, Some(url)) => {
            if !has_placeholder(&url) && !is_http_url(&url) {
                return Err((
                    FieldPath::key("url"),
                    "must be an absolute http:// or https:// URL".into(),
                ));
            }
            for key in ["args", "cwd"] {
                if get(key).is_some() {
                    warnings.push(format!("`{key}` is ignored for a remote server"));
                }
            }
            for key in ["auth", "oauth"] {
                check_credentials(key, get(key))?;
            }
            ServerKind::Remote {
                url,
                headers: parse_headers(get("headers"))?,
            }
        }
    };

    check_type(server_type.as_deref(), &kind, warnings);

    let dev = match get("dev") {
        None => None,
        Some(_) if !matches!(kind, ServerKind::Stdio { .. }) => {
            return Err((
                FieldPath::key("dev"),
                "only stdio servers can have a `dev` block".into(),
            ));
        }
        Some(v) => Some(parse_dev(v)?),
    };

    let mut raw = obj.clone();
    raw.insert(
        "config_source".into(),
        Value::String(source.to_string_lossy().into_owned()),
    );

    Ok(ServerConfig {
        name: name.to_owned(),
        kind,
        env: parse_env(get("env"))?,
        server_type,
        disabled: match get("disabled") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err((FieldPath::key("disabled"), "must be true or false".into()));
            }
        },
        dev,
        display_name: get("name")
            .map(|v| string(v, &FieldPath::key("name")))
            .transpose()?,
        description: get("description")
            .map(|v| string(v, &FieldPath::key("description")))
            .transpose()?,
        prefix: parse_prefix(obj.get("prefix"))?,
        timeout: parse_timeout(get("timeout"))?,
        isolation: parse_isolation(get("isolation"), get("maxInstances"), warnings)?,
        roots: parse_roots(get("roots"))?,
        tools: crate::views::parse_tool_filter(get("tools"), FieldPath::key("tools"))?,
        config_source: source.to_path_buf(),
        raw,
    })
}

fn check_type(server_type: Option<&str>, kind: &ServerKind, warnings: &mut Vec<String>) {
    let Some(t) = server_type else { return };
    let stdio = matches!(kind, ServerKind::Stdio { .. });
    match t {
        "stdio" if !stdio => warnings.push(
            "`type` is \"stdio\" but the entry has a `url`; treating it as a remote server".into(),
        ),
        "sse" | "streamable-http" | "streamableHttp" | "http" if stdio => warnings.push(format!(
            "`type` is \"{t}\" but the entry has a `command`; treating it as a stdio server"
        )),
        "stdio" | "sse" | "streamable-http" | "streamableHttp" | "http" => {}
        other => warnings.push(format!(
            "unknown `type` \"{other}\" is ignored (expected stdio, sse, streamable-http or http)"
        )),
    }
}

fn non_empty_string(v: &Value, key: &str) -> Result<String, EntryError> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err((FieldPath::key(key), "must be a non-empty string".into())),
    }
}

fn string(v: &Value, at: &FieldPath) -> Result<String, EntryError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| (at.clone(), "must be a string".into()))
}

/// Strings as they are; numbers and booleans as their JSON text, as a shell would pass them.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_args(v: Option<&Value>) -> Result<Vec<String>, EntryError> {
    let at = FieldPath::key("args");
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                scalar(item).ok_or_else(|| (at.index(i), "must be a string".to_owned()))
            })
            .collect(),
        Some(_) => Err((at, "must be an array of strings".into())),
    }
}

fn parse_env(v: Option<&Value>) -> Result<IndexMap<String, EnvValue>, EntryError> {
    let at = FieldPath::key("env");
    match v {
        None => Ok(IndexMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::Null => EnvValue::Inherit,
                    other => EnvValue::Template(
                        scalar(other)
                            .ok_or_else(|| (at.child(k), "must be a string or null".to_owned()))?,
                    ),
                };
                Ok((k.clone(), value))
            })
            .collect(),
        Some(_) => Err((at, "must be an object".into())),
    }
}

fn parse_headers(v: Option<&Value>) -> Result<IndexMap<String, String>, EntryError> {
    let at = FieldPath::key("headers");
    match v {
        None => Ok(IndexMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                let value =
                    scalar(v).ok_or_else(|| (at.child(k), "must be a string".to_owned()))?;
                Ok((k.clone(), value))
            })
            .collect(),
        Some(_) => Err((at, "must be an object".into())),
    }
}

/// The keys of `auth` (the auth crate checks which combinations a grant takes, at connect).
const AUTH_KEYS: &[&str] = &[
    "type",
    "dpop",
    "scopes",
    "client_id",
    "client_secret",
    "private_key",
    "private_key_file",
    "signing_algorithm",
    "assertion",
    "assertion_file",
    "id_token",
    "id_token_file",
    "idp_token_endpoint",
    "idp_client_id",
    "idp_client_secret",
];
/// The grants `auth.type` names.
const AUTH_TYPES: &[&str] = &[
    "authorization_code",
    "client_credentials",
    "jwt_bearer",
    "enterprise_managed",
];

/// `auth` and `oauth`: objects of strings (placeholders allowed), `scopes` may be an array of
/// strings and `auth.dpop` a boolean. Values are never quoted in errors: they are credentials.
fn check_credentials(key: &str, v: Option<&Value>) -> Result<(), EntryError> {
    let at = FieldPath::key(key);
    let Some(v) = v else { return Ok(()) };
    let Value::Object(map) = v else {
        return Err((at, "must be an object".into()));
    };
    for (k, v) in map {
        if key == "auth" && !AUTH_KEYS.contains(&k.as_str()) {
            return Err((
                at.child(k),
                format!("unknown key (expected one of {})", AUTH_KEYS.join(", ")),
            ));
        }
        let ok = match (k.as_str(), v) {
            (_, Value::Null | Value::String(_)) => true,
            ("scopes", Value::Array(items)) => items.iter().all(Value::is_string),
            ("dpop", Value::Bool(_)) => key == "auth",
            _ => false,
        };
        if !ok {
            let expected = match k.as_str() {
                "scopes" => "a string or an array of strings",
                "dpop" => "true, false or \"auto\"",
                _ => "a string",
            };
            return Err((at.child(k), format!("must be {expected}")));
        }
    }
    if key == "auth"
        && let Some(t) = map.get("type").and_then(Value::as_str)
        && !has_placeholder(t)
        && !AUTH_TYPES.contains(&t)
    {
        return Err((
            at.child("type"),
            format!("unknown grant (expected one of {})", AUTH_TYPES.join(", ")),
        ));
    }
    Ok(())
}

fn parse_dev(v: &Value) -> Result<DevConfig, EntryError> {
    let at = FieldPath::key("dev");
    let Value::Object(obj) = v else {
        return Err((at, "must be an object".into()));
    };
    let get = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let enabled = match get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err((at.child("enabled"), "must be true or false".into())),
    };
    let watch = match get("watch") {
        None => DEFAULT_DEV_WATCH.iter().map(|s| (*s).to_owned()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| (at.child("watch").index(i), "must be a string".to_owned()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err((
                at.child("watch"),
                "must be an array of glob patterns".into(),
            ));
        }
    };
    let cwd = match get("cwd") {
        Some(Value::String(s)) if has_placeholder(s) || Path::new(s).is_absolute() => s.clone(),
        _ => {
            return Err((
                at.child("cwd"),
                "is required and must be an absolute path".into(),
            ));
        }
    };
    Ok(DevConfig {
        enabled,
        watch,
        cwd: PathBuf::from(cwd),
    })
}

fn parse_prefix(v: Option<&Value>) -> Result<Prefix, EntryError> {
    match v {
        None | Some(Value::Bool(true)) => Ok(Prefix::Default),
        Some(Value::Null | Value::Bool(false)) => Ok(Prefix::Disabled),
        Some(Value::String(s)) if s.is_empty() => Ok(Prefix::Disabled),
        Some(Value::String(s)) => Ok(Prefix::Custom(s.clone())),
        Some(_) => Err((
            FieldPath::key("prefix"),
            "must be a string, true, false or null".into(),
        )),
    }
}

fn parse_timeout(v: Option<&Value>) -> Result<Option<Duration>, EntryError> {
    let Some(v) = v else { return Ok(None) };
    let ms = v
        .as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= 1e15)
                .map(|f| f as u64)
        })
        .filter(|ms| *ms > 0);
    match ms {
        Some(ms) => Ok(Some(Duration::from_millis(ms))),
        None => Err((
            FieldPath::key("timeout"),
            "must be a positive whole number of milliseconds".into(),
        )),
    }
}

fn parse_isolation(
    mode: Option<&Value>,
    max: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<Isolation, EntryError> {
    let max_instances = match max {
        None => DEFAULT_MAX_INSTANCES,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=10_000).contains(n))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                (
                    FieldPath::key("maxInstances"),
                    "must be a whole number from 1 to 10000".to_owned(),
                )
            })?,
    };
    match mode.map(|v| v.as_str()) {
        None | Some(Some("shared")) => {
            if max.is_some() {
                warnings.push("`maxInstances` only applies with `isolation: \"session\"`".into());
            }
            Ok(Isolation::Shared)
        }
        Some(Some("session")) => Ok(Isolation::Session { max_instances }),
        Some(_) => Err((
            FieldPath::key("isolation"),
            "must be \"shared\" or \"session\"".into(),
        )),
    }
}

fn parse_roots(v: Option<&Value>) -> Result<Option<Vec<String>>, EntryError> {
    let at = FieldPath::key("roots");
    let Some(v) = v else { return Ok(None) };
    let Value::Array(items) = v else {
        return Err((at, "must be an array of URIs or absolute paths".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item.as_str() {
            Some(s) if s.contains("://") || Path::new(s).is_absolute() => Ok(s.to_owned()),
            _ => Err((
                at.index(i),
                "must be a URI (file:///...) or an absolute path".to_owned(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `http://` or `https://` (any case) followed by a host.
pub(crate) fn is_http_url(url: &str) -> bool {
    let lower = url
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    let host = authority.rsplit('@').next().unwrap_or_default();
    !host.is_empty()
        && !host.starts_with(':')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}
