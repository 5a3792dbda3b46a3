//! Typed use of the hub from the embedding program: the merged catalogue as the protocol crate's
//! types under their exposed names, and calls with typed results and, per call, the
//! notifications that belong to it (progress, logs). The raw JSON path stays:
//! [`Registry::call_tool`](mcp_hub_registry::Registry::call_tool) and friends pass payloads
//! through untouched.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_hub_protocol::catalog::{
    CallToolResult, GetPromptResult, LoggingMessageParams, Prompt, ReadResourceResult, Resource,
    ResourceTemplate, Tool,
};
use mcp_hub_protocol::types::ProgressParams;
use mcp_hub_protocol::{Notification, RawValue};
use mcp_hub_registry::{CatalogEntry, RequestOptions};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::CoreError;
use crate::hub::HubHandle;

/// A notification that belongs to one call made through the hub's typed helpers.
#[derive(Debug, Clone, PartialEq)]
pub enum CallNotification {
    /// `notifications/progress` for this call (its `progressToken` is the one the hub made for
    /// the call; the upstream's own token never shows).
    Progress(ProgressParams),
    /// `notifications/message`: a log line the server sent while serving this call.
    Log(LoggingMessageParams),
    /// Any other notification attributed to this call, verbatim.
    Other {
        /// The method.
        method: String,
        /// The params.
        params: Option<Value>,
    },
}

/// How one typed call is made.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    timeout: Option<Duration>,
    notifications: Option<mpsc::Sender<CallNotification>>,
}

impl CallOptions {
    /// Default options: the server's timeout, no notifications.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// The call's timeout (else the server's `timeout`, else the registry default); progress
    /// restarts it, within a hard maximum of ten times it.
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Where this call's notifications go: the hub asks for progress (a progress token of its
    /// own) and delivers progress and the log lines attributed to this call, and nothing of any
    /// other call. Delivery never blocks the call: when `tx` is full, notifications are
    /// dropped (give it room for what you expect). The channel sees no more once the call
    /// returns.
    pub fn notifications(mut self, tx: mpsc::Sender<CallNotification>) -> CallOptions {
        self.notifications = Some(tx);
        self
    }
}

fn items<T: DeserializeOwned>(entries: &[CatalogEntry]) -> Vec<T> {
    // An item a server listed that does not fit the type (a tool without a name cannot be
    // listed; the catalogue never holds one) is left out rather than failing the whole list.
    entries
        .iter()
        .filter_map(|e| serde_json::from_str(e.json()).ok())
        .collect()
}

fn decode<T: DeserializeOwned>(raw: &RawValue, method: &str) -> Result<T, CoreError> {
    serde_json::from_str(raw.get()).map_err(|e| CoreError::InvalidResult {
        method: method.to_owned(),
        message: e.to_string(),
    })
}

/// Tokens of the hub's own typed calls: unique in this process, so two calls never share one.
fn progress_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("hub-call-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn typed(n: Notification) -> CallNotification {
    let params: Option<Value> = n
        .params
        .as_ref()
        .and_then(|p| serde_json::from_str(p.get()).ok());
    let as_typed = |p: &Option<Value>| p.clone().unwrap_or(Value::Null);
    match n.method.as_str() {
        mcp_hub_protocol::methods::PROGRESS => match serde_json::from_value(as_typed(&params)) {
            Ok(p) => CallNotification::Progress(p),
            Err(_) => CallNotification::Other {
                method: n.method,
                params,
            },
        },
        mcp_hub_protocol::methods::LOGGING_MESSAGE => {
            match serde_json::from_value(as_typed(&params)) {
                Ok(p) => CallNotification::Log(p),
                Err(_) => CallNotification::Other {
                    method: n.method,
                    params,
                },
            }
        }
        _ => CallNotification::Other {
            method: n.method,
            params,
        },
    }
}

/// Which routed request a typed call is.
#[derive(Clone, Copy)]
enum Kind {
    Tool,
    Prompt,
    Resource,
}

impl HubHandle {
    /// Every tool of every connected server, under the name a client calls it by.
    pub fn list_tools(&self) -> Vec<Tool> {
        items(self.registry().catalog().tools())
    }

    /// Every resource, under the URI a client reads it by.
    pub fn list_resources(&self) -> Vec<Resource> {
        items(self.registry().catalog().resources())
    }

    /// Every resource template, under its exposed URI template.
    pub fn list_resource_templates(&self) -> Vec<ResourceTemplate> {
        items(self.registry().catalog().resource_templates())
    }

    /// Every prompt, under the name a client gets it by.
    pub fn list_prompts(&self) -> Vec<Prompt> {
        items(self.registry().catalog().prompts())
    }

    /// Calls a tool by its exposed name. A tool's own failure is a result with `is_error`; a
    /// protocol error, an unknown tool or a server that is down is an `Err`.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Value,
        opts: CallOptions,
    ) -> Result<CallToolResult, CoreError> {
        let mut params = Map::new();
        params.insert("name".into(), Value::String(name.to_owned()));
        params.insert("arguments".into(), arguments);
        let raw = self.routed(Kind::Tool, params, opts).await?;
        decode(&raw, mcp_hub_protocol::methods::TOOLS_CALL)
    }

    /// Reads a resource by its exposed URI.
    pub async fn read_resource(
        &self,
        uri: &str,
        opts: CallOptions,
    ) -> Result<ReadResourceResult, CoreError> {
        let mut params = Map::new();
        params.insert("uri".into(), Value::String(uri.to_owned()));
        let raw = self.routed(Kind::Resource, params, opts).await?;
        decode(&raw, mcp_hub_protocol::methods::RESOURCES_READ)
    }

    /// Gets a prompt by its exposed name, with its arguments.
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: impl IntoIterator<Item = (String, String)>,
        opts: CallOptions,
    ) -> Result<GetPromptResult, CoreError> {
        let args: Map<String, Value> = arguments
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let mut params = Map::new();
        params.insert("name".into(), Value::String(name.to_owned()));
        params.insert("arguments".into(), Value::Object(args));
        let raw = self.routed(Kind::Prompt, params, opts).await?;
        decode(&raw, mcp_hub_protocol::methods::PROMPTS_GET)
    }

    async fn routed(
        &self,
        kind: Kind,
        mut params: Map<String, Value>,
        opts: CallOptions,
    ) -> Result<Box<RawValue>, CoreError> {
        let mut request = RequestOptions {
            timeout: opts.timeout,
            reset_timeout_on_progress: true,
            ..RequestOptions::default()
        };
        let (related, mut rx) = match &opts.notifications {
            Some(_) => {
                let (tx, rx) = mpsc::channel::<Notification>(64);
                params.insert("_meta".into(), json!({"progressToken": progress_token()}));
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        request.related = related;
        let registry = self.registry();
        let call = async {
            match kind {
                Kind::Tool => registry.call_tool(params, request).await,
                Kind::Prompt => registry.get_prompt(params, request).await,
                Kind::Resource => registry.read_resource(params, request).await,
            }
        };
        let (Some(out), Some(rx)) = (opts.notifications, rx.as_mut()) else {
            return Ok(call.await?);
        };
        tokio::pin!(call);
        let deliver = |n: Notification| {
            // Never blocks the call: a full channel loses the notification.
            let _ = out.try_send(typed(n));
        };
        let mut open = true;
        let result = loop {
            tokio::select! {
                // Notifications first, so what arrived before the answer is delivered before
                // the call returns.
                biased;
                n = rx.recv(), if open => match n {
                    Some(n) => deliver(n),
                    None => open = false,
                },
                r = &mut call => break r,
            }
        };
        while let Ok(n) = rx.try_recv() {
            deliver(n);
        }
        Ok(result?)
    }
}
