//! Response shapes of the REST API: successes carry `timestamp`, failures are
//! `{error, code, data, timestamp}` with a meaningful HTTP status.

use http::{HeaderValue, Response, StatusCode, header};
use mcp_hub_protocol::RawValue;
use mcp_hub_registry::{RegistryError, RequestError, RouteError, TransportError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::body::{self, Body};

/// A request that did not succeed, rendered as the Node hub's error body. Boxed: it travels
/// through every `Result` of the routes.
#[derive(Debug)]
pub(crate) struct Failure(Box<Fields>);

#[derive(Debug)]
pub(crate) struct Fields {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) data: Map<String, Value>,
    pub(crate) allow: Option<String>,
}

impl std::ops::Deref for Failure {
    type Target = Fields;
    fn deref(&self) -> &Fields {
        &self.0
    }
}

impl std::ops::DerefMut for Failure {
    fn deref_mut(&mut self) -> &mut Fields {
        &mut self.0
    }
}

pub(crate) type Reply = Result<Response<Body>, Failure>;

impl Failure {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Failure(Box::new(Fields {
            status,
            code,
            message: message.into(),
            data: Map::new(),
            allow: None,
        }))
    }

    /// A 400 naming the offending request field (the Node hub's `ValidationError`).
    pub(crate) fn validation(message: impl Into<String>, field: &str) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message).with("field", field)
    }

    pub(crate) fn server_not_found(server: &str) -> Self {
        Failure::new(
            StatusCode::NOT_FOUND,
            "SERVER_NOT_FOUND",
            "Server not found",
        )
        .with("server", server)
    }

    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_owned(), value.into());
        self
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let f = *self.0;
        // `data` is always an object: mcphub.nvim merges it into a Lua table and would choke on
        // `null`.
        let v = serde_json::json!({
            "error": f.message,
            "code": f.code,
            "data": f.data,
            "timestamp": body::now_iso(),
        });
        let mut r = body::json(f.status, &v);
        if let Some(allow) = f.allow
            && let Ok(h) = HeaderValue::from_str(&allow)
        {
            r.headers_mut().insert(header::ALLOW, h);
        }
        r
    }

    /// A failed upstream call of a REST route. `code` is the route's Node error code
    /// (`TOOL_EXECUTION_ERROR`, ...). The Node hub answered all of these with 500 and leaked the
    /// numeric JSON-RPC code into `code`; here the status says whose fault it was and the
    /// upstream error is kept whole in `data.originalError`.
    /// `requested` is the caller's timeout, reported instead of the time actually waited.
    pub(crate) fn upstream(
        err: RouteError,
        code: &'static str,
        server: &str,
        requested: Option<std::time::Duration>,
    ) -> Self {
        match err {
            RouteError::ServerNotFound(_) => Failure::server_not_found(server),
            RouteError::ServerNotConnected(_) => not_connected(server, None),
            RouteError::InvalidParams(m) => {
                Failure::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", m)
            }
            e @ (RouteError::UnknownTool(_)
            | RouteError::UnknownPrompt(_)
            | RouteError::UnknownResource(_)) => {
                Failure::new(StatusCode::NOT_FOUND, code, e.to_string())
            }
            RouteError::Isolation(m) => Failure::new(StatusCode::SERVICE_UNAVAILABLE, code, m),
            e @ RouteError::SkillVerification { .. } => {
                Failure::new(StatusCode::BAD_GATEWAY, code, e.to_string())
            }
            RouteError::Upstream(RequestError::Rpc(e)) => {
                let mut original = Map::new();
                original.insert("code".into(), e.code.into());
                original.insert("message".into(), e.message.clone().into());
                if let Some(d) = &e.data {
                    original.insert(
                        "data".into(),
                        serde_json::from_str(d.get()).unwrap_or(Value::Null),
                    );
                }
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    code,
                    format!("MCP error {}: {}", e.code, e.message),
                )
                .with("originalError", original)
            }
            RouteError::Upstream(RequestError::Timeout(d)) => Failure::new(
                StatusCode::GATEWAY_TIMEOUT,
                "REQUEST_TIMEOUT",
                "MCP error -32001: Request timed out",
            )
            .with(
                "timeout",
                u64::try_from(requested.unwrap_or(d).as_millis()).unwrap_or(u64::MAX),
            ),
            RouteError::Upstream(RequestError::Closed(reason)) => {
                not_connected(server, Some(format!("Connection closed: {reason}")))
            }
            RouteError::Upstream(RequestError::Transport(TransportError::Closed)) => {
                not_connected(server, None)
            }
            RouteError::Upstream(RequestError::Transport(e)) => {
                Failure::new(StatusCode::BAD_GATEWAY, code, e.to_string())
            }
        }
    }

    /// A failed lifecycle operation (start, stop, refresh).
    pub(crate) fn lifecycle(err: RegistryError, server: &str) -> Self {
        match err {
            RegistryError::ServerNotFound(_) => Failure::server_not_found(server),
            e @ RegistryError::Connect { .. } => {
                Failure::new(StatusCode::BAD_GATEWAY, "CONNECTION_ERROR", e.to_string())
                    .with("server", server)
            }
            RegistryError::ShuttingDown => shutting_down(),
        }
    }
}

pub(crate) fn not_connected(server: &str, message: Option<String>) -> Failure {
    Failure::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_NOT_CONNECTED",
        message.unwrap_or_else(|| "Server not connected".to_owned()),
    )
    .with("server", server)
}

pub(crate) fn shutting_down() -> Failure {
    Failure::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "SHUTTING_DOWN",
        "The hub is shutting down",
    )
}

/// A 200 JSON object with `timestamp` appended.
pub(crate) fn ok(mut v: Value) -> Response<Body> {
    if let Some(obj) = v.as_object_mut() {
        obj.insert("timestamp".into(), body::now_iso().into());
    }
    body::json(StatusCode::OK, &v)
}

/// `{"result": <upstream result verbatim>, "timestamp": ...}` without re-parsing the result.
pub(crate) fn ok_result(result: &RawValue) -> Response<Body> {
    #[derive(Serialize)]
    struct R<'a> {
        result: &'a RawValue,
        timestamp: String,
    }
    let bytes = serde_json::to_vec(&R {
        result,
        timestamp: body::now_iso(),
    })
    .unwrap_or_default();
    body::json_bytes(StatusCode::OK, bytes)
}
