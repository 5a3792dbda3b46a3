use std::path::PathBuf;

use mcp_hub_config::{
    CommandError, ConfigError, DenyCommands, MapEnv, RemoteTransport, ResolveContext, ResolvedKind,
    ShellRunner, load_from_strs,
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
fn lookup_precedence_server_env_then_hub_env_then_process_then_predefined() {
    let c = stdio(
        r#"{"command": "x", "env": {"A": "server"},
            "args": ["${A}", "${B}", "${C}", "${userHome}"]}"#,
    );
    let fx = Fixture::new(&[
        ("A", "process"),
        ("B", "process"),
        ("C", "process"),
        ("userHome", "p"),
    ])
    .hub_env(&[("A", "hub"), ("B", "hub")]);
    let r = fx.resolve(&c, "s").unwrap();
    assert_eq!(stdio_parts(&r).1, ["server", "hub", "process", "p"]);
}

#[test]
fn env_values_resolve_in_dependency_order() {
    let c = stdio(
        r#"{"command": "x", "env": {
            "DB_URL": "postgres://app:${DB_PASSWORD}@${DB_HOST}/app",
            "DB_HOST": "localhost",
            "DB_PASSWORD": "${cmd: pass db}"
        }, "args": ["${DB_URL}"]}"#,
    );
    let fx = Fixture::new(&[]).runner(FakeRunner::default().answer("pass db", "s3cr3t\n"));
    let r = fx.resolve(&c, "s").unwrap();
    assert_eq!(
        env_of(&r, "DB_URL"),
        Some("postgres://app:s3cr3t@localhost/app")
    );
    assert_eq!(stdio_parts(&r).1, ["postgres://app:s3cr3t@localhost/app"]);
    assert_eq!(*fx.runner.calls.borrow(), ["pass db"], "memoized: one run");
    // The child's env keeps the declaration order.
    let keys: Vec<_> = stdio_parts(&r).2.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["DB_URL", "DB_HOST", "DB_PASSWORD"]);
}

#[test]
fn a_key_that_uses_itself_gets_the_hub_value() {
    let c = stdio(r#"{"command": "x", "env": {"PATH": "${PATH}:/opt/bin"}}"#);
    let r = Fixture::new(&[("PATH", "/usr/bin")])
        .resolve(&c, "s")
        .unwrap();
    assert_eq!(env_of(&r, "PATH"), Some("/usr/bin:/opt/bin"));
}

#[test]
fn env_cycles_are_reported() {
    let c =
        stdio(r#"{"command": "x", "env": {"A": "${B}", "B": "x${C}", "C": "${A}", "D": "ok"}}"#);
    let err = Fixture::new(&[("A", "hub")]).resolve(&c, "s").unwrap_err();
    match &err {
        ConfigError::EnvCycle { server, cycle } => {
            assert_eq!(server, "s");
            assert_eq!(cycle, &["A", "B", "C", "A"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "server 's': env values refer to each other in a cycle: A -> B -> C -> A"
    );
    let report = c.resolve_all(&Fixture::new(&[]).ctx());
    assert_eq!(
        report.errors.len(),
        1,
        "one cycle, reported once: {:?}",
        report.errors
    );
}

#[test]
fn null_env_inherits_and_fails_when_missing() {
    let c = stdio(r#"{"command": "x", "env": {"DEBUG": null, "GLOBAL": null, "E": "", "F": ""}}"#);
    let fx = Fixture::new(&[("DEBUG", "1"), ("E", "from-hub")]).hub_env(&[("GLOBAL", "g")]);
    let r = fx.resolve(&c, "s").unwrap();
    assert_eq!(env_of(&r, "DEBUG"), Some("1"));
    assert_eq!(env_of(&r, "GLOBAL"), Some("g"));
    assert_eq!(env_of(&r, "E"), Some("from-hub"));
    assert_eq!(env_of(&r, "F"), Some(""));

    let c = stdio(r#"{"command": "x", "env": {"MISSING": null}}"#);
    let err = Fixture::new(&[]).resolve(&c, "s").unwrap_err();
    assert_eq!(
        err.to_string(),
        "server 's': field 'env.MISSING': variable 'MISSING' is not defined"
    );
}

#[test]
fn child_env_is_safe_list_then_hub_env_then_server_env() {
    let c = stdio(r#"{"command": "x", "env": {"SHARED": "server", "OWN": "o"}}"#);
    let fx = Fixture::new(&[
        ("HOME", "/home/ada"),
        ("PATH", "/usr/bin"),
        ("TERM", "xterm"),
        ("SECRET_OF_THE_HUB", "nope"),
        ("SHARED", "process"),
    ])
    .hub_env(&[("SHARED", "hub"), ("GLOBAL_TOKEN", "g")]);
    let r = fx.resolve(&c, "s").unwrap();
    let env = stdio_parts(&r).2;
    assert_eq!(
        env,
        [
            ("HOME".to_owned(), "/home/ada".to_owned()),
            ("PATH".into(), "/usr/bin".into()),
            ("TERM".into(), "xterm".into()),
            ("SHARED".into(), "server".into()),
            ("GLOBAL_TOKEN".into(), "g".into()),
            ("OWN".into(), "o".into()),
        ]
    );
}

#[test]
fn hub_env_is_visible_to_placeholders_and_injected_into_every_server() {
    let c = config(
        r#"{"mcpServers": {"a": {"command": "x", "args": ["${input:api-key}"]}, "b": {"command": "y"}}}"#,
    );
    let fx = Fixture::new(&[]).hub_env(&[("input:api-key", "k")]);
    let a = fx.resolve(&c, "a").unwrap();
    assert_eq!(stdio_parts(&a).1, ["k"]);
    let b = fx.resolve(&c, "b").unwrap();
    assert_eq!(env_of(&b, "input:api-key"), Some("k"));
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
fn failing_command_names_server_field_raw_command_and_stderr_but_no_secret() {
    let c = stdio(r#"{"command": "x", "env": {"PW": "${cmd: op read ${env:SECRET_PATH}}"}}"#);
    let fx = Fixture::new(&[("SECRET_PATH", "s3cr3t-path")])
        .runner(FakeRunner::default().fail("op read s3cr3t-path", "[ERROR] not signed in"));
    let err = fx.resolve(&c, "s").unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        "server 's': field 'env.PW': command `op read ${env:SECRET_PATH}` failed: exit status: 1: [ERROR] not signed in"
    );
    assert!(!msg.contains("s3cr3t"));
    assert!(matches!(
        err,
        ConfigError::Command {
            source: CommandError::Failed { .. },
            ..
        }
    ));
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
fn secrets_never_reach_errors_or_debug_output() {
    let c = config(
        r#"{"mcpServers": {
            "s": {"command": "x", "args": ["--token=${TOKEN}"], "env": {"T": "${TOKEN}", "L": "literal-secret"}},
            "r": {"url": "https://user:pw-secret@h/mcp?key=${TOKEN}", "headers": {"A": "${TOKEN}"}},
            "bad": {"command": "x", "env": {"T": "${TOKEN}"}, "args": ["${MISSING}"]}
        }}"#,
    );
    let fx = Fixture::new(&[("TOKEN", "tok-SECRET")]);
    let ctx = fx.ctx();
    for name in ["s", "r"] {
        let r = c.resolve_server(name, &ctx).unwrap();
        let dbg = format!("{r:?} {r:#?} {:?}", c.servers[name]);
        for secret in ["tok-SECRET", "literal-secret", "pw-secret"] {
            assert!(!dbg.contains(secret), "{name}: {dbg}");
        }
    }
    let err = c.resolve_server("bad", &ctx).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("tok-SECRET"));
    assert!(!format!("{ctx:?}").contains("tok-SECRET"));
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

#[test]
fn from_env_reads_home_and_mcp_hub_env() {
    let env = MapEnv::from_iter([("HOME", "/home/ada"), ("MCP_HUB_ENV", r#"{"G": "1"}"#)]);
    let ctx = ResolveContext::from_env(&env, &DenyCommands).unwrap();
    assert_eq!(ctx.user_home, PathBuf::from("/home/ada"));
    assert_eq!(ctx.hub_env["G"], "1");
    let bad = MapEnv::from_iter([("MCP_HUB_ENV", "not json")]);
    let err = ResolveContext::from_env(&bad, &DenyCommands).unwrap_err();
    assert!(
        err.to_string().starts_with("MCP_HUB_ENV: not valid JSON"),
        "{err}"
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

#[test]
fn every_resolved_value_is_listed_as_a_secret_but_predefined_and_inherited_ones() {
    let c = config(
        r#"{"inputs": [{"id": "region", "default": "eu-west-9"}],
        "mcpServers": {
            "s": {"command": "/opt/${env:CMD_KEY}/run", "args": ["${HOME}", "${workspaceFolder}", "${input:region}"],
                  "cwd": "${HOME}/w", "env": {"TOKEN": "${cmd: pass show t}", "LITERAL": "plain-literal", "REF": "${LITERAL}"}},
            "r": {"url": "https://u:${cmd: pass show pw}@h.example/${env:PATH_KEY}/mcp?k=${input:key}"}
        }}"#,
    );
    let fx = Fixture::new(&[
        ("CMD_KEY", "cmd-key-value"),
        ("PATH_KEY", "path-key-value"),
        ("HOME", "/home/ada"),
    ])
    .hub_env(&[("input:key", "input-key-value")])
    .runner(
        FakeRunner::default()
            .answer("pass show t", "token-value\n")
            .answer("pass show pw", "password-value"),
    );
    let s = fx.resolve(&c, "s").unwrap();
    let mut got = s.secrets.clone();
    got.sort();
    assert_eq!(
        got,
        ["cmd-key-value", "eu-west-9", "plain-literal", "token-value"],
        "HOME and workspaceFolder are not secrets; a literal env value used elsewhere is"
    );
    let r = fx.resolve(&c, "r").unwrap();
    let mut got = r.secrets.clone();
    got.sort();
    assert_eq!(got, ["input-key-value", "password-value", "path-key-value"]);
    let redactor = mcp_hub_config::Redactor::new();
    redactor.add(&r.secrets);
    let ResolvedKind::Remote { url, .. } = &r.kind else {
        panic!("remote")
    };
    assert_eq!(
        redactor.redact(url),
        "https://u:[redacted]@h.example/[redacted]/mcp?k=[redacted]"
    );
    assert!(!format!("{r:?}").contains("value"), "{r:?}");
}

#[test]
fn a_failing_command_that_echoes_a_resolved_value_does_not_show_it() {
    let c = stdio(r#"{"command": "x", "env": {"T": "${cmd: login --token ${env:TOKEN}}"}}"#);
    let fx = Fixture::new(&[("TOKEN", "tok-value-123")]).runner(
        FakeRunner::default().fail("login --token tok-value-123", "bad token tok-value-123"),
    );
    let err = fx.resolve(&c, "s").unwrap_err().to_string();
    assert!(err.contains("bad token [redacted]"), "{err}");
    assert!(!err.contains("tok-value-123"), "{err}");
}
