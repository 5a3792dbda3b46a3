//! Bounded newline framing for the stdio transport.
//!
//! The framer never holds more than `max` bytes of an unfinished line: a longer line is dropped
//! as it streams past and reported once its newline arrives, so a misbehaving server cannot make
//! the hub buffer without limit, and the next line is read intact.

use mcp_hub_protocol::{DecodeError, Incoming};

/// One framing event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A complete line without its `\n`.
    Line(&'a [u8]),
    /// A line longer than the limit was skipped: its length in bytes, and its first and last
    /// bytes (at most [`EDGE`] each), enough to tell which request it answered.
    Oversize(usize, &'a [u8], &'a [u8]),
}

/// How many bytes of each end of a skipped line are kept.
pub(crate) use mcp_hub_protocol::salvage::EDGE;

fn keep_tail(tail: &mut Vec<u8>, more: &[u8]) {
    tail.extend_from_slice(&more[more.len().saturating_sub(EDGE)..]);
    let excess = tail.len().saturating_sub(EDGE);
    tail.drain(..excess);
}

/// Splits a byte stream, fed in arbitrary chunks, into lines of at most `max` bytes.
#[derive(Debug)]
pub(crate) struct LineFramer {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of an oversize line dropped so far; `Some` while skipping to its newline.
    skipping: Option<usize>,
    /// The first and the latest bytes of the oversize line being skipped.
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl LineFramer {
    /// A framer accepting lines of up to `max` bytes (excluding the newline).
    pub(crate) fn new(max: usize) -> Self {
        LineFramer {
            buf: Vec::new(),
            max,
            skipping: None,
            head: Vec::new(),
            tail: Vec::new(),
        }
    }

    /// Feeds a chunk and calls `out` for every event it completes, in order.
    pub(crate) fn push(&mut self, mut chunk: &[u8], mut out: impl FnMut(Frame<'_>)) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|&b| b == b'\n');
            if let Some(skipped) = self.skipping {
                match newline {
                    Some(i) => {
                        self.skipping = None;
                        keep_tail(&mut self.tail, &chunk[..i]);
                        out(Frame::Oversize(
                            skipped.saturating_add(i),
                            &self.head,
                            &self.tail,
                        ));
                        chunk = &chunk[i + 1..];
                    }
                    None => {
                        keep_tail(&mut self.tail, chunk);
                        self.skipping = Some(skipped.saturating_add(chunk.len()));
                        return;
                    }
                }
                continue;
            }
            let take = newline.unwrap_or(chunk.len());
            if self.buf.len() + take > self.max {
                let skipped = self.buf.len() + take;
                let part = &chunk[..take];
                self.head.clear();
                self.tail.clear();
                let from_buf = self.buf.len().min(EDGE);
                self.head.extend_from_slice(&self.buf[..from_buf]);
                self.head
                    .extend_from_slice(&part[..part.len().min(EDGE - from_buf)]);
                keep_tail(&mut self.tail, &self.buf);
                keep_tail(&mut self.tail, part);
                self.buf.clear();
                match newline {
                    Some(i) => {
                        out(Frame::Oversize(skipped, &self.head, &self.tail));
                        chunk = &chunk[i + 1..];
                    }
                    None => {
                        self.skipping = Some(skipped);
                        return;
                    }
                }
                continue;
            }
            match newline {
                Some(i) => {
                    if self.buf.is_empty() {
                        out(Frame::Line(&chunk[..i]));
                    } else {
                        self.buf.extend_from_slice(&chunk[..i]);
                        out(Frame::Line(&self.buf));
                        self.buf.clear();
                    }
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.buf.extend_from_slice(chunk);
                    return;
                }
            }
        }
    }

    /// Ends the stream: an unterminated last line is delivered like a complete one.
    pub(crate) fn finish(&mut self, mut out: impl FnMut(Frame<'_>)) {
        if let Some(skipped) = self.skipping.take() {
            out(Frame::Oversize(skipped, &self.head, &self.tail));
        } else if !self.buf.is_empty() {
            out(Frame::Line(&self.buf));
        }
        self.buf.clear();
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The id of the response a skipped line carried, read from the line's edges (see
/// [`mcp_hub_protocol::salvage::answer_id_from_edges`]).
pub(crate) fn oversize_response_id(
    head: &[u8],
    tail: &[u8],
) -> Option<mcp_hub_protocol::RequestId> {
    mcp_hub_protocol::salvage::answer_id_from_edges(head, tail)
}

/// Decodes one stdio line: strips a trailing `\r` and a leading UTF-8 BOM; blank lines are
/// `Ok(None)`.
pub(crate) fn decode_line(line: &[u8]) -> Result<Option<Incoming>, DecodeError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(BOM).unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Incoming::from_slice(line).map(Some)
}

/// The start of a line for a log message: at most `max` bytes, lossily decoded, never split
/// inside a character.
pub(crate) fn preview(line: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&line[..line.len().min(max)]);
    let mut s = s.into_owned();
    if line.len() > max {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Line(Vec<u8>),
        Oversize(usize),
    }

    fn run(max: usize, chunks: &[&[u8]]) -> Vec<Owned> {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        let mut sink = |fr: Frame<'_>| {
            out.push(match fr {
                Frame::Line(l) => Owned::Line(l.to_vec()),
                Frame::Oversize(n, _, _) => Owned::Oversize(n),
            })
        };
        for c in chunks {
            f.push(c, &mut sink);
        }
        f.finish(&mut sink);
        out
    }

    /// The reference model: split the whole input at once.
    fn model(max: usize, input: &[u8]) -> Vec<Owned> {
        let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        parts
            .into_iter()
            .map(|p| {
                if p.len() > max {
                    Owned::Oversize(p.len())
                } else {
                    Owned::Line(p.to_vec())
                }
            })
            .collect()
    }

    #[test]
    fn splits_lines_across_chunks() {
        assert_eq!(
            run(10, &[b"ab", b"c\nde", b"\n\nf"]),
            vec![
                Owned::Line(b"abc".to_vec()),
                Owned::Line(b"de".to_vec()),
                Owned::Line(Vec::new()),
                Owned::Line(b"f".to_vec()),
            ]
        );
    }

    #[test]
    fn oversize_line_is_skipped_and_the_next_one_survives() {
        assert_eq!(
            run(4, &[b"12", b"345", b"678\nok\n"]),
            vec![Owned::Oversize(8), Owned::Line(b"ok".to_vec())]
        );
        assert_eq!(
            run(4, &[b"123456789\nok\n"]),
            vec![Owned::Oversize(9), Owned::Line(b"ok".to_vec())]
        );
        assert_eq!(
            run(4, &[b"1234", b"\n"]),
            vec![Owned::Line(b"1234".to_vec())]
        );
    }

    #[test]
    fn the_id_of_a_skipped_response_is_read_from_either_end() {
        let id = |h: &str, t: &str| oversize_response_id(h.as_bytes(), t.as_bytes());
        use mcp_hub_protocol::RequestId;
        assert_eq!(
            id(
                r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","te"#,
                "xx\"}]}}"
            ),
            Some(RequestId::from(7))
        );
        assert_eq!(
            id(r#"{"jsonrpc": "2.0", "id": "a-1", "result": {"#, "}}"),
            Some(RequestId::from("a-1"))
        );
        assert_eq!(
            id(
                r#"{"result":{"content":[{"#,
                r#"aaaa"}]},"jsonrpc":"2.0","id":12}"#
            ),
            Some(RequestId::from(12))
        );
        assert_eq!(
            id(r#"{"result":{"#, r#"aa"}],"id":3}}"#),
            None,
            "a nested id is not the response's"
        );
        assert_eq!(id(r#"{"result":{"#, r#"aa"}]}}"#), None);
    }

    #[test]
    fn oversize_lines_keep_their_edges() {
        let mut f = LineFramer::new(8);
        let mut seen = Vec::new();
        let mut sink = |fr: Frame<'_>| {
            if let Frame::Oversize(n, h, t) = fr {
                seen.push((n, h.to_vec(), t.to_vec()));
            }
        };
        f.push(b"{\"id\":5,", &mut sink);
        f.push(b"\"x\":1}\n", &mut sink);
        // The line became too long only with its second chunk: both edges are the whole line.
        let line = b"{\"id\":5,\"x\":1}".to_vec();
        assert_eq!(seen, vec![(14, line.clone(), line)]);
    }

    #[test]
    fn decode_strips_bom_and_cr_and_skips_blank_lines() {
        let line = b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"method\":\"x\"}\r";
        assert!(matches!(decode_line(line), Ok(Some(Incoming::Single(_)))));
        assert!(matches!(decode_line(b"  \r"), Ok(None)));
        assert!(decode_line(b"Starting server...").is_err());
    }

    #[test]
    fn preview_is_bounded() {
        assert_eq!(preview(b"abcdef", 3), "abc…");
        assert_eq!(preview(b"ab", 3), "ab");
        // A multi-byte character cut in half becomes a replacement character, not a panic.
        assert_eq!(preview("é".as_bytes(), 1), "\u{FFFD}…");
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_the_result(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'a'), Just(b'{'), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..12),
            max in 0usize..40,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= input.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            for c in cuts {
                chunks.push(&input[start..c]);
                start = c;
            }
            chunks.push(&input[start..]);
            let got = run(max, &chunks);
            prop_assert_eq!(&got, &model(max, &input));
            for ev in &got {
                if let Owned::Line(l) = ev {
                    prop_assert!(l.len() <= max);
                    prop_assert!(!l.contains(&b'\n'));
                }
            }
        }

        #[test]
        fn decoding_arbitrary_lines_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_line(&line);
            let _ = preview(&line, 200);
        }

        #[test]
        fn valid_messages_survive_framing(
            ids in proptest::collection::vec(0i64..1000, 1..20),
            cut in 1usize..64,
        ) {
            let mut stream = b"\xEF\xBB\xBF".to_vec();
            for id in &ids {
                stream.extend_from_slice(
                    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{}}}}\r\n").as_bytes());
                stream.extend_from_slice(b"not json\n");
            }
            let mut framer = LineFramer::new(1024);
            let mut seen = Vec::new();
            for chunk in stream.chunks(cut) {
                framer.push(chunk, |fr| {
                    if let Frame::Line(l) = fr
                        && let Ok(Some(Incoming::Single(m))) = decode_line(l)
                    {
                        seen.push(m.id().cloned());
                    }
                });
            }
            let want: Vec<_> = ids.iter().map(|&i| Some(mcp_hub_protocol::RequestId::from(i))).collect();
            prop_assert_eq!(seen, want);
        }
    }
}
