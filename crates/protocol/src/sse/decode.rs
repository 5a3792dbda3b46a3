//! The incremental decoder: lines, fields and events by the living standard's rules, bounded.

use std::borrow::Cow;
use std::mem;

use super::{Event, SseError};

/// An incremental decoder: feed it the body's chunks as they arrive.
#[derive(Debug)]
pub struct Decoder {
    max_event_bytes: usize,
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// The previous chunk ended with CR, so an LF at the start of the next one belongs to it.
    pending_cr: bool,
    /// Whether the first line (which may start with a BOM) has been seen.
    past_first_line: bool,
    event_type: Cow<'static, str>,
    data: String,
    data_seen: bool,
    event_id: Option<String>,
    event_retry: Option<u64>,
    last_event_id: Option<String>,
    retry: Option<u64>,
    failed: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Decoder {
    /// A decoder that fails when one event (its pending line plus its accumulated data and type)
    /// would exceed `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Decoder {
            max_event_bytes,
            line: Vec::new(),
            pending_cr: false,
            past_first_line: false,
            event_type: Cow::Borrowed(""),
            data: String::new(),
            data_seen: false,
            event_id: None,
            event_retry: None,
            last_event_id: None,
            retry: None,
            failed: false,
        }
    }

    /// The last event id seen on the stream (for `Last-Event-ID`); `None` if none was set or the
    /// last one was empty.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The reconnection time the server asked for, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Decodes a chunk and returns the events it completed.
    ///
    /// An event is dispatched at a blank line when it carried data, an id or a retry field (an
    /// MCP priming event is an id with empty data). An unterminated event at the end of the
    /// stream is never dispatched.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        if self.failed {
            return Err(self.error());
        }
        let mut out = Vec::new();
        // An empty chunk says nothing about what follows a trailing CR: keep waiting for a byte.
        if self.pending_cr && !chunk.is_empty() {
            self.pending_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', chunk) {
            if self.line.is_empty() {
                // The whole line is in this chunk: read it where it is, without a copy.
                self.check_room(pos)?;
                self.process_line(&chunk[..pos], &mut out)?;
            } else {
                self.append_line_bytes(&chunk[..pos])?;
                let line = mem::take(&mut self.line);
                self.process_line(&line, &mut out)?;
                // Reuse the allocation for the next line.
                self.line = line;
                self.line.clear();
            }
            let mut next = pos + 1;
            if chunk[pos] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            chunk = &chunk[next..];
        }
        self.append_line_bytes(chunk)?;
        Ok(out)
    }

    fn error(&self) -> SseError {
        SseError {
            limit: self.max_event_bytes,
        }
    }

    fn buffered(&self) -> usize {
        self.line.len() + self.data.len() + self.event_type.len()
    }

    fn fail(&mut self) -> SseError {
        self.failed = true;
        self.line = Vec::new();
        self.data = String::new();
        self.error()
    }

    /// Fails when `more` bytes of line would take the event past the limit.
    fn check_room(&mut self, more: usize) -> Result<(), SseError> {
        if self.buffered().saturating_add(more) > self.max_event_bytes {
            return Err(self.fail());
        }
        Ok(())
    }

    fn append_line_bytes(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        self.check_room(bytes.len())?;
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        let mut line = line;
        if !self.past_first_line {
            self.past_first_line = true;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        // Lines end at CR/LF bytes, which never occur inside a UTF-8 sequence, so decoding line
        // by line is independent of how the stream was chunked.
        // Valid UTF-8 (nearly always) is checked by the fast path and borrowed.
        let value = match std::str::from_utf8(value) {
            Ok(v) => Cow::Borrowed(v),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"event" if value == "message" => self.event_type = Cow::Borrowed("message"),
            b"event" => self.event_type = Cow::Owned(value.into_owned()),
            b"data" => {
                if self.data.is_empty() {
                    // One allocation for a one-line event's data and its line break.
                    self.data.reserve(value.len() + 1);
                }
                self.data.push_str(&value);
                self.data.push('\n');
                self.data_seen = true;
                if self.buffered() > self.max_event_bytes {
                    return Err(self.fail());
                }
            }
            b"id" if !value.contains('\0') => {
                let id = value.into_owned();
                match &mut self.last_event_id {
                    // The last id's buffer is reused: one allocation per id, not two.
                    Some(last) if !id.is_empty() => {
                        last.clear();
                        last.push_str(&id);
                    }
                    last => *last = (!id.is_empty()).then(|| id.clone()),
                }
                self.event_id = Some(id);
            }
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Digits beyond u64 are a server bug; saturate rather than ignore.
                let ms = value.parse::<u64>().unwrap_or(u64::MAX);
                self.retry = Some(ms);
                self.event_retry = Some(ms);
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let event_type = mem::take(&mut self.event_type);
        let mut data = mem::take(&mut self.data);
        let data_seen = mem::take(&mut self.data_seen);
        let id = self.event_id.take();
        let retry = self.event_retry.take();
        if !data_seen && id.is_none() && retry.is_none() {
            return;
        }
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(Event {
            event: (!event_type.is_empty()).then_some(event_type),
            data,
            id,
            retry,
        });
    }
}
