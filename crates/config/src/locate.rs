//! A small structural scanner for JSON5 text that remembers where things are.
//!
//! `json5` gives values without positions. This scanner runs only on text that `json5` already
//! accepted and records, for every object member, where its key starts and where its value
//! starts and ends. It serves two purposes: line numbers for "bad field" errors, and minimal
//! textual edits (toggling `disabled`) that keep comments and formatting.

use std::fmt;

use json5::char::{is_json5_line_terminator, is_json5_whitespace};

/// A value and its byte span in the text.
#[derive(Debug)]
pub(crate) struct Node {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Object(Vec<Member>),
    Array(Vec<Node>),
    Scalar,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub key: String,
    pub key_start: usize,
    pub value: Node,
}

impl Node {
    /// The member named `key`; the last one when the key is repeated, as a parser keeps the
    /// last.
    pub(crate) fn member(&self, key: &str) -> Option<&Member> {
        match &self.kind {
            Kind::Object(members) => members.iter().rev().find(|m| m.key == key),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn members(&self) -> &[Member] {
        match &self.kind {
            Kind::Object(members) => members,
            _ => &[],
        }
    }
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path inside a server entry, shown as `args[2]`, `env.TOKEN`, `dev.cwd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub(crate) fn key(key: &str) -> Self {
        FieldPath(vec![Seg::Key(key.to_owned())])
    }

    pub(crate) fn child(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        FieldPath(segs)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        FieldPath(segs)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Scans `text`; `None` if it is not something this scanner understands (it only needs to cope
/// with text `json5` accepted).
pub(crate) fn scan(text: &str) -> Option<Node> {
    let mut p = Scanner {
        s: text,
        pos: 0,
        depth: 0,
    };
    let node = p.value()?;
    p.trivia()?;
    (p.pos == text.len()).then_some(node)
}

/// The 1-based line of the deepest element of `path` that exists in `text` (a key's own line for
/// object members). Best effort: `None` if the text cannot be scanned.
pub(crate) fn line_of(text: &str, path: &[Seg]) -> Option<usize> {
    let root = scan(text)?;
    let mut node = &root;
    let mut offset = None;
    for seg in path {
        match (seg, &node.kind) {
            (Seg::Key(k), Kind::Object(_)) => match node.member(k) {
                Some(m) => {
                    offset = Some(m.key_start);
                    node = &m.value;
                }
                None => break,
            },
            (Seg::Index(i), Kind::Array(items)) => match items.get(*i) {
                Some(item) => {
                    offset = Some(item.start);
                    node = item;
                }
                None => break,
            },
            _ => break,
        }
    }
    offset.map(|o| line_at(text, o))
}

/// The 1-based line of byte `offset`, counting `\r\n` once, as `json5` does.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    let mut line = 1;
    let mut prev_cr = false;
    for c in text[..offset.min(text.len())].chars() {
        if is_json5_line_terminator(c) && !(c == '\n' && prev_cr) {
            line += 1;
        }
        prev_cr = c == '\r';
    }
    line
}

const MAX_NESTING: usize = 512;

struct Scanner<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, want: char) -> Option<()> {
        (self.bump()? == want).then_some(())
    }

    /// Skips whitespace and comments. `None` on an unterminated block comment.
    fn trivia(&mut self) -> Option<()> {
        loop {
            let rest = &self.s[self.pos..];
            if rest.starts_with("//") {
                let end = rest.find(is_json5_line_terminator).unwrap_or(rest.len());
                self.pos += end;
            } else if let Some(body) = rest.strip_prefix("/*") {
                self.pos += 2 + body.find("*/")? + 2;
            } else if self.peek().is_some_and(is_json5_whitespace) {
                self.bump();
            } else {
                return Some(());
            }
        }
    }

    fn value(&mut self) -> Option<Node> {
        self.trivia()?;
        let start = self.pos;
        let kind = match self.peek()? {
            '{' => self.nested(Self::object)?,
            '[' => self.nested(Self::array)?,
            '"' | '\'' => {
                self.string()?;
                Kind::Scalar
            }
            _ => {
                // Numbers, true/false/null, Infinity, NaN: everything up to a delimiter.
                while let Some(c) = self.peek() {
                    if matches!(c, ',' | ']' | '}' | '/') || is_json5_whitespace(c) {
                        break;
                    }
                    self.bump();
                }
                if self.pos == start {
                    return None;
                }
                Kind::Scalar
            }
        };
        Some(Node {
            start,
            end: self.pos,
            kind,
        })
    }

    fn nested(&mut self, f: fn(&mut Self) -> Option<Kind>) -> Option<Kind> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return None;
        }
        let kind = f(self);
        self.depth -= 1;
        kind
    }

    fn object(&mut self) -> Option<Kind> {
        self.eat('{')?;
        let mut members = Vec::new();
        loop {
            self.trivia()?;
            if self.peek()? == '}' {
                self.bump();
                return Some(Kind::Object(members));
            }
            let key_start = self.pos;
            let key = match self.peek()? {
                '"' | '\'' => self.string()?,
                _ => self.identifier()?,
            };
            self.trivia()?;
            self.eat(':')?;
            let value = self.value()?;
            members.push(Member {
                key,
                key_start,
                value,
            });
            self.trivia()?;
            match self.bump()? {
                ',' => {}
                '}' => return Some(Kind::Object(members)),
                _ => return None,
            }
        }
    }

    fn array(&mut self) -> Option<Kind> {
        self.eat('[')?;
        let mut items = Vec::new();
        loop {
            self.trivia()?;
            if self.peek()? == ']' {
                self.bump();
                return Some(Kind::Array(items));
            }
            items.push(self.value()?);
            self.trivia()?;
            match self.bump()? {
                ',' => {}
                ']' => return Some(Kind::Array(items)),
                _ => return None,
            }
        }
    }

    fn identifier(&mut self) -> Option<String> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == ':' || c == '/' || is_json5_whitespace(c) {
                break;
            }
            self.bump();
            if c == '\\' {
                self.eat('u')?;
                out.push(self.hex_char(4)?);
            } else {
                out.push(c);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// A quoted string, decoded.
    fn string(&mut self) -> Option<String> {
        let quote = self.bump()?;
        let mut out = String::new();
        loop {
            let c = self.bump()?;
            if c == quote {
                return Some(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            match self.bump()? {
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\u{b}'),
                '0' => out.push('\0'),
                'x' => out.push(self.hex_char(2)?),
                'u' => out.push(self.hex_char(4)?),
                '\r' => {
                    // `\` + CRLF is one line continuation.
                    if self.peek() == Some('\n') {
                        self.bump();
                    }
                }
                c if is_json5_line_terminator(c) => {}
                c => out.push(c),
            }
        }
    }

    /// `n` hex digits as a char; a UTF-16 surrogate pair `\uD83D\uDE00` is combined.
    fn hex_char(&mut self, n: usize) -> Option<char> {
        let unit = self.hex(n)?;
        if (0xD800..0xDC00).contains(&unit) && self.s[self.pos..].starts_with("\\u") {
            let save = self.pos;
            self.pos += 2;
            if let Some(low) = self.hex(4).filter(|l| (0xDC00..0xE000).contains(l)) {
                return char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
            }
            self.pos = save;
        }
        Some(char::from_u32(unit).unwrap_or('\u{FFFD}'))
    }

    fn hex(&mut self, n: usize) -> Option<u32> {
        let digits = self.s.get(self.pos..self.pos + n)?;
        let v = u32::from_str_radix(digits, 16).ok()?;
        self.pos += n;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"// settings
{
  /* the servers */
  mcpServers: {
    'a\u0062c': { command: "x", args: ["1", 2, 3,], },
    "d": {
      "url": "https://e/\"}",  // tricky string
      headers: {},
    },
  },
  "n": -Infinity, "m": 0x1F, "z": .5,
}
"#;

    #[test]
    fn scans_json5_and_finds_lines() {
        assert!(json5::from_str::<serde_json::Value>(TEXT).is_ok());
        let root = scan(TEXT).expect("scans");
        let servers = &root.member("mcpServers").unwrap().value;
        let keys: Vec<_> = servers.members().iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["abc", "d"]);
        let k = |s: &str| Seg::Key(s.to_owned());
        assert_eq!(line_of(TEXT, &[k("mcpServers"), k("abc")]), Some(5));
        assert_eq!(
            line_of(TEXT, &[k("mcpServers"), k("d"), k("headers")]),
            Some(8)
        );
        assert_eq!(
            line_of(TEXT, &[k("mcpServers"), k("abc"), k("args"), Seg::Index(2)]),
            Some(5)
        );
        // Missing tail: the deepest existing element.
        assert_eq!(
            line_of(TEXT, &[k("mcpServers"), k("d"), k("nope")]),
            Some(6)
        );
    }

    #[test]
    fn value_spans_cover_the_value_text() {
        let text = r#"{"a": {"disabled": false}, "b": 'x'}"#;
        let root = scan(text).unwrap();
        let d = &root
            .member("a")
            .unwrap()
            .value
            .member("disabled")
            .unwrap()
            .value;
        assert_eq!(&text[d.start..d.end], "false");
    }

    #[test]
    fn duplicate_keys_resolve_to_the_last() {
        let text = "{a: 1,\n a: 2}";
        assert_eq!(line_of(text, &[Seg::Key("a".into())]), Some(2));
    }

    #[test]
    fn crlf_counts_once_and_escapes_decode() {
        assert_eq!(line_at("a\r\nb\nc", 5), 3);
        let root = scan("{\"\\uD83D\\uDE00\\x41\": 1}").unwrap();
        assert_eq!(root.members()[0].key, "\u{1F600}A");
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        assert!(scan("{a: 1").is_none());
        assert!(scan("/* open").is_none());
        assert!(scan(&"[".repeat(MAX_NESTING + 1)).is_none());
    }
}
