//! The REST management API and `/api/events` end to end: an in-process `Api` on 127.0.0.1:0
//! over a `Registry` and a scripted `Control`, driven by a small hyper client.
//!
//! Routing, validation, errors, lifecycle and control routes run against servers that need no
//! process (disabled ones, and one whose connector fails). The tests that call tools, resources
//! and prompts use the workspace fixture server over stdio, looked up in `MCP_HUB_FIXTURE`,
//! else next to this test's target dir (`<target>/debug/mcp-hub-fixture`); they print a reason
//! and return when it is missing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mcp_hub_api::{Api, ApiConfig, Control, HubEvent, HubState};
use mcp_hub_registry::{
    Connector, Prefix, Registry, RegistryOptions, ServerDefinition, TransportSpec,
};
use mcp_hub_transport::StdioSpec;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const STEP: Duration = Duration::from_secs(15);
const MAX_BODY: usize = 64 * 1024;

fn fixture() -> Option<PathBuf> {
    mcp_hub_fixture::built_binary()
}

macro_rules! need_fixture {
    () => {
        match fixture() {
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

// ---------------------------------------------------------------------------------------------
// Upstream servers

struct Stdio(StdioSpec);

#[async_trait::async_trait]
impl Connector for Stdio {
    async fn spec(&self) -> Result<TransportSpec, String> {
        Ok(TransportSpec::Stdio(self.0.clone()))
    }
}

/// A server whose config cannot be resolved: it fails without any process.
struct Unresolvable;

#[async_trait::async_trait]
impl Connector for Unresolvable {
    async fn spec(&self) -> Result<TransportSpec, String> {
        Err("Variable 'NOPE' not found".into())
    }
}

fn def(name: &str, disabled: bool, connector: Arc<dyn Connector>) -> ServerDefinition {
    ServerDefinition {
        name: name.into(),
        display_name: None,
        description: Some(format!("{name} server")),
        transport_type: "stdio",
        prefix: Prefix::Default,
        disabled,
        request_timeout: None,
        config_source: Some("./config.json".into()),
        client_context: Default::default(),
        tools: Default::default(),
        connector,
    }
}

fn fixture_def(name: &str, fixture: &std::path::Path, args: &[&str]) -> ServerDefinition {
    def(
        name,
        false,
        Arc::new(Stdio(StdioSpec {
            name: name.into(),
            command: fixture.to_string_lossy().into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            cwd: None,
            stderr: None,
        })),
    )
}

// ---------------------------------------------------------------------------------------------
// A scripted Control that records what the API asked of it

#[derive(Default)]
struct Calls {
    persisted: Vec<(String, bool)>,
    restarts: usize,
    hard_restarts: usize,
    callbacks: Vec<HashMap<String, String>>,
    marketplace_queries: Vec<HashMap<String, String>>,
}

struct TestControl {
    state: Mutex<HubState>,
    events: broadcast::Sender<HubEvent>,
    calls: Mutex<Calls>,
    fail_restart: Mutex<bool>,
}

impl TestControl {
    fn new() -> Arc<TestControl> {
        Arc::new(TestControl {
            state: Mutex::new(HubState::Ready),
            events: broadcast::channel(64).0,
            calls: Mutex::new(Calls::default()),
            fail_restart: Mutex::new(false),
        })
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap()
    }

    fn emit(&self, e: HubEvent) {
        let _ = self.events.send(e);
    }
}

fn workspaces_value() -> Value {
    json!({"40123": {"cwd": "/tmp/ws", "config_files": ["./config.json"], "pid": 1, "port": 40123, "state": "active"}})
}

#[async_trait::async_trait]
impl Control for TestControl {
    fn state(&self) -> HubState {
        *self.state.lock().unwrap()
    }
    fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }
    async fn restart(&self) -> Result<(), String> {
        if *self.fail_restart.lock().unwrap() {
            return Err("config file is broken".into());
        }
        self.calls().restarts += 1;
        Ok(())
    }
    async fn hard_restart(&self) {
        self.calls().hard_restarts += 1;
    }
    async fn persist_disabled(&self, server: &str, disabled: bool) -> Result<(), String> {
        self.calls().persisted.push((server.to_owned(), disabled));
        Ok(())
    }
    fn workspaces(&self) -> Value {
        workspaces_value()
    }
    fn config_files(&self) -> Vec<String> {
        vec!["./config.json".into()]
    }
    async fn marketplace(&self, query: &HashMap<String, String>) -> Result<Value, String> {
        self.calls().marketplace_queries.push(query.clone());
        if query.contains_key("fail") {
            return Err("registry unreachable".into());
        }
        Ok(json!([{"id": "time", "name": "Time", "stars": 3}]))
    }
    async fn marketplace_details(&self, mcp_id: &str) -> Result<Value, String> {
        match mcp_id {
            "time" => {
                Ok(json!({"server": {"id": "time", "name": "Time"}, "readmeContent": "# Time"}))
            }
            "boom" => Err("fetch failed".into()),
            "gone" => Err("Server not found".into()),
            _ => Ok(Value::Null),
        }
    }
    async fn authorize(&self, server: &str) -> Result<String, String> {
        match server {
            "broken" => Ok("https://auth.example/authorize?client_id=x".into()),
            _ => Err(format!(
                "No authorization URL available for server '{server}'"
            )),
        }
    }
    async fn oauth_callback(&self, query: &HashMap<String, String>) -> Result<String, String> {
        self.calls().callbacks.push(query.clone());
        if let Some(e) = query.get("error") {
            return Err(format!(
                "{e}: {}",
                query
                    .get("error_description")
                    .map(String::as_str)
                    .unwrap_or("")
            ));
        }
        // The real control finds the server by `state`; old redirect URIs name it.
        let server = query
            .get("server_name")
            .or(query.get("state"))
            .cloned()
            .unwrap_or_default();
        match query.get("code").map(String::as_str) {
            Some("good") => Ok(server),
            _ => Err("invalid_grant: <b>bad</b> code".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The hub under test and an HTTP client

struct Hub {
    addr: SocketAddr,
    api: Api,
    registry: Registry,
    control: Arc<TestControl>,
    stop: CancellationToken,
    served: tokio::task::JoinHandle<()>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

impl Hub {
    async fn start(servers: Vec<ServerDefinition>, heartbeat: Duration) -> Hub {
        let registry = Registry::new(RegistryOptions {
            initialize_timeout: Duration::from_secs(10),
            ..RegistryOptions::default()
        });
        for s in servers {
            registry.upsert(s);
        }
        registry.wait_settled(STEP).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = ApiConfig {
            heartbeat,
            port: addr.port(),
            max_body_bytes: MAX_BODY,
            ..ApiConfig::default()
        };
        let control = TestControl::new();
        let api = Api::new(registry.clone(), control.clone(), config);
        let stop = CancellationToken::new();
        let (a, s) = (api.clone(), stop.clone());
        let served = tokio::spawn(async move {
            let _ = a.serve(listener, s).await;
        });
        Hub {
            addr,
            api,
            registry,
            control,
            stop,
            served,
        }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(STEP, self.served).await;
        tokio::time::timeout(STEP, self.registry.shutdown())
            .await
            .unwrap();
    }

    async fn open(&self, method: Method, path: &str, body: Bytes) -> hyper::Response<Incoming> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("localhost:{}", self.addr.port()));
        if !body.is_empty() {
            b = b.header("content-type", "application/json");
        }
        let req = b.body(Full::new(body)).unwrap();
        tokio::time::timeout(STEP, sender.send_request(req))
            .await
            .expect("response in time")
            .unwrap()
    }

    async fn raw(&self, method: Method, path: &str, body: Bytes) -> Reply {
        let r = self.open(method, path, body).await;
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = tokio::time::timeout(STEP, r.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.raw(Method::GET, path, Bytes::new()).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.raw(Method::POST, path, Bytes::from(body.to_string()))
            .await
    }

    async fn events(&self) -> Events {
        let r = self.open(Method::GET, "/api/events", Bytes::new()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        Events {
            body: r.into_body(),
            buf: Vec::new(),
        }
    }
}

/// Checks the success envelope: an object with an ISO `timestamp`.
fn ok_json(r: &Reply) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/json");
    let v = r.json();
    assert_iso(&v["timestamp"]);
    v
}

/// Checks the error envelope `{error, code, data, timestamp}` and returns it.
fn err_json(r: &Reply, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text);
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["error", "code", "data", "timestamp"], "{v}");
    assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["data"].is_object(), "{v}");
    assert_iso(&v["timestamp"]);
    v
}

fn assert_iso(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    assert_eq!(s.len(), 24, "{s}");
    assert!(
        s.ends_with('Z') && &s[10..11] == "T" && &s[19..20] == ".",
        "{s}"
    );
}

/// The keys of the Node hub's server object, then ours.
const SERVER_KEYS: [&str; 20] = [
    "name",
    "displayName",
    "description",
    "transportType",
    "status",
    "error",
    "capabilities",
    "uptime",
    "lastStarted",
    "authorizationUrl",
    "serverInfo",
    "config_source",
    "transport",
    "pid",
    "restarts",
    "protocolVersion",
    "instructions",
    "serverCapabilities",
    "routing",
    "calls",
];

fn assert_server_shape(s: &Value) {
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, SERVER_KEYS, "{s}");
    let caps: Vec<&str> = s["capabilities"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(caps, ["tools", "resources", "resourceTemplates", "prompts"]);
    assert!(s["uptime"].is_u64());
    assert_eq!(s["config_source"], "./config.json");
}

/// Reads `/api/events`, checking the exact wire format of every event.
struct Events {
    body: Incoming,
    buf: Vec<u8>,
}

impl Events {
    /// The next event, or `None` when the stream ended or nothing came in time.
    async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..at + 2).collect();
                let text = std::str::from_utf8(&block[..at]).unwrap();
                let lines: Vec<&str> = text.split('\n').collect();
                assert_eq!(lines.len(), 2, "one event line and one data line: {text:?}");
                let name = lines[0].strip_prefix("event: ").expect("event line");
                let data = lines[1].strip_prefix("data: ").expect("data line");
                let v: Value = serde_json::from_str(data).unwrap();
                assert_iso(&v["timestamp"]);
                return Some((name.to_owned(), v));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await;
            match frame {
                Ok(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
                _ => return None,
            }
        }
    }

    /// Skips events until one matches.
    async fn until(&mut self, what: &str, pred: impl Fn(&str, &Value) -> bool) -> Value {
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            match self.next(deadline - Instant::now()).await {
                Some((name, v)) if pred(&name, &v) => return v,
                Some(_) => {}
                None => break,
            }
        }
        panic!("no {what} event in time");
    }

    async fn subscription(&mut self, kind: &str) -> Value {
        self.until(kind, |n, v| n == "subscription_event" && v["type"] == kind)
            .await
    }
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn offline_servers() -> Vec<ServerDefinition> {
    vec![
        def("off", true, Arc::new(Unresolvable)),
        def("broken", false, Arc::new(Unresolvable)),
    ]
}

mod live;
mod oauth_events;
mod routes;
