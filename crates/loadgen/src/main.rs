//! `mcp-hub-loadgen`: the load generator of the hub's benchmarks (`scripts/bench.sh`,
//! `scripts/bench-smoke.sh`, docs/BENCHMARKS.md). It speaks MCP like a real client over
//! Streamable HTTP, legacy HTTP+SSE (the Node hub's `/mcp`) or stdio, drives closed-loop sessions
//! and reports calls/s and latency percentiles from an HDR-style histogram, plus the measured
//! process's CPU time, RSS and threads from /proc.
//!
//! Owns: the workloads, their measurement and the result tables. Must not know: the hub's
//! internals; it only sees the wire and /proc, so the same run measures any MCP server or hub.

mod client;
mod crowd;
mod error;
mod hist;
mod http;
mod procfs;
mod relay;
mod report;
mod startup;
mod workload;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::client::TransportKind;
use crate::error::LoadgenError;
use crate::report::{Body, Record};

#[derive(Debug, Parser)]
#[command(
    name = "mcp-hub-loadgen",
    version,
    about = "Load generator for MCP hubs and servers"
)]
struct Cli {
    /// Runtime worker threads of the load generator (it shares the machine with what it
    /// measures).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Args)]
struct Output {
    /// Name of this measurement, `<workload>/<target>` (see `report`).
    #[arg(long, default_value = "run")]
    label: String,
    /// Append the result as one JSON line to this file (it is always printed on stdout too).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Sessions calling a method in a closed loop, for a duration or a number of calls.
    Run {
        #[arg(long, value_enum, default_value = "streamable")]
        transport: TransportKind,
        /// The endpoint URL (`http://127.0.0.1:PORT/mcp`) for HTTP transports.
        #[arg(long, required_unless_present = "command")]
        url: Option<String>,
        /// Concurrent sessions, each on its own connection.
        #[arg(long, default_value_t = 1)]
        sessions: usize,
        /// Measure for this many seconds.
        #[arg(long, conflicts_with = "calls")]
        duration: Option<f64>,
        /// Or this many calls per session.
        #[arg(long)]
        calls: Option<u64>,
        /// Unmeasured calls per session before the start.
        #[arg(long, default_value_t = 20)]
        warmup: u64,
        /// `tools/call` or `tools/list` (any method; params from --arguments for tools/call).
        #[arg(long, default_value = "tools/call")]
        method: String,
        /// The tool for tools/call.
        #[arg(long, default_value = "echo")]
        tool: String,
        /// The tool's arguments, JSON.
        #[arg(long, default_value = r#"{"text":"hello"}"#)]
        arguments: String,
        /// For tools/list: fail calls that do not list exactly this many tools.
        #[arg(long)]
        expect_tools: Option<usize>,
        /// The hub's process id, to report its CPU time, RSS and threads.
        #[arg(long)]
        pid: Option<u32>,
        /// Per-call timeout, seconds.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        #[command(flatten)]
        output: Output,
        /// For `--transport stdio`: the server command line.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Waits until a hub at BASE reports `hub_state` `ready` on /api/events.
    WaitReady {
        #[arg(long)]
        base: String,
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Spawns a hub (the command after --), times it to ready and to a complete catalogue,
    /// measures tools/list and its idle footprint, and stops it.
    Startup {
        /// The hub's base URL (`http://127.0.0.1:PORT`).
        #[arg(long)]
        base: String,
        /// Its MCP endpoint.
        #[arg(long)]
        mcp_url: String,
        #[arg(long, value_enum, default_value = "streamable")]
        transport: TransportKind,
        /// Tools the complete catalogue has.
        #[arg(long)]
        expect_tools: usize,
        /// Sequential tools/list calls to measure.
        #[arg(long, default_value_t = 200)]
        list_calls: u64,
        /// Seconds without traffic before the footprint is read.
        #[arg(long, default_value_t = 2.0)]
        idle: f64,
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
        /// Where the hub's stdout and stderr go (default: discarded).
        #[arg(long)]
        log: Option<PathBuf>,
        #[command(flatten)]
        output: Output,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Spawns N stdio servers at once (the command after --), initializes and lists each: the
    /// hub-less baseline of the fan-in workload.
    DirectStart {
        #[arg(long)]
        upstreams: usize,
        #[command(flatten)]
        output: Output,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Many sessions on one hub, each holding its GET stream open: the hub's RSS per idle
    /// session, the delivery of a `tools/list_changed` to all of them, and calls from a few of
    /// them with and without the crowd.
    Crowd {
        /// The hub's MCP endpoint.
        #[arg(long)]
        url: String,
        /// Sessions in all, each with an open GET stream.
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// Of which this many call in a closed loop.
        #[arg(long, default_value_t = 256)]
        active: usize,
        /// Seconds of calls, once without the crowd and once with it.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// The tool the active sessions call.
        #[arg(long, default_value = "fx__echo")]
        tool: String,
        #[arg(long, default_value = r#"{"text":"hello"}"#)]
        arguments: String,
        /// A tool whose call changes the upstream's tool list (the fixture's
        /// `test_trigger_tool_change`, namespaced by the hub).
        #[arg(long, default_value = "fx__test_trigger_tool_change")]
        trigger_tool: String,
        /// The hub's process id.
        #[arg(long)]
        pid: u32,
        /// Per-call timeout, seconds.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        #[command(flatten)]
        output: Output,
    },
    /// A bare relay (see `relay`) from Streamable HTTP to the stdio server after -- or to the
    /// Streamable HTTP server at --url: the floor under any hub's cost per call on this machine.
    /// Prints `listening on ADDR`.
    Relay {
        /// Port on 127.0.0.1 (0: any free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The upstream's Streamable HTTP endpoint, instead of a stdio command.
        #[arg(long, conflicts_with = "command", required_unless_present = "command")]
        url: Option<String>,
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Prints a free TCP port on 127.0.0.1.
    FreePort,
    /// Prints the Markdown tables (with ratios and target verdicts) of a JSON-lines result file.
    Report { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-hub-loadgen: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcp-hub-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn secs(s: f64) -> Result<Duration, LoadgenError> {
    Duration::try_from_secs_f64(s).map_err(|e| LoadgenError::Usage(format!("{s} seconds: {e}")))
}

async fn dispatch(cmd: Cmd) -> Result<ExitCode, LoadgenError> {
    match cmd {
        Cmd::Run {
            transport,
            url,
            sessions,
            duration,
            calls,
            warmup,
            method,
            tool,
            arguments,
            expect_tools,
            pid,
            timeout,
            output,
            command,
        } => {
            let target = match (transport, url) {
                (TransportKind::Stdio, _) => command,
                (_, Some(url)) => vec![url],
                (_, None) => return Err(LoadgenError::Usage("--url is required".into())),
            };
            let params = if method == "tools/call" {
                let args: serde_json::Value = serde_json::from_str(&arguments)
                    .map_err(|e| LoadgenError::Usage(format!("--arguments: {e}")))?;
                Some(
                    mcp_hub_protocol::to_raw(&serde_json::json!({"name": tool, "arguments": args}))
                        .map_err(|e| LoadgenError::Usage(e.to_string()))?,
                )
            } else {
                None
            };
            let report = workload::run(workload::RunSpec {
                transport,
                target,
                sessions,
                duration: duration.map(secs).transpose()?,
                calls,
                warmup,
                method,
                params,
                expect_tools,
                pid,
                timeout: secs(timeout)?,
            })
            .await?;
            let l = report.latency_us;
            eprintln!(
                "{}: {} sessions, {} calls ({} errors) in {:.2} s = {:.0} calls/s; latency µs p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}{}",
                output.label,
                report.sessions,
                report.calls,
                report.errors,
                report.elapsed_s,
                report.calls_per_s,
                l.p50,
                l.p90,
                l.p99,
                l.max,
                report.hub.map_or(String::new(), |h| format!(
                    "; hub {:.0} µs CPU/call, RSS max {} KiB, {} threads",
                    h.cpu_us_per_call, h.rss_max_kb, h.threads
                )),
            );
            if let Some(e) = &report.first_error {
                eprintln!("{}: first error: {e}", output.label);
            }
            let failed = report.errors > 0 || report.calls == 0;
            emit(&output, Body::Run(report))?;
            Ok(if failed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::WaitReady { base, timeout } => {
            startup::wait_ready(&base, secs(timeout)?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Startup {
            base,
            mcp_url,
            transport,
            expect_tools,
            list_calls,
            idle,
            timeout,
            log,
            output,
            command,
        } => {
            let r = startup::startup(startup::StartupSpec {
                base,
                mcp_url,
                transport,
                expect_tools,
                list_calls,
                idle: secs(idle)?,
                timeout: secs(timeout)?,
                command,
                log,
            })
            .await?;
            eprintln!(
                "{}: ready {:.1} ms, {} tools listed at {:.1} ms; tools/list p50 {:.0} µs p99 {:.0} µs ({} KiB); hub RSS {} KiB (peak {}), {} threads",
                output.label,
                r.ready_ms,
                r.tools,
                r.all_tools_ms,
                r.list_latency_us.p50,
                r.list_latency_us.p99,
                r.list_bytes / 1024,
                r.hub.vm_rss_kb,
                r.hub.vm_hwm_kb,
                r.hub.threads
            );
            emit(&output, Body::Startup(r))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::DirectStart {
            upstreams,
            output,
            command,
        } => {
            let r = startup::direct_start(upstreams, command).await?;
            eprintln!(
                "{}: {} upstreams all ready in {:.1} ms (slowest own {:.1} ms, median {:.1} ms), {} tools",
                output.label,
                r.upstreams,
                r.all_ready_ms,
                r.slowest_own_ms,
                r.median_own_ms,
                r.tools
            );
            emit(&output, Body::DirectStart(r))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Crowd {
            url,
            sessions,
            active,
            duration,
            tool,
            arguments,
            trigger_tool,
            pid,
            timeout,
            output,
        } => {
            let args: serde_json::Value = serde_json::from_str(&arguments)
                .map_err(|e| LoadgenError::Usage(format!("--arguments: {e}")))?;
            let raw = |v: serde_json::Value| {
                mcp_hub_protocol::to_raw(&v).map_err(|e| LoadgenError::Usage(e.to_string()))
            };
            let r = crowd::crowd(crowd::CrowdSpec {
                url,
                sessions,
                active,
                duration: secs(duration)?,
                params: raw(serde_json::json!({"name": tool, "arguments": args}))?,
                trigger: raw(serde_json::json!({"name": trigger_tool, "arguments": {}}))?,
                pid,
                timeout: secs(timeout)?,
            })
            .await?;
            eprintln!(
                "{}: {} sessions opened in {:.1} s; hub RSS {} -> {} KiB = {:.0} B per idle session, {} fds (soft limit {}); list_changed to {}/{} streams, p50 {:.0} ms, all {}; calls p50 {:.0} µs alone, {:.0} µs with the crowd ({} + {} errors)",
                output.label,
                r.sessions,
                r.open_s,
                r.rss_before_kb,
                r.rss_after_kb,
                r.rss_per_idle_session_bytes,
                r.hub_fds,
                r.hub_nofile_soft.map_or("?".into(), |n| n.to_string()),
                r.fanout_delivered,
                r.sessions,
                r.fanout_p50_ms,
                r.fanout_all_ms
                    .map_or("never".into(), |ms| format!("{ms:.0} ms")),
                r.baseline.latency_us.p50,
                r.loaded.latency_us.p50,
                r.baseline.errors,
                r.loaded.errors,
            );
            let failed = r.baseline.errors > 0
                || r.loaded.errors > 0
                || r.fanout_all_ms.is_none()
                || r.streams_lost > 0;
            emit(&output, Body::Crowd(Box::new(r)))?;
            Ok(if failed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Relay { port, url, command } => {
            let upstream = match url {
                Some(u) => relay::UpstreamSpec::Url(u),
                None => relay::UpstreamSpec::Command(command),
            };
            relay::serve(port, upstream).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { file } => {
            let text = std::fs::read_to_string(&file)?;
            let mut records = Vec::new();
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let r: Record = serde_json::from_str(line).map_err(|e| {
                    LoadgenError::Usage(format!("{}:{}: {e}", file.display(), n + 1))
                })?;
                records.push(r);
            }
            print!("{}", report::render(&records));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn emit(output: &Output, body: Body) -> Result<(), LoadgenError> {
    let record = Record {
        label: output.label.clone(),
        body,
    };
    let line = serde_json::to_string(&record).map_err(|e| LoadgenError::Protocol(e.to_string()))?;
    println!("{line}");
    if let Some(path) = &output.out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}
