//! The `mcp-hub` command: parses the command line (the Node `mcp-hub`'s flags, plus ours) and runs
//! `mcp-hub-core`, or serves one MCP session on stdin/stdout (`mcp-hub stdio`, see `stdio`).

mod check;
mod cli;
mod list;
mod logging;
mod logsink;
mod nofile;
mod scrub;
mod stdio;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if args.version {
        println!("{}", cli::version_line());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-hub: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.command.clone() {
        Some(cli::Command::Check { files }) => check::run(&args, &files),
        Some(cli::Command::List { url, json }) => runtime.block_on(list::run(
            url.unwrap_or_else(|| args.base_url()),
            args.bearer_tokens().into_iter().next(),
            json,
        )),
        Some(cli::Command::Stdio) => runtime.block_on(stdio::run(args)),
        Some(cli::Command::Serve) | None => runtime.block_on(serve(args)),
    }
}

async fn serve(args: cli::Args) -> ExitCode {
    let Some(port) = args.port else {
        eprintln!("mcp-hub: --port is required (use --port 0 for any free port)");
        return ExitCode::from(2);
    };
    if args.config.is_empty() {
        eprintln!("mcp-hub: at least one --config file is required");
        return ExitCode::from(2);
    }
    // Before anything opens a descriptor or derives a cap from the limit.
    let nofile = nofile::raise();
    let log_layer = mcp_hub_core::HubLogLayer::new();
    // Held to the end: dropping it writes out the last lines (bounded).
    let logs = logging::init(&args, log_layer.clone());
    nofile::log(nofile);
    let mut builder = mcp_hub_core::Hub::builder()
        .host(args.host)
        .port(port)
        .watch(args.watch)
        .log_events(log_layer.sender())
        .redactor(log_layer.redactor())
        .max_sessions(args.max_sessions)
        .max_sessions_per_client(args.max_sessions_per_client)
        .max_connections(args.max_connections)
        .registry_options(mcp_hub_core::registry::RegistryOptions {
            max_list_items: args.max_list_items,
            ..Default::default()
        })
        .auto_shutdown(
            args.auto_shutdown
                .then(|| std::time::Duration::from_millis(args.shutdown_delay)),
        );
    for c in &args.config {
        builder = builder.config_file(c);
    }
    if let Some(addr) = args.metrics_listen {
        builder = builder.metrics_listen(addr);
    }
    if args.otlp_endpoint.is_some() || mcp_hub_core::otlp_endpoint_in_env() {
        builder = builder.otlp(args.otlp_endpoint.clone());
    }
    for t in args.bearer_tokens() {
        builder = builder.bearer_token(t);
    }
    for (profile, t) in args.profile_tokens() {
        builder = builder.profile_token(profile, t);
    }
    for h in &args.allowed_host {
        builder = builder.allowed_host(h.clone());
    }
    if let Some(url) = &args.oauth_redirect_url {
        builder = builder.oauth_redirect_url(url.clone());
    }
    if let Some(url) = &args.cluster {
        match cluster_config(&args, url) {
            Ok(c) => builder = builder.cluster(c),
            Err(e) => {
                eprintln!("mcp-hub: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(paths) = mcp_hub_core::Paths::from_process() {
        let registry_url = std::env::var("MCP_HUB_MARKETPLACE_URL")
            .unwrap_or_else(|_| mcp_hub_core::DEFAULT_REGISTRY_URL.to_owned());
        builder = builder
            .oauth_store(paths.oauth_file)
            .node_oauth_store(paths.node_oauth_file)
            .workspace_cache(paths.workspaces_file)
            .marketplace(paths.marketplace_cache, registry_url);
    }
    let hub = match builder.start().await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(target: "mcp_hub", "{e}");
            eprintln!("mcp-hub: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One machine-readable line on stdout, so scripts and tests can use `--port 0`.
    println!(
        "{}",
        serde_json::json!({"event": "listening", "addr": hub.local_addr().to_string(), "port": hub.local_addr().port()})
    );
    if let Some(f) = &logs.file {
        tracing::info!(target: "mcp_hub", "log file: {}", f.display());
    }
    let reason = tokio::select! {
        r = signals() => r,
        _ = hub.exit_requested() => "exit requested",
    };
    tracing::info!(target: "mcp_hub", "shutting down ({reason})");
    hub.shutdown().await;
    tracing::info!(target: "mcp_hub", "stopped");
    ExitCode::SUCCESS
}

/// The first of SIGINT, SIGTERM and SIGHUP. SIGHUP (the terminal that started the hub went
/// away) is a shutdown like the others: the default action would exit at once, leaving calls
/// unanswered and children to fend for themselves.
pub(crate) async fn signals() -> &'static str {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn recv(s: &mut Option<Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = recv(&mut term) => "SIGTERM",
        _ = recv(&mut hup) => "SIGHUP",
    }
}

/// `--cluster` and its companions as the core's cluster settings.
fn cluster_config(
    args: &cli::Args,
    url: &str,
) -> Result<mcp_hub_core::cluster::ClusterConfig, String> {
    let Some(secret) = args.cluster_secret.as_deref() else {
        return Err("--cluster needs --cluster-secret (or MCP_HUB_CLUSTER_SECRET)".into());
    };
    let secret = mcp_hub_core::cluster::SharedSecret::new(secret).map_err(|e| e.to_string())?;
    let mut c = mcp_hub_core::cluster::ClusterConfig::new(
        url,
        args.cluster_advertise.clone().unwrap_or_default(),
        secret,
    );
    c.namespace = args.cluster_namespace.clone();
    c.ttl = std::time::Duration::from_millis(args.cluster_ttl_ms);
    c.ca_file = args.cluster_ca_file.clone();
    Ok(c)
}
