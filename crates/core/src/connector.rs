//! Config entries → registry definitions. Placeholders are resolved at every connect, as in the
//! Node hub, so a failing `${cmd: ...}` or a missing variable only affects that server and a
//! rotated secret is picked up on the next restart.

use std::sync::{Arc, Weak};

use mcp_hub_config::{Config, ServerConfig};
use mcp_hub_registry::{ClientContext, Connector, Isolation, Prefix, ServerDefinition};
use mcp_hub_transport::{AuthChallenge, HttpSpec, StdioSpec, TransportSpec};

use crate::inner::HubInner;

pub(crate) fn definition(
    inner: &Arc<HubInner>,
    config: &Arc<Config>,
    sc: &ServerConfig,
) -> ServerDefinition {
    ServerDefinition {
        name: sc.name.clone(),
        display_name: sc.display_name.clone(),
        description: sc.description.clone(),
        transport_type: if sc.is_stdio() { "stdio" } else { "sse" },
        prefix: match &sc.prefix {
            mcp_hub_config::Prefix::Default => Prefix::Default,
            mcp_hub_config::Prefix::Custom(p) => Prefix::Custom(p.clone()),
            mcp_hub_config::Prefix::Disabled => Prefix::None,
        },
        disabled: sc.disabled,
        request_timeout: sc.timeout,
        config_source: Some(sc.config_source.display().to_string()),
        client_context: ClientContext {
            isolation: match sc.isolation {
                mcp_hub_config::Isolation::Shared => Isolation::Shared,
                mcp_hub_config::Isolation::Session { max_instances } => {
                    Isolation::Session { max_instances }
                }
            },
            roots: sc
                .roots
                .as_ref()
                .map(|roots| roots.iter().map(|r| root_uri(r)).collect()),
        },
        tools: tool_filter(&sc.tools),
        connector: Arc::new(ConfigConnector {
            hub: Arc::downgrade(inner),
            config: config.clone(),
            name: sc.name.clone(),
            redactor: inner.builder.redactor.clone(),
        }),
    }
}

/// A validated config filter as the registry's compiled one. The config crate already compiled
/// every pattern, so this cannot fail; if it ever did, the server would show nothing rather
/// than everything.
pub(crate) fn tool_filter(f: &mcp_hub_config::ToolFilter) -> mcp_hub_registry::ToolFilter {
    mcp_hub_registry::ToolFilter::new(f.include.clone(), f.exclude.clone()).unwrap_or_else(|e| {
        tracing::error!(target: "mcp_hub::config", "tool filter: {e}");
        mcp_hub_registry::ToolFilter::new(Vec::new(), vec!["*".into()]).unwrap_or_default()
    })
}

/// A configured root as a URI: absolute paths become `file://` URIs, URIs stay as written.
fn root_uri(root: &str) -> String {
    if root.contains("://") {
        return root.to_owned();
    }
    url::Url::from_file_path(root).map_or_else(|()| root.to_owned(), |u| u.to_string())
}

struct ConfigConnector {
    hub: Weak<HubInner>,
    config: Arc<Config>,
    name: String,
    /// The hub's: every value a placeholder resolved to is added at each connect.
    redactor: mcp_hub_config::Redactor,
}

/// The interactive flow's settings from a server's resolved `oauth` object (the Node hub's
/// camelCase spellings accepted too). `config_url` is the server's URL as written, the key of a
/// login the Node hub saved.
fn oauth_client(
    oauth: Option<&serde_json::Map<String, serde_json::Value>>,
    config_url: Option<String>,
) -> mcp_hub_auth::ClientConfig {
    let get = |k: &str| {
        oauth
            .and_then(|o| o.get(k))
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    mcp_hub_auth::ClientConfig {
        client_id: get("client_id").or_else(|| get("clientId")),
        client_secret: get("client_secret").or_else(|| get("clientSecret")),
        scopes: oauth.and_then(|o| o.get("scopes")).and_then(|v| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .or_else(|| {
                    v.as_str()
                        .map(|s| s.split_whitespace().map(str::to_owned).collect())
                })
        }),
        client_metadata_url: get("client_metadata_url").or_else(|| get("clientMetadataUrl")),
        config_url,
    }
}

#[async_trait::async_trait]
impl Connector for ConfigConnector {
    async fn spec(&self) -> Result<TransportSpec, String> {
        let hub = self.hub.upgrade().ok_or("the hub is shutting down")?;
        // A `${cmd:}` still running when the hub stops, or when the supervisor gives up on this
        // connect (stop, restart, removal), is killed at once rather than awaited.
        let cancel = hub.shutdown.child_token();
        let _cancel_on_drop = cancel.clone().drop_guard();
        let watch = Arc::new(HubCommands { cancel });
        // Placeholders are string work, done here, unless a `${cmd:}` must run: a shell blocks
        // (up to its timeout), so only then does the whole resolution go to the blocking pool.
        // Fifty servers starting at once used to start fifty pool threads for microseconds each.
        let probe = CommandProbe::default();
        let inline = resolve(&self.config, &self.name, &hub.workspace_folder, &probe);
        let resolved = if probe.wanted.get() {
            let (config, name) = (self.config.clone(), self.name.clone());
            let folder = hub.workspace_folder.clone();
            tokio::task::spawn_blocking(move || {
                let runner = mcp_hub_config::ShellRunner::default().with_watch(watch);
                resolve(&config, &name, &folder, &runner)
            })
            .await
            .map_err(|e| e.to_string())?
        } else {
            inline
        }
        .map_err(|e| e.to_string())?;
        self.redactor.add(&resolved.secrets);
        for w in &resolved.warnings {
            tracing::warn!(target: "mcp_hub::config", server = %self.name, "{w}");
        }
        let config_url = self.config.server(&self.name).and_then(|s| match &s.kind {
            mcp_hub_config::ServerKind::Remote { url, .. } => Some(url.clone()),
            mcp_hub_config::ServerKind::Stdio { .. } => None,
        });
        let oauth = oauth_client(resolved.oauth.as_ref(), config_url);
        let auth = match &resolved.auth {
            Some(a) => mcp_hub_auth::AuthConfig::from_json(&serde_json::Value::Object(a.clone()))
                .map_err(|e| e.to_string())?,
            None => mcp_hub_auth::AuthConfig::default(),
        };
        match resolved.kind {
            mcp_hub_config::ResolvedKind::Stdio {
                command,
                args,
                env,
                cwd,
            } => Ok(TransportSpec::Stdio(StdioSpec {
                name: self.name.clone(),
                command,
                args,
                env,
                cwd,
                stderr: None,
            })),
            mcp_hub_config::ResolvedKind::Remote {
                url,
                headers,
                transport,
            } => {
                let url = url::Url::parse(&url).map_err(|e| format!("invalid url: {e}"))?;
                if hub.listening && points_at(&url, hub.local_addr) {
                    return Err(format!(
                        "{} is this hub's own endpoint; a hub never connects to itself",
                        mcp_hub_config::redact_url(url.as_str())
                    ));
                }
                // Userinfo is a Basic credential for the transport, never part of the OAuth
                // resource the authorization server (and the authorization URL) would see.
                let mut resource = url.clone();
                let _ = resource.set_username("");
                let _ = resource.set_password(None);
                let auth = hub
                    .oauth
                    .as_ref()
                    .map(|m| m.hook_with(&self.name, &resource, oauth, auth));
                let spec = HttpSpec {
                    name: self.name.clone(),
                    url,
                    headers,
                    auth,
                };
                Ok(match transport {
                    mcp_hub_config::RemoteTransport::Auto => TransportSpec::Http(spec),
                    mcp_hub_config::RemoteTransport::StreamableHttp => {
                        TransportSpec::StreamableHttp(spec)
                    }
                    mcp_hub_config::RemoteTransport::Sse => TransportSpec::Sse(spec),
                })
            }
        }
    }

    fn redact(&self, text: String) -> String {
        self.redactor.redact_string(text)
    }

    async fn authorization_url(&self, challenge: &AuthChallenge) -> Result<Option<String>, String> {
        let Some(oauth) = self.hub.upgrade().and_then(|h| h.oauth.clone()) else {
            return Ok(None);
        };
        match oauth
            .start_authorization(&self.name, &challenge.url, Some(challenge))
            .await
        {
            Ok(url) => Ok(Some(url)),
            Err(e) => {
                tracing::warn!(target: "mcp_hub::auth", server = %self.name, "cannot start authorization: {e}");
                Err(format!("authorization failed: {e}"))
            }
        }
    }
}

/// How the hub keeps its `${cmd:}` commands in hand: the watchdog kills their process group if
/// the hub dies while they run, and they are stopped when the hub no longer wants their output.
pub(crate) struct HubCommands {
    pub(crate) cancel: tokio_util::sync::CancellationToken,
}

impl mcp_hub_config::CommandWatch for HubCommands {
    fn started(&self, pgid: u32) {
        mcp_hub_transport::watch_group(pgid);
    }

    fn finished(&self, pgid: u32) {
        mcp_hub_transport::unwatch_group(pgid);
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Whether `url` reaches the hub listening on `local` without leaving the machine: its port on
/// `localhost`, a loopback address, the unspecified address or the bound address. (Other names
/// for the same hub are caught after `initialize`, by the instance identity it announces.)
fn points_at(url: &url::Url, local: std::net::SocketAddr) -> bool {
    if url.port_or_known_default() != Some(local.port()) {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => {
            let ip = std::net::IpAddr::V4(ip);
            ip.is_loopback() || ip.is_unspecified() || ip == local.ip()
        }
        Some(url::Host::Ipv6(ip)) => {
            // `::ffff:127.0.0.1` reaches the IPv4 listener too.
            let ip = ip
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(ip), std::net::IpAddr::V4);
            ip.is_loopback() || ip.is_unspecified() || ip == local.ip()
        }
        None => false,
    }
}

/// One server's placeholders resolved as the hub does at each connect, any `${cmd:}` run by
/// `runner`.
fn resolve(
    config: &Config,
    name: &str,
    workspace_folder: &std::path::Path,
    runner: &dyn mcp_hub_config::CommandRunner,
) -> Result<mcp_hub_config::ResolvedServer, mcp_hub_config::ConfigError> {
    let env = mcp_hub_config::ProcessEnv;
    let mut ctx = resolve_context(&env, runner);
    ctx.workspace_folder = workspace_folder.to_path_buf();
    config.resolve_server(name, &ctx)
}

/// A runner that runs nothing and notes that a command was wanted: resolution is retried with
/// the real one, off the runtime's threads.
#[derive(Default)]
struct CommandProbe {
    wanted: std::cell::Cell<bool>,
}

impl mcp_hub_config::CommandRunner for CommandProbe {
    fn run(&self, _command: &str) -> Result<String, mcp_hub_config::CommandError> {
        self.wanted.set(true);
        Err(mcp_hub_config::CommandError::Spawn(
            "deferred to the blocking pool".into(),
        ))
    }
}

/// The Node hub's resolution context; an invalid `MCP_HUB_ENV` is reported and ignored, as there.
pub(crate) fn resolve_context<'a>(
    env: &'a dyn mcp_hub_config::EnvSource,
    runner: &'a dyn mcp_hub_config::CommandRunner,
) -> mcp_hub_config::ResolveContext<'a> {
    match mcp_hub_config::ResolveContext::from_env(env, runner) {
        Ok(ctx) => ctx,
        Err(e) => {
            tracing::warn!(target: "mcp_hub::config", "ignoring MCP_HUB_ENV: {e}");
            let home = env.var("HOME").unwrap_or_default();
            let cwd = std::env::current_dir().unwrap_or_default();
            mcp_hub_config::ResolveContext::new(env, runner, cwd, home)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_roots_become_uris() {
        assert_eq!(root_uri("/srv/my data"), "file:///srv/my%20data");
        assert_eq!(root_uri("file:///x"), "file:///x");
        assert_eq!(root_uri("https://e.x/r"), "https://e.x/r");
    }

    #[test]
    fn own_endpoint_is_recognised_by_url() {
        let local: std::net::SocketAddr = "127.0.0.1:37373".parse().unwrap();
        let at = |u: &str| points_at(&url::Url::parse(u).unwrap(), local);
        assert!(at("http://127.0.0.1:37373/mcp"));
        assert!(at("http://localhost:37373/sse"));
        assert!(at("http://LOCALHOST.:37373/mcp"));
        assert!(at("http://127.0.0.2:37373/mcp"));
        assert!(at("http://[::1]:37373/mcp"));
        assert!(at("http://0.0.0.0:37373/mcp"));
        assert!(at("http://[::ffff:127.0.0.1]:37373/mcp"));
        assert!(!at("http://127.0.0.1:37374/mcp"), "another port");
        assert!(!at("http://example.com:37373/mcp"), "another host");
        assert!(!at("https://localhost/mcp"), "port 443");
        let wide: std::net::SocketAddr = "192.168.1.5:8080".parse().unwrap();
        assert!(points_at(
            &url::Url::parse("http://192.168.1.5:8080/mcp").unwrap(),
            wide
        ));
    }
}
