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
    assert!(
        md.contains("| added p50 ≤ 1/10 of the Node hub's | 50 vs 1000 µs (0.05x) | met |"),
        "{md}"
    );
    assert!(md.contains("(15.0x) | met |"), "{md}");
    assert!(md.contains("| 64 | node | 2000 |"), "{md}");
    assert!(
        md.contains("| 64 | rust | 30000 | 1 | 0 | 0 | 0 | 0 | 0 | 0.00 | 0.0 | 15.0x |"),
        "{md}"
    );
    assert!(md.contains("(8.0x) | met |"), "{md}");
    assert!(
        md.contains(
            "| 50 upstreams ready ≤ 50 ms after the slowest upstream's own start | -28.0 ms | met |"
        ),
        "{md}"
    );
    assert!(md.contains("0.90 ms | met"), "{md}");
    // The heading counts what the baseline listed, not what the script asked for.
    assert!(
        md.contains("### 3. Fan-in: 50 stdio upstreams with 100 tools each\n"),
        "{md}"
    );
    // The latest record for a label wins.
    let mut again = records;
    again.push(rec("latency/rust", run(0.0, 300.0)));
    assert!(render(&again).contains("| added p50 ≤ 100 µs | 200 µs | **missed** |"));
}

#[test]
fn http_upstream_and_crowd_verdicts() {
    let report = |b: Body| match b {
        Body::Run(r) => r,
        _ => unreachable!(),
    };
    let records = vec![
        rec("latency/direct", run(0.0, 100.0)),
        rec("latency/rust-http", run(0.0, 250.0)),
        rec("throughput-32/direct", run(10_000.0, 1.0)),
        rec("throughput-32/rust-http", run(6_500.0, 1.0)),
        rec(
            "crowd-10000/rust",
            Body::Crowd(Box::new(CrowdReport {
                sessions: 10_000,
                active: 256,
                open_s: 12.0,
                rss_before_kb: 20_000,
                rss_after_kb: 170_000,
                rss_per_idle_session_bytes: 15_760.0,
                hub_fds: 10_300,
                hub_nofile_soft: Some(20_000),
                hub_threads: 3,
                fanout_delivered: 9_999,
                fanout_all_ms: None,
                fanout_p50_ms: 300.0,
                streams_lost: 0,
                baseline: report(run(1_000.0, 1_000.0)),
                loaded: report(run(800.0, 2_500.0)),
            })),
        ),
    ];
    let md = render(&records);
    assert!(md.contains("| HTTP upstream, 1 session: hub p50 ≤ 2x direct p50 | 250 vs 100 µs (2.5x) | **missed** |"), "{md}");
    assert!(md.contains("| HTTP upstream, 32 sessions: ≥ 60 % of direct calls/s | 6500 vs 10000 calls/s (65 %) | met |"), "{md}");
    assert!(
        md.contains("| 10000 sessions: RSS per idle session ≤ 16 KB | 15.4 KB | met |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| 10000 sessions: `list_changed` to all ≤ 1 s | not all delivered | **missed** |"
        ),
        "{md}"
    );
    assert!(md.contains("(2.5x) | **missed** |"), "{md}");
    assert!(md.contains("| crowd-10000/rust | 10000 (256 calling) | 12.0 | 19.5 → 166.0 | 15.4 | 10300 (20000) | 9999/10000 heard (300) | 1000 → 2500 | 0 → 0 |"), "{md}");
}

#[test]
fn the_floor_is_set_beside_the_hub_with_the_kernels_share() {
    let with_cpu = |rate: f64, p50: f64, cpu_s: f64, sys_s: f64| {
        let Body::Run(mut r) = run(rate, p50) else {
            unreachable!()
        };
        r.hub = Some(HubUsage {
            cpu_s,
            sys_s,
            cpu_us_per_call: cpu_s * 1e6 / r.calls as f64,
            ..HubUsage::default()
        });
        Body::Run(r)
    };
    let records = vec![
        rec("latency/floor", with_cpu(1_000.0, 110.0, 0.0056, 0.0048)),
        rec("latency/rust", with_cpu(1_000.0, 165.0, 0.0103, 0.0056)),
        rec(
            "throughput-32/floor",
            with_cpu(1_000.0, 600.0, 0.0016, 0.0011),
        ),
        rec(
            "throughput-32/rust",
            with_cpu(1_000.0, 770.0, 0.0027, 0.0011),
        ),
        rec("latency/direct", with_cpu(1_000.0, 100.0, 0.0, 0.0)),
        rec(
            "latency/floor-http",
            with_cpu(1_000.0, 180.0, 0.0080, 0.0060),
        ),
        rec(
            "latency/rust-http",
            with_cpu(1_000.0, 250.0, 0.0150, 0.0080),
        ),
        rec("throughput-32/direct", with_cpu(10_000.0, 900.0, 0.0, 0.0)),
        rec(
            "throughput-32/floor-http",
            with_cpu(7_000.0, 1_100.0, 0.0025, 0.0015),
        ),
        rec(
            "throughput-32/rust-http",
            with_cpu(5_500.0, 1_500.0, 0.0050, 0.0016),
        ),
    ];
    let md = render(&records);
    assert!(md.contains("| floor | 100 | 0 | 110 |"), "{md}");
    assert!(md.contains("| 56 (48) |"), "{md}");
    assert!(
        md.contains("| 32 | rust | 1000 | 770 | 0 | 0 | 27 (11) |"),
        "{md}"
    );
    assert!(md.contains("- stdio upstream, one session: the bare relay p50 110 µs, 56 µs CPU per call (48 in the kernel); the hub p50 165 µs, 103 µs CPU (56 in the kernel): its own work adds 55 µs p50 and 47 µs CPU per call."), "{md}");
    assert!(
        md.contains(
            "32 sessions: the bare relay p50 600 µs, 16 µs CPU per call (11 in the kernel)"
        ),
        "{md}"
    );
    assert!(md.contains("| hub CPU ≤ 30 µs per call, 1 session (rust) | 103 µs; a bare relay: 56 µs | **missed** |"), "{md}");
    assert!(md.contains("| hub CPU ≤ 15 µs per call, 32 sessions (rust) | 27 µs; a bare relay: 16 µs | **missed** |"), "{md}");
    assert!(md.contains("| hub CPU ≤ 15 µs per call, 32 sessions (rust-http) | 50 µs; a bare relay: 25 µs | **missed** |"), "{md}");
    assert!(md.contains("- HTTP upstream, one session: the bare relay p50 180 µs, 80 µs CPU per call (60 in the kernel); the hub p50 250 µs, 150 µs CPU (80 in the kernel): its own work adds 70 µs p50 and 70 µs CPU per call."), "{md}");
    assert!(md.contains("| HTTP upstream, 1 session: hub p50 ≤ 2x direct p50 | 250 vs 100 µs (2.5x); a bare relay: 180 µs (1.8x) | **missed** |"), "{md}");
    assert!(md.contains("| HTTP upstream, 32 sessions: ≥ 60 % of direct calls/s | 5500 vs 10000 calls/s (55 %); a bare relay: 70 % | **missed** |"), "{md}");
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
