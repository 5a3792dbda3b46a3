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

// ---------------------------------------------------------------------------------------------
// Without live servers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_server_listing() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let h = ok_json(&hub.get("/api/health").await);
    let keys: Vec<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "status",
            "state",
            "server_id",
            "version",
            "hub_version",
            "activeClients",
            "timestamp",
            "servers",
            "connections",
            "mcpEndpoint",
            "workspaces"
        ]
    );
    assert_eq!(h["status"], "ok");
    assert_eq!(h["state"], "ready");
    assert_eq!(h["server_id"], "mcp-hub");
    assert_eq!(h["version"], "4.2.1", "mcphub.nvim requires exactly this");
    assert_eq!(h["hub_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["activeClients"], 0);
    assert_eq!(
        h["connections"],
        json!({"totalConnections": 0, "connections": []})
    );
    assert_eq!(
        h["mcpEndpoint"],
        json!({"activeClients": 0, "registeredCapabilities": {"tools": 0, "resources": 0, "resourceTemplates": 0, "prompts": 0}, "totalCapabilities": 0})
    );
    assert_eq!(h["workspaces"]["current"], hub.addr.port().to_string());
    assert_eq!(h["workspaces"]["allActive"], workspaces_value());
    assert_eq!(h["servers"].as_array().unwrap().len(), 2);

    let v = ok_json(&hub.get("/api/servers").await);
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    servers.iter().for_each(assert_server_shape);
    assert_eq!(servers[0]["name"], "off");
    assert_eq!(servers[0]["displayName"], "off");
    assert_eq!(servers[0]["description"], "off server");
    assert_eq!(servers[0]["transportType"], "stdio");
    assert_eq!(servers[0]["status"], "disabled");
    assert_eq!(servers[0]["error"], Value::Null);
    assert_eq!(servers[1]["name"], "broken");
    assert_eq!(servers[1]["status"], "disconnected");
    assert_eq!(servers[1]["error"], "Variable 'NOPE' not found");
    assert_eq!(servers[1]["capabilities"]["tools"], json!([]));
    assert_eq!(servers[1]["serverInfo"], Value::Null);
    assert_iso(&servers[1]["lastStarted"]);

    // Trailing slash and case, as Express accepts them.
    ok_json(&hub.get("/api/Servers/").await);

    let v = ok_json(
        &hub.post("/api/servers/info", json!({"server_name": "broken"}))
            .await,
    );
    assert_server_shape(&v["server"]);
    assert_eq!(v["server"]["name"], "broken");
    let e = err_json(
        &hub.post("/api/servers/info", json!({})).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["error"], "Missing server name");
    assert_eq!(e["data"]["field"], "server_name");
    let e = err_json(
        &hub.post("/api/servers/info", json!({"server_name": "nope"}))
            .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );
    assert_eq!(e["error"], "Server not found");
    assert_eq!(e["data"]["server"], "nope");

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_level_errors() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let e = err_json(
        &hub.get("/api/nope").await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    );
    assert_eq!(e["error"], "Cannot GET /api/nope");

    let r = hub.get("/api/servers/tools").await;
    let e = err_json(&r, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "POST");
    assert_eq!(e["data"]["allowed"], json!(["POST"]));
    let r = hub.post("/api/health", json!({})).await;
    err_json(&r, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    assert_eq!(r.headers["allow"], "GET");
    let r = hub.raw(Method::HEAD, "/api/health", Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.is_empty());
    let r = hub.raw(Method::DELETE, "/api/events", Bytes::new()).await;
    err_json(&r, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");

    let r = hub
        .raw(
            Method::POST,
            "/api/servers/info",
            Bytes::from_static(b"{\"server_name\": "),
        )
        .await;
    err_json(&r, StatusCode::BAD_REQUEST, "INVALID_JSON");

    let big = format!("{{\"server_name\": \"{}\"}}", "x".repeat(MAX_BODY + 1));
    let r = hub
        .raw(Method::POST, "/api/servers/info", Bytes::from(big))
        .await;
    let e = err_json(&r, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    assert_eq!(e["data"]["limit"], MAX_BODY);

    // Valid JSON that is not an object has no fields.
    let r = hub
        .raw(
            Method::POST,
            "/api/servers/info",
            Bytes::from_static(b"[\"off\"]"),
        )
        .await;
    err_json(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let e = err_json(
        &hub.post("/api/servers/info", json!({"server_name": 7}))
            .await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["data"]["field"], "server_name");

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_unusable_servers_fail_cleanly() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let cases = [
        (
            "/api/servers/tools",
            json!({}),
            "Missing server name",
            "server_name",
        ),
        (
            "/api/servers/tools",
            json!({"server_name": "off"}),
            "Missing tool name",
            "tool",
        ),
        (
            "/api/servers/resources",
            json!({"server_name": "off"}),
            "Missing resource URI",
            "uri",
        ),
        (
            "/api/servers/prompts",
            json!({"server_name": "off"}),
            "Missing prompt name",
            "prompt",
        ),
    ];
    for (path, body, msg, field) in cases {
        let e = err_json(
            &hub.post(path, body).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        );
        assert_eq!(e["error"], msg);
        assert_eq!(e["data"]["field"], field);
    }

    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "nope", "tool": "echo"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );
    assert_eq!(e["data"]["tool"], "echo");
    assert_eq!(e["data"]["operation"], "tool_call");

    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "off", "tool": "echo"}),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_NOT_CONNECTED",
    );
    assert_eq!(e["data"]["status"], "disabled");
    assert_eq!(e["data"]["server"], "off");
    let e = err_json(
        &hub.post(
            "/api/servers/resources",
            json!({"server_name": "broken", "uri": "x://y"}),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_NOT_CONNECTED",
    );
    assert_eq!(e["data"]["status"], "disconnected");
    assert_eq!(e["data"]["uri"], "x://y");
    err_json(
        &hub.post(
            "/api/servers/prompts",
            json!({"server_name": "broken", "prompt": "p"}),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_NOT_CONNECTED",
    );

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_refresh_and_persisted_disable() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    // Enabling a disabled server persists `disabled: false` first; its connect then fails.
    let e = err_json(
        &hub.post("/api/servers/start", json!({"server_name": "off"}))
            .await,
        StatusCode::BAD_GATEWAY,
        "CONNECTION_ERROR",
    );
    assert_eq!(
        e["error"],
        "Failed to connect to \"off\" MCP server: Variable 'NOPE' not found"
    );
    assert_eq!(hub.control.calls().persisted, [("off".to_owned(), false)]);

    // A plain stop does not disable.
    let v = ok_json(
        &hub.post("/api/servers/stop", json!({"server_name": "off"}))
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert_eq!(v["server"]["status"], "disconnected");
    assert_eq!(hub.control.calls().persisted.len(), 1);

    let v = ok_json(
        &hub.post(
            "/api/servers/stop?disable=true",
            json!({"server_name": "off"}),
        )
        .await,
    );
    assert_eq!(v["server"]["status"], "disabled");
    assert_server_shape(&v["server"]);
    assert_eq!(hub.control.calls().persisted[1], ("off".to_owned(), true));

    // Stopping a disabled server keeps it disabled and persists nothing.
    let v = ok_json(
        &hub.post(
            "/api/servers/stop?disable=false",
            json!({"server_name": "off"}),
        )
        .await,
    );
    assert_eq!(v["server"]["status"], "disabled");
    assert_eq!(hub.control.calls().persisted.len(), 2);

    err_json(
        &hub.post("/api/servers/start", json!({"server_name": "nope"}))
            .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );
    err_json(
        &hub.post("/api/servers/stop", json!({})).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );

    let v = ok_json(
        &hub.post("/api/servers/refresh", json!({"server_name": "broken"}))
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert_eq!(v["server"]["name"], "broken");
    err_json(
        &hub.post("/api/servers/refresh", json!({"server_name": "nope"}))
            .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );

    for r in [
        hub.get("/api/refresh").await,
        hub.post("/api/refresh", json!({})).await,
    ] {
        let v = ok_json(&r);
        assert_eq!(v["status"], "ok");
        let names: Vec<&str> = v["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["off", "broken"]);
    }

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_routes() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let v = ok_json(&hub.post("/api/restart", json!({})).await);
    assert_eq!(v["status"], "ok");
    assert_eq!(hub.control.calls().restarts, 1);
    *hub.control.fail_restart.lock().unwrap() = true;
    let e = err_json(
        &hub.raw(Method::POST, "/api/restart", Bytes::new()).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "HUB_RESTART_ERROR",
    );
    assert_eq!(e["error"], "config file is broken");

    let v = ok_json(
        &hub.raw(Method::POST, "/api/hard-restart", Bytes::new())
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert_eq!(hub.control.calls().hard_restarts, 1);

    let v = ok_json(&hub.get("/api/workspaces").await);
    assert_eq!(v["workspaces"], workspaces_value());

    let v = ok_json(
        &hub.get("/api/marketplace?search=ti%20me&category=dev&tags=a,b&sort=stars")
            .await,
    );
    assert_eq!(v["servers"][0]["id"], "time");
    let q = hub.control.calls().marketplace_queries[0].clone();
    assert_eq!(q["search"], "ti me");
    assert_eq!(q["category"], "dev");
    assert_eq!(q["tags"], "a,b");
    assert_eq!(q["sort"], "stars");
    err_json(
        &hub.get("/api/marketplace?fail=1").await,
        StatusCode::BAD_GATEWAY,
        "MARKETPLACE_ERROR",
    );

    // The Node hub's nesting: {server: {server, readmeContent}}.
    let v = ok_json(
        &hub.post("/api/marketplace/details", json!({"mcpId": "time"}))
            .await,
    );
    assert_eq!(v["server"]["server"]["id"], "time");
    assert_eq!(v["server"]["readmeContent"], "# Time");
    let e = err_json(
        &hub.post("/api/marketplace/details", json!({})).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["error"], "Missing mcpId in request body");
    err_json(
        &hub.post("/api/marketplace/details", json!({"mcpId": "nope"}))
            .await,
        StatusCode::NOT_FOUND,
        "MARKETPLACE_ERROR",
    );
    err_json(
        &hub.post("/api/marketplace/details", json!({"mcpId": "gone"}))
            .await,
        StatusCode::NOT_FOUND,
        "MARKETPLACE_ERROR",
    );
    err_json(
        &hub.post("/api/marketplace/details", json!({"mcpId": "boom"}))
            .await,
        StatusCode::BAD_GATEWAY,
        "MARKETPLACE_ERROR",
    );

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_routes() {
    let hub = Hub::start(offline_servers(), Duration::from_secs(10)).await;

    let v = ok_json(
        &hub.post("/api/servers/authorize", json!({"server_name": "broken"}))
            .await,
    );
    assert_eq!(
        v["authorizationUrl"],
        "https://auth.example/authorize?client_id=x"
    );
    err_json(
        &hub.post("/api/servers/authorize", json!({"server_name": "zz"}))
            .await,
        StatusCode::NOT_FOUND,
        "SERVER_NOT_FOUND",
    );
    let e = err_json(
        &hub.post("/api/servers/authorize", json!({"server_name": "off"}))
            .await,
        StatusCode::BAD_REQUEST,
        "OPEN_REQUEST_ERROR",
    );
    assert_eq!(
        e["error"],
        "No authorization URL available for server 'off'"
    );

    // The browser callback: HTML, everything escaped, no script; `state` identifies the flow.
    let r = hub.get("/api/oauth/callback?code=good&state=broken").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    assert!(
        r.text
            .contains("<code>broken</code> Authorization Successful"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("<script"));
    let q = hub.control.calls().callbacks[0].clone();
    assert_eq!(q["code"], "good");
    assert_eq!(q["state"], "broken");

    // A Node-style redirect URI that names the server.
    let r = hub
        .get("/api/oauth/callback?server_name=broken&code=good")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = hub
        .get("/api/oauth/callback?server_name=broken&code=bad&state=s")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("Authorization Failed"));
    assert!(
        r.text
            .contains("invalid_grant: &lt;b&gt;bad&lt;/b&gt; code"),
        "{}",
        r.text
    );

    let xss = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    for code in ["good", "bad"] {
        let r = hub
            .get(&format!(
                "/api/oauth/callback?server_name={xss}&code={code}"
            ))
            .await;
        assert!(!r.text.contains("<script>alert(1)"), "{}", r.text);
        assert!(
            r.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{}",
            r.text
        );
    }

    let r = hub.get("/api/oauth/callback?server_name=broken").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("Missing code parameter"));
    let calls = hub.control.calls().callbacks.len();
    let r = hub
        .get("/api/oauth/callback?state=s&error=access_denied&error_description=no")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("access_denied: no"));
    assert_eq!(
        hub.control.calls().callbacks.len(),
        calls + 1,
        "errors go to the control too"
    );

    // The headless variant.
    let url = "http://localhost:37373/api/oauth/callback?code=good&state=broken";
    let v = ok_json(
        &hub.post("/api/oauth/manual_callback", json!({"url": url}))
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert_eq!(v["message"], "Authorization successful for server 'broken'");
    assert_eq!(v["server_name"], "broken");
    let e = err_json(
        &hub.post("/api/oauth/manual_callback", json!({})).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["error"], "Missing URL parameter");
    err_json(
        &hub.post("/api/oauth/manual_callback", json!({"url": "not a url"}))
            .await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    let e = err_json(
        &hub.post(
            "/api/oauth/manual_callback",
            json!({"url": "http://localhost/cb?state=x"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["error"], "Missing code parameter");
    let e = err_json(
        &hub.post(
            "/api/oauth/manual_callback",
            json!({"url": "http://localhost/cb?server_name=broken&code=bad"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "MANUAL_OAUTH_CALLBACK_ERROR",
    );
    assert_eq!(e["data"]["server"], "broken");

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream() {
    let hub = Hub::start(offline_servers(), Duration::from_millis(200)).await;
    let mut ev = hub.events().await;

    // hub_state first.
    let (name, v) = ev.next(STEP).await.expect("hub_state");
    assert_eq!(name, "hub_state");
    assert_eq!(v["state"], "ready");
    assert_eq!(v["server_id"], "mcp-hub");
    assert_eq!(v["pid"], std::process::id());
    assert_eq!(v["port"], hub.addr.port());
    assert_eq!(hub.api.event_clients(), 1);

    let h = ok_json(&hub.get("/api/health").await);
    assert_eq!(h["activeClients"], 1);
    assert_eq!(h["connections"]["totalConnections"], 1);
    let c = &h["connections"]["connections"][0];
    assert_eq!(c["id"].as_str().unwrap().len(), 36);
    assert_eq!(c["state"], "connected");
    assert_iso(&c["connectedAt"]);
    assert_iso(&c["lastEventAt"]);

    let hb = ev.until("heartbeat", |n, _| n == "heartbeat").await;
    assert_eq!(hb["connections"], 1);

    // Events of the core, forwarded.
    let mut data = Map::new();
    data.insert("server".into(), "off".into());
    hub.control.emit(HubEvent::Log {
        level: "warn",
        message: "multi\nline".into(),
        data,
        code: Some("SOME_CODE".into()),
    });
    let log = ev.until("log", |n, _| n == "log").await;
    assert_eq!(log["type"], "warn");
    assert_eq!(log["message"], "multi\nline");
    assert_eq!(log["data"]["server"], "off");
    assert_eq!(log["code"], "SOME_CODE");

    let mut cfg = Map::new();
    cfg.insert("type".into(), "config_changed".into());
    cfg.insert("isSignificant".into(), false.into());
    hub.control.emit(HubEvent::Subscription(cfg));
    let v = ev.subscription("config_changed").await;
    assert_eq!(v["isSignificant"], false);

    hub.control.emit(HubEvent::State(HubState::Restarted));
    let v = ev
        .until("hub_state restarted", |n, v| {
            n == "hub_state" && v["state"] == "restarted"
        })
        .await;
    assert_eq!(v["has_restarted"], true);

    // REST lifecycle routes announce the server, as the Node hub does.
    ok_json(
        &hub.post(
            "/api/servers/stop?disable=true",
            json!({"server_name": "off"}),
        )
        .await,
    );
    let v = ev.subscription("servers_updated").await;
    assert_eq!(v["changes"], json!({"modified": ["off"]}));

    // A status change nobody asked for through REST is announced too (our extension), but a
    // server failing again the way it failed before is no change: `broken` is retried first and
    // only `off` (disabled → disconnected) is announced.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let reg = hub.registry.clone();
    tokio::spawn(async move {
        let _ = reg.start("broken").await;
        let _ = reg.start("off").await;
    });
    let v = ev
        .until("servers_updated from a status change", |n, v| {
            n == "subscription_event" && v["type"] == "servers_updated"
        })
        .await;
    assert_eq!(v["reason"], "server_status");
    assert_eq!(v["changes"]["modified"], json!(["off"]));

    // A departed client is forgotten at once.
    drop(ev);
    let api = hub.api.clone();
    wait_until("the client to be forgotten", || api.event_clients() == 0).await;

    // Streams end on shutdown.
    let mut ev = hub.events().await;
    ev.next(STEP).await.expect("hub_state");
    hub.stop.cancel();
    let deadline = Instant::now() + STEP;
    loop {
        match ev.next(STEP).await {
            None => break,
            Some(_) => assert!(Instant::now() < deadline, "stream did not end"),
        }
    }
    hub.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// With the fixture server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_calls() {
    let fx = need_fixture!();
    let hub = Hub::start(
        vec![fixture_def("fx", &fx, &["--instructions", "be nice"])],
        Duration::from_secs(10),
    )
    .await;

    let v = ok_json(
        &hub.post("/api/servers/info", json!({"server_name": "fx"}))
            .await,
    );
    let s = &v["server"];
    assert_server_shape(s);
    assert_eq!(s["status"], "connected", "{s}");
    assert_eq!(s["transport"], "stdio");
    assert!(s["pid"].as_u64().is_some());
    assert_eq!(s["instructions"], "be nice");
    assert!(s["protocolVersion"].is_string());
    assert_eq!(s["serverInfo"]["name"], "mcp-hub-fixture");
    let tools = s["capabilities"]["tools"].as_array().unwrap();
    let echo = tools
        .iter()
        .find(|t| t["name"] == "echo")
        .expect("echo listed");
    assert!(echo["inputSchema"].is_object(), "whole tool objects");

    let h = ok_json(&hub.get("/api/health").await);
    let caps = &h["mcpEndpoint"]["registeredCapabilities"];
    assert_eq!(caps["tools"], tools.len());
    assert!(h["mcpEndpoint"]["totalCapabilities"].as_u64().unwrap() > 0);

    // Tools by upstream name.
    let v = ok_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "echo", "arguments": {"text": "hi hub"}, "request_options": {"timeout": 5000}}),
        )
        .await,
    );
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hi hub"),
        "{v}"
    );
    // An empty Lua table for arguments.
    ok_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "pid", "arguments": []}),
        )
        .await,
    );
    // A tool-level error is a result.
    let v = ok_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "fail", "arguments": {"message": "nope"}}),
        )
        .await,
    );
    assert_eq!(v["result"]["isError"], true);

    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "nope"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "TOOL_NOT_FOUND",
    );
    assert_eq!(e["error"], "Tool not found");
    assert!(
        e["data"]["availableTools"]
            .as_array()
            .unwrap()
            .contains(&json!("echo"))
    );
    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "echo", "arguments": "str"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    );
    assert_eq!(e["data"]["args"], "str");
    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "sleep", "arguments": {"ms": 10000}, "request_options": {"timeout": 300}}),
        )
        .await,
        StatusCode::GATEWAY_TIMEOUT,
        "REQUEST_TIMEOUT",
    );
    assert_eq!(e["data"]["timeout"], 300);
    assert_eq!(e["data"]["tool"], "sleep");

    // Resources and prompts.
    let v = ok_json(
        &hub.post(
            "/api/servers/resources",
            json!({"server_name": "fx", "uri": "test://static-text"}),
        )
        .await,
    );
    assert_eq!(v["result"]["contents"][0]["uri"], "test://static-text");
    let e = err_json(
        &hub.post(
            "/api/servers/resources",
            json!({"server_name": "fx", "uri": "test://nope"}),
        )
        .await,
        StatusCode::BAD_GATEWAY,
        "RESOURCE_READ_ERROR",
    );
    assert!(e["data"]["originalError"]["code"].is_i64(), "{e}");
    assert!(
        e["error"].as_str().unwrap().starts_with("MCP error "),
        "{e}"
    );

    let v = ok_json(
        &hub.post(
            "/api/servers/prompts",
            json!({"server_name": "fx", "prompt": "test_prompt_with_arguments", "arguments": {"arg1": "a", "arg2": "b"}}),
        )
        .await,
    );
    assert!(v["result"]["messages"].is_array(), "{v}");
    let e = err_json(
        &hub.post(
            "/api/servers/prompts",
            json!({"server_name": "fx", "prompt": "nope"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "PROMPT_NOT_FOUND",
    );
    assert!(
        e["data"]["availablePrompts"]
            .as_array()
            .unwrap()
            .contains(&json!("test_simple_prompt"))
    );

    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_while_starting_stopping_refreshing() {
    let fx = need_fixture!();
    let hub = Hub::start(
        vec![fixture_def("fx", &fx, &["--list-changed-after", "300"])],
        Duration::from_secs(10),
    )
    .await;
    let mut ev = hub.events().await;
    ev.until("hub_state", |n, _| n == "hub_state").await;

    let v = ok_json(
        &hub.post("/api/servers/stop", json!({"server_name": "fx"}))
            .await,
    );
    assert_eq!(v["server"]["status"], "disconnected");
    assert_eq!(v["server"]["capabilities"]["tools"], json!([]));
    let u = ev.subscription("servers_updated").await;
    assert_eq!(u["changes"]["modified"], json!(["fx"]));

    let v = ok_json(
        &hub.post("/api/servers/start", json!({"server_name": "fx"}))
            .await,
    );
    assert_eq!(v["server"]["status"], "connected");
    let u = ev.subscription("servers_updated").await;
    assert_eq!(u["changes"]["modified"], json!(["fx"]));

    // 300 ms after connecting the fixture adds `late_tool` and says so; the event carries the
    // whole new list.
    let t = ev.subscription("tool_list_changed").await;
    assert_eq!(t["server"], "fx");
    let tools = t["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "late_tool"), "{t}");
    assert!(tools.iter().all(|t| t["inputSchema"].is_object()));

    let v = ok_json(
        &hub.post("/api/servers/refresh", json!({"server_name": "fx"}))
            .await,
    );
    assert_eq!(v["status"], "ok");
    assert!(
        v["server"]["capabilities"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "late_tool")
    );
    let v = ok_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "late_tool"}),
        )
        .await,
    );
    assert!(v["result"].is_object());

    drop(ev);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_crash_is_announced() {
    let fx = need_fixture!();
    let hub = Hub::start(
        vec![fixture_def("fx", &fx, &["--crash-after", "1"])],
        Duration::from_secs(10),
    )
    .await;
    let mut ev = hub.events().await;
    ev.until("hub_state", |n, _| n == "hub_state").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let e = err_json(
        &hub.post(
            "/api/servers/tools",
            json!({"server_name": "fx", "tool": "echo", "arguments": {"text": "x"}}),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_NOT_CONNECTED",
    );
    assert_eq!(e["data"]["server"], "fx");
    let u = ev
        .until("servers_updated after the crash", |n, v| {
            n == "subscription_event"
                && v["type"] == "servers_updated"
                && v["reason"] == "server_status"
        })
        .await;
    assert_eq!(u["changes"]["modified"], json!(["fx"]));

    hub.shutdown().await;
}
