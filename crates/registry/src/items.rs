//! A server's list (tools, resources, templates or prompts) kept as the JSON text it arrived in.
//!
//! A `serde_json::Value` tree costs ten to forty times the size of its JSON; a catalogue of tens
//! of thousands of tools kept that way, and copied per snapshot and per `/api/servers` call, is
//! what made a large catalogue cost gigabytes. Here a list is one compact JSON array plus the
//! span of each item: the REST API and the event stream embed it as it is, and the catalogue
//! reads only the names out of it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// One list of one server, as compact JSON. Cheap to clone (shared).
#[derive(Clone)]
pub struct ItemList(Arc<Text>);

struct Text {
    /// The whole array, `[` … `]`, without insignificant whitespace.
    json: String,
    /// Byte range of each item in `json`.
    spans: Vec<(usize, usize)>,
}

impl Default for ItemList {
    fn default() -> Self {
        ItemList(Arc::new(Text {
            json: "[]".to_owned(),
            spans: Vec::new(),
        }))
    }
}

impl fmt::Debug for ItemList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemList")
            .field("len", &self.len())
            .field("bytes", &self.json().len())
            .finish()
    }
}

impl PartialEq for ItemList {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.json == other.0.json
    }
}

impl Eq for ItemList {}

impl AsRef<[u8]> for ItemList {
    fn as_ref(&self) -> &[u8] {
        self.0.json.as_bytes()
    }
}

impl ItemList {
    /// A list of these items (for tests and embedders; the registry builds its lists from the
    /// upstream's JSON directly).
    pub fn from_values(values: &[Value]) -> ItemList {
        let mut b = Builder::default();
        for v in values {
            b.push_json(&v.to_string());
        }
        b.finish()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.0.spans.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.spans.is_empty()
    }

    /// The whole list as one compact JSON array.
    pub fn json(&self) -> &str {
        &self.0.json
    }

    /// Each item's JSON text, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.0.spans.iter().map(|&(a, b)| &self.0.json[a..b])
    }

    /// The items as values (a deep copy: for callers that need to edit them).
    pub fn values(&self) -> Vec<Value> {
        self.iter()
            .filter_map(|i| serde_json::from_str(i).ok())
            .collect()
    }

    /// The string member `key` of each item that has one (`name`, `uri`, …).
    pub fn strings<'a>(&'a self, key: &'a str) -> impl Iterator<Item = String> + 'a {
        self.iter().filter_map(move |i| string_member(i, key))
    }
}

/// Builds an [`ItemList`] item by item.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    json: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Builder {
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Appends one item (valid JSON), dropping its insignificant whitespace.
    pub(crate) fn push_json(&mut self, item: &str) {
        self.json
            .push(if self.spans.is_empty() { b'[' } else { b',' });
        let start = self.json.len();
        compact_into(&mut self.json, item);
        self.spans.push((start, self.json.len()));
    }

    pub(crate) fn finish(mut self) -> ItemList {
        if self.spans.is_empty() {
            return ItemList::default();
        }
        self.json.push(b']');
        // Only ASCII whitespace was left out of valid UTF-8 input, so this cannot fail.
        let json = String::from_utf8(self.json)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        ItemList(Arc::new(Text {
            json,
            spans: self.spans,
        }))
    }
}

/// Copies JSON text without the whitespace between tokens (so it fits on one line, as the event
/// stream needs, and takes no more room than necessary).
fn compact_into(out: &mut Vec<u8>, json: &str) {
    out.reserve(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json.as_bytes() {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = b == b'"';
            out.push(b);
        }
    }
}

/// The members of a JSON object, in order, with their values left as text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A member name, borrowed from the input unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// For an object with a string member `key`: that string, the name `rename` gives it, and the
/// object with the member set to that name (see [`with_member`]); one parse for all three.
pub(crate) fn renamed(
    item: &str,
    key: &str,
    rename: impl FnOnce(&str) -> String,
) -> Option<(String, String, String)> {
    let Members(members) = serde_json::from_str(item).ok()?;
    let (_, v) = members.iter().find(|(k, _)| k == key)?;
    let original: String = serde_json::from_str(v.get()).ok()?;
    let wanted = rename(&original);
    let json = write_members(&members, key, &wanted);
    Some((original, wanted, json))
}

/// The string member `key` of a JSON object, if it has one.
pub(crate) fn string_member(item: &str, key: &str) -> Option<String> {
    let Members(members) = serde_json::from_str(item).ok()?;
    let (_, v) = members.into_iter().find(|(k, _)| k == key)?;
    serde_json::from_str(v.get()).ok()
}

/// A JSON object with its member `key` set to the string `value` (added at the end when
/// missing), every other member verbatim and in order.
pub(crate) fn with_member(item: &str, key: &str, value: &str) -> String {
    match serde_json::from_str::<Members<'_>>(item) {
        Ok(Members(members)) => write_members(&members, key, value),
        Err(_) => item.to_owned(),
    }
}

fn write_members(members: &[(Cow<'_, str>, &RawValue)], key: &str, value: &str) -> String {
    let size: usize = members
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum();
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    let mut out = String::with_capacity(size + value.len() + 2);
    out.push('{');
    let mut found = false;
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quoted(k));
        out.push(':');
        if k == key {
            found = true;
            out.push_str(&quoted(value));
        } else {
            out.push_str(v.get());
        }
    }
    if !found {
        if !members.is_empty() {
            out.push(',');
        }
        out.push_str(&quoted(key));
        out.push(':');
        out.push_str(&quoted(value));
    }
    out.push('}');
    out
}

/// Appends the items of a JSON array (`Vec<&RawValue>` text) to `b`.
pub(crate) fn push_array(b: &mut Builder, array: &RawValue) -> Result<(), serde_json::Error> {
    let items: Vec<&RawValue> = serde_json::from_str(array.get())?;
    for i in items {
        b.push_json(i.get());
    }
    Ok(())
}

/// The members `key` (an array) and `nextCursor` of a list result page.
pub(crate) fn page_parts<'a>(
    page: &'a str,
    key: &str,
) -> Result<(Option<&'a RawValue>, Option<String>), serde_json::Error> {
    let Members(members) = serde_json::from_str(page)?;
    let mut items = None;
    let mut cursor = None;
    for (k, v) in members {
        if k == key {
            items = Some(v);
        } else if k == "nextCursor" {
            cursor = serde_json::from_str::<Option<String>>(v.get()).unwrap_or(None);
        }
    }
    Ok((items, cursor))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_are_compact_json_with_every_item_verbatim() {
        let mut b = Builder::default();
        let page = r#"{"tools": [ {"name": "a", "d": "x y\n \"q\" "} ,
            {"name":"b","n":1.50, "e":"\u00e9"} ], "nextCursor": "2"}"#;
        let (items, cursor) = page_parts(page, "tools").unwrap();
        push_array(&mut b, items.unwrap()).unwrap();
        assert_eq!(cursor.as_deref(), Some("2"));
        let l = b.finish();
        assert_eq!(l.len(), 2);
        assert_eq!(
            l.json(),
            r#"[{"name":"a","d":"x y\n \"q\" "},{"name":"b","n":1.50,"e":"\u00e9"}]"#
        );
        assert_eq!(
            l.iter().nth(1),
            Some(r#"{"name":"b","n":1.50,"e":"\u00e9"}"#)
        );
        assert_eq!(l.strings("name").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(l.values()[0]["d"], "x y\n \"q\" ");
        let v: Value = serde_json::from_str(l.json()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(ItemList::default().json(), "[]");
        assert_eq!(ItemList::from_values(&[json!({"name": "b"})]).len(), 1);
    }

    #[test]
    fn a_member_is_replaced_in_place_or_added() {
        let item = r#"{"x":{"name":"inner"},"name":"echo","y":[1,2]}"#;
        assert_eq!(
            with_member(item, "name", "srv__echo"),
            r#"{"x":{"name":"inner"},"name":"srv__echo","y":[1,2]}"#
        );
        assert_eq!(
            with_member(r#"{"a":1}"#, "uri", "u\"1"),
            r#"{"a":1,"uri":"u\"1"}"#
        );
        assert_eq!(with_member("{}", "name", "n"), r#"{"name":"n"}"#);
        assert_eq!(string_member(item, "name").as_deref(), Some("echo"));
        assert_eq!(string_member(r#"{"name":3}"#, "name"), None);
        assert_eq!(
            string_member(r#"{"na\u006de":"esc"}"#, "name").as_deref(),
            Some("esc")
        );
    }
}
