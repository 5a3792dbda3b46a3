//! Serves the hub's HTTP surface over one stdio upstream exposed without prefix, for running
//! external suites (the MCP conformance suite, SDK clients) against `/mcp`:
//!
//! ```text
//! cargo run -p mcp-hub-api --example serve -- [--port N] -- <command> [args...]
//! ```
//!
//! Prints `listening on 127.0.0.1:<port>` once the upstream has settled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mcp_hub_api::{Api, ApiConfig, Control, HubEvent, HubState};
use mcp_hub_registry::{
    Connector, Prefix, Registry, RegistryOptions, ServerDefinition, TransportSpec,
};
use mcp_hub_transport::StdioSpec;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

struct Stdio(StdioSpec);

#[async_trait::async_trait]
impl Connector for Stdio {
    async fn spec(&self) -> Result<TransportSpec, String> {
        Ok(TransportSpec::Stdio(self.0.clone()))
    }
}

/// This example has no process-level features: every management operation says so.
struct NoControl(broadcast::Sender<HubEvent>);

const UNAVAILABLE: &str = "not available in the serve example";

#[async_trait::async_trait]
impl Control for NoControl {
    fn state(&self) -> HubState {
        HubState::Ready
    }
    fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.0.subscribe()
    }
    async fn restart(&self) -> Result<(), String> {
        Err(UNAVAILABLE.into())
    }
    async fn hard_restart(&self) {}
    async fn persist_disabled(&self, _: &str, _: bool) -> Result<(), String> {
        Err(UNAVAILABLE.into())
    }
    fn workspaces(&self) -> Value {
        Value::Object(Default::default())
    }
    fn config_files(&self) -> Vec<String> {
        Vec::new()
    }
    async fn marketplace(&self, _: &HashMap<String, String>) -> Result<Value, String> {
        Err(UNAVAILABLE.into())
    }
    async fn marketplace_details(&self, _: &str) -> Result<Value, String> {
        Err(UNAVAILABLE.into())
    }
    async fn authorize(&self, _: &str) -> Result<String, String> {
        Err(UNAVAILABLE.into())
    }
    async fn oauth_callback(&self, _: &HashMap<String, String>) -> Result<String, String> {
        Err(UNAVAILABLE.into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut command = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().ok_or("--port needs a value")?.parse()?,
            "--" => command.extend(args.by_ref()),
            _ => command.push(a),
        }
    }
    let (cmd, cmd_args) = command
        .split_first()
        .ok_or("usage: serve [--port N] -- <command> [args...]")?;
    let registry = Registry::new(RegistryOptions::default());
    registry.upsert(ServerDefinition {
        name: "upstream".into(),
        display_name: None,
        description: None,
        transport_type: "stdio",
        prefix: Prefix::None,
        disabled: false,
        request_timeout: None,
        config_source: None,
        client_context: Default::default(),
        tools: Default::default(),
        connector: Arc::new(Stdio(StdioSpec {
            name: "upstream".into(),
            command: cmd.clone(),
            args: cmd_args.to_vec(),
            env: std::env::vars().collect(),
            cwd: None,
            stderr: None,
        })),
    });
    registry.wait_settled(Duration::from_secs(30)).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let config = ApiConfig {
        port: addr.port(),
        ..ApiConfig::default()
    };
    let api = Api::new(
        registry.clone(),
        Arc::new(NoControl(broadcast::channel(16).0)),
        config,
    );
    println!("listening on {addr}");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    api.serve(listener, shutdown).await?;
    registry.shutdown().await;
    Ok(())
}
