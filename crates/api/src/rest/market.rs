//! `GET /api/marketplace` and `POST /api/marketplace/details`, served from the control's
//! catalogue.

use std::collections::HashMap;

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::Inner;
use super::input::required_str;
use super::reply::{Failure, Reply, ok};

impl Inner {
    pub(super) async fn marketplace(&self, query: &HashMap<String, String>) -> Reply {
        match self.control.marketplace(query).await {
            Ok(v) => {
                let servers = match v {
                    Value::Object(mut o) if o.contains_key("servers") => {
                        o.remove("servers").unwrap_or(Value::Null)
                    }
                    other => other,
                };
                Ok(ok(json!({ "servers": servers })))
            }
            Err(e) => Err(
                Failure::new(StatusCode::BAD_GATEWAY, "MARKETPLACE_ERROR", e)
                    .with("query", json!(query)),
            ),
        }
    }

    pub(super) async fn marketplace_details(&self, body: &Map<String, Value>) -> Reply {
        let id = required_str(body, "mcpId", "Missing mcpId in request body")?;
        match self.control.marketplace_details(id).await {
            // The core reports an unknown id as `Err("Server not found")` (the Node hub's
            // message); `null` means the same.
            Ok(Value::Null) => Err(Failure::new(
                StatusCode::NOT_FOUND,
                "MARKETPLACE_ERROR",
                "Server not found",
            )
            .with("mcpId", id)),
            Err(e) if e == "Server not found" => Err(Failure::new(
                StatusCode::NOT_FOUND,
                "MARKETPLACE_ERROR",
                "Server not found",
            )
            .with("mcpId", id)),
            // The Node hub nests `{server, readmeContent}` under `server`; clients rely on it.
            Ok(details) => Ok(ok(json!({ "server": details }))),
            Err(e) => {
                Err(Failure::new(StatusCode::BAD_GATEWAY, "MARKETPLACE_ERROR", e).with("mcpId", id))
            }
        }
    }
}
