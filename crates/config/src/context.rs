//! Where placeholders get their values: the hub's environment, `MCP_HUB_ENV`, the command
//! runner and the predefined VS Code names ([`ResolveContext`]), and which variables of the
//! hub's environment a stdio child inherits.

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::ConfigError;
use crate::env::{EnvSource, hub_env_from};
use crate::runner::CommandRunner;

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

    pub(crate) fn predefined(&self, name: &str) -> Option<String> {
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
    pub(crate) fn outer(&self, name: &str) -> Option<String> {
        self.outer_sourced(name).map(|(v, _)| v)
    }

    /// [`outer`](Self::outer), and whether the value may be a secret: the predefined names and
    /// the variables every child inherits anyway (`HOME`, `PATH`, …) are not.
    pub(crate) fn outer_sourced(&self, name: &str) -> Option<(String, bool)> {
        if let Some(v) = self.hub_env.get(name) {
            return Some((v.clone(), true));
        }
        if let Some(v) = self.env.var(name) {
            return Some((v, !INHERITED_ENV_VARS.contains(&name)));
        }
        self.predefined(name).map(|v| (v, false))
    }
}
