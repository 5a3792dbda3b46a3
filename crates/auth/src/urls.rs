//! Well-known metadata locations, the canonical resource URI, and the rules every OAuth URL must
//! pass before the hub contacts it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::AuthError;

const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
const OAUTH_AS_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
const OIDC_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// The path of a URL without a terminating `/` (`""` for the root).
fn trimmed_path(url: &Url) -> &str {
    url.path().trim_end_matches('/')
}

fn with_path(base: &Url, path: &str) -> Url {
    let mut u = base.clone();
    u.set_path(path);
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// RFC 9728 §3.1 Protected Resource Metadata locations for a server URL, in the order the MCP
/// spec tries them: path-inserted first (when the URL has a path), then the root.
pub fn protected_resource_metadata_urls(server: &Url) -> Vec<Url> {
    let path = trimmed_path(server);
    let mut out = Vec::with_capacity(2);
    if !path.is_empty() {
        out.push(with_path(server, &format!("{PRM_WELL_KNOWN}{path}")));
    }
    out.push(with_path(server, PRM_WELL_KNOWN));
    out
}

/// Authorization server metadata locations for an issuer, in the order the MCP spec
/// (2025-11-25, "Authorization Server Metadata Discovery") requires: RFC 8414 path-inserted,
/// OIDC path-inserted, OIDC path-appended; or for an issuer without a path, RFC 8414 then OIDC.
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = trimmed_path(issuer);
    if path.is_empty() {
        vec![
            with_path(issuer, OAUTH_AS_WELL_KNOWN),
            with_path(issuer, OIDC_WELL_KNOWN),
        ]
    } else {
        vec![
            with_path(issuer, &format!("{OAUTH_AS_WELL_KNOWN}{path}")),
            with_path(issuer, &format!("{OIDC_WELL_KNOWN}{path}")),
            with_path(issuer, &format!("{path}{OIDC_WELL_KNOWN}")),
        ]
    }
}

/// The canonical URI of an MCP server for the RFC 8707 `resource` parameter: lower-case scheme
/// and host (the URL parser does that), no fragment, and no `/` when the path is empty.
pub fn canonical_resource(server: &Url) -> String {
    let mut u = server.clone();
    u.set_fragment(None);
    let s = u.to_string();
    if u.path() == "/" && u.query().is_none() {
        s.trim_end_matches('/').to_owned()
    } else {
        s
    }
}

/// Whether the metadata's `resource` covers the server URL (RFC 9728 §3.3 / §7.3): same origin,
/// and the server's path equals the resource's path or lies below it.
pub fn resource_covers(resource: &Url, server: &Url) -> bool {
    if resource.origin() != server.origin() || resource.fragment().is_some() {
        return false;
    }
    let rp = trimmed_path(resource);
    let sp = trimmed_path(server);
    rp.is_empty() || sp == rp || sp.strip_prefix(rp).is_some_and(|r| r.starts_with('/'))
}

/// Compares issuer identifiers, ignoring one terminating `/` (`https://as.example` and
/// `https://as.example/` are the same URL after parsing).
pub fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// A URL without query and fragment, for logs and error messages (queries may carry codes).
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.set_username("").ok();
    u.set_password(None).ok();
    u.to_string()
}

/// Checks a URL the hub is about to contact for OAuth or hand to the user.
///
/// - `http` or `https` only, no user-info;
/// - never a link-local or cloud-metadata address (169.254.0.0/16, fe80::/10, fd00:ec2::254,
///   100.100.100.200, `metadata.google.internal`), whatever its origin;
/// - `https`, or `http` to a loopback host, or the same origin as the configured server (which
///   the user chose, so its own scheme is accepted).
///
/// The check is on the URL; a host name that resolves to a forbidden address is not caught here
/// (see docs/AUTH.md).
pub fn check_url(url: &Url, configured_server: Option<&Url>) -> Result<(), AuthError> {
    let refuse = |reason| {
        Err(AuthError::InsecureUrl {
            url: display_url(url),
            reason,
        })
    };
    if !matches!(url.scheme(), "http" | "https") {
        return refuse("only http and https URLs are allowed");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("URLs with credentials are not allowed");
    }
    let host = match url.host() {
        Some(h) => h,
        None => return refuse("the URL has no host"),
    };
    if is_metadata_or_link_local(&host) {
        return refuse("link-local and cloud metadata addresses are not allowed");
    }
    if url.scheme() == "https" || is_loopback(&host) {
        return Ok(());
    }
    if configured_server.is_some_and(|s| s.origin() == url.origin()) {
        return Ok(());
    }
    refuse("plain http is only allowed to loopback hosts")
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn is_metadata_or_link_local(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "metadata.google.internal" || d == "metadata" || d == "instance-data"
        }
        Host::Ipv4(ip) => bad_v4(*ip),
        Host::Ipv6(ip) => bad_v6(*ip),
    }
}

fn bad_v4(ip: Ipv4Addr) -> bool {
    ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip == Ipv4Addr::new(100, 100, 100, 200)
}

fn bad_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return bad_v4(v4);
    }
    let seg0 = ip.segments()[0];
    (seg0 & 0xffc0) == 0xfe80
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip
            == "fd00:ec2::254"
                .parse::<Ipv6Addr>()
                .unwrap_or(Ipv6Addr::UNSPECIFIED)
}

/// Whether an address is one [`check_url`] refuses regardless of scheme (for callers that
/// resolved a name themselves).
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => bad_v4(v4),
        IpAddr::V6(v6) => bad_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        s.parse().unwrap()
    }

    fn strs(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn prm_locations_path_then_root() {
        assert_eq!(
            strs(protected_resource_metadata_urls(&u(
                "https://mcp.example.com/public/mcp?x=1#f"
            ))),
            [
                "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            strs(protected_resource_metadata_urls(&u(
                "http://127.0.0.1:9000/mcp/"
            ))),
            [
                "http://127.0.0.1:9000/.well-known/oauth-protected-resource/mcp",
                "http://127.0.0.1:9000/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            strs(protected_resource_metadata_urls(&u(
                "https://mcp.example.com"
            ))),
            ["https://mcp.example.com/.well-known/oauth-protected-resource"]
        );
    }

    #[test]
    fn as_locations_in_spec_order() {
        assert_eq!(
            strs(authorization_server_metadata_urls(&u(
                "https://auth.example.com/tenant1"
            ))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strs(authorization_server_metadata_urls(&u(
                "https://auth.example.com/"
            ))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn canonical_resource_forms() {
        assert_eq!(
            canonical_resource(&u("HTTPS://MCP.Example.com/mcp#frag")),
            "https://mcp.example.com/mcp"
        );
        assert_eq!(
            canonical_resource(&u("https://mcp.example.com/")),
            "https://mcp.example.com"
        );
        assert_eq!(
            canonical_resource(&u("http://localhost:8080/mcp/")),
            "http://localhost:8080/mcp/"
        );
    }

    #[test]
    fn resource_coverage() {
        let server = u("http://localhost:3000/mcp");
        assert!(resource_covers(&u("http://localhost:3000/mcp"), &server));
        assert!(resource_covers(&u("http://localhost:3000"), &server));
        assert!(resource_covers(&u("http://localhost:3000/"), &server));
        assert!(!resource_covers(&u("http://localhost:3000/mc"), &server));
        assert!(!resource_covers(
            &u("https://evil.example.com/mcp"),
            &server
        ));
        assert!(!resource_covers(&u("http://localhost:3001/mcp"), &server));
        assert!(!resource_covers(
            &u("http://localhost:3000/mcp/sub"),
            &server
        ));
        assert!(resource_covers(
            &u("http://localhost:3000/mcp"),
            &u("http://localhost:3000/mcp/sub")
        ));
    }

    #[test]
    fn url_rules() {
        let server = u("http://10.0.0.5:8080/mcp");
        for ok in [
            "https://auth.example.com/authorize",
            "http://127.0.0.1:9/x",
            "http://localhost:9/x",
            "http://[::1]:9/x",
            "http://10.0.0.5:8080/.well-known/oauth-protected-resource",
        ] {
            assert!(check_url(&u(ok), Some(&server)).is_ok(), "{ok}");
        }
        for bad in [
            "http://auth.example.com/token",
            "http://10.0.0.5:8081/token",
            "https://169.254.169.254/latest/meta-data",
            "http://169.254.169.254/",
            "https://[fe80::1]/x",
            "https://[fd00:ec2::254]/x",
            "https://[::ffff:169.254.169.254]/x",
            "https://metadata.google.internal/computeMetadata",
            "https://100.100.100.200/",
            "https://user:pw@auth.example.com/",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://0.0.0.0/",
        ] {
            assert!(check_url(&u(bad), Some(&server)).is_err(), "{bad}");
        }
        assert!(is_forbidden_ip("169.254.1.1".parse().unwrap()));
        assert!(!is_forbidden_ip("192.168.1.1".parse().unwrap()));
    }

    #[test]
    fn issuer_comparison_and_display() {
        assert!(same_issuer("https://as.example", "https://as.example/"));
        assert!(!same_issuer("https://as.example/a", "https://as.example/b"));
        assert_eq!(
            display_url(&u("https://u:p@as.example/cb?code=secret#x")),
            "https://as.example/cb"
        );
    }
}
