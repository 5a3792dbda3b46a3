//! Mounting the hub inside an axum application: the hub opens no listener of its own; the
//! application serves its own routes and the hub's `/mcp`, legacy `/sse` + `/messages` and
//! `/api/*` under `/hub`. axum is only this example's (dev-)dependency: the hub's service is a
//! plain hyper / tower service that any server can mount.
//!
//! ```sh
//! cargo build --workspace --bins
//! cargo run -p mcp-hub-core --example embed_axum -- target/debug/mcp-hub-fixture          # check, exit
//! cargo run -p mcp-hub-core --example embed_axum -- target/debug/mcp-hub-fixture --serve  # until Ctrl-C
//! ```

use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mcp_hub_core::Hub;
use mcp_hub_core::api::ClientAddr;
use serde_json::json;

/// Hands the client's address to the hub (its per-client session quota), as its own listener
/// would.
async fn client_addr(mut req: Request, next: Next) -> axum::response::Response {
    if let Some(ConnectInfo(addr)) = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .copied()
    {
        req.extensions_mut().insert(ClientAddr(addr));
    }
    next.run(req).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .ok_or("usage: embed_axum <path to an MCP stdio server> [--serve]")?;
    let serve = args.next().as_deref() == Some("--serve");

    let hub = Hub::builder()
        .config_str(json!({"mcpServers": {"demo": {"command": server}}}).to_string())
        .listen(false)
        .start()
        .await?;
    hub.registry().wait_settled(Duration::from_secs(30)).await;

    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "my application" }))
        .nest_service("/hub", hub.http_service().nested("/hub"))
        .layer(axum::middleware::from_fn(client_addr));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("application: http://{addr}/");
    println!("MCP endpoint: http://{addr}/hub/mcp (legacy SSE: /hub/sse, REST: /hub/api/servers)");
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    if serve {
        tokio::signal::ctrl_c().await?;
    } else {
        // A client of the mounted REST API, to show the round trip.
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = http::Request::get("/hub/api/servers")
            .header("host", format!("127.0.0.1:{}", addr.port()))
            .body(Empty::<Bytes>::new())?;
        let body = tx.send_request(req).await?.into_body().collect().await?;
        let v: serde_json::Value = serde_json::from_slice(&body.to_bytes())?;
        for s in v["servers"].as_array().into_iter().flatten() {
            println!("GET /hub/api/servers: {} is {}", s["name"], s["status"]);
        }
    }
    hub.shutdown().await;
    server.abort();
    Ok(())
}
