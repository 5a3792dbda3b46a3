//! A JSON response body read as it arrives, one top-level value after another. A 2026-07-28
//! answer is normally one JSON value, but servers also stream several (a progress notification,
//! then the response; or a `subscriptions/listen` stream that never ends) as concatenated or
//! newline-delimited JSON under `application/json`. Values are found by tracking nesting and
//! strings, so each byte is looked at once however the body is chunked, and a pretty-printed
//! value (newlines inside it) is still one value.

/// Splits a byte stream into complete top-level JSON values.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned.
    scanned: usize,
    /// Where the value being scanned starts, once a non-space byte was seen.
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Splitter {
    /// Bytes held for the value not yet complete.
    pub(crate) fn pending(&self) -> usize {
        self.start.map_or(0, |s| self.buf.len() - s)
    }

    /// Adds `data` and returns every value it completed, in order.
    pub(crate) fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            i += 1;
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                if !self.in_string && self.depth == 0 {
                    // A bare string value ends here.
                    self.complete(i, &mut out, &mut consumed);
                }
                continue;
            }
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    // Whitespace ends a bare scalar (a number, `true`, ...).
                    if self.depth == 0 && self.start.is_some() {
                        self.complete(i - 1, &mut out, &mut consumed);
                    }
                    continue;
                }
                _ => {}
            }
            if self.start.is_none() {
                self.start = Some(i - 1);
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.complete(i, &mut out, &mut consumed);
                    }
                }
                _ => {}
            }
        }
        self.buf.drain(..consumed);
        self.start = self.start.map(|s| s - consumed);
        self.scanned = self.buf.len();
        out
    }

    fn complete(&mut self, end: usize, out: &mut Vec<Vec<u8>>, consumed: &mut usize) {
        if let Some(start) = self.start.take() {
            out.push(self.buf[start..end].to_vec());
        }
        *consumed = end;
    }

    /// The end of the body: what is left (a trailing bare scalar, or a truncated value), if
    /// anything but whitespace.
    pub(crate) fn finish(self) -> Option<Vec<u8>> {
        let rest = &self.buf[self.start?..];
        (!rest.trim_ascii().is_empty()).then(|| rest.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> (Vec<String>, Option<String>) {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c));
        }
        let rest = s.finish();
        (
            out.into_iter()
                .map(|v| String::from_utf8(v).unwrap())
                .collect(),
            rest.map(|v| String::from_utf8(v).unwrap()),
        )
    }

    #[test]
    fn one_value_in_any_chunking() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"text":"a } \" { ]"}}"#;
        for split in 0..body.len() {
            let (vals, rest) = all(&[&body[..split], &body[split..]]);
            assert_eq!(vals, [String::from_utf8(body.to_vec()).unwrap()]);
            assert_eq!(rest, None);
        }
    }

    #[test]
    fn newline_delimited_and_concatenated_values() {
        let (vals, rest) = all(&[
            b"{\"a\":1}\n{\"b\":",
            b"[2,{}]}\n",
            b"{\"c\":\"\\\\\"}{\"d\":4}\n",
        ]);
        assert_eq!(
            vals,
            [
                "{\"a\":1}",
                "{\"b\":[2,{}]}",
                "{\"c\":\"\\\\\"}",
                "{\"d\":4}"
            ]
        );
        assert_eq!(rest, None);
    }

    #[test]
    fn a_pretty_printed_value_is_one_value() {
        let (vals, _) = all(&[b"{\n  \"a\": [\n    1\n  ]\n}\n"]);
        assert_eq!(vals, ["{\n  \"a\": [\n    1\n  ]\n}"]);
    }

    #[test]
    fn a_truncated_value_is_left_over() {
        let mut s = Splitter::default();
        assert!(s.push(b"{\"a\":1}{\"b\":").len() == 1);
        assert_eq!(s.pending(), 5);
        assert_eq!(s.finish().as_deref(), Some(&b"{\"b\":"[..]));
    }
}
