//! Opening a session: pick the transport, perform `initialize` / `notifications/initialized`,
//! negotiate the version, fall back from Streamable HTTP to legacy SSE where the spec says so,
//! and recognise servers that speak only the stateless 2026-07-28 protocol.

use std::sync::Arc;

use mcp_hub_protocol::types::{InitializeParams, InitializeResult};
use mcp_hub_protocol::{
    ErrorObject, LATEST_PROTOCOL_VERSION, MODERN_PROTOCOL_VERSION, Message,
    SUPPORTED_PROTOCOL_VERSIONS, methods,
};

use crate::engine::Engine;
use crate::wire::WireParts;
use crate::{
    ClientSession, HttpSpec, NotificationStream, RequestError, RequestOptions,
    ServerRequestHandler, SessionOptions, TransportError, TransportSpec,
};

/// JSON-RPC codes only the 2026-07-28 era uses: header mismatch, missing client capability,
/// unsupported protocol version.
const MODERN_ERROR_CODES: &[i64] = &[-32020, -32021, -32022];

pub(crate) async fn connect(
    spec: TransportSpec,
    options: SessionOptions,
    handler: Arc<dyn ServerRequestHandler>,
) -> Result<(ClientSession, NotificationStream), TransportError> {
    match spec {
        TransportSpec::Stdio(s) => {
            let parts = crate::stdio::open(&s, &options).await?;
            establish(parts, &options, handler, &s.name).await
        }
        TransportSpec::StreamableHttp(h) => {
            if let Some(s) = crate::modern::try_http(&h, &options, &handler).await? {
                return Ok(s);
            }
            match streamable(&h, &options, handler.clone()).await {
                Err(TransportError::ModernOnly) => reprobe(&h, &options, &handler).await,
                other => other,
            }
        }
        TransportSpec::Sse(h) => sse(&h, &options, handler).await,
        TransportSpec::Http(h) => {
            if let Some(s) = crate::modern::try_http(&h, &options, &handler).await? {
                return Ok(s);
            }
            http_handshake(h, options, handler).await
        }
    }
}

/// The handshake era over HTTP: Streamable HTTP, then legacy HTTP+SSE where the spec says so.
async fn http_handshake(
    h: HttpSpec,
    options: SessionOptions,
    handler: Arc<dyn ServerRequestHandler>,
) -> Result<(ClientSession, NotificationStream), TransportError> {
    match streamable(&h, &options, handler.clone()).await {
        Err(TransportError::ModernOnly) => reprobe(&h, &options, &handler).await,
        Err(TransportError::HttpStatus { body, .. }) if is_modern_body(&body) => {
            reprobe(&h, &options, &handler).await
        }
        Err(TransportError::HttpStatus { status, body }) if matches!(status, 400 | 404 | 405) => {
            tracing::info!(
                server = %h.name,
                status,
                "initialize over Streamable HTTP was refused; trying the legacy HTTP+SSE transport"
            );
            tracing::debug!(server = %h.name, %body, "refusal body");
            match sse(&h, &options, handler.clone()).await {
                // A modern-only server refuses a sessionless `initialize` for lack of `_meta`
                // (-32602), then the GET with an error that names its era.
                Err(TransportError::HttpStatus { body, .. }) if is_modern_body(&body) => {
                    reprobe(&h, &options, &handler).await
                }
                other => other,
            }
        }
        other => other,
    }
}

/// A server remembered as handshake-era refused the handshake with a 2026-07-28 error: it
/// changed (or the probe was wrong once); forget and probe again.
async fn reprobe(
    h: &HttpSpec,
    options: &SessionOptions,
    handler: &Arc<dyn ServerRequestHandler>,
) -> Result<(ClientSession, NotificationStream), TransportError> {
    crate::modern::forget(&crate::modern::http_key(h));
    match crate::modern::try_http(h, options, handler).await? {
        Some(s) => Ok(s),
        None => Err(TransportError::ModernOnly),
    }
}

async fn streamable(
    spec: &HttpSpec,
    options: &SessionOptions,
    handler: Arc<dyn ServerRequestHandler>,
) -> Result<(ClientSession, NotificationStream), TransportError> {
    let parts = crate::streamable::open_streamable(spec, options).await?;
    establish(parts, options, handler, &spec.name).await
}

async fn sse(
    spec: &HttpSpec,
    options: &SessionOptions,
    handler: Arc<dyn ServerRequestHandler>,
) -> Result<(ClientSession, NotificationStream), TransportError> {
    let parts = crate::sse_client::open_sse(spec, options).await?;
    establish(parts, options, handler, &spec.name).await
}

/// Runs the handshake over an opened wire. On any failure the wire is closed (for stdio: the
/// child is stopped) before the error is returned.
pub(crate) async fn establish(
    parts: WireParts,
    options: &SessionOptions,
    handler: Arc<dyn ServerRequestHandler>,
    name: &str,
) -> Result<(ClientSession, NotificationStream), TransportError> {
    let (engine, notifications) = Engine::start(
        parts,
        handler.clone(),
        name,
        options.request_timeout,
        options.abandoned_grace,
    );
    // If the caller gives up on `connect` (drops the future), nothing else would ever close
    // the wire: the reader task keeps the engine alive and a child would run on unowned.
    let mut abandoned = CloseOnDrop(Some(engine.clone()));
    let outcome = handshake(&engine, options).await;
    abandoned.0 = None;
    match outcome {
        Ok(init) => Ok((ClientSession::new(engine, init), notifications)),
        // A stdio server keeps running after refusing `initialize`, and the era has no
        // handshake: ask it what it is on the same pipe.
        Err(TransportError::ModernOnly) if engine.wire().kind() == "stdio" => {
            match crate::modern::discover(&engine, options).await {
                Ok(Some(found)) => Ok((found.into_session(engine, handler), notifications)),
                Ok(None) => {
                    engine.close().await;
                    Err(TransportError::ModernOnly)
                }
                Err(e) => {
                    engine.close().await;
                    Err(e)
                }
            }
        }
        Err(e) => {
            engine.close().await;
            Err(e)
        }
    }
}

struct CloseOnDrop(Option<Arc<Engine>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(engine) = self.0.take() {
            engine.close_detached();
        }
    }
}

async fn handshake(
    engine: &Engine,
    options: &SessionOptions,
) -> Result<InitializeResult, TransportError> {
    let params = InitializeParams {
        protocol_version: LATEST_PROTOCOL_VERSION.to_owned(),
        capabilities: options.capabilities.clone(),
        client_info: options.client_info.clone(),
        extra: Default::default(),
    };
    let params = mcp_hub_protocol::to_raw(&params)
        .map_err(|e| TransportError::Protocol(format!("cannot encode initialize: {e}")))?;
    let request = RequestOptions {
        timeout: Some(options.initialize_timeout),
        ..RequestOptions::default()
    };
    let raw = engine
        .request(methods::INITIALIZE, Some(params), request, false)
        .await
        .map_err(|e| initialize_error(engine, e))?;
    let result: InitializeResult = serde_json::from_str(raw.get())
        .map_err(|e| TransportError::Initialize(format!("malformed initialize result: {e}")))?;
    check_version(&result.protocol_version)?;
    engine
        .notify(methods::INITIALIZED, None)
        .await
        .map_err(|e| {
            engine
                .closed_reason()
                .filter(|r| !matches!(r, TransportError::Closed))
                .unwrap_or(e)
        })?;
    tracing::debug!(
        server = %result.server_info.name,
        version = %result.protocol_version,
        "upstream session initialised"
    );
    Ok(result)
}

fn check_version(version: &str) -> Result<(), TransportError> {
    if SUPPORTED_PROTOCOL_VERSIONS.contains(&version) {
        Ok(())
    } else if version == MODERN_PROTOCOL_VERSION {
        Err(TransportError::ModernOnly)
    } else {
        Err(TransportError::UnsupportedVersion(version.to_owned()))
    }
}

fn initialize_error(engine: &Engine, e: RequestError) -> TransportError {
    match e {
        RequestError::Rpc(err) if is_modern_error(&err) => TransportError::ModernOnly,
        RequestError::Rpc(err) => {
            TransportError::Initialize(format!("upstream error {}: {}", err.code, err.message))
        }
        RequestError::Timeout(after) => {
            TransportError::Initialize(format!("no answer to initialize within {after:?}"))
        }
        // The connection died during the handshake: its own reason (e.g. the exit status) says
        // more than "closed".
        RequestError::Closed(reason) => engine
            .closed_reason()
            .unwrap_or(TransportError::Initialize(reason)),
        RequestError::Transport(TransportError::HttpStatus { status, body })
            if is_modern_body(&body) =>
        {
            tracing::debug!(status, %body, "initialize refused with a 2026-07-28 error");
            TransportError::ModernOnly
        }
        RequestError::Transport(e) => e,
    }
}

/// Whether an error answer to `initialize` says the server is of the stateless 2026-07-28 era:
/// one of that era's error codes, `-32601` (a handshake-era server always implements
/// `initialize`; a modern-only one does not know it), or a message or data naming the version.
pub(crate) fn is_modern_error(err: &ErrorObject) -> bool {
    MODERN_ERROR_CODES.contains(&err.code)
        || err.code == mcp_hub_protocol::ErrorCode::METHOD_NOT_FOUND.0
        || err.message.contains(MODERN_PROTOCOL_VERSION)
        || err
            .data
            .as_ref()
            .is_some_and(|d| d.get().contains(MODERN_PROTOCOL_VERSION))
}

/// Whether an HTTP error body is a JSON-RPC error of the 2026-07-28 era.
pub(crate) fn is_modern_body(body: &str) -> bool {
    matches!(Message::from_str(body.trim()), Ok(Message::Error(e)) if is_modern_error(&e.error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client::testing::{Everything, FakeServer, Reply};

    struct Refuse;

    #[async_trait::async_trait]
    impl ServerRequestHandler for Refuse {
        async fn handle(
            &self,
            request: mcp_hub_protocol::Request,
            _attribution: crate::Attribution,
        ) -> Result<Box<mcp_hub_protocol::RawValue>, ErrorObject> {
            Err(ErrorObject::new(
                mcp_hub_protocol::ErrorCode::METHOD_NOT_FOUND,
                request.method,
            ))
        }
    }

    fn http(url: url::Url) -> HttpSpec {
        HttpSpec {
            name: "t".into(),
            url,
            headers: Vec::new(),
            auth: None,
        }
    }

    async fn auto(url: url::Url) -> Result<(ClientSession, NotificationStream), TransportError> {
        connect(
            TransportSpec::Http(http(url)),
            SessionOptions::default(),
            Arc::new(Refuse),
        )
        .await
    }

    async fn echo(session: &ClientSession) -> String {
        let params = mcp_hub_protocol::to_raw(
            &serde_json::json!({"name":"echo","arguments":{"message":"over http"}}),
        )
        .unwrap();
        let r = session
            .request("tools/call", Some(params), RequestOptions::default())
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(r.get()).unwrap();
        v["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn auto_uses_streamable_http_when_it_works() {
        let Some(server) = Everything::start("streamableHttp").await else {
            return;
        };
        let (session, _n) = auto(server.url("/mcp")).await.unwrap();
        assert_eq!(session.transport_kind(), "streamable-http");
        assert_eq!(session.protocol_version(), LATEST_PROTOCOL_VERSION);
        assert_eq!(echo(&session).await, "Echo: over http");
        session.close().await;
        server.stop().await;
    }

    #[tokio::test]
    async fn auto_falls_back_to_legacy_sse() {
        let Some(server) = Everything::start("sse").await else {
            return;
        };
        let (session, _n) = auto(server.url("/sse")).await.unwrap();
        assert_eq!(session.transport_kind(), "sse");
        assert_eq!(echo(&session).await, "Echo: over http");
        session.close().await;
        server.stop().await;
    }

    #[tokio::test]
    async fn auto_does_not_fall_back_for_a_modern_only_server() {
        let server = FakeServer::start("/mcp", |_| {
            Reply::json(
                400,
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2026-07-28"]}}}"#,
            )
        })
        .await;
        // The `server/discover` probe learns the era from the error: no `initialize`, no legacy
        // SSE attempt. (This server refuses even the version it lists, so nothing is left.)
        let e = auto(server.url.clone()).await.unwrap_err();
        assert!(
            matches!(&e, TransportError::UnsupportedVersion(v) if v == "2026-07-28"),
            "{e:?}"
        );
        // Two probes (the version it refuses is one it lists, so it is tried once more), then
        // nothing else.
        let methods: Vec<String> = server.seen().into_iter().map(|s| s.method).collect();
        assert_eq!(methods, ["POST", "POST"], "no legacy SSE attempt expected");
    }

    #[tokio::test]
    async fn an_empty_answer_to_the_probe_is_not_the_new_era() {
        // Like the conformance suite's client-scenario servers: `{}` for any unknown method.
        let server = FakeServer::start("/mcp", |seen| {
            let Ok(req) = serde_json::from_slice::<serde_json::Value>(&seen.body) else {
                return Reply::status(202);
            };
            let result = match req["method"].as_str() {
                Some("initialize") => serde_json::json!({"protocolVersion": "2025-11-25",
                    "serverInfo": {"name": "old", "version": "1"}, "capabilities": {}}),
                Some("tools/list") => serde_json::json!({"tools": []}),
                _ => serde_json::json!({}),
            };
            if req.get("id").is_none() {
                return Reply::status(202);
            }
            Reply::json(
                200,
                &serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "result": result})
                    .to_string(),
            )
        })
        .await;
        let (session, _n) = auto(server.url.clone()).await.unwrap();
        assert_eq!(session.protocol_version(), LATEST_PROTOCOL_VERSION);
        let methods: Vec<String> = server
            .seen()
            .into_iter()
            .filter_map(|s| serde_json::from_slice::<serde_json::Value>(&s.body).ok())
            .filter_map(|v| v["method"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            methods.get(..2),
            Some(&["server/discover".to_owned(), "initialize".to_owned()][..])
        );
        session.close().await;
    }

    #[tokio::test]
    async fn auto_falls_back_on_405_and_reports_the_sse_failure() {
        let server = FakeServer::start("/mcp", |seen| {
            if seen.method == "POST" {
                Reply::status(405).body("Method Not Allowed")
            } else {
                Reply::status(404).body("Not Found")
            }
        })
        .await;
        let e = auto(server.url.clone()).await.unwrap_err();
        assert!(
            matches!(e, TransportError::HttpStatus { status: 404, .. }),
            "{e:?}"
        );
        let methods: Vec<String> = server.seen().into_iter().map(|s| s.method).collect();
        assert_eq!(methods.first().map(String::as_str), Some("POST"));
        assert!(methods.iter().any(|m| m == "GET"), "{methods:?}");
    }

    #[test]
    fn versions() {
        for v in SUPPORTED_PROTOCOL_VERSIONS {
            assert!(check_version(v).is_ok());
        }
        assert!(matches!(
            check_version("2026-07-28"),
            Err(TransportError::ModernOnly)
        ));
        assert!(matches!(
            check_version("2023-01-01"),
            Err(TransportError::UnsupportedVersion(v)) if v == "2023-01-01"
        ));
    }

    #[test]
    fn modern_bodies_are_recognised() {
        assert!(is_modern_body(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2026-07-28"]}}}"#
        ));
        assert!(is_modern_body(
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"Header mismatch"}}"#
        ));
        assert!(is_modern_body(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad","data":{"supported":["2026-07-28"]}}}"#
        ));
        assert!(!is_modern_body("Cannot POST /sse"));
        assert!(!is_modern_body(""));
        assert!(!is_modern_body(
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#
        ));
    }
}
