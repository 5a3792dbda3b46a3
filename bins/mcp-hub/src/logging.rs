//! Logs go to stderr (text or JSON), to the log file the Node hub uses (JSON lines, truncated at
//! each start, private, rotated and capped), and to `/api/events` (`log` events). Writing a log
//! line never blocks the hub: see [`crate::logsink`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::{Args, LogFormat};
use crate::logsink::{KEEP_ROTATED, MAX_FILE_BYTES, RotatingFile, Sink, Stderr};

/// How long the last lines may take to be written when the hub exits.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

/// The log writers; flushes them (bounded) when dropped at exit.
#[derive(Debug)]
pub(crate) struct Logs {
    /// The log file in use, if one could be opened.
    pub(crate) file: Option<PathBuf>,
    sinks: Vec<Sink>,
}

impl Drop for Logs {
    fn drop(&mut self) {
        for s in &self.sinks {
            s.flush(FLUSH_AT_EXIT);
        }
    }
}

fn now() -> String {
    let mut s = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut s));
    s
}

const DROPPED: &str = "log lines dropped: the log destination did not keep up";

fn text_notice(n: u64) -> Vec<u8> {
    format!("{}  WARN {n} {DROPPED}\n", now()).into_bytes()
}

fn json_notice(n: u64) -> Vec<u8> {
    let mut line = serde_json::json!({
        "timestamp": now(),
        "level": "WARN",
        "fields": {"message": format!("{n} {DROPPED}"), "dropped": n},
        "target": "mcp_hub",
    })
    .to_string();
    line.push('\n');
    line.into_bytes()
}

/// Installs the global subscriber.
pub(crate) fn init(args: &Args, hub_layer: mcp_hub_core::HubLogLayer) -> Logs {
    init_with(args, hub_layer, false)
}

/// The same, appending to the log file (and leaving its rotation to the hub that owns it):
/// `mcp-hub stdio` may attach to a hub that writes it.
pub(crate) fn init_appending(args: &Args, hub_layer: mcp_hub_core::HubLogLayer) -> Logs {
    init_with(args, hub_layer, true)
}

fn init_with(args: &Args, hub_layer: mcp_hub_core::HubLogLayer, append: bool) -> Logs {
    let filter = || EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Every writer scrubs what the servers' placeholders resolved to (see `scrub.rs`), then
    // hands the line to a queue that never blocks (see `logsink.rs`).
    let scrub = |w| crate::scrub::Scrub::new(w, hub_layer.redactor());
    let mut sinks = Vec::new();
    let stderr = match args.log_format {
        LogFormat::Text => {
            let sink = Sink::spawn("stderr", Stderr, text_notice);
            sinks.push(sink.clone());
            tracing_subscriber::fmt::layer()
                .with_writer(scrub(sink))
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false)
                .boxed()
        }
        LogFormat::Json => {
            let sink = Sink::spawn("stderr", Stderr, json_notice);
            sinks.push(sink.clone());
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(scrub(sink))
                .boxed()
        }
    };
    let paths = mcp_hub_core::Paths::from_process();
    let file = paths.as_ref().and_then(|p| {
        let path = p.log_file.clone();
        std::fs::create_dir_all(path.parent()?).ok()?;
        let f = RotatingFile::create(&path, MAX_FILE_BYTES, KEEP_ROTATED, append).ok()?;
        Some((path, f))
    });
    let (file_path, file_layer) = match file {
        Some((path, f)) => {
            let sink = Sink::spawn("file", f, json_notice);
            sinks.push(sink.clone());
            (
                Some(path),
                Some(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_ansi(false)
                        .with_writer(scrub(sink))
                        .with_filter(filter()),
                ),
            )
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(stderr.with_filter(filter()))
        .with(file_layer)
        .with(hub_layer.with_filter(filter()))
        .try_init();
    Logs {
        file: file_path,
        sinks,
    }
}
