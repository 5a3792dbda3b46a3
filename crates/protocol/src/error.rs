use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Why a byte string is not a JSON-RPC message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not JSON at all.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is well formed but is not a JSON-RPC 2.0 message.
    #[error("invalid JSON-RPC message: {0}")]
    Invalid(&'static str),
    /// An empty batch array, which JSON-RPC forbids.
    #[error("empty JSON-RPC batch")]
    EmptyBatch,
}

impl DecodeError {
    /// The JSON-RPC error code a server answers with for this input.
    pub fn code(&self) -> i64 {
        match self {
            DecodeError::Json(_) => ErrorCode::PARSE_ERROR.0,
            _ => ErrorCode::INVALID_REQUEST.0,
        }
    }
}

/// A JSON-RPC error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub i64);

impl ErrorCode {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: ErrorCode = ErrorCode(-32700);
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: ErrorCode = ErrorCode(-32600);
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: ErrorCode = ErrorCode(-32601);
    /// Invalid method parameters.
    pub const INVALID_PARAMS: ErrorCode = ErrorCode(-32602);
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(-32603);
    /// Implementation-defined server error; the transport layer uses it for HTTP-level rejections.
    pub const SERVER_ERROR: ErrorCode = ErrorCode(-32000);
    /// Streamable HTTP: the session is unknown or terminated.
    pub const SESSION_NOT_FOUND: ErrorCode = ErrorCode(-32001);
    /// MCP: resource not found (2025-11-25 and earlier).
    pub const RESOURCE_NOT_FOUND: ErrorCode = ErrorCode(-32002);
    /// MCP: request timed out (used by the SDKs for client-side timeouts).
    pub const REQUEST_TIMEOUT: ErrorCode = ErrorCode(-32001);
    /// MCP 2025-11-25: a URL-mode elicitation is required.
    pub const URL_ELICITATION_REQUIRED: ErrorCode = ErrorCode(-32042);
    /// MCP 2026-07-28: unsupported protocol version.
    pub const UNSUPPORTED_PROTOCOL_VERSION: ErrorCode = ErrorCode(-32022);
}

/// The `error` member of a JSON-RPC error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The error code.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Optional extra data, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

impl ErrorObject {
    /// An error without data.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorObject {
            code: code.0,
            message: message.into(),
            data: None,
        }
    }

    /// An error with a JSON data member.
    pub fn with_data(
        code: ErrorCode,
        message: impl Into<String>,
        data: &serde_json::Value,
    ) -> Self {
        ErrorObject {
            code: code.0,
            message: message.into(),
            data: crate::to_raw(data).ok(),
        }
    }
}

impl PartialEq for ErrorObject {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.message == other.message
            && self.data.as_ref().map(|d| d.get()) == other.data.as_ref().map(|d| d.get())
    }
}
