//! Stage 2: turning one validated server entry into what the hub launches or connects to.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::ConfigError;
use crate::env::{EnvSource, hub_env_from};
use crate::error::CommandError;
use crate::load::Config;
use crate::runner::CommandRunner;
use crate::server::{
    DevConfig, EnvValue, Prefix, RemoteTransport, ServerConfig, ServerKind, is_http_url,
};
use crate::template::{Fail, LegacyArg, Lookup, expand, legacy_arg};

/// The variables of the hub's own environment that every stdio child inherits (the MCP SDK's
/// "safe list" the Node hub uses); nothing else of the hub's environment is passed on.
#[cfg(not(windows))]
pub const INHERITED_ENV_VARS: &[&str] = &["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// The variables of the hub's own environment that every stdio child inherits (the MCP SDK's
/// "safe list" the Node hub uses); nothing else of the hub's environment is passed on.
#[cfg(windows)]
pub const INHERITED_ENV_VARS: &[&str] = &[
    "APPDATA",
    "HOMEDRIVE",
    "HOMEPATH",
    "LOCALAPPDATA",
    "PATH",
    "PROCESSOR_ARCHITECTURE",
    "SYSTEMDRIVE",
    "SYSTEMROOT",
    "TEMP",
    "USERNAME",
    "USERPROFILE",
    "PROGRAMFILES",
];

/// Everything resolution may consult. Nothing here is global: pass a [`MapEnv`](crate::MapEnv)
/// and a fake runner in tests.
///
/// Lookup order for `${NAME}` / `${env:NAME}` (first hit wins):
/// 1. the server's own `env` (for a value inside `env`: its *other* keys),
/// 2. [`hub_env`](Self::hub_env) (`MCP_HUB_ENV`),
/// 3. [`env`](Self::env) (the hub's environment),
/// 4. the predefined names `workspaceFolder`, `cwd`, `workspaceFolderBasename`, `userHome`,
///    `pathSeparator` and `/`.
pub struct ResolveContext<'a> {
    /// The hub's environment.
    pub env: &'a dyn EnvSource,
    /// Runs `${cmd: …}`.
    pub runner: &'a dyn CommandRunner,
    /// `${workspaceFolder}` and `${cwd}`; the Node hub uses its working directory.
    pub workspace_folder: PathBuf,
    /// `${userHome}`.
    pub user_home: PathBuf,
    /// The parsed `MCP_HUB_ENV`: visible to placeholders and injected into every stdio child.
    pub hub_env: IndexMap<String, String>,
}

impl fmt::Debug for ResolveContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveContext")
            .field("workspace_folder", &self.workspace_folder)
            .field("user_home", &self.user_home)
            .field("hub_env", &self.hub_env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'a> ResolveContext<'a> {
    /// A context with an empty `hub_env`.
    pub fn new(
        env: &'a dyn EnvSource,
        runner: &'a dyn CommandRunner,
        workspace_folder: impl Into<PathBuf>,
        user_home: impl Into<PathBuf>,
    ) -> Self {
        ResolveContext {
            env,
            runner,
            workspace_folder: workspace_folder.into(),
            user_home: user_home.into(),
            hub_env: IndexMap::new(),
        }
    }

    /// Replaces `hub_env`.
    pub fn with_hub_env(mut self, hub_env: IndexMap<String, String>) -> Self {
        self.hub_env = hub_env;
        self
    }

    /// The context the Node hub would use: `workspaceFolder` = the current directory, `userHome`
    /// = `HOME` (or `USERPROFILE`) from `env`, `hub_env` = `MCP_HUB_ENV` from `env`.
    ///
    /// Fails only when `MCP_HUB_ENV` is set but invalid; a caller that prefers the Node hub's
    /// behaviour (warn and ignore it) can log the error and use [`new`](Self::new) instead.
    pub fn from_env(
        env: &'a dyn EnvSource,
        runner: &'a dyn CommandRunner,
    ) -> Result<Self, ConfigError> {
        let home = env
            .var("HOME")
            .or_else(|| env.var("USERPROFILE"))
            .unwrap_or_default();
        let cwd = std::env::current_dir().unwrap_or_default();
        Ok(Self::new(env, runner, cwd, home).with_hub_env(hub_env_from(env)?))
    }

    fn predefined(&self, name: &str) -> Option<String> {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        match name {
            "workspaceFolder" | "cwd" => Some(path(&self.workspace_folder)),
            "workspaceFolderBasename" => Some(
                self.workspace_folder
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            "userHome" => Some(path(&self.user_home)),
            "pathSeparator" | "/" => Some(std::path::MAIN_SEPARATOR_STR.to_owned()),
            _ => None,
        }
    }

    /// Everything but the server's own env.
    fn outer(&self, name: &str) -> Option<String> {
        self.outer_sourced(name).map(|(v, _)| v)
    }

    /// [`outer`](Self::outer), and whether the value may be a secret: the predefined names and
    /// the variables every child inherits anyway (`HOME`, `PATH`, …) are not.
    fn outer_sourced(&self, name: &str) -> Option<(String, bool)> {
        if let Some(v) = self.hub_env.get(name) {
            return Some((v.clone(), true));
        }
        if let Some(v) = self.env.var(name) {
            return Some((v, !INHERITED_ENV_VARS.contains(&name)));
        }
        self.predefined(name).map(|v| (v, false))
    }
}

/// A server ready to launch or connect to: every placeholder resolved.
///
/// `Debug` hides resolved values (arguments, env values, header values, URL query and
/// credentials) because they may be secrets.
#[derive(Clone, PartialEq)]
pub struct ResolvedServer {
    /// The server name.
    pub name: String,
    /// What to launch or connect to.
    pub kind: ResolvedKind,
    /// `disabled: true`: configured but not to be started.
    pub disabled: bool,
    /// The `dev` block, its `cwd` resolved.
    pub dev: Option<DevConfig>,
    /// The `name` field.
    pub display_name: Option<String>,
    /// The `description` field.
    pub description: Option<String>,
    /// Extension `prefix`.
    pub prefix: Prefix,
    /// Extension `timeout`.
    pub timeout: Option<Duration>,
    /// The file that defined the server.
    pub config_source: PathBuf,
    /// The entry as written (unresolved), with `config_source`.
    pub raw: Map<String, Value>,
    /// The `oauth` object (interactive OAuth settings) with its strings resolved.
    pub oauth: Option<Map<String, Value>>,
    /// The `auth` object (the grant and its credentials) with its strings resolved.
    pub auth: Option<Map<String, Value>>,
    /// Deprecations noticed while resolving (e.g. the bare `$VAR` argument form).
    pub warnings: Vec<String>,
    /// Every value a placeholder of this server resolved to (variables, inputs, `${cmd:}`
    /// output), in any field: what a [`Redactor`](crate::Redactor) must scrub from messages
    /// about it. The predefined names and the inherited safe-list variables are left out.
    pub secrets: Vec<String>,
}

/// What to launch or connect to.
#[derive(Clone, PartialEq, Eq)]
pub enum ResolvedKind {
    /// Spawn `command` with `args` directly (no shell).
    Stdio {
        /// The executable.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// The child's **complete** environment: [`INHERITED_ENV_VARS`] from the hub's environment,
        /// then the `MCP_HUB_ENV` pairs, then the server's resolved `env` (later wins, first
        /// position kept).
        env: Vec<(String, String)>,
        /// Its working directory, `None` for the hub's.
        cwd: Option<PathBuf>,
    },
    /// Connect over HTTP.
    Remote {
        /// The endpoint.
        url: String,
        /// Extra request headers.
        headers: Vec<(String, String)>,
        /// Which transport `type` asked for.
        transport: RemoteTransport,
    },
}

impl fmt::Debug for ResolvedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The kind's own Debug hides what it can structurally; a secret in a URL path or in the
        // command is only known here.
        let redactor = crate::Redactor::new();
        redactor.add(&self.secrets);
        let kind = format!("{:?}", self.kind);
        f.debug_struct("ResolvedServer")
            .field("name", &self.name)
            .field("kind", &format_args!("{}", redactor.redact(&kind)))
            .field("disabled", &self.disabled)
            .field("dev", &self.dev)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("config_source", &self.config_source)
            .field("secrets", &format_args!("<{} hidden>", self.secrets.len()))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ResolvedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolvedKind::Stdio {
                command,
                args,
                env,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", &format_args!("<{} hidden>", args.len()))
                .field("env", &env.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            ResolvedKind::Remote {
                url,
                headers,
                transport,
            } => f
                .debug_struct("Remote")
                .field("url", &crate::redact::redact_url(url))
                .field(
                    "headers",
                    &headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                )
                .field("transport", transport)
                .finish(),
        }
    }
}

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
