//! Call figures per server and tool: calls, errors by kind, latency (the hub's whole handling
//! and the upstream's part), calls in flight, bytes of routed requests, the last connect's
//! duration. The API crate turns them into Prometheus metrics and `/api/servers` summaries.
//!
//! Cheap on the hot path: a server's tools are resolved to their figures through a map that is
//! swapped whole (`arc-swap`) when a tool is first called, so a call costs one hash lookup, no
//! lock and no allocation, then relaxed atomic adds. Only tools of the server's own catalogue
//! get figures (the catalogue resolved the name before these are asked), and names no server
//! lists share one set ([`Observation::unknown`]): a client cannot grow them by inventing
//! names.

mod histogram;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::RouteError;
use crate::sync::lock;
use histogram::Histogram;
pub use histogram::{HistogramSnapshot, LATENCY_BOUNDS};
use mcp_hub_transport::{RequestError, TransportError};

/// Why a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The tool ran and reported an error (`isError: true` in its result).
    Tool,
    /// The server answered with a JSON-RPC error.
    Rpc,
    /// No answer in time.
    Timeout,
    /// The server was not connected, or its connection failed during the call.
    UpstreamDown,
    /// The downstream client went away or cancelled before the answer.
    Cancelled,
    /// Anything else: bad params, no per-session instance to be had, an unknown name.
    Other,
}

impl ErrorKind {
    /// Every kind, in the order of [`CallSnapshot::errors`].
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Tool,
        ErrorKind::Rpc,
        ErrorKind::Timeout,
        ErrorKind::UpstreamDown,
        ErrorKind::Cancelled,
        ErrorKind::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Tool => "tool_error",
            ErrorKind::Rpc => "jsonrpc_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::UpstreamDown => "upstream_down",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Other => "other",
        }
    }

    pub(crate) fn of(e: &RouteError) -> ErrorKind {
        match e {
            RouteError::ServerNotConnected(_) | RouteError::ServerNotFound(_) => {
                ErrorKind::UpstreamDown
            }
            RouteError::Upstream(RequestError::Rpc(_)) => ErrorKind::Rpc,
            RouteError::Upstream(RequestError::Timeout(_)) => ErrorKind::Timeout,
            RouteError::Upstream(
                RequestError::Closed(_)
                | RequestError::Transport(
                    TransportError::Exited { .. }
                    | TransportError::Http(_)
                    | TransportError::Spawn { .. },
                ),
            ) => ErrorKind::UpstreamDown,
            _ => ErrorKind::Other,
        }
    }
}

/// The figures of one tool (or of every unknown name together).
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    calls: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
    in_flight: AtomicI64,
    total: Histogram,
    upstream: Histogram,
}

/// A copy of one tool's figures.
#[derive(Debug, Clone, Default)]
pub struct CallSnapshot {
    /// Calls finished (successful or not).
    pub calls: u64,
    /// Failed calls per [`ErrorKind::ALL`] index.
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Calls in flight now.
    pub in_flight: i64,
    /// The hub's whole handling of each call, from routing to the result ready to send.
    pub total: HistogramSnapshot,
    /// The upstream's part: request written to answer read (calls that reached a server).
    pub upstream: HistogramSnapshot,
}

impl CallSnapshot {
    /// Failed calls of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }

    fn merge(&mut self, o: &CallSnapshot) {
        self.calls += o.calls;
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        self.in_flight += o.in_flight;
        self.total.merge(&o.total);
        self.upstream.merge(&o.upstream);
    }
}

impl CallStats {
    fn snapshot(&self) -> CallSnapshot {
        let mut errors = [0; ErrorKind::ALL.len()];
        for (o, e) in errors.iter_mut().zip(&self.errors) {
            *o = e.load(Ordering::Relaxed);
        }
        CallSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            errors,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            total: self.total.snapshot(),
            upstream: self.upstream.snapshot(),
        }
    }

    /// Starts timing a call; the guard records it when finished, or as cancelled when dropped.
    #[cfg(test)]
    pub(crate) fn start(self: Arc<CallStats>) -> CallGuard {
        self.start_at(Instant::now())
    }

    /// Times a call the hub began handling at `started`.
    pub(crate) fn start_at(self: Arc<CallStats>, started: Instant) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        CallGuard {
            stats: self,
            started,
            done: false,
        }
    }
}

/// One call in flight.
pub(crate) struct CallGuard {
    stats: Arc<CallStats>,
    started: Instant,
    done: bool,
}

impl CallGuard {
    /// The upstream's part of the call took `d`.
    pub(crate) fn upstream(&self, d: Duration) {
        self.stats.upstream.observe(d);
    }

    /// The call ended, with an error of `kind` or none.
    pub(crate) fn finish(mut self, error: Option<ErrorKind>) {
        self.record(error);
    }

    fn record(&mut self, error: Option<ErrorKind>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let s = &self.stats;
        s.in_flight.fetch_sub(1, Ordering::Relaxed);
        s.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(k) = error {
            s.errors[k as usize].fetch_add(1, Ordering::Relaxed);
        }
        s.total.observe(self.started.elapsed());
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        // The caller's future was dropped mid-call: its client went away or cancelled.
        self.record(Some(ErrorKind::Cancelled));
    }
}

/// One server's figures: per tool, bytes of routed requests, the last connect's duration.
#[derive(Default)]
pub(crate) struct ServerCalls {
    tools: ArcSwap<HashMap<Arc<str>, Arc<CallStats>>>,
    adding: Mutex<()>,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    last_connect_micros: AtomicU64,
}

impl std::fmt::Debug for ServerCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCalls").finish_non_exhaustive()
    }
}

impl ServerCalls {
    /// The figures of `tool`, an upstream name the catalogue routed to this server.
    pub(crate) fn tool(&self, tool: &str) -> Arc<CallStats> {
        if let Some(s) = self.tools.load().get(tool) {
            return s.clone();
        }
        // First call of this tool: copy the map with it added (rare: once per tool).
        let _adding = lock(&self.adding);
        let current = self.tools.load_full();
        if let Some(s) = current.get(tool) {
            return s.clone();
        }
        let stats = Arc::new(CallStats::default());
        let mut next = HashMap::clone(&current);
        next.insert(Arc::from(tool), stats.clone());
        self.tools.store(Arc::new(next));
        stats
    }

    /// The figures of `tool` if the server lists it (`tools` gives the list, read only when the
    /// tool has no figures yet).
    pub(crate) fn listed_tool(
        &self,
        tool: &str,
        tools: impl FnOnce() -> crate::ItemList,
    ) -> Option<Arc<CallStats>> {
        if let Some(s) = self.tools.load().get(tool) {
            return Some(s.clone());
        }
        tools()
            .strings("name")
            .any(|n| n == tool)
            .then(|| self.tool(tool))
    }

    /// Forgets the tools not in `keep` (the server's current list), so a server that renames
    /// its tools does not grow the figures without bound.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        let _adding = lock(&self.adding);
        let current = self.tools.load_full();
        if current.keys().all(|k| keep(k)) {
            return;
        }
        let next = current
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.tools.store(Arc::new(next));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tools.load().is_empty()
    }

    pub(crate) fn set_connect_duration(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.last_connect_micros.store(micros, Ordering::Relaxed);
    }

    pub(crate) fn count_bytes(&self, out: usize, back: usize) {
        self.bytes_out.fetch_add(out as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(back as u64, Ordering::Relaxed);
    }

    /// Every tool's figures added up.
    pub(crate) fn summary(&self) -> CallSnapshot {
        let mut all = CallSnapshot::default();
        for t in self.tools.load().values() {
            all.merge(&t.snapshot());
        }
        all
    }

    pub(crate) fn snapshot(&self, server: &str) -> ServerObservation {
        let mut tools: Vec<(Arc<str>, CallSnapshot)> = self
            .tools
            .load()
            .iter()
            .map(|(k, v)| (k.clone(), v.snapshot()))
            .collect();
        tools.sort_by(|a, b| a.0.cmp(&b.0));
        let micros = self.last_connect_micros.load(Ordering::Relaxed);
        ServerObservation {
            server: server.to_owned(),
            tools,
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            last_connect: (micros > 0).then(|| Duration::from_micros(micros)),
        }
    }
}

/// One server's figures at one moment.
#[derive(Debug, Clone)]
pub struct ServerObservation {
    /// The server.
    pub server: String,
    /// Per tool (upstream name), sorted by name; only tools called at least once.
    pub tools: Vec<(Arc<str>, CallSnapshot)>,
    /// Bytes of routed requests' params sent to the server.
    pub bytes_out: u64,
    /// Bytes of the results of routed requests.
    pub bytes_in: u64,
    /// How long the last successful connect took (spawn or connect, `initialize`, listing).
    pub last_connect: Option<Duration>,
}

/// Every server's figures at one moment, and those of the calls to names no server lists.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Per server, in config order.
    pub servers: Vec<ServerObservation>,
    /// Calls of tool names no connected server lists (one label value, whatever the names).
    pub unknown: CallSnapshot,
}

/// Registry-wide figures.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    pub(crate) unknown: Arc<CallStats>,
}

impl Observer {
    pub(crate) fn unknown_snapshot(&self) -> CallSnapshot {
        self.unknown.snapshot()
    }
}

impl crate::Registry {
    /// Every server's call figures, and those of calls to unknown tool names.
    pub fn observe(&self) -> Observation {
        let states: Vec<(String, Arc<crate::state::ServerState>)> = lock(&self.inner.servers)
            .iter()
            .map(|(n, s)| (n.clone(), s.state.clone()))
            .collect();
        Observation {
            servers: states.iter().map(|(n, s)| s.calls.snapshot(n)).collect(),
            unknown: self.inner.observer.unknown_snapshot(),
        }
    }

    /// One server's call figures.
    pub fn observe_server(&self, name: &str) -> Option<ServerObservation> {
        let state = lock(&self.inner.servers)
            .get(name)
            .map(|s| s.state.clone())?;
        Some(state.calls.snapshot(name))
    }
}

/// Forgets the figures of a connected server's tools that it no longer lists (called at each
/// catalogue build).
pub(crate) fn forget_unlisted(state: &crate::state::ServerState) {
    if state.calls.is_empty() {
        return;
    }
    let tools = state.current_tools();
    let names: std::collections::HashSet<String> = tools.strings("name").collect();
    state.calls.retain(|t| names.contains(t));
}

/// Whether a `tools/call` result reports a tool error (`isError: true` at its top level).
/// Reads only that member; the rest is skipped without building values.
pub fn is_tool_error(raw: &str) -> bool {
    // Most results never mention it: a substring search is far cheaper than skipping through a
    // large result's JSON.
    if !raw.contains("\"isError\"") {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "isError", default)]
        is_error: Option<serde_json::Value>,
    }
    serde_json::from_str::<Probe>(raw)
        .ok()
        .and_then(|p| p.is_error)
        .is_some_and(|v| v == serde_json::Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_errors_are_read_from_the_top_level_only() {
        assert!(is_tool_error(r#"{"content":[],"isError":true}"#));
        assert!(is_tool_error(
            r#"{ "isError" : true , "content":[{"type":"text","text":"x"}]}"#
        ));
        assert!(!is_tool_error(r#"{"content":[],"isError":false}"#));
        assert!(!is_tool_error(r#"{"content":[{"isError":true}]}"#));
        assert!(!is_tool_error(
            r#"{"content":[{"type":"text","text":"\"isError\":true"}]}"#
        ));
        assert!(!is_tool_error("not json"));
    }

    #[test]
    fn a_dropped_call_counts_as_cancelled_once() {
        let calls = ServerCalls::default();
        let s = calls.tool("echo");
        let g = s.clone().start();
        assert_eq!(s.snapshot().in_flight, 1);
        drop(g);
        let g = s.clone().start();
        g.finish(None);
        let snap = calls.snapshot("srv");
        assert_eq!(snap.tools.len(), 1);
        let t = &snap.tools[0].1;
        assert_eq!((t.calls, t.in_flight), (2, 0));
        assert_eq!(t.errors[ErrorKind::Cancelled as usize], 1);
        assert_eq!(t.error_count(), 1);
        assert_eq!(t.total.count(), 2);
    }

    #[test]
    fn the_same_tool_shares_its_figures_and_retain_forgets() {
        let calls = ServerCalls::default();
        assert!(Arc::ptr_eq(&calls.tool("a"), &calls.tool("a")));
        calls.tool("b");
        calls.retain(|t| t == "a");
        let snap = calls.snapshot("srv");
        assert_eq!(snap.tools.len(), 1);
        assert_eq!(&*snap.tools[0].0, "a");
    }
}
