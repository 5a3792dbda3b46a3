//! Changing servers at run time from the embedding program: add, update, enable, disable,
//! remove. Every change goes through the path a config reload takes ([`crate::reload::apply`]):
//! the same diff, the same `config_changed` / `servers_updating` / `servers_updated` events, the
//! same catalogue rebuild. A server a config file defines is changed in that file too (so the
//! change survives a restart and the file watcher finds nothing new); any other lives in the
//! hub's code layer, which reloads keep.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcp_hub_config::{ConfigDiff, ServerConfig};
use serde_json::{Map, Value};

use crate::CoreError;
use crate::hub::HubHandle;
use crate::inner::{HubInner, lock};
use crate::layers::{CODE_SOURCE, Layers};

/// What to do to one server.
enum Change {
    Upsert {
        entry: Value,
        must_exist: Option<bool>,
    },
    Disabled(bool),
    Remove,
}

impl HubHandle {
    /// Adds a server from its config entry (what a config file holds under `mcpServers`, e.g.
    /// `{"command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"]}`),
    /// validated as a file's entry is, and starts it unless it is `disabled`. It lives in the
    /// hub's code layer (`config_source` `<code>`, no file is written) and survives reloads.
    /// Returns once it has connected or failed, like [`HubHandle::reload`]. An existing name is
    /// an error ([`CoreError::ServerExists`]); see [`HubHandle::update_server`].
    pub async fn add_server(&self, name: &str, entry: Value) -> Result<ConfigDiff, CoreError> {
        change(
            &self.inner,
            name,
            Change::Upsert {
                entry,
                must_exist: Some(false),
            },
        )
        .await
    }

    /// Replaces an existing server's whole entry. A server a config file defines is rewritten
    /// in that file (as pretty-printed JSON: comments in a JSON5 file are lost); only a changed
    /// entry restarts the server.
    pub async fn update_server(&self, name: &str, entry: Value) -> Result<ConfigDiff, CoreError> {
        change(
            &self.inner,
            name,
            Change::Upsert {
                entry,
                must_exist: Some(true),
            },
        )
        .await
    }

    /// Adds or replaces a server: [`HubHandle::add_server`] or [`HubHandle::update_server`].
    pub async fn upsert_server(&self, name: &str, entry: Value) -> Result<ConfigDiff, CoreError> {
        change(
            &self.inner,
            name,
            Change::Upsert {
                entry,
                must_exist: None,
            },
        )
        .await
    }

    /// Starts a disabled server and clears its `disabled` flag (in its file, when it has one),
    /// as `POST /api/servers/start` does.
    pub async fn enable_server(&self, name: &str) -> Result<ConfigDiff, CoreError> {
        change(&self.inner, name, Change::Disabled(false)).await
    }

    /// Stops a server and sets its `disabled` flag (in its file, when it has one), as
    /// `POST /api/servers/stop?disable=true` does.
    pub async fn disable_server(&self, name: &str) -> Result<ConfigDiff, CoreError> {
        change(&self.inner, name, Change::Disabled(true)).await
    }

    /// Stops a server and removes it from the config (from its file, when it has one; a server
    /// defined both in code and in a file is removed from both).
    pub async fn remove_server(&self, name: &str) -> Result<ConfigDiff, CoreError> {
        change(&self.inner, name, Change::Remove).await
    }
}

async fn change(inner: &Arc<HubInner>, name: &str, what: Change) -> Result<ConfigDiff, CoreError> {
    let guard = inner.config_lock.lock().await;
    let mut layers = lock(&inner.layers).clone();
    let file = layers.file_of(name);
    let exists = layers.code.server(name).is_some() || file.is_some();
    match what {
        Change::Upsert { entry, must_exist } => {
            match must_exist {
                Some(true) if !exists => return Err(CoreError::ServerNotFound(name.to_owned())),
                Some(false) if exists => return Err(CoreError::ServerExists(name.to_owned())),
                _ => {}
            }
            let source = file.clone().unwrap_or_else(|| PathBuf::from(CODE_SOURCE));
            let sc = crate::layers::parse_entry(name, &entry, &source)?;
            match &file {
                Some(path) => {
                    write_entry(path, name, Some(sc.raw.clone())).await?;
                    layers.files.servers.insert(name.to_owned(), sc);
                }
                None => {
                    layers.code.servers.insert(name.to_owned(), sc);
                }
            }
        }
        Change::Disabled(disabled) => {
            if !exists {
                return Err(CoreError::ServerNotFound(name.to_owned()));
            }
            if let Some(path) = &file {
                let (path, n) = (path.clone(), name.to_owned());
                tokio::task::spawn_blocking(move || {
                    mcp_hub_config::set_disabled_in_file(&path, &n, disabled)
                })
                .await
                .map_err(|e| CoreError::Auth(e.to_string()))??;
            }
            for sc in server_mut(&mut layers, name) {
                sc.set_disabled(disabled);
            }
        }
        Change::Remove => {
            if !exists {
                return Err(CoreError::ServerNotFound(name.to_owned()));
            }
            if let Some(path) = &file {
                write_entry(path, name, None).await?;
            }
            layers.files.servers.shift_remove(name);
            layers.code.servers.shift_remove(name);
        }
    }
    let new = Arc::new(layers.merged());
    *lock(&inner.layers) = layers;
    Ok(crate::reload::apply(inner, guard, new).await)
}

/// The server's entries in both layers (a file's hides the code one, but both change).
fn server_mut<'a>(
    layers: &'a mut Layers,
    name: &str,
) -> impl Iterator<Item = &'a mut ServerConfig> {
    let Layers { code, files } = layers;
    code.servers
        .get_mut(name)
        .into_iter()
        .chain(files.servers.get_mut(name))
}

async fn write_entry(
    path: &Path,
    name: &str,
    entry: Option<Map<String, Value>>,
) -> Result<(), CoreError> {
    let (path, name) = (path.to_path_buf(), name.to_owned());
    tokio::task::spawn_blocking(move || {
        mcp_hub_config::set_server_in_file(&path, &name, entry.as_ref())
    })
    .await
    .map_err(|e| CoreError::Auth(e.to_string()))??;
    Ok(())
}
