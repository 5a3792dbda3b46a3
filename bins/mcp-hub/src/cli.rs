use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// One process that manages many MCP servers and gives clients one place to reach them all.
///
/// Serves the unified MCP endpoint at http://HOST:PORT/mcp (Streamable HTTP, and legacy SSE for
/// older clients), the REST API under /api and the event stream at /api/events. Accepts the
/// flags of the Node `mcp-hub`, so editor plugins that launch it keep working.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mcp-hub",
    about,
    long_about = None,
    after_help = EXAMPLES,
    disable_version_flag = true
)]
pub(crate) struct Args {
    /// Print the version: the Node mcp-hub release whose API this hub implements, then this
    /// hub's own version (mcphub.nvim reads the first `x.y.z`).
    #[arg(short = 'V', long)]
    pub(crate) version: bool,

    /// Port to listen on (0 picks a free one; the chosen address is printed as a JSON line).
    #[arg(short, long, global = true, env = "MCP_HUB_PORT")]
    pub(crate) port: Option<u16>,

    /// Config file(s), merged in order (later wins per server). Repeat the flag or list several.
    /// Missing files are skipped.
    #[arg(short, long, global = true, num_args = 1.., action = clap::ArgAction::Append)]
    pub(crate) config: Vec<PathBuf>,

    /// Watch the config files and apply changes (only affected servers restart).
    #[arg(short, long, global = true)]
    pub(crate) watch: bool,

    /// Exit when no client is connected to /api/events (after --shutdown-delay).
    #[arg(long, global = true)]
    pub(crate) auto_shutdown: bool,

    /// Delay in milliseconds before an auto-shutdown.
    #[arg(long, global = true, default_value_t = 0, value_name = "MS")]
    pub(crate) shutdown_delay: u64,

    /// Address to bind. Anything but loopback exposes your tools to the network: combine it with
    /// --token.
    #[arg(long, global = true, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST), env = "MCP_HUB_HOST")]
    pub(crate) host: IpAddr,

    /// Require `Authorization: Bearer <TOKEN>` on /mcp and /api (health stays open). Also read
    /// from MCP_HUB_TOKEN.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub(crate) token: Vec<String>,

    /// A bearer token bound to a profile, as PROFILE=TOKEN (repeatable): it reaches only
    /// /mcp/PROFILE, nothing else. Also read from MCP_HUB_PROFILE_TOKENS (PROFILE=TOKEN pairs
    /// separated by commas).
    #[arg(long, global = true, value_name = "PROFILE=TOKEN", value_parser = parse_profile_token)]
    pub(crate) profile_token: Vec<(String, String)>,

    /// Extra host name accepted in Host/Origin headers (DNS-rebinding protection rejects others).
    #[arg(long, global = true, value_name = "HOST")]
    pub(crate) allowed_host: Vec<String>,

    /// Also serve the Prometheus metrics (`GET /metrics`) on this address, e.g. 127.0.0.1:9464.
    /// /metrics on the main port stays; both need --token when one is set.
    #[arg(
        long,
        global = true,
        value_name = "ADDR:PORT",
        env = "MCP_HUB_METRICS_LISTEN"
    )]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,

    /// Export OpenTelemetry traces over OTLP (HTTP/protobuf) to this collector base URL, e.g.
    /// http://127.0.0.1:4318 (`/v1/traces` is appended). Without it, the standard
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT variables turn export on;
    /// OTEL_SERVICE_NAME names the service.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,

    /// Run as one replica of a cluster sharing state through Redis, e.g. redis://127.0.0.1:6379
    /// (see docs/SCALE-OUT.md). Off by default: a single hub needs no Redis. Needs
    /// --cluster-secret (or MCP_HUB_CLUSTER_SECRET).
    #[arg(
        long,
        global = true,
        value_name = "REDIS_URL",
        env = "MCP_HUB_CLUSTER",
        hide_env_values = true
    )]
    pub(crate) cluster: Option<String>,

    /// The secret the replicas of a cluster share, at least 16 visible ASCII characters; it
    /// authenticates requests one replica forwards to another. Prefer the environment variable
    /// MCP_HUB_CLUSTER_SECRET: arguments are visible to other users in `ps`.
    #[arg(
        long,
        global = true,
        value_name = "SECRET",
        env = "MCP_HUB_CLUSTER_SECRET",
        hide_env_values = true
    )]
    pub(crate) cluster_secret: Option<String>,

    /// The address other replicas reach this one at (host:port). Default: the listen address.
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        env = "MCP_HUB_CLUSTER_ADVERTISE"
    )]
    pub(crate) cluster_advertise: Option<String>,

    /// With a rediss:// URL: the CA certificate (PEM) that signed Redis' certificate, trusted
    /// instead of the public roots (a private CA, or a self-signed certificate).
    #[arg(
        long,
        global = true,
        value_name = "PEM_FILE",
        env = "MCP_HUB_CLUSTER_CA_FILE"
    )]
    pub(crate) cluster_ca_file: Option<std::path::PathBuf>,

    /// Prefix of this cluster's Redis keys, so several clusters can share one Redis.
    #[arg(long, global = true, value_name = "NAME", default_value = "mcp-hub")]
    pub(crate) cluster_namespace: String,

    /// How long a replica counts as live after its last heartbeat (heartbeats go every third).
    #[arg(long, global = true, value_name = "MS", default_value_t = 3000)]
    pub(crate) cluster_ttl_ms: u64,

    /// The OAuth redirect URL authorization servers send the browser back to. Default: this
    /// hub's /api/oauth/callback on 127.0.0.1 and its port. Behind a balancer (cluster mode),
    /// the balancer's public callback URL, so the callback may reach any replica.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "MCP_HUB_OAUTH_REDIRECT_URL"
    )]
    pub(crate) oauth_redirect_url: Option<String>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Most tools (and, separately, resources, resource templates and prompts) one server may
    /// list. A server that lists more is not served; its status says why.
    #[arg(
        long,
        global = true,
        default_value_t = 20_000,
        env = "MCP_HUB_MAX_LIST_ITEMS",
        value_name = "N"
    )]
    pub(crate) max_list_items: usize,

    /// Most concurrent /mcp sessions (Streamable HTTP). Each idle session with an open GET
    /// stream holds one connection, so raise --max-connections with it.
    #[arg(
        long,
        global = true,
        default_value_t = 1000,
        env = "MCP_HUB_MAX_SESSIONS",
        value_name = "N"
    )]
    pub(crate) max_sessions: usize,

    /// Most /mcp sessions one client holds (one bearer token, else one address); past it, that
    /// client's own least recently used idle session makes room.
    #[arg(long, global = true, default_value_t = 500, value_name = "N")]
    pub(crate) max_sessions_per_client: usize,

    /// Most connections served at once; never more than the descriptor limit allows (the hub
    /// raises its soft limit to the hard one at start and keeps a reserve for upstreams).
    #[arg(
        long,
        global = true,
        default_value_t = 4096,
        env = "MCP_HUB_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub(crate) max_connections: usize,

    /// Log filter (e.g. `info`, `debug`, `mcp_hub=debug`). Also read from MCP_HUB_LOG.
    #[arg(long, global = true, default_value = "info", env = "MCP_HUB_LOG")]
    pub(crate) log_level: String,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum Command {
    /// Run the hub (the default).
    Serve,
    /// Load and resolve the config files, report every error, exit non-zero if any.
    Check {
        /// Config files (in addition to --config).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Serve one MCP session over stdin/stdout (for desktop clients that spawn stdio servers).
    ///
    /// Attaches to a running hub started with the same config files (found in the workspace
    /// cache), or starts one (its HTTP side stays on, on --port or any free port) that the next
    /// `mcp-hub stdio` attaches to. Nothing but MCP messages is written to stdout.
    Stdio,
    /// Show what a running hub serves: servers, their status and tools.
    List {
        /// Base URL of the hub (default: http://127.0.0.1:<--port or 37373>).
        #[arg(long)]
        url: Option<String>,
        /// Print the raw JSON of /api/servers.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

const EXAMPLES: &str = "Examples:
  mcp-hub --port 37373 --config ~/.config/mcphub/servers.json
  mcp-hub --port 3000 --config ./global.json --config ./project.json --watch
  mcp-hub check --config ./servers.json
  mcp-hub list --port 37373
  mcp-hub stdio --config ~/.config/mcphub/servers.json   (in a desktop client's config)

Clients connect to http://127.0.0.1:PORT/mcp.";

/// The `--version` line: `4.2.1 (mcp-hub-rs 0.1.0)`. mcphub.nvim takes the first `x.y.z` of the
/// first line and requires the Node hub's major version 4 with minor version 2 or later, so
/// the compatible Node hub version comes first and this hub's own version follows.
pub(crate) fn version_line() -> String {
    format!(
        "{} (mcp-hub-rs {})",
        mcp_hub_core::api::NODE_HUB_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

impl Args {
    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.unwrap_or(37373))
    }

    pub(crate) fn profile_tokens(&self) -> Vec<(String, String)> {
        let mut t = self.profile_token.clone();
        if let Ok(v) = std::env::var("MCP_HUB_PROFILE_TOKENS") {
            t.extend(
                v.split(',')
                    .filter(|p| !p.trim().is_empty())
                    .filter_map(|p| parse_profile_token(p.trim()).ok()),
            );
        }
        t
    }

    pub(crate) fn bearer_tokens(&self) -> Vec<String> {
        let mut t = self.token.clone();
        if let Ok(v) = std::env::var("MCP_HUB_TOKEN")
            && !v.is_empty()
        {
            t.push(v);
        }
        t
    }
}

/// `PROFILE=TOKEN`; the error never repeats the token.
fn parse_profile_token(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((p, t)) if !p.is_empty() && !t.is_empty() => Ok((p.to_owned(), t.to_owned())),
        _ => Err("expected PROFILE=TOKEN".to_owned()),
    }
}
