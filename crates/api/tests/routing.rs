//! Two downstream clients on one upstream server, over each upstream transport (stdio, legacy
//! HTTP+SSE, Streamable HTTP): what the server sends back (sampling, elicitation and roots
//! requests, progress, logs) reaches the client whose call caused it and never the other one,
//! including when the server ignores a cancellation and asks for the cancelled call's sampling
//! while the other client has the only call in flight.
//!
//! Every text a client sends carries its name (`secret-<name>-<n>`, `tok-<name>-<n>`), so a
//! cross delivery is a received message that names the other client.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Events, Hub, STEP, server_def, stdio_def};
use http::{Method, StatusCode};
use mcp_hub_registry::{ClientContext, RegistryOptions, TransportSpec};
use mcp_hub_transport::HttpSpec;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Rounds of each phase.
const ROUNDS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Stdio,
    LegacySse,
    Streamable,
}

/// The fixture serving HTTP in its own process, killed when dropped.
struct HttpFixture {
    _child: tokio::process::Child,
    url: url::Url,
}

async fn http_fixture(flag: &str, args: &[&str]) -> HttpFixture {
    let mut child = tokio::process::Command::new(common::fixture().unwrap())
        .arg(flag)
        .arg("0")
        .args(args)
        .env_remove("FIXTURE_ARGS")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    tokio::time::timeout(STEP, out.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let path = if flag == "--sse" { "sse" } else { "mcp" };
    HttpFixture {
        _child: child,
        url: format!("http://{addr}/{path}").parse().unwrap(),
    }
}

/// A hub whose only server `fx` is the fixture (with `args`) over `wire`, answering `roots/list`
/// with `file:///configured` when no client can be asked.
async fn hub_over(wire: Wire, args: &[&str]) -> (Hub, Option<HttpFixture>) {
    let fx = common::fixture().unwrap();
    let (mut def, upstream) = match wire {
        Wire::Stdio => (stdio_def(&fx, args), None),
        Wire::LegacySse | Wire::Streamable => {
            let flag = if wire == Wire::LegacySse {
                "--sse"
            } else {
                "--http"
            };
            let up = http_fixture(flag, args).await;
            let spec = HttpSpec {
                name: "fx".into(),
                url: up.url.clone(),
                headers: Vec::new(),
                auth: None,
            };
            let spec = if wire == Wire::LegacySse {
                TransportSpec::Sse(spec)
            } else {
                TransportSpec::StreamableHttp(spec)
            };
            (server_def("fx", spec), Some(up))
        }
    };
    def.client_context = ClientContext {
        roots: Some(vec!["file:///configured".into()]),
        ..ClientContext::default()
    };
    let hub = Hub::with(RegistryOptions::default(), vec![def]).await;
    let kind = hub.registry.snapshot("fx").unwrap().transport_in_use;
    let want = match wire {
        Wire::Stdio => "stdio",
        Wire::LegacySse => "sse",
        Wire::Streamable => "streamable-http",
    };
    assert_eq!(kind, Some(want));
    (hub, upstream)
}

/// A downstream client that declares sampling, elicitation and roots, answers each with its own
/// name, and records everything the hub sends it (on its calls' streams and its GET stream).
struct Client {
    name: &'static str,
    sid: String,
    hub: Arc<Hub>,
    received: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicI64,
    get_stream: tokio::task::JoinHandle<()>,
}

/// What a call saw: its answer (`None` when cancelled) and the messages on its stream.
struct Outcome {
    answer: Option<Value>,
    stream: Vec<Value>,
}

impl Outcome {
    fn text(&self) -> String {
        let a = self.answer.as_ref().expect("an answer");
        a["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text in {a}"))
            .to_owned()
    }

    fn is_error(&self) -> bool {
        self.answer.as_ref().expect("an answer")["result"]["isError"] == true
    }
}

impl Client {
    async fn connect(hub: &Arc<Hub>, name: &'static str) -> Client {
        let sid = hub
            .initialize(json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}}))
            .await;
        let received = Arc::new(Mutex::new(Vec::new()));
        let req = hub
            .request(Method::GET, "/mcp", Some(&sid))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let r = hub.send(req).await;
        assert_eq!(r.status(), StatusCode::OK);
        let (h, rec, s) = (hub.clone(), received.clone(), sid.clone());
        let get_stream = tokio::spawn(async move {
            let mut events = Events::new(r);
            while let Some(m) = events.next_message_unbounded().await {
                rec.lock().unwrap().push(m.clone());
                if m.get("id").is_some() && m.get("method").is_some() {
                    answer(&h, &s, name, &m).await;
                }
            }
        });
        Client {
            name,
            sid,
            hub: hub.clone(),
            received,
            next_id: AtomicI64::new(1),
            get_stream,
        }
    }

    /// Calls `tool`, answering what the server asks on the way; `cancel_after` cancels the call
    /// then (the stream then ends without an answer).
    async fn call(&self, tool: &str, args: Value, cancel_after: Option<Duration>) -> Outcome {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let r = self
            .hub
            .post(
                Some(&self.sid),
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                    "name": tool, "arguments": args, "_meta": {"progressToken": format!("tok-{}-{id}", self.name)}}}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let mut events = Events::new(r);
        if let Some(after) = cancel_after {
            tokio::time::sleep(after).await;
            let c = self
                .hub
                .post(
                    Some(&self.sid),
                    json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": "changed my mind"}}),
                )
                .await;
            assert_eq!(c.status(), StatusCode::ACCEPTED);
        }
        let mut stream = Vec::new();
        while let Some(m) = events.message().await {
            if m["id"] == id && m.get("method").is_none() {
                return Outcome {
                    answer: Some(m),
                    stream,
                };
            }
            self.received.lock().unwrap().push(m.clone());
            stream.push(m.clone());
            if m.get("id").is_some() && m.get("method").is_some() {
                answer(&self.hub, &self.sid, self.name, &m).await;
            }
        }
        Outcome {
            answer: None,
            stream,
        }
    }

    /// Nothing this client received names another client.
    fn assert_only_own(&self, others: &[&str]) {
        for m in self.received.lock().unwrap().iter() {
            let text = m.to_string();
            for other in others {
                assert!(
                    !text.contains(&format!("secret-{other}"))
                        && !text.contains(&format!("tok-{other}")),
                    "{} received {other}'s message: {text}",
                    self.name
                );
            }
        }
    }

    fn received(&self, method: &str) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m["method"] == method)
            .count()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.get_stream.abort();
    }
}

/// A client's answer to a server request: its own name in whatever form the request wants.
async fn answer(hub: &Hub, sid: &str, name: &str, request: &Value) {
    let result = match request["method"].as_str() {
        Some("sampling/createMessage") => json!({
            "role": "assistant", "content": {"type": "text", "text": format!("answer-from-{name}")},
            "model": "test", "stopReason": "endTurn"}),
        Some("elicitation/create") => {
            json!({"action": "accept", "content": {"answer": format!("answer-from-{name}")}})
        }
        Some("roots/list") => json!({"roots": [{"uri": format!("file:///answer-from-{name}")}]}),
        _ => json!({}),
    };
    let r = hub
        .post(
            Some(sid),
            json!({"jsonrpc": "2.0", "id": request["id"], "result": result}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

fn ask(kind: &str, who: &str, round: usize, delay_ms: u64) -> Value {
    json!({"kind": kind, "text": format!("secret-{who}-{round}"), "delay_ms": delay_ms})
}

async fn two_clients_never_see_each_other(wire: Wire) {
    let _ = need_fixture!();
    let (hub, _upstream) = hub_over(wire, &["--ignore-cancel", "--roots-on-connect"]).await;
    let hub = Arc::new(hub);
    let a = Client::connect(&hub, "alpha").await;
    let b = Client::connect(&hub, "bravo").await;

    // 1. One client at a time: nothing is ambiguous, so every request reaches its caller.
    for round in 0..ROUNDS {
        for c in [&a, &b] {
            for kind in ["sampling", "elicitation", "roots"] {
                let o = c
                    .call("ask_client", ask(kind, c.name, round, 0), None)
                    .await;
                assert!(
                    !o.is_error() && o.text().contains(&format!("answer-from-{}", c.name)),
                    "{wire:?} {kind} round {round} for {}: {}",
                    c.name,
                    o.text()
                );
            }
        }
    }

    // 2. Both at once: sampling, logs and progress. Over Streamable HTTP the stream says whose
    // each message is; elsewhere a request both could have caused is answered by the hub.
    let mut delivered = 0;
    for round in 0..ROUNDS {
        let (oa, ob) = tokio::join!(
            a.call("ask_client", ask("sampling", "alpha", round, 30), None),
            b.call("ask_client", ask("sampling", "bravo", round, 30), None),
        );
        for (c, o) in [(&a, &oa), (&b, &ob)] {
            if o.is_error() {
                assert!(
                    wire != Wire::Streamable,
                    "{wire:?}: an exactly attributable request was refused: {}",
                    o.text()
                );
                assert!(o.text().contains("mcp-hub cannot forward"), "{}", o.text());
            } else {
                assert!(
                    o.text().contains(&format!("answer-from-{}", c.name)),
                    "{}",
                    o.text()
                );
                delivered += 1;
            }
        }
        let log =
            |who: &str| json!({"text": format!("secret-{who}-{round}"), "count": 5, "delay_ms": 5});
        let (la, lb) = tokio::join!(
            a.call("log", log("alpha"), None),
            b.call("log", log("bravo"), None)
        );
        if wire == Wire::Streamable {
            for o in [&la, &lb] {
                let logs = o
                    .stream
                    .iter()
                    .filter(|m| m["method"] == "notifications/message")
                    .count();
                assert_eq!(logs, 5, "every log of an exact stream arrives");
            }
        }
        let (pa, pb) = tokio::join!(
            a.call("sleep", json!({"ms": 40}), None),
            b.call("sleep", json!({"ms": 40}), None)
        );
        for (c, o) in [(&a, &pa), (&b, &pb)] {
            let progress: Vec<&Value> = o
                .stream
                .iter()
                .filter(|m| m["method"] == "notifications/progress")
                .collect();
            assert_eq!(
                progress.len(),
                4,
                "{wire:?}: progress is exact on every wire"
            );
            assert!(progress.iter().all(|p| {
                p["params"]["progressToken"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("tok-{}-", c.name))
            }));
        }
    }
    if wire == Wire::Streamable {
        assert_eq!(delivered, 2 * ROUNDS);
    }

    // 3. A cancels a call whose server ignores the cancellation and then samples with A's
    // prompt, while B has the only call in flight: B must not be asked.
    for round in 0..3 {
        let (oa, ob) = tokio::join!(
            a.call(
                "ask_client",
                ask("sampling", "alpha", 100 + round, 300),
                Some(Duration::from_millis(50))
            ),
            async {
                tokio::time::sleep(Duration::from_millis(80)).await;
                b.call("sleep", json!({"ms": 600}), None).await
            }
        );
        assert!(oa.answer.is_none(), "a cancelled call gets no answer");
        assert_eq!(ob.text(), "slept 600 ms");
        assert!(
            !ob.stream
                .iter()
                .any(|m| m["method"] == "sampling/createMessage"),
            "{wire:?}: B was asked for A's sampling: {:?}",
            ob.stream
        );
    }
    let refused = hub
        .registry
        .snapshot("fx")
        .unwrap()
        .routing
        .unattributed_requests;
    assert!(
        refused >= 3,
        "{wire:?}: the hub answered {refused} requests itself"
    );

    // 4. A restart asks for roots with no call in flight and two clients connected: the hub
    // answers with the configured roots, never with a client's.
    let before = a.received("roots/list") + b.received("roots/list");
    hub.registry.restart("fx").await.unwrap();
    let roots = loop {
        let o = a.call("last_roots", json!({}), None).await;
        if !o.is_error() {
            break o.text();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(roots.contains("file:///configured"), "{wire:?}: {roots}");
    assert_eq!(a.received("roots/list") + b.received("roots/list"), before);

    a.assert_only_own(&["bravo"]);
    b.assert_only_own(&["alpha"]);
    drop((a, b));
    if let Ok(hub) = Arc::try_unwrap(hub) {
        hub.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_over_stdio() {
    two_clients_never_see_each_other(Wire::Stdio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_over_legacy_sse() {
    two_clients_never_see_each_other(Wire::LegacySse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_over_streamable_http() {
    two_clients_never_see_each_other(Wire::Streamable).await;
}

/// With one client connected, what no call caused can only be that client's: it gets the
/// restart's roots request and the logs nobody's call caused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_client_gets_what_nobody_caused() {
    let _ = need_fixture!();
    let (hub, _) = hub_over(Wire::Stdio, &["--roots-on-connect"]).await;
    let hub = Arc::new(hub);
    let a = Client::connect(&hub, "alpha").await;
    hub.registry.restart("fx").await.unwrap();
    let roots = loop {
        let o = a.call("last_roots", json!({}), None).await;
        if !o.is_error() {
            break o.text();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(roots.contains("file:///answer-from-alpha"), "{roots}");
    assert_eq!(a.received("roots/list"), 1);
    drop(a);
    if let Ok(hub) = Arc::try_unwrap(hub) {
        hub.shutdown().await;
    }
}

/// A client's cancellation reaches the server with the client's own reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_cancel_reason_goes_upstream() {
    let _ = need_fixture!();
    let dir = std::env::temp_dir().join(format!("mcp-hub-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("fx.jsonl");
    let log_arg = log.display().to_string();
    let (hub, _) = hub_over(Wire::Stdio, &["--log", &log_arg]).await;
    let hub = Arc::new(hub);
    let a = Client::connect(&hub, "alpha").await;
    let o = a
        .call(
            "sleep",
            json!({"ms": 60_000}),
            Some(Duration::from_millis(100)),
        )
        .await;
    assert!(o.answer.is_none());
    let deadline = tokio::time::Instant::now() + STEP;
    let cancel = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("notifications/cancelled")) {
            break line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no cancellation reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let v: Value = serde_json::from_str(&cancel).unwrap();
    assert_eq!(v["params"]["reason"], "changed my mind");
    drop(a);
    if let Ok(hub) = Arc::try_unwrap(hub) {
        hub.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
