//! `GET /api/health` for a caller without a valid bearer token.
//!
//! Health stays open when `--token` is set, because liveness checks and editor plugins poll it
//! before they know of any token; but the full payload (server objects with tool schemas,
//! errors, config paths, pids, workspaces) is what the token protects. Such a caller gets what a
//! liveness check needs: status, state, versions and counts. mcphub.nvim's `check_server` reads
//! only `server_id`, `status` and `version`; its `update_servers` falls back to empty lists when
//! `servers` and `workspaces` are absent.

use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::Inner;
use crate::body::{self, Body};

/// Which `/api/health` payload a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthView {
    /// No token is configured, or the request carries a valid one.
    Full,
    /// A token is configured and the request does not carry it.
    Liveness,
}

impl Inner {
    pub(super) fn health_liveness(&self, mcp_sessions: usize) -> Response<Body> {
        let mut by_status = Map::new();
        let snapshots = self.registry.snapshots();
        for s in &snapshots {
            let n = by_status
                .entry(s.status.as_str())
                .or_insert(Value::from(0u64));
            *n = Value::from(n.as_u64().unwrap_or(0) + 1);
        }
        let catalog = self.registry.catalog();
        let v = json!({
            "status": "ok",
            "state": self.control.state().as_str(),
            "server_id": self.server_id,
            "version": self.compat_version,
            "hub_version": env!("CARGO_PKG_VERSION"),
            "activeClients": self.events.count(),
            "timestamp": body::now_iso(),
            "serverCounts": {"total": snapshots.len(), "byStatus": by_status},
            "mcpEndpoint": {
                "activeClients": mcp_sessions,
                "registeredCapabilities": {
                    "tools": catalog.tools().len(),
                    "resources": catalog.resources().len(),
                    "resourceTemplates": catalog.resource_templates().len(),
                    "prompts": catalog.prompts().len(),
                },
            },
        });
        body::json(StatusCode::OK, &v)
    }
}
