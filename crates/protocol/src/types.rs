//! Typed views of the MCP payloads the hub interprets. Every view keeps the members it does not
//! name in `extra`, so a decode/encode round trip loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::RequestId;

/// A progress token: like a request id, a string or an integer.
pub type ProgressToken = RequestId;

/// `clientInfo` / `serverInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Implementation {
    /// Programmatic name.
    pub name: String,
    /// Version string.
    #[serde(default)]
    pub version: String,
    /// `title`, `icons`, `description`, `websiteUrl` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `initialize` request parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// The version the client asks for (its latest).
    pub protocol_version: String,
    /// Client capabilities, verbatim.
    #[serde(default)]
    pub capabilities: Map<String, Value>,
    /// Who the client is.
    #[serde(default)]
    pub client_info: Implementation,
    /// Anything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `initialize` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// The negotiated version.
    pub protocol_version: String,
    /// Server capabilities, verbatim.
    #[serde(default)]
    pub capabilities: Map<String, Value>,
    /// Who the server is.
    #[serde(default)]
    pub server_info: Implementation,
    /// Optional usage instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Anything else (`_meta`, newer fields).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `notifications/cancelled` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelledParams {
    /// The id of the request being cancelled.
    pub request_id: RequestId,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `notifications/progress` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressParams {
    /// The token from the request's `_meta.progressToken`.
    pub progress_token: ProgressToken,
    /// Monotonically increasing progress.
    pub progress: f64,
    /// `total`, `message` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Logging levels (RFC 5424), least to most severe.
pub const LOG_LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// The severity rank of a logging level, `None` for an unknown level.
pub fn log_level_rank(level: &str) -> Option<usize> {
    LOG_LEVELS.iter().position(|l| *l == level)
}

/// Reads `_meta.progressToken` from request params.
pub fn progress_token(params: &Map<String, Value>) -> Option<ProgressToken> {
    params
        .get("_meta")?
        .get("progressToken")
        .and_then(RequestId::from_value)
}

/// Whether a tool (or prompt) name satisfies the 2025-11-25 rules: 1-128 chars of `[A-Za-z0-9_.-]`.
///
/// ```
/// assert!(mcp_hub_protocol::types::is_valid_tool_name("github__search.code-v2"));
/// assert!(!mcp_hub_protocol::types::is_valid_tool_name("has space"));
/// ```
pub fn is_valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_result_keeps_unknown_fields() {
        let s = r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true},"x-new":{}},"serverInfo":{"name":"a","version":"1","icons":[{"src":"i"}]},"instructions":"hi","_meta":{"k":1}}"#;
        let r: InitializeResult = serde_json::from_str(s).unwrap();
        assert_eq!(r.server_info.name, "a");
        let back: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(s).unwrap());
    }

    #[test]
    fn progress_token_reads_meta() {
        let p: Map<String, Value> =
            serde_json::from_str(r#"{"_meta":{"progressToken":"t"}}"#).unwrap();
        assert_eq!(progress_token(&p), Some(RequestId::from("t")));
    }
}
