//! The HTTP seam: every OAuth request goes through [`HttpExchange`], implemented for the hub by
//! the transport crate's pooled client. Redirects are never followed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Request};
use http_body_util::Full;
use url::Url;

use crate::AuthError;
use crate::urls::display_url;

/// How long one OAuth HTTP exchange may take.
pub const OAUTH_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A whole HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (bounded by the implementation).
    pub body: Bytes,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends one request and returns the whole response, whatever its status.
#[async_trait::async_trait]
pub trait HttpExchange: Send + Sync + 'static {
    /// Performs the exchange; `Err` is a transport failure described for the user.
    async fn exchange(&self, req: Request<Bytes>) -> Result<HttpResponse, String>;
}

/// [`HttpExchange`] over `mcp_hub_transport::HttpClient::shared()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransportHttp;

#[async_trait::async_trait]
impl HttpExchange for TransportHttp {
    async fn exchange(&self, req: Request<Bytes>) -> Result<HttpResponse, String> {
        let (parts, body) = req.into_parts();
        let req = Request::from_parts(parts, Full::new(body));
        let (parts, body) = mcp_hub_transport::HttpClient::shared()
            .send(req, OAUTH_HTTP_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        Ok(HttpResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// A thin helper over an [`HttpExchange`] that builds the few request shapes OAuth needs.
#[derive(Clone)]
pub(crate) struct Http(pub(crate) Arc<dyn HttpExchange>);

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http")
    }
}

/// The `User-Agent` of OAuth requests.
const USER_AGENT: &str = concat!("mcp-hub-rs/", env!("CARGO_PKG_VERSION"));

impl Http {
    async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: Vec<(http::HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Result<HttpResponse, AuthError> {
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = http::Uri::try_from(url.as_str()).map_err(|_| AuthError::Http {
            url: display_url(url),
            reason: "invalid URL".into(),
        })?;
        let h = req.headers_mut();
        h.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        for (k, v) in headers {
            h.insert(k, v);
        }
        self.0
            .exchange(req)
            .await
            .map_err(|reason| AuthError::Http {
                url: display_url(url),
                reason,
            })
    }

    /// `GET` with `Accept: application/json`.
    pub(crate) async fn get_json(&self, url: &Url) -> Result<HttpResponse, AuthError> {
        self.send(
            Method::GET,
            url,
            vec![(ACCEPT, HeaderValue::from_static("application/json"))],
            Bytes::new(),
        )
        .await
    }

    /// `GET` of anything (the headless authorization step).
    pub(crate) async fn get(&self, url: &Url) -> Result<HttpResponse, AuthError> {
        self.send(Method::GET, url, Vec::new(), Bytes::new()).await
    }

    /// `POST` of a JSON document.
    pub(crate) async fn post_json(
        &self,
        url: &Url,
        body: &serde_json::Value,
    ) -> Result<HttpResponse, AuthError> {
        self.send(
            Method::POST,
            url,
            vec![
                (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (ACCEPT, HeaderValue::from_static("application/json")),
            ],
            Bytes::from(body.to_string()),
        )
        .await
    }

    /// `POST` of an `application/x-www-form-urlencoded` body, with an optional `Authorization`
    /// and an optional `DPoP` proof.
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        authorization: Option<String>,
        dpop: Option<String>,
    ) -> Result<HttpResponse, AuthError> {
        let body = {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                s.append_pair(k, v);
            }
            s.finish()
        };
        let mut headers = vec![
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ),
            (ACCEPT, HeaderValue::from_static("application/json")),
        ];
        if let Some(a) = authorization {
            let mut v = HeaderValue::from_str(&a).map_err(|_| {
                AuthError::Invalid("client credentials contain invalid characters".into())
            })?;
            v.set_sensitive(true);
            headers.push((AUTHORIZATION, v));
        }
        if let Some(proof) = dpop {
            let mut v = HeaderValue::from_str(&proof)
                .map_err(|_| AuthError::Invalid("invalid DPoP proof".into()))?;
            v.set_sensitive(true);
            headers.push((http::HeaderName::from_static("dpop"), v));
        }
        self.send(Method::POST, url, headers, Bytes::from(body))
            .await
    }
}
