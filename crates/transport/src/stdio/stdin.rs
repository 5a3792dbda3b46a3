//! The child's stdin.
//!
//! A line goes straight into the pipe from the task that sends it when nothing is queued before
//! it and the pipe takes it whole at once; otherwise it is queued for the writer task, which
//! waits for room. Most calls therefore cost one `write` and no wake-up of another task.
//!
//! Only lines of at most `PIPE_BUF` bytes are written directly: POSIX makes such a write to a
//! pipe all-or-nothing, so a sender whose future is dropped can never leave half a line behind.
//! Longer lines always go through the writer, which may need several writes for them; while any
//! line is queued or half-written, every later line queues behind it, so the order in which
//! sends complete is the order on the pipe.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::net::unix::pipe;
use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::wire::Raised;

/// Lines queued for the writer before senders wait.
const QUEUE_CAPACITY: usize = 64;
/// Linux's `PIPE_BUF`: writes up to this size are atomic.
const PIPE_BUF: usize = 4096;
/// [`Shared::traffic`]: one unit of the direct writes in progress (low half) and of the lines
/// queued for the writer (high half).
const DIRECT: u64 = 1;
const QUEUED: u64 = 1 << 32;

/// The sending side, shared by every sender of one child.
pub(super) struct Stdin {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Vec<u8>>,
}

/// Why a line could not be sent: the pipe is closed (the child is gone or being stopped).
#[derive(Debug)]
pub(super) struct Closed;

struct Shared {
    /// `None` once stdin is closed: the child reads end-of-file. Senders hold the read lock only
    /// for one non-blocking write; it is never contended but by the close.
    pipe: RwLock<Option<Arc<pipe::Sender>>>,
    /// Direct writes in progress and lines queued (handed to the writer, or on their way to
    /// it, and not yet written in full). Atomics rather than a lock: concurrent senders would
    /// otherwise queue on the lock across a system call.
    traffic: AtomicU64,
}

impl Shared {
    fn pipe(&self) -> std::sync::RwLockReadGuard<'_, Option<Arc<pipe::Sender>>> {
        self.pipe.read().unwrap_or_else(|p| p.into_inner())
    }

    fn close(&self) {
        self.pipe.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    #[cfg(test)]
    fn queued(&self) -> u64 {
        self.traffic.load(Ordering::Acquire) / QUEUED
    }
}

/// Takes over the child's stdin and starts its writer task, which closes the pipe when `close`
/// is cancelled or a write fails.
pub(super) fn start(
    stdin: ChildStdin,
    close: CancellationToken,
    name: Arc<str>,
) -> io::Result<Stdin> {
    let pipe = Arc::new(pipe::Sender::from_owned_fd(stdin.into_owned_fd()?)?);
    let shared = Arc::new(Shared {
        pipe: RwLock::new(Some(pipe)),
        traffic: AtomicU64::new(0),
    });
    let (queue, lines) = mpsc::channel(QUEUE_CAPACITY);
    tokio::spawn(write_loop(shared.clone(), lines, close, name));
    Ok(Stdin { shared, queue })
}

impl Stdin {
    /// Sends one newline-terminated line. Returning means it is in the pipe or queued for it.
    pub(super) async fn send(&self, line: Vec<u8>) -> Result<(), Closed> {
        if line.len() <= PIPE_BUF && self.try_direct(&line)? {
            return Ok(());
        }
        let mut queued = Raised::new(&self.shared.traffic, QUEUED);
        self.queue.send(line).await.map_err(|_| Closed)?;
        // The writer counts it down once written.
        queued.keep();
        Ok(())
    }

    /// Writes the line now if nothing is queued and the pipe takes it; false: queue it.
    fn try_direct(&self, line: &[u8]) -> Result<bool, Closed> {
        let guard = self.shared.pipe();
        let Some(pipe) = guard.as_ref() else {
            return Err(Closed);
        };
        let before = self.shared.traffic.fetch_add(DIRECT, Ordering::AcqRel);
        let result = if before >= QUEUED {
            None
        } else {
            Some(pipe.try_write(line))
        };
        self.shared.traffic.fetch_sub(DIRECT, Ordering::AcqRel);
        match result {
            None => Ok(false),
            Some(Ok(n)) if n == line.len() => Ok(true),
            Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            // A pipe does not split a write of at most PIPE_BUF bytes. Were it to happen, the
            // stream would be corrupt: the child gets end-of-file and the session ends, instead
            // of the child reading half a message. Any other error ends the pipe too.
            Some(Ok(_) | Err(_)) => {
                // The read lock first, or the close would wait for it forever.
                drop(guard);
                self.shared.close();
                Err(Closed)
            }
        }
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    mut lines: mpsc::Receiver<Vec<u8>>,
    close: CancellationToken,
    name: Arc<str>,
) {
    loop {
        let line = tokio::select! {
            biased;
            () = close.cancelled() => break,
            line = lines.recv() => match line {
                Some(line) => line,
                None => break,
            },
        };
        // Held only while writing: a pipe closed by a sender (`Stdin::try_direct`) is closed
        // at once, not when this task ends.
        let Some(pipe) = shared.pipe().clone() else {
            break;
        };
        let written = tokio::select! {
            biased;
            () = close.cancelled() => break,
            r = write_line(&shared, &pipe, &line) => r,
        };
        if let Err(e) = written {
            tracing::debug!(server = %name, error = %e, "writing to upstream stdin failed");
            break;
        }
        shared.traffic.fetch_sub(QUEUED, Ordering::AcqRel);
    }
    // Closing the pipe: the child reads end-of-file. Senders see `Closed` from now on.
    shared.close();
}

/// Writes one whole line, waiting for room as often as needed.
async fn write_line(shared: &Shared, pipe: &pipe::Sender, line: &[u8]) -> io::Result<()> {
    // This line is counted as queued, so no direct write starts from now on; one that started
    // before must end before this line's first byte, or it could land inside the line. A direct
    // write is one non-blocking system call.
    while shared.traffic.load(Ordering::Acquire) & (QUEUED - 1) != 0 {
        tokio::task::yield_now().await;
    }
    let mut written = 0;
    while written < line.len() {
        match pipe.try_write(&line[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => pipe.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::process::Stdio;

    use tokio::io::AsyncReadExt;
    use tokio::process::Command;

    /// A child that copies stdin to stdout, and exits when stdin ends.
    fn cat() -> tokio::process::Child {
        Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cat runs")
    }

    fn line(tag: usize, len: usize) -> Vec<u8> {
        let mut l = format!("{tag:06}:").into_bytes();
        l.resize(len - 1, b'x');
        l.push(b'\n');
        l
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_senders_big_and_small_lines_arrive_whole_and_in_send_order_per_sender() {
        let mut child = cat();
        let close = CancellationToken::new();
        let stdin =
            Arc::new(start(child.stdin.take().unwrap(), close.clone(), Arc::from("t")).unwrap());
        let mut stdout = child.stdout.take().unwrap();
        // 8 senders, each sending 200 lines alternating small (direct) and large (queued,
        // several writes each) ones; the pipe (64 KiB) fills, so both paths are taken.
        let senders: Vec<_> = (0..8)
            .map(|s| {
                let stdin = stdin.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        let len = if i % 3 == 0 { 70_000 } else { 100 + i };
                        stdin.send(line(s * 1000 + i, len)).await.unwrap();
                    }
                })
            })
            .collect();
        let expected_bytes: usize = (0..8)
            .flat_map(|_| (0..200).map(|i| if i % 3 == 0 { 70_000 } else { 100 + i }))
            .sum();
        let mut out = Vec::with_capacity(expected_bytes);
        let mut buf = vec![0u8; 1 << 16];
        while out.len() < expected_bytes {
            let n = tokio::time::timeout(std::time::Duration::from_secs(20), stdout.read(&mut buf))
                .await
                .expect("output within 20 s")
                .unwrap();
            assert!(n > 0, "cat ended early");
            out.extend_from_slice(&buf[..n]);
        }
        for s in senders {
            s.await.unwrap();
        }
        let mut next = [0usize; 8];
        for l in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let tag: usize = std::str::from_utf8(&l[..6]).unwrap().parse().unwrap();
            let (s, i) = (tag / 1000, tag % 1000);
            let len = if i % 3 == 0 { 70_000 } else { 100 + i };
            assert_eq!(l.len() + 1, len, "line {tag} arrived whole");
            assert!(
                l[7..].iter().all(|b| *b == b'x'),
                "line {tag} not interleaved"
            );
            assert_eq!(i, next[s], "sender {s}'s lines in the order it sent them");
            next[s] += 1;
        }
        assert_eq!(next, [200; 8]);
        assert_eq!(
            stdin.shared.traffic.load(Ordering::Acquire),
            0,
            "nothing left counted"
        );
        close.cancel();
    }

    #[tokio::test]
    async fn a_sender_dropped_while_the_pipe_is_full_leaves_nothing_behind() {
        // `sleep` never reads its stdin: the pipe fills and stays full.
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let close = CancellationToken::new();
        let stdin = start(child.stdin.take().unwrap(), close.clone(), Arc::from("t")).unwrap();
        let mut sent = 0;
        // Fill the pipe and the queue until a send waits.
        loop {
            let send = stdin.send(line(sent, 4000));
            match tokio::time::timeout(std::time::Duration::from_millis(200), send).await {
                Ok(r) => {
                    r.unwrap();
                    sent += 1;
                    assert!(sent < 10_000, "the pipe never filled");
                }
                // Dropped while waiting for room in the queue.
                Err(_) => break,
            }
        }
        // The line the writer holds and a full queue; not the one whose sender gave up.
        assert_eq!(stdin.shared.queued(), QUEUE_CAPACITY as u64 + 1);
        close.cancel();
        // The writer closes the pipe; senders are told.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while stdin.send(line(0, 10)).await.is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("sends fail once stdin is closed");
    }

    #[tokio::test]
    async fn a_pipe_closed_by_a_sender_ends_the_childs_input_while_the_writer_waits() {
        let mut child = cat();
        let close = CancellationToken::new();
        let stdin = start(child.stdin.take().unwrap(), close.clone(), Arc::from("t")).unwrap();
        // One large line through the writer, so that it has held the pipe and is now idle.
        stdin.send(line(1, 70_000)).await.unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let mut buf = vec![0u8; 1 << 16];
            while got.len() < 70_000 {
                let n = stdout.read(&mut buf).await.unwrap();
                assert!(n > 0, "cat ended early");
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("the line went through");
        // What `try_direct` does when the pipe refuses a line: `close` is not cancelled, the
        // writer task lives on, and the child must still read end-of-file.
        stdin.shared.close();
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
            .await
            .expect("cat read end-of-file and exited")
            .unwrap();
        assert!(status.success());
        assert!(matches!(stdin.send(line(2, 10)).await, Err(Closed)));
        close.cancel();
    }
}
