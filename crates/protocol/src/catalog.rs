//! Typed views of the catalogue items and call results, for programs that embed the hub and want
//! types rather than JSON. The hub itself never decodes these on its paths (payloads pass
//! through as raw JSON); they are for the edges. Every struct keeps the members it does not name
//! in `extra`, and an unknown kind of content stays a [`Content::Other`] value, so nothing a
//! newer server sends is lost or makes decoding fail.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A tool, as `tools/list` lists it (the hub lists it under its exposed name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The name to call it by.
    pub name: String,
    /// A display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    #[serde(default)]
    pub input_schema: Value,
    /// The JSON Schema of its `structuredContent`, if it declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// `annotations`, `icons`, `_meta` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A resource, as `resources/list` lists it (the hub lists it under its exposed URI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// The URI to read it by.
    pub uri: String,
    /// Its name.
    pub name: String,
    /// A display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// `size`, `annotations`, `_meta` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A resource template, as `resources/templates/list` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplate {
    /// The RFC 6570 URI template.
    pub uri_template: String,
    /// Its name.
    pub name: String,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The MIME type of what it yields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// `title`, `annotations`, `_meta` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A prompt, as `prompts/list` lists it (the hub lists it under its exposed name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// The name to get it by.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<PromptArgument>,
    /// `title`, `icons`, `_meta` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One argument of a [`Prompt`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptArgument {
    /// Its name.
    pub name: String,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it must be given.
    #[serde(default)]
    pub required: bool,
    /// `title` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The result of `tools/call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// What the tool returned.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The structured result, when the tool has an output schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// Whether the tool failed (a tool's own error, not a protocol error).
    #[serde(default)]
    pub is_error: bool,
    /// `_meta` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The result of `resources/read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadResourceResult {
    /// The resource's contents (one or more parts).
    #[serde(default)]
    pub contents: Vec<ResourceContents>,
    /// `_meta` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One part of a resource: text or base64 `blob`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceContents {
    /// The URI (the upstream server's: the hub passes results through).
    pub uri: String,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The text, for a text resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Base64 data, for a binary resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// `_meta` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The result of `prompts/get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetPromptResult {
    /// What the prompt is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The messages.
    #[serde(default)]
    pub messages: Vec<PromptMessage>,
    /// `_meta` and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// What it says.
    pub content: Content,
}

/// A piece of content in a tool result or a prompt message.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// `{"type": "text", "text": …}`.
    Text {
        /// The text.
        text: String,
        /// `annotations`, `_meta`.
        extra: Map<String, Value>,
    },
    /// `image` or `audio`: base64 `data` with its MIME type.
    Media {
        /// `image` or `audio`.
        kind: String,
        /// Base64 data.
        data: String,
        /// Its MIME type.
        mime_type: String,
        /// `annotations`, `_meta`.
        extra: Map<String, Value>,
    },
    /// `{"type": "resource", "resource": …}`: an embedded resource.
    Resource {
        /// Its contents.
        resource: ResourceContents,
        /// `annotations`, `_meta`.
        extra: Map<String, Value>,
    },
    /// Anything else (`resource_link`, newer kinds, or a part that does not decode), verbatim.
    Other(Value),
}

impl Content {
    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Content::Text { text, .. } => Some(text),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaWire {
    data: String,
    mime_type: String,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(Content::from_value(v))
    }
}

impl Content {
    fn from_value(v: Value) -> Content {
        let Value::Object(mut m) = v else {
            return Content::Other(v);
        };
        let kind = m
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match kind.as_str() {
            "text" if m.get("text").is_some_and(Value::is_string) => {
                m.remove("type");
                let Some(Value::String(text)) = m.remove("text") else {
                    return Content::Other(Value::Object(m));
                };
                Content::Text { text, extra: m }
            }
            "image" | "audio" => {
                let mut rest = m.clone();
                rest.remove("type");
                match serde_json::from_value::<MediaWire>(Value::Object(rest)) {
                    Ok(w) => Content::Media {
                        kind,
                        data: w.data,
                        mime_type: w.mime_type,
                        extra: w.extra,
                    },
                    Err(_) => Content::Other(Value::Object(m)),
                }
            }
            "resource" => {
                let mut rest = m.clone();
                rest.remove("type");
                let parsed = rest
                    .remove("resource")
                    .and_then(|r| serde_json::from_value::<ResourceContents>(r).ok());
                match parsed {
                    Some(resource) => Content::Resource {
                        resource,
                        extra: rest,
                    },
                    None => Content::Other(Value::Object(m)),
                }
            }
            _ => Content::Other(Value::Object(m)),
        }
    }

    fn to_value(&self) -> Value {
        let with = |kind: &str, mut m: Map<String, Value>, extra: &Map<String, Value>| {
            m.insert("type".into(), Value::String(kind.to_owned()));
            m.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            Value::Object(m)
        };
        match self {
            Content::Text { text, extra } => {
                let mut m = Map::new();
                m.insert("text".into(), Value::String(text.clone()));
                with("text", m, extra)
            }
            Content::Media {
                kind,
                data,
                mime_type,
                extra,
            } => {
                let mut m = Map::new();
                m.insert("data".into(), Value::String(data.clone()));
                m.insert("mimeType".into(), Value::String(mime_type.clone()));
                with(kind, m, extra)
            }
            Content::Resource { resource, extra } => {
                let mut m = Map::new();
                m.insert(
                    "resource".into(),
                    serde_json::to_value(resource).unwrap_or(Value::Null),
                );
                with("resource", m, extra)
            }
            Content::Other(v) => v.clone(),
        }
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

/// `notifications/message` parameters: a log line from a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggingMessageParams {
    /// `debug` … `emergency` (see [`crate::types::LOG_LEVELS`]).
    pub level: String,
    /// The logger's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// The message: any JSON.
    #[serde(default)]
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_decode_and_keep_what_they_do_not_name() {
        let r: CallToolResult = serde_json::from_value(json!({
            "content": [
                {"type": "text", "text": "hi", "annotations": {"priority": 1}},
                {"type": "image", "data": "AAAA", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "test://x", "text": "t"}},
                {"type": "resource_link", "uri": "test://y", "name": "y"},
                {"type": "text"},
                "odd"
            ],
            "isError": false,
            "_meta": {"k": 1}
        }))
        .unwrap();
        assert_eq!(r.content[0].as_text(), Some("hi"));
        assert!(matches!(&r.content[1], Content::Media { kind, .. } if kind == "image"));
        assert!(
            matches!(&r.content[2], Content::Resource { resource, .. } if resource.uri == "test://x")
        );
        assert!(matches!(&r.content[3], Content::Other(v) if v["type"] == "resource_link"));
        assert!(matches!(&r.content[4], Content::Other(_)));
        assert!(matches!(&r.content[5], Content::Other(Value::String(_))));
        assert_eq!(r.extra["_meta"], json!({"k": 1}));
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(
            back["content"][0],
            json!({"type": "text", "text": "hi", "annotations": {"priority": 1}})
        );
        assert_eq!(
            back["content"][1],
            json!({"type": "image", "data": "AAAA", "mimeType": "image/png"})
        );
        assert_eq!(
            back["content"][3],
            json!({"type": "resource_link", "uri": "test://y", "name": "y"})
        );

        let t: Tool = serde_json::from_value(json!({
            "name": "a__b", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}
        }))
        .unwrap();
        assert_eq!(t.name, "a__b");
        assert!(t.extra.contains_key("annotations"));
        let p: Prompt = serde_json::from_value(json!({
            "name": "p", "arguments": [{"name": "x", "required": true}]
        }))
        .unwrap();
        assert!(p.arguments[0].required);
    }
}
