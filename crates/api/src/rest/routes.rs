//! The route handlers.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use mcp_hub_protocol::methods;
use mcp_hub_registry::{RequestOptions, ServerSnapshot, ServerStatus};
use serde_json::{Map, Value, json};

use super::reply::{Failure, Reply, not_connected, ok, ok_result};
use super::shape::{has_name, html_escape, names, server_object};
use super::{ALL_SERVERS, Inner};
use crate::HubState;
use crate::body::{self, Body};

/// Upper bound of `request_options.timeout`, so a typo cannot park a request for years.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A required string field. Missing, `null` and `""` give the Node hub's message; another
/// type is reported as such.
fn required_str<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    missing: &str,
) -> Result<&'a str, Failure> {
    match body.get(field) {
        None | Some(Value::Null) => Err(Failure::validation(missing, field)),
        Some(Value::String(s)) if s.is_empty() => Err(Failure::validation(missing, field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Failure::validation(
            format!("Invalid {field}: expected a string"),
            field,
        )),
    }
}

/// `arguments` of a tool call or prompt: an object; missing or `null` is `{}`, and so is `[]`
/// (an empty Lua table, as mcphub.nvim may encode it).
fn arguments(body: &Map<String, Value>) -> Result<Value, Failure> {
    match body.get("arguments") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(Value::Array(a)) if a.is_empty() => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(other) => Err(Failure::validation(
            "Invalid arguments: expected an object",
            "arguments",
        )
        .with("args", other.clone())),
    }
}

fn millis(v: &Value, field: &str) -> Result<Option<Duration>, Failure> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(_) if n.as_u64().is_some_and(|ms| ms > 0) => Ok(Some(
                Duration::from_millis(n.as_u64().unwrap_or_default()).min(MAX_TIMEOUT),
            )),
            Some(ms) if ms.is_finite() && ms > 0.0 => {
                // Clamped before converting: `from_secs_f64` panics on huge values.
                let secs = (ms / 1000.0).min(MAX_TIMEOUT.as_secs_f64());
                Ok(Some(Duration::from_secs_f64(secs)))
            }
            _ => Err(Failure::validation(
                format!("Invalid {field}: expected a positive number of milliseconds"),
                field,
            )),
        },
        _ => Err(Failure::validation(
            format!("Invalid {field}: expected a positive number of milliseconds"),
            field,
        )),
    }
}

/// `request_options` as the Node hub passes them to the TypeScript SDK: `timeout` and
/// `maxTotalTimeout` in milliseconds, `resetTimeoutOnProgress`.
fn request_options(body: &Map<String, Value>) -> Result<RequestOptions, Failure> {
    let mut opts = RequestOptions::default();
    let m = match body.get("request_options") {
        None | Some(Value::Null) => return Ok(opts),
        Some(Value::Array(a)) if a.is_empty() => return Ok(opts),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(Failure::validation(
                "Invalid request_options: expected an object",
                "request_options",
            ));
        }
    };
    if let Some(t) = m.get("timeout") {
        opts.timeout = millis(t, "request_options.timeout")?;
    }
    if let Some(t) = m.get("maxTotalTimeout") {
        opts.max_total_timeout = millis(t, "request_options.maxTotalTimeout")?;
    }
    if let Some(Value::Bool(b)) = m.get("resetTimeoutOnProgress") {
        opts.reset_timeout_on_progress = *b;
    }
    Ok(opts)
}

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
    list: fn(&ServerSnapshot) -> &[Value],
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
        let servers: Vec<Value> = self
            .registry
            .snapshots()
            .iter()
            .map(server_object)
            .collect();
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
        // Key order as in the Node hub (`timestamp` between `activeClients` and `servers`).
        let v = json!({
            "status": "ok",
            "state": self.control.state().as_str(),
            "server_id": self.server_id,
            "version": self.compat_version,
            "hub_version": env!("CARGO_PKG_VERSION"),
            "activeClients": self.events.count(),
            "timestamp": body::now_iso(),
            "servers": servers,
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
        body::json(StatusCode::OK, &v)
    }

    pub(super) fn servers(&self) -> Response<Body> {
        let servers: Vec<Value> = self
            .registry
            .snapshots()
            .iter()
            .map(server_object)
            .collect();
        ok(json!({ "servers": servers }))
    }

    pub(super) fn info(&self, body: &Map<String, Value>) -> Reply {
        let name = required_str(body, "server_name", "Missing server name")?;
        let snap = self
            .registry
            .snapshot(name)
            .ok_or_else(|| Failure::server_not_found(name))?;
        Ok(ok(json!({ "server": server_object(&snap) })))
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
        self.events.servers_updated(&[name.to_owned()], None);
        let snap = result.map_err(|e| Failure::lifecycle(e, name))?;
        Ok(ok(json!({"status": "ok", "server": server_object(&snap)})))
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
        self.events.servers_updated(&[name.to_owned()], None);
        let snap = result.map_err(|e| Failure::lifecycle(e, name))?;
        Ok(ok(json!({"status": "ok", "server": server_object(&snap)})))
    }

    pub(super) async fn refresh(&self, body: &Map<String, Value>) -> Reply {
        let name = required_str(body, "server_name", "Missing server name")?;
        let _busy = self.busy(name);
        let snap = self
            .registry
            .refresh(name)
            .await
            .map_err(|e| Failure::lifecycle(e, name))?;
        Ok(ok(json!({"status": "ok", "server": server_object(&snap)})))
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
        ok(json!({"status": "ok", "servers": results}))
    }

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

    pub(super) async fn authorize(&self, body: &Map<String, Value>) -> Reply {
        let name = required_str(body, "server_name", "Missing server name")?;
        if self.registry.snapshot(name).is_none() {
            return Err(Failure::server_not_found(name));
        }
        match self.control.authorize(name).await {
            Ok(url) => Ok(ok(json!({ "authorizationUrl": url }))),
            Err(e) => Err(
                Failure::new(StatusCode::BAD_REQUEST, "OPEN_REQUEST_ERROR", e).with("server", name),
            ),
        }
    }

    /// The browser's return from the authorization server. The pending flow is identified by
    /// `state` (our redirect URI carries no server name, unlike the Node hub's); `server_name`
    /// is accepted for old redirect URIs. The control checks `state`/`iss`, exchanges the code,
    /// reconnects the server and announces `servers_updated` itself.
    pub(super) async fn oauth_callback(&self, query: &HashMap<String, String>) -> Response<Body> {
        let claimed = query.get("server_name").map(String::as_str).unwrap_or("");
        if !query.contains_key("code") && !query.contains_key("error") {
            return oauth_page(
                StatusCode::BAD_REQUEST,
                claimed,
                Err("Missing code parameter"),
            );
        }
        let _busy = self.busy(ALL_SERVERS);
        match self.control.oauth_callback(query).await {
            Ok(server) => oauth_page(StatusCode::OK, &server, Ok(())),
            Err(e) => oauth_page(StatusCode::BAD_REQUEST, claimed, Err(&e)),
        }
    }

    /// The same for a redirect URL the user pasted (the browser ran on another machine).
    pub(super) async fn manual_callback(&self, body: &Map<String, Value>) -> Reply {
        let raw = required_str(body, "url", "Missing URL parameter")?;
        let url = url::Url::parse(raw).map_err(|e| {
            Failure::validation(format!("Invalid URL: {e}"), "url").with("url", raw)
        })?;
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        if !query.contains_key("code") && !query.contains_key("error") {
            return Err(Failure::validation("Missing code parameter", "url").with("url", raw));
        }
        let _busy = self.busy(ALL_SERVERS);
        match self.control.oauth_callback(&query).await {
            Ok(server) => Ok(ok(json!({
                "status": "ok",
                "message": format!("Authorization successful for server '{server}'"),
                "server_name": server,
            }))),
            Err(e) => {
                let mut f = Failure::new(StatusCode::BAD_REQUEST, "MANUAL_OAUTH_CALLBACK_ERROR", e);
                if let Some(s) = query.get("server_name") {
                    f = f.with("server", s.as_str());
                }
                Err(f)
            }
        }
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

    pub(super) fn subscribe_events(&self) -> Reply {
        let first = super::events::frame("hub_state", self.hub_state(self.control.state()));
        self.events.subscribe(first, &self.shutdown)
    }
}

/// The page the browser lands on after authorising. Everything interpolated is escaped (the
/// Node hub reflected `server_name` into its page unescaped), and the page runs no script.
fn oauth_page(status: StatusCode, server: &str, outcome: Result<(), &str>) -> Response<Body> {
    let server = html_escape(server);
    let (title, body) = match outcome {
        Ok(()) => (
            "Authorization Successful",
            "<p class=\"message\">Your server has been authorized successfully!</p>\n\
             <p>You can close this window and return to the application.</p>"
                .to_owned(),
        ),
        Err(e) => (
            "Authorization Failed",
            format!(
                "<p class=\"message\">An error occurred during authorization:</p>\n\
                 <p class=\"error\">{}</p>\n\
                 <p class=\"message\">For errors like 'fetch failed' (a server that takes time to \
                 start), stopping and starting the MCP server should help.</p>",
                html_escape(e)
            ),
        ),
    };
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>MCP HUB</title>\n<style>\n\
         body {{ font-family: Arial, sans-serif; text-align: center; margin-top: 50px; }}\n\
         .message {{ margin: 20px 0; font-size: 18px; }}\n.error {{ color: red; }}\n\
         </style>\n</head>\n<body>\n<h1>MCP HUB</h1>\n\
         <h2><code>{server}</code> {title}</h2>\n{body}\n\
         <p><a href=\"/ui/\">Back to the mcp-hub console</a></p>\n</body>\n</html>\n"
    );
    let mut r = Response::new(body::full(page));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The URL carries the authorization code.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn required_strings() {
        let b = obj(json!({"a": "x", "n": null, "e": "", "num": 5}));
        assert_eq!(required_str(&b, "a", "m").unwrap(), "x");
        for f in ["n", "e", "missing"] {
            let e = required_str(&b, f, "Missing it").unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.message, "Missing it");
            assert_eq!(e.data["field"], f);
        }
        let e = required_str(&b, "num", "m").unwrap_err();
        assert_eq!(e.message, "Invalid num: expected a string");
    }

    #[test]
    fn arguments_accept_objects_and_empty_lua_tables() {
        assert_eq!(arguments(&obj(json!({}))).unwrap(), json!({}));
        assert_eq!(
            arguments(&obj(json!({"arguments": null}))).unwrap(),
            json!({})
        );
        assert_eq!(
            arguments(&obj(json!({"arguments": []}))).unwrap(),
            json!({})
        );
        assert_eq!(
            arguments(&obj(json!({"arguments": {"a": 1}}))).unwrap(),
            json!({"a": 1})
        );
        for bad in [json!("str"), json!([1]), json!(3)] {
            let e = arguments(&obj(json!({ "arguments": bad }))).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.data["args"], bad);
        }
    }

    #[test]
    fn request_options_in_milliseconds() {
        let o = request_options(&obj(json!({"request_options": {"timeout": 1500, "resetTimeoutOnProgress": true, "maxTotalTimeout": 60000}}))).unwrap();
        assert_eq!(o.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(o.max_total_timeout, Some(Duration::from_secs(60)));
        assert!(o.reset_timeout_on_progress);
        let o = request_options(&obj(json!({"request_options": []}))).unwrap();
        assert_eq!(o.timeout, None);
        let o = request_options(&obj(json!({"request_options": {"timeout": 1e30}}))).unwrap();
        assert_eq!(o.timeout, Some(MAX_TIMEOUT));
        for bad in [
            json!({"timeout": -1}),
            json!({"timeout": 0}),
            json!({"timeout": "10"}),
            json!("x"),
        ] {
            let e = request_options(&obj(json!({ "request_options": bad }))).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_oauth_page_escapes_everything() {
        use http_body_util::BodyExt;
        let r = oauth_page(
            StatusCode::BAD_REQUEST,
            "<img src=x onerror=alert(1)>",
            Err("</p><script>alert(2)</script>"),
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(
            r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        let b = r.into_body().collect().await.unwrap().to_bytes();
        let s = std::str::from_utf8(&b).unwrap();
        assert!(!s.contains("<img"));
        assert!(!s.contains("<script"));
        assert!(s.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(s.contains("Authorization Failed"));
    }
}
