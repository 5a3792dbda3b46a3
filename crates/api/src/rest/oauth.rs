//! The OAuth routes: `POST /api/servers/authorize`, the browser's `GET /api/oauth/callback` and
//! the pasted-URL `POST /api/oauth/manual_callback`.

use std::collections::HashMap;

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};

use super::input::required_str;
use super::reply::{Failure, Reply, ok};
use super::shape::html_escape;
use super::{ALL_SERVERS, Inner};
use crate::body::{self, Body};

impl Inner {
    pub(super) async fn authorize(&self, body: &Map<String, Value>) -> Reply {
        let name = required_str(body, "server_name", "Missing server name")?;
        if self.registry.snapshot(name).is_none() {
            return Err(Failure::server_not_found(name));
        }
        match self.control.authorize(name).await {
            Ok(url) => Ok(ok(json!({ "authorizationUrl": url }))),
            Err(e) => Err(
                Failure::new(StatusCode::BAD_REQUEST, "OPEN_REQUEST_ERROR", e).with("server", name),
            ),
        }
    }

    /// The browser's return from the authorization server. The pending flow is identified by
    /// `state` (our redirect URI carries no server name, unlike the Node hub's); `server_name`
    /// is accepted for old redirect URIs. The control checks `state`/`iss`, exchanges the code,
    /// reconnects the server and announces `servers_updated` itself.
    pub(super) async fn oauth_callback(&self, query: &HashMap<String, String>) -> Response<Body> {
        let claimed = query.get("server_name").map(String::as_str).unwrap_or("");
        if !query.contains_key("code") && !query.contains_key("error") {
            return oauth_page(
                StatusCode::BAD_REQUEST,
                claimed,
                Err("Missing code parameter"),
            );
        }
        let _busy = self.busy(ALL_SERVERS);
        match self.control.oauth_callback(query).await {
            Ok(server) => {
                self.spread_login(&server).await;
                oauth_page(StatusCode::OK, &server, Ok(()))
            }
            Err(e) => oauth_page(StatusCode::BAD_REQUEST, claimed, Err(&e)),
        }
    }

    /// The same for a redirect URL the user pasted (the browser ran on another machine).
    pub(super) async fn manual_callback(&self, body: &Map<String, Value>) -> Reply {
        let raw = required_str(body, "url", "Missing URL parameter")?;
        let url = url::Url::parse(raw).map_err(|e| {
            Failure::validation(format!("Invalid URL: {e}"), "url").with("url", raw)
        })?;
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        if !query.contains_key("code") && !query.contains_key("error") {
            return Err(Failure::validation("Missing code parameter", "url").with("url", raw));
        }
        let _busy = self.busy(ALL_SERVERS);
        match self.control.oauth_callback(&query).await {
            Ok(server) => {
                let mut answer = json!({
                    "status": "ok",
                    "message": format!("Authorization successful for server '{server}'"),
                    "server_name": server,
                });
                if let Some(cluster) = self.spread_login(&server).await {
                    answer["cluster"] = cluster;
                }
                Ok(ok(answer))
            }
            Err(e) => {
                let mut f = Failure::new(StatusCode::BAD_REQUEST, "MANUAL_OAUTH_CALLBACK_ERROR", e);
                if let Some(s) = query.get("server_name") {
                    f = f.with("server", s.as_str());
                }
                Err(f)
            }
        }
    }
}

impl Inner {
    /// In cluster mode, tells the other replicas that `server` has tokens now (they are in
    /// Redis): a replica that left it `unauthorized` connects it again instead of waiting for
    /// someone to start it there. `None` (no member in the answer) on a single hub.
    async fn spread_login(&self, server: &str) -> Option<Value> {
        self.spread(json!({"op": "authorized", "server": server}))
            .await
    }
}

/// The page the browser lands on after authorising. Everything interpolated is escaped (the
/// Node hub reflected `server_name` into its page unescaped), and the page runs no script.
fn oauth_page(status: StatusCode, server: &str, outcome: Result<(), &str>) -> Response<Body> {
    let server = html_escape(server);
    let (title, body) = match outcome {
        Ok(()) => (
            "Authorization Successful",
            "<p class=\"message\">Your server has been authorized successfully!</p>\n\
             <p>You can close this window and return to the application.</p>"
                .to_owned(),
        ),
        Err(e) => (
            "Authorization Failed",
            format!(
                "<p class=\"message\">An error occurred during authorization:</p>\n\
                 <p class=\"error\">{}</p>\n\
                 <p class=\"message\">For errors like 'fetch failed' (a server that takes time to \
                 start), stopping and starting the MCP server should help.</p>",
                html_escape(e)
            ),
        ),
    };
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>MCP HUB</title>\n<style>\n\
         body {{ font-family: Arial, sans-serif; text-align: center; margin-top: 50px; }}\n\
         .message {{ margin: 20px 0; font-size: 18px; }}\n.error {{ color: red; }}\n\
         </style>\n</head>\n<body>\n<h1>MCP HUB</h1>\n\
         <h2><code>{server}</code> {title}</h2>\n{body}\n\
         <p><a href=\"/ui/\">Back to the mcp-hub console</a></p>\n</body>\n</html>\n"
    );
    let mut r = Response::new(body::full(page));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The URL carries the authorization code.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oauth_page_escapes_everything() {
        use http_body_util::BodyExt;
        let r = oauth_page(
            StatusCode::BAD_REQUEST,
            "<img src=x onerror=alert(1)>",
            Err("</p><script>alert(2)</script>"),
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(
            r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        let b = r.into_body().collect().await.unwrap().to_bytes();
        let s = std::str::from_utf8(&b).unwrap();
        assert!(!s.contains("<img"));
        assert!(!s.contains("<script"));
        assert!(s.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(s.contains("Authorization Failed"));
    }
}
