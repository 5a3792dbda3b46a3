//! Results as JSON lines (one record per measurement, labelled `<workload>/<target>`) and the
//! Markdown tables with ratios that `scripts/bench.sh` prints and docs/BENCHMARKS.md keeps.
//!
//! Labels the tables know: `latency/<t>`, `throughput-<n>/<t>`, `fanin/<t>`, `idle/<t>`, with
//! targets `direct` (the upstream's own Streamable HTTP endpoint), `direct-stdio` (the upstream
//! over its stdin/stdout), `floor` and `floor-http` (the bare relay of `relay`, the upstream as
//! its stdio child or over Streamable HTTP), `rust`, `rust-http` (the hub with the upstream over Streamable HTTP), `rust-legacy`, `node`; and
//! `crowd-<n>/rust` (many idle sessions, see `crowd`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::crowd::CrowdReport;
use crate::startup::{DirectStartReport, StartupReport};
use crate::workload::RunReport;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub label: String,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Body {
    Run(RunReport),
    Startup(StartupReport),
    DirectStart(DirectStartReport),
    Crowd(Box<CrowdReport>),
}

const TARGETS: [&str; 8] = [
    "direct",
    "direct-stdio",
    "floor",
    "floor-http",
    "rust",
    "rust-http",
    "rust-legacy",
    "node",
];

fn split(label: &str) -> (&str, &str) {
    label.rsplit_once('/').unwrap_or((label, ""))
}

struct Book<'a>(&'a [Record]);

impl<'a> Book<'a> {
    /// The last record with this label (a re-run replaces an earlier one).
    fn get(&self, label: &str) -> Option<&'a Body> {
        self.0
            .iter()
            .rev()
            .find(|r| r.label == label)
            .map(|r| &r.body)
    }

    fn run(&self, label: &str) -> Option<&'a RunReport> {
        match self.get(label) {
            Some(Body::Run(r)) => Some(r),
            _ => None,
        }
    }

    fn startup(&self, label: &str) -> Option<&'a StartupReport> {
        match self.get(label) {
            Some(Body::Startup(r)) => Some(r),
            _ => None,
        }
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.1}x", a / b)
    } else {
        "–".into()
    }
}

/// CPU per call, with the kernel's share in parentheses when it was measured.
fn cpu_cell(cpu_s: f64, sys_s: f64, calls: u64) -> String {
    if calls == 0 {
        return "–".into();
    }
    let per = |s: f64| s * 1e6 / calls as f64;
    if sys_s > 0.0 {
        format!("{:.0} ({:.0})", per(cpu_s), per(sys_s))
    } else {
        format!("{:.0}", per(cpu_s))
    }
}

/// The bare relay measured on the same upstream as hub target `t`.
fn floor_of(t: &str) -> &'static str {
    if t == "rust-http" {
        "floor-http"
    } else {
        "floor"
    }
}

/// `; a bare relay: N µs` for a CPU verdict, when the floor was measured.
fn floor_note(floor: Option<f64>) -> String {
    floor.map_or(String::new(), |f| format!("; a bare relay: {f:.0} µs"))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// The hub beside the bare relay on the same upstream (`floor` against `rust` over stdio,
/// `floor-http` against `rust-http`): what its own work adds to latency and CPU per call, with
/// one session and with 32.
fn floor_summary(book: &Book<'_>) -> Option<String> {
    let mut lines = Vec::new();
    for (upstream, floor, hub) in [
        ("stdio upstream", "floor", "rust"),
        ("HTTP upstream", "floor-http", "rust-http"),
    ] {
        for (what, label) in [("one session", "latency"), ("32 sessions", "throughput-32")] {
            let (Some(f), Some(h)) = (
                book.run(&format!("{label}/{floor}")),
                book.run(&format!("{label}/{hub}")),
            ) else {
                continue;
            };
            let (Some(fu), Some(hu)) = (f.hub, h.hub) else {
                continue;
            };
            let per = |s: f64, calls: u64| s * 1e6 / calls.max(1) as f64;
            lines.push(format!(
                "- {upstream}, {what}: the bare relay p50 {:.0} µs, {:.0} µs CPU per call ({:.0} in the kernel); the hub p50 {:.0} µs, {:.0} µs CPU ({:.0} in the kernel): its own work adds {:.0} µs p50 and {:.0} µs CPU per call.",
                f.latency_us.p50,
                per(fu.cpu_s, f.calls),
                per(fu.sys_s, f.calls),
                h.latency_us.p50,
                per(hu.cpu_s, h.calls),
                per(hu.sys_s, h.calls),
                h.latency_us.p50 - f.latency_us.p50,
                per(hu.cpu_s, h.calls) - per(fu.cpu_s, f.calls),
            ));
        }
    }
    if lines.is_empty() {
        return None;
    }
    let mut out = String::from(
        "The floor: a bare relay (`mcp-hub-loadgen relay`: Streamable HTTP in, the same upstream, request ids swapped and nothing else a hub does) against the hub.\n\n",
    );
    out.push_str(&lines.join("\n"));
    out.push_str("\n\n");
    Some(out)
}

/// Renders every table the records allow; absent workloads are left out.
pub(crate) fn render(records: &[Record]) -> String {
    let book = Book(records);
    let mut out = String::new();
    let mut goals: Vec<String> = Vec::new();

    // 1. Sequential latency.
    let lat: Vec<(&str, &RunReport)> = TARGETS
        .iter()
        .filter_map(|t| book.run(&format!("latency/{t}")).map(|r| (*t, r)))
        .collect();
    if !lat.is_empty() {
        let direct = book.run("latency/direct").map(|r| r.latency_us);
        out.push_str("### 1. Latency: sequential `tools/call` (one session)\n\n");
        out.push_str("| target | calls | errors | p50 µs | p90 µs | p99 µs | max µs | added p50 over direct µs | hub CPU µs/call (kernel) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (t, r) in &lat {
            let l = r.latency_us;
            let added = direct.map_or("–".into(), |d| format!("{:.0}", l.p50 - d.p50));
            let cpu = r
                .hub
                .map_or("–".into(), |h| cpu_cell(h.cpu_s, h.sys_s, r.calls));
            let _ = writeln!(
                out,
                "| {t} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {added} | {cpu} |",
                r.calls, r.errors, l.p50, l.p90, l.p99, l.max
            );
        }
        out.push('\n');
        if let (Some(d), Some(rust), Some(node)) =
            (direct, book.run("latency/rust"), book.run("latency/node"))
        {
            let ours = rust.latency_us.p50 - d.p50;
            let theirs = node.latency_us.p50 - d.p50;
            let _ = writeln!(
                out,
                "Added p50: ours {ours:.0} µs, Node {theirs:.0} µs: Node adds {} as much.\n",
                ratio(theirs, ours)
            );
            goals.push(format!(
                "| added p50 ≤ 100 µs | {ours:.0} µs | {} |",
                verdict(ours <= 100.0)
            ));
            goals.push(format!(
                "| added p50 ≤ 1/10 of the Node hub's | {ours:.0} vs {theirs:.0} µs ({}) | {} |",
                // Two decimals: one would show 0.13 as 0.1x beside the verdict "missed".
                if theirs > 0.0 {
                    format!("{:.2}x", ours / theirs)
                } else {
                    "–".into()
                },
                verdict(ours <= theirs / 10.0)
            ));
        }
    }

    if let Some(text) = floor_summary(&book) {
        out.push_str(&text);
    }
    let floor_cpu = |label: &str| {
        book.run(label)
            .and_then(|r| r.hub)
            .map(|h| h.cpu_us_per_call)
    };
    let direct_lat = book.run("latency/direct").map(|r| r.latency_us);
    if let (Some(d), Some(h)) = (direct_lat, book.run("latency/rust-http")) {
        let floor = book.run("latency/floor-http").map_or(String::new(), |f| {
            format!(
                "; a bare relay: {:.0} µs ({})",
                f.latency_us.p50,
                ratio(f.latency_us.p50, d.p50)
            )
        });
        goals.push(format!(
            "| HTTP upstream, 1 session: hub p50 ≤ 2x direct p50 | {:.0} vs {:.0} µs ({}){floor} | {} |",
            h.latency_us.p50,
            d.p50,
            ratio(h.latency_us.p50, d.p50),
            verdict(h.latency_us.p50 <= 2.0 * d.p50)
        ));
    }
    for t in ["rust", "rust-http"] {
        if let Some(cpu) = book
            .run(&format!("latency/{t}"))
            .and_then(|r| r.hub)
            .map(|h| h.cpu_us_per_call)
        {
            goals.push(format!(
                "| hub CPU ≤ 30 µs per call, 1 session ({t}) | {cpu:.0} µs{} | {} |",
                floor_note(floor_cpu(&format!("latency/{}", floor_of(t)))),
                verdict(cpu <= 30.0)
            ));
        }
    }

    // 2. Throughput.
    let mut sessions: Vec<usize> = records
        .iter()
        .filter_map(|r| split(&r.label).0.strip_prefix("throughput-")?.parse().ok())
        .collect();
    sessions.sort_unstable();
    sessions.dedup();
    if !sessions.is_empty() {
        out.push_str(
            "### 2. Throughput: concurrent sessions calling `tools/call` in a closed loop\n\n",
        );
        out.push_str("| sessions | target | calls/s | p50 µs | p99 µs | errors | CPU µs/call: hub (kernel) | upstream | loadgen | cores busy | hub RSS max MB | calls/s vs Node |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for n in &sessions {
            let node = book.run(&format!("throughput-{n}/node"));
            for t in TARGETS {
                let Some(r) = book.run(&format!("throughput-{n}/{t}")) else {
                    continue;
                };
                let per_call = |s: f64| {
                    if r.calls > 0 {
                        format!("{:.0}", s * 1e6 / r.calls as f64)
                    } else {
                        "–".into()
                    }
                };
                let cpu = r
                    .hub
                    .map_or("–".into(), |h| cpu_cell(h.cpu_s, h.sys_s, r.calls));
                let upstream = r.hub.map_or("–".into(), |h| per_call(h.children_cpu_s));
                let loadgen = per_call(r.loadgen_cpu_s);
                let busy = r.loadgen_cpu_s + r.hub.map_or(0.0, |h| h.cpu_s + h.children_cpu_s);
                let busy = if r.elapsed_s > 0.0 {
                    format!("{:.2}", busy / r.elapsed_s)
                } else {
                    "–".into()
                };
                let rss = r.hub.map_or("–".into(), |h| mb(h.rss_max_kb));
                let vs = node.map_or("–".into(), |nd| ratio(r.calls_per_s, nd.calls_per_s));
                let _ = writeln!(
                    out,
                    "| {n} | {t} | {:.0} | {:.0} | {:.0} | {} | {cpu} | {upstream} | {loadgen} | {busy} | {rss} | {vs} |",
                    r.calls_per_s, r.latency_us.p50, r.latency_us.p99, r.errors
                );
            }
        }
        out.push('\n');
        if let (Some(rust), Some(node)) = (
            book.run("throughput-64/rust"),
            book.run("throughput-64/node"),
        ) {
            goals.push(format!(
                "| ≥ 10x the Node hub's calls/s at 64 sessions | {:.0} vs {:.0} calls/s ({}) | {} |",
                rust.calls_per_s,
                node.calls_per_s,
                ratio(rust.calls_per_s, node.calls_per_s),
                verdict(rust.calls_per_s >= 10.0 * node.calls_per_s)
            ));
        }
    }

    if let (Some(d), Some(h)) = (
        book.run("throughput-32/direct"),
        book.run("throughput-32/rust-http"),
    ) {
        let share = |calls_per_s: f64| 100.0 * calls_per_s / d.calls_per_s.max(f64::MIN_POSITIVE);
        let floor = book
            .run("throughput-32/floor-http")
            .map_or(String::new(), |f| {
                format!("; a bare relay: {:.0} %", share(f.calls_per_s))
            });
        goals.push(format!(
            "| HTTP upstream, 32 sessions: ≥ 60 % of direct calls/s | {:.0} vs {:.0} calls/s ({:.0} %){floor} | {} |",
            h.calls_per_s,
            d.calls_per_s,
            share(h.calls_per_s),
            verdict(h.calls_per_s >= 0.6 * d.calls_per_s)
        ));
    }
    for t in ["rust", "rust-http"] {
        if let Some(h) = book.run(&format!("throughput-32/{t}")).and_then(|r| r.hub) {
            goals.push(format!(
                "| hub CPU ≤ 15 µs per call, 32 sessions ({t}) | {:.0} µs{} | {} |",
                h.cpu_us_per_call,
                floor_note(floor_cpu(&format!("throughput-32/{}", floor_of(t)))),
                verdict(h.cpu_us_per_call <= 15.0)
            ));
        }
    }

    // 3. Fan-in.
    let direct_start = match book.get("fanin/direct") {
        Some(Body::DirectStart(d)) => Some(d),
        _ => None,
    };
    let fan: Vec<(&str, &StartupReport)> = ["rust", "node"]
        .iter()
        .filter_map(|t| book.startup(&format!("fanin/{t}")).map(|r| (*t, r)))
        .collect();
    if direct_start.is_some() || !fan.is_empty() {
        // Each upstream's tools, as the baseline counted them (the hubs' rows say what they saw).
        let _ = match direct_start {
            Some(d) if d.upstreams > 0 => writeln!(
                out,
                "### 3. Fan-in: {} stdio upstreams with {} tools each\n",
                d.upstreams,
                d.tools / d.upstreams
            ),
            _ => writeln!(out, "### 3. Fan-in: stdio upstreams\n"),
        };
        if let Some(d) = direct_start {
            let _ = writeln!(
                out,
                "Direct (no hub): {} upstreams spawned at once, each initialized and listed: all ready after {:.1} ms (slowest own start {:.1} ms, median {:.1} ms), {} tools.\n",
                d.upstreams, d.all_ready_ms, d.slowest_own_ms, d.median_own_ms, d.tools
            );
        }
        if !fan.is_empty() {
            out.push_str("| target | spawn → ready ms | spawn → all tools listed ms | behind direct ms | tools | `tools/list` p50 µs | p99 µs | response KB | hub RSS MB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for (t, r) in &fan {
                let behind = direct_start.map_or("–".into(), |d| {
                    format!("{:.1}", r.ready_ms.max(r.all_tools_ms) - d.all_ready_ms)
                });
                let _ = writeln!(
                    out,
                    "| {t} | {:.1} | {:.1} | {behind} | {} | {:.0} | {:.0} | {:.0} | {} |",
                    r.ready_ms,
                    r.all_tools_ms,
                    r.tools,
                    r.list_latency_us.p50,
                    r.list_latency_us.p99,
                    r.list_bytes as f64 / 1024.0,
                    mb(r.hub.vm_rss_kb)
                );
            }
            out.push('\n');
        }
        if let Some(r) = book.startup("fanin/rust") {
            if let Some(d) = direct_start {
                let behind = r.ready_ms.max(r.all_tools_ms) - d.all_ready_ms;
                goals.push(format!(
                    "| {} upstreams ready ≤ 50 ms after the slowest upstream's own start | {behind:.1} ms | {} |",
                    d.upstreams,
                    verdict(behind <= 50.0)
                ));
            }
            goals.push(format!(
                "| `tools/list` of {} tools < 2 ms p50 | {:.2} ms | {} |",
                r.tools,
                r.list_latency_us.p50 / 1000.0,
                verdict(r.list_latency_us.p50 < 2000.0)
            ));
        }
    }

    // 4. Idle footprint.
    let idle: Vec<(&str, &StartupReport)> = ["rust", "node"]
        .iter()
        .filter_map(|t| book.startup(&format!("idle/{t}")).map(|r| (*t, r)))
        .collect();
    if !idle.is_empty() {
        out.push_str("### 4. Idle footprint: 10 stdio upstreams connected, no traffic\n\n");
        out.push_str("| target | RSS MB | peak RSS MB | threads |\n|---|---:|---:|---:|\n");
        for (t, r) in &idle {
            let _ = writeln!(
                out,
                "| {t} | {} | {} | {} |",
                mb(r.hub.vm_rss_kb),
                mb(r.hub.vm_hwm_kb),
                r.hub.threads
            );
        }
        out.push('\n');
        if let (Some(r), Some(n)) = (book.startup("idle/rust"), book.startup("idle/node")) {
            goals.push(format!(
                "| idle RSS ≤ 1/5 of the Node hub's (10 upstreams) | {} vs {} MB ({}) | {} |",
                mb(r.hub.vm_rss_kb),
                mb(n.hub.vm_rss_kb),
                ratio(n.hub.vm_rss_kb as f64, r.hub.vm_rss_kb as f64),
                verdict(r.hub.vm_rss_kb * 5 <= n.hub.vm_rss_kb)
            ));
        }
    }

    crowd_tables(&book, records, &mut out, &mut goals);

    if !goals.is_empty() {
        out.push_str("### Targets\n\n| target | measured | |\n|---|---|---|\n");
        for g in goals {
            out.push_str(&g);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// 5. Crowd: many sessions holding their `GET` stream open.
fn crowd_tables(book: &Book<'_>, records: &[Record], out: &mut String, goals: &mut Vec<String>) {
    let mut labels: Vec<&str> = records
        .iter()
        .filter(|r| matches!(r.body, Body::Crowd(_)))
        .map(|r| r.label.as_str())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.is_empty() {
        return;
    }
    out.push_str("### 5. Crowd: sessions each holding a `GET` stream open\n\n");
    out.push_str("| run | sessions | open s | hub RSS MB before → after | per idle session KB | hub fds (soft limit) | `list_changed` to all ms (p50) | calls p50 µs alone → with the crowd | hub CPU µs/call alone → with |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for label in labels {
        let Some(Body::Crowd(r)) = book.get(label) else {
            continue;
        };
        let cpu = |x: &RunReport| {
            x.hub
                .map_or("–".into(), |h| format!("{:.0}", h.cpu_us_per_call))
        };
        let all = r.fanout_all_ms.map_or(
            format!("{}/{} heard", r.fanout_delivered, r.sessions),
            |ms| format!("{ms:.0}"),
        );
        let _ = writeln!(
            out,
            "| {label} | {} ({} calling) | {:.1} | {} → {} | {:.1} | {} ({}) | {all} ({:.0}) | {:.0} → {:.0} | {} → {} |",
            r.sessions,
            r.active,
            r.open_s,
            mb(r.rss_before_kb),
            mb(r.rss_after_kb),
            r.rss_per_idle_session_bytes / 1024.0,
            r.hub_fds,
            r.hub_nofile_soft.map_or("?".into(), |n| n.to_string()),
            r.fanout_p50_ms,
            r.baseline.latency_us.p50,
            r.loaded.latency_us.p50,
            cpu(&r.baseline),
            cpu(&r.loaded),
        );
        let n = r.sessions;
        goals.push(format!(
            "| {n} sessions: RSS per idle session ≤ 16 KB | {:.1} KB | {} |",
            r.rss_per_idle_session_bytes / 1024.0,
            verdict(r.rss_per_idle_session_bytes <= 16.0 * 1024.0)
        ));
        goals.push(format!(
            "| {n} sessions: `list_changed` to all ≤ 1 s | {} | {} |",
            r.fanout_all_ms
                .map_or("not all delivered".into(), |ms| format!("{ms:.0} ms")),
            verdict(r.fanout_all_ms.is_some_and(|ms| ms <= 1000.0))
        ));
        goals.push(format!(
            "| {n} sessions: calls p50 ≤ 2x without the crowd | {:.0} vs {:.0} µs ({}) | {} |",
            r.loaded.latency_us.p50,
            r.baseline.latency_us.p50,
            ratio(r.loaded.latency_us.p50, r.baseline.latency_us.p50),
            verdict(r.loaded.latency_us.p50 <= 2.0 * r.baseline.latency_us.p50)
        ));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests;
