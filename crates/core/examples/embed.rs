//! Embedding the hub in another program: start it on an ephemeral port with one stdio server,
//! call a tool through the registry, print the MCP endpoint, shut down (no child left behind).
//!
//! ```sh
//! cargo build --workspace --bins
//! cargo run -p mcp-hub-core --example embed -- target/debug/mcp-hub-fixture
//! ```

use std::time::Duration;

use mcp_hub_core::Hub;
use mcp_hub_core::registry::RequestOptions;
use serde_json::{Map, Value, json};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::args()
        .nth(1)
        .ok_or("usage: embed <path to an MCP stdio server>")?;
    let dir = std::env::temp_dir().join(format!("mcp-hub-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("servers.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"demo": {"command": server}}}).to_string(),
    )?;

    let hub = Hub::builder().config_file(&config).port(0).start().await?;
    println!("MCP endpoint: http://{}/mcp", hub.local_addr());
    hub.registry().wait_settled(Duration::from_secs(30)).await;
    let snap = hub.registry().snapshot("demo").ok_or("no server")?;
    println!(
        "demo: {} (pid {:?}, {} tools)",
        snap.status.as_str(),
        snap.pid,
        snap.tools.len()
    );

    let mut params = Map::new();
    params.insert("name".into(), json!("demo__echo"));
    params.insert(
        "arguments".into(),
        json!({"text": "hello from an embedding program"}),
    );
    let result = hub
        .registry()
        .call_tool(params, RequestOptions::default())
        .await?;
    let v: Value = serde_json::from_str(result.get())?;
    println!("demo__echo -> {}", v["content"][0]["text"]);

    hub.shutdown().await;
    if let Some(pid) = snap.pid {
        let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
        println!("server process {pid} gone after shutdown: {gone}");
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
