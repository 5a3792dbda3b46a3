//! The legacy HTTP+SSE client wire (MCP 2024-11-05): one long-lived GET event stream that first
//! names a POST endpoint, then carries every server message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http::header::{self, HeaderMap, HeaderValue};
use mcp_hub_protocol::{Incoming, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http_client::{self, SseReader, Upstream};
use crate::wire::{Inbound, InboundTx, Wire, WireParts, inbound_channel};
use crate::{HttpSpec, SessionOptions, TransportError};

/// Opens the event stream and waits (up to `initialize_timeout`) for the `endpoint` event.
pub(crate) async fn open_sse(
    spec: &HttpSpec,
    opts: &SessionOptions,
) -> Result<WireParts, TransportError> {
    let upstream = Upstream::new(spec)?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    let resp = upstream
        .exchange(
            Method::GET,
            &upstream.url,
            &headers,
            Bytes::new(),
            opts.initialize_timeout,
        )
        .await?;
    if !resp.status().is_success() {
        return Err(http_client::status_error(resp).await);
    }
    let media = http_client::media_type(resp.headers());
    if media != "text/event-stream" {
        return Err(TransportError::Protocol(format!(
            "expected an event stream from {}, got {media:?}",
            http_client::display_url(&upstream.url)
        )));
    }
    let mut reader = SseReader::new(resp.into_body(), opts.max_message_bytes);
    let (tx, rx) = inbound_channel();
    let wait_endpoint = async {
        loop {
            let Some(event) = reader.next().await? else {
                return Err(TransportError::Http(
                    "the SSE stream ended before the endpoint event".into(),
                ));
            };
            match event.event_type() {
                "endpoint" => return Ok(event.data),
                // Nothing should precede the endpoint; keep what fits rather than stall.
                "message" => {
                    if let Some(msg) = decode(&upstream, &event.data)
                        && tx.try_send(Ok(Inbound { msg, origin: None })).is_err()
                    {
                        tracing::warn!(server = %upstream.name, "dropping a message received before the endpoint");
                    }
                }
                _ => {}
            }
        }
    };
    let endpoint = tokio::time::timeout(opts.initialize_timeout, wait_endpoint)
        .await
        .map_err(|_| {
            TransportError::Http(format!(
                "no endpoint event from {} within {:?}",
                http_client::display_url(&upstream.url),
                opts.initialize_timeout
            ))
        })??;
    let endpoint = resolve_endpoint(&upstream.url, &endpoint)?;
    tracing::debug!(server = %upstream.name, endpoint = %http_client::display_url(&endpoint), "legacy SSE endpoint");

    let shared = Arc::new(Shared {
        upstream,
        endpoint,
        request_timeout: opts.request_timeout,
        inbound: Mutex::new(Some(tx)),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    let this = shared.clone();
    shared
        .tasks
        .spawn(async move { this.read_stream(reader).await });
    Ok(WireParts {
        wire: Arc::new(SseWire { shared }),
        inbound: rx,
    })
}

/// The endpoint event's data, a URI reference resolved against the SSE URL; it must stay on
/// the same origin, so a server cannot redirect the hub's messages (and credentials) elsewhere.
fn resolve_endpoint(sse_url: &url::Url, data: &str) -> Result<url::Url, TransportError> {
    let endpoint = sse_url
        .join(data.trim())
        .map_err(|e| TransportError::Protocol(format!("invalid endpoint {data:?}: {e}")))?;
    if endpoint.origin() != sse_url.origin() {
        return Err(TransportError::Protocol(format!(
            "endpoint {} is not on the origin of {}",
            http_client::display_url(&endpoint),
            http_client::display_url(sse_url)
        )));
    }
    Ok(endpoint)
}

fn decode(upstream: &Upstream, data: &str) -> Option<Message> {
    match Incoming::from_slice(data.as_bytes()) {
        Ok(Incoming::Single(m)) => Some(m),
        Ok(Incoming::Batch(_)) => {
            tracing::warn!(server = %upstream.name, "dropping a batch on a 2024-11-05 stream");
            None
        }
        Err(e) => {
            tracing::warn!(server = %upstream.name, error = %e, "dropping an undecodable SSE message");
            // If it says which call it answers, that call fails now.
            crate::salvage::unreadable_answer(data.as_bytes(), &e)
        }
    }
}

#[derive(Debug)]
struct SseWire {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    upstream: Upstream,
    endpoint: url::Url,
    request_timeout: Duration,
    inbound: Mutex<Option<InboundTx>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    fn take_sender(&self) -> Option<InboundTx> {
        self.inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Forwards the stream's messages until it ends; its end is the connection's end.
    async fn read_stream(&self, mut reader: SseReader) {
        let Some(tx) = self
            .inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        let reason = loop {
            let next = tokio::select! {
                n = reader.next() => n,
                () = self.cancel.cancelled() => return,
            };
            match next {
                Ok(Some(event)) if event.event_type() == "message" => {
                    let Some(msg) = decode(&self.upstream, &event.data) else {
                        continue;
                    };
                    let sent = tokio::select! {
                        r = tx.send(Ok(Inbound { msg, origin: None })) => r.is_ok(),
                        () = self.cancel.cancelled() => false,
                    };
                    if !sent {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break TransportError::Http("the SSE stream was closed".into()),
                Err(e) => break e,
            }
        };
        drop(tx);
        self.cancel.cancel();
        if let Some(tx) = self.take_sender() {
            let _ = tx.send_timeout(Err(reason), Duration::from_secs(5)).await;
        }
    }
}

#[async_trait::async_trait]
impl Wire for SseWire {
    async fn send(&self, msg: Message) -> Result<(), TransportError> {
        let shared = &self.shared;
        if shared.cancel.is_cancelled() {
            return Err(TransportError::Closed);
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        http_client::trace_headers(&msg, &mut headers);
        let post = shared.upstream.exchange(
            Method::POST,
            &shared.endpoint,
            &headers,
            Bytes::from(msg.to_vec()),
            shared.request_timeout,
        );
        let resp = tokio::select! {
            r = post => r?,
            () = shared.cancel.cancelled() => return Err(TransportError::Closed),
        };
        if !resp.status().is_success() {
            return Err(http_client::status_error(resp).await);
        }
        // Answers come on the event stream; the body is an acknowledgement. Reading it lets the
        // connection go back to the pool.
        let _ = tokio::time::timeout(
            shared.request_timeout,
            http_client::read_body(resp.into_body(), 64 * 1024),
        )
        .await;
        Ok(())
    }

    async fn close(&self) {
        let shared = &self.shared;
        shared.cancel.cancel();
        drop(shared.take_sender());
        shared.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), shared.tasks.wait()).await;
    }

    fn kind(&self) -> &'static str {
        "sse"
    }
}

#[cfg(test)]
mod tests {
    use mcp_hub_protocol::{RequestId, methods};
    use serde_json::json;

    use super::*;
    use crate::http_client::testing::{Everything, FakeServer, Reply};

    fn spec(url: url::Url) -> HttpSpec {
        HttpSpec {
            name: "legacy".into(),
            url,
            headers: vec![("X-Static".into(), "yes".into())],
            auth: None,
        }
    }

    async fn next(parts: &mut WireParts) -> Option<crate::wire::InboundItem> {
        tokio::time::timeout(Duration::from_secs(15), parts.inbound.recv())
            .await
            .expect("inbound item within 15 s")
    }

    async fn answer(parts: &mut WireParts, id: &RequestId) -> serde_json::Value {
        loop {
            match next(parts).await {
                Some(Ok(Inbound {
                    msg: Message::Response(r),
                    origin,
                })) if &r.id == id => {
                    assert_eq!(origin, None);
                    return serde_json::from_str(r.result.get()).unwrap();
                }
                Some(Ok(_)) => {}
                other => panic!("expected the answer to {id}, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn talks_to_server_everything() {
        let Some(server) = Everything::start("sse").await else {
            return;
        };
        let mut parts = open_sse(&spec(server.url("/sse")), &SessionOptions::default())
            .await
            .unwrap();
        assert_eq!(parts.wire.kind(), "sse");
        parts
            .wire
            .send(Message::request(
                RequestId::from(1),
                methods::INITIALIZE,
                Some(&json!({
                    "protocolVersion": "2024-11-05",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "0"},
                })),
            ))
            .await
            .unwrap();
        let init = answer(&mut parts, &RequestId::from(1)).await;
        assert_eq!(init["protocolVersion"], "2024-11-05");
        parts
            .wire
            .send(Message::notification(methods::INITIALIZED, None))
            .await
            .unwrap();
        parts
            .wire
            .send(Message::request(
                RequestId::from(2),
                methods::TOOLS_CALL,
                Some(&json!({"name": "echo", "arguments": {"message": "legacy"}})),
            ))
            .await
            .unwrap();
        let echoed = answer(&mut parts, &RequestId::from(2)).await;
        assert_eq!(echoed["content"][0]["text"], "Echo: legacy");
        parts.wire.close().await;
        while let Some(item) = next(&mut parts).await {
            assert!(item.is_ok(), "{item:?}");
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn posts_to_the_endpoint_and_dies_with_the_stream() {
        let server = FakeServer::start("/events", |seen| match seen.method.as_str() {
            "GET" => Reply::sse(
                "event: endpoint\ndata: /post?sid=1\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":1}}\n\n",
                false,
            ),
            _ => Reply::status(202).body("Accepted"),
        })
        .await;
        let mut parts = open_sse(&spec(server.url.clone()), &SessionOptions::default())
            .await
            .unwrap();
        match next(&mut parts).await {
            Some(Ok(m)) => {
                assert_eq!(m.msg.method(), Some("notifications/message"));
                assert_eq!(m.origin, None);
            }
            other => panic!("expected the log message, got {other:?}"),
        }
        // The server dropped the stream after that event: the connection is dead.
        match next(&mut parts).await {
            Some(Err(TransportError::Http(m))) => assert!(m.contains("closed"), "{m}"),
            other => panic!("expected the fatal error, got {other:?}"),
        }
        assert!(next(&mut parts).await.is_none());
        assert!(matches!(
            parts.wire.send(Message::notification("x", None)).await,
            Err(TransportError::Closed)
        ));
        let seen = server.seen();
        assert_eq!(seen[0].header("accept"), Some("text/event-stream"));
        assert_eq!(seen[0].header("x-static"), Some("yes"));
        assert_eq!(seen[0].path, "/events");
    }

    #[tokio::test]
    async fn send_posts_json_to_the_endpoint() {
        let server = FakeServer::start("/sse", |seen| match seen.method.as_str() {
            "GET" => Reply::sse("event: endpoint\ndata: /post?sid=1\n\n", true),
            _ if seen.path == "/post?sid=1" => Reply::status(202).body("Accepted"),
            _ => Reply::status(500),
        })
        .await;
        let parts = open_sse(&spec(server.url.clone()), &SessionOptions::default())
            .await
            .unwrap();
        parts
            .wire
            .send(Message::request(RequestId::from(5), "ping", None))
            .await
            .unwrap();
        let seen = server.seen();
        let post = seen.iter().find(|s| s.method == "POST").unwrap();
        assert_eq!(post.path, "/post?sid=1");
        assert_eq!(post.header("content-type"), Some("application/json"));
        assert_eq!(post.header("x-static"), Some("yes"));
        assert_eq!(
            post.json(),
            json!({"jsonrpc": "2.0", "id": 5, "method": "ping"})
        );
        parts.wire.close().await;
    }

    #[tokio::test]
    async fn refuses_a_foreign_endpoint_and_a_stream_without_one() {
        let foreign = FakeServer::start("/sse", |_| {
            Reply::sse("event: endpoint\ndata: http://192.0.2.1/steal\n\n", true)
        })
        .await;
        let err = open_sse(&spec(foreign.url.clone()), &SessionOptions::default())
            .await
            .err()
            .expect("a foreign endpoint is refused");
        assert!(matches!(err, TransportError::Protocol(_)), "{err}");

        let silent = FakeServer::start("/sse", |_| Reply::sse(": hello\n\n", true)).await;
        let opts = SessionOptions {
            initialize_timeout: Duration::from_millis(300),
            ..SessionOptions::default()
        };
        let err = open_sse(&spec(silent.url.clone()), &opts)
            .await
            .err()
            .expect("no endpoint, no connection");
        assert!(err.to_string().contains("no endpoint event"), "{err}");

        let not_sse = FakeServer::start("/sse", |_| Reply::json(404, "{}")).await;
        let err = open_sse(&spec(not_sse.url.clone()), &SessionOptions::default())
            .await
            .err()
            .expect("a 404 is refused");
        assert!(
            matches!(err, TransportError::HttpStatus { status: 404, .. }),
            "{err}"
        );
    }

    #[test]
    fn endpoints_resolve_relative_to_the_sse_url_on_the_same_origin() {
        let base: url::Url = "http://127.0.0.1:3001/sse".parse().unwrap();
        for (data, want) in [
            (
                "/message?sessionId=abc",
                "http://127.0.0.1:3001/message?sessionId=abc",
            ),
            (
                "messages/?session_id=1f",
                "http://127.0.0.1:3001/messages/?session_id=1f",
            ),
            (" http://127.0.0.1:3001/m \n", "http://127.0.0.1:3001/m"),
        ] {
            assert_eq!(resolve_endpoint(&base, data).unwrap().as_str(), want);
        }
        for data in [
            "http://evil.example/m",
            "//evil.example/m",
            "https://127.0.0.1:3001/m",
            "http://127.0.0.1:3002/m",
        ] {
            assert!(
                matches!(
                    resolve_endpoint(&base, data),
                    Err(TransportError::Protocol(_))
                ),
                "{data}"
            );
        }
    }
}
