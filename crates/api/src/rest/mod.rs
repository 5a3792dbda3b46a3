//! The REST management API of the Node `mcp-hub` and the `/api/events` stream.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mcp_hub_registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::body::{self, Body};
use crate::{ApiConfig, Control};

pub(crate) struct RestApi {
    _registry: Registry,
    _control: Arc<dyn Control>,
}

impl RestApi {
    pub(crate) fn new(
        registry: Registry,
        control: Arc<dyn Control>,
        _config: &ApiConfig,
        _shutdown: CancellationToken,
    ) -> RestApi {
        RestApi {
            _registry: registry,
            _control: control,
        }
    }

    pub(crate) fn event_clients(&self) -> usize {
        0
    }

    pub(crate) async fn handle(&self, _req: Request<Incoming>) -> Response<Body> {
        body::status(StatusCode::NOT_IMPLEMENTED)
    }
}
