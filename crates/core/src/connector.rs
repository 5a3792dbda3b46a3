//! Config entries → registry definitions. Placeholders are resolved at every connect, as in the
//! Node hub, so a failing `${cmd: ...}` or a missing variable only affects that server and a
//! rotated secret is picked up on the next restart.

use std::sync::{Arc, Weak};

use mcp_hub_config::{Config, ServerConfig};
use mcp_hub_registry::{ClientContext, Connector, Isolation, Prefix, ServerDefinition};
use mcp_hub_transport::{AuthChallenge, HttpSpec, StdioSpec, TransportSpec};

use crate::hub::HubInner;

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
        connector: Arc::new(ConfigConnector {
            hub: Arc::downgrade(inner),
            config: config.clone(),
            name: sc.name.clone(),
        }),
    }
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
}

impl ConfigConnector {
    fn oauth_client(&self) -> mcp_hub_auth::ClientConfig {
        let raw = self
            .config
            .server(&self.name)
            .and_then(|s| s.raw.get("oauth"))
            .cloned();
        let get = |k: &str| {
            raw.as_ref()
                .and_then(|o| o.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        mcp_hub_auth::ClientConfig {
            client_id: get("client_id").or_else(|| get("clientId")),
            client_secret: get("client_secret").or_else(|| get("clientSecret")),
            scopes: raw.as_ref().and_then(|o| o.get("scopes")).and_then(|v| {
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
        }
    }
}

#[async_trait::async_trait]
impl Connector for ConfigConnector {
    async fn spec(&self) -> Result<TransportSpec, String> {
        let hub = self.hub.upgrade().ok_or("the hub is shutting down")?;
        let config = self.config.clone();
        let name = self.name.clone();
        let folder = hub.workspace_folder.clone();
        let resolved = tokio::task::spawn_blocking(move || {
            let env = mcp_hub_config::ProcessEnv;
            let runner = mcp_hub_config::ShellRunner::default();
            let mut ctx = resolve_context(&env, &runner);
            ctx.workspace_folder = folder;
            config.resolve_server(&name, &ctx)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        for w in &resolved.warnings {
            tracing::warn!(target: "mcp_hub::config", server = %self.name, "{w}");
        }
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
                let auth = hub
                    .oauth
                    .as_ref()
                    .map(|m| m.hook(&self.name, &url, self.oauth_client()));
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
    #[test]
    fn configured_roots_become_uris() {
        assert_eq!(super::root_uri("/srv/my data"), "file:///srv/my%20data");
        assert_eq!(super::root_uri("file:///x"), "file:///x");
        assert_eq!(super::root_uri("https://e.x/r"), "https://e.x/r");
    }
}
