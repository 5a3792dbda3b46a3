//! Server-Sent Events read from a plain HTTP/1.1 connection, event by event.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// An open SSE stream (e.g. `/api/events`), read event by event.
pub struct EventStream {
    reader: Box<dyn BufRead + Send>,
    /// The connection, for socket options.
    socket: TcpStream,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// The body of a `Transfer-Encoding: chunked` response, unchunked. An event may span chunks
/// (the Node hub writes `event:` and `data:` lines separately), so chunk framing must go before
/// the SSE lines are read.
struct Dechunk<R> {
    inner: R,
    left: usize,
    started: bool,
}

impl<R: BufRead> Read for Dechunk<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut line = String::new();
            if self.started {
                self.inner.read_line(&mut line)?; // the CRLF after the previous chunk
                line.clear();
            }
            self.started = true;
            if self.inner.read_line(&mut line)? == 0 {
                return Ok(0);
            }
            let size = line.trim().split(';').next().unwrap_or_default();
            self.left = usize::from_str_radix(size, 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            if self.left == 0 {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..n])?;
        if n == 0 {
            return Ok(0);
        }
        self.left -= n;
        Ok(n)
    }
}

/// One SSE event.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: String,
    pub data: String,
}

impl EventStream {
    /// Opens `GET path` with `Accept: text/event-stream`.
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> EventStream {
        Self::request(port, "GET", path, headers, None)
    }

    /// Sends `POST path` with a JSON body and reads its answer as an event stream (a 2026-07-28
    /// `subscriptions/listen`).
    pub fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> EventStream {
        Self::request(port, "POST", path, headers, Some(body))
    }

    fn request(
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> EventStream {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let accept = match body {
            Some(_) => "application/json, text/event-stream",
            None => "text/event-stream",
        };
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {accept}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or_default());
        s.write_all(req.as_bytes()).expect("write");
        let socket = s.try_clone().expect("clone the socket");
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        let mut chunked = false;
        loop {
            line.clear();
            reader.read_line(&mut line).expect("read head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let l = line.to_ascii_lowercase();
            chunked |= l.starts_with("transfer-encoding:") && l.contains("chunked");
        }
        let reader: Box<dyn BufRead + Send> = if chunked {
            Box::new(BufReader::new(Dechunk {
                inner: reader,
                left: 0,
                started: false,
            }))
        } else {
            Box::new(reader)
        };
        EventStream {
            reader,
            socket,
            deadline: None,
        }
    }

    /// Shrinks the socket's receive buffer, so that what this client does not read backs up
    /// into the hub instead of the kernel.
    pub fn recv_buffer(&self, bytes: usize) {
        rustix::net::sockopt::set_socket_recv_buffer_size(&self.socket, bytes).expect("SO_RCVBUF");
    }

    /// From now on, [`EventStream::next_event`] gives up (returns `None`) after `within`, even
    /// while keep-alive comments keep the connection busy.
    pub fn deadline(&mut self, within: Duration) {
        self.deadline = Some(Instant::now() + within);
    }

    /// The next event (skipping comments and chunk-size lines), or `None` on timeout/EOF.
    pub fn next_event(&mut self) -> Option<Event> {
        let mut event = String::new();
        let mut data = String::new();
        let mut line = String::new();
        loop {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if !data.is_empty() || !event.is_empty() {
                    return Some(Event {
                        event: std::mem::take(&mut event),
                        data: std::mem::take(&mut data),
                    });
                }
                continue;
            }
            if let Some(v) = l.strip_prefix("event:") {
                event = v.trim_start().to_owned();
            } else if let Some(v) = l.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
            // Chunk-size lines (hex) and comments are ignored.
        }
    }

    /// Reads events until one satisfies `f` (bounded by `max` events).
    pub fn find(&mut self, max: usize, mut f: impl FnMut(&Event) -> bool) -> Option<Event> {
        for _ in 0..max {
            let e = self.next_event()?;
            if f(&e) {
                return Some(e);
            }
        }
        None
    }
}
