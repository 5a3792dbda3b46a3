//! The crowd workload (issue 16): many Streamable HTTP sessions on one hub, each holding its
//! standalone `GET` stream open, as idle editor clients do. Measures what an idle session costs
//! the hub (RSS per session, descriptors), how long a `tools/list_changed` takes to reach every
//! stream, and whether a few sessions' calls slow down while the crowd is there.
//!
//! Sequence: `active` sessions open (each with its `GET` stream on a second connection) and call
//! for `duration` (the baseline); the hub's RSS is read; the other `sessions - active` open, one
//! connection each carrying the handshake and then the stream; after a pause the RSS is read
//! again; the same calls run again (loaded); finally one active session calls the trigger tool
//! (one that changes the upstream's tool list) and the time until every stream has heard
//! `notifications/tools/list_changed` is taken.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use mcp_hub_protocol::sse::Decoder;
use mcp_hub_protocol::{Message, RawValue};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::client::{Session, TransportKind};
use crate::error::LoadgenError;
use crate::hist::Histogram;
use crate::http::{Conn, next_chunk};
use crate::procfs;
use crate::workload::{self, Latency, RssSampler, RunReport, RunSpec};

/// Sessions being opened at once (more would measure the accept queue, not the hub).
const OPENING: usize = 64;
/// Largest SSE event a crowd stream accepts (only notifications arrive on it).
const MAX_EVENT_BYTES: usize = 1 << 20;
/// How long the fan-out may take before the run gives up on the streams still silent.
const FANOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between opening the crowd and reading the hub's memory.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) struct CrowdSpec {
    pub url: String,
    /// Sessions in all, each with an open `GET` stream.
    pub sessions: usize,
    /// Of which this many call in a closed loop (baseline and loaded).
    pub active: usize,
    pub duration: Duration,
    /// `tools/call` params of the measured calls.
    pub params: Box<RawValue>,
    /// `tools/call` params of the call that changes the tool list.
    pub trigger: Box<RawValue>,
    pub pid: u32,
    pub timeout: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CrowdReport {
    pub sessions: usize,
    pub active: usize,
    /// Seconds to open the idle sessions (handshake and stream each).
    pub open_s: f64,
    /// The hub's RSS with only the active sessions, and with every session, KiB.
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    /// (after - before) / idle sessions, bytes.
    pub rss_per_idle_session_bytes: f64,
    /// The hub's open descriptors with every session open.
    pub hub_fds: u64,
    /// The hub's soft `RLIMIT_NOFILE` (from `/proc/<pid>/limits`).
    pub hub_nofile_soft: Option<u64>,
    pub hub_threads: u64,
    /// Streams that heard the `list_changed`, of `sessions`.
    pub fanout_delivered: usize,
    /// Trigger sent → the last stream heard it, ms (`None` if some never did).
    pub fanout_all_ms: Option<f64>,
    /// Trigger sent → half the streams heard it, ms.
    pub fanout_p50_ms: f64,
    /// Streams that ended before the run did.
    pub streams_lost: usize,
    pub baseline: RunReport,
    pub loaded: RunReport,
}

/// Raises this process's soft descriptor limit to its hard limit: each session is a socket.
pub(crate) fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum
        && lim.current.is_some_and(|c| c < max)
    {
        let mut raised = lim;
        raised.current = Some(max);
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

/// Heard `list_changed` notifications: `(stream index, when)`.
type Heard = mpsc::UnboundedSender<(usize, Instant)>;

fn watch_stream(
    tasks: &mut JoinSet<()>,
    idx: usize,
    body: Incoming,
    conn: Conn,
    heard: Heard,
    lost: Arc<AtomicUsize>,
) {
    tasks.spawn(async move {
        // `conn` keeps the connection's sender alive while the stream is read.
        let _conn = conn;
        let mut body = body;
        let mut dec = Decoder::new(MAX_EVENT_BYTES);
        while let Ok(Some(chunk)) = next_chunk(&mut body).await {
            let Ok(events) = dec.feed(&chunk) else { break };
            let at = Instant::now();
            for ev in events {
                if ev.event_type() != "message" || ev.data.is_empty() {
                    continue;
                }
                if let Ok(Message::Notification(n)) = Message::from_str(&ev.data)
                    && n.method == mcp_hub_protocol::methods::TOOLS_LIST_CHANGED
                {
                    let _ = heard.send((idx, at));
                }
            }
        }
        lost.fetch_add(1, Ordering::Relaxed);
    });
}

/// Every active session calls in a closed loop for the spec's duration.
async fn calls(
    active: Vec<Session>,
    spec: &Arc<RunSpec>,
    pid: u32,
) -> Result<(Vec<Session>, RunReport), LoadgenError> {
    let sampler = RssSampler::start(pid);
    let before = procfs::sample(pid)?;
    let self_before = procfs::sample_self()?;
    let t0 = Instant::now();
    let deadline = spec.duration.map(|d| t0 + d);
    let mut set = JoinSet::new();
    for mut s in active {
        let spec = spec.clone();
        set.spawn(async move {
            let o = workload::measure(&spec, &mut s, deadline).await;
            (s, o)
        });
    }
    let mut back = Vec::new();
    let mut hist = Histogram::default();
    let (mut ok, mut errors, mut first_error, mut end) = (0, 0, None, t0);
    while let Some(j) = set.join_next().await {
        let (s, o) = j.map_err(|e| LoadgenError::Protocol(format!("session task: {e}")))?;
        back.push(s);
        hist.merge(&o.hist);
        ok += o.ok;
        errors += o.errors;
        first_error = first_error.or(o.first_error);
        end = end.max(o.end);
    }
    let elapsed = end.duration_since(t0).as_secs_f64();
    let after = procfs::sample(pid)?;
    let self_after = procfs::sample_self()?;
    let hub = workload::usage(pid, &before, &after, ok, sampler.max_kb());
    Ok((
        back,
        RunReport {
            transport: TransportKind::Streamable,
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
            hub: Some(hub),
            loadgen_cpu_s: self_after.cpu_s - self_before.cpu_s,
        },
    ))
}

fn nofile_soft(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

pub(crate) async fn crowd(spec: CrowdSpec) -> Result<CrowdReport, LoadgenError> {
    if spec.active == 0 || spec.active > spec.sessions {
        return Err(LoadgenError::Usage(
            "--active must be between 1 and --sessions".into(),
        ));
    }
    raise_nofile();
    let target = vec![spec.url.clone()];
    let run = Arc::new(RunSpec {
        transport: TransportKind::Streamable,
        target: target.clone(),
        sessions: spec.active,
        duration: Some(spec.duration),
        calls: None,
        warmup: 0,
        method: "tools/call".into(),
        params: Some(spec.params.clone()),
        expect_tools: None,
        pid: Some(spec.pid),
        timeout: spec.timeout,
    });
    let (heard_tx, mut heard_rx) = mpsc::unbounded_channel();
    let lost = Arc::new(AtomicUsize::new(0));
    let mut streams = JoinSet::new();

    // The active sessions: calls on one connection, the stream on another.
    let mut active = Vec::with_capacity(spec.active);
    for idx in 0..spec.active {
        let mut s = Session::open(TransportKind::Streamable, &target).await?;
        let st = s
            .as_streamable()
            .ok_or_else(|| LoadgenError::Protocol("not a Streamable HTTP session".into()))?;
        let (body, conn) = st.open_get_stream().await?;
        watch_stream(
            &mut streams,
            idx,
            body,
            conn,
            heard_tx.clone(),
            lost.clone(),
        );
        for _ in 0..20 {
            let r = s.request("tools/call", Some(spec.params.clone())).await?;
            workload::check("tools/call", &r.msg, None).map_err(LoadgenError::Protocol)?;
        }
        active.push(s);
    }
    let (active, baseline) = calls(active, &run, spec.pid).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before_kb = procfs::sample(spec.pid)?.vm_rss_kb;

    // The crowd: handshake, then the stream on the same connection.
    let t_open = Instant::now();
    let gate = Arc::new(Semaphore::new(OPENING));
    let mut opening = JoinSet::new();
    for idx in spec.active..spec.sessions {
        let gate = gate.clone();
        let target = target.clone();
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await.ok();
            let s = Session::open(TransportKind::Streamable, &target).await?;
            let st = s
                .into_streamable()
                .ok_or_else(|| LoadgenError::Protocol("not a Streamable HTTP session".into()))?;
            let (body, conn) = st.into_get_stream().await?;
            Ok::<_, LoadgenError>((idx, body, conn))
        });
    }
    while let Some(j) = opening.join_next().await {
        let (idx, body, conn) =
            j.map_err(|e| LoadgenError::Protocol(format!("opening task: {e}")))??;
        watch_stream(
            &mut streams,
            idx,
            body,
            conn,
            heard_tx.clone(),
            lost.clone(),
        );
    }
    let open_s = t_open.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let with_crowd = procfs::sample(spec.pid)?;
    let hub_fds = fd_count(spec.pid);
    let idle = (spec.sessions - spec.active).max(1);
    let rss_per_idle_session_bytes =
        (with_crowd.vm_rss_kb as f64 - rss_before_kb as f64) * 1024.0 / idle as f64;

    let (mut active, loaded) = calls(active, &run, spec.pid).await?;

    // The fan-out: anything heard before the trigger does not count.
    while heard_rx.try_recv().is_ok() {}
    let t0 = Instant::now();
    let trigger = active
        .first_mut()
        .ok_or_else(|| LoadgenError::Usage("no active session".into()))?
        .request("tools/call", Some(spec.trigger.clone()))
        .await?;
    workload::check("tools/call", &trigger.msg, None)
        .map_err(|e| LoadgenError::Protocol(format!("trigger: {e}")))?;
    let mut when: Vec<Option<Duration>> = vec![None; spec.sessions];
    let mut delivered = 0;
    let give_up = tokio::time::Instant::now() + FANOUT_TIMEOUT;
    while delivered < spec.sessions {
        match tokio::time::timeout_at(give_up, heard_rx.recv()).await {
            Ok(Some((idx, at))) => {
                if let Some(slot) = when.get_mut(idx)
                    && slot.is_none()
                {
                    *slot = Some(at.saturating_duration_since(t0));
                    delivered += 1;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let mut times: Vec<Duration> = when.iter().flatten().copied().collect();
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let fanout_p50_ms = times.get(times.len() / 2).map_or(0.0, |d| ms(*d));
    let fanout_all_ms = (delivered == spec.sessions)
        .then(|| times.last().map(|d| ms(*d)))
        .flatten();
    let streams_lost = lost.load(Ordering::Relaxed);
    for s in active {
        s.close().await;
    }
    streams.abort_all();
    Ok(CrowdReport {
        sessions: spec.sessions,
        active: spec.active,
        open_s,
        rss_before_kb,
        rss_after_kb: with_crowd.vm_rss_kb,
        rss_per_idle_session_bytes,
        hub_fds,
        hub_nofile_soft: nofile_soft(spec.pid),
        hub_threads: with_crowd.threads,
        fanout_delivered: delivered,
        fanout_all_ms,
        fanout_p50_ms,
        streams_lost,
        baseline,
        loaded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_limits_and_descriptors_are_read() {
        let pid = std::process::id();
        raise_nofile();
        assert!(nofile_soft(pid).is_some_and(|n| n > 0));
        assert!(fd_count(pid) >= 3);
    }
}
