//! Helpers shared by the stdio integration tests: locating peers, a recording handler, and
//! process-leak checks through `/proc`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_hub_protocol::{ErrorCode, ErrorObject, RawValue, Request};
use mcp_hub_transport::{
    Attribution, ClientFeatures, ClientSession, RequestError, RequestOptions, Requester,
    ServerRequestHandler, SessionOptions, StdioSpec,
};
use serde_json::{Value, json};

/// The parts of the test's own environment a child needs to run (the child inherits nothing).
pub fn base_env() -> Vec<(String, String)> {
    ["PATH", "HOME", "LANG", "TMPDIR"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
        .collect()
}

pub fn spec(name: &str, command: &str, args: &[&str]) -> StdioSpec {
    StdioSpec {
        name: name.to_owned(),
        command: command.to_owned(),
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        env: base_env(),
        cwd: None,
        stderr: None,
    }
}

/// `node <server-everything> stdio`, or `None` (with the reason printed) when it is not installed.
pub fn everything() -> Option<StdioSpec> {
    let Ok(script) = std::env::var("MCP_HUB_SERVER_EVERYTHING") else {
        eprintln!(
            "SKIP: MCP_HUB_SERVER_EVERYTHING is not set (eval \"$(bash scripts/setup-test-peers.sh)\")"
        );
        return None;
    };
    Some(spec("everything", "node", &[&script, "stdio"]))
}

/// Where the fixture server binary is: `$MCP_HUB_FIXTURE`, or next to this test's target dir.
pub fn fixture_path() -> Option<PathBuf> {
    mcp_hub_fixture::built_binary()
}

/// The fixture over stdio with `args`, or `None` (with the reason printed) when it is not built.
pub fn fixture(args: &[&str]) -> Option<StdioSpec> {
    let Some(path) = fixture_path() else {
        eprintln!(
            "SKIP: mcp-hub-fixture not found (build it with `cargo build -p mcp-hub-fixture` or set MCP_HUB_FIXTURE)"
        );
        return None;
    };
    let mut all = vec!["--stdio"];
    all.extend_from_slice(args);
    Some(spec("fixture", path.to_str()?, &all))
}

/// Session options declaring sampling, roots and elicitation, so servers exercise them.
pub fn options() -> SessionOptions {
    let mut o = SessionOptions {
        initialize_timeout: Duration::from_secs(20),
        request_timeout: Duration::from_secs(20),
        shutdown_timeout: Duration::from_millis(500),
        ..SessionOptions::default()
    };
    for cap in ["sampling", "roots", "elicitation"] {
        o.capabilities.insert(cap.to_owned(), json!({}));
    }
    o
}

/// Answers sampling, roots and elicitation, recording what it was asked and for whom.
#[derive(Default)]
pub struct Handler {
    pub calls: Mutex<Vec<(String, Option<u64>)>>,
}

impl Handler {
    pub fn calls(&self) -> Vec<(String, Option<u64>)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl ServerRequestHandler for Handler {
    async fn handle(
        &self,
        request: Request,
        attribution: Attribution,
    ) -> Result<Box<RawValue>, ErrorObject> {
        self.calls.lock().unwrap().push((
            request.method.clone(),
            attribution.deliverable().map(|r| r.call),
        ));
        let answer = match request.method.as_str() {
            "sampling/createMessage" => json!({
                "role": "assistant",
                "content": {"type": "text", "text": "sampled by the test"},
                "model": "test-model",
                "stopReason": "endTurn"
            }),
            "roots/list" => json!({"roots": [{"uri": "file:///tmp", "name": "tmp"}]}),
            "elicitation/create" => json!({"action": "decline"}),
            other => {
                return Err(ErrorObject::new(ErrorCode::METHOD_NOT_FOUND, other));
            }
        };
        Ok(raw(answer))
    }
}

/// A requester for a test call, identified by `call` (and a session of the same number).
pub fn requester(call: u64) -> Option<Requester> {
    Some(Requester {
        session: call,
        call,
        features: ClientFeatures::ALL,
    })
}

pub fn handler() -> Arc<Handler> {
    Arc::new(Handler::default())
}

pub fn raw(v: Value) -> Box<RawValue> {
    mcp_hub_protocol::to_raw(&v).unwrap()
}

pub fn value(r: &RawValue) -> Value {
    serde_json::from_str(r.get()).unwrap()
}

pub async fn request(
    session: &ClientSession,
    method: &str,
    params: Value,
) -> Result<Value, RequestError> {
    session
        .request(method, Some(raw(params)), RequestOptions::default())
        .await
        .map(|r| value(&r))
}

pub async fn call_tool(
    session: &ClientSession,
    name: &str,
    arguments: Value,
    options: RequestOptions,
) -> Result<Value, RequestError> {
    session
        .request(
            "tools/call",
            Some(raw(json!({"name": name, "arguments": arguments}))),
            options,
        )
        .await
        .map(|r| value(&r))
}

/// The first text content of a tool result.
pub fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// `(state, pgrp)` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z')
}

/// Live members of a process group.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| matches!(stat(*pid), Some((state, pgrp)) if pgrp == pgid && state != 'Z'))
        .collect()
}

/// Waits (bounded) until the process and its whole group are gone; true if they are. Our direct
/// child must also be reaped: a zombie `/proc` entry of it would still be found by `stat`.
pub async fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let child_reaped = stat(pid).is_none() || stat(pid).is_some_and(|(_, pgrp)| pgrp != pid);
        if child_reaped && group_members(pid).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "still there: pid {pid} {:?}, group {:?}",
                stat(pid),
                group_members(pid)
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the fixture's pidfile: its own pid, then the grandchild's.
pub async fn read_pidfile(path: &std::path::Path, lines: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            let pids: Vec<u32> = s.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.len() >= lines {
                return pids;
            }
        }
        assert!(Instant::now() < deadline, "pidfile {path:?} never filled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
