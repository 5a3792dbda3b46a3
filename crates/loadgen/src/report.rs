//! Results as JSON lines (one record per measurement, labelled `<workload>/<target>`) and the
//! Markdown tables with ratios that `scripts/bench.sh` prints and docs/BENCHMARKS.md keeps.
//!
//! Labels the tables know: `latency/<t>`, `throughput-<n>/<t>`, `fanin/<t>`, `idle/<t>`, with
//! targets `direct` (the upstream's own Streamable HTTP endpoint), `direct-stdio` (the upstream
//! over its stdin/stdout), `rust`, `rust-legacy`, `node`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::workload::{DirectStartReport, RunReport, StartupReport};

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
}

const TARGETS: [&str; 5] = ["direct", "direct-stdio", "rust", "rust-legacy", "node"];

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

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
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
        out.push_str("| target | calls | errors | p50 µs | p90 µs | p99 µs | max µs | added p50 over direct µs | hub CPU µs/call |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (t, r) in &lat {
            let l = r.latency_us;
            let added = direct.map_or("–".into(), |d| format!("{:.0}", l.p50 - d.p50));
            let cpu = r
                .hub
                .map_or("–".into(), |h| format!("{:.0}", h.cpu_us_per_call));
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
                ratio(ours, theirs),
                verdict(ours <= theirs / 10.0)
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
        out.push_str("| sessions | target | calls/s | p50 µs | p99 µs | errors | CPU µs/call: hub | upstream | loadgen | cores busy | hub RSS max MB | calls/s vs Node |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
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
                let cpu = r.hub.map_or("–".into(), |h| per_call(h.cpu_s));
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
        out.push_str("### 3. Fan-in: stdio upstreams with 100 tools each\n\n");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::TransportKind;
    use crate::procfs::ProcSample;
    use crate::workload::{HubUsage, Latency};

    fn run(calls_per_s: f64, p50: f64) -> Body {
        Body::Run(RunReport {
            transport: TransportKind::Streamable,
            method: "tools/call".into(),
            sessions: 1,
            calls: 100,
            errors: 0,
            first_error: None,
            elapsed_s: 1.0,
            calls_per_s,
            latency_us: Latency {
                p50,
                ..Latency::default()
            },
            hub: Some(HubUsage::default()),
            loadgen_cpu_s: 0.0,
        })
    }

    fn idle(rss: u64) -> Body {
        Body::Startup(StartupReport {
            ready_ms: 10.0,
            all_tools_ms: 12.0,
            tools: 5000,
            list_calls: 10,
            list_latency_us: Latency {
                p50: 900.0,
                ..Latency::default()
            },
            list_bytes: 1 << 20,
            hub: ProcSample {
                vm_rss_kb: rss,
                ..ProcSample::default()
            },
            hub_pid: 1,
        })
    }

    fn rec(label: &str, body: Body) -> Record {
        Record {
            label: label.into(),
            body,
        }
    }

    #[test]
    fn ratios_and_verdicts() {
        let records = vec![
            rec("latency/direct", run(0.0, 100.0)),
            rec("latency/rust", run(0.0, 150.0)),
            rec("latency/node", run(0.0, 1100.0)),
            rec("throughput-64/rust", run(30_000.0, 1.0)),
            rec("throughput-64/node", run(2_000.0, 1.0)),
            rec("idle/rust", idle(10_000)),
            rec("idle/node", idle(80_000)),
            rec(
                "fanin/direct",
                Body::DirectStart(DirectStartReport {
                    upstreams: 50,
                    all_ready_ms: 40.0,
                    slowest_own_ms: 30.0,
                    median_own_ms: 10.0,
                    tools: 5000,
                }),
            ),
            rec("fanin/rust", idle(20_000)),
        ];
        let md = render(&records);
        assert!(md.contains("Node adds 20.0x as much"), "{md}");
        assert!(md.contains("| added p50 ≤ 100 µs | 50 µs | met |"), "{md}");
        assert!(md.contains("(15.0x) | met |"), "{md}");
        assert!(md.contains("| 64 | node | 2000 |"), "{md}");
        assert!(
            md.contains("| 64 | rust | 30000 | 1 | 0 | 0 | 0 | 0 | 0 | 0.00 | 0.0 | 15.0x |"),
            "{md}"
        );
        assert!(md.contains("(8.0x) | met |"), "{md}");
        assert!(md.contains("| 50 upstreams ready ≤ 50 ms after the slowest upstream's own start | -28.0 ms | met |"), "{md}");
        assert!(md.contains("0.90 ms | met"), "{md}");
        // The latest record for a label wins.
        let mut again = records;
        again.push(rec("latency/rust", run(0.0, 300.0)));
        assert!(render(&again).contains("| added p50 ≤ 100 µs | 200 µs | **missed** |"));
    }

    #[test]
    fn records_roundtrip_as_json_lines() {
        let r = rec("throughput-16/node", run(5.0, 2.0));
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""kind":"run""#));
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back.label, "throughput-16/node");
        assert!(matches!(back.body, Body::Run(ref b) if b.calls_per_s == 5.0));
    }
}
