//! Checks every request passes before routing: DNS-rebinding protection (Host and Origin) and
//! the optional bearer token of the hub itself.

use http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::ApiConfig;
use crate::body::{Body, jsonrpc_error};

fn host_name(host: &str) -> &str {
    // `[::1]:8080` → `[::1]`, `localhost:8080` → `localhost`.
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Whether the Host header names this hub. Browsers cannot forge Host, so a page on another
/// domain that resolves to 127.0.0.1 (DNS rebinding) is refused here.
pub(crate) fn host_allowed(cfg: &ApiConfig, headers: &HeaderMap) -> bool {
    if cfg.allowed_hosts.iter().any(|h| h == "*") {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 clients without Host: only reachable by a local program, not a browser.
        return true;
    };
    // Compared without case: no lowercased copy per request.
    let name = host_name(host);
    cfg.allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether the Origin header (if any) is acceptable: a loopback/allowed host, or listed.
pub(crate) fn origin_allowed(cfg: &ApiConfig, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) else {
        return true;
    };
    if cfg
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    cfg.allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(host))
}

/// Whether the request may reach the hub-wide endpoints: no token is configured, or it carries
/// one of the hub-wide tokens (compared in constant time). A token bound to a profile does not
/// count: it reaches only its profile's endpoint.
pub(crate) fn bearer_ok(cfg: &ApiConfig, headers: &HeaderMap) -> bool {
    no_tokens(cfg) || principal(cfg, headers).is_some_and(|p| bound_profile(cfg, p).is_none())
}

/// Whether the hub is unprotected (no token of either kind).
pub(crate) fn no_tokens(cfg: &ApiConfig) -> bool {
    cfg.bearer_tokens.is_empty() && cfg.profile_tokens.is_empty()
}

/// The profile a principal's token is bound to (`None` for the hub-wide tokens).
pub(crate) fn bound_profile(cfg: &ApiConfig, principal: usize) -> Option<&str> {
    let i = principal.checked_sub(cfg.bearer_tokens.len())?;
    cfg.profile_tokens.get(i).map(|(p, _)| p.as_str())
}

/// Which configured bearer token the request carries, by index: the hub-wide tokens first,
/// then the profile tokens. Every token is compared, in constant time, so the timing tells
/// neither which one matched nor how much of it.
pub(crate) fn principal(cfg: &ApiConfig, headers: &HeaderMap) -> Option<usize> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })?;
    let mut found = None;
    let all = cfg
        .bearer_tokens
        .iter()
        .chain(cfg.profile_tokens.iter().map(|(_, t)| t));
    for (i, t) in all.enumerate() {
        if bool::from(given.as_bytes().ct_eq(t.as_bytes())) {
            found = Some(i);
        }
    }
    found
}

/// The rejection for a failed Host/Origin check.
pub(crate) fn forbidden_origin() -> http::Response<Body> {
    jsonrpc_error(
        StatusCode::FORBIDDEN,
        -32000,
        "Forbidden: invalid Host or Origin header",
    )
}

/// The rejection for a profile's token used outside its profile.
pub(crate) fn wrong_profile() -> http::Response<Body> {
    jsonrpc_error(
        StatusCode::FORBIDDEN,
        -32000,
        "Forbidden: this token is bound to a profile and reaches only its endpoint",
    )
}

/// The rejection for a missing or wrong bearer token.
pub(crate) fn unauthorized() -> http::Response<Body> {
    let mut r = jsonrpc_error(
        StatusCode::UNAUTHORIZED,
        -32001,
        "Unauthorized: a valid bearer token is required",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"mcp-hub\""),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn host_and_origin() {
        let cfg = ApiConfig::default();
        assert!(host_allowed(&cfg, &headers(&[("host", "127.0.0.1:3000")])));
        assert!(host_allowed(&cfg, &headers(&[("host", "localhost")])));
        assert!(host_allowed(&cfg, &headers(&[("host", "[::1]:80")])));
        // Host names have no case.
        assert!(host_allowed(&cfg, &headers(&[("host", "LocalHost:3000")])));
        assert!(!host_allowed(
            &cfg,
            &headers(&[("host", "EVIL.example.com")])
        ));
        assert!(!host_allowed(
            &cfg,
            &headers(&[("host", "evil.example.com")])
        ));
        assert!(!host_allowed(
            &cfg,
            &headers(&[("host", "127.0.0.1.evil.com:80")])
        ));
        assert!(origin_allowed(
            &cfg,
            &headers(&[("origin", "http://127.0.0.1:3000")])
        ));
        assert!(!origin_allowed(
            &cfg,
            &headers(&[("origin", "http://evil.example.com")])
        ));
        assert!(!origin_allowed(&cfg, &headers(&[("origin", "null")])));
    }

    #[test]
    fn bearer() {
        let mut cfg = ApiConfig::default();
        assert!(bearer_ok(&cfg, &HeaderMap::new()));
        cfg.bearer_tokens = vec!["s3cret".into()];
        assert!(!bearer_ok(&cfg, &HeaderMap::new()));
        assert!(!bearer_ok(
            &cfg,
            &headers(&[("authorization", "Bearer nope")])
        ));
        assert!(bearer_ok(
            &cfg,
            &headers(&[("authorization", "Bearer s3cret")])
        ));
        // A profile's token is a principal of its own, but not a hub-wide one.
        cfg.profile_tokens = vec![("dev".into(), "dev-tok".into())];
        let h = headers(&[("authorization", "Bearer dev-tok")]);
        assert_eq!(principal(&cfg, &h), Some(1));
        assert_eq!(bound_profile(&cfg, 1), Some("dev"));
        assert!(!bearer_ok(&cfg, &h));
    }
}
