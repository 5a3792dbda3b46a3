//! The [`Control`] implementation behind the REST API's process-level routes.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use mcp_hub_api::{Control, HubEvent, HubState};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::connector::definition;
use crate::inner::{HubInner, lock};

pub(crate) struct CoreControl {
    pub(crate) hub: Weak<HubInner>,
}

impl CoreControl {
    fn hub(&self) -> Result<Arc<HubInner>, String> {
        self.hub
            .upgrade()
            .ok_or_else(|| "the hub is shutting down".to_owned())
    }
}

#[async_trait::async_trait]
impl Control for CoreControl {
    fn state(&self) -> HubState {
        self.hub.upgrade().map_or(HubState::Stopped, |h| h.state())
    }

    fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        match self.hub.upgrade() {
            Some(h) => h.events.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    async fn restart(&self) -> Result<(), String> {
        let hub = self.hub()?;
        let config_guard = hub.config_lock.lock().await;
        hub.set_state(HubState::Restarting);
        let files = hub.builder.config_files.clone();
        let config = match tokio::task::spawn_blocking(move || mcp_hub_config::load(&files)).await {
            Ok(Ok(c)) => {
                let mut layers = lock(&hub.layers);
                layers.files = c;
                Arc::new(layers.merged())
            }
            Ok(Err(e)) => {
                hub.set_state(HubState::Restarted);
                return Err(e.to_string());
            }
            Err(e) => return Err(e.to_string()),
        };
        for gone in hub
            .registry
            .names()
            .into_iter()
            .filter(|n| config.server(n).is_none())
        {
            let _ = hub.registry.remove(&gone).await;
        }
        for sc in config.servers.values() {
            hub.registry.upsert(definition(&hub, &config, sc));
        }
        crate::reload::apply_views(&hub, &config);
        *lock(&hub.config) = config;
        drop(config_guard);
        hub.registry
            .wait_settled(hub.builder.registry.initialize_timeout)
            .await;
        hub.set_state(HubState::Restarted);
        Ok(())
    }

    async fn hard_restart(&self) {
        if let Ok(hub) = self.hub() {
            hub.set_state(HubState::Restarting);
            hub.request_exit();
        }
    }

    async fn persist_disabled(&self, server: &str, disabled: bool) -> Result<(), String> {
        let hub = self.hub()?;
        let _config = hub.config_lock.lock().await;
        let config = hub.config();
        let sc = config
            .server(server)
            .ok_or_else(|| format!("Server not found: {server}"))?;
        // In memory first, under the config lock: when the watcher reloads the file written
        // below, it finds nothing new, so the hub's own write never restarts the server (a second
        // spawn racing the one the route asked for).
        if sc.disabled != disabled {
            let mut next = (*config).clone();
            if let Some(s) = next.servers.get_mut(server) {
                s.set_disabled(disabled);
            }
            *lock(&hub.config) = Arc::new(next);
        }
        let file = {
            let mut guard = lock(&hub.layers);
            let layers = &mut *guard;
            for layer in [&mut layers.code, &mut layers.files] {
                if let Some(s) = layer.servers.get_mut(server) {
                    s.set_disabled(disabled);
                }
            }
            layers.file_of(server)
        };
        // A server configured in code has no file: memory is all there is to change.
        let Some(path) = file else {
            return Ok(());
        };
        let name = server.to_owned();
        tokio::task::spawn_blocking(move || {
            mcp_hub_config::set_disabled_in_file(&path, &name, disabled)
        })
        .await
        .map_err(|e| e.to_string())?
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    fn workspaces(&self) -> Value {
        self.hub
            .upgrade()
            .map_or_else(|| json!({}), |h| lock(&h.workspaces).clone())
    }

    fn config_view(&self) -> Value {
        self.hub
            .upgrade()
            .map_or_else(|| json!({}), |h| crate::configview::view(&h.config()))
    }

    fn config_files(&self) -> Vec<String> {
        self.hub
            .upgrade()
            .map(|h| {
                h.builder
                    .config_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn marketplace(&self, query: &HashMap<String, String>) -> Result<Value, String> {
        let hub = self.hub()?;
        let m = hub
            .marketplace
            .as_ref()
            .ok_or("the marketplace is not enabled on this hub")?;
        m.list(query).await.map_err(|e| e.to_string())
    }

    async fn marketplace_details(&self, mcp_id: &str) -> Result<Value, String> {
        let hub = self.hub()?;
        let m = hub
            .marketplace
            .as_ref()
            .ok_or("the marketplace is not enabled on this hub")?;
        match m.details(mcp_id).await {
            Ok(v) => Ok(v),
            // The API answers an unknown id with 404.
            Err(crate::MarketplaceError::NotFound(_)) => Ok(Value::Null),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn authorize(&self, server: &str) -> Result<String, String> {
        let hub = self.hub()?;
        let oauth = hub
            .oauth
            .clone()
            .ok_or("OAuth is not enabled on this hub")?;
        // The URL the server's status shows, unless its flow is over (a callback consumed its
        // `state`, even a denied or failed one, or it expired): then a new one.
        if let Some(url) = hub
            .registry
            .snapshot(server)
            .and_then(|s| s.authorization_url)
            && oauth.is_pending_anywhere(&url).await
        {
            return Ok(url);
        }
        let config = hub.config();
        let sc = config
            .server(server)
            .ok_or_else(|| format!("Server not found: {server}"))?;
        let url = match &sc.kind {
            mcp_hub_config::ServerKind::Remote { url, .. } => url.clone(),
            mcp_hub_config::ServerKind::Stdio { .. } => {
                return Err(format!("Server '{server}' is not a remote server"));
            }
        };
        let url = url::Url::parse(&url).map_err(|e| e.to_string())?;
        oauth
            .start_authorization(server, &url, None)
            .await
            .map_err(|e| e.to_string())
    }

    async fn oauth_callback(&self, query: &HashMap<String, String>) -> Result<String, String> {
        let hub = self.hub()?;
        let oauth = hub
            .oauth
            .clone()
            .ok_or("OAuth is not enabled on this hub")?;
        let server = oauth.complete(query).await.map_err(|e| e.to_string())?;
        // Only this server reconnects, now with its token.
        let _ = hub.registry.restart(&server).await;
        hub.subscription(
            json!({"type": "servers_updated", "changes": {"modified": [server.clone()]}}),
        );
        Ok(server)
    }
}
