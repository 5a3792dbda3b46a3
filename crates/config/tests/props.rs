//! Property tests for the placeholder resolver.

use mcp_hub_config::{
    Config, MapEnv, ResolveContext, ResolvedKind, escape, escape_arg, load_from_strs,
};
use proptest::prelude::*;

use crate::common::FakeRunner;

/// A config with one stdio server whose single argument and env value are `template`.
fn server_with(template: &str) -> Config {
    let entry = serde_json::json!({
        "mcpServers": {"s": {"command": "x", "args": [template], "env": {"V": template}}}
    });
    load_from_strs([("/p.json", entry.to_string().as_str())]).expect("valid JSON")
}

fn resolve_arg(config: &Config, env: &MapEnv) -> Result<String, String> {
    let runner = FakeRunner::default();
    let ctx = ResolveContext::new(env, &runner, "/w", "/h");
    let r = config
        .resolve_server("s", &ctx)
        .map_err(|e| e.to_string())?;
    match r.kind {
        ResolvedKind::Stdio { args, env, .. } => {
            let v = env.iter().find(|(k, _)| k == "V").map(|(_, v)| v.clone());
            // Only a whole-argument `$NAME` (the legacy form) is treated differently in `args`,
            // and an empty `env` value falls back to the hub's environment (Node hub semantics).
            let template = template_of(config);
            if !args_only_syntax(template) && !template.is_empty() {
                assert_eq!(v.as_deref(), Some(args[0].as_str()), "args and env agree");
            }
            Ok(args[0].clone())
        }
        ResolvedKind::Remote { .. } => Err("remote".into()),
    }
}

fn template_of(config: &Config) -> &str {
    match &config.servers["s"].kind {
        mcp_hub_config::ServerKind::Stdio { args, .. } => &args[0],
        mcp_hub_config::ServerKind::Remote { .. } => "",
    }
}

/// `$` + identifier, `$$` + identifier…: the legacy argument form.
fn args_only_syntax(arg: &str) -> bool {
    let name = arg.trim_start_matches('$');
    name.len() < arg.len()
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn env_names() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9_]{0,6}"
}

/// Text that has no `$`.
fn plain() -> impl Strategy<Value = String> {
    "[^$]{0,40}"
}

/// Values free of `$`, `{` and `}` so that concatenation cannot form new placeholders.
fn value() -> impl Strategy<Value = String> {
    "[^${}]{0,12}"
}

#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Var(usize),
    EnvVar(usize),
}

fn pieces() -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(
        prop_oneof![
            "[^${}]{0,8}".prop_map(Piece::Lit),
            (0usize..4).prop_map(Piece::Var),
            (0usize..4).prop_map(Piece::EnvVar),
        ],
        0..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn text_without_placeholders_is_unchanged(text in plain(), env in prop::collection::vec((env_names(), value()), 0..4)) {
        // A whole-argument `$NAME` cannot occur without `$`, so the text is not special anywhere.
        let env = MapEnv::from_iter(env);
        prop_assert_eq!(resolve_arg(&server_with(&text), &env), Ok(text));
    }

    #[test]
    fn matches_a_reference_model(parts in pieces(), values in prop::collection::vec(value(), 4)) {
        let names = ["ALPHA", "BETA", "GAMMA", "DELTA"];
        let env = MapEnv::from_iter(names.iter().zip(&values).map(|(k, v)| (*k, v.clone())));
        let mut template = String::new();
        let mut expected = String::new();
        for p in &parts {
            match p {
                Piece::Lit(s) => { template.push_str(s); expected.push_str(s); }
                Piece::Var(i) => { template.push_str(&format!("${{{}}}", names[*i])); expected.push_str(&values[*i]); }
                Piece::EnvVar(i) => { template.push_str(&format!("${{env:{}}}", names[*i])); expected.push_str(&values[*i]); }
            }
        }
        prop_assert_eq!(resolve_arg(&server_with(&template), &env), Ok(expected));
    }

    #[test]
    fn resolution_is_idempotent_on_its_output(parts in pieces(), values in prop::collection::vec(value(), 4)) {
        let names = ["ALPHA", "BETA", "GAMMA", "DELTA"];
        let env = MapEnv::from_iter(names.iter().zip(&values).map(|(k, v)| (*k, v.clone())));
        let template: String = parts.iter().map(|p| match p {
            Piece::Lit(s) => s.clone(),
            Piece::Var(i) => format!("${{{}}}", names[*i]),
            Piece::EnvVar(i) => format!("${{env:{}}}", names[*i]),
        }).collect();
        let once = resolve_arg(&server_with(&template), &env).unwrap();
        let twice = resolve_arg(&server_with(&once), &env).unwrap();
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn values_are_never_rescanned(v in ".{0,30}") {
        let env = MapEnv::from_iter([("V0", v.clone())]);
        prop_assert_eq!(resolve_arg(&server_with("${V0}"), &env), Ok(v));
    }

    #[test]
    fn escape_round_trips(text in ".{0,40}") {
        let env = MapEnv::new();
        // `escape` for strings in general; `escape_arg` for whole arguments.
        let entry = serde_json::json!({"mcpServers": {"s": {
            "command": format!("x{}", escape(&text)),
            "args": [escape_arg(&text)],
            "env": {"V": escape(&text)}
        }}});
        let config = load_from_strs([("/p.json", entry.to_string().as_str())]).unwrap();
        let runner = FakeRunner::default();
        let ctx = ResolveContext::new(&env, &runner, "/w", "/h");
        let r = config.resolve_server("s", &ctx).unwrap();
        let ResolvedKind::Stdio { args, env, .. } = r.kind else { panic!("stdio") };
        prop_assert_eq!(&args[0], &text);
        prop_assert_eq!(&env.iter().find(|(k, _)| k == "V").unwrap().1, &text);
        prop_assert!(runner.calls.borrow().is_empty());
    }

    #[test]
    fn arbitrary_templates_never_panic(text in "[${}a:c-md ]{0,30}") {
        let env = MapEnv::from_iter([("a", "1")]);
        let _ = resolve_arg(&server_with(&text), &env);
    }

    #[test]
    fn arbitrary_json5_never_panics(text in ".{0,60}") {
        let _ = load_from_strs([("/f.json", text.as_str())]);
    }
}
