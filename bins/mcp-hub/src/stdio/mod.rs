//! `mcp-hub stdio`: the hub as an ordinary stdio MCP server, for desktop clients that only spawn
//! processes.
//!
//! One hub per config: under a lock file (`<state>/mcp-hub/stdio.lock`), the process looks in the
//! workspace cache (`workspaces.json`) for a live hub started with the same config files (the
//! same absolute paths, in the same order) and answering `/api/health`. If there is one, it
//! attaches: its stdin/stdout are relayed to that hub's `/mcp`. If not, it starts the hub itself
//! (HTTP side on `--port`, any free port by default, so the console and other clients can use
//! it; registered in the workspace cache, where the next `mcp-hub stdio` finds it) and relays to
//! its own `/mcp`. Either way the client's session is one Streamable HTTP session, so sampling,
//! elicitation, roots, progress and cancellation flow exactly as through `/mcp`.
//!
//! A process that hosts the hub stops it when its client leaves; the processes attached to it
//! then find (or become) the next hub and resume their sessions there. Nothing but MCP messages
//! is ever written to stdout: logs go to stderr and the log file.

mod relay;
mod stream;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::Args;
use relay::{Outcome, Relay, Target};

/// Longest line accepted on stdin.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// The config files as the hub registers them: absolute and canonical where they exist, so two
/// clients naming the same files differently still share one hub.
pub(crate) fn config_key(files: &[PathBuf]) -> Vec<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    files
        .iter()
        .map(|f| {
            let abs = if f.is_absolute() {
                f.clone()
            } else {
                cwd.join(f)
            };
            std::fs::canonicalize(&abs).unwrap_or(abs)
        })
        .collect()
}

pub(crate) async fn run(args: Args) -> ExitCode {
    if args.config.is_empty() {
        eprintln!("mcp-hub stdio: at least one --config file is required");
        return ExitCode::from(2);
    }
    let files = config_key(&args.config);
    let log_layer = mcp_hub_core::HubLogLayer::new();
    // Held to the end: dropping it writes out the last lines (bounded).
    let _logs = crate::logging::init_appending(&args, log_layer.clone());
    let paths = mcp_hub_core::Paths::from_process();
    let token = args.bearer_tokens().into_iter().next();

    let (out_tx, out_rx) = mpsc::channel::<Bytes>(1024);
    let writer = tokio::spawn(write_stdout(out_rx));
    let (in_tx, mut in_rx) = mpsc::channel::<Value>(64);
    tokio::spawn(read_stdin(in_tx, out_tx.clone()));

    let mut relay = Relay::new(out_tx.clone());
    let mut rounds = 0u32;
    let mut last_round = std::time::Instant::now();
    let code = loop {
        // Only losses in quick succession count toward giving up.
        if last_round.elapsed() > Duration::from_secs(30) {
            rounds = 0;
        }
        last_round = std::time::Instant::now();
        rounds += 1;
        if rounds > 20 {
            tracing::error!(target: "mcp_hub::stdio", "gave up: no hub could be found or started");
            break ExitCode::FAILURE;
        }
        let place =
            match find_or_start(&args, &files, paths.as_ref(), token.clone(), &log_layer).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(target: "mcp_hub::stdio", "{e}");
                    break ExitCode::FAILURE;
                }
            };
        match place {
            Place::Attached(target) => {
                tracing::info!(target: "mcp_hub::stdio", "attached to the running hub at {}", target.base);
                let outcome = tokio::select! {
                    o = relay.run(&target, &mut in_rx, CancellationToken::new()) => o,
                    r = crate::signals() => {
                        tracing::info!(target: "mcp_hub::stdio", "stopping ({r})");
                        Outcome::ClientClosed
                    }
                };
                if outcome == Outcome::ClientClosed {
                    break ExitCode::SUCCESS;
                }
                // Let the hub that went away finish leaving the workspace cache.
                tokio::time::sleep(Duration::from_millis(100 * u64::from(rounds.min(10)))).await;
            }
            Place::Host(hub, target) => {
                tracing::info!(target: "mcp_hub::stdio", "serving this session; the hub's HTTP side (console: {}/ui) stays on for other clients", target.base);
                let lost = CancellationToken::new();
                let outcome = tokio::select! {
                    o = relay.run(&target, &mut in_rx, lost.clone()) => Some(o),
                    r = crate::signals() => {
                        tracing::info!(target: "mcp_hub::stdio", "stopping ({r})");
                        None
                    }
                    _ = hub.exit_requested() => {
                        lost.cancel();
                        Some(Outcome::HubLost)
                    }
                };
                hub.shutdown().await;
                match outcome {
                    Some(Outcome::HubLost) => {
                        // The relay was interrupted; what it had in flight died with the hub.
                        relay.lost();
                        continue;
                    }
                    _ => break ExitCode::SUCCESS,
                }
            }
        }
    };
    drop(relay);
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    code
}

enum Place {
    /// Another process runs the hub.
    Attached(Target),
    /// This process runs it.
    Host(mcp_hub_core::HubHandle, Target),
}

/// Holds the stdio lock file (released on drop), so that two clients starting at once do not
/// both start a hub.
struct StartLock(Option<std::fs::File>);

impl Drop for StartLock {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            let _ = f.unlock();
        }
    }
}

async fn take_lock(paths: Option<&mcp_hub_core::Paths>) -> StartLock {
    let Some(p) = paths else {
        return StartLock(None);
    };
    let file = p.workspaces_file.with_file_name("stdio.lock");
    let locked = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&file)?;
        f.lock()?;
        Ok(f)
    })
    .await;
    match locked {
        Ok(Ok(f)) => StartLock(Some(f)),
        Ok(Err(e)) => {
            tracing::warn!(target: "mcp_hub::stdio", "cannot take the stdio lock: {e}");
            StartLock(None)
        }
        Err(_) => StartLock(None),
    }
}

async fn find_or_start(
    args: &Args,
    files: &[PathBuf],
    paths: Option<&mcp_hub_core::Paths>,
    token: Option<String>,
    log_layer: &mcp_hub_core::HubLogLayer,
) -> Result<Place, String> {
    let _lock = take_lock(paths).await;
    if let Some(p) = paths
        && let Some(port) = find_running(&p.workspaces_file, files).await
    {
        return Ok(Place::Attached(Target {
            base: format!("http://127.0.0.1:{port}"),
            token,
        }));
    }
    let mut builder = mcp_hub_core::Hub::builder()
        .host(args.host)
        .port(args.port.unwrap_or(0))
        .watch(args.watch)
        .log_events(log_layer.sender())
        .redactor(log_layer.redactor())
        .registry_options(mcp_hub_core::registry::RegistryOptions {
            max_list_items: args.max_list_items,
            ..Default::default()
        });
    for f in files {
        builder = builder.config_file(f);
    }
    for t in args.bearer_tokens() {
        builder = builder.bearer_token(t);
    }
    for h in &args.allowed_host {
        builder = builder.allowed_host(h.clone());
    }
    if let Some(paths) = paths {
        let registry_url = std::env::var("MCP_HUB_MARKETPLACE_URL")
            .unwrap_or_else(|_| mcp_hub_core::DEFAULT_REGISTRY_URL.to_owned());
        builder = builder
            .oauth_store(paths.oauth_file.clone())
            .workspace_cache(paths.workspaces_file.clone())
            .marketplace(paths.marketplace_cache.clone(), registry_url);
    }
    let hub = builder.start().await.map_err(|e| e.to_string())?;
    let addr = hub.local_addr();
    // The hub listens on `host`; the relay reaches it on loopback unless it is bound elsewhere.
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    Ok(Place::Host(
        hub,
        Target {
            base: format!("http://{ip}:{}", addr.port()),
            token,
        },
    ))
}

/// The port of a live hub started with exactly these config files, if the workspace cache
/// knows one that answers its health route.
async fn find_running(cache_file: &Path, files: &[PathBuf]) -> Option<u16> {
    let cache = mcp_hub_core::WorkspaceCache::new(cache_file.to_path_buf());
    let all = cache.read_all().await.ok()?;
    let want: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let mut ports: Vec<u16> = all
        .as_object()?
        .iter()
        .filter(|(_, e)| {
            e.get("state").and_then(Value::as_str) != Some("shutting_down")
                && e.get("config_files")
                    .and_then(Value::as_array)
                    .is_some_and(|fs| {
                        // A hub started by hand may have registered relative paths: they are
                        // relative to its working directory.
                        let cwd = Path::new(e.get("cwd").and_then(Value::as_str).unwrap_or("/"));
                        let have: Vec<String> = fs
                            .iter()
                            .filter_map(Value::as_str)
                            .map(|f| {
                                let p = cwd.join(f);
                                std::fs::canonicalize(&p).unwrap_or(p).display().to_string()
                            })
                            .collect();
                        have == want
                    })
        })
        .filter_map(|(port, e)| {
            e.get("port")
                .and_then(Value::as_u64)
                .or_else(|| port.parse().ok())
                .and_then(|p| u16::try_from(p).ok())
        })
        .collect();
    ports.sort_unstable();
    for port in ports {
        if healthy(port).await {
            return Some(port);
        }
    }
    None
}

async fn healthy(port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/api/health");
    let Ok(req) = http::Request::get(&url).body(http_body_util::Full::new(Bytes::new())) else {
        return false;
    };
    match mcp_hub_core::transport::HttpClient::shared()
        .send(req, Duration::from_secs(3))
        .await
    {
        Ok((parts, body)) => {
            parts.status.is_success()
                && serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("status").and_then(Value::as_str).map(|s| s == "ok"))
                    .unwrap_or(false)
        }
        Err(_) => false,
    }
}

/// Reads newline-delimited JSON-RPC from stdin. A line that is not JSON is answered with a parse
/// error at once; an overlong line is skipped whole and answered the same way.
async fn read_stdin(tx: mpsc::Sender<Value>, out: mpsc::Sender<Bytes>) {
    let mut r = BufReader::with_capacity(64 * 1024, stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut overlong = false;
        let mut eof = false;
        loop {
            let buf = match r.fill_buf().await {
                Ok(b) => b,
                Err(_) => {
                    eof = true;
                    break;
                }
            };
            if buf.is_empty() {
                eof = true;
                break;
            }
            let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..=i], true),
                None => (buf, false),
            };
            if line.len() + chunk.len() > MAX_LINE {
                overlong = true;
            } else if !overlong {
                line.extend_from_slice(chunk);
            }
            let n = chunk.len();
            r.consume(n);
            if done {
                break;
            }
        }
        if overlong {
            let _ = out
                .send(relay::error_line(
                    None,
                    -32700,
                    &format!("Parse error: line longer than {MAX_LINE} bytes"),
                ))
                .await;
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(&line) {
                Ok(v) => {
                    if tx.send(v).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = out
                        .send(relay::error_line(
                            None,
                            -32700,
                            &format!("Parse error: {e}"),
                        ))
                        .await;
                }
            }
        }
        if eof {
            return;
        }
    }
}

/// stdin through the reactor when it is a pipe (what an MCP client gives a stdio server):
/// `tokio::io::stdin()` hands every read to the blocking thread pool, a thread hop and a wake-up
/// per read. Anything else (a file, a terminal) falls back to it.
fn stdin() -> std::pin::Pin<Box<dyn AsyncRead + Send>> {
    use std::os::fd::AsFd;
    let piped = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| tokio::net::unix::pipe::Receiver::from_file(std::fs::File::from(fd)));
    match piped {
        Ok(r) => Box::pin(r),
        Err(_) => Box::pin(tokio::io::stdin()),
    }
}

/// stdout through the reactor when it is a pipe (see [`stdin`]), buffered: what is queued goes
/// out in one write.
fn stdout() -> tokio::io::BufWriter<std::pin::Pin<Box<dyn AsyncWrite + Send>>> {
    use std::os::fd::AsFd;
    let piped = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| tokio::net::unix::pipe::Sender::from_file(std::fs::File::from(fd)));
    let w: std::pin::Pin<Box<dyn AsyncWrite + Send>> = match piped {
        Ok(w) => Box::pin(w),
        Err(_) => Box::pin(tokio::io::stdout()),
    };
    tokio::io::BufWriter::with_capacity(64 * 1024, w)
}

/// The only writer of stdout: one message per line.
async fn write_stdout(mut rx: mpsc::Receiver<Bytes>) {
    let mut out = stdout();
    while let Some(line) = rx.recv().await {
        if out.write_all(&line).await.is_err() || out.write_all(b"\n").await.is_err() {
            return;
        }
        if rx.is_empty() && out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
}
