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
    plain: Arc<plain::PlainPool>,
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
        HttpClient {
            inner,
            plain: Arc::default(),
        }
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
        // Shown only in errors: formatting it on every request cost ~2,500 instructions.
        let uri = req.uri().clone();
        let exchange = async {
            let (parts, body) = self.start(req).await?.into_parts();
            let body = read_body(body, max_body).await?;
            Ok((parts, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timed_out(&display_uri(&uri), timeout))?
    }

    /// Sends a request and returns as soon as the response head is in; no timeout.
    async fn start(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, TransportError> {
        if req.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
            return self.plain.send(req).await;
        }
        let uri = req.uri().clone();
        self.inner
            .request(req)
            .await
            .map_err(|e| TransportError::Http(format!("{}: {}", display_uri(&uri), describe(&e))))
    }
}

fn timed_out(url: &str, timeout: Duration) -> TransportError {
    TransportError::Http(format!("{url}: no response within {timeout:?}"))
}

/// A URL as messages show it: no userinfo, no query, no fragment (where keys tend to live).
/// Secrets elsewhere in it (a key in the path) are the caller's redactor's business.
pub(crate) fn display_url(url: &url::Url) -> String {
    let mut shown = format!("{}://", url.scheme());
    if let Some(host) = url.host_str() {
        shown.push_str(host);
    }
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() || url.fragment().is_some() {
        shown.push_str("?…");
    }
    shown
}

/// [`display_url`] for an `http::Uri`.
fn display_uri(uri: &http::Uri) -> String {
    let mut shown = String::new();
    if let Some(scheme) = uri.scheme_str() {
        shown.push_str(scheme);
        shown.push_str("://");
    }
    if let Some(host) = uri.host() {
        shown.push_str(host);
    }
    if let Some(port) = uri.port_u16() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(uri.path());
    if uri.query().is_some() {
        shown.push_str("?…");
    }
    shown
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
/// Copies the trace context the hub put in a request's `params._meta` into the POST's
/// `traceparent` / `tracestate` headers, so an HTTP server that traces by header (most OTel
/// instrumented ones) joins the same trace. Costs a scan of the params only when they mention
/// a `traceparent`; a value that does not parse is not sent.
pub(crate) fn trace_headers(msg: &mcp_hub_protocol::Message, headers: &mut HeaderMap) {
    use mcp_hub_protocol::trace::{TRACEPARENT, TRACESTATE, TraceContext};
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let mcp_hub_protocol::Message::Request(r) = msg else {
        return;
    };
    let Some(params) = r
        .params
        .as_deref()
        .filter(|p| p.get().contains(TRACEPARENT))
    else {
        return;
    };
    let Ok(Params { meta: Some(meta) }) = serde_json::from_str::<Params>(params.get()) else {
        return;
    };
    let Some(ctx) = TraceContext::from_meta(&meta) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.traceparent()) {
        headers.insert(HeaderName::from_static(TRACEPARENT), v);
    }
    if let Some(v) = ctx.state.and_then(|s| HeaderValue::from_str(&s).ok()) {
        headers.insert(HeaderName::from_static(TRACESTATE), v);
    }
}

/// The media type of a response, lowercase, without parameters; borrowed unless it had to be
/// lowercased (it is read on every answer).
pub(crate) fn media_type(headers: &HeaderMap) -> std::borrow::Cow<'_, str> {
    let t = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map_or("", str::trim);
    if t.bytes().any(|b| b.is_ascii_uppercase()) {
        t.to_ascii_lowercase().into()
    } else {
        t.into()
    }
}

/// Where a transport sends its requests: the URL, the static headers and the auth hook.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) url: url::Url,
    /// `url` parsed once for hyper: every request of a session goes there.
    uri: Option<http::Uri>,
    headers: HeaderMap,
    auth: Option<Arc<dyn AuthHook>>,
    client: &'static HttpClient,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("url", &display_url(&self.url))
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
        let mut url = spec.url.clone();
        if let Some(basic) = take_userinfo(&mut url)
            && !headers.contains_key(header::AUTHORIZATION)
        {
            headers.insert(header::AUTHORIZATION, basic);
        }
        Ok(Upstream {
            name: spec.name.clone(),
            uri: http::Uri::try_from(url.as_str()).ok(),
            url,
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
        let uri = match &self.uri {
            Some(uri) if url == &self.url => uri.clone(),
            _ => http::Uri::try_from(url.as_str())
                .map_err(|_| TransportError::Http(format!("invalid URL {}", display_url(url))))?,
        };
        let mut retries = 0;
        loop {
            let mut req = Request::new(Full::new(body.clone()));
            *req.method_mut() = method.clone();
            *req.uri_mut() = uri.clone();
            let headers = req.headers_mut();
            // Value by value: cloning the map would copy its table on every request.
            for (name, value) in &self.headers {
                headers.append(name, value.clone());
            }
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
                .map_err(|_| timed_out(&display_url(url), timeout))??;
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

/// Removes `user:password@` from `url` and returns it as a Basic `Authorization` value, as curl
/// and browsers use it. Left in the URL it would authenticate nothing (hyper sends only the host)
/// and it would reach the connection pool's keys, which hyper logs at `trace`.
fn take_userinfo(url: &mut url::Url) -> Option<HeaderValue> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("v={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let user = decode(url.username());
    let password = url.password().map(decode).unwrap_or_default();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
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

mod plain;

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
