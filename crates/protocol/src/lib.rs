//! JSON-RPC 2.0 envelope and the parts of the MCP data model the hub interprets.
//!
//! This is the bottom layer of the workspace: no I/O, no async runtime, no sockets. Everything
//! above it (transport, registry, api, core) speaks these types.
//!
//! The design is *typed envelope, lazy payload*: [`Message`] knows its kind, id and method, but
//! `params`, `result` and `error.data` stay raw JSON ([`RawValue`]) so that whatever the hub does not
//! interpret (schemas, `_meta`, annotations, icons, fields from newer revisions) passes through
//! unchanged. Ids keep their JSON type: the string `"1"` and the number `1` are different ids.
//!
//! ```
//! use mcp_hub_protocol::{Message, RequestId};
//!
//! let msg = Message::from_slice(br#"{"jsonrpc":"2.0","id":"7","method":"tools/list"}"#).unwrap();
//! let Message::Request(req) = &msg else { panic!("a request") };
//! assert_eq!(req.id, RequestId::from("7"));
//! assert_ne!(req.id, RequestId::from(7));
//! assert_eq!(req.method, "tools/list");
//! // Encoding is compact, one line, `jsonrpc` first.
//! assert_eq!(msg.to_string(), r#"{"jsonrpc":"2.0","id":"7","method":"tools/list"}"#);
//! ```
//!
//! Must not know: transports, the registry, HTTP.

pub mod catalog;
mod error;
mod id;
mod message;
pub mod methods;
pub mod modern;
pub mod object;
pub mod salvage;
pub mod sse;
pub mod trace;
pub mod types;
mod version;

pub use error::{DecodeError, ErrorCode, ErrorObject};
pub use id::RequestId;
pub use message::{
    ErrorResponse, Incoming, Message, Notification, Request, Response, into_stdio_line,
};
pub use serde_json::value::RawValue;
pub use version::{
    LATEST_PROTOCOL_VERSION, MODERN_PROTOCOL_VERSION, ProtocolVersion, SUPPORTED_PROTOCOL_VERSIONS,
    negotiate_version,
};

/// Converts any serialisable value to an owned raw JSON value.
///
/// Infallible for `serde_json::Value`; for other types serialisation errors are reported.
pub fn to_raw<T: serde::Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::value::to_raw_value(value)
}

/// The empty JSON object `{}` as a raw value, the result of `ping` and friends.
pub fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("`{}` is valid JSON")
}
