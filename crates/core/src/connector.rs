//! Config entries → registry definitions. Placeholders are resolved at every connect, as in the
//! Node hub, so a failing `${cmd: ...}` or a missing variable only affects that server and a
//! rotated secret is picked up on the next restart.

use std::sync::{Arc, Weak};

use mcp_hub_config::{Config, ServerConfig};
use mcp_hub_registry::{Connector, Prefix, ServerDefinition};
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
        connector: Arc::new(ConfigConnector {
            hub: Arc::downgrade(inner),
            config: config.clone(),
            name: sc.name.clone(),
        }),
    }
}

struct ConfigConnector {
    hub: Weak<HubInner>,
    config: Arc<Config>,
    name: String,
}

/// The interactive flow's settings from a server's resolved `oauth` object (the Node hub's
/// camelCase spellings accepted too).
fn oauth_client(
    oauth: Option<&serde_json::Map<String, serde_json::Value>>,
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
        let oauth = oauth_client(resolved.oauth.as_ref());
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
                let auth = hub
                    .oauth
                    .as_ref()
                    .map(|m| m.hook_with(&self.name, &url, oauth, auth));
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
