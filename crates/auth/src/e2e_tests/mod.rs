//! End-to-end tests against an in-process fake authorization server, identity provider and
//! protected MCP resource (hyper on 127.0.0.1:0), through the real HTTP client.

mod authcode;
mod cluster;
mod fake;
mod machine;
mod node_import;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use mcp_hub_transport::{AuthChallenge, AuthHook};
use url::Url;

use crate::http::{HttpExchange, TransportHttp};
use crate::{AuthError, OAuthManager};

/// Calls the protected endpoint with these headers; returns the status and the challenge (with
/// the response headers, for `on_response`).
async fn call_with(
    url: &Url,
    headers: &[(HeaderName, HeaderValue)],
) -> (u16, AuthChallenge, http::HeaderMap) {
    let mut req = Request::post(url.as_str())
        .header("content-type", "application/json")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(k, v.clone());
    }
    let resp = TransportHttp.exchange(req).await.unwrap();
    let challenge = AuthChallenge {
        status: resp.status,
        www_authenticate: resp
            .headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        url: url.clone(),
    };
    (resp.status, challenge, resp.headers)
}

/// Calls the protected endpoint with an `Authorization` value, or none.
async fn call_mcp(url: &Url, authorization: Option<&str>) -> (u16, AuthChallenge) {
    let headers: Vec<_> = authorization
        .map(|a| (http::header::AUTHORIZATION, a.parse().unwrap()))
        .into_iter()
        .collect();
    let (status, challenge, _) = call_with(url, &headers).await;
    (status, challenge)
}

/// One request the way the transport makes it: the hook's credentials, `on_response`, and up
/// to two retries while `on_unauthorized` has new credentials. Returns the final status.
async fn through_hook(hook: &Arc<dyn AuthHook>, url: &Url) -> Result<u16, String> {
    for _ in 0..3 {
        let creds = hook
            .credentials(&Method::POST, url)
            .await
            .map_err(|e| e.to_string())?;
        let (status, challenge, headers) = call_with(url, &creds).await;
        hook.on_response(url, &headers);
        if !matches!(status, 401 | 403) {
            return Ok(status);
        }
        if !hook
            .on_unauthorized(&challenge)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(status);
        }
    }
    Ok(0)
}

const REDIRECT: &str = "http://127.0.0.1:9/api/oauth/callback";

fn manager(dir: &tempfile::TempDir) -> OAuthManager {
    OAuthManager::new(
        dir.path().join("mcp-hub/oauth-tokens.json"),
        REDIRECT.into(),
    )
    .unwrap()
}

/// Runs the 401 → authorize → callback steps; returns the authorization URL used.
async fn authorize(
    m: &OAuthManager,
    hook: &Arc<dyn AuthHook>,
    name: &str,
    url: &Url,
) -> Result<Url, AuthError> {
    let (status, challenge) = call_mcp(url, None).await;
    assert_eq!(status, 401);
    assert!(!hook.on_unauthorized(&challenge).await.unwrap());
    let auth_url = m.start_authorization(name, url, Some(&challenge)).await?;
    let done = m.complete_headless(&auth_url).await?;
    assert_eq!(done, name);
    Ok(auth_url.parse().unwrap())
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, at TRACE. A process-wide subscriber, because per-thread
/// ones race with tracing's callsite interest cache when tests run in parallel.
fn capture_logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
        logs
    })
    .clone()
}
