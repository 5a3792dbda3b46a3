//! A JSON object seen one level deep: its keys, and each value as its raw text.
//!
//! A routed `tools/call` needs one thing from its params, the tool's `name`, and must send the
//! rest on unchanged with the name swapped for the upstream's. Parsing the params into a
//! `serde_json::Map` for that built a tree of the arguments only to serialise it again (a tenth
//! of the hub's instructions per call); a [`RawObject`] borrows the keys and the values' text
//! from the request, so arguments pass through as the client wrote them (big integers
//! included, which a `Value` would round to a float).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

/// Nesting of arrays and objects serde_json accepts when it parses a value (the params object
/// itself is the first level); params deeper than that are refused whether or not the hub parses
/// them, so an upstream never sees what the hub would not accept.
pub const MAX_DEPTH: usize = 127;

/// A JSON object's members, each value unparsed. A key given twice keeps its last value in its
/// first place, as a `serde_json::Map` does, so what is routed and what is sent agree.
#[derive(Debug)]
pub struct RawObject<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// The object `raw` holds; `None` when it holds anything else.
    #[must_use]
    pub fn parse(raw: &'a RawValue) -> Option<Self> {
        let text = raw.get();
        if !text.trim_start().starts_with('{') {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(MembersVisitor).ok()
    }

    /// The raw value of `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The value of `key` when it is a string.
    #[must_use]
    pub fn get_str(&self, key: &str) -> Option<Cow<'a, str>> {
        let v = self.get(key)?;
        if !v.get().starts_with('"') {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(v.get());
        de.deserialize_str(KeyVisitor).ok()
    }

    /// Whether the object has `key`.
    #[must_use]
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The object with `key`'s value replaced by the string `value` (added last when absent),
    /// compact between members, each other value as it was written.
    #[must_use]
    pub fn with_str(&self, key: &str, value: &str) -> Box<RawValue> {
        self.edited(&[(key, Member::Str(value))])
    }

    /// The object with `key`'s value replaced by the raw `value`, as [`RawObject::with_str`].
    #[must_use]
    pub fn with_raw(&self, key: &str, value: &RawValue) -> Box<RawValue> {
        self.edited(&[(key, Member::Raw(value))])
    }

    /// The object with each edit's key set to its value: in its place when the object has the
    /// key, after the other members (in the edits' order) when it has not. Compact between
    /// members; every value not edited as it was written.
    #[must_use]
    pub fn edited(&self, edits: &[(&str, Member<'_>)]) -> Box<RawValue> {
        let with = With {
            object: self,
            edits,
        };
        // Serialising strings, numbers and raw values cannot fail.
        serde_json::value::to_raw_value(&with).expect("an object of raw values serialises")
    }
}

/// A member's new value in [`RawObject::edited`].
#[derive(Debug, Clone, Copy)]
pub enum Member<'v> {
    /// A string, escaped as JSON needs.
    Str(&'v str),
    /// A non-negative integer.
    U64(u64),
    /// Any JSON value, written as it is.
    Raw(&'v RawValue),
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Member::Str(v) => s.serialize_str(v),
            Member::U64(v) => s.serialize_u64(*v),
            Member::Raw(v) => v.serialize(s),
        }
    }
}

/// Whether `raw` (well-formed JSON) nests arrays and objects at most `max` levels deep. A scan,
/// not a parse: the hub can refuse what it would not parse without building it.
#[must_use]
pub fn depth_within(raw: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut bytes = raw.as_bytes().iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                // Skip the string: a backslash escapes the byte after it.
                while let Some(&c) = bytes.next() {
                    match c {
                        b'\\' => {
                            bytes.next();
                        }
                        b'"' => break,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    true
}

struct With<'o, 'a> {
    object: &'o RawObject<'a>,
    edits: &'o [(&'o str, Member<'o>)],
}

impl Serialize for With<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in &self.object.members {
            match self.edits.iter().find(|(key, _)| k == key) {
                Some((_, new)) => map.serialize_entry(k.as_ref(), new)?,
                None => map.serialize_entry(k.as_ref(), *v)?,
            }
        }
        // A key edited twice is written once, with its first edit, as in place above.
        for (i, (key, new)) in self.edits.iter().enumerate() {
            let earlier = self.edits[..i].iter().any(|(k, _)| k == key);
            if !earlier && !self.object.contains(key) {
                map.serialize_entry(key, new)?;
            }
        }
        map.end()
    }
}

/// Members found again by a linear scan; more are indexed.
const SCAN: usize = 16;

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = RawObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        // A call's params have a handful of members, found again by a scan; past `SCAN` a
        // hostile object of a million keys would make that quadratic, so they are indexed.
        let mut index: Option<HashMap<Cow<'de, str>, usize>> = None;
        while let Some(Key(k)) = access.next_key()? {
            let v: &'de RawValue = access.next_value()?;
            let seen = match &index {
                Some(index) => index.get(&k).copied(),
                None => members.iter().position(|(seen, _)| *seen == k),
            };
            match seen {
                Some(i) => members[i].1 = v,
                None => {
                    if let Some(index) = &mut index {
                        index.insert(k.clone(), members.len());
                    }
                    members.push((k, v));
                    if index.is_none() && members.len() > SCAN {
                        index = Some(
                            members
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (k.clone(), i))
                                .collect(),
                        );
                    }
                }
            }
        }
        Ok(RawObject { members })
    }
}

/// A string that borrows from the input unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor).map(Key)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value, json};

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn the_name_is_swapped_and_everything_else_passes_as_written() {
        let r = raw(
            r#"{ "name" : "fx__echo", "arguments": {"n": 123456789012345678901234567890, "f": 1.0, "s": "a\nb"}, "_meta": {"progressToken": 7} }"#,
        );
        let o = RawObject::parse(&r).unwrap();
        assert_eq!(o.get_str("name").as_deref(), Some("fx__echo"));
        let out = o.with_str("name", "echo");
        assert_eq!(
            out.get(),
            r#"{"name":"echo","arguments":{"n": 123456789012345678901234567890, "f": 1.0, "s": "a\nb"},"_meta":{"progressToken": 7}}"#
        );
    }

    #[test]
    fn escaped_keys_and_names_are_read_as_json_reads_them() {
        let r = raw(r#"{"n\u0061me":"a\"b\u00e9","x\\y":1}"#);
        let o = RawObject::parse(&r).unwrap();
        assert_eq!(o.get_str("name").as_deref(), Some("a\"bé"));
        let out = o.with_str("name", "q\"\u{1}");
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v, json!({"name": "q\"\u{1}", "x\\y": 1}));
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_value_like_a_map() {
        let text = r#"{"name":"shown","arguments":{},"name":"hidden"}"#;
        let r = raw(text);
        let o = RawObject::parse(&r).unwrap();
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(o.get_str("name").as_deref(), map["name"].as_str());
        // The upstream sees one name, the one routed.
        let out = o.with_str("name", "upstream");
        assert_eq!(out.get(), r#"{"name":"upstream","arguments":{}}"#);
    }

    #[test]
    fn a_wide_object_with_repeats_keeps_each_keys_last_value_in_its_first_place() {
        // 150,000 keys, each twice (the second time with its own value), as a 4 MB body could
        // carry: a quadratic search for repeats takes minutes here (nextest stops it), indexed
        // it takes a second.
        let mut text = String::from("{");
        for i in 0..150_000 {
            text.push_str(&format!(r#""k{i}":0,"#));
        }
        for i in 0..150_000 {
            text.push_str(&format!(r#""k{i}":{i},"#));
        }
        text.push_str(r#""name":"w"}"#);
        let r = raw(&text);
        let o = RawObject::parse(&r).unwrap();
        assert_eq!(o.get_str("name").as_deref(), Some("w"));
        assert_eq!(o.get("k149999").map(|v| v.get()), Some("149999"));
        let map: Map<String, Value> = serde_json::from_str(&text).unwrap();
        let out: Map<String, Value> = serde_json::from_str(o.with_str("name", "x").get()).unwrap();
        assert_eq!(out.len(), map.len());
        assert_eq!(out.keys().take(3).collect::<Vec<_>>(), ["k0", "k1", "k2"]);
        assert_eq!(out["k7"], 7);
        // Repeats around the switch to the index land in place too.
        let small = raw(&format!(
            "{{{}}}",
            (0..40)
                .map(|i| format!(r#""k{}":{i}"#, i % 20))
                .collect::<Vec<_>>()
                .join(",")
        ));
        let o = RawObject::parse(&small).unwrap();
        let got: Map<String, Value> = serde_json::from_str(o.with_str("n", "v").get()).unwrap();
        assert_eq!(got.len(), 21);
        assert_eq!(got["k3"], 23);
        assert_eq!(got.keys().next().map(String::as_str), Some("k0"));
    }

    #[test]
    fn edits_replace_in_place_and_append_the_rest_in_their_order() {
        let r = raw(r#"{"b": [1, 2], "a": "x", "c": {"k": 1.50}}"#);
        let o = RawObject::parse(&r).unwrap();
        let v = raw(r#"{"n": 1}"#);
        let out = o.edited(&[
            ("z", Member::Str("q\"uote")),
            ("a", Member::U64(u64::MAX)),
            ("y", Member::Raw(&v)),
            ("z", Member::Str("second edit of z, not written")),
        ]);
        assert_eq!(
            out.get(),
            r#"{"b":[1, 2],"a":18446744073709551615,"c":{"k": 1.50},"z":"q\"uote","y":{"n": 1}}"#
        );
        // No edits: the same members, compact between them.
        assert_eq!(
            o.edited(&[]).get(),
            r#"{"b":[1, 2],"a":"x","c":{"k": 1.50}}"#
        );
        assert!(o.contains("c") && !o.contains("k"));
    }

    #[test]
    fn anything_but_an_object_is_none_and_a_non_string_name_has_no_str() {
        for s in [r#"[1]"#, r#""x""#, "1", "null", r#" [{"name":"a"}]"#] {
            assert!(RawObject::parse(&raw(s)).is_none(), "{s}");
        }
        let r = raw(r#"{"name":{"x":1},"k":["name"]}"#);
        let o = RawObject::parse(&r).unwrap();
        assert!(o.get_str("name").is_none());
        assert!(o.get_str("absent").is_none());
        assert_eq!(o.get("k").map(|v| v.get()), Some(r#"["name"]"#));
        let added = RawObject::parse(&raw("{}")).unwrap().with_str("name", "t");
        assert_eq!(added.get(), r#"{"name":"t"}"#);
    }

    #[test]
    fn the_depth_scan_draws_the_line_where_serde_json_does() {
        for depth in 1..=(MAX_DEPTH + 3) {
            // Objects and arrays alternating, with brackets inside strings that must not count.
            let mut s = String::new();
            for i in 0..depth {
                s.push_str(if i % 2 == 0 { r#"{"k]\"{":"# } else { "[" });
            }
            s.push_str(r#""[[\\""#);
            for i in (0..depth).rev() {
                s.push(if i % 2 == 0 { '}' } else { ']' });
            }
            let parsed = serde_json::from_str::<Value>(&s).is_ok();
            assert!(
                serde_json::from_str::<&RawValue>(&s).is_ok(),
                "{depth}: well-formed"
            );
            assert_eq!(depth_within(&s, MAX_DEPTH), parsed, "depth {depth}");
        }
    }
}
