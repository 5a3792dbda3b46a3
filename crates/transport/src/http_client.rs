//! The process-wide HTTP(S) client and the request plumbing both HTTP transports share: static
//! headers, the auth hook's 401/403 retry, bounded body reads and an SSE event reader.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_hub_protocol::sse;

use crate::{AuthChallenge, AuthHook, HttpSpec, TransportError};

type Inner = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How long establishing a TCP connection may take, whatever the caller's overall timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Retries of one request after a 401/403 for which the auth hook had new credentials: a new
/// token, then a DPoP nonce (RFC 9449 §9) the server wants in the proof of that token.
const MAX_AUTH_RETRIES: u32 = 2;

/// How much of an error response's body is kept for the error message.
const ERROR_BODY_EXCERPT: usize = 512;

/// A pooled HTTP/1.1 + HTTP/2 client for `http://` and `https://` URLs, with rustls (ring) and
/// the webpki root certificates. Cheap to clone; [`HttpClient::shared`] is the one the hub uses.
#[derive(Clone)]
pub struct HttpClient {
    inner: Inner,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

static SHARED: OnceLock<HttpClient> = OnceLock::new();

impl HttpClient {
    /// Default bound of a response body read by [`HttpClient::send`].
    pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

    /// The process-wide client, created on first use. Connections are pooled across callers.
    pub fn shared() -> &'static HttpClient {
        SHARED.get_or_init(HttpClient::new)
    }

    fn new() -> HttpClient {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // Naming the provider explicitly means rustls never has to guess a process-wide default.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        HttpClient { inner }
    }

    /// Sends a request and reads the whole response, whatever its status, within `timeout`.
    /// The body is limited to [`HttpClient::DEFAULT_BODY_LIMIT`].
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(http::response::Parts, Bytes), TransportError> {
        self.send_with_limit(req, timeout, Self::DEFAULT_BODY_LIMIT)
            .await
    }

    /// Like [`HttpClient::send`] with an explicit body limit; a longer body is an error.
    pub async fn send_with_limit(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<(http::response::Parts, Bytes), TransportError> {
        let url = req.uri().to_string();
        let exchange = async {
            let (parts, body) = self.start(req).await?.into_parts();
            let body = read_body(body, max_body).await?;
            Ok((parts, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timed_out(&url, timeout))?
    }

    /// Sends a request and returns as soon as the response head is in; no timeout.
    async fn start(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, TransportError> {
        let url = req.uri().to_string();
        self.inner
            .request(req)
            .await
            .map_err(|e| TransportError::Http(format!("{url}: {}", describe(&e))))
    }
}

fn timed_out(url: &str, timeout: Duration) -> TransportError {
    TransportError::Http(format!("{url}: no response within {timeout:?}"))
}

/// An error with its chain of causes: hyper's top-level messages alone ("client error
/// (Connect)") do not say what went wrong.
pub(crate) fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Reads a whole body, failing once it exceeds `limit` bytes.
pub(crate) async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, TransportError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| TransportError::Http(describe(&e)))?;
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > limit {
                return Err(TransportError::Http(format!(
                    "response body larger than {limit} bytes"
                )));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Turns a response the transport cannot handle into [`TransportError::HttpStatus`], with the
/// start of its body (read for at most a few seconds) for the message.
pub(crate) async fn status_error(resp: Response<Incoming>) -> TransportError {
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut excerpt = Vec::new();
    let read = async {
        while excerpt.len() < ERROR_BODY_EXCERPT {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        excerpt.extend_from_slice(&data);
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    excerpt.truncate(ERROR_BODY_EXCERPT);
    TransportError::HttpStatus {
        status,
        body: String::from_utf8_lossy(&excerpt).trim().to_owned(),
    }
}

/// The media type of a response, lower-cased, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Where a transport sends its requests: the URL, the static headers and the auth hook.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) url: url::Url,
    headers: HeaderMap,
    auth: Option<Arc<dyn AuthHook>>,
    client: &'static HttpClient,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Upstream {
    pub(crate) fn new(spec: &HttpSpec) -> Result<Upstream, TransportError> {
        if !matches!(spec.url.scheme(), "http" | "https") {
            return Err(TransportError::Http(format!(
                "unsupported URL scheme `{}` (expected http or https)",
                spec.url.scheme()
            )));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TransportError::Http(format!("invalid header name `{name}`")))?;
            // The value may be a secret: name the header only.
            let value = HeaderValue::from_str(value)
                .map_err(|_| TransportError::Http(format!("invalid value for header `{name}`")))?;
            headers.append(name, value);
        }
        Ok(Upstream {
            name: spec.name.clone(),
            url: spec.url.clone(),
            headers,
            auth: spec.auth.clone(),
            client: HttpClient::shared(),
        })
    }

    /// Sends a request to `url` and returns the response head (whatever the status, except the
    /// auth challenges handled here) once it arrives within `timeout`; the body is left to the
    /// caller. The static headers come first, so the `extra` ones (and `Authorization` from the
    /// hook) replace same-named static ones. A 401, or a 403 with `insufficient_scope`, goes to
    /// the auth hook and the request is retried (at most [`MAX_AUTH_RETRIES`] times) while the hook
    /// has new credentials.
    pub(crate) async fn exchange(
        &self,
        method: Method,
        url: &url::Url,
        extra: &HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response<Incoming>, TransportError> {
        let uri = http::Uri::try_from(url.as_str())
            .map_err(|_| TransportError::Http(format!("invalid URL {url}")))?;
        let mut retries = 0;
        loop {
            let mut req = Request::new(Full::new(body.clone()));
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri.clone();
            let headers = req.headers_mut();
            headers.extend(self.headers.clone());
            for (name, value) in extra {
                headers.insert(name, value.clone());
            }
            if let Some(auth) = &self.auth {
                for (name, value) in auth.credentials(&method, url).await? {
                    headers.insert(name, value);
                }
            }
            let resp = tokio::time::timeout(timeout, self.client.start(req))
                .await
                .map_err(|_| timed_out(url.as_str(), timeout))??;
            if let Some(auth) = &self.auth {
                auth.on_response(url, resp.headers());
            }
            let Some(challenge) = challenge(&resp, url) else {
                return Ok(resp);
            };
            drop(resp);
            let retry = match &self.auth {
                Some(auth) if retries < MAX_AUTH_RETRIES => {
                    auth.on_unauthorized(&challenge).await?
                }
                _ => false,
            };
            if !retry {
                return Err(TransportError::Unauthorized(challenge));
            }
            tracing::debug!(server = %self.name, status = challenge.status, "retrying with new credentials");
            retries += 1;
        }
    }
}

/// The auth challenge a response carries: any 401, and a 403 whose `WWW-Authenticate` says
/// `insufficient_scope` (step-up authorisation). Other 403s are plain errors.
fn challenge(resp: &Response<Incoming>, url: &url::Url) -> Option<AuthChallenge> {
    let www_authenticate = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let wanted = match resp.status() {
        StatusCode::UNAUTHORIZED => true,
        StatusCode::FORBIDDEN => www_authenticate
            .as_deref()
            .is_some_and(|v| v.contains("insufficient_scope")),
        _ => false,
    };
    wanted.then(|| AuthChallenge {
        status: resp.status().as_u16(),
        www_authenticate,
        url: url.clone(),
    })
}

/// Reads server-sent events from a response body, bounded per event.
pub(crate) struct SseReader {
    body: Incoming,
    decoder: sse::Decoder,
    ready: std::collections::VecDeque<sse::Event>,
}

impl fmt::Debug for SseReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseReader")
            .field("decoder", &self.decoder)
            .finish_non_exhaustive()
    }
}

impl SseReader {
    pub(crate) fn new(body: Incoming, max_event_bytes: usize) -> SseReader {
        SseReader {
            body,
            decoder: sse::Decoder::new(max_event_bytes),
            ready: Default::default(),
        }
    }

    /// The next event; `Ok(None)` when the body ended. Cancel-safe: nothing is lost when the
    /// future is dropped.
    pub(crate) async fn next(&mut self) -> Result<Option<sse::Event>, TransportError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| TransportError::Http(describe(&e)))?;
            if let Ok(data) = frame.into_data() {
                let events = self
                    .decoder
                    .feed(&data)
                    .map_err(|e| TransportError::Protocol(e.to_string()))?;
                self.ready.extend(events);
            }
        }
    }

    /// The last event id of this stream, for `Last-Event-ID`.
    pub(crate) fn last_event_id(&self) -> Option<&str> {
        self.decoder.last_event_id()
    }

    /// The reconnection delay the server asked for on this stream.
    pub(crate) fn retry(&self) -> Option<Duration> {
        self.decoder.retry().map(Duration::from_millis)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A scripted HTTP/1.1 server on 127.0.0.1:0 and a launcher for the reference
    //! `server-everything`, for the transports' unit tests.

    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;

    /// One request as the fake server saw it.
    #[derive(Debug, Clone)]
    pub(crate) struct Seen {
        pub(crate) method: String,
        pub(crate) path: String,
        pub(crate) headers: Vec<(String, String)>,
        pub(crate) body: Vec<u8>,
    }

    impl Seen {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        pub(crate) fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or_default()
        }
    }

    /// What the fake server answers. Every connection is closed after one exchange, so the
    /// client never reuses one.
    #[derive(Debug, Clone)]
    pub(crate) struct Reply {
        pub(crate) status: u16,
        pub(crate) headers: Vec<(String, String)>,
        pub(crate) body: Vec<u8>,
        /// The body is ended by closing the connection (an SSE stream); otherwise it has a
        /// `Content-Length`.
        pub(crate) streaming: bool,
        /// For a streaming reply: keep the connection open after the body until the server
        /// stops, instead of dropping it.
        pub(crate) hold: bool,
    }

    impl Reply {
        pub(crate) fn status(status: u16) -> Reply {
            Reply {
                status,
                headers: Vec::new(),
                body: Vec::new(),
                streaming: false,
                hold: false,
            }
        }

        pub(crate) fn json(status: u16, body: &str) -> Reply {
            Reply::status(status)
                .header("content-type", "application/json")
                .body(body)
        }

        pub(crate) fn sse(body: &str, hold: bool) -> Reply {
            Reply {
                streaming: true,
                hold,
                ..Reply::status(200)
                    .header("content-type", "text/event-stream")
                    .body(body)
            }
        }

        pub(crate) fn header(mut self, name: &str, value: &str) -> Reply {
            self.headers.push((name.to_owned(), value.to_owned()));
            self
        }

        pub(crate) fn body(mut self, body: &str) -> Reply {
            self.body = body.as_bytes().to_vec();
            self
        }
    }

    type Handler = Box<dyn Fn(&Seen) -> Reply + Send + Sync>;

    /// A scripted server; stops (dropping held streams) when dropped.
    pub(crate) struct FakeServer {
        pub(crate) url: url::Url,
        seen: std::sync::Arc<Mutex<Vec<Seen>>>,
        stop: CancellationToken,
    }

    impl Drop for FakeServer {
        fn drop(&mut self) {
            self.stop.cancel();
        }
    }

    impl FakeServer {
        pub(crate) async fn start(
            path: &str,
            handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
        ) -> FakeServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
            let stop = CancellationToken::new();
            let handler: std::sync::Arc<Handler> = std::sync::Arc::new(Box::new(handler));
            let (s, st) = (seen.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    let conn = tokio::select! {
                        c = listener.accept() => c,
                        () = st.cancelled() => return,
                    };
                    let Ok((sock, _)) = conn else { return };
                    let (handler, seen, stop) = (handler.clone(), s.clone(), st.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            () = serve(sock, &**handler, &seen, &stop) => {}
                            () = stop.cancelled() => {}
                        }
                    });
                }
            });
            FakeServer {
                url: format!("http://{addr}{path}").parse().unwrap(),
                seen,
                stop,
            }
        }

        pub(crate) fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    async fn serve(
        mut sock: TcpStream,
        handler: &(dyn Fn(&Seen) -> Reply + Send + Sync),
        seen: &Mutex<Vec<Seen>>,
        stop: &CancellationToken,
    ) {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_owned();
        let path = first.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end..].to_vec();
        while body.len() < len {
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        let req = Seen {
            method,
            path,
            headers,
            body,
        };
        seen.lock().unwrap().push(req.clone());
        let reply = handler(&req);
        let mut out = format!(
            "HTTP/1.1 {} Scripted\r\nconnection: close\r\n",
            reply.status
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !reply.streaming {
            out.push_str(&format!("content-length: {}\r\n", reply.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&reply.body);
        if sock.write_all(&bytes).await.is_err() {
            return;
        }
        let _ = sock.flush().await;
        if reply.streaming && reply.hold {
            stop.cancelled().await;
        }
    }

    /// A running `server-everything` in HTTP mode, killed when dropped.
    pub(crate) struct Everything {
        child: tokio::process::Child,
        pub(crate) port: u16,
    }

    impl Everything {
        /// Starts `node $MCP_HUB_SERVER_EVERYTHING <mode>` on a free loopback port, or `None`
        /// (with the reason printed) when the peer is not installed.
        pub(crate) async fn start(mode: &str) -> Option<Everything> {
            let Some(script) = std::env::var_os("MCP_HUB_SERVER_EVERYTHING") else {
                eprintln!("skipping: MCP_HUB_SERVER_EVERYTHING is not set");
                return None;
            };
            // Bind-and-release: another process could take the port in between; acceptable in
            // tests since the server fails loudly and the test then fails to connect.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = tokio::process::Command::new("node")
                .arg(script)
                .arg(mode)
                .env("PORT", port.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("node must be on PATH when MCP_HUB_SERVER_EVERYTHING is set");
            let server = Everything { child, port };
            for _ in 0..200 {
                if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    return Some(server);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("server-everything did not listen on port {port} within 10 s");
        }

        pub(crate) fn url(&self, path: &str) -> url::Url {
            format!("http://127.0.0.1:{}{path}", self.port)
                .parse()
                .unwrap()
        }

        pub(crate) async fn stop(mut self) {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{FakeServer, Reply};
    use super::*;

    fn get(url: &url::Url) -> Request<Full<Bytes>> {
        Request::get(url.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn send_reads_bounded_bodies_whatever_the_status() {
        let server = FakeServer::start("/meta", |seen| match seen.path.as_str() {
            "/meta" => Reply::json(200, r#"{"issuer":"x"}"#),
            "/big" => Reply::json(200, &"1".repeat(5000)),
            _ => Reply::json(400, r#"{"error":"invalid_grant"}"#),
        })
        .await;
        let client = HttpClient::shared();
        let (parts, body) = client
            .send(get(&server.url), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(&body[..], br#"{"issuer":"x"}"#);

        let (parts, body) = client
            .send(
                get(&server.url.join("/token").unwrap()),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(parts.status, 400);
        assert_eq!(&body[..], br#"{"error":"invalid_grant"}"#);

        let err = client
            .send_with_limit(
                get(&server.url.join("/big").unwrap()),
                Duration::from_secs(5),
                4096,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than 4096"), "{err}");
    }

    #[tokio::test]
    async fn send_times_out_and_reports_tls_failures() {
        // A listener that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let url: url::Url = format!("http://{addr}/").parse().unwrap();
        let err = HttpClient::shared()
            .send(get(&url), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no response within"), "{err}");
        hold.abort();

        // Plain HTTP where TLS is expected: the handshake fails with an error, not a panic.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plain = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut sock, _)) = listener.accept().await {
                let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let https: url::Url = format!("https://{addr}/").parse().unwrap();
        let err = HttpClient::shared()
            .send(get(&https), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TransportError::Http(m) if !m.contains("no response")),
            "{err}"
        );
        plain.abort();
    }

    #[tokio::test]
    async fn only_insufficient_scope_403s_are_auth_challenges() {
        let server = FakeServer::start("/", |seen| match seen.path.as_str() {
            "/scope" => Reply::status(403).header(
                "www-authenticate",
                r#"Bearer error="insufficient_scope", scope="a b""#,
            ),
            _ => Reply::status(403).body("forbidden"),
        })
        .await;
        let upstream = Upstream::new(&HttpSpec {
            name: "t".into(),
            url: server.url.clone(),
            headers: vec![],
            auth: None,
        })
        .unwrap();
        let scope_url = server.url.join("/scope").unwrap();
        let err = upstream
            .exchange(
                Method::GET,
                &scope_url,
                &HeaderMap::new(),
                Bytes::new(),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        match err {
            TransportError::Unauthorized(c) => {
                assert_eq!(c.status, 403);
                assert_eq!(c.url, scope_url);
                assert!(c.www_authenticate.unwrap().contains("insufficient_scope"));
            }
            other => panic!("expected a challenge, got {other:?}"),
        }
        let plain = upstream
            .exchange(
                Method::GET,
                &server.url.join("/plain").unwrap(),
                &HeaderMap::new(),
                Bytes::new(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        match status_error(plain).await {
            TransportError::HttpStatus { status, body } => {
                assert_eq!((status, body.as_str()), (403, "forbidden"));
            }
            other => panic!("expected HttpStatus, got {other:?}"),
        }
    }

    #[test]
    fn invalid_static_headers_are_refused_without_their_values() {
        let spec = |name: &str, value: &str| HttpSpec {
            name: "t".into(),
            url: "http://127.0.0.1:1/".parse().unwrap(),
            headers: vec![(name.into(), value.into())],
            auth: None,
        };
        let err = Upstream::new(&spec("Authorization", "Bearer secret\n")).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(Upstream::new(&spec("bad name", "v")).is_err());
        let mut ftp = spec("a", "b");
        ftp.url = "ftp://127.0.0.1/".parse().unwrap();
        assert!(Upstream::new(&ftp).is_err());
    }
}
