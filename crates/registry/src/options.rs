//! The registry's tunables and the seam through which upstream servers' requests reach a
//! downstream client.

use std::time::Duration;

use mcp_hub_protocol::types::Implementation;
use mcp_hub_protocol::{ErrorObject, RawValue, Request};
use mcp_hub_transport::Attribution;
use serde_json::{Map, Value};

/// Tunables of a [`Registry`](crate::Registry).
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `clientInfo` the hub sends upstream.
    pub client_info: Implementation,
    /// Capabilities the hub declares upstream. By default `sampling`, `elicitation` and `roots`:
    /// the hub forwards those requests to the downstream client that caused them.
    pub client_capabilities: Map<String, Value>,
    /// How long connecting (spawn + `initialize`) may take.
    pub initialize_timeout: Duration,
    /// Default timeout of routed calls.
    pub request_timeout: Duration,
    /// First restart delay after a failure; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Largest restart delay.
    pub backoff_max: Duration,
    /// A server connected this long gets its backoff reset.
    pub healthy_after: Duration,
    /// How often connected servers are pinged (`None`: never).
    pub ping_interval: Option<Duration>,
    /// Largest accepted upstream message.
    pub max_message_bytes: usize,
    /// Most tools (and, separately, resources, templates, prompts) one server may list. A
    /// server listing more is not served: its status says why.
    pub max_list_items: usize,
    /// The identity this hub announces on its own MCP endpoint (in the `initialize` result's
    /// `_meta`, under [`HUB_INSTANCE_META_KEY`](crate::HUB_INSTANCE_META_KEY)). An upstream that
    /// answers with it is this hub itself, and is refused instead of served.
    pub hub_instance: Option<String>,
    /// How long a cancelled, timed-out or abandoned call stays possibly responsible for what
    /// its server sends (see [`Attribution::Abandoned`]).
    pub abandoned_grace: Duration,
    /// A per-session instance of an isolated server (`isolation: "session"`) unused this long
    /// is closed; the next call of its session starts a new one.
    pub instance_idle_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        let caps = serde_json::json!({
            "roots": {"listChanged": true},
            "sampling": {},
            "elicitation": {"form": {}, "url": {}}
        });
        RegistryOptions {
            client_info: Implementation {
                name: "mcp-hub".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                extra: Map::new(),
            },
            client_capabilities: caps.as_object().cloned().unwrap_or_default(),
            initialize_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(300),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
            ping_interval: Some(Duration::from_secs(30)),
            max_message_bytes: 64 * 1024 * 1024,
            max_list_items: 20_000,
            hub_instance: None,
            abandoned_grace: Duration::from_secs(30),
            instance_idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Answers requests that upstream servers send to the hub as a client (sampling, elicitation,
/// roots). The API crate implements it by forwarding to the downstream session that caused the
/// request, as `attribution` names it (the [`RequestOptions::requester`] of that session's
/// call), and by answering itself when nobody can be named.
///
/// [`RequestOptions::requester`]: mcp_hub_transport::RequestOptions::requester
#[async_trait::async_trait]
pub trait ClientRequestHandler: Send + Sync + 'static {
    /// Answers one request from `server`.
    async fn handle(
        &self,
        server: &str,
        request: Request,
        attribution: Attribution,
    ) -> Result<Box<RawValue>, ErrorObject>;
}
