//! Environment variables in resolution: where a name is looked up, values that use each other,
//! cycles, inheritance, and what a server's child process gets.

use std::path::PathBuf;

use mcp_hub_config::{ConfigError, DenyCommands, MapEnv, ResolveContext};

use crate::common::{FakeRunner, Fixture, config, env_of, stdio, stdio_parts};

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
