//! End-to-end tests: each one starts the real `mcp-hub` binary on an ephemeral loopback port with
//! its own temporary config, HOME and XDG directories, and real upstream servers (the workspace's
//! fixture server; `server-everything` when `MCP_HUB_SERVER_EVERYTHING` is set).

mod answers;
mod api_doc;
mod backpressure;
mod cli;
mod cluster;
mod cluster_mrtr;
mod cluster_oauth;
mod cluster_ops;
mod cluster_pool;
mod cluster_tls;
mod console;
mod faults;
mod fidelity;
mod flags;
mod lifecycle;
mod limits;
mod logflood;
mod mcp;
mod messages;
mod metrics;
mod modern;
mod modern_listen;
mod modern_upstream;
mod node_side_by_side;
mod nvim;
mod oauth;
mod otlp_receiver;
mod passthrough;
mod profiles;
mod profiles_access;
mod profiles_caps;
mod profiles_listen;
mod profiles_modern;
mod reload;
mod rest;
mod routing;
mod search;
mod secrets;
mod security;
mod signals;
mod skills;
mod soak;
mod stdio;
mod tracing;

use serde_json::{Value, json};

/// A config entry that runs the fixture server with extra arguments.
pub(crate) fn fixture_entry(args: &[&str]) -> Value {
    json!({"command": mcp_hub_tests::fixture().display().to_string(), "args": args})
}

/// A config file with these servers.
pub(crate) fn config(servers: &[(&str, Value)]) -> String {
    let map: serde_json::Map<String, Value> = servers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({"mcpServers": map}).to_string()
}

/// A hub with two logging fixtures, both connected: `s` over stdio and `h` over Streamable
/// HTTP, so a test checks what each transport delivered in their transcripts.
pub(crate) struct StdioAndHttp {
    pub(crate) hub: mcp_hub_tests::Hub,
    pub(crate) stdio_log: std::path::PathBuf,
    pub(crate) http_log: std::path::PathBuf,
    _http: mcp_hub_tests::HttpFixture,
}

impl StdioAndHttp {
    /// Starts them, `extra` adding to the hub's command (flags, environment).
    pub(crate) fn start(
        extra: impl FnOnce(mcp_hub_tests::HubCmd) -> mcp_hub_tests::HubCmd,
    ) -> Self {
        let cmd = mcp_hub_tests::HubCmd::new();
        let stdio_log = cmd.dir().join("stdio.log");
        let http_log = cmd.dir().join("http.log");
        let http =
            mcp_hub_tests::HttpFixture::start(0, &["--log", &http_log.display().to_string()]);
        let cmd = cmd.config(
            "servers.json",
            &config(&[
                (
                    "s",
                    fixture_entry(&["--log", &stdio_log.display().to_string()]),
                ),
                ("h", json!({"url": http.url()})),
            ]),
        );
        let hub = extra(cmd).start();
        hub.wait_status(&["s", "h"], "connected");
        StdioAndHttp {
            hub,
            stdio_log,
            http_log,
            _http: http,
        }
    }

    /// Each server with its transcript.
    pub(crate) fn logs(&self) -> [(&'static str, &std::path::Path); 2] {
        [("s", &self.stdio_log), ("h", &self.http_log)]
    }
}
