//! Stage 2: turning one validated server entry into what the hub launches or connects to.

use std::collections::HashMap;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::ConfigError;
use crate::error::CommandError;
use crate::load::Config;
use crate::server::{DevConfig, EnvValue, ServerConfig, ServerKind, is_http_url};
use crate::template::{Fail, LegacyArg, Lookup, expand, legacy_arg};

use crate::context::{INHERITED_ENV_VARS, ResolveContext};
use crate::resolved::{ResolvedKind, ResolvedServer};

/// The outcome of [`Config::resolve_all`].
#[derive(Debug, Default)]
pub struct ResolveReport {
    /// The servers that resolved, in config order.
    pub servers: Vec<ResolvedServer>,
    /// Every error of every other server, in config order.
    pub errors: Vec<ConfigError>,
}

impl Config {
    /// Resolves one server's placeholders, as the hub does each time it (re)connects it.
    ///
    /// Order: the server's `env` values first, in dependency order (a value may use another key
    /// of the same block; a key that uses *itself*, like `PATH: "${PATH}:/opt/bin"`, gets the
    /// hub's value), then `command`, `args`, `cwd`, `url`, `headers` and `dev.cwd`, which can see
    /// the resolved env. Stops at the first error. Every distinct `${cmd: …}` runs at most once.
    ///
    /// Disabled servers resolve like any other; whether to start them is the caller's business.
    pub fn resolve_server(
        &self,
        name: &str,
        ctx: &ResolveContext<'_>,
    ) -> Result<ResolvedServer, ConfigError> {
        let server = self
            .servers
            .get(name)
            .ok_or_else(|| ConfigError::UnknownServer(name.to_owned()))?;
        let mut pass = Pass::new(ctx, &self.inputs, true);
        let mut run = ServerRun::new(&mut pass, server);
        let resolved = run.resolve();
        let mut errors = std::mem::take(&mut run.errors);
        match resolved {
            Some(r) if errors.is_empty() => Ok(r),
            _ => Err(errors.swap_remove(0)),
        }
    }

    /// Resolves every server (disabled ones too) and reports **every** error, not just the
    /// first of each server: for a `check` command. Commands are memoized across all servers.
    pub fn resolve_all(&self, ctx: &ResolveContext<'_>) -> ResolveReport {
        let mut pass = Pass::new(ctx, &self.inputs, false);
        let mut report = ResolveReport::default();
        for server in self.servers.values() {
            let mut run = ServerRun::new(&mut pass, server);
            let resolved = run.resolve();
            if run.errors.is_empty() {
                report.servers.extend(resolved);
            } else {
                report.errors.append(&mut run.errors);
            }
        }
        report
    }
}

/// State shared by every server of one resolution pass.
struct Pass<'c, 'a> {
    ctx: &'c ResolveContext<'a>,
    inputs: &'c IndexMap<String, Value>,
    commands: HashMap<String, Result<String, CommandError>>,
    fail_fast: bool,
}

impl<'c, 'a> Pass<'c, 'a> {
    fn new(
        ctx: &'c ResolveContext<'a>,
        inputs: &'c IndexMap<String, Value>,
        fail_fast: bool,
    ) -> Self {
        Pass {
            ctx,
            inputs,
            commands: HashMap::new(),
            fail_fast,
        }
    }

    fn command(&mut self, command: &str) -> Result<String, CommandError> {
        if let Some(done) = self.commands.get(command) {
            return done.clone();
        }
        let result = self.ctx.runner.run(command);
        self.commands.insert(command.to_owned(), result.clone());
        result
    }

    fn input_default(&self, id: &str) -> Option<String> {
        match self.inputs.get(id)?.get("default")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

enum Slot {
    Pending,
    Active,
    Done(String),
    Failed,
}

struct ServerRun<'r, 'c, 'a> {
    pass: &'r mut Pass<'c, 'a>,
    server: &'c ServerConfig,
    env: IndexMap<String, Slot>,
    stack: Vec<String>,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    secrets: Vec<String>,
}

impl<'r, 'c, 'a> ServerRun<'r, 'c, 'a> {
    fn new(pass: &'r mut Pass<'c, 'a>, server: &'c ServerConfig) -> Self {
        ServerRun {
            pass,
            server,
            env: server
                .env
                .keys()
                .map(|k| (k.clone(), Slot::Pending))
                .collect(),
            stack: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            secrets: Vec::new(),
        }
    }

    fn stop(&self) -> bool {
        self.pass.fail_fast && !self.errors.is_empty()
    }

    fn name(&self) -> String {
        self.server.name.clone()
    }

    /// `None` when resolution stopped early; errors are in `self.errors` either way.
    fn resolve(&mut self) -> Option<ResolvedServer> {
        let server = self.server;
        for key in server.env.keys() {
            let _ = self.env_value(key);
            if self.stop() {
                return None;
            }
        }
        let kind = match &server.kind {
            ServerKind::Stdio { command, args, cwd } => {
                let command = self.field("command", command);
                let mut resolved_args = Vec::with_capacity(args.len());
                for (i, arg) in args.iter().enumerate() {
                    if self.stop() {
                        return None;
                    }
                    resolved_args.push(self.arg(i, arg));
                }
                let cwd = cwd.as_ref().map(|c| PathBuf::from(self.field("cwd", c)));
                ResolvedKind::Stdio {
                    command,
                    args: resolved_args,
                    env: self.child_env(),
                    cwd,
                }
            }
            ServerKind::Remote { url, headers } => {
                let before = self.errors.len();
                let url = self.field("url", url);
                if self.errors.len() == before && !is_http_url(&url) {
                    self.errors.push(ConfigError::InvalidResolved {
                        server: self.name(),
                        field: "url".into(),
                        message: "does not resolve to an absolute http:// or https:// URL".into(),
                    });
                }
                let mut resolved = Vec::with_capacity(headers.len());
                for (k, v) in headers {
                    if self.stop() {
                        return None;
                    }
                    resolved.push((k.clone(), self.field(&format!("headers.{k}"), v)));
                }
                ResolvedKind::Remote {
                    url,
                    headers: resolved,
                    transport: server.remote_transport(),
                }
            }
        };
        let dev = match &server.dev {
            None => None,
            Some(dev) => {
                let before = self.errors.len();
                let cwd = PathBuf::from(self.field("dev.cwd", &dev.cwd.to_string_lossy()));
                if self.errors.len() == before && !cwd.is_absolute() {
                    self.errors.push(ConfigError::InvalidResolved {
                        server: self.name(),
                        field: "dev.cwd".into(),
                        message: "does not resolve to an absolute path".into(),
                    });
                }
                Some(DevConfig { cwd, ..dev.clone() })
            }
        };
        let oauth = self.credentials("oauth");
        let auth = self.credentials("auth");
        if self.stop() {
            return None;
        }
        Some(ResolvedServer {
            name: server.name.clone(),
            kind,
            disabled: server.disabled,
            dev,
            display_name: server.display_name.clone(),
            description: server.description.clone(),
            prefix: server.prefix.clone(),
            timeout: server.timeout,
            config_source: server.config_source.clone(),
            raw: server.raw.clone(),
            oauth,
            auth,
            warnings: std::mem::take(&mut self.warnings),
            secrets: std::mem::take(&mut self.secrets),
        })
    }

    /// Resolves the strings of a remote server's `auth` or `oauth` object (validated at load:
    /// strings, arrays of strings, booleans).
    fn credentials(&mut self, key: &str) -> Option<Map<String, Value>> {
        if self.server.is_stdio() {
            return None;
        }
        let Some(Value::Object(map)) = self.server.raw.get(key) else {
            return None;
        };
        let mut out = Map::new();
        for (k, v) in map {
            let field = format!("{key}.{k}");
            let resolved = match v {
                Value::String(t) => Value::String(self.field(&field, t)),
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| match item {
                            Value::String(t) => {
                                Value::String(self.field(&format!("{field}[{i}]"), t))
                            }
                            other => other.clone(),
                        })
                        .collect(),
                ),
                other => other.clone(),
            };
            out.insert(k.clone(), resolved);
        }
        Some(out)
    }

    /// Resolves one `env` key (and, through lookups, the keys it uses). `Err` = failed, already
    /// reported.
    fn env_value(&mut self, key: &str) -> Result<String, ()> {
        match self.env.get(key) {
            Some(Slot::Done(v)) => return Ok(v.clone()),
            Some(Slot::Failed) | None => return Err(()),
            Some(Slot::Active) => {
                let start = self.stack.iter().position(|k| k == key).unwrap_or(0);
                let mut cycle = self.stack[start..].to_vec();
                cycle.push(key.to_owned());
                self.errors.push(ConfigError::EnvCycle {
                    server: self.name(),
                    cycle,
                });
                return Err(());
            }
            Some(Slot::Pending) => {}
        }
        self.env.insert(key.to_owned(), Slot::Active);
        self.stack.push(key.to_owned());
        let field = format!("env.{key}");
        let result = match self.server.env.get(key) {
            Some(EnvValue::Inherit) => self.pass.ctx.outer(key).ok_or_else(|| {
                self.errors.push(ConfigError::UnresolvedVariable {
                    server: self.name(),
                    field: field.clone(),
                    variable: key.to_owned(),
                });
            }),
            Some(EnvValue::Template(t)) if t.is_empty() => {
                Ok(self.pass.ctx.outer(key).unwrap_or_default())
            }
            Some(EnvValue::Template(t)) => {
                let mut fails = Vec::new();
                let fail_fast = self.pass.fail_fast;
                let out = expand(
                    t,
                    &mut RunLookup {
                        run: self,
                        current: Some(key),
                    },
                    fail_fast,
                    &mut fails,
                );
                if fails.is_empty() {
                    Ok(out)
                } else {
                    self.record(&field, fails);
                    Err(())
                }
            }
            None => Err(()),
        };
        self.stack.pop();
        let slot = match &result {
            Ok(v) => Slot::Done(v.clone()),
            Err(()) => Slot::Failed,
        };
        self.env.insert(key.to_owned(), slot);
        result
    }

    /// Resolves a non-env field.
    fn field(&mut self, field: &str, template: &str) -> String {
        if self.stop() {
            return String::new();
        }
        let mut fails = Vec::new();
        let fail_fast = self.pass.fail_fast;
        let out = expand(
            template,
            &mut RunLookup {
                run: self,
                current: None,
            },
            fail_fast,
            &mut fails,
        );
        self.record(field, fails);
        out
    }

    fn arg(&mut self, index: usize, arg: &str) -> String {
        let field = format!("args[{index}]");
        match legacy_arg(arg) {
            Some(LegacyArg::Var(name)) => {
                self.warnings.push(format!(
                    "{field}: the bare `$NAME` form is deprecated; write `${{NAME}}`"
                ));
                let found = RunLookup {
                    run: self,
                    current: None,
                }
                .var(name);
                match found {
                    Ok(Some(v)) => v,
                    Ok(None) => {
                        self.record(&field, vec![Fail::Var(name.to_owned())]);
                        String::new()
                    }
                    Err(fail) => {
                        self.record(&field, vec![fail]);
                        String::new()
                    }
                }
            }
            Some(LegacyArg::Literal(text)) => text.to_owned(),
            None => self.field(&field, arg),
        }
    }

    fn record(&mut self, field: &str, fails: Vec<Fail>) {
        for fail in fails {
            let server = self.name();
            let field = field.to_owned();
            self.errors.push(match fail {
                Fail::Var(variable) | Fail::Input(variable) => ConfigError::UnresolvedVariable {
                    server,
                    field,
                    variable,
                },
                Fail::Cmd { template, error } => ConfigError::Command {
                    server,
                    field,
                    command: template,
                    source: self.scrubbed(error),
                },
                Fail::Syntax(message) => ConfigError::InvalidPlaceholder {
                    server,
                    field,
                    message,
                },
                Fail::Abort => continue,
            });
        }
    }

    /// A command's error with the values resolved so far scrubbed from its stderr: the command
    /// ran with them substituted and may have echoed them (`curl -H "…${TOKEN}"` failing).
    fn scrubbed(&self, error: CommandError) -> CommandError {
        let redactor = crate::Redactor::new();
        redactor.add(&self.secrets);
        match error {
            CommandError::Failed { status, stderr } => CommandError::Failed {
                status,
                stderr: redactor.redact_string(stderr),
            },
            CommandError::TimedOut { after, stderr } => CommandError::TimedOut {
                after,
                stderr: redactor.redact_string(stderr),
            },
            other => other,
        }
    }

    /// Notes a value a placeholder resolved to.
    fn remember(&mut self, value: &str) {
        if !value.is_empty() && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_owned());
        }
    }

    /// Safe list, then `MCP_HUB_ENV`, then the server's env; later wins.
    fn child_env(&self) -> Vec<(String, String)> {
        let ctx = self.pass.ctx;
        let mut env: IndexMap<String, String> = IndexMap::new();
        for name in INHERITED_ENV_VARS {
            if let Some(v) = ctx.env.var(name) {
                env.insert((*name).to_owned(), v);
            }
        }
        for (k, v) in &ctx.hub_env {
            env.insert(k.clone(), v.clone());
        }
        for (k, slot) in &self.env {
            if let Slot::Done(v) = slot {
                env.insert(k.clone(), v.clone());
            }
        }
        env.into_iter().collect()
    }
}

/// Lookups during one field: `current` is the env key being resolved, if any.
struct RunLookup<'x, 'r, 'c, 'a> {
    run: &'x mut ServerRun<'r, 'c, 'a>,
    current: Option<&'x str>,
}

impl Lookup for RunLookup<'_, '_, '_, '_> {
    fn var(&mut self, name: &str) -> Result<Option<String>, Fail> {
        if self.current != Some(name) && self.run.env.contains_key(name) {
            let value = self.run.env_value(name).map_err(|()| Fail::Abort)?;
            self.run.remember(&value);
            return Ok(Some(value));
        }
        Ok(self
            .run
            .pass
            .ctx
            .outer_sourced(name)
            .map(|(value, secret)| {
                if secret {
                    self.run.remember(&value);
                }
                value
            }))
    }

    fn input(&mut self, id: &str) -> Result<Option<String>, Fail> {
        match self.var(&format!("input:{id}"))? {
            Some(v) => Ok(Some(v)),
            None => Ok(self
                .run
                .pass
                .input_default(id)
                .inspect(|v| self.run.remember(v))),
        }
    }

    fn command(&mut self, command: &str) -> Result<String, CommandError> {
        let out = self.run.pass.command(command)?;
        self.run.remember(out.trim());
        Ok(out)
    }
}
