//! Logs go to stderr (text or JSON), to the log file the Node hub uses (JSON lines, truncated at
//! each start), and to `/api/events` (`log` events).

use std::io::IsTerminal;
use std::path::PathBuf;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::{Args, LogFormat};

/// Installs the global subscriber; returns the log file in use, if one could be opened.
pub(crate) fn init(args: &Args, hub_layer: mcp_hub_core::HubLogLayer) -> Option<PathBuf> {
    init_with(args, hub_layer, false)
}

/// The same, appending to the log file: `mcp-hub stdio` may attach to a hub that writes it.
pub(crate) fn init_appending(args: &Args, hub_layer: mcp_hub_core::HubLogLayer) -> Option<PathBuf> {
    init_with(args, hub_layer, true)
}

fn init_with(args: &Args, hub_layer: mcp_hub_core::HubLogLayer, append: bool) -> Option<PathBuf> {
    let filter = || EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let paths = mcp_hub_core::Paths::from_process();
    let file = paths.as_ref().and_then(|p| {
        let path = p.log_file.clone();
        std::fs::create_dir_all(path.parent()?).ok()?;
        let f = if append {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .ok()?
        } else {
            std::fs::File::create(&path).ok()?
        };
        Some((path, f))
    });
    let (file_path, file_layer) = match file {
        Some((path, f)) => (
            Some(path),
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f))
                    .with_filter(filter()),
            ),
        ),
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(stderr.with_filter(filter()))
        .with(file_layer)
        .with(hub_layer.with_filter(filter()))
        .try_init();
    file_path
}
