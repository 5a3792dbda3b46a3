use std::path::PathBuf;

use mcp_hub_config::{
    ConfigError, DenyCommands, MapEnv, RemoteTransport, ResolveContext, ResolvedKind, ShellRunner,
    load_from_strs,
};

use crate::common::{FakeRunner, Fixture, config, env_of, stdio, stdio_parts};

#[test]
fn variables_in_every_field() {
    let c = config(
        r#"{"mcpServers": {
            "s": {"command": "${BIN}/run", "args": ["--user=${env:USER}", "${HOME}"], "cwd": "${HOME}/w",
                  "env": {"X": "${USER}"}},
            "r": {"url": "https://${HOST}/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}
        }}"#,
    );
    let fx = Fixture::new(&[
        ("BIN", "/opt/bin"),
        ("USER", "ada"),
        ("HOME", "/home/ada"),
        ("HOST", "mcp.example"),
        ("TOKEN", "t0k"),
    ]);
    let s = fx.resolve(&c, "s").unwrap();
    match &s.kind {
        ResolvedKind::Stdio {
            command, args, cwd, ..
        } => {
            assert_eq!(command, "/opt/bin/run");
            assert_eq!(args, &["--user=ada", "/home/ada"]);
            assert_eq!(cwd.as_deref(), Some(std::path::Path::new("/home/ada/w")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(env_of(&s, "X"), Some("ada"));
    let r = fx.resolve(&c, "r").unwrap();
    assert_eq!(
        r.kind,
        ResolvedKind::Remote {
            url: "https://mcp.example/mcp".into(),
            headers: vec![("Authorization".into(), "Bearer t0k".into())],
            transport: RemoteTransport::Auto,
        }
    );
}

#[test]
fn auth_and_oauth_strings_are_resolved_for_remote_servers_only() {
    let c = config(
        r#"{"mcpServers": {
            "r": {"url": "https://h/mcp",
                  "oauth": {"client_id": "hub", "client_secret": "${env:CORP_SECRET}", "scopes": ["${SCOPE}", "b"]},
                  "auth": {"type": "client_credentials", "client_id": "svc", "client_secret": "${cmd: vault read x}",
                           "scopes": "a ${SCOPE}", "dpop": true}},
            "s": {"command": "x", "auth": {"type": "client_credentials", "client_secret": "${cmd: never run}"}}
        }}"#,
    );
    let fx = Fixture::new(&[("CORP_SECRET", "c0rp"), ("SCOPE", "mcp:read")])
        .runner(crate::common::FakeRunner::default().answer("vault read x", "v4ult"));
    let r = fx.resolve(&c, "r").unwrap();
    let oauth = r.oauth.as_ref().unwrap();
    assert_eq!(oauth["client_secret"], "c0rp");
    assert_eq!(oauth["scopes"], serde_json::json!(["mcp:read", "b"]));
    let auth = r.auth.as_ref().unwrap();
    assert_eq!(auth["client_secret"], "v4ult");
    assert_eq!(auth["scopes"], "a mcp:read");
    assert_eq!(auth["dpop"], true);
    assert_eq!(auth["type"], "client_credentials");
    // The raw entry keeps the templates; Debug shows neither.
    assert_eq!(r.raw["auth"]["client_secret"], "${cmd: vault read x}");
    let dbg = format!("{r:?}");
    assert!(!dbg.contains("v4ult") && !dbg.contains("c0rp"), "{dbg}");
    // A stdio server's `auth` is ignored (with a load warning), so its command never runs.
    let s = fx.resolve(&c, "s").unwrap();
    assert!(s.auth.is_none());
    assert_eq!(fx.runner.calls.borrow().as_slice(), ["vault read x"]);
}

#[test]
fn an_unresolvable_credential_names_its_key() {
    let c = config(
        r#"{"mcpServers": {"r": {"url": "https://h/mcp", "auth": {"client_secret": "${NOPE}"}}}}"#,
    );
    let err = Fixture::new(&[]).resolve(&c, "r").unwrap_err().to_string();
    assert!(err.contains("auth.client_secret"), "{err}");
}

#[test]
fn predefined_variables() {
    let c = stdio(
        r#"{"command": "x", "args": ["${workspaceFolder}", "${cwd}", "${workspaceFolderBasename}",
            "${userHome}", "a${pathSeparator}b", "c${/}d"]}"#,
    );
    let r = Fixture::new(&[]).resolve(&c, "s").unwrap();
    let sep = std::path::MAIN_SEPARATOR;
    assert_eq!(
        stdio_parts(&r).1,
        [
            "/work/proj".to_owned(),
            "/work/proj".into(),
            "proj".into(),
            "/home/ada".into(),
            format!("a{sep}b"),
            format!("c{sep}d"),
        ]
    );
}

#[test]
fn inputs_fall_back_to_vscode_defaults() {
    let c = config(
        r#"{"inputs": [{"id": "region", "type": "promptString", "default": "eu"}, {"id": "nodefault"}],
            "servers": {"s": {"command": "x", "args": ["${input:region}"]},
                        "t": {"command": "x", "args": ["${input:nodefault}"]}}}"#,
    );
    let r = Fixture::new(&[]).resolve(&c, "s").unwrap();
    assert_eq!(stdio_parts(&r).1, ["eu"]);
    let r = Fixture::new(&[])
        .hub_env(&[("input:region", "us")])
        .resolve(&c, "s")
        .unwrap();
    assert_eq!(
        stdio_parts(&r).1,
        ["us"],
        "MCP_HUB_ENV wins over the default"
    );
    let err = Fixture::new(&[]).resolve(&c, "t").unwrap_err();
    assert_eq!(
        err.to_string(),
        "server 't': field 'args[0]': variable 'input:nodefault' is not defined"
    );
}

#[test]
fn unknown_variables_name_server_field_and_variable() {
    let c = config(
        r#"{"mcpServers": {"web": {"url": "https://h/mcp", "headers": {"X-Api-Key": "${API_KEY}"}}}}"#,
    );
    let err = Fixture::new(&[]).resolve(&c, "web").unwrap_err();
    match &err {
        ConfigError::UnresolvedVariable {
            server,
            field,
            variable,
        } => {
            assert_eq!(
                (server.as_str(), field.as_str(), variable.as_str()),
                ("web", "headers.X-Api-Key", "API_KEY")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn commands_trim_memoize_and_resolve_inner_placeholders_first() {
    let c = stdio(
        r#"{"command": "${cmd: which tool}", "args": ["${cmd: op read ${env:ITEM}}", "${cmd:op read ${ITEM}}"],
            "env": {"T": "${cmd: op read ${env:ITEM} }"}}"#,
    );
    let fx = Fixture::new(&[("ITEM", "vault/x")]).runner(
        FakeRunner::default()
            .answer("which tool", "/usr/bin/tool\n")
            .answer("op read vault/x", "  v  \n"),
    );
    let r = fx.resolve(&c, "s").unwrap();
    let (command, args, _) = stdio_parts(&r);
    assert_eq!(command, "/usr/bin/tool");
    assert_eq!(args, ["v", "v"]);
    assert_eq!(env_of(&r, "T"), Some("v"));
    assert_eq!(*fx.runner.calls.borrow(), ["op read vault/x", "which tool"]);
}

#[test]
fn resolve_server_stops_at_the_first_error() {
    let c = stdio(
        r#"{"command": "x", "env": {"A": "${NOPE}", "B": "${cmd: expensive}"}, "args": ["${cmd: also}"]}"#,
    );
    let fx = Fixture::new(&[]);
    let err = fx.resolve(&c, "s").unwrap_err();
    assert!(matches!(err, ConfigError::UnresolvedVariable { .. }));
    assert!(
        fx.runner.calls.borrow().is_empty(),
        "no command ran after the failure"
    );
}

#[test]
fn legacy_bare_dollar_args() {
    let c =
        stdio(r#"{"command": "x", "args": ["$HOME", "$$HOME", "--home=$HOME", "$HOME/x", "$"]}"#);
    let r = Fixture::new(&[("HOME", "/home/ada")])
        .resolve(&c, "s")
        .unwrap();
    assert_eq!(
        stdio_parts(&r).1,
        ["/home/ada", "$HOME", "--home=$HOME", "$HOME/x", "$"]
    );
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("args[0]"));

    let err = Fixture::new(&[]).resolve(&c, "s").unwrap_err();
    assert_eq!(
        err.to_string(),
        "server 's': field 'args[0]': variable 'HOME' is not defined"
    );
}

#[test]
fn escapes_give_literal_placeholders_everywhere() {
    let c = stdio(
        r#"{"command": "echo$${X}", "args": ["$${HOME}", "cost: $$5", "${unterminated"], "cwd": "/tmp/$${d}",
            "env": {"TEMPLATE": "Hello $${name}"}}"#,
    );
    let r = Fixture::new(&[("HOME", "/h")]).resolve(&c, "s").unwrap();
    match &r.kind {
        ResolvedKind::Stdio {
            command, args, cwd, ..
        } => {
            assert_eq!(command, "echo${X}");
            assert_eq!(args, &["${HOME}", "cost: $$5", "${unterminated"]);
            assert_eq!(cwd.as_deref(), Some(std::path::Path::new("/tmp/${d}")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(env_of(&r, "TEMPLATE"), Some("Hello ${name}"));
}

#[test]
fn resolved_values_are_not_rescanned() {
    let c = stdio(r#"{"command": "x", "args": ["${A}"], "env": {"E": "${A}"}}"#);
    let r = Fixture::new(&[("A", "${cmd: rm -rf /}"), ("B", "b")])
        .resolve(&c, "s")
        .unwrap();
    assert_eq!(stdio_parts(&r).1, ["${cmd: rm -rf /}"]);
    assert_eq!(env_of(&r, "E"), Some("${cmd: rm -rf /}"));
}

#[test]
fn remote_servers_use_their_env_for_headers_and_check_the_resolved_url() {
    let c = config(
        r#"{"mcpServers": {
            "r": {"url": "${BASE}/mcp", "type": "sse", "env": {"TOKEN": "${cmd: get-token}"},
                  "headers": {"Authorization": "Bearer ${TOKEN}"}},
            "bad": {"url": "${BASE_BAD}/mcp?key=secret-q"}
        }}"#,
    );
    let fx = Fixture::new(&[("BASE", "https://h.example"), ("BASE_BAD", "h.example")])
        .runner(FakeRunner::default().answer("get-token", "tok"));
    let r = fx.resolve(&c, "r").unwrap();
    assert_eq!(
        r.kind,
        ResolvedKind::Remote {
            url: "https://h.example/mcp".into(),
            headers: vec![("Authorization".into(), "Bearer tok".into())],
            transport: RemoteTransport::Sse,
        }
    );
    let err = fx.resolve(&c, "bad").unwrap_err();
    assert_eq!(
        err.to_string(),
        "server 'bad': field 'url': does not resolve to an absolute http:// or https:// URL"
    );
}

#[test]
fn dev_cwd_may_use_placeholders_and_must_end_absolute() {
    let c = config(
        r#"{"mcpServers": {
            "a": {"command": "x", "dev": {"cwd": "${workspaceFolder}/srv", "enabled": false}},
            "b": {"command": "x", "dev": {"cwd": "${REL}"}}
        }}"#,
    );
    let fx = Fixture::new(&[("REL", "relative/dir")]);
    let a = fx.resolve(&c, "a").unwrap();
    let dev = a.dev.unwrap();
    assert_eq!(dev.cwd, PathBuf::from("/work/proj/srv"));
    assert!(!dev.enabled);
    let err = fx.resolve(&c, "b").unwrap_err();
    assert_eq!(
        err.to_string(),
        "server 'b': field 'dev.cwd': does not resolve to an absolute path"
    );
}

#[test]
fn other_fields_pass_through() {
    let c = config(
        r#"{"mcpServers": {"a": {"command": "x", "disabled": true, "name": "A", "description": "d",
            "prefix": "p", "timeout": 10, "extra": 1}}}"#,
    );
    let r = Fixture::new(&[]).resolve(&c, "a").unwrap();
    assert!(r.disabled);
    assert_eq!(r.display_name.as_deref(), Some("A"));
    assert_eq!(r.description.as_deref(), Some("d"));
    assert_eq!(r.prefix, mcp_hub_config::Prefix::Custom("p".into()));
    assert_eq!(r.timeout, Some(std::time::Duration::from_millis(10)));
    assert_eq!(r.raw["extra"], serde_json::json!(1));
    assert_eq!(r.config_source, PathBuf::from("/cfg/servers.json"));
}

#[test]
fn unknown_server() {
    let c = config(r#"{"mcpServers": {}}"#);
    let err = Fixture::new(&[]).resolve(&c, "ghost").unwrap_err();
    assert_eq!(err.to_string(), "no server named 'ghost' is configured");
}

#[test]
fn malformed_placeholders_are_errors() {
    let c = stdio(r#"{"command": "x", "args": ["${}", "${cmd:}"]}"#);
    let report = c.resolve_all(&Fixture::new(&[]).ctx());
    let msgs: Vec<_> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "server 's': field 'args[0]': empty placeholder `${}`",
            "server 's': field 'args[1]': `${cmd:}` has no command",
        ]
    );
}

#[test]
fn resolve_all_reports_every_error_and_every_success() {
    let c = config(
        r#"{"mcpServers": {
            "ok": {"command": "x", "args": ["${cmd: shared}"]},
            "two": {"command": "${NOPE1}", "env": {"A": "${NOPE2}", "B": "${A}"}, "args": ["${NOPE3} ${NOPE4}"]},
            "cmd": {"url": "https://h/", "headers": {"H": "${cmd: broken}", "I": "${cmd: shared}"}},
            "off": {"command": "x", "disabled": true, "cwd": "${NOPE5}"}
        }}"#,
    );
    let fx = Fixture::new(&[]).runner(
        FakeRunner::default()
            .answer("shared", "s")
            .fail("broken", "oops"),
    );
    let report = c.resolve_all(&fx.ctx());
    let names: Vec<_> = report.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ok"]);
    let msgs: Vec<_> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "server 'two': field 'env.A': variable 'NOPE2' is not defined",
            "server 'two': field 'command': variable 'NOPE1' is not defined",
            "server 'two': field 'args[0]': variable 'NOPE3' is not defined",
            "server 'two': field 'args[0]': variable 'NOPE4' is not defined",
            "server 'cmd': field 'headers.H': command `broken` failed: exit status: 1: oops",
            "server 'off': field 'cwd': variable 'NOPE5' is not defined",
        ]
    );
    assert_eq!(
        *fx.runner.calls.borrow(),
        ["shared", "broken"],
        "each distinct command once per pass"
    );
}

#[test]
fn deny_commands_blocks_cmd_placeholders() {
    let c = stdio(r#"{"command": "x", "args": ["${cmd: touch /tmp/should-not-exist}"]}"#);
    let env = MapEnv::new();
    let ctx = ResolveContext::new(&env, &DenyCommands, "/", "/");
    let err = c.resolve_server("s", &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "server 's': field 'args[0]': command `touch /tmp/should-not-exist` failed: commands are not allowed here"
    );
}

#[cfg(unix)]
#[test]
fn real_shell_commands() {
    let c = load_from_strs([(
        "/c.json",
        r#"{"mcpServers": {
            "ok": {"command": "x", "env": {"GREETING": "${cmd: printf '  hi %s  ' \"$USER_NAME\"}"}},
            "fail": {"command": "x", "env": {"V": "${cmd: echo 'vault locked' >&2; exit 2}"}}
        }}"#,
    )])
    .unwrap();
    let env = MapEnv::new();
    let runner = ShellRunner::new(std::time::Duration::from_secs(10));
    let ctx = ResolveContext::new(&env, &runner, "/", "/");
    let ok = c.resolve_server("ok", &ctx).unwrap();
    // The shell sees the hub's real environment, where USER_NAME is (almost surely) unset.
    assert_eq!(env_of(&ok, "GREETING"), Some("hi"));
    let err = c.resolve_server("fail", &ctx).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("server 'fail': field 'env.V': command `echo 'vault locked' >&2; exit 2` failed: exit status: 2"), "{msg}");
    assert!(msg.ends_with("vault locked"), "{msg}");
}
