//! The one error type of the crate.
//!
//! Every message names where the problem is (file, line and column, server, field, variable) and
//! never what a value resolved to: resolved values may be secrets, and these messages end up in logs,
//! in the REST API and on the event stream.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while loading, resolving or writing configuration.
///
/// `Display` gives a one-line, human-readable message that is safe to log: it may contain file
/// paths, server names, field names, variable names, the *unresolved* text of a failing
/// `${cmd: …}` and that command's stderr, but never a resolved value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A config file exists but could not be read (permissions, not UTF-8, a directory…).
    ///
    /// Missing files are not an error: [`load`](crate::load) skips them and lists them in
    /// [`Config::skipped`](crate::Config::skipped).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// The file is not valid JSON5 (and therefore not valid JSON either).
    #[error("{}:{line}:{column}: invalid JSON5: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, counted in characters.
        column: usize,
        /// What the parser expected.
        message: String,
    },

    /// The file parsed, but a top-level key has the wrong shape (the root is not an object,
    /// `mcpServers` is not an object, …).
    #[error("{}{}: key '{key}': {message}", path.display(), Line(*line))]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key, when it could be found.
        line: Option<usize>,
        /// The top-level key.
        key: String,
        /// What is wrong with it.
        message: String,
    },

    /// A server entry, or one of its fields, is invalid.
    ///
    /// `field` is a path inside the entry: `args`, `args[2]`, `env.TOKEN`, `dev.cwd`; it is empty
    /// when the entry as a whole is wrong (for example it is not an object).
    #[error("{}{}: server '{server}'{}: {message}", path.display(), Line(*line), Field(field))]
    InvalidServer {
        /// The file that defines the server.
        path: PathBuf,
        /// 1-based line of the offending key, when it could be found.
        line: Option<usize>,
        /// The server name (its key in `mcpServers` / `servers`).
        server: String,
        /// The offending field, empty for the entry itself.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// A profile (under the top-level `profiles` key), or one of its fields, is invalid.
    ///
    /// `field` is a path inside the profile (`servers[1]`, `servers.github.tools.include[0]`,
    /// `mode`); it is empty when the profile as a whole is wrong.
    #[error("{}{}: profile '{profile}'{}: {message}", path.display(), Line(*line), Field(field))]
    InvalidProfile {
        /// The file that defines the profile.
        path: PathBuf,
        /// 1-based line of the offending key, when it could be found.
        line: Option<usize>,
        /// The profile name (its key in `profiles`).
        profile: String,
        /// The offending field, empty for the profile itself.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// [`Config::resolve_server`](crate::Config::resolve_server) was asked for a server that is
    /// not configured.
    #[error("no server named '{0}' is configured")]
    UnknownServer(String),

    /// A `${VAR}`, `${env:VAR}`, `${input:id}`, bare `$VAR` or `null` env value refers to a
    /// variable that is defined nowhere.
    #[error("server '{server}': field '{field}': variable '{variable}' is not defined")]
    UnresolvedVariable {
        /// The server.
        server: String,
        /// The field that holds the placeholder.
        field: String,
        /// The variable name as written (`input:` ids keep their prefix).
        variable: String,
    },

    /// Values in a server's `env` refer to each other in a loop.
    #[error("server '{server}': env values refer to each other in a cycle: {}", cycle.join(" -> "))]
    EnvCycle {
        /// The server.
        server: String,
        /// The keys in the loop, the first one repeated at the end.
        cycle: Vec<String>,
    },

    /// A `${cmd: …}` placeholder failed (could not start, non-zero exit, timeout).
    ///
    /// `command` is the text as written in the config file, before its own placeholders were
    /// resolved, so that no secret is shown.
    #[error("server '{server}': field '{field}': command `{command}` failed: {source}")]
    Command {
        /// The server.
        server: String,
        /// The field that holds the placeholder.
        field: String,
        /// The command as written, unresolved.
        command: String,
        /// Why it failed; includes the command's stderr.
        #[source]
        source: CommandError,
    },

    /// A placeholder is malformed (`${}`, `${cmd:}` with no command, nesting too deep).
    #[error("server '{server}': field '{field}': {message}")]
    InvalidPlaceholder {
        /// The server.
        server: String,
        /// The field that holds the placeholder.
        field: String,
        /// What is wrong.
        message: String,
    },

    /// A field resolved to something unusable (a `url` that is not `http(s)://…`, a relative
    /// `dev.cwd`). The resolved value itself is not shown.
    #[error("server '{server}': field '{field}': {message}")]
    InvalidResolved {
        /// The server.
        server: String,
        /// The field.
        field: String,
        /// What is wrong, without the value.
        message: String,
    },

    /// `MCP_HUB_ENV` is not a JSON object of scalar values.
    #[error("MCP_HUB_ENV: {0}")]
    HubEnv(String),

    /// [`set_disabled_in_file`](crate::set_disabled_in_file) did not find the server in the file.
    #[error("{}: no server named '{server}' in this file", path.display())]
    ServerNotInFile {
        /// The file.
        path: PathBuf,
        /// The server.
        server: String,
    },

    /// Writing a config file failed.
    #[error("cannot write config file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The server this error is about, if any.
    pub fn server(&self) -> Option<&str> {
        match self {
            ConfigError::InvalidServer { server, .. }
            | ConfigError::UnresolvedVariable { server, .. }
            | ConfigError::EnvCycle { server, .. }
            | ConfigError::Command { server, .. }
            | ConfigError::InvalidPlaceholder { server, .. }
            | ConfigError::InvalidResolved { server, .. }
            | ConfigError::ServerNotInFile { server, .. } => Some(server),
            ConfigError::UnknownServer(server) => Some(server),
            _ => None,
        }
    }
}

/// Why a `${cmd: …}` command failed.
///
/// `Display` includes the command's stderr (trimmed, at most [`STDERR_LIMIT`] bytes), which is
/// usually what a user needs to fix it (`op: not signed in`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The shell could not be started.
    #[error("could not start the shell: {0}")]
    Spawn(String),
    /// The command exited unsuccessfully.
    #[error("{status}{}", Stderr(stderr))]
    Failed {
        /// How it ended, e.g. `exit status: 1` or `signal: 9 (SIGKILL)`.
        status: String,
        /// What it wrote to stderr, trimmed and truncated.
        stderr: String,
    },
    /// The command did not finish in time and was killed.
    #[error("timed out after {}s{}", after.as_secs_f64(), Stderr(stderr))]
    TimedOut {
        /// The timeout that expired.
        after: Duration,
        /// What it wrote to stderr before it was killed.
        stderr: String,
    },
    /// The command succeeded but its stdout is not UTF-8.
    #[error("its output is not valid UTF-8")]
    NotUtf8,
    /// Commands are switched off ([`DenyCommands`](crate::DenyCommands)).
    #[error("commands are not allowed here")]
    Denied,
    /// The program gave up on the command (it is shutting down); the command was killed.
    #[error("cancelled (the hub is stopping)")]
    Cancelled,
}

/// How much of a failing command's stderr is kept for the error message.
pub const STDERR_LIMIT: usize = 4096;

struct Line(Option<usize>);

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

struct Field<'a>(&'a str);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, ": field '{}'", self.0)
        }
    }
}

struct Stderr<'a>(&'a str);

impl fmt::Display for Stderr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            write!(f, " (no stderr)")
        } else {
            write!(f, ": {}", self.0)
        }
    }
}
