//! The `/mcp` endpoint harness: an in-process `Api` over a `Registry` whose upstreams are the
//! workspace fixture server, driven by a small hyper client.
//!
//! The fixture binary is looked up in `MCP_HUB_FIXTURE`, else next to this test's target dir
//! (`<target>/debug/mcp-hub-fixture`); tests print a reason and return when it is missing.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mcp_hub_api::{Api, ApiConfig, Control, HubEvent, HubState};
use mcp_hub_protocol::sse::{Decoder, Event};
use mcp_hub_registry::{
    Connector, Prefix, Registry, RegistryOptions, ServerDefinition, TransportSpec,
};
use mcp_hub_transport::StdioSpec;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub const STEP: Duration = Duration::from_secs(15);

pub fn fixture() -> Option<PathBuf> {
    mcp_hub_fixture::built_binary()
}

#[macro_export]
macro_rules! need_fixture {
    () => {
        match $crate::common::fixture() {
            Some(p) => p,
            None => {
                eprintln!(
                    "SKIP: mcp-hub-fixture not found (build it with `cargo build -p mcp-hub-fixture` or set MCP_HUB_FIXTURE)"
                );
                return;
            }
        }
    };
}

struct Stdio(TransportSpec);

#[async_trait::async_trait]
impl Connector for Stdio {
    async fn spec(&self) -> Result<TransportSpec, String> {
        Ok(self.0.clone())
    }
}

/// The MCP endpoint needs no process-level control; these tests never reach it.
struct NoControl(broadcast::Sender<HubEvent>);

#[async_trait::async_trait]
impl Control for NoControl {
    fn state(&self) -> HubState {
        HubState::Ready
    }
    fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.0.subscribe()
    }
    async fn restart(&self) -> Result<(), String> {
        Err("unused".into())
    }
    async fn hard_restart(&self) {}
    async fn persist_disabled(&self, _: &str, _: bool) -> Result<(), String> {
        Err("unused".into())
    }
    fn workspaces(&self) -> Value {
        json!({})
    }
    fn config_files(&self) -> Vec<String> {
        Vec::new()
    }
    async fn marketplace(&self, _: &HashMap<String, String>) -> Result<Value, String> {
        Err("unused".into())
    }
    async fn marketplace_details(&self, _: &str) -> Result<Value, String> {
        Err("unused".into())
    }
    async fn authorize(&self, _: &str) -> Result<String, String> {
        Err("unused".into())
    }
    async fn oauth_callback(&self, _: &HashMap<String, String>) -> Result<String, String> {
        Err("unused".into())
    }
}

pub struct Hub {
    pub addr: SocketAddr,
    pub registry: Registry,
    stop: CancellationToken,
    served: tokio::task::JoinHandle<()>,
}

/// The fixture as an unprefixed stdio server named `fx`.
pub fn stdio_def(fixture: &Path, args: &[&str]) -> ServerDefinition {
    server_def(
        "fx",
        TransportSpec::Stdio(StdioSpec {
            name: "fx".into(),
            command: fixture.to_string_lossy().into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            cwd: None,
            stderr: None,
        }),
    )
}

/// An unprefixed server reached through `spec`.
pub fn server_def(name: &str, spec: TransportSpec) -> ServerDefinition {
    ServerDefinition {
        name: name.into(),
        display_name: None,
        description: None,
        transport_type: "stdio",
        prefix: Prefix::None,
        disabled: false,
        request_timeout: None,
        config_source: None,
        client_context: Default::default(),
        tools: Default::default(),
        connector: Arc::new(Stdio(spec)),
    }
}

impl Hub {
    /// The API over a registry with the fixture as one stdio server.
    pub async fn start(fixture: PathBuf, args: &[&str]) -> Hub {
        Hub::with(RegistryOptions::default(), vec![stdio_def(&fixture, args)]).await
    }

    /// The API over a registry with these servers, once they have settled.
    pub async fn with(opts: RegistryOptions, defs: Vec<ServerDefinition>) -> Hub {
        let config = ApiConfig {
            heartbeat: Duration::from_secs(1),
            ..ApiConfig::default()
        };
        Hub::with_config(opts, defs, config).await
    }

    /// The API with this configuration over a registry with these servers.
    pub async fn with_config(
        opts: RegistryOptions,
        defs: Vec<ServerDefinition>,
        config: ApiConfig,
    ) -> Hub {
        let registry = Registry::new(opts);
        for def in defs {
            registry.upsert(def);
        }
        registry.wait_settled(STEP).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let api = Api::new(
            registry.clone(),
            Arc::new(NoControl(broadcast::channel(4).0)),
            config,
        );
        let stop = CancellationToken::new();
        let s = stop.clone();
        let served = tokio::spawn(async move {
            let _ = api.serve(listener, s).await;
        });
        Hub {
            addr,
            registry,
            stop,
            served,
        }
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(STEP, self.served).await;
        tokio::time::timeout(STEP, self.registry.shutdown())
            .await
            .unwrap();
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        tokio::time::timeout(STEP, sender.send_request(req))
            .await
            .unwrap()
            .unwrap()
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        session: Option<&str>,
    ) -> http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.addr.port()))
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = session {
            b = b
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        b
    }

    pub async fn post(&self, session: Option<&str>, body: Value) -> Response<Incoming> {
        let req = self
            .request(Method::POST, "/mcp", session)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        self.send(req).await
    }

    /// `initialize` + `notifications/initialized`; returns the session id.
    pub async fn initialize(&self, capabilities: Value) -> String {
        let r = self
            .post(
                None,
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": capabilities,
                    "clientInfo": {"name": "test", "version": "1"}}}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let _ = json_body(r).await;
        let r = self
            .post(
                Some(&sid),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        sid
    }
}

pub async fn json_body(r: Response<Incoming>) -> Value {
    let bytes = tokio::time::timeout(STEP, r.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// Reads SSE events from a body until `stop` says so (or the body ends, or time runs out).
pub struct Events {
    body: Incoming,
    decoder: Decoder,
    queue: std::collections::VecDeque<Event>,
}

impl Events {
    pub fn new(r: Response<Incoming>) -> Events {
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Events {
            body: r.into_body(),
            decoder: Decoder::new(1 << 20),
            queue: Default::default(),
        }
    }

    /// The next event, `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(e);
            }
            let frame = tokio::time::timeout(STEP, self.body.frame())
                .await
                .expect("an SSE event in time")?
                .ok()?;
            if let Ok(data) = frame.into_data() {
                self.queue.extend(self.decoder.feed(&data).unwrap());
            }
        }
    }

    /// The next JSON-RPC message (skipping priming events), however long it takes: for streams
    /// that stay quiet while nothing happens (the GET stream).
    pub async fn next_message_unbounded(&mut self) -> Option<Value> {
        loop {
            while let Some(e) = self.queue.pop_front() {
                if !e.data.is_empty() {
                    return serde_json::from_str(&e.data).ok();
                }
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() {
                self.queue.extend(self.decoder.feed(&data).ok()?);
            }
        }
    }

    /// The next JSON-RPC message (skipping priming events).
    pub async fn message(&mut self) -> Option<Value> {
        loop {
            let e = self.next().await?;
            if !e.data.is_empty() {
                return Some(serde_json::from_str(&e.data).unwrap());
            }
        }
    }
}
