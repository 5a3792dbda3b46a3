//! The web console at `/ui` and the merged-config route it reads: served from the binary with a
//! strict policy, open without the token (it holds no data) while every API route it calls
//! stays protected, behind the same Host/Origin rules, and never showing a secret.

use std::io::{Read, Write};
use std::net::TcpStream;

use mcp_hub_tests::{HubCmd, request};
use serde_json::json;

use crate::{config, fixture_entry};

const TOKEN: &str = "console-e2e-token";

fn raw(port: u16, head: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(head.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let hub = HubCmd::new()
        .config("c.json", &config(&[("fx", fixture_entry(&[]))]))
        .arg("--token")
        .arg(TOKEN)
        .start();
    let page = hub.get("/ui/");
    assert_eq!(page.status, 200, "the page needs no token: {}", page.text());
    let csp = page.header("content-security-policy").expect("CSP");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(page.text().contains("/ui/app.js"));
    for asset in [
        "/ui/app.js",
        "/ui/render.js",
        "/ui/app.css",
        "/ui/favicon.svg",
    ] {
        let r = hub.get(asset);
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.header("content-security-policy").is_some());
    }
    assert_eq!(hub.get("/ui").status, 301);
    assert_eq!(hub.get("/ui/../api/servers").status, 404);
    // What the console reads stays protected.
    assert_eq!(hub.get("/api/config").status, 401);
    assert_eq!(hub.get("/api/servers").status, 401);
    // DNS rebinding: a page served under another name is refused, the console included.
    let evil = raw(
        hub.port,
        "GET /ui/ HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n",
    );
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    let cross = raw(
        hub.port,
        &format!(
            "GET /ui/app.js HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: http://evil.example\r\nConnection: close\r\n\r\n",
            hub.port
        ),
    );
    assert!(cross.starts_with("HTTP/1.1 403"), "{cross}");
}

#[test]
fn the_merged_config_names_each_source_file_and_hides_secrets() {
    let secret = "s3cret-value-never-shown";
    let global = json!({"mcpServers": {
        "a": {"command": "nope", "env": {"API_TOKEN": secret, "REF": "${env:HOME}"}, "args": ["--api-key", secret]},
        "b": {"url": format!("http://user:{secret}@127.0.0.1:9/mcp?token={secret}"), "headers": {"Authorization": format!("Bearer {secret}")}}
    }})
    .to_string();
    let project =
        json!({"mcpServers": {"b": {"command": "also-nope", "disabled": true}}}).to_string();
    let hub = HubCmd::new()
        .config("global.json", &global)
        .config("project.json", &project)
        .arg("--token")
        .arg(TOKEN)
        .start();
    let auth = format!("Bearer {TOKEN}");
    let r = request(
        hub.port,
        "GET",
        "/api/config",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(!text.contains(secret), "{text}");
    let v = r.json();
    let src = |s: &str| {
        v["servers"][s]["config_source"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(src("a").ends_with("global.json"), "{v}");
    assert!(
        src("b").ends_with("project.json"),
        "a later file replaces a server: {v}"
    );
    assert_eq!(v["servers"]["b"]["command"], "also-nope");
    assert_eq!(v["servers"]["a"]["env"]["REF"], "${env:HOME}");
    assert_eq!(v["files"].as_array().map(Vec::len), Some(2), "{v}");
}
