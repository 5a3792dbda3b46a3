//! What every registry test needs: the fixture server as a stdio upstream.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_hub_registry::{Connector, Prefix, RegistryOptions, ServerDefinition};
use mcp_hub_transport::{StdioSpec, TransportSpec};

pub fn fixture() -> Option<PathBuf> {
    mcp_hub_fixture::built_binary()
}

pub struct Fixed(pub TransportSpec);

#[async_trait::async_trait]
impl Connector for Fixed {
    async fn spec(&self) -> Result<TransportSpec, String> {
        Ok(self.0.clone())
    }
}

pub fn def(name: &str, prefix: Prefix, args: &[&str]) -> Option<ServerDefinition> {
    let path = fixture()?;
    let env = std::env::vars()
        .filter(|(k, _)| k == "PATH" || k == "HOME")
        .collect();
    Some(ServerDefinition {
        name: name.to_owned(),
        display_name: None,
        description: None,
        transport_type: "stdio",
        prefix,
        disabled: false,
        request_timeout: None,
        config_source: None,
        client_context: Default::default(),
        tools: Default::default(),
        connector: Arc::new(Fixed(TransportSpec::Stdio(StdioSpec {
            name: name.to_owned(),
            command: path.display().to_string(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env,
            cwd: None,
            stderr: None,
        }))),
    })
}

pub fn fast() -> RegistryOptions {
    RegistryOptions {
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        initialize_timeout: Duration::from_secs(10),
        ..RegistryOptions::default()
    }
}

#[macro_export]
macro_rules! need_fixture {
    () => {
        if fixture().is_none() {
            eprintln!("skipping: mcp-hub-fixture is not built (cargo build --workspace --bins) and MCP_HUB_FIXTURE is unset");
            return;
        }
    };
}
