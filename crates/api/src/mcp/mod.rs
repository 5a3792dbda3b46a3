//! The unified MCP endpoint: `/mcp` (Streamable HTTP, and the Node hub's legacy `GET /mcp`),
//! `GET /sse` + `POST /messages` (legacy HTTP+SSE).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mcp_hub_registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::ApiConfig;
use crate::body::{self, Body};

pub(crate) struct McpEndpoint {
    _registry: Registry,
}

impl McpEndpoint {
    pub(crate) fn new(
        registry: Registry,
        _config: &ApiConfig,
        _shutdown: CancellationToken,
    ) -> McpEndpoint {
        McpEndpoint {
            _registry: registry,
        }
    }

    pub(crate) fn session_count(&self) -> usize {
        0
    }

    pub(crate) async fn handle_mcp(&self, _req: Request<Incoming>) -> Response<Body> {
        body::status(StatusCode::NOT_IMPLEMENTED)
    }

    pub(crate) async fn handle_legacy_get(&self, _req: Request<Incoming>) -> Response<Body> {
        body::status(StatusCode::NOT_IMPLEMENTED)
    }

    pub(crate) async fn handle_legacy_post(&self, _req: Request<Incoming>) -> Response<Body> {
        body::status(StatusCode::NOT_IMPLEMENTED)
    }

    pub(crate) async fn close_all(&self) {}
}
