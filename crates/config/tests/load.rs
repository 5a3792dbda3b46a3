use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_hub_config::{
    ConfigError, EnvValue, Prefix, RemoteTransport, ServerKind, load, load_from_strs,
    load_reporting_all,
};
use serde_json::json;

use crate::common::{config, config_err};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn strict_json_and_json5_both_load() {
    let strict = config(r#"{"mcpServers": {"a": {"command": "x", "args": ["1"]}}}"#);
    let five =
        config("// comment\n{ mcpServers: { a: { command: 'x', args: ['1',], /* c */ }, }, }");
    assert_eq!(strict.servers["a"].kind, five.servers["a"].kind);
}

#[test]
fn json5_infinity_and_nan_become_null() {
    let c = config("{mcpServers: {a: {command: 'x', weird: Infinity, odd: NaN}}}");
    assert_eq!(c.servers["a"].raw["weird"], json!(null));
    assert_eq!(c.servers["a"].raw["odd"], json!(null));
}

#[test]
fn stdio_entry_fields() {
    let c = config(
        r#"{"mcpServers": {"fs": {
            "command": "node", "args": ["srv.js", 8080, true], "cwd": "/srv",
            "env": {"A": "1", "B": null, "N": 3},
            "disabled": true, "name": "Files", "description": "local files",
            "type": "stdio",
            "dev": {"cwd": "/srv", "watch": ["src/**/*.ts"]}
        }}}"#,
    );
    let s = &c.servers["fs"];
    assert_eq!(
        s.kind,
        ServerKind::Stdio {
            command: "node".into(),
            args: vec!["srv.js".into(), "8080".into(), "true".into()],
            cwd: Some("/srv".into()),
        }
    );
    assert_eq!(s.env["A"], EnvValue::Template("1".into()));
    assert_eq!(s.env["B"], EnvValue::Inherit);
    assert_eq!(s.env["N"], EnvValue::Template("3".into()));
    assert!(s.disabled);
    assert_eq!(s.display_name.as_deref(), Some("Files"));
    assert_eq!(s.description.as_deref(), Some("local files"));
    assert_eq!(s.server_type.as_deref(), Some("stdio"));
    let dev = s.dev.as_ref().unwrap();
    assert!(dev.enabled, "dev.enabled defaults to true");
    assert_eq!(dev.watch, ["src/**/*.ts"]);
    assert_eq!(s.config_source, Path::new("/cfg/servers.json"));
    assert_eq!(s.raw["config_source"], json!("/cfg/servers.json"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn dev_defaults() {
    let c = config(r#"{"mcpServers": {"a": {"command": "x", "dev": {"cwd": "/p"}}}}"#);
    let dev = c.servers["a"].dev.clone().unwrap();
    assert!(dev.enabled);
    assert_eq!(dev.watch, mcp_hub_config::DEFAULT_DEV_WATCH);
}

#[test]
fn remote_entry_and_type_mapping() {
    let c = config(
        r#"{"mcpServers": {
            "a": {"url": "https://a.example/mcp", "headers": {"X-Key": "k", "N": 1}},
            "b": {"url": "https://b.example/sse", "type": "sse"},
            "c": {"url": "https://c.example/mcp", "type": "streamable-http"},
            "d": {"url": "https://d.example/mcp", "type": "http"}
        }}"#,
    );
    match &c.servers["a"].kind {
        ServerKind::Remote { url, headers } => {
            assert_eq!(url, "https://a.example/mcp");
            assert_eq!(headers["X-Key"], "k");
            assert_eq!(headers["N"], "1");
        }
        other => panic!("{other:?}"),
    }
    let t = |n: &str| c.servers[n].remote_transport();
    assert_eq!(t("a"), RemoteTransport::Auto);
    assert_eq!(t("b"), RemoteTransport::Sse);
    assert_eq!(t("c"), RemoteTransport::StreamableHttp);
    assert_eq!(t("d"), RemoteTransport::StreamableHttp);
}

#[test]
fn extensions_prefix_and_timeout() {
    let c = config(
        r#"{"mcpServers": {
            "a": {"command": "x"},
            "b": {"command": "x", "prefix": "gh", "timeout": 1500},
            "c": {"command": "x", "prefix": false},
            "d": {"command": "x", "prefix": null},
            "e": {"command": "x", "prefix": ""}
        }}"#,
    );
    assert_eq!(c.servers["a"].prefix, Prefix::Default);
    assert_eq!(c.servers["a"].timeout, None);
    assert_eq!(c.servers["b"].prefix, Prefix::Custom("gh".into()));
    assert_eq!(c.servers["b"].timeout, Some(Duration::from_millis(1500)));
    for n in ["c", "d", "e"] {
        assert_eq!(c.servers[n].prefix, Prefix::Disabled, "{n}");
    }
    assert_eq!(c.servers["b"].prefix_or_name(), Some("gh"));
    assert_eq!(c.servers["a"].prefix_or_name(), Some("a"));
}

#[test]
fn unknown_fields_are_kept() {
    let c = config(
        r#"{"mcpServers": {"a": {"command": "x", "autoApprove": ["t"], "custom_instructions": {"text": "hi"}}},
            "nativeMCPServers": {"n": {}}, "futureKey": 1}"#,
    );
    assert_eq!(c.servers["a"].raw["autoApprove"], json!(["t"]));
    assert_eq!(c.extra["nativeMCPServers"], json!({"n": {}}));
    assert_eq!(c.extra["futureKey"], json!(1));
    assert!(!c.extra.contains_key("mcpServers"));
}

#[test]
fn vscode_servers_key_and_inputs() {
    let c = config(
        r#"{
          "inputs": [{"type": "promptString", "id": "api-key", "password": true, "default": "d"}],
          "servers": {"gh": {"type": "http", "url": "https://api.example/mcp",
                             "headers": {"Authorization": "Bearer ${input:api-key}"}}}
        }"#,
    );
    assert_eq!(c.server_names().collect::<Vec<_>>(), ["gh"]);
    assert_eq!(c.inputs["api-key"]["default"], json!("d"));
    assert!(c.extra.contains_key("inputs"));
}

#[test]
fn servers_wins_over_mcp_servers_with_a_warning() {
    let c = config(
        r#"{"servers": {"a": {"command": "vs"}}, "mcpServers": {"b": {"command": "claude"}}}"#,
    );
    assert_eq!(c.server_names().collect::<Vec<_>>(), ["a"]);
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].message.contains("mcpServers"));
}

#[test]
fn type_mismatch_and_ignored_fields_warn() {
    let c = config(
        r#"{"mcpServers": {
            "a": {"url": "https://x/", "type": "stdio", "args": []},
            "b": {"command": "x", "type": "sse"},
            "c": {"command": "x", "type": "websocket", "headers": {}}
        }}"#,
    );
    let msgs: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 5, "{msgs:#?}");
    assert!(
        msgs.iter()
            .all(|m| m.starts_with("/cfg/servers.json: server '"))
    );
    assert!(msgs.iter().any(|m| m.contains("websocket")));
}

#[test]
fn later_file_replaces_whole_server_and_keeps_position() {
    let c = load_from_strs([
        (
            "/g.json",
            r#"{"mcpServers": {"shared": {"command": "g", "env": {"A": "global", "B": "only-global"}},
                               "g_only": {"command": "x"}},
                "inputs": [{"id": "one", "default": "1"}], "theme": "dark", "keep": true}"#,
        ),
        (
            "/p.json",
            r#"{"mcpServers": {"p_only": {"command": "y"}, "shared": {"command": "p", "env": {"A": "project"}}},
                "inputs": [{"id": "two", "default": "2"}], "theme": "light"}"#,
        ),
    ])
    .unwrap();
    assert_eq!(
        c.server_names().collect::<Vec<_>>(),
        ["shared", "g_only", "p_only"]
    );
    let shared = &c.servers["shared"];
    assert_eq!(shared.env.len(), 1, "no deep merge of env");
    assert_eq!(shared.env["A"], EnvValue::Template("project".into()));
    assert_eq!(shared.config_source, Path::new("/p.json"));
    assert_eq!(c.servers["g_only"].config_source, Path::new("/g.json"));
    assert_eq!(c.extra["theme"], json!("light"));
    assert_eq!(c.extra["keep"], json!(true));
    assert_eq!(c.extra["inputs"], json!([{"id": "two", "default": "2"}]));
    assert_eq!(c.inputs.keys().collect::<Vec<_>>(), ["one", "two"]);
    assert_eq!(
        c.files,
        [PathBuf::from("/g.json"), PathBuf::from("/p.json")]
    );
}

#[test]
fn to_json_is_the_node_merged_shape() {
    let c = config(r#"{"mcpServers": {"a": {"command": "x"}}, "other": 1}"#);
    assert_eq!(
        c.to_json(),
        json!({"other": 1, "mcpServers": {"a": {"command": "x", "config_source": "/cfg/servers.json"}}})
    );
}

#[test]
fn missing_files_are_skipped_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let present = write(
        dir.path(),
        "a.json",
        r#"{"mcpServers": {"a": {"command": "x"}}}"#,
    );
    let missing = dir.path().join("missing.json");
    let c = load(&[missing.clone(), present.clone()]).unwrap();
    assert_eq!(c.skipped, [missing]);
    assert_eq!(c.files, [present]);
    assert_eq!(c.servers.len(), 1);
    assert_eq!(load(&[]).unwrap(), mcp_hub_config::Config::default());
}

#[test]
fn unreadable_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(&[dir.path().to_path_buf()]).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    let bin = dir.path().join("bin.json");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    let err = load(std::slice::from_ref(&bin)).unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    assert!(err.to_string().contains(&bin.display().to_string()));
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.json",
        "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"\n  }\n",
    );
    let err = load(std::slice::from_ref(&path)).unwrap_err();
    match &err {
        ConfigError::Syntax {
            path: p,
            line,
            column,
            ..
        } => {
            assert_eq!(p, &path);
            // The end of the file, where the error is.
            assert_eq!((*line, *column), (5, 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "{}:5:1: invalid JSON5: EOF parsing object: the file ends before the object opened \
             at 2:17 is closed",
            path.display()
        )
    );
    // A file missing only its last `}`: not "1:1", where json5 puts it.
    let err = config_err("{\n \"mcpServers\": {\n  \"a\": {\"command\": \"x\"}\n }");
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                line: 4,
                column: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("object opened at 1:1"), "{err}");
    let err = config_err("{\"a\": [1,\n2");
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                line: 2,
                column: 2,
                ..
            }
        ),
        "{err:?}"
    );

    let err = config_err("{\"mcpServers\": {\"a\": {\"command\": \"x\",, }}}");
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                line: 1,
                column: 38,
                ..
            }
        ),
        "{err:?}"
    );
    let err = config_err("");
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                line: 1,
                column: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn top_level_shape_errors() {
    let err = config_err("[1, 2]");
    assert!(matches!(err, ConfigError::InvalidFile { .. }), "{err:?}");
    let err = config_err("{\n\"mcpServers\": [1]}");
    assert_eq!(
        err.to_string(),
        "/cfg/servers.json:2: key 'mcpServers': must be an object mapping server names to entries"
    );
    // `null` server maps are simply empty.
    assert!(config(r#"{"mcpServers": null}"#).servers.is_empty());
}

fn field_error(entry: &str) -> (String, String, Option<usize>) {
    let text = format!("{{\n\"mcpServers\": {{\n\"s\": {entry}\n}}\n}}");
    match config_err(&text) {
        ConfigError::InvalidServer {
            server,
            field,
            line,
            message,
            path,
        } => {
            assert_eq!(server, "s");
            assert_eq!(path, Path::new("/cfg/servers.json"));
            (field, message, line)
        }
        other => panic!("{entry}: {other:?}"),
    }
}

#[test]
fn bad_fields_name_file_server_and_key() {
    let cases: &[(&str, &str)] = &[
        (r#"{"command": "x", "url": "https://h/"}"#, ""),
        (r#"{"args": []}"#, ""),
        (r#"{"command": ""}"#, "command"),
        (r#"{"command": 5}"#, "command"),
        (r#"{"url": "ftp://h/"}"#, "url"),
        (r#"{"url": "https://"}"#, "url"),
        (r#"{"command": "x", "args": "a b"}"#, "args"),
        (r#"{"command": "x", "args": ["a", {"b": 1}]}"#, "args[1]"),
        (r#"{"command": "x", "env": []}"#, "env"),
        (r#"{"command": "x", "env": {"K": ["v"]}}"#, "env.K"),
        (
            r#"{"url": "https://h/", "headers": {"H": null}}"#,
            "headers.H",
        ),
        (r#"{"command": "x", "cwd": 1}"#, "cwd"),
        (r#"{"command": "x", "disabled": "yes"}"#, "disabled"),
        (r#"{"command": "x", "name": 1}"#, "name"),
        (r#"{"command": "x", "description": []}"#, "description"),
        (r#"{"command": "x", "type": 1}"#, "type"),
        (r#"{"command": "x", "prefix": 3}"#, "prefix"),
        (r#"{"command": "x", "timeout": -1}"#, "timeout"),
        (r#"{"command": "x", "timeout": 1.5}"#, "timeout"),
        (r#"{"command": "x", "timeout": 0}"#, "timeout"),
        (r#"{"command": "x", "dev": {}}"#, "dev.cwd"),
        (r#"{"command": "x", "dev": {"cwd": "rel/dir"}}"#, "dev.cwd"),
        (
            r#"{"command": "x", "dev": {"cwd": "/a", "enabled": "yes"}}"#,
            "dev.enabled",
        ),
        (
            r#"{"command": "x", "dev": {"cwd": "/a", "watch": "*.js"}}"#,
            "dev.watch",
        ),
        (
            r#"{"command": "x", "dev": {"cwd": "/a", "watch": [1]}}"#,
            "dev.watch[0]",
        ),
        (r#"{"command": "x", "dev": true}"#, "dev"),
        (r#"{"url": "https://h/", "dev": {"cwd": "/a"}}"#, "dev"),
        (
            r#"{"url": "https://h/", "auth": "client_credentials"}"#,
            "auth",
        ),
        (
            r#"{"url": "https://h/", "auth": {"type": "password"}}"#,
            "auth.type",
        ),
        (
            r#"{"url": "https://h/", "auth": {"clientId": "x"}}"#,
            "auth.clientId",
        ),
        (
            r#"{"url": "https://h/", "auth": {"client_secret": 5}}"#,
            "auth.client_secret",
        ),
        (r#"{"url": "https://h/", "auth": {"dpop": 1}}"#, "auth.dpop"),
        (
            r#"{"url": "https://h/", "auth": {"scopes": [1]}}"#,
            "auth.scopes",
        ),
        (r#"{"url": "https://h/", "oauth": []}"#, "oauth"),
        (
            r#"{"url": "https://h/", "oauth": {"client_id": {"a": 1}}}"#,
            "oauth.client_id",
        ),
        ("\"just a string\"", ""),
    ];
    for (entry, want) in cases {
        let (field, message, line) = field_error(entry);
        assert_eq!(&field, want, "{entry}: {message}");
        assert_eq!(line, Some(3), "{entry}");
        assert!(!message.is_empty());
    }
}

#[test]
fn auth_errors_never_quote_a_credential() {
    let (_, message, _) =
        field_error(r#"{"url": "https://h/", "auth": {"client_secret": ["s3cr3t-value"]}}"#);
    assert!(!message.contains("s3cr3t"), "{message}");
}

#[test]
fn bad_field_display_and_line_of_the_key() {
    let text = "{\n  mcpServers: {\n    good: {command: 'x'},\n    bad: {\n      command: 'x',\n      env: {\n        OK: 'v',\n        K: [1],\n      },\n    },\n  },\n}";
    let err = config_err(text);
    assert_eq!(
        err.to_string(),
        "/cfg/servers.json:8: server 'bad': field 'env.K': must be a string or null"
    );
    assert_eq!(err.server(), Some("bad"));
    let err = config_err(r#"{"mcpServers": {"m": {"command": "x", "url": "https://h/"}}}"#);
    assert_eq!(
        err.to_string(),
        "/cfg/servers.json:1: server 'm': cannot mix stdio (`command`) and remote (`url`) fields"
    );
}

#[test]
fn urls_with_placeholders_are_checked_after_resolution() {
    let c = config(
        r#"{"mcpServers": {"a": {"url": "${URL}"}, "b": {"url": "http://localhost:${PORT}/mcp"}}}"#,
    );
    assert_eq!(c.servers.len(), 2);
}

#[test]
fn empty_server_name_is_rejected() {
    let err = config_err(r#"{"mcpServers": {"": {"command": "x"}}}"#);
    assert!(
        err.to_string().contains("server names must not be empty"),
        "{err}"
    );
}

#[test]
fn reporting_all_collects_every_error_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.json",
        r#"{"mcpServers": {"x": {"command": 1}, "y": {"url": "nope"}, "ok": {"command": "z"}}}"#,
    );
    let b = write(dir.path(), "b.json", "{oops");
    let c = write(dir.path(), "c.json", r#"{"mcpServers": {"w": {}}}"#);
    let errors = load_reporting_all(&[a, b, c]).unwrap_err();
    let servers: Vec<_> = errors.iter().map(|e| e.server().unwrap_or("-")).collect();
    assert_eq!(servers, ["x", "y", "-", "w"]);
    assert!(matches!(errors[2], ConfigError::Syntax { .. }));
}

#[test]
fn isolation_max_instances_and_roots() {
    use mcp_hub_config::{DEFAULT_MAX_INSTANCES, Isolation};
    let c = config(
        r#"{"mcpServers": {
            "a": {"command": "x"},
            "b": {"command": "x", "isolation": "session"},
            "c": {"command": "x", "isolation": "session", "maxInstances": 3,
                  "roots": ["file:///home/me/p", "/srv/data"]},
            "d": {"url": "http://127.0.0.1:1/mcp", "isolation": "shared"}
        }}"#,
    );
    assert_eq!(c.servers["a"].isolation, Isolation::Shared);
    assert_eq!(c.servers["a"].roots, None);
    assert_eq!(
        c.servers["b"].isolation,
        Isolation::Session {
            max_instances: DEFAULT_MAX_INSTANCES
        }
    );
    assert_eq!(
        c.servers["c"].isolation,
        Isolation::Session { max_instances: 3 }
    );
    assert_eq!(
        c.servers["c"].roots.as_deref(),
        Some(&["file:///home/me/p".to_owned(), "/srv/data".to_owned()][..])
    );
    assert_eq!(c.servers["d"].isolation, Isolation::Shared);
    for (bad, key) in [
        (
            r#"{"command": "x", "isolation": "per-client"}"#,
            "isolation",
        ),
        (r#"{"command": "x", "isolation": true}"#, "isolation"),
        (
            r#"{"command": "x", "isolation": "session", "maxInstances": 0}"#,
            "maxInstances",
        ),
        (r#"{"command": "x", "roots": "/tmp"}"#, "roots"),
        (r#"{"command": "x", "roots": ["relative/dir"]}"#, "roots"),
    ] {
        let err = config_err(&format!(r#"{{"mcpServers": {{"s": {bad}}}}}"#));
        assert!(err.to_string().contains(key), "{bad}: {err}");
    }
}

#[test]
fn tool_filters_and_profiles_load_with_positions() {
    let c = load_from_strs([
        (
            "global.json",
            r#"{"mcpServers": {"a": {"command": "x", "tools": {"exclude": ["secret_*"]}}, "b": {"command": "y"}},
  "profiles": {"dev": {"servers": ["a"]}, "ops": {"servers": ["b"]}}}"#,
        ),
        (
            "project.json5",
            "{profiles: {dev: {mode: 'search', servers: {'*': {tools: {include: ['get*']}}}}}}",
        ),
    ])
    .unwrap();
    assert_eq!(c.servers["a"].tools.exclude, ["secret_*"]);
    assert!(c.servers["b"].tools.is_empty());
    // Profiles merge by name: the later `dev` replaces the earlier one wholesale.
    let dev = &c.profiles["dev"];
    assert_eq!(dev.mode, mcp_hub_config::ProfileMode::Search);
    assert_eq!(dev.servers[0].pattern, "*");
    assert_eq!(dev.servers[0].tools.include, ["get*"]);
    assert_eq!(dev.config_source, Path::new("project.json5"));
    assert_eq!(c.profiles.get_index_of("ops"), Some(1));
    assert!(!c.extra.contains_key("profiles"));
    assert_eq!(c.to_json()["profiles"]["ops"], json!({"servers": ["b"]}));

    let err = config_err(
        "{\n  \"mcpServers\": {\n    \"a\": {\n      \"command\": \"x\",\n      \"tools\": {\"include\": [\"ok\", \"bad[\"]}\n    }\n  }\n}",
    );
    assert_eq!(
        err.to_string(),
        "/cfg/servers.json:5: server 'a': field 'tools.include[1]': invalid glob pattern: unclosed character class; missing ']'"
    );
    let err = config_err(
        "{\n  \"mcpServers\": {},\n  \"profiles\": {\n    \"dev\": {\n      \"servers\": [\"a\"],\n      \"mode\": \"fast\"\n    }\n  }\n}",
    );
    assert_eq!(
        err.to_string(),
        "/cfg/servers.json:6: profile 'dev': field 'mode': must be \"full\" or \"search\""
    );
    let err = config_err(r#"{"profiles": {"a b": {"servers": []}}}"#);
    assert!(matches!(err, ConfigError::InvalidProfile { .. }), "{err}");
    let c = config(
        r#"{"mcpServers": {"a": {"command": "x"}}, "profiles": {"p": {"servers": ["a", "typo", "z*"]}}}"#,
    );
    let warnings: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("no server named 'typo'"),
        "{warnings:?}"
    );
}
