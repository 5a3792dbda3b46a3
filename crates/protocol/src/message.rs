use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{DecodeError, ErrorObject, RequestId};

/// A request: has an id and expects exactly one response.
#[derive(Debug, Clone)]
pub struct Request {
    /// The id, kept with its JSON type.
    pub id: RequestId,
    /// The method name.
    pub method: String,
    /// The parameters, verbatim.
    pub params: Option<Box<RawValue>>,
}

/// A notification: no id, no response.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The method name.
    pub method: String,
    /// The parameters, verbatim.
    pub params: Option<Box<RawValue>>,
}

/// A successful response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The id of the request this answers.
    pub id: RequestId,
    /// The result, verbatim.
    pub result: Box<RawValue>,
}

/// An error response. `id` is `None` when the request could not be identified (parse errors).
#[derive(Debug, Clone)]
pub struct ErrorResponse {
    /// The id of the request this answers, if known.
    pub id: Option<RequestId>,
    /// The error.
    pub error: ErrorObject,
}

/// One JSON-RPC 2.0 message.
#[derive(Debug, Clone)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A successful response.
    Response(Response),
    /// An error response.
    Error(ErrorResponse),
}

/// What a transport received: one message or a batch (2025-03-26 only).
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A single message.
    Single(Message),
    /// A non-empty batch.
    Batch(Vec<Message>),
}

/// The `id` member as found on the wire, so that `"id": null` differs from a missing id.
enum IdField {
    Null,
    Id(RequestId),
    Invalid,
}

impl<'de> Deserialize<'de> for IdField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than a `serde_json::Value`: a string id is then allocated once.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC id")
            }
            fn visit_unit<E: de::Error>(self) -> Result<IdField, E> {
                Ok(IdField::Null)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<IdField, E> {
                Ok(IdField::Id(RequestId::Number(n)))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<IdField, E> {
                Ok(
                    i64::try_from(n)
                        .map_or(IdField::Invalid, |n| IdField::Id(RequestId::Number(n))),
                )
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<IdField, E> {
                Ok(IdField::Invalid)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<IdField, E> {
                Ok(IdField::Invalid)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<IdField, E> {
                Ok(IdField::Id(RequestId::from(s)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<IdField, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IdField::Invalid)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<IdField, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(IdField::Invalid)
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether `jsonrpc` says "2.0", read without allocating; any other string is refused later
/// with its own message, anything but a string is a decode error (as a `String` field was).
struct Version(bool);

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Version;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Version, E> {
                Ok(Version(s == "2.0"))
            }
        }
        d.deserialize_str(V)
    }
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IdField>, D::Error> {
    IdField::deserialize(d).map(Some)
}

fn present_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    jsonrpc: Option<Version>,
    #[serde(default, deserialize_with = "present")]
    id: Option<IdField>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default, deserialize_with = "present_raw")]
    params: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present_raw")]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

impl Envelope {
    fn into_message(self) -> Result<Message, DecodeError> {
        if let Some(Version(false)) = self.jsonrpc {
            return Err(DecodeError::Invalid("`jsonrpc` must be \"2.0\""));
        }
        if let Some(method) = self.method {
            if self.result.is_some() || self.error.is_some() {
                return Err(DecodeError::Invalid(
                    "a request must not carry `result` or `error`",
                ));
            }
            if let Some(p) = &self.params {
                let first = p.get().as_bytes().first().copied();
                if !matches!(first, Some(b'{') | Some(b'[')) {
                    return Err(DecodeError::Invalid(
                        "`params` must be an object or an array",
                    ));
                }
            }
            return match self.id {
                None => Ok(Message::Notification(Notification {
                    method,
                    params: self.params,
                })),
                Some(IdField::Id(id)) => Ok(Message::Request(Request {
                    id,
                    method,
                    params: self.params,
                })),
                Some(IdField::Null) => Err(DecodeError::Invalid("a request id must not be null")),
                Some(IdField::Invalid) => {
                    Err(DecodeError::Invalid("`id` must be a string or an integer"))
                }
            };
        }
        match (self.result, self.error) {
            (Some(_), Some(_)) => Err(DecodeError::Invalid(
                "a response must not carry both `result` and `error`",
            )),
            (Some(result), None) => match self.id {
                Some(IdField::Id(id)) => Ok(Message::Response(Response { id, result })),
                _ => Err(DecodeError::Invalid(
                    "a result response needs a string or integer `id`",
                )),
            },
            (None, Some(error)) => match self.id {
                Some(IdField::Id(id)) => Ok(Message::Error(ErrorResponse {
                    id: Some(id),
                    error,
                })),
                Some(IdField::Null) | None => Ok(Message::Error(ErrorResponse { id: None, error })),
                Some(IdField::Invalid) => {
                    Err(DecodeError::Invalid("`id` must be a string or an integer"))
                }
            },
            (None, None) => Err(DecodeError::Invalid(
                "neither `method`, `result` nor `error` present",
            )),
        }
    }
}

/// A JSON text made one stdio line. Raw payloads pass through verbatim, and a client may have
/// written them pretty-printed; a raw CR or LF can only be whitespace between JSON tokens (inside
/// strings they are escaped), so turning it into a space keeps the JSON identical and the
/// message on one line, which a line feed then ends.
pub fn into_stdio_line(mut json: Vec<u8>) -> Vec<u8> {
    for b in &mut json {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    json.push(b'\n');
    json
}

impl Message {
    /// Decodes one message. A batch array is an error here; see [`Incoming::from_slice`].
    pub fn from_slice(bytes: &[u8]) -> Result<Message, DecodeError> {
        let env: Envelope = match serde_json::from_slice(bytes) {
            Ok(env) => env,
            Err(e) if e.is_data() => {
                // Valid JSON of the wrong shape (an array, a number) is not a parse error.
                return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
                    Ok(_) => DecodeError::Invalid("a JSON-RPC message must be an object"),
                    Err(e) => DecodeError::Json(e),
                });
            }
            Err(e) => return Err(DecodeError::Json(e)),
        };
        env.into_message()
    }

    /// Decodes one message from a string.
    #[allow(clippy::should_implement_trait)] // inherent, so callers need no trait import
    pub fn from_str(s: &str) -> Result<Message, DecodeError> {
        Message::from_slice(s.as_bytes())
    }

    /// A request with typed parameters.
    pub fn request(id: RequestId, method: &str, params: Option<&serde_json::Value>) -> Message {
        Message::Request(Request {
            id,
            method: method.to_owned(),
            params: params.and_then(|p| crate::to_raw(p).ok()),
        })
    }

    /// A notification with typed parameters.
    pub fn notification(method: &str, params: Option<&serde_json::Value>) -> Message {
        Message::Notification(Notification {
            method: method.to_owned(),
            params: params.and_then(|p| crate::to_raw(p).ok()),
        })
    }

    /// A success response.
    pub fn response(id: RequestId, result: Box<RawValue>) -> Message {
        Message::Response(Response { id, result })
    }

    /// An error response.
    pub fn error(id: Option<RequestId>, error: ErrorObject) -> Message {
        Message::Error(ErrorResponse { id, error })
    }

    /// The method, for requests and notifications.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(&r.method),
            Message::Notification(n) => Some(&n.method),
            _ => None,
        }
    }

    /// The id, for requests and responses.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            Message::Request(r) => Some(&r.id),
            Message::Response(r) => Some(&r.id),
            Message::Error(e) => e.id.as_ref(),
            Message::Notification(_) => None,
        }
    }

    /// Compact JSON bytes (no newline).
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Message always serialises")
    }
}

impl Incoming {
    /// Decodes a single message or a non-empty batch.
    pub fn from_slice(bytes: &[u8]) -> Result<Incoming, DecodeError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if first == Some(b'[') {
            let items: Vec<Box<RawValue>> = serde_json::from_slice(bytes)?;
            if items.is_empty() {
                return Err(DecodeError::EmptyBatch);
            }
            let msgs = items
                .iter()
                .map(|raw| Message::from_str(raw.get()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Incoming::Batch(msgs))
        } else {
            Message::from_slice(bytes).map(Incoming::Single)
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("jsonrpc", "2.0")?;
        match self {
            Message::Request(r) => {
                m.serialize_entry("id", &r.id)?;
                m.serialize_entry("method", &r.method)?;
                if let Some(p) = &r.params {
                    m.serialize_entry("params", p)?;
                }
            }
            Message::Notification(n) => {
                m.serialize_entry("method", &n.method)?;
                if let Some(p) = &n.params {
                    m.serialize_entry("params", p)?;
                }
            }
            Message::Response(r) => {
                m.serialize_entry("id", &r.id)?;
                m.serialize_entry("result", &r.result)?;
            }
            Message::Error(e) => {
                m.serialize_entry("id", &e.id)?;
                m.serialize_entry("error", &e.error)?;
            }
        }
        m.end()
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl Request {
    /// Parses the params into `T`; missing params parse as `{}`.
    pub fn params_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        parse_params(self.params.as_deref())
    }
}

impl Notification {
    /// Parses the params into `T`.
    pub fn params_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        parse_params(self.params.as_deref())
    }
}

fn parse_params<T: serde::de::DeserializeOwned>(
    p: Option<&RawValue>,
) -> Result<T, serde_json::Error> {
    serde_json::from_str(p.map_or("{}", RawValue::get))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(s: &str) -> String {
        Message::from_str(s).unwrap().to_string()
    }

    #[test]
    fn kinds_are_recognised() {
        assert!(matches!(
            Message::from_str(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap(),
            Message::Request(_)
        ));
        assert!(matches!(
            Message::from_str(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
            Message::Notification(_)
        ));
        assert!(matches!(
            Message::from_str(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap(),
            Message::Response(_)
        ));
        let Message::Error(e) = Message::from_str(
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(e.id, None);
        assert_eq!(e.error.code, -32700);
    }

    #[test]
    fn ids_keep_their_type() {
        assert_eq!(
            roundtrip(r#"{"jsonrpc":"2.0","id":"1","method":"a"}"#),
            r#"{"jsonrpc":"2.0","id":"1","method":"a"}"#
        );
        assert_eq!(
            roundtrip(r#"{"jsonrpc":"2.0","id":1,"method":"a"}"#),
            r#"{"jsonrpc":"2.0","id":1,"method":"a"}"#
        );
        assert_ne!(RequestId::from("1"), RequestId::from(1));
    }

    #[test]
    fn every_shape_of_id_reads_as_the_json_value_would() {
        for id in [
            "1",
            "-7",
            "0",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "18446744073709551616",
            "1.0",
            "1.5",
            "1e3",
            "true",
            "false",
            r#""""#,
            r#""x\"y""#,
            r#""\u00e9""#,
            "[]",
            "[1,[2]]",
            "{}",
            r#"{"a":{"b":1}}"#,
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"a"}}"#);
            let value: serde_json::Value = serde_json::from_str(id).unwrap();
            let got = Message::from_str(&text);
            match RequestId::from_value(&value) {
                Some(expected) => assert_eq!(got.unwrap().id(), Some(&expected), "{id}"),
                None => assert!(got.is_err(), "{id}: {got:?}"),
            }
        }
        // `null` is a request's error, and a response's absent id.
        assert!(Message::from_str(r#"{"jsonrpc":"2.0","id":null,"method":"a"}"#).is_err());
        // `jsonrpc` other than the string "2.0" is refused.
        for v in [r#""2.0 ""#, "2.0", r#""""#, "[]"] {
            let text = format!(r#"{{"jsonrpc":{v},"id":1,"method":"a"}}"#);
            assert!(Message::from_str(&text).is_err(), "{v}");
        }
        // An id nested far past the recursion limit is refused without exhausting the stack.
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":{}1{},"method":"a"}}"#,
            "[{\"a\":".repeat(100_000),
            "}]".repeat(100_000)
        );
        assert!(Message::from_str(&deep).is_err());
        // Absent or null, it is not checked (as before it was read without allocating).
        assert!(Message::from_str(r#"{"id":1,"method":"a"}"#).is_ok());
        assert!(Message::from_str(r#"{"jsonrpc":null,"id":1,"method":"a"}"#).is_ok());
    }

    #[test]
    fn payloads_pass_through_verbatim() {
        let s = r##"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"x","inputSchema":{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","z":1,"a":{"$ref":"#/$defs/q"}},"_meta":{"k":[1.5,1e400]}}]}}"##;
        // 1e400 does not fit an f64; RawValue keeps it anyway.
        assert_eq!(roundtrip(s), s);
    }

    #[test]
    fn invalid_messages_are_rejected_with_reasons() {
        for (input, code) in [
            ("{", -32700),
            ("[]", -32600),
            ("42", -32600),
            (r#"{"jsonrpc":"2.0","id":1.5,"method":"a"}"#, -32600),
            (r#"{"jsonrpc":"2.0","id":null,"method":"a"}"#, -32600),
            (r#"{"jsonrpc":"1.0","id":1,"method":"a"}"#, -32600),
            (r#"{"jsonrpc":"2.0","id":1}"#, -32600),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":""}}"#,
                -32600,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"a","params":3}"#,
                -32600,
            ),
            (r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}"#, -32600),
        ] {
            let err = Incoming::from_slice(input.as_bytes()).unwrap_err();
            assert_eq!(err.code(), code, "{input}: {err}");
        }
    }

    #[test]
    fn batches_decode() {
        let Incoming::Batch(b) = Incoming::from_slice(
            br#" [{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(b.len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = Incoming::from_slice(&bytes);
        }

        #[test]
        fn string_ids_roundtrip(id in ".{0,40}", method in "[a-z/]{1,20}") {
            let m = Message::request(RequestId::from(id.as_str()), &method, None);
            let back = Message::from_slice(&m.to_vec()).unwrap();
            proptest::prop_assert_eq!(back.id(), Some(&RequestId::from(id.as_str())));
            proptest::prop_assert_eq!(back.method(), Some(method.as_str()));
        }
    }
}
