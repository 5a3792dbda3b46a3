//! `mcp-hub list`: what a running hub serves, from its REST API.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// Lists the servers of the hub at `base`, presenting `token` (from `--token` or
/// `MCP_HUB_TOKEN`) when the hub requires one.
pub(crate) async fn run(base: String, token: Option<String>, raw: bool) -> ExitCode {
    let url = format!("{}/api/servers", base.trim_end_matches('/'));
    let mut req = http::Request::get(&url);
    if let Some(token) = &token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = match req.body(http_body_util::Full::new(bytes::Bytes::new())) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-hub list: bad URL {url}: {e}");
            return ExitCode::from(2);
        }
    };
    let (parts, body) = match mcp_hub_core::transport::HttpClient::shared()
        .send(req, Duration::from_secs(10))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-hub list: cannot reach a hub at {base}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) if parts.status.is_success() => v,
        _ if parts.status == http::StatusCode::UNAUTHORIZED => {
            let hint = if token.is_some() {
                "the token was refused"
            } else {
                "the hub requires a token: pass --token or set MCP_HUB_TOKEN"
            };
            eprintln!("mcp-hub list: {url} answered {}: {hint}", parts.status);
            return ExitCode::FAILURE;
        }
        _ => {
            eprintln!("mcp-hub list: {url} answered {}", parts.status);
            return ExitCode::FAILURE;
        }
    };
    if raw {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let servers = v
        .get("servers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in &servers {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("?");
        let status = s.get("status").and_then(Value::as_str).unwrap_or("?");
        let tools = s
            .pointer("/capabilities/tools")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let resources = s
            .pointer("/capabilities/resources")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let prompts = s
            .pointer("/capabilities/prompts")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        println!(
            "{name:<24} {status:<13} {tools:>4} tools {resources:>4} resources {prompts:>4} prompts"
        );
        if let Some(line) = calls_line(s) {
            println!("    {line}");
        }
        if let Some(err) = s.get("error").and_then(Value::as_str) {
            println!("    error: {err}");
        }
        if let Some(url) = s.get("authorizationUrl").and_then(Value::as_str) {
            println!("    authorize: {url}");
        }
    }
    println!("{} server(s) at {base}/mcp", servers.len());
    ExitCode::SUCCESS
}

/// `calls: 120, errors: 3 (2.5%), p50 1.2 ms, p99 8.4 ms` from a server's `calls` summary, when
/// it has served any.
fn calls_line(server: &Value) -> Option<String> {
    let c = server.get("calls")?;
    let total = c.get("total").and_then(Value::as_u64).filter(|&n| n > 0)?;
    let errors = c.get("errors").and_then(Value::as_u64).unwrap_or(0);
    let rate = c.get("errorRate").and_then(Value::as_f64).unwrap_or(0.0) * 100.0;
    let ms = |k: &str| {
        c.get(k)
            .and_then(Value::as_f64)
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"))
    };
    let mut line = format!(
        "calls: {total}, errors: {errors} ({rate:.1}%), p50 {}, p99 {}",
        ms("p50Ms"),
        ms("p99Ms")
    );
    if let Some(n) = c.get("inFlight").and_then(Value::as_i64).filter(|&n| n > 0) {
        line.push_str(&format!(", {n} in flight"));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_calls_line_reads_the_summary() {
        let s = json!({"calls": {"total": 40, "errors": 1, "errorRate": 0.025, "inFlight": 0,
            "p50Ms": 1.25, "p99Ms": 9.9}});
        assert_eq!(
            super::calls_line(&s).as_deref(),
            Some("calls: 40, errors: 1 (2.5%), p50 1.2 ms, p99 9.9 ms")
        );
        assert_eq!(super::calls_line(&json!({"calls": {"total": 0}})), None);
        assert_eq!(super::calls_line(&json!({})), None);
    }
}
