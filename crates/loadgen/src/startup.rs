//! A hub's start-up, timed from its spawn to `ready` and to a complete catalogue, with its
//! `tools/list` latency and idle footprint; and the hub-less baseline, many stdio upstreams
//! started at once.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use mcp_hub_protocol::Message;
use mcp_hub_protocol::sse::Decoder;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio::task::JoinSet;

use crate::client::{Session, TransportKind};
use crate::error::LoadgenError;
use crate::hist::Histogram;
use crate::http::{Conn, next_chunk, parse_url};
use crate::procfs::{self, ProcSample};
use crate::workload::{Latency, check};

/// Polls `GET <base>/api/events` until it connects, then waits for `hub_state` `ready` (both
/// hubs send the current state first on every new stream).
pub(crate) async fn wait_ready(base: &str, timeout: Duration) -> Result<(), LoadgenError> {
    let url = format!("{}/api/events", base.trim_end_matches('/'));
    let (target, path) = parse_url(&url).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let attempt = async {
        loop {
            let mut conn = Conn::new(target.clone());
            let resp = match conn
                .send(
                    Method::GET,
                    &path,
                    &[(
                        header::ACCEPT,
                        HeaderValue::from_static("text/event-stream"),
                    )],
                    Bytes::new(),
                )
                .await
            {
                Ok(r) if r.status() == StatusCode::OK => r,
                // Not listening yet (or not serving yet): poll again soon.
                _ => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
            };
            let mut body = resp.into_body();
            let mut dec = Decoder::new(1 << 20);
            while let Some(chunk) = next_chunk(&mut body).await? {
                let events = dec
                    .feed(&chunk)
                    .map_err(|e| LoadgenError::Protocol(e.to_string()))?;
                for ev in events {
                    if ev.event_type() != "hub_state" {
                        continue;
                    }
                    let state = serde_json::from_str::<serde_json::Value>(&ev.data)
                        .ok()
                        .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_owned));
                    match state.as_deref() {
                        Some("ready") => return Ok(()),
                        Some("error" | "stopping" | "stopped") => {
                            return Err(LoadgenError::Protocol(format!("hub state: {}", ev.data)));
                        }
                        _ => {}
                    }
                }
            }
        }
    };
    tokio::time::timeout_at(deadline, attempt)
        .await
        .map_err(|_| LoadgenError::Timeout(format!("{url}: no hub_state ready")))?
}

/// How a hub start-up is measured.
#[derive(Debug)]
pub(crate) struct StartupSpec {
    pub base: String,
    pub mcp_url: String,
    pub transport: TransportKind,
    pub expect_tools: usize,
    pub list_calls: u64,
    pub idle: Duration,
    pub timeout: Duration,
    pub command: Vec<String>,
    pub log: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StartupReport {
    /// Spawn → `hub_state` `ready` on /api/events.
    pub ready_ms: f64,
    /// Spawn → the first `tools/list` that had every expected tool.
    pub all_tools_ms: f64,
    pub tools: usize,
    pub list_calls: u64,
    pub list_latency_us: Latency,
    /// Size of one `tools/list` response body, bytes.
    pub list_bytes: usize,
    /// The hub after `idle` seconds without traffic (and after the list calls).
    pub hub: ProcSample,
    pub hub_pid: u32,
}

/// Spawns a hub, times it until ready and until its catalogue is complete, measures `tools/list`
/// and the idle footprint, then stops it with SIGTERM.
pub(crate) async fn startup(spec: StartupSpec) -> Result<StartupReport, LoadgenError> {
    let (prog, args) = spec
        .command
        .split_first()
        .ok_or_else(|| LoadgenError::Usage("startup needs a hub command after --".into()))?;
    let (out, err) = match &spec.log {
        Some(p) => {
            let f = std::fs::File::create(p)?;
            (Stdio::from(f.try_clone()?), Stdio::from(f))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let t0 = Instant::now();
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LoadgenError::Process(format!("spawning {prog}: {e}")))?;
    let pid = child
        .id()
        .ok_or_else(|| LoadgenError::Process("the hub exited at once".into()))?;
    let result = measure_startup(&spec, t0, pid).await;
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    result
}

async fn measure_startup(
    spec: &StartupSpec,
    t0: Instant,
    pid: u32,
) -> Result<StartupReport, LoadgenError> {
    wait_ready(&spec.base, spec.timeout).await?;
    let ready_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut session = Session::open(spec.transport, std::slice::from_ref(&spec.mcp_url)).await?;
    let deadline = t0 + spec.timeout;
    let (tools, list_bytes, all_tools_ms) = loop {
        let r = session.request("tools/list", None).await?;
        let Message::Response(resp) = &r.msg else {
            return Err(LoadgenError::Protocol(format!("tools/list: {}", r.msg)));
        };
        #[derive(Deserialize)]
        struct Tools {
            tools: Vec<IgnoredAny>,
        }
        let n = serde_json::from_str::<Tools>(resp.result.get())
            .map_err(|e| LoadgenError::Protocol(format!("tools/list: {e}")))?
            .tools
            .len();
        if n >= spec.expect_tools {
            break (
                n,
                resp.result.get().len(),
                r.at.duration_since(t0).as_secs_f64() * 1e3,
            );
        }
        if Instant::now() >= deadline {
            return Err(LoadgenError::Timeout(format!(
                "{n} of {} tools listed",
                spec.expect_tools
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut hist = Histogram::default();
    for _ in 0..spec.list_calls {
        let start = Instant::now();
        let r = session.request("tools/list", None).await?;
        check("tools/list", &r.msg, Some(tools)).map_err(LoadgenError::Protocol)?;
        hist.record(u64::try_from(r.at.duration_since(start).as_nanos()).unwrap_or(u64::MAX));
    }
    session.close().await;
    tokio::time::sleep(spec.idle).await;
    let hub = procfs::sample(pid)?;
    Ok(StartupReport {
        ready_ms,
        all_tools_ms,
        tools,
        list_calls: spec.list_calls,
        list_latency_us: Latency::of(&hist),
        list_bytes,
        hub,
        hub_pid: pid,
    })
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DirectStartReport {
    pub upstreams: usize,
    /// First spawn → the last upstream answered `tools/list`.
    pub all_ready_ms: f64,
    /// Each upstream's own spawn → its `tools/list` answer: the slowest and the median.
    pub slowest_own_ms: f64,
    pub median_own_ms: f64,
    pub tools: usize,
}

/// Starts `n` copies of a stdio server at once, as a hub would, each with `initialize`,
/// `notifications/initialized` and `tools/list`: the baseline for a hub's fan-in.
pub(crate) async fn direct_start(
    n: usize,
    command: Vec<String>,
) -> Result<DirectStartReport, LoadgenError> {
    let command = Arc::new(command);
    let t0 = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let command = command.clone();
        tasks.spawn(async move {
            let spawned = Instant::now();
            let mut s = Session::open(TransportKind::Stdio, &command).await?;
            let r = s.request("tools/list", None).await?;
            #[derive(Deserialize)]
            struct Tools {
                tools: Vec<IgnoredAny>,
            }
            let Message::Response(resp) = &r.msg else {
                return Err(LoadgenError::Protocol(format!("tools/list: {}", r.msg)));
            };
            let tools = serde_json::from_str::<Tools>(resp.result.get())
                .map_err(|e| LoadgenError::Protocol(format!("tools/list: {e}")))?
                .tools
                .len();
            let at = r.at;
            // Keep every server alive until all are measured, like a hub would.
            Ok::<_, LoadgenError>((s, spawned, at, tools))
        });
    }
    let mut sessions = Vec::with_capacity(n);
    let mut own = Vec::with_capacity(n);
    let (mut last, mut tools) = (t0, 0);
    while let Some(j) = tasks.join_next().await {
        let (s, spawned, at, t) = j.map_err(|e| LoadgenError::Process(e.to_string()))??;
        own.push(at.duration_since(spawned).as_secs_f64() * 1e3);
        last = last.max(at);
        tools += t;
        sessions.push(s);
    }
    let all_ready_ms = last.duration_since(t0).as_secs_f64() * 1e3;
    for s in sessions {
        s.close().await;
    }
    own.sort_by(f64::total_cmp);
    Ok(DirectStartReport {
        upstreams: n,
        all_ready_ms,
        slowest_own_ms: own.last().copied().unwrap_or(0.0),
        median_own_ms: own.get(own.len() / 2).copied().unwrap_or(0.0),
        tools,
    })
}
