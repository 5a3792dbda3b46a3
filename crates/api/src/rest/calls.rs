//! `POST /api/servers/tools`, `/prompts` and `/resources`: calls to one server's tools, prompts
//! and resources by their upstream names, with the Node hub's error codes and data.

use http::StatusCode;
use mcp_hub_protocol::methods;
use mcp_hub_registry::{ItemList, ServerSnapshot, ServerStatus};
use serde_json::{Map, Value};

use super::Inner;
use super::input::{arguments, request_options, required_str};
use super::reply::{Failure, Reply, not_connected, ok_result};
use super::shape::{has_name, names};

/// The server, which must exist and be connected for a call.
fn connected(snap: Option<ServerSnapshot>, server: &str) -> Result<ServerSnapshot, Failure> {
    let snap = snap.ok_or_else(|| Failure::server_not_found(server))?;
    if snap.status != ServerStatus::Connected {
        return Err(not_connected(server, None).with("status", snap.status.as_str()));
    }
    Ok(snap)
}

/// Adds `key` to a failure's data unless the failure already set it.
/// What differs between `POST /api/servers/tools` and `POST /api/servers/prompts`.
struct NamedCall {
    /// The body field naming the item, also its key in error data (`tool`, `prompt`).
    field: &'static str,
    missing: &'static str,
    operation: &'static str,
    not_found_code: &'static str,
    not_found: &'static str,
    available: &'static str,
    method: &'static str,
    error_code: &'static str,
    list: fn(&ServerSnapshot) -> &ItemList,
}

const TOOL_CALL: NamedCall = NamedCall {
    field: "tool",
    missing: "Missing tool name",
    operation: "tool_call",
    not_found_code: "TOOL_NOT_FOUND",
    not_found: "Tool not found",
    available: "availableTools",
    method: methods::TOOLS_CALL,
    error_code: "TOOL_EXECUTION_ERROR",
    list: |s| &s.tools,
};

const PROMPT_GET: NamedCall = NamedCall {
    field: "prompt",
    missing: "Missing prompt name",
    operation: "get_prompt",
    not_found_code: "PROMPT_NOT_FOUND",
    not_found: "Prompt not found",
    available: "availablePrompts",
    method: methods::PROMPTS_GET,
    error_code: "PROMPT_EXECUTION_ERROR",
    list: |s| &s.prompts,
};

fn tag(mut f: Failure, key: &str, value: impl Into<Value>) -> Failure {
    if !f.data.contains_key(key) {
        f.data.insert(key.to_owned(), value.into());
    }
    f
}

impl Inner {
    pub(super) async fn call_tool(&self, body: &Map<String, Value>) -> Reply {
        self.call_named(body, &TOOL_CALL).await
    }

    /// A tool call or a prompt get: the item must be in the server's list, then the request goes
    /// upstream under its own name, and errors carry the Node hub's codes and data.
    async fn call_named(&self, body: &Map<String, Value>, call: &NamedCall) -> Reply {
        let server = required_str(body, "server_name", "Missing server name")?;
        let name = required_str(body, call.field, call.missing)?;
        let snap = connected(self.registry.snapshot(server), server)
            .map_err(|f| tag(f, call.field, name).with("operation", call.operation))?;
        let listed = (call.list)(&snap);
        if !has_name(listed, name) {
            return Err(
                Failure::new(StatusCode::NOT_FOUND, call.not_found_code, call.not_found)
                    .with("server", server)
                    .with(call.field, name)
                    .with(call.available, names(listed)),
            );
        }
        let args = arguments(body).map_err(|f| f.with("server", server).with(call.field, name))?;
        let opts = request_options(body)?;
        let requested = opts.timeout;
        let mut params = Map::new();
        params.insert("name".into(), name.into());
        params.insert("arguments".into(), args.clone());
        match self
            .registry
            .request(server, call.method, Some(params), opts)
            .await
        {
            Ok(raw) => Ok(ok_result(&raw)),
            Err(e) => Err(tag(
                tag(
                    tag(
                        Failure::upstream(e, call.error_code, server, requested),
                        "server",
                        server,
                    ),
                    call.field,
                    name,
                ),
                "args",
                args,
            )),
        }
    }

    pub(super) async fn read_resource(&self, body: &Map<String, Value>) -> Reply {
        let server = required_str(body, "server_name", "Missing server name")?;
        let uri = required_str(body, "uri", "Missing resource URI")?;
        connected(self.registry.snapshot(server), server)
            .map_err(|f| tag(f, "uri", uri).with("operation", "resource_read"))?;
        let opts = request_options(body)?;
        let requested = opts.timeout;
        let mut params = Map::new();
        params.insert("uri".into(), uri.into());
        match self
            .registry
            .request(server, methods::RESOURCES_READ, Some(params), opts)
            .await
        {
            Ok(raw) => Ok(ok_result(&raw)),
            Err(e) => Err(tag(
                tag(
                    Failure::upstream(e, "RESOURCE_READ_ERROR", server, requested),
                    "server",
                    server,
                ),
                "uri",
                uri,
            )),
        }
    }

    pub(super) async fn get_prompt(&self, body: &Map<String, Value>) -> Reply {
        self.call_named(body, &PROMPT_GET).await
    }
}
