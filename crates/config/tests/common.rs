use std::cell::RefCell;
use std::collections::HashMap;

use mcp_hub_config::{
    CommandError, CommandRunner, Config, ConfigError, MapEnv, ResolveContext, ResolvedKind,
    ResolvedServer, load_from_strs,
};

/// A fake `${cmd:}` runner: answers from a table, records every call.
#[derive(Default)]
pub struct FakeRunner {
    pub answers: HashMap<String, Result<String, CommandError>>,
    pub calls: RefCell<Vec<String>>,
}

impl FakeRunner {
    pub fn answer(mut self, cmd: &str, out: &str) -> Self {
        self.answers.insert(cmd.to_owned(), Ok(out.to_owned()));
        self
    }

    pub fn fail(mut self, cmd: &str, stderr: &str) -> Self {
        self.answers.insert(
            cmd.to_owned(),
            Err(CommandError::Failed {
                status: "exit status: 1".into(),
                stderr: stderr.into(),
            }),
        );
        self
    }
}

impl CommandRunner for FakeRunner {
    fn run(&self, command: &str) -> Result<String, CommandError> {
        self.calls.borrow_mut().push(command.to_owned());
        self.answers.get(command).cloned().unwrap_or_else(|| {
            Err(CommandError::Failed {
                status: "exit status: 127".into(),
                stderr: format!("unexpected command in test: {command}"),
            })
        })
    }
}

/// An environment plus a runner, from which contexts are borrowed.
pub struct Fixture {
    pub env: MapEnv,
    pub runner: FakeRunner,
    pub hub_env: Vec<(String, String)>,
}

impl Fixture {
    pub fn new(env: &[(&str, &str)]) -> Self {
        Fixture {
            env: MapEnv::from_iter(env.iter().copied()),
            runner: FakeRunner::default(),
            hub_env: Vec::new(),
        }
    }

    pub fn runner(mut self, runner: FakeRunner) -> Self {
        self.runner = runner;
        self
    }

    pub fn hub_env(mut self, pairs: &[(&str, &str)]) -> Self {
        self.hub_env = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self
    }

    pub fn ctx(&self) -> ResolveContext<'_> {
        ResolveContext::new(&self.env, &self.runner, "/work/proj", "/home/ada")
            .with_hub_env(self.hub_env.iter().cloned().collect())
    }

    pub fn resolve(&self, config: &Config, name: &str) -> Result<ResolvedServer, ConfigError> {
        config.resolve_server(name, &self.ctx())
    }
}

pub fn config(text: &str) -> Config {
    load_from_strs([("/cfg/servers.json", text)]).unwrap_or_else(|e| panic!("{e}"))
}

pub fn config_err(text: &str) -> ConfigError {
    load_from_strs([("/cfg/servers.json", text)]).expect_err("should not load")
}

/// A stdio server with one entry in `mcpServers`, for resolution tests.
pub fn stdio(entry: &str) -> Config {
    config(&format!(r#"{{"mcpServers": {{"s": {entry}}}}}"#))
}

pub fn stdio_parts(r: &ResolvedServer) -> (&str, &[String], &[(String, String)]) {
    match &r.kind {
        ResolvedKind::Stdio {
            command, args, env, ..
        } => (command, args, env),
        other => panic!("expected stdio, got {other:?}"),
    }
}

pub fn env_of<'a>(r: &'a ResolvedServer, key: &str) -> Option<&'a str> {
    stdio_parts(r)
        .2
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
