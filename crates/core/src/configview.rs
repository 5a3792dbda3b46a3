//! The merged config as the console shows it (`GET /api/config`): every server's entry as
//! written, with the file it came from, and every value that may hold a secret redacted.
//!
//! What counts as a secret: `env` and `headers` values, the credentials and query of a URL,
//! OAuth client secrets and tokens, and the value of any argument or field whose name says
//! token, secret, password, key or auth. A value that is only a placeholder reference
//! (`${env:GITHUB_TOKEN}`, `${input:key}`) is kept, since it names where the secret lives
//! rather than the secret itself; `${cmd: ...}` is hidden like any literal.

use mcp_hub_config::Config;
use serde_json::{Map, Value, json};

const HIDDEN: &str = "••••••";

/// The view: `{files, servers: {name: entry}}`, servers in config order.
pub(crate) fn view(config: &Config) -> Value {
    let mut servers = Map::new();
    for (name, sc) in &config.servers {
        let mut entry = Map::new();
        for (k, v) in &sc.raw {
            entry.insert(k.clone(), redact_field(k, v));
        }
        entry.insert(
            "config_source".into(),
            sc.config_source.display().to_string().into(),
        );
        servers.insert(name.clone(), Value::Object(entry));
    }
    json!({
        "files": config.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "missingFiles": config.skipped.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "servers": servers,
    })
}

fn sensitive_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "key",
        "auth",
        "credential",
        "cookie",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// A placeholder reference and nothing else: `${env:X}`, `${X}`, `${input:x}`.
fn only_reference(s: &str) -> bool {
    let Some(inner) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
        return false;
    };
    !inner.contains(['{', '}', '$'])
        && !inner.trim_start().starts_with("cmd:")
        && !inner.contains(char::is_whitespace)
}

fn hide_value(v: &Value) -> Value {
    match v {
        Value::String(s) if only_reference(s) => v.clone(),
        Value::Null => Value::Null,
        _ => HIDDEN.into(),
    }
}

fn redact_map(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), hide_value(v))).collect())
        }
        other => hide_value(other),
    }
}

fn redact_field(key: &str, v: &Value) -> Value {
    match key {
        "env" | "headers" => redact_map(v),
        "url" => match v {
            Value::String(s) => redact_url(s).into(),
            other => other.clone(),
        },
        "args" => match v {
            Value::Array(a) => Value::Array(redact_args(a)),
            other => other.clone(),
        },
        "oauth" => match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let v = if sensitive_name(k) && k != "client_metadata_url" {
                            hide_value(v)
                        } else {
                            v.clone()
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            other => hide_value(other),
        },
        k if sensitive_name(k) => hide_value(v),
        _ => redact_nested(v),
    }
}

/// Unknown fields: objects are walked so that a nested `apiKey` is hidden too.
fn redact_nested(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if sensitive_name(k) {
                        hide_value(v)
                    } else {
                        redact_nested(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact_nested).collect()),
        other => other.clone(),
    }
}

/// `--token X`, `--api-key=X`, `TOKEN=X`: the value after a sensitive flag is hidden.
fn redact_args(args: &[Value]) -> Vec<Value> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for a in args {
        let Some(s) = a.as_str() else {
            out.push(if hide_next { hide_value(a) } else { a.clone() });
            hide_next = false;
            continue;
        };
        if hide_next {
            out.push(hide_value(a));
            hide_next = false;
            continue;
        }
        if let Some((name, value)) = s.split_once('=')
            && sensitive_name(name)
        {
            let shown = if only_reference(value) { value } else { HIDDEN };
            out.push(format!("{name}={shown}").into());
            continue;
        }
        hide_next = s.starts_with('-') && sensitive_name(s);
        out.push(a.clone());
    }
    out
}

/// A URL without user info; query values hidden (keys kept).
fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        // A template (`${env:URL}`) or garbage: shown only if it is a bare reference.
        return if only_reference(url) {
            url.to_owned()
        } else {
            HIDDEN.to_owned()
        };
    };
    if !u.username().is_empty() {
        let _ = u.set_username("");
    }
    if u.password().is_some() {
        let _ = u.set_password(None);
    }
    if u.query().is_some() {
        let keys: Vec<String> = u
            .query_pairs()
            .map(|(k, _)| format!("{k}={HIDDEN}"))
            .collect();
        u.set_query(Some(&keys.join("&")));
    }
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_references_kept() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        std::fs::write(
            &f,
            r#"{"mcpServers": {
                "a": {"command": "srv", "args": ["--token", "s3cret-arg", "--port", "1", "API_KEY=s3cret-kv", "--key=${env:K}"],
                      "env": {"GITHUB_TOKEN": "s3cret-env", "REF": "${env:REAL}", "CMD": "${cmd: pass show x}"}},
                "b": {"url": "https://user:s3cret-pw@example.com/mcp?key=s3cret-q", "headers": {"Authorization": "Bearer s3cret-h"},
                      "oauth": {"client_id": "id", "client_secret": "s3cret-oauth"}, "custom": {"apiKey": "s3cret-nested", "x": 1}}
            }}"#,
        )
        .unwrap();
        let cfg = mcp_hub_config::load(std::slice::from_ref(&f)).unwrap();
        let v = view(&cfg);
        let text = v.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(v["servers"]["a"]["env"]["REF"], "${env:REAL}");
        assert_eq!(v["servers"]["a"]["env"]["CMD"], HIDDEN);
        assert_eq!(v["servers"]["a"]["args"][3], "1");
        assert_eq!(v["servers"]["a"]["args"][5], "--key=${env:K}");
        assert_eq!(v["servers"]["b"]["oauth"]["client_id"], "id");
        assert_eq!(v["servers"]["b"]["custom"]["x"], 1);
        assert_eq!(v["servers"]["a"]["config_source"], f.display().to_string());
        assert!(
            v["servers"]["b"]["url"]
                .as_str()
                .unwrap()
                .starts_with("https://example.com/mcp?key=")
        );
    }
}
