//! The encoder: complete events, comments and `retry` fields, each a valid block on its own.

use std::borrow::Cow;

/// Removes what would break the line framing from a single-line field value (borrowed when
/// there is nothing to remove, as there almost never is).
fn single_line(value: &str) -> Cow<'_, str> {
    if has_line_break(value.as_bytes()) {
        Cow::Owned(
            value
                .chars()
                .filter(|c| !matches!(c, '\r' | '\n'))
                .collect(),
        )
    } else {
        Cow::Borrowed(value)
    }
}

/// Whether `bytes` hold a CR or LF, the bytes that end an SSE line. They are ASCII, so they are
/// found byte-wise (vectorised): no UTF-8 sequence contains their bytes.
pub fn has_line_break(bytes: &[u8]) -> bool {
    memchr::memchr2(b'\n', b'\r', bytes).is_some()
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// Appends one complete event. `event` and `id` must be single-line (line breaks are removed);
/// `data` is split on CR, LF and CRLF into several `data:` lines, which a decoder joins with `\n`.
/// Empty `data` still produces one `data:` line, so `encode_event(out, None, Some(id), "")` is an
/// MCP priming event.
pub fn encode_event(out: &mut Vec<u8>, event: Option<&str>, id: Option<&str>, data: &str) {
    if let Some(event) = event {
        push_field(out, "event", &single_line(event));
    }
    if let Some(id) = id {
        push_field(out, "id", &single_line(id));
    }
    for line in split_lines(data) {
        push_field(out, "data", line);
    }
    out.push(b'\n');
}

/// Appends the `id:` field `<stream>-<seq>` of an event on a resumable stream, without the
/// formatting machinery (it is written for every message a hub relays).
pub fn push_stream_event_id(out: &mut Vec<u8>, stream: u64, seq: u64) {
    out.extend_from_slice(b"id: ");
    push_decimal(out, stream);
    out.push(b'-');
    push_decimal(out, seq);
    out.push(b'\n');
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends a `retry:` block telling clients how many milliseconds to wait before reconnecting.
pub fn encode_retry(out: &mut Vec<u8>, millis: u64) {
    push_retry_field(out, millis);
    out.push(b'\n');
}

/// Appends the `retry:` field alone, for an event that goes on (an MCP priming event carries it).
pub fn push_retry_field(out: &mut Vec<u8>, millis: u64) {
    out.extend_from_slice(b"retry: ");
    push_decimal(out, millis);
    out.push(b'\n');
}

/// Appends a comment, which clients ignore: used as a keep-alive on idle streams.
pub fn encode_comment(out: &mut Vec<u8>, text: &str) {
    for line in split_lines(text) {
        out.push(b':');
        if !line.is_empty() {
            out.push(b' ');
            out.extend_from_slice(line.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Splits on CRLF, CR and LF; always yields at least one (possibly empty) line.
fn split_lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let cur = rest?;
        match memchr::memchr2(b'\n', b'\r', cur.as_bytes()) {
            Some(pos) => {
                let skip = if cur[pos..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&cur[pos + skip..]);
                Some(&cur[..pos])
            }
            None => {
                rest = None;
                Some(cur)
            }
        }
    })
}
