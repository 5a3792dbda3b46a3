//! The web console at `/ui`: static assets compiled into the binary (no CDN, nothing fetched at
//! run time, no build step), served with a strict Content-Security-Policy. The page itself holds
//! no data and no secret, so it loads without the bearer token; everything it shows comes from
//! the public REST API and `/api/events`, which stay protected (the page asks for the token and
//! keeps it in `sessionStorage`, for the tab only). Host/Origin rules apply as everywhere.

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::body::{self, Body};

/// `script-src 'self'` and `style-src 'self'`: no inline script or style, no `eval`. Images in
/// tool results are shown from `data:` URLs; the page connects only to its own origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
media-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/ui/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        path: "/ui/render.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/render.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/app.css"),
    },
    Asset {
        path: "/ui/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
];

/// Whether a path belongs to the console.
pub(crate) fn is_console(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// Serves a console path (`GET`/`HEAD` only).
pub(crate) fn serve(method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = body::status(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return secure(r);
    }
    if path == "/ui" {
        let mut r = body::status(StatusCode::MOVED_PERMANENTLY);
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
        return secure(r);
    }
    let path = if path == "/ui/index.html" {
        "/ui/"
    } else {
        path
    };
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        let mut r = Response::new(body::full("Not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return secure(r);
    };
    let mut r = Response::new(body::full(asset.body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    secure(r)
}

fn secure(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Served from memory: revalidating costs nothing and a new binary is seen at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_the_policy() {
        for a in ASSETS {
            let r = serve(&Method::GET, a.path);
            assert_eq!(r.status(), StatusCode::OK, "{}", a.path);
            assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        assert_eq!(
            serve(&Method::GET, "/ui").status(),
            StatusCode::MOVED_PERMANENTLY
        );
        assert_eq!(
            serve(&Method::GET, "/ui/nope").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            serve(&Method::POST, "/ui/").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = include_str!("assets/index.html");
        assert!(!html.contains("<style"));
        assert!(!html.contains(" style="));
        let lower = html.to_ascii_lowercase();
        for (i, _) in lower.match_indices(" on") {
            let word: String = lower[i + 1..]
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            assert!(
                !lower[i + 1 + word.len()..].starts_with('='),
                "inline event handler {word}"
            );
        }
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..html[i..].find('>').map_or(html.len(), |e| i + e)];
            assert!(tag.contains("src="), "inline script: {tag}");
        }
        let js = [
            include_str!("assets/app.js"),
            include_str!("assets/render.js"),
        ]
        .concat();
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "eval(",
            "new Function",
            "document.write",
        ] {
            assert!(!js.contains(banned), "app.js uses {banned}");
        }
    }
}
