//! Writing back the one thing the hub changes in a config file: a server's `disabled` flag.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::ConfigError;
use crate::load::{parse_text, servers_key};
use crate::locate::{Kind, scan};

/// How [`set_disabled_in_file`] changed the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledWrite {
    /// The server already had that state (an absent `disabled` counts as `false`); the file was
    /// not touched.
    Unchanged,
    /// The `disabled` value was edited (or the key inserted) in place; comments, formatting and
    /// key order of the rest of the file are kept byte for byte.
    Edited,
    /// An in-place edit was not possible, so the file was rewritten as pretty-printed JSON with
    /// the same content. JSON5 comments and formatting are lost in this case.
    Rewritten,
}

/// Sets `disabled: <disabled>` on `server` in the file at `path` (the server's
/// [`config_source`](crate::ServerConfig::config_source)), for the REST API's
/// `stop?disable=true` and `start`.
///
/// The edit is textual and minimal when possible: an existing `disabled` value is replaced, or a
/// `"disabled": …,` line is inserted as the entry's first key with the same indentation. The
/// result is parsed again and must equal the original document with only that one change;
/// otherwise the file is rewritten as JSON ([`DisabledWrite::Rewritten`]). The new content is
/// written to a temporary file in the same directory and renamed over the original, so readers
/// (a config watcher) never see half a file; a symlinked path updates its target.
///
/// ```
/// use mcp_hub_config::{set_disabled_in_file, DisabledWrite};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("servers.json5");
/// std::fs::write(&path, "{\n  // mine\n  mcpServers: {\n    fs: {\n      command: 'fs',\n    },\n  },\n}\n").unwrap();
///
/// assert_eq!(set_disabled_in_file(&path, "fs", true).unwrap(), DisabledWrite::Edited);
/// assert_eq!(
///     std::fs::read_to_string(&path).unwrap(),
///     "{\n  // mine\n  mcpServers: {\n    fs: {\n      \"disabled\": true,\n      command: 'fs',\n    },\n  },\n}\n",
/// );
/// ```
pub fn set_disabled_in_file(
    path: &Path,
    server: &str,
    disabled: bool,
) -> Result<DisabledWrite, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let real = std::fs::canonicalize(path).map_err(read_err)?;
    let bytes = std::fs::read(&real).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not valid UTF-8",
        ))
    })?;

    let mut expected = parse_text(path, &text)?;
    let not_found = || ConfigError::ServerNotInFile {
        path: path.to_path_buf(),
        server: server.to_owned(),
    };
    let key = match &expected {
        Value::Object(root) => servers_key(root).ok_or_else(not_found)?,
        _ => return Err(not_found()),
    };
    let entry = expected
        .get_mut(key)
        .and_then(|servers| servers.get_mut(server))
        .and_then(Value::as_object_mut)
        .ok_or_else(not_found)?;
    let unchanged = match entry.get("disabled") {
        Some(Value::Bool(current)) => *current == disabled,
        None | Some(Value::Null) => !disabled,
        Some(_) => false,
    };
    if unchanged {
        return Ok(DisabledWrite::Unchanged);
    }
    entry.insert("disabled".into(), Value::Bool(disabled));

    let (contents, outcome) = match edit_in_place(&text, key, server, disabled)
        .filter(|edited| parse_text(path, edited).ok().as_ref() == Some(&expected))
    {
        Some(edited) => (edited, DisabledWrite::Edited),
        None => {
            let mut pretty =
                serde_json::to_string_pretty(&expected).map_err(|e| ConfigError::Write {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(e),
                })?;
            pretty.push('\n');
            (pretty, DisabledWrite::Rewritten)
        }
    };
    write_atomic(&real, &contents).map_err(|source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(outcome)
}

/// Writes one server's whole entry into the file at `path` (`Some`: replaced in place, or added
/// last under the file's servers key, `mcpServers` when it has none), or removes it (`None`), for
/// an embedding program that changes servers at run time. A `config_source` key in the entry is
/// not written. Unlike [`set_disabled_in_file`] this cannot edit text in place, so the file is
/// rewritten as pretty-printed JSON with the same content otherwise (JSON5 comments and
/// formatting are lost), atomically. Returns whether the file changed; removing a server the
/// file does not define changes nothing.
pub fn set_server_in_file(
    path: &Path,
    server: &str,
    entry: Option<&serde_json::Map<String, Value>>,
) -> Result<bool, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let real = std::fs::canonicalize(path).map_err(read_err)?;
    let bytes = std::fs::read(&real).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not valid UTF-8",
        ))
    })?;
    let mut doc = parse_text(path, &text)?;
    let Value::Object(root) = &mut doc else {
        return Err(ConfigError::ServerNotInFile {
            path: path.to_path_buf(),
            server: server.to_owned(),
        });
    };
    let key = servers_key(root).unwrap_or("mcpServers");
    let servers = root
        .entry(key)
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Value::Object(servers) = servers else {
        return Err(ConfigError::ServerNotInFile {
            path: path.to_path_buf(),
            server: server.to_owned(),
        });
    };
    match entry {
        Some(entry) => {
            let mut entry = entry.clone();
            entry.remove("config_source");
            let entry = Value::Object(entry);
            if servers.get(server) == Some(&entry) {
                return Ok(false);
            }
            servers.insert(server.to_owned(), entry);
        }
        None => {
            if servers.shift_remove(server).is_none() {
                return Ok(false);
            }
        }
    }
    let mut pretty = serde_json::to_string_pretty(&doc).map_err(|e| ConfigError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    pretty.push('\n');
    write_atomic(&real, &pretty).map_err(|source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(true)
}

/// The text with the server's `disabled` replaced or inserted; `None` if the structure is not
/// what was expected.
fn edit_in_place(text: &str, key: &str, server: &str, disabled: bool) -> Option<String> {
    let root = scan(text)?;
    let entry = &root.member(key)?.value.member(server)?.value;
    let Kind::Object(members) = &entry.kind else {
        return None;
    };
    let literal = if disabled { "true" } else { "false" };
    let mut out = String::with_capacity(text.len() + 24);
    if let Some(existing) = entry.member("disabled") {
        out.push_str(&text[..existing.value.start]);
        out.push_str(literal);
        out.push_str(&text[existing.value.end..]);
        return Some(out);
    }
    let Some(first) = members.first() else {
        // `{}` (possibly with whitespace or comments inside).
        let at = entry.start + 1;
        out.push_str(&text[..at]);
        out.push_str(&format!("\"disabled\": {literal}"));
        out.push_str(&text[at..]);
        return Some(out);
    };
    let at = first.key_start;
    let line_start = text[..at].rfind(['\n', '\r']).map_or(0, |i| i + 1);
    let indent = &text[line_start..at];
    let insert = if line_start > 0 && indent.chars().all(|c| c == ' ' || c == '\t') {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        format!("\"disabled\": {literal},{newline}{indent}")
    } else {
        format!("\"disabled\": {literal}, ")
    };
    out.push_str(&text[..at]);
    out.push_str(&insert);
    out.push_str(&text[at..]);
    Some(out)
}

/// Writes `contents` to a new file next to `path`, then renames it over `path`.
fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let tmp: PathBuf = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Ok(d) = std::fs::File::open(dir) {
        // Make the rename itself durable; not all platforms allow syncing a directory.
        let _ = d.sync_all();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(text: &str, server: &str, disabled: bool) -> (DisabledWrite, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, text).unwrap();
        let outcome = set_disabled_in_file(&path, server, disabled).unwrap();
        (outcome, std::fs::read_to_string(&path).unwrap())
    }

    #[test]
    fn whole_entries_are_replaced_added_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json5");
        std::fs::write(
            &path,
            "{ // mine\n servers: {a: {command: 'x'}, b: {command: 'y'}}, other: 1 }",
        )
        .unwrap();
        let entry = |v: serde_json::Value| v.as_object().unwrap().clone();
        let b = entry(serde_json::json!({"command": "z", "config_source": "/elsewhere"}));
        assert!(set_server_in_file(&path, "b", Some(&b)).unwrap());
        assert!(
            !set_server_in_file(&path, "b", Some(&b)).unwrap(),
            "same entry"
        );
        let c = entry(serde_json::json!({"url": "https://h/mcp"}));
        assert!(set_server_in_file(&path, "c", Some(&c)).unwrap());
        assert!(set_server_in_file(&path, "a", None).unwrap());
        assert!(!set_server_in_file(&path, "gone", None).unwrap());
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"servers": {"b": {"command": "z"}, "c": {"url": "https://h/mcp"}}, "other": 1})
        );
        let keys: Vec<_> = doc["servers"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["b", "c"], "kept in place, added last");
    }

    #[test]
    fn replaces_an_existing_value_keeping_everything_else() {
        let text = "{\"mcpServers\": {\"a\": {\"command\": \"x\", /* c */ \"disabled\": false}}}";
        let (outcome, out) = edit(text, "a", true);
        assert_eq!(outcome, DisabledWrite::Edited);
        assert_eq!(out, text.replace("false", "true"));
    }

    #[test]
    fn inserts_on_one_line_objects_and_empty_objects() {
        let (_, out) = edit(r#"{"mcpServers": {"a": {"command": "x"}}}"#, "a", true);
        assert_eq!(
            out,
            r#"{"mcpServers": {"a": {"disabled": true, "command": "x"}}}"#
        );
        let text = "{\"servers\": {\"a\": {\"url\": \"https://h\"}}, \"mcpServers\": {\"a\": {}}}";
        let (_, out) = edit(text, "a", true);
        assert!(
            out.contains("{\"a\": {\"disabled\": true, \"url\""),
            "{out}"
        );
    }

    #[test]
    fn keeps_crlf_line_endings() {
        let text = "{\r\n  \"mcpServers\": {\r\n    \"a\": {\r\n      \"command\": \"x\"\r\n    }\r\n  }\r\n}\r\n";
        let (_, out) = edit(text, "a", true);
        assert!(
            out.contains("{\r\n      \"disabled\": true,\r\n      \"command\""),
            "{out:?}"
        );
    }

    #[test]
    fn unchanged_when_already_in_that_state() {
        let text = r#"{"mcpServers": {"a": {"command": "x"}}}"#;
        assert_eq!(
            edit(text, "a", false),
            (DisabledWrite::Unchanged, text.to_owned())
        );
        let text = r#"{"mcpServers": {"a": {"command": "x", "disabled": true}}}"#;
        assert_eq!(
            edit(text, "a", true),
            (DisabledWrite::Unchanged, text.to_owned())
        );
    }

    #[test]
    fn duplicate_keys_edit_the_one_that_counts() {
        let text =
            r#"{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y", "disabled": true}}}"#;
        let (outcome, out) = edit(text, "a", false);
        assert_eq!(outcome, DisabledWrite::Edited);
        assert_eq!(
            out,
            text.replace("\"disabled\": true", "\"disabled\": false")
        );
    }

    #[test]
    fn non_boolean_disabled_is_replaced() {
        let text = r#"{"mcpServers": {"a": {"command": "x", "disabled": "yes"}}}"#;
        let (outcome, out) = edit(text, "a", true);
        assert_eq!(outcome, DisabledWrite::Edited);
        assert!(out.contains("\"disabled\": true"));
    }

    #[test]
    fn missing_server_is_an_error_and_the_file_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"mcpServers": {}}"#).unwrap();
        let err = set_disabled_in_file(&path, "nope", true).unwrap_err();
        assert!(matches!(err, ConfigError::ServerNotInFile { .. }));
        assert_eq!(
            err.to_string(),
            format!("{}: no server named 'nope' in this file", path.display())
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"{"mcpServers": {}}"#
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_update_their_target_and_permissions_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        std::fs::write(&real, r#"{"mcpServers": {"a": {"command": "x"}}}"#).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        set_disabled_in_file(&link, "a", true).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            std::fs::read_to_string(&real)
                .unwrap()
                .contains("\"disabled\": true")
        );
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
