//! A client of the legacy HTTP+SSE transport on `GET /mcp` (`endpoint` event, then
//! `POST /messages?sessionId=`), the only one the Node hub 4.2.1 serves; this hub serves it too,
//! so side-by-side tests speak it to both.

use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{EventStream, request};

/// One legacy session.
#[derive(Debug)]
pub struct LegacyClient {
    /// Where messages are posted (the stream's port unless [`LegacyClient::post_via`] moved it).
    post_port: u16,
    endpoint: String,
    messages: mpsc::Receiver<Value>,
    next_id: i64,
    /// `initialize` result.
    pub init: Value,
}

impl LegacyClient {
    /// Opens the stream and initializes.
    pub fn connect(port: u16) -> LegacyClient {
        let mut stream = EventStream::open(port, "/mcp", &[]);
        let endpoint = loop {
            let e = stream.next_event().expect("an endpoint event");
            if e.event == "endpoint" {
                break e.data;
            }
        };
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            while let Some(e) = stream.next_event() {
                if let Ok(v) = serde_json::from_str::<Value>(&e.data)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        let mut c = LegacyClient {
            post_port: port,
            endpoint,
            messages,
            next_id: 1,
            init: Value::Null,
        };
        c.init = c.call(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "e2e-legacy", "version": "1"}}),
        );
        c.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        c
    }

    /// Posts the following messages through another hub (a replica of the same cluster); the
    /// answers still come on the stream.
    pub fn post_via(&mut self, port: u16) {
        self.post_port = port;
    }

    fn post(&self, body: &Value) {
        let r = request(
            self.post_port,
            "POST",
            &self.endpoint,
            &[],
            Some(body.to_string().as_bytes()),
        );
        assert!(
            r.status == 202 || r.status == 200,
            "POST {}: {} {}",
            self.endpoint,
            r.status,
            r.text()
        );
    }

    /// Sends a request and returns its `result` (panics on an error answer or after 30 s).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let v = self.call_raw(method, params);
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    /// Sends a request and returns the whole JSON-RPC answer.
    pub fn call_raw(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let v = self
                .messages
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            if v["id"] == id {
                return v;
            }
        }
    }

    /// The names (or URIs) of a list: `tools/list` → tool names, etc.
    pub fn names(&mut self, method: &str, key: &str, field: &str) -> Vec<String> {
        let r = self.call(method, json!({}));
        r[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t[field].as_str().map(str::to_owned))
            .collect()
    }
}
