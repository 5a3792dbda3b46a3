//! The measured workloads: closed-loop request sessions, a hub's start-up and footprint, and the
//! direct start of many stdio upstreams (the baseline for the hub's fan-in).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcp_hub_protocol::{Message, RawValue};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::client::{Session, TransportKind};
use crate::error::LoadgenError;
use crate::hist::Histogram;
use crate::procfs::{self, ProcSample};

/// Percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
pub(crate) struct Latency {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            min: us(h.min()),
            p50: us(h.quantile(0.50)),
            p90: us(h.quantile(0.90)),
            p99: us(h.quantile(0.99)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// The hub process seen through /proc over a run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
pub(crate) struct HubUsage {
    pub pid: u32,
    /// CPU seconds (user + system) spent during the measured window.
    pub cpu_s: f64,
    /// Of which in the kernel (system time).
    #[serde(default)]
    pub sys_s: f64,
    /// CPU microseconds per completed call.
    pub cpu_us_per_call: f64,
    /// Peak RSS of the process's whole life so far (VmHWM), KiB.
    pub vm_hwm_kb: u64,
    /// Largest RSS sampled during the window (every 50 ms), KiB.
    pub rss_max_kb: u64,
    /// RSS at the end, KiB.
    pub vm_rss_kb: u64,
    pub threads: u64,
    /// CPU seconds its child processes (the upstream servers) spent during the window.
    #[serde(default)]
    pub children_cpu_s: f64,
}

/// What one request workload does.
#[derive(Debug)]
pub(crate) struct RunSpec {
    pub transport: TransportKind,
    pub target: Vec<String>,
    pub sessions: usize,
    pub duration: Option<Duration>,
    pub calls: Option<u64>,
    pub warmup: u64,
    pub method: String,
    pub params: Option<Box<RawValue>>,
    pub expect_tools: Option<usize>,
    pub pid: Option<u32>,
    pub timeout: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RunReport {
    pub transport: TransportKind,
    pub method: String,
    pub sessions: usize,
    pub calls: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed_s: f64,
    pub calls_per_s: f64,
    pub latency_us: Latency,
    pub hub: Option<HubUsage>,
    pub loadgen_cpu_s: f64,
}

/// Judges a reply: `Err(reason)` when the call failed at the MCP level.
pub(crate) fn check(
    method: &str,
    msg: &Message,
    expect_tools: Option<usize>,
) -> Result<(), String> {
    let result = match msg {
        Message::Response(r) => &r.result,
        Message::Error(e) => return Err(format!("error {}: {}", e.error.code, e.error.message)),
        _ => return Err("not a response".into()),
    };
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outcome {
        #[serde(default)]
        is_error: bool,
        #[serde(default)]
        tools: Option<Vec<IgnoredAny>>,
    }
    let o: Outcome = serde_json::from_str(result.get()).map_err(|e| format!("result: {e}"))?;
    if o.is_error {
        return Err(format!("{method}: isError result: {}", result.get()));
    }
    if let Some(want) = expect_tools {
        let got = o.tools.map_or(0, |t| t.len());
        if got != want {
            return Err(format!("{method}: {got} tools, expected {want}"));
        }
    }
    Ok(())
}

pub(crate) struct SessionOutcome {
    pub hist: Histogram,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub end: Instant,
}

/// Samples a process's RSS every 50 ms until dropped.
pub(crate) struct RssSampler {
    max_kb: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    pub(crate) fn start(pid: u32) -> RssSampler {
        let max_kb = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max_kb.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Ok(p) = procfs::sample(pid) {
                    m.fetch_max(p.vm_rss_kb, Ordering::Relaxed);
                }
            }
        });
        RssSampler { max_kb, stop }
    }

    pub(crate) fn max_kb(&self) -> u64 {
        self.max_kb.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens every session, warms each up, then lets them all call in a closed loop (each waits for
/// its answer before the next call) from one common start.
pub(crate) async fn run(spec: RunSpec) -> Result<RunReport, LoadgenError> {
    if spec.sessions == 0 {
        return Err(LoadgenError::Usage("--sessions must be at least 1".into()));
    }
    if spec.duration.is_none() && spec.calls.is_none() {
        return Err(LoadgenError::Usage("give --duration or --calls".into()));
    }
    let spec = Arc::new(spec);
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(spec.sessions);
    // `None` until the start; then the deadline (or `Some(None)` for a call count).
    let (go_tx, go_rx) = watch::channel::<Option<Option<Instant>>>(None);
    let mut tasks = JoinSet::new();
    // Opening hundreds of sessions at once would measure the server's accept queue.
    let opening = Arc::new(tokio::sync::Semaphore::new(16));
    for _ in 0..spec.sessions {
        let spec = spec.clone();
        let ready_tx = ready_tx.clone();
        let mut go_rx = go_rx.clone();
        let opening = opening.clone();
        tasks.spawn(async move {
            let permit = opening.acquire_owned().await.ok();
            let mut session = match prepare(&spec).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string())).await;
                    return None;
                }
            };
            drop(permit);
            let _ = ready_tx.send(Ok(())).await;
            let deadline = loop {
                if let Some(d) = *go_rx.borrow_and_update() {
                    break d;
                }
                if go_rx.changed().await.is_err() {
                    return None;
                }
            };
            let out = measure(&spec, &mut session, deadline).await;
            session.close().await;
            Some(out)
        });
    }
    drop(ready_tx);
    for _ in 0..spec.sessions {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(LoadgenError::Protocol(format!("session setup: {e}"))),
            None => return Err(LoadgenError::Protocol("session setup failed".into())),
        }
    }
    let sampler = spec.pid.map(RssSampler::start);
    let hub_before = spec.pid.map(procfs::sample).transpose()?;
    let children_before = spec.pid.map_or(0.0, procfs::descendants_cpu);
    let self_before = procfs::sample_self()?;
    let t0 = Instant::now();
    let _ = go_tx.send(Some(spec.duration.map(|d| t0 + d)));
    let mut hist = Histogram::default();
    let (mut ok, mut errors, mut first_error, mut end) = (0, 0, None, t0);
    while let Some(joined) = tasks.join_next().await {
        let Some(o) = joined.map_err(|e| LoadgenError::Protocol(format!("session task: {e}")))?
        else {
            continue;
        };
        hist.merge(&o.hist);
        ok += o.ok;
        errors += o.errors;
        first_error = first_error.or(o.first_error);
        end = end.max(o.end);
    }
    let elapsed = end.duration_since(t0).as_secs_f64();
    let self_after = procfs::sample_self()?;
    let hub = match (spec.pid, hub_before) {
        (Some(pid), Some(before)) => {
            let after = procfs::sample(pid)?;
            let rss_max = sampler.as_ref().map_or(0, RssSampler::max_kb);
            let mut u = usage(pid, &before, &after, ok, rss_max);
            u.children_cpu_s = (procfs::descendants_cpu(pid) - children_before).max(0.0);
            Some(u)
        }
        _ => None,
    };
    Ok(RunReport {
        transport: spec.transport,
        method: spec.method.clone(),
        sessions: spec.sessions,
        calls: ok,
        errors,
        first_error,
        elapsed_s: elapsed,
        calls_per_s: if elapsed > 0.0 {
            ok as f64 / elapsed
        } else {
            0.0
        },
        latency_us: Latency::of(&hist),
        hub,
        loadgen_cpu_s: self_after.cpu_s - self_before.cpu_s,
    })
}

pub(crate) fn usage(
    pid: u32,
    before: &ProcSample,
    after: &ProcSample,
    calls: u64,
    rss_max: u64,
) -> HubUsage {
    let cpu_s = after.cpu_s - before.cpu_s;
    HubUsage {
        pid,
        cpu_s,
        sys_s: after.sys_s - before.sys_s,
        cpu_us_per_call: if calls > 0 {
            cpu_s * 1e6 / calls as f64
        } else {
            0.0
        },
        vm_hwm_kb: after.vm_hwm_kb,
        rss_max_kb: rss_max.max(after.vm_rss_kb),
        vm_rss_kb: after.vm_rss_kb,
        threads: after.threads,
        children_cpu_s: 0.0,
    }
}

async fn prepare(spec: &RunSpec) -> Result<Session, LoadgenError> {
    let mut s = Session::open(spec.transport, &spec.target).await?;
    for _ in 0..spec.warmup {
        let r = tokio::time::timeout(spec.timeout, s.request(&spec.method, spec.params.clone()))
            .await
            .map_err(|_| LoadgenError::Timeout(format!("warm-up {}", spec.method)))??;
        check(&spec.method, &r.msg, spec.expect_tools).map_err(LoadgenError::Protocol)?;
    }
    Ok(s)
}

/// Consecutive failures after which a session gives up (the server is gone or broken).
const MAX_CONSECUTIVE_ERRORS: u32 = 20;

pub(crate) async fn measure(
    spec: &RunSpec,
    s: &mut Session,
    deadline: Option<Instant>,
) -> SessionOutcome {
    let mut o = SessionOutcome {
        hist: Histogram::default(),
        ok: 0,
        errors: 0,
        first_error: None,
        end: Instant::now(),
    };
    let mut consecutive = 0;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d)
            || spec.calls.is_some_and(|n| o.ok + o.errors >= n)
        {
            break;
        }
        let start = Instant::now();
        let res = tokio::time::timeout(spec.timeout, s.request(&spec.method, spec.params.clone()))
            .await
            .map_err(|_| LoadgenError::Timeout(spec.method.clone()))
            .and_then(|r| r);
        let verdict = match res {
            Ok(reply) => match check(&spec.method, &reply.msg, spec.expect_tools) {
                Ok(()) => {
                    let ns = reply.at.saturating_duration_since(start).as_nanos();
                    o.hist.record(u64::try_from(ns).unwrap_or(u64::MAX));
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e.to_string()),
        };
        o.end = Instant::now();
        match verdict {
            Ok(()) => {
                o.ok += 1;
                consecutive = 0;
            }
            Err(e) => {
                o.errors += 1;
                o.first_error.get_or_insert(e);
                consecutive += 1;
                if consecutive >= MAX_CONSECUTIVE_ERRORS {
                    break;
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Message {
        Message::from_str(s).unwrap()
    }

    #[test]
    fn replies_are_judged() {
        let ok =
            msg(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}"#);
        assert_eq!(check("tools/call", &ok, None), Ok(()));
        let tool_err = msg(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#);
        assert!(check("tools/call", &tool_err, None).is_err());
        let rpc_err = msg(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"nope"}}"#);
        assert!(
            check("tools/call", &rpc_err, None)
                .unwrap_err()
                .contains("-32602")
        );
        let list =
            msg(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}"#);
        assert_eq!(check("tools/list", &list, Some(2)), Ok(()));
        assert!(check("tools/list", &list, Some(3)).is_err());
    }
}
