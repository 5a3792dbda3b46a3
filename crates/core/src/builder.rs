//! [`HubBuilder`]: what a hub is started with. Starting it is `hub.rs`'s business.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use mcp_hub_api::{ApiConfig, HubEvent};
use mcp_hub_registry::RegistryOptions;
use tokio::sync::broadcast;

use crate::layers::CodeConfig;

/// Configures and starts a hub.
#[derive(Debug, Clone)]
pub struct HubBuilder {
    pub(crate) config_files: Vec<PathBuf>,
    pub(crate) code: Vec<CodeConfig>,
    pub(crate) listen: bool,
    pub(crate) host: IpAddr,
    pub(crate) port: u16,
    pub(crate) watch: bool,
    pub(crate) api: ApiConfig,
    pub(crate) registry: RegistryOptions,
    pub(crate) workspace_folder: Option<PathBuf>,
    pub(crate) auto_shutdown: Option<Duration>,
    pub(crate) oauth_store: Option<PathBuf>,
    pub(crate) oauth_redirect: Option<String>,
    pub(crate) node_oauth_store: Option<PathBuf>,
    pub(crate) log_events: Option<broadcast::Sender<HubEvent>>,
    pub(crate) workspace_cache: Option<PathBuf>,
    pub(crate) marketplace: Option<(PathBuf, String)>,
    pub(crate) redactor: mcp_hub_config::Redactor,
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// Export spans over OTLP: `Some(None)` to the endpoint the `OTEL_EXPORTER_OTLP_*`
    /// variables name, `Some(Some(url))` to that base URL.
    pub(crate) otlp: Option<Option<String>>,
    /// Cluster mode: join this cluster (an empty `advertise` means the listen address).
    pub(crate) cluster: Option<mcp_hub_cluster::ClusterConfig>,
}

impl Default for HubBuilder {
    fn default() -> Self {
        HubBuilder {
            config_files: Vec::new(),
            code: Vec::new(),
            listen: true,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 37373,
            watch: false,
            api: ApiConfig::default(),
            registry: RegistryOptions::default(),
            workspace_folder: None,
            auto_shutdown: None,
            oauth_store: None,
            oauth_redirect: None,
            node_oauth_store: None,
            log_events: None,
            workspace_cache: None,
            marketplace: None,
            redactor: mcp_hub_config::Redactor::new(),
            metrics_listen: None,
            otlp: None,
            cluster: None,
        }
    }
}

impl HubBuilder {
    /// Runs the hub as one replica of a cluster sharing state through Redis (see
    /// `docs/SCALE-OUT.md`). An empty `advertise` is replaced by the address the hub listens on.
    /// Off by default: a single hub needs no Redis.
    pub fn cluster(mut self, config: mcp_hub_cluster::ClusterConfig) -> Self {
        self.cluster = Some(config);
        self
    }

    /// Adds a config file; files merge in the order added (later wins per server).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_files.push(path.into());
        self
    }

    /// Servers configured in code. Configs given with this and [`HubBuilder::config_str`] merge
    /// in the order given, and the config files merge over them (a file's server replaces a
    /// code server of the same name entirely). A reload re-reads only the files; servers given
    /// here, and those added at run time with
    /// [`HubHandle::add_server`](crate::HubHandle::add_server), stay.
    ///
    /// ```
    /// let config = mcp_hub_core::config::load_from_strs([(
    ///     "inline.json",
    ///     r#"{"mcpServers": {"echo": {"command": "my-server", "args": ["--stdio"]}}}"#,
    /// )])
    /// .unwrap();
    /// let builder = mcp_hub_core::Hub::builder().config(config).listen(false);
    /// # let _ = builder;
    /// ```
    pub fn config(mut self, config: mcp_hub_config::Config) -> Self {
        self.code.push(CodeConfig::Config(Box::new(config)));
        self
    }

    /// Servers configured in code as the text of a config file (JSON or JSON5, `mcpServers` or
    /// VS Code's `servers`), validated when the hub starts (an error then fails
    /// [`HubBuilder::start`]). Their `config_source` is `<code>`. See [`HubBuilder::config`].
    pub fn config_str(mut self, text: impl Into<String>) -> Self {
        self.code.push(CodeConfig::Text(text.into()));
        self
    }

    /// Whether to open a listener (default `true`). Without one the hub only aggregates: use it
    /// through [`HubHandle`](crate::HubHandle)'s methods, or serve its HTTP side on a server of
    /// your own with [`HubHandle::http_service`](crate::HubHandle::http_service). The host and
    /// port are then unused (set [`HubBuilder::oauth_redirect_url`] if OAuth upstreams are
    /// configured).
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// The address to bind (default 127.0.0.1). Binding elsewhere exposes the hub to the network:
    /// protect it with [`HubBuilder::bearer_token`].
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = host;
        self
    }

    /// The port (0 picks a free one; see [`HubHandle::local_addr`](crate::HubHandle::local_addr)).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Watch the config files and apply changes (only affected servers restart).
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Requires `Authorization: Bearer <token>` on `/mcp` and `/api/*` (health stays open).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.api.bearer_tokens.push(token.into());
        self
    }

    /// A bearer token bound to a profile: it reaches only `/mcp/<profile>` (and its legacy
    /// `/sse` and `/messages`). Any token turns protection on everywhere.
    pub fn profile_token(mut self, profile: impl Into<String>, token: impl Into<String>) -> Self {
        self.api.profile_tokens.push((profile.into(), token.into()));
        self
    }

    /// Extra host names accepted in `Host`/`Origin` (DNS-rebinding protection keeps the rest out).
    pub fn allowed_host(mut self, host: impl Into<String>) -> Self {
        self.api.allowed_hosts.push(host.into());
        self
    }

    /// Most concurrent `/mcp` sessions (default 1000).
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.api.max_sessions = n;
        self
    }

    /// Most `/mcp` sessions one client (bearer token, else address) holds (default 500).
    pub fn max_sessions_per_client(mut self, n: usize) -> Self {
        self.api.max_sessions_per_client = n;
        self
    }

    /// Most connections served at once (default 4096), never more than the descriptor limit
    /// leaves after a reserve for everything else.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.api.max_connections = n;
        self
    }

    /// `${workspaceFolder}` (default: the process's working directory).
    pub fn workspace_folder(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workspace_folder = Some(dir.into());
        self
    }

    /// Exit (see [`HubHandle::exit_requested`](crate::HubHandle::exit_requested)) this long after the last `/api/events` client
    /// leaves, as the Node hub's `--auto-shutdown --shutdown-delay`.
    pub fn auto_shutdown(mut self, delay: Option<Duration>) -> Self {
        self.auto_shutdown = delay;
        self
    }

    /// Where OAuth tokens are stored (default: none, OAuth upstreams stay unauthorized).
    pub fn oauth_store(mut self, path: impl Into<PathBuf>) -> Self {
        self.oauth_store = Some(path.into());
        self
    }

    /// The OAuth redirect URL authorization servers send the browser back to (default
    /// `http://127.0.0.1:<port>/api/oauth/callback`). Set it when the hub is mounted in a server
    /// of your own ([`HubHandle::http_service`](crate::HubHandle::http_service)): your server's
    /// address and the mount prefix, e.g. `http://127.0.0.1:8080/hub/api/oauth/callback`.
    pub fn oauth_redirect_url(mut self, url: impl Into<String>) -> Self {
        self.oauth_redirect = Some(url.into());
        self
    }

    /// The Node `mcp-hub`'s OAuth storage (`oauth-storage.json`): a server with no tokens in
    /// [`HubBuilder::oauth_store`] uses the login saved there, converted into that store. The
    /// file is only read.
    pub fn node_oauth_store(mut self, path: impl Into<PathBuf>) -> Self {
        self.node_oauth_store = Some(path.into());
        self
    }

    /// Register this hub in the global workspace cache (`workspaces.json`, the Node hub's format)
    /// and keep its entry current; it is removed on shutdown.
    pub fn workspace_cache(mut self, path: impl Into<PathBuf>) -> Self {
        self.workspace_cache = Some(path.into());
        self
    }

    /// Serve the marketplace routes from `registry_url` (the Node hub's catalogue by default:
    /// [`DEFAULT_REGISTRY_URL`](crate::DEFAULT_REGISTRY_URL)), cached in `cache_file` for an hour.
    /// Nothing is fetched until a client asks.
    pub fn marketplace(
        mut self,
        cache_file: impl Into<PathBuf>,
        registry_url: impl Into<String>,
    ) -> Self {
        self.marketplace = Some((cache_file.into(), registry_url.into()));
        self
    }

    /// Forward log lines from a [`HubLogLayer`](crate::HubLogLayer) to `/api/events`.
    pub fn log_events(mut self, tx: broadcast::Sender<HubEvent>) -> Self {
        self.log_events = Some(tx);
        self
    }

    /// Where what the servers' placeholders resolve to is collected (by default a redactor of the
    /// hub's own). Every error about a server is scrubbed with it before it becomes a status
    /// `error`, a log line or an answer; share it with the program's log writers and its
    /// [`HubLogLayer`](crate::HubLogLayer) so they scrub the same values.
    pub fn redactor(mut self, redactor: mcp_hub_config::Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Export OpenTelemetry spans over OTLP (HTTP/protobuf): to `endpoint` (a base URL like
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; `/v1/traces` is appended) or, with `None`, where the
    /// standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` variables
    /// say. `OTEL_SERVICE_NAME` names the service (default `mcp-hub`). The exporter is
    /// process-wide (OpenTelemetry's global tracer provider): the first hub to start installs it.
    /// W3C trace context is propagated whether or not spans are exported.
    pub fn otlp(mut self, endpoint: Option<String>) -> Self {
        self.otlp = Some(endpoint);
        self
    }

    /// Also serve `GET /metrics` on this address of its own (for scrapers), with the same
    /// Host/Origin and bearer checks as the main listener. `/metrics` on the main listener
    /// stays.
    pub fn metrics_listen(mut self, addr: std::net::SocketAddr) -> Self {
        self.metrics_listen = Some(addr);
        self
    }

    /// Low-level tunables of the registry.
    pub fn registry_options(mut self, opts: RegistryOptions) -> Self {
        self.registry = opts;
        self
    }

    /// Low-level tunables of the HTTP surface (the port is set by the builder).
    pub fn api_config(mut self, cfg: ApiConfig) -> Self {
        self.api = cfg;
        self
    }
}
