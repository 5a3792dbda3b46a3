//! Log writers that never block the hub: each formatted line goes into a bounded queue that a
//! thread of its own writes out. When the destination does not keep up (a parent that reads our
//! stderr slowly or not at all, a slow disk), lines are dropped and counted, and a line saying
//! how many were dropped is written once it catches up. The log file is also rotated and capped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines queued per destination before new ones are dropped.
const QUEUE: usize = 4096;
/// Largest log file; past it the file is rotated.
pub(crate) const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Rotated files kept (`mcp-hub.log.1` is the newest); older ones are deleted.
pub(crate) const KEEP_ROTATED: usize = 2;

enum Item {
    Line(Vec<u8>),
    /// Answered once everything queued before it is written.
    Flush(SyncSender<()>),
}

/// How a destination says "N lines were dropped" in its own format.
pub(crate) type Notice = fn(u64) -> Vec<u8>;

/// The `MakeWriter` of one destination. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Sink {
    tx: SyncSender<Item>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Where a sink's thread writes.
pub(crate) trait Output: Send + 'static {
    fn write_line(&mut self, line: &[u8]);
    fn flush(&mut self);
}

impl Sink {
    /// Starts the writer thread for `out`.
    pub(crate) fn spawn(name: &str, out: impl Output, notice: Notice) -> Sink {
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("log-{name}"))
            .spawn(move || run(rx, out, counter, notice));
        if let Err(e) = spawned {
            eprintln!("mcp-hub: cannot start the {name} log writer: {e}");
        }
        Sink { tx, dropped }
    }

    fn send(&self, line: Vec<u8>) {
        match self.tx.try_send(Item::Line(line)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits (at most `within`) until every line queued so far is written: for the last lines
    /// before the process exits.
    pub(crate) fn flush(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let (ack, done) = sync_channel(1);
        let mut item = Item::Flush(ack);
        loop {
            match self.tx.try_send(item) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return;
                    }
                    item = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

fn run(rx: Receiver<Item>, mut out: impl Output, dropped: Arc<AtomicU64>, notice: Notice) {
    for item in rx {
        let n = dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            out.write_line(&notice(n));
        }
        match item {
            Item::Line(line) => out.write_line(&line),
            Item::Flush(ack) => {
                out.flush();
                let _ = ack.try_send(());
            }
        }
    }
}

/// One formatted event, handed to the queue whole when the formatter is done with it.
pub(crate) struct LineWriter<'a> {
    sink: &'a Sink,
    buf: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.sink.send(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            sink: self,
            buf: Vec::with_capacity(256),
        }
    }
}

/// The process's stderr. A write error (the reader went away) is ignored: there is nowhere
/// else to report it.
pub(crate) struct Stderr;

impl Output for Stderr {
    fn write_line(&mut self, line: &[u8]) {
        let _ = std::io::stderr().write_all(line);
    }

    fn flush(&mut self) {
        let _ = std::io::stderr().flush();
    }
}

/// The log file: created (or truncated) private at start, rotated past [`MAX_FILE_BYTES`]
/// into `<name>.1` … `<name>.<KEEP_ROTATED>`. Opened for appending instead, it is never
/// rotated (the process that owns it does that).
pub(crate) struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max: u64,
    keep: usize,
}

fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    match append {
        true => o.append(true),
        false => o.write(true).truncate(true),
    };
    let f = o.create(true).mode(0o600).open(path)?;
    // `mode` applies only to a file this call created: tighten one left by an older run.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl RotatingFile {
    pub(crate) fn create(
        path: &Path,
        max: u64,
        keep: usize,
        append: bool,
    ) -> std::io::Result<RotatingFile> {
        let file = open_private(path, append)?;
        let max = if append { u64::MAX } else { max };
        for n in 1..=keep {
            let old = rotated(path, n);
            if old.exists() {
                let _ = std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600));
            }
        }
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file: Some(file),
            size: 0,
            max,
            keep,
        })
    }

    fn rotate(&mut self) {
        self.file = None;
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(rotated(&self.path, self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
            }
            let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        }
        self.file = open_private(&self.path, false).ok();
        self.size = 0;
    }
}

impl Output for RotatingFile {
    fn write_line(&mut self, line: &[u8]) {
        if self.size > 0 && self.size + line.len() as u64 > self.max {
            self.rotate();
        }
        if let Some(f) = &mut self.file
            && f.write_all(line).is_ok()
        {
            self.size += line.len() as u64;
        }
    }

    fn flush(&mut self) {
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// An output that blocks until released, like a pipe nobody reads.
    struct Stuck(Arc<Mutex<()>>, Arc<Mutex<Vec<u8>>>);

    impl Output for Stuck {
        fn write_line(&mut self, line: &[u8]) {
            let _gate = self.0.lock().unwrap();
            self.1.lock().unwrap().extend_from_slice(line);
        }
        fn flush(&mut self) {}
    }

    fn notice(n: u64) -> Vec<u8> {
        format!("dropped {n}\n").into_bytes()
    }

    #[test]
    fn a_stuck_destination_never_blocks_the_logger() {
        let gate = Arc::new(Mutex::new(()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let held = gate.lock().unwrap();
        let sink = Sink::spawn("test", Stuck(gate.clone(), written.clone()), notice);
        let started = Instant::now();
        for i in 0..(QUEUE * 3) {
            let mut w = sink.make_writer();
            writeln!(w, "line {i}").unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never waited");
        // Not the counter itself: the writer thread takes the count into a notice before each
        // line, so if it started late, some drops are already in the notice it is stuck on.
        drop(held);
        // The queue is still full right after the release; a line written now could be dropped
        // too. Once the backlog is written, the next line gets through.
        sink.flush(Duration::from_secs(10));
        {
            let mut w = sink.make_writer();
            writeln!(w, "after").unwrap();
        }
        sink.flush(Duration::from_secs(10));
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert!(text.contains("line 0\n"));
        // The notice precedes the first line written after the drops: that is line 0 itself
        // when the writer thread had not started before the queue filled.
        assert!(
            text.lines().any(|l| l.starts_with("dropped ")),
            "{}",
            &text[text.len() - 200..]
        );
        assert!(text.ends_with("after\n"));
        // Every line is accounted for: written, or counted in a notice. Only the queue's worth
        // (and the line in the writer's hands) can have been written.
        let written_lines = text.lines().filter(|l| l.starts_with("line ")).count();
        let noticed: usize = text
            .lines()
            .filter_map(|l| l.strip_prefix("dropped "))
            .map(|n| n.parse::<usize>().expect("a count"))
            .sum();
        assert_eq!(
            written_lines + noticed,
            QUEUE * 3,
            "{written_lines} written"
        );
        assert!(noticed >= QUEUE * 2 - 2, "dropped and counted: {noticed}");
    }

    #[test]
    fn the_file_is_private_rotated_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.log");
        std::fs::write(rotated(&path, 1), "from an older run").unwrap();
        std::fs::set_permissions(rotated(&path, 1), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let mut f = RotatingFile::create(&path, 1000, 2, false).unwrap();
        let line = [b'x'; 99];
        for _ in 0..100 {
            f.write_line(&line);
            f.write_line(b"\n");
        }
        f.flush();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["hub.log", "hub.log.1", "hub.log.2"]);
        for n in &names {
            let meta = std::fs::metadata(dir.path().join(n)).unwrap();
            assert!(meta.len() <= 1000, "{n}: {}", meta.len());
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{n}");
        }
    }
}
