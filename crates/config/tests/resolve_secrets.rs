//! Resolved values are secrets: no error, debug output or failing command's message shows one.

use mcp_hub_config::{CommandError, ConfigError, ResolvedKind};

use crate::common::{FakeRunner, Fixture, config, stdio};

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
