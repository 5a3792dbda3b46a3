//! Read MCP server configuration the way the Node `mcp-hub`, Claude Desktop and VS Code do.
//!
//! This crate owns reading config files (strict JSON or JSON5), merging several of them in
//! order, validating server entries, resolving placeholders (`${VAR}`, `${cmd: …}`, VS Code
//! variables and inputs), composing a stdio child's environment, diffing two configurations for
//! hot reload, and writing a server's `disabled` flag back to its file. It is synchronous and has
//! no async runtime: the environment and command execution are injected ([`EnvSource`],
//! [`CommandRunner`]), so everything is testable without touching the real process.
//!
//! It must not know: how servers are launched or connected, sockets, the async runtime, file
//! watching, the hub's registry or its API. It never finds config files on its own: callers
//! pass paths.
//!
//! # Two stages
//!
//! 1. [`load`] reads and merges files into a [`Config`]: typed, validated [`ServerConfig`]s whose
//!    strings are still templates. Loading never runs a command and never reads the environment.
//! 2. [`Config::resolve_server`] resolves one server into a [`ResolvedServer`] — the exact
//!    command line and environment to spawn, or the URL and headers to connect to. The hub does
//!    this each time it (re)connects a server, so a failing `${cmd: …}` breaks only that server.
//!    [`Config::resolve_all`] resolves everything and reports every error, for a `check` command.
//!
//! ```
//! use mcp_hub_config::{
//!     load_from_strs, parse_hub_env, CommandError, MapEnv, RemoteTransport, ResolveContext,
//!     ResolvedKind,
//! };
//!
//! # fn main() -> Result<(), mcp_hub_config::ConfigError> {
//! let config = load_from_strs([("servers.json5", r#"{
//!   // JSON5: comments, unquoted keys, trailing commas.
//!   mcpServers: {
//!     github: {
//!       command: "npx",
//!       args: ["-y", "@modelcontextprotocol/server-github", "--root", "${workspaceFolder}"],
//!       env: {
//!         GITHUB_TOKEN: "${cmd: pass show github/token}",
//!         API: "https://api.github.com",
//!         API_URL: "${API}/v3",    // values may use each other
//!         DEBUG: null,             // null: take the hub's DEBUG
//!       },
//!     },
//!     docs: {
//!       url: "https://mcp.example.com/mcp",
//!       headers: { Authorization: "Bearer ${input:api-key}" },
//!       type: "streamable-http",
//!     },
//!   },
//! }"#)])?;
//!
//! // The hub's environment, a command runner and MCP_HUB_ENV, all injected.
//! let env = MapEnv::from_iter([("PATH", "/usr/bin"), ("HOME", "/home/ada"), ("DEBUG", "1")]);
//! let runner = |cmd: &str| -> Result<String, CommandError> {
//!     assert_eq!(cmd, "pass show github/token");
//!     Ok("ghp_example\n".into())
//! };
//! let hub_env = parse_hub_env(r#"{"input:api-key": "k-123"}"#)?;
//! let ctx = ResolveContext::new(&env, &runner, "/work/project", "/home/ada").with_hub_env(hub_env);
//!
//! let github = config.resolve_server("github", &ctx)?;
//! let ResolvedKind::Stdio { command, args, env, .. } = &github.kind else { panic!("stdio") };
//! assert_eq!(command, "npx");
//! assert_eq!(args[3], "/work/project");
//! let get = |k: &str| env.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
//! assert_eq!(get("GITHUB_TOKEN"), Some("ghp_example"));   // trimmed command output
//! assert_eq!(get("API_URL"), Some("https://api.github.com/v3"));
//! assert_eq!(get("DEBUG"), Some("1"));
//! assert_eq!(get("PATH"), Some("/usr/bin"));               // from the inherited safe list
//! assert_eq!(get("input:api-key"), Some("k-123"));          // MCP_HUB_ENV goes to every child
//!
//! let docs = config.resolve_server("docs", &ctx)?;
//! let ResolvedKind::Remote { headers, transport, .. } = &docs.kind else { panic!("remote") };
//! assert_eq!(headers[0], ("Authorization".to_owned(), "Bearer k-123".to_owned()));
//! assert_eq!(*transport, RemoteTransport::StreamableHttp);
//! # Ok(()) }
//! ```
//!
//! In production use the real environment ([`ProcessEnv`]) and [`ShellRunner`] (`/bin/sh -c`,
//! 30 s timeout). `ShellRunner` blocks, so an async program resolves on a blocking thread.
//!
//! ```
//! use mcp_hub_config::{load, ProcessEnv, ResolveContext, ShellRunner};
//!
//! # fn main() -> Result<(), mcp_hub_config::ConfigError> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("servers.json");
//! # std::fs::write(&path, r#"{"mcpServers": {"hello": {"command": "echo", "args": ["${userHome}"]}}}"#).unwrap();
//! let config = load(&[path])?;
//! // workspaceFolder = current directory, userHome = $HOME, hub_env = $MCP_HUB_ENV.
//! let ctx = ResolveContext::from_env(&ProcessEnv, &ShellRunner::DEFAULT)?;
//! for name in config.server_names() {
//!     match config.resolve_server(name, &ctx) {
//!         Ok(server) => println!("{name}: ready ({:?})", server.kind),
//!         Err(e) => eprintln!("{e}"), // safe to log: no resolved values inside
//!     }
//! }
//! for warning in &config.warnings {
//!     eprintln!("warning: {warning}");
//! }
//! # Ok(()) }
//! ```
//!
//! # File format
//!
//! A file is a JSON5 object (strict JSON is valid JSON5). Servers live under `mcpServers`
//! (Claude Desktop, mcp-hub) or `servers` (VS Code's `.vscode/mcp.json`, which wins if a file
//! has both). An entry with `command` is a **stdio** server (`args`, `env`, `cwd`, `dev`); an
//! entry with `url` is a **remote** server (`headers`, and `type`: `sse` for legacy SSE only,
//! `streamable-http`/`http` for Streamable HTTP only, absent to try Streamable HTTP then SSE).
//! Both may have `env`, `disabled`, `name` (display name), `description`, and this hub's
//! extensions `prefix` and `timeout`. Unknown fields are kept in [`ServerConfig::raw`] and
//! otherwise ignored; unknown top-level keys are kept in [`Config::extra`].
//!
//! | field | kind | meaning |
//! |---|---|---|
//! | `command` | stdio | the executable, spawned without a shell |
//! | `args` | stdio | array of strings (numbers and booleans are converted) |
//! | `env` | both | variables for the child; `null` = the hub's value; visible to other fields' placeholders |
//! | `cwd` | stdio | the child's working directory |
//! | `url` | remote | absolute `http(s)://` endpoint |
//! | `headers` | remote | extra request headers |
//! | `type` | both | `stdio`, `sse`, `streamable-http`, `http` |
//! | `disabled` | both | `true` = configured but not started |
//! | `dev` | stdio | `{enabled = true, watch = ["**/*.js", "**/*.ts", "**/*.py", "**/*.json"], cwd (absolute, required)}`: restart on file changes |
//! | `name`, `description` | both | shown to clients |
//! | `prefix` | both | extension: namespace for the server's tools and prompts; `false` for none |
//! | `timeout` | both | extension: request timeout in milliseconds |
//!
//! # Merging several files
//!
//! Files are read in the order given; a missing file is skipped ([`Config::skipped`]). A later
//! file's server **replaces** an earlier server of the same name entirely — no field of the
//! earlier entry survives, nested objects (`env`, `headers`, `dev`) are not merged — and keeps
//! the earlier one's position. Its [`config_source`](ServerConfig::config_source) is the file
//! that defined it last. Other top-level keys are replaced wholesale by later files; VS Code
//! `inputs` are collected by id across files ([`Config::inputs`]).
//!
//! # Placeholders
//!
//! Resolved in `command`, `args`, `env` values, `cwd`, `url`, `headers` values and `dev.cwd`.
//!
//! | form | value |
//! |---|---|
//! | `${NAME}`, `${env:NAME}` | the server's other `env` keys, then `MCP_HUB_ENV`, then the hub's environment, then the predefined names below |
//! | `${workspaceFolder}`, `${cwd}` | [`ResolveContext::workspace_folder`] |
//! | `${workspaceFolderBasename}` | its last component |
//! | `${userHome}` | [`ResolveContext::user_home`] |
//! | `${pathSeparator}`, `${/}` | `/` (`\` on Windows) |
//! | `${input:ID}` | key `input:ID` (normally from `MCP_HUB_ENV`), else the `default` of VS Code input `ID` |
//! | `${cmd: COMMAND}` | stdout of `/bin/sh -c COMMAND`, trimmed; placeholders inside `COMMAND` are resolved first |
//! | `$NAME` (a whole `args` element) | legacy form of `${NAME}`; `$$NAME` gives the literal `$NAME` |
//! | `$${` | a literal `${` (see [`escape`], [`escape_arg`]) |
//!
//! Rules: an unknown variable is an error (strict, like the Node hub); an unterminated `${`
//! stays literal; resolved values are never scanned again (a token containing `${` is safe);
//! whether a placeholder is a command is decided by its text *as written*, so a variable's
//! value can never become a command; braces inside a placeholder are balanced, so
//! `${cmd: awk '{print $1}' f}` works; nesting is limited to 10 levels; each distinct command
//! runs once per resolution pass. `env` values are resolved in dependency order; a cycle
//! (`A` uses `B` uses `A`) is an error, while a key that uses itself (`PATH: "${PATH}:/opt"`)
//! gets the hub's value.
//!
//! **Trust:** `${cmd: …}` runs arbitrary shell code with the hub's privileges. It is only ever
//! taken from config files the user chose; a hub must never resolve text that came from a
//! request. Use [`DenyCommands`] to resolve without running anything.
//!
//! # Environment of a stdio server
//!
//! A child does not inherit the hub's whole environment. Its environment is, in order, with
//! later entries replacing earlier ones: [`INHERITED_ENV_VARS`] (`HOME`, `LOGNAME`, `PATH`,
//! `SHELL`, `TERM`, `USER`) from the hub's environment, every pair of `MCP_HUB_ENV`, then the
//! server's resolved `env`. An `env` value of `null` takes the hub's value of the same name
//! (an error if it has none); `""` takes it if there is one and is empty otherwise.
//!
//! # Errors
//!
//! Every failure is a [`ConfigError`] value; nothing panics on bad input. Syntax errors name the
//! file, line and column; invalid fields name the file, the server and the field (and the line
//! when it can be found); resolution errors name the server, the field and the variable or the
//! command as written. No message ever contains a resolved value, and the `Debug` output of
//! [`ServerConfig`] and [`ResolvedServer`] hides env values, header values and arguments.
//!
//! # Hot reload and writing back
//!
//! [`ConfigDiff::between`] compares two configs with the Node hub's rules (plus `type`,
//! `prefix`, `timeout`) and serializes to its `changes` shape. [`set_disabled_in_file`] flips one
//! server's `disabled` in the file it came from, editing the text in place so comments survive,
//! and writes atomically.
//!
//! # Using it without the rest of the workspace
//!
//! This crate depends on no other crate of the hub (only `serde`, `serde_json`, `json5`,
//! `indexmap`, `thiserror`, and `rustix` on Unix), has no async runtime and opens no socket, so a
//! program that only wants to read the same config files as mcp-hub, Claude Desktop or VS Code
//! (a launcher, a linter, a `check` command, another hub) takes it alone:
//!
//! ```toml
//! [dependencies]
//! mcp-hub-config = { git = "https://github.com/mcp-hub-rs/mcp-hub" }  # or a path, or a version once published
//! ```
//!
//! The typical program is the `resolve` example (`examples/resolve.rs`, run in CI): load the
//! files in order with [`load_reporting_all`] (every error at once), resolve every server with
//! the real environment ([`ResolveContext::from_env`] over [`ProcessEnv`] and [`ShellRunner`]),
//! and print the result through a [`Redactor`] fed with [`ResolvedServer::secrets`], so no value
//! a placeholder resolved to is shown:
//!
//! ```sh
//! EXAMPLE_SEARCH_TOKEN=tok-123456 cargo run -p mcp-hub-config --example resolve -- \
//!     crates/config/examples/resolve/global.json crates/config/examples/resolve/project.json5
//! ```
//!
//! prints, among the rest, `header:  Authorization: Bearer [redacted]` and
//! `env:     DB_URL=postgres://app:[redacted]@localhost/app`. What is left to the program:
//! finding the files (the hub's CLI looks in `~/.config/mcphub/`, see the hub's docs; this
//! crate never guesses paths), watching them ([`ConfigDiff::between`] tells what a change
//! means), and running `${cmd:}` off any async executor's threads, since [`ShellRunner`]
//! blocks. Never resolve text that came from a request: `${cmd:}` runs a shell.

#![warn(missing_docs)]

mod context;
mod diff;
mod entry;
mod env;
mod error;
mod load;
mod locate;
mod persist;
mod redact;
mod resolve;
mod resolved;
mod runner;
mod server;
mod template;
mod views;

pub use context::{INHERITED_ENV_VARS, ResolveContext};
pub use diff::{ConfigDiff, SIGNIFICANT_FIELDS, ServerChange};
pub use env::{EnvSource, MCP_HUB_ENV, MapEnv, ProcessEnv, hub_env_from, parse_hub_env};
pub use error::{CommandError, ConfigError, STDERR_LIMIT};
pub use load::{Config, load, load_from_strs, load_reporting_all};
pub use persist::{DisabledWrite, set_disabled_in_file, set_server_in_file};
pub use redact::{MIN_SECRET_LEN, REDACTED, Redactor, redact_url};
pub use resolve::ResolveReport;
pub use resolved::{ResolvedKind, ResolvedServer};
pub use runner::{CommandRunner, CommandWatch, DEFAULT_COMMAND_TIMEOUT, DenyCommands, ShellRunner};
pub use server::{
    ConfigWarning, DEFAULT_DEV_WATCH, DEFAULT_MAX_INSTANCES, DevConfig, EnvValue, Isolation,
    Prefix, RemoteTransport, ServerConfig, ServerKind,
};
pub use template::{escape, escape_arg};
pub use views::{ProfileConfig, ProfileMode, ProfileServers, ToolFilter, is_glob};
