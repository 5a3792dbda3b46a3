//! A log writer that scrubs secrets: every formatted line passes through the hub's
//! [`Redactor`] before it reaches stderr or the log file, whichever crate logged it (hyper's
//! connection pool at `trace` names the authority it connects to, an OS error may name a host).

use std::io::{self, Write};

use mcp_hub_core::config::Redactor;
use tracing_subscriber::fmt::MakeWriter;

/// Wraps a [`MakeWriter`] so that each event's text is scrubbed.
#[derive(Debug)]
pub(crate) struct Scrub<M> {
    inner: M,
    redactor: Redactor,
}

impl<M> Scrub<M> {
    pub(crate) fn new(inner: M, redactor: Redactor) -> Self {
        Scrub { inner, redactor }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Scrub<M> {
    type Writer = ScrubWriter<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubWriter {
            inner: self.inner.make_writer(),
            redactor: &self.redactor,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        ScrubWriter {
            inner: self.inner.make_writer_for(meta),
            redactor: &self.redactor,
        }
    }
}

/// One event's writer. The formatter hands it a whole event in one `write_all`, so a value is
/// never split across two writes.
pub(crate) struct ScrubWriter<'a, W> {
    inner: W,
    redactor: &'a Redactor,
}

impl<W: Write> Write for ScrubWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) if !self.redactor.is_empty() => {
                self.inner
                    .write_all(self.redactor.redact(text).as_bytes())?;
            }
            _ => self.inner.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_scrubbed_before_they_are_written() {
        let redactor = Redactor::new();
        redactor.add(["hunter22"]);
        let scrub = Scrub::new(std::sync::Mutex::new(Vec::new()), redactor);
        scrub
            .make_writer()
            .write_all(b"GET http://u:hunter22@h/ failed\n")
            .expect("write");
        let text = String::from_utf8(scrub.inner.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(text, "GET http://u:[redacted]@h/ failed\n");
    }
}
