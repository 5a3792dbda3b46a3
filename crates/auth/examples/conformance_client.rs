//! A headless MCP client for the conformance suite's `auth/*` client scenarios, built from the
//! transport and this crate exactly the way the hub uses them (hook on the transport,
//! `start_authorization` on `Unauthorized`, completion of the callback, reconnect or retry).
//!
//! The suite runs `<command> <server-url>` with `MCP_CONFORMANCE_SCENARIO` and, for credential
//! scenarios, `MCP_CONFORMANCE_CONTEXT` (`{"client_id": …, "client_secret": …}`, a private key, a
//! workload JWT or an enterprise ID token). The machine-to-machine scenarios (named by
//! `MCP_CONFORMANCE_SCENARIO`, as the suite's own client does) get the `auth` settings a user
//! would write, with the credentials inline:
//!
//! ```text
//! cargo build -p mcp-hub-auth --example conformance_client
//! node22 conformance/dist/index.js client --suite auth \
//!   --command "$CARGO_TARGET_DIR/debug/examples/conformance_client"
//! ```
//!
//! It connects, lists tools, calls the first tool, and exits 0; any failure exits 1.

use std::sync::Arc;

use mcp_hub_auth::{AuthConfig, ClientConfig, OAuthManager};
use mcp_hub_protocol::{ErrorCode, ErrorObject, RawValue, Request};
use mcp_hub_transport::{
    AuthChallenge, ClientSession, HttpSpec, RequestError, RequestOptions, ServerRequestHandler,
    SessionOptions, TransportError, TransportSpec,
};
use url::Url;

/// The fixed Client ID Metadata Document URL the suite expects (`auth/basic-cimd`).
const CIMD_URL: &str = "https://conformance-test.local/client-metadata.json";
/// Authorizations allowed in one run (the suite's `auth/scope-retry-limit` allows 3).
const MAX_AUTHORIZATIONS: usize = 3;

struct NoClientFeatures;

#[async_trait::async_trait]
impl ServerRequestHandler for NoClientFeatures {
    async fn handle(
        &self,
        request: Request,
        _attribution: mcp_hub_transport::Attribution,
    ) -> Result<Box<RawValue>, ErrorObject> {
        Err(ErrorObject::new(
            ErrorCode::METHOD_NOT_FOUND,
            request.method,
        ))
    }
}

struct Driver {
    manager: OAuthManager,
    url: Url,
    spec: TransportSpec,
    authorizations: usize,
}

impl Driver {
    async fn authorize(&mut self, challenge: &AuthChallenge) -> Result<(), String> {
        if self.authorizations >= MAX_AUTHORIZATIONS {
            return Err("too many authorizations".into());
        }
        self.authorizations += 1;
        let auth_url = self
            .manager
            .start_authorization("conformance", &self.url, Some(challenge))
            .await
            .map_err(|e| e.to_string())?;
        self.manager
            .complete_headless(&auth_url)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn connect(&mut self) -> Result<ClientSession, String> {
        loop {
            match ClientSession::connect(
                self.spec.clone(),
                SessionOptions::default(),
                Arc::new(NoClientFeatures),
            )
            .await
            {
                Ok((session, _notifications)) => return Ok(session),
                Err(TransportError::Unauthorized(c)) => self.authorize(&c).await?,
                Err(e) => return Err(format!("connect: {e}")),
            }
        }
    }

    /// A request, authorizing and retrying (on a new session if the old one died) on
    /// `Unauthorized`.
    async fn request(
        &mut self,
        session: &mut ClientSession,
        method: &str,
        params: Option<&str>,
    ) -> Result<Box<RawValue>, String> {
        loop {
            let p = params
                .map(|p| RawValue::from_string(p.to_owned()))
                .transpose()
                .map_err(|e| e.to_string())?;
            match session.request(method, p, RequestOptions::default()).await {
                Ok(r) => return Ok(r),
                Err(RequestError::Transport(TransportError::Unauthorized(c))) => {
                    self.authorize(&c).await?;
                    if !session.is_open() {
                        *session = self.connect().await?;
                    }
                }
                Err(e) => return Err(format!("{method}: {e}")),
            }
        }
    }
}

async fn run() -> Result<(), String> {
    let url: Url = std::env::args()
        .next_back()
        .ok_or("usage: conformance_client <server-url>")?
        .parse()
        .map_err(|e| format!("invalid server URL: {e}"))?;
    let mut config = ClientConfig {
        client_metadata_url: Some(CIMD_URL.into()),
        ..ClientConfig::default()
    };
    let ctx: serde_json::Value = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or_default();
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let auth = auth_settings(&scenario, &ctx)?;
    if auth.grant.is_interactive() {
        config.client_id = ctx["client_id"].as_str().map(str::to_owned);
        config.client_secret = ctx["client_secret"].as_str().map(str::to_owned);
    }
    let store = std::env::temp_dir().join(format!(
        "mcp-hub-conformance-{}/oauth-tokens.json",
        std::process::id()
    ));
    let manager = OAuthManager::new(
        store.clone(),
        "http://127.0.0.1:1/api/oauth/callback".into(),
    )
    .map_err(|e| e.to_string())?;
    let hook = manager.hook_with("conformance", &url, config, auth);
    let spec = TransportSpec::Http(HttpSpec {
        name: "conformance".into(),
        url: url.clone(),
        headers: Vec::new(),
        auth: Some(hook),
    });
    let mut d = Driver {
        manager,
        url,
        spec,
        authorizations: 0,
    };
    let result = async {
        let mut session = d.connect().await?;
        let tools = d.request(&mut session, "tools/list", None).await?;
        let tools: serde_json::Value =
            serde_json::from_str(tools.get()).map_err(|e| e.to_string())?;
        if let Some(name) = tools["tools"][0]["name"].as_str() {
            let params = serde_json::json!({"name": name, "arguments": {}}).to_string();
            d.request(&mut session, "tools/call", Some(&params)).await?;
        }
        session.close().await;
        Ok(())
    }
    .await;
    if let Some(dir) = store.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

/// The `auth` object a user would write for the scenario's server.
fn auth_settings(scenario: &str, ctx: &serde_json::Value) -> Result<AuthConfig, String> {
    let auth = match scenario {
        s if s.starts_with("auth/client-credentials-") => match ctx["private_key_pem"].as_str() {
            Some(pem) => serde_json::json!({
                "type": "client_credentials",
                "client_id": ctx["client_id"],
                "private_key": pem,
                "signing_algorithm": ctx["signing_algorithm"],
            }),
            None => serde_json::json!({
                "type": "client_credentials",
                "client_id": ctx["client_id"],
                "client_secret": ctx["client_secret"],
            }),
        },
        "auth/cross-app-access-complete-flow" | "auth/enterprise-managed-authorization" => {
            serde_json::json!({
                "type": "enterprise_managed",
                "client_id": ctx["client_id"],
                "client_secret": ctx["client_secret"],
                "idp_token_endpoint": ctx["idp_token_endpoint"],
                "idp_client_id": ctx["idp_client_id"],
                "id_token": ctx["idp_id_token"],
            })
        }
        "auth/wif-jwt-bearer" => serde_json::json!({
            "type": "jwt_bearer",
            "client_id": ctx["client_id"],
            "assertion": ctx["valid_jwt"],
        }),
        _ => serde_json::json!({}),
    };
    AuthConfig::from_json(&auth).map_err(|e| e.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mcp_hub_auth=debug".into()),
        )
        .init();
    if let Err(e) = run().await {
        eprintln!("conformance client failed: {e}");
        std::process::exit(1);
    }
}
