//! What resolution produces: a server ready to launch or connect to. Its `Debug` output never
//! shows a resolved value, since any of them may be a secret.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

#[cfg(doc)]
use crate::INHERITED_ENV_VARS;
use crate::server::{DevConfig, Prefix, RemoteTransport};

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
