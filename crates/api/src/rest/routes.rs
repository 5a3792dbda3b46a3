//! The route handlers of the hub itself and its servers' lifecycle: health, server lists,
//! start/stop/refresh, restarts, workspaces, the event stream.

use std::collections::HashMap;

use bytes::Bytes;
use http::{Response, StatusCode};
use mcp_hub_registry::ServerStatus;
use serde_json::{Map, Value, json};

use super::Inner;
use super::input::required_str;
use super::reply::{Failure, Reply, ok};
use super::shape::{server_json, server_object, wrap_servers};
use crate::HubState;
use crate::body::{self, Body};

impl Inner {
    /// `GET /api/profiles`: every profile, what it selects and what it shows now.
    pub(super) fn profiles(&self) -> Value {
        let profiles: Vec<Value> = self
            .registry
            .profiles()
            .iter()
            .map(|p| {
                let view = self.registry.view(&p.name);
                let servers: Vec<Value> = p
                    .servers()
                    .iter()
                    .map(|s| {
                        json!({
                            "pattern": s.pattern(),
                            "tools": {"include": s.tools().include(), "exclude": s.tools().exclude()},
                        })
                    })
                    .collect();
                let shown: Vec<String> = self
                    .registry
                    .names()
                    .into_iter()
                    .filter(|n| p.selects(n).is_some())
                    .collect();
                json!({
                    "name": p.name,
                    "description": p.description,
                    "mode": p.mode.as_str(),
                    "endpoint": format!("/mcp/{}", p.name),
                    "servers": servers,
                    "matchedServers": shown,
                    "tools": view.as_ref().map_or(0, |v| v.tools().len()),
                    "resources": view.as_ref().map_or(0, |v| v.entries(mcp_hub_registry::CatalogList::Resources).len()),
                    "prompts": view.as_ref().map_or(0, |v| v.entries(mcp_hub_registry::CatalogList::Prompts).len()),
                })
            })
            .collect();
        json!({"profiles": profiles})
    }

    pub(super) fn hub_state(&self, state: HubState) -> Value {
        let mut v = json!({
            "state": state.as_str(),
            "server_id": self.server_id,
            "version": self.compat_version,
            "hub_version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "port": self.port,
        });
        if state == HubState::Restarted {
            v["has_restarted"] = true.into();
        }
        v
    }

    pub(super) fn health(&self, mcp_sessions: usize) -> Response<Body> {
        let snapshots = self.registry.snapshots();
        let catalog = self.registry.catalog();
        let caps = json!({
            "tools": catalog.tools().len(),
            "resources": catalog.resources().len(),
            "resourceTemplates": catalog.resource_templates().len(),
            "prompts": catalog.prompts().len(),
        });
        let total = catalog.tools().len()
            + catalog.resources().len()
            + catalog.resource_templates().len()
            + catalog.prompts().len();
        // Key order as in the Node hub (`timestamp` between `activeClients` and `servers`). The
        // server objects are the shared list chunks `/api/servers` sends: a health poll must not
        // re-serialise a large catalogue.
        let head = json!({
            "status": "ok",
            "state": self.control.state().as_str(),
            "server_id": self.server_id,
            "version": self.compat_version,
            "hub_version": env!("CARGO_PKG_VERSION"),
            "activeClients": self.events.count(),
            "timestamp": body::now_iso(),
        });
        let tail = json!({
            "connections": self.events.stats(),
            "mcpEndpoint": {
                "activeClients": mcp_sessions,
                "registeredCapabilities": caps,
                "totalCapabilities": total,
            },
            "workspaces": {
                "current": self.port.to_string(),
                "allActive": self.control.workspaces(),
            },
        });
        let mut parts = Vec::with_capacity(snapshots.len() * 4 + 2);
        let mut open = head.to_string();
        open.pop(); // the closing brace: the object goes on
        open.push_str(",\"servers\":[");
        parts.push(Bytes::from(open));
        for (i, s) in snapshots.iter().enumerate() {
            if i > 0 {
                parts.push(Bytes::from_static(b","));
            }
            parts.extend(server_json(s));
        }
        let rest = tail.to_string();
        parts.push(Bytes::from(format!("],{}", &rest[1..])));
        body::json_chunks(StatusCode::OK, parts)
    }

    pub(super) fn servers(&self) -> Response<Body> {
        let snaps = self.registry.snapshots();
        body::json_chunks(StatusCode::OK, wrap_servers("servers", true, &snaps))
    }

    pub(super) fn info(&self, body: &Map<String, Value>) -> Reply {
        let name = required_str(body, "server_name", "Missing server name")?;
        let snap = self
            .registry
            .snapshot(name)
            .ok_or_else(|| Failure::server_not_found(name))?;
        Ok(body::json_chunks(
            StatusCode::OK,
            wrap_servers("server", false, &[snap]),
        ))
    }

    fn persist_disabled_warning(&self, server: &str, disabled: bool, err: &str) {
        tracing::warn!(target: "mcp_hub::api", server, disabled, "could not persist `disabled` to the config file: {err}");
        self.events.log(
            "warn",
            &format!(
                "Could not save disabled={disabled} for server '{server}' to its config file: {err}"
            ),
            json!({"server": server, "error": err}),
        );
    }

    pub(super) async fn start(&self, body: &Map<String, Value>) -> Reply {
        let name = required_str(body, "server_name", "Missing server name")?;
        let snap = self
            .registry
            .snapshot(name)
            .ok_or_else(|| Failure::server_not_found(name))?;
        let _busy = self.busy(name);
        if snap.status == ServerStatus::Disabled
            && let Err(e) = self.control.persist_disabled(name, false).await
        {
            self.persist_disabled_warning(name, false, &e);
        }
        let result = self.registry.start(name).await;
        self.announce(&[name.to_owned()], None);
        let cluster = self.spread(json!({"op": "start", "server": name})).await;
        let snap = result.map_err(|e| Failure::lifecycle(e, name))?;
        Ok(ok(with_cluster(
            json!({"status": "ok", "server": server_object(&snap)}),
            cluster,
        )))
    }

    pub(super) async fn stop(
        &self,
        body: &Map<String, Value>,
        query: &HashMap<String, String>,
    ) -> Reply {
        let name = required_str(body, "server_name", "Missing server name")?;
        let disable = query.get("disable").map(String::as_str) == Some("true");
        let snap = self
            .registry
            .snapshot(name)
            .ok_or_else(|| Failure::server_not_found(name))?;
        let was_disabled = snap.status == ServerStatus::Disabled;
        let _busy = self.busy(name);
        // A plain stop leaves a disabled server disabled (its config file still says so).
        let result = self.registry.stop(name, disable || was_disabled).await;
        if disable
            && !was_disabled
            && result.is_ok()
            && let Err(e) = self.control.persist_disabled(name, true).await
        {
            self.persist_disabled_warning(name, true, &e);
        }
        self.announce(&[name.to_owned()], None);
        let cluster = self
            .spread(json!({"op": "stop", "server": name, "disable": disable}))
            .await;
        let snap = result.map_err(|e| Failure::lifecycle(e, name))?;
        Ok(ok(with_cluster(
            json!({"status": "ok", "server": server_object(&snap)}),
            cluster,
        )))
    }

    pub(super) async fn refresh(&self, body: &Map<String, Value>) -> Reply {
        let name = required_str(body, "server_name", "Missing server name")?;
        let _busy = self.busy(name);
        let result = self.registry.refresh(name).await;
        let cluster = self.spread(json!({"op": "refresh", "server": name})).await;
        let snap = result.map_err(|e| Failure::lifecycle(e, name))?;
        Ok(ok(with_cluster(
            json!({"status": "ok", "server": server_object(&snap)}),
            cluster,
        )))
    }

    pub(super) async fn refresh_all(&self) -> Response<Body> {
        let names = self.registry.names();
        let results = futures::future::join_all(names.iter().map(|n| async move {
            match self.registry.refresh(n).await {
                Ok(s) => server_object(&s),
                Err(e) => json!({"name": n, "status": "error", "error": e.to_string()}),
            }
        }))
        .await;
        let cluster = self.spread(json!({"op": "refresh_all"})).await;
        ok(with_cluster(
            json!({"status": "ok", "servers": results}),
            cluster,
        ))
    }

    pub(super) async fn restart(&self) -> Reply {
        match self.control.restart().await {
            Ok(()) => Ok(ok(json!({"status": "ok"}))),
            Err(e) => Err(Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "HUB_RESTART_ERROR",
                e,
            )),
        }
    }

    pub(super) async fn hard_restart(&self) -> Response<Body> {
        self.control.hard_restart().await;
        ok(json!({"status": "ok"}))
    }

    pub(super) fn workspaces(&self) -> Response<Body> {
        ok(json!({ "workspaces": self.control.workspaces() }))
    }

    pub(super) fn subscribe_events(&self) -> Reply {
        let first = super::events::frame("hub_state", self.hub_state(self.control.state()));
        self.events.subscribe(first, &self.shutdown)
    }
}

/// Cluster mode: the answer gets a `cluster` member (which replica applied the operation, how
/// many others were told to).
fn with_cluster(mut v: Value, cluster: Option<Value>) -> Value {
    if let Some(c) = cluster {
        v["cluster"] = c;
    }
    v
}
