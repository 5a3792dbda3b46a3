//! The typed, *unresolved* view of one server entry (parsed and validated by `entry`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Map, Value};

/// The file patterns a `dev` block watches when it lists none: JavaScript, TypeScript, Python and
/// JSON files, as in the Node hub.
pub const DEFAULT_DEV_WATCH: &[&str] = &["**/*.js", "**/*.ts", "**/*.py", "**/*.json"];

/// One server entry from `mcpServers` / `servers`, validated but with placeholders still in place.
///
/// Strings that may hold placeholders are kept as written ("templates"); [`Config::resolve_server`]
/// turns them into a [`ResolvedServer`]. Every field the file had, known or not, is also kept in
/// [`raw`](ServerConfig::raw).
///
/// `Debug` shows env and header *names* only, never their values.
///
/// [`Config::resolve_server`]: crate::Config::resolve_server
/// [`ResolvedServer`]: crate::ResolvedServer
#[derive(Clone, PartialEq)]
pub struct ServerConfig {
    /// The server's name: its key in the server map.
    pub name: String,
    /// Stdio or remote, with the fields that only make sense for that kind.
    pub kind: ServerKind,
    /// The `env` block. Used by both kinds: for stdio it becomes the child's environment, and for
    /// both it is visible to the placeholders of the other fields.
    pub env: IndexMap<String, EnvValue>,
    /// The `type` field as written (`stdio`, `sse`, `streamable-http`, `http`), if any. The kind
    /// is inferred from `command` / `url`; `type` only picks the remote transport.
    pub server_type: Option<String>,
    /// `disabled: true` keeps the server configured but stopped.
    pub disabled: bool,
    /// Hot restart on file changes (stdio only).
    pub dev: Option<DevConfig>,
    /// The optional `name` field, a human-friendly display name.
    pub display_name: Option<String>,
    /// The optional `description` field.
    pub description: Option<String>,
    /// Extension: how this server's tools and prompts are namespaced (`prefix`).
    pub prefix: Prefix,
    /// Extension: the request timeout for this server (`timeout`, in milliseconds).
    pub timeout: Option<Duration>,
    /// Extension: whether downstream sessions share one connection (`isolation`,
    /// `maxInstances`).
    pub isolation: Isolation,
    /// Extension: the roots answered to the server's `roots/list` when no client can be asked
    /// (`roots`: URIs or absolute paths, as written).
    pub roots: Option<Vec<String>>,
    /// Extension: which of the server's tools the hub exposes anywhere (`tools.include`,
    /// `tools.exclude`: globs over upstream tool names).
    pub tools: crate::ToolFilter,
    /// The file that (last) defined this server.
    pub config_source: PathBuf,
    /// The entry exactly as parsed, plus `config_source`; unknown fields live here.
    pub raw: Map<String, Value>,
}

/// The two kinds of server, inferred from which of `command` and `url` is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKind {
    /// A child process speaking MCP on stdin/stdout.
    Stdio {
        /// The executable (template).
        command: String,
        /// Its arguments (templates; numbers and booleans in the file become strings).
        args: Vec<String>,
        /// Its working directory (template); `None` = the hub's.
        cwd: Option<String>,
    },
    /// An MCP endpoint over HTTP (Streamable HTTP or legacy SSE).
    Remote {
        /// The endpoint (template).
        url: String,
        /// Extra request headers (templates).
        headers: IndexMap<String, String>,
    },
}

/// One value of a server's `env` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// A string, possibly with placeholders. The empty string means "the hub's value of the
    /// same variable if it has one, else empty".
    Template(String),
    /// `null`: take the hub's value of the same variable; an error if it has none.
    Inherit,
}

/// Extension `prefix`: how the hub names this server's tools and prompts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Prefix {
    /// No `prefix` (or `prefix: true`): the hub's default namespace, derived from the server name.
    #[default]
    Default,
    /// `prefix: "gh"`: this string instead of the server name.
    Custom(String),
    /// `prefix: false`, `null` or `""`: no namespace; names are exposed as the server gives them.
    Disabled,
}

/// Extension `isolation`: whether downstream sessions share one connection to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// `"shared"` (the default): one connection (one process) for every client.
    #[default]
    Shared,
    /// `"session"`: each client session gets its own connection (process), at most
    /// `max_instances` (`maxInstances`, default [`DEFAULT_MAX_INSTANCES`]) at once.
    Session {
        /// `maxInstances`.
        max_instances: usize,
    },
}

/// `maxInstances` when the entry has none.
pub const DEFAULT_MAX_INSTANCES: usize = 16;

/// The `dev` block of a stdio server: restart it when files under `cwd` change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevConfig {
    /// `enabled` (default `true`).
    pub enabled: bool,
    /// `watch`: glob patterns relative to `cwd` (default [`DEFAULT_DEV_WATCH`]).
    pub watch: Vec<String>,
    /// `cwd`: the absolute directory to watch. May hold placeholders until resolved.
    pub cwd: PathBuf,
}

/// Which HTTP transport a remote server asked for with `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteTransport {
    /// No (or an unrecognised) `type`: try Streamable HTTP, fall back to legacy SSE, as the Node
    /// hub does.
    Auto,
    /// `type: "streamable-http"` or `"http"`.
    StreamableHttp,
    /// `type: "sse"`: the legacy HTTP+SSE transport only.
    Sse,
}

/// Something suspicious in a config file that does not stop it from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file.
    pub path: PathBuf,
    /// The server, when the warning is about one.
    pub server: Option<String>,
    /// What is odd, without any value.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(server) = &self.server {
            write!(f, ": server '{server}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ServerConfig {
    /// Whether this is a stdio server.
    pub fn is_stdio(&self) -> bool {
        matches!(self.kind, ServerKind::Stdio { .. })
    }

    /// The remote transport selected by `type` (meaningless for stdio servers).
    pub fn remote_transport(&self) -> RemoteTransport {
        transport_for(self.server_type.as_deref())
    }

    /// Sets `disabled` in memory, keeping [`raw`](Self::raw) in step so that a later
    /// [`ConfigDiff`](crate::ConfigDiff) sees the change. Use
    /// [`set_disabled_in_file`](crate::set_disabled_in_file) to persist it.
    pub fn set_disabled(&mut self, disabled: bool) {
        self.disabled = disabled;
        self.raw.insert("disabled".into(), Value::Bool(disabled));
    }

    /// `Prefix::Custom` text, or the server name for `Prefix::Default`; `None` when disabled.
    pub fn prefix_or_name(&self) -> Option<&str> {
        match &self.prefix {
            Prefix::Default => Some(&self.name),
            Prefix::Custom(p) => Some(p),
            Prefix::Disabled => None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServerConfig");
        d.field("name", &self.name);
        match &self.kind {
            ServerKind::Stdio { command, args, cwd } => {
                d.field("command", command)
                    .field("args", &args.len())
                    .field("cwd", cwd);
            }
            ServerKind::Remote { url, headers } => {
                d.field("url", &crate::redact::redact_url(url))
                    .field("headers", &headers.keys().collect::<Vec<_>>());
            }
        }
        d.field("env", &self.env.keys().collect::<Vec<_>>())
            .field("type", &self.server_type)
            .field("disabled", &self.disabled)
            .field("dev", &self.dev)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("isolation", &self.isolation)
            .field("tools", &self.tools)
            .field("config_source", &self.config_source)
            .finish_non_exhaustive()
    }
}

pub(crate) use crate::entry::{is_http_url, parse_server, transport_for};
