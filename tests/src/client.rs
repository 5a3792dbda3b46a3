//! `McpClient`: an MCP session over Streamable HTTP (initialize, calls, raw sends), blocking.

use super::*;

/// A minimal Streamable HTTP MCP client for the tests.
#[derive(Debug)]
pub struct McpClient {
    pub port: u16,
    /// The endpoint: `/mcp`, or a profile's `/mcp/<name>`.
    pub path: String,
    pub session: String,
    next_id: i64,
}

impl McpClient {
    /// Initializes a session on `/mcp`.
    pub fn connect(port: u16) -> McpClient {
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}});
        let r = request(
            port,
            "POST",
            "/mcp",
            &[("Accept", "application/json, text/event-stream")],
            Some(init.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "initialize: {}", r.text());
        let session = r.header("mcp-session-id").expect("session id").to_owned();
        let mut c = McpClient {
            port,
            path: "/mcp".into(),
            session,
            next_id: 1,
        };
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = c.post(&note);
        assert_eq!(r.status, 202);
        c.next_id = 1;
        c
    }

    fn post(&mut self, body: &Value) -> Response {
        let s = self.session.clone();
        request(
            self.port,
            "POST",
            &self.path,
            &[
                ("Accept", "application/json, text/event-stream"),
                ("Mcp-Session-Id", &s),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
            Some(body.to_string().as_bytes()),
        )
    }

    /// Sends a request and returns the JSON-RPC response (from a JSON or an SSE answer).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let r = self.post(
            &serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        );
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        let ct = r.header("content-type").unwrap_or_default().to_owned();
        if ct.starts_with("application/json") {
            return r.json();
        }
        // SSE: the last `data:` that is a response with our id.
        let text = r.text();
        text.split("\n\n")
            .filter_map(|ev| {
                let data: String = ev
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.trim_start())
                    .collect::<Vec<_>>()
                    .join("\n");
                serde_json::from_str::<Value>(&data).ok()
            })
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("no response to {method} in SSE body: {text}"))
    }
}

impl McpClient {
    /// Initializes a session on `/mcp` with extra headers on every request (e.g.
    /// `Authorization`). Errors instead of panicking, so tests can probe refusals.
    pub fn try_connect(port: u16, headers: &[(&str, &str)]) -> Result<McpClient, Response> {
        Self::try_connect_at(port, "/mcp", headers)
    }

    /// Like [`McpClient::try_connect`] on another endpoint (a profile's `/mcp/<name>`).
    pub fn try_connect_at(
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<McpClient, Response> {
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}});
        let mut h = vec![("Accept", "application/json, text/event-stream")];
        h.extend_from_slice(headers);
        let r = request(port, "POST", path, &h, Some(init.to_string().as_bytes()));
        let Some(session) = r.header("mcp-session-id").map(str::to_owned) else {
            return Err(r);
        };
        if r.status != 200 {
            return Err(r);
        }
        let c = McpClient {
            port,
            path: path.to_owned(),
            session,
            next_id: 1,
        };
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = c
            .send(&note, headers, Duration::from_secs(30))
            .map_err(|e| Response {
                status: 0,
                headers: vec![],
                body: e.into_bytes(),
            })?;
        if r.status != 202 {
            return Err(r);
        }
        Ok(c)
    }

    /// A client for an existing session id (e.g. one whose handshake a test did by hand).
    pub fn resume(port: u16, session: &str) -> McpClient {
        McpClient {
            port,
            path: "/mcp".into(),
            session: session.to_owned(),
            next_id: 1_000_000,
        }
    }

    /// Posts one JSON-RPC message on this session with extra headers; never panics.
    pub fn send(
        &self,
        body: &Value,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response, String> {
        self.send_bytes(body.to_string().as_bytes(), headers, timeout)
    }

    /// [`McpClient::send`] of a body written by hand (what a `Value` cannot hold: numbers past
    /// `f64`, nesting past serde_json's limit, repeated keys).
    pub fn send_bytes(
        &self,
        body: &[u8],
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response, String> {
        let mut h = vec![
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", self.session.as_str()),
            ("MCP-Protocol-Version", "2025-11-25"),
        ];
        h.extend_from_slice(headers);
        try_request(self.port, "POST", &self.path, &h, Some(body), timeout)
    }

    /// Sends a request with an id of the caller's choosing and returns the one JSON-RPC message
    /// answering it (result or error), or a description of what went wrong instead.
    pub fn try_call_id(
        &self,
        id: Value,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let r = self.send(&body, &[], timeout)?;
        let answers: Vec<Value> = jsonrpc_messages(&r)
            .into_iter()
            .filter(|m| m["id"] == id && (m.get("result").is_some() || m.get("error").is_some()))
            .collect();
        match answers.len() {
            1 => Ok(answers.into_iter().next().unwrap_or_default()),
            0 if r.status >= 400 => Err(format!("HTTP {}: {}", r.status, r.text())),
            n => Err(format!(
                "{n} answers to id {id} (HTTP {}): {}",
                r.status,
                r.text()
            )),
        }
    }

    /// Like [`McpClient::call`] without panicking; ids are allocated by the client.
    pub fn try_call(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.try_call_id(Value::from(id), method, params, timeout)
    }

    /// Ends the session with `DELETE /mcp`; returns the HTTP status.
    pub fn delete(&self, headers: &[(&str, &str)]) -> u16 {
        let mut h = vec![("Mcp-Session-Id", self.session.as_str())];
        h.extend_from_slice(headers);
        try_request(
            self.port,
            "DELETE",
            &self.path,
            &h,
            None,
            Duration::from_secs(10),
        )
        .map(|r| r.status)
        .unwrap_or(0)
    }
}
