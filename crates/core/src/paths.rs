//! Where the hub keeps its files, resolved exactly like the Node `mcp-hub` 4.2.1 so that both
//! hubs (and mcphub.nvim, which reads `workspaces.json` itself) agree on every location.
//!
//! The rule, per (kind, subdir): if `~/.mcp-hub/<subdir>` exists it is used (the legacy layout);
//! otherwise `$XDG_<KIND>_HOME/mcp-hub/<subdir>`, with `~/.local/state` and `~/.local/share` as
//! the defaults. Note that the legacy test is per subdir: with `~/.mcp-hub/` present but no
//! `~/.mcp-hub/cache/`, the marketplace cache still goes under the XDG data dir.

use std::path::{Path, PathBuf};

/// Every file location the hub uses. Build it with [`Paths::resolve`] (tests, embedders) or
/// [`Paths::from_process`] (the binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// State directory: `~/.mcp-hub` or `$XDG_STATE_HOME/mcp-hub`.
    pub state_dir: PathBuf,
    /// Data directory: `~/.mcp-hub` or `$XDG_DATA_HOME/mcp-hub`.
    pub data_dir: PathBuf,
    /// Cache directory (data-based, as in the Node hub): `~/.mcp-hub/cache` or
    /// `$XDG_DATA_HOME/mcp-hub/cache`.
    pub cache_dir: PathBuf,
    /// `<state>/logs/mcp-hub.log` (`~/.mcp-hub/logs/` when that directory exists).
    pub log_file: PathBuf,
    /// `<state>/workspaces.json`, the machine-wide cache of running hubs.
    pub workspaces_file: PathBuf,
    /// `<data>/oauth-tokens.json` (not the Node hub's `oauth-storage.json`, whose format differs).
    pub oauth_file: PathBuf,
    /// `<data>/oauth-storage.json`: the Node hub's OAuth storage, read (never written) to carry
    /// its logins over.
    pub node_oauth_file: PathBuf,
    /// `<cache>/registry.json`, the marketplace catalogue cache.
    pub marketplace_cache: PathBuf,
}

#[derive(Clone, Copy)]
enum Kind {
    State,
    Data,
}

impl Paths {
    /// Resolves every location from a home directory and an environment lookup, checking the
    /// real filesystem for the legacy `~/.mcp-hub` directories.
    ///
    /// The environment is injected so tests and embedders never depend on (or mutate) the
    /// process environment. An empty or relative `XDG_*_HOME` is ignored, as the XDG base
    /// directory specification requires (the Node hub only ignores empty ones).
    pub fn resolve(home: &Path, env: impl Fn(&str) -> Option<String>) -> Paths {
        Self::resolve_with(home, env, |p| p.is_dir())
    }

    /// Like [`Paths::resolve`] with an injected "does this legacy directory exist" test.
    pub fn resolve_with(
        home: &Path,
        env: impl Fn(&str) -> Option<String>,
        dir_exists: impl Fn(&Path) -> bool,
    ) -> Paths {
        let dir = |kind: Kind, subdir: &str| -> PathBuf {
            let legacy = join_sub(&home.join(".mcp-hub"), subdir);
            if dir_exists(&legacy) {
                return legacy;
            }
            let (var, default) = match kind {
                Kind::State => ("XDG_STATE_HOME", home.join(".local").join("state")),
                Kind::Data => ("XDG_DATA_HOME", home.join(".local").join("share")),
            };
            let base = env(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or(default);
            join_sub(&base.join("mcp-hub"), subdir)
        };
        let state_dir = dir(Kind::State, "");
        let data_dir = dir(Kind::Data, "");
        let cache_dir = dir(Kind::Data, "cache");
        let log_file = dir(Kind::State, "logs").join("mcp-hub.log");
        Paths {
            workspaces_file: state_dir.join("workspaces.json"),
            oauth_file: data_dir.join("oauth-tokens.json"),
            node_oauth_file: data_dir.join("oauth-storage.json"),
            marketplace_cache: cache_dir.join("registry.json"),
            log_file,
            state_dir,
            data_dir,
            cache_dir,
        }
    }

    /// Resolves from the running process: `$HOME` (or the password database) and the real
    /// environment. `None` when no home directory can be determined.
    pub fn from_process() -> Option<Paths> {
        let home = std::env::home_dir().filter(|h| !h.as_os_str().is_empty())?;
        Some(Self::resolve(&home, |k| {
            std::env::var_os(k).map(|v| v.to_string_lossy().into_owned())
        }))
    }
}

fn join_sub(base: &Path, subdir: &str) -> PathBuf {
    if subdir.is_empty() {
        base.to_path_buf()
    } else {
        base.join(subdir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn xdg_defaults_under_home() {
        let p = Paths::resolve_with(Path::new("/h"), env_of(&[]), |_| false);
        assert_eq!(p.state_dir, Path::new("/h/.local/state/mcp-hub"));
        assert_eq!(p.data_dir, Path::new("/h/.local/share/mcp-hub"));
        assert_eq!(p.cache_dir, Path::new("/h/.local/share/mcp-hub/cache"));
        assert_eq!(
            p.log_file,
            Path::new("/h/.local/state/mcp-hub/logs/mcp-hub.log")
        );
        assert_eq!(
            p.workspaces_file,
            Path::new("/h/.local/state/mcp-hub/workspaces.json")
        );
        assert_eq!(
            p.oauth_file,
            Path::new("/h/.local/share/mcp-hub/oauth-tokens.json")
        );
        assert_eq!(
            p.marketplace_cache,
            Path::new("/h/.local/share/mcp-hub/cache/registry.json")
        );
    }

    #[test]
    fn xdg_variables_win_over_defaults_but_not_empty_or_relative() {
        let p = Paths::resolve_with(
            Path::new("/h"),
            env_of(&[("XDG_STATE_HOME", "/s"), ("XDG_DATA_HOME", "/d")]),
            |_| false,
        );
        assert_eq!(p.workspaces_file, Path::new("/s/mcp-hub/workspaces.json"));
        assert_eq!(p.log_file, Path::new("/s/mcp-hub/logs/mcp-hub.log"));
        assert_eq!(
            p.marketplace_cache,
            Path::new("/d/mcp-hub/cache/registry.json")
        );
        assert_eq!(p.oauth_file, Path::new("/d/mcp-hub/oauth-tokens.json"));
        assert_eq!(
            p.node_oauth_file,
            Path::new("/d/mcp-hub/oauth-storage.json")
        );

        let p = Paths::resolve_with(
            Path::new("/h"),
            env_of(&[("XDG_STATE_HOME", ""), ("XDG_DATA_HOME", "rel/dir")]),
            |_| false,
        );
        assert_eq!(p.state_dir, Path::new("/h/.local/state/mcp-hub"));
        assert_eq!(p.data_dir, Path::new("/h/.local/share/mcp-hub"));
    }

    #[test]
    fn legacy_dirs_are_checked_per_subdir() {
        // Only ~/.mcp-hub itself exists: state and data files move there, logs and cache do not.
        let p = Paths::resolve_with(Path::new("/h"), env_of(&[("XDG_DATA_HOME", "/d")]), |p| {
            p == Path::new("/h/.mcp-hub")
        });
        assert_eq!(p.workspaces_file, Path::new("/h/.mcp-hub/workspaces.json"));
        assert_eq!(p.oauth_file, Path::new("/h/.mcp-hub/oauth-tokens.json"));
        assert_eq!(
            p.node_oauth_file,
            Path::new("/h/.mcp-hub/oauth-storage.json")
        );
        assert_eq!(
            p.log_file,
            Path::new("/h/.local/state/mcp-hub/logs/mcp-hub.log")
        );
        assert_eq!(
            p.marketplace_cache,
            Path::new("/d/mcp-hub/cache/registry.json")
        );

        let p = Paths::resolve_with(Path::new("/h"), env_of(&[]), |p| {
            p.starts_with("/h/.mcp-hub")
        });
        assert_eq!(p.log_file, Path::new("/h/.mcp-hub/logs/mcp-hub.log"));
        assert_eq!(p.cache_dir, Path::new("/h/.mcp-hub/cache"));
        assert_eq!(
            p.marketplace_cache,
            Path::new("/h/.mcp-hub/cache/registry.json")
        );
    }

    #[test]
    fn resolve_checks_the_real_filesystem() {
        let home = tempfile::tempdir().expect("tempdir");
        let p = Paths::resolve(home.path(), |_| None);
        assert_eq!(p.state_dir, home.path().join(".local/state/mcp-hub"));
        std::fs::create_dir_all(home.path().join(".mcp-hub/logs")).expect("mkdir");
        let p = Paths::resolve(home.path(), |_| None);
        assert_eq!(p.state_dir, home.path().join(".mcp-hub"));
        assert_eq!(p.log_file, home.path().join(".mcp-hub/logs/mcp-hub.log"));
        assert_eq!(p.cache_dir, home.path().join(".local/share/mcp-hub/cache"));
    }
}
