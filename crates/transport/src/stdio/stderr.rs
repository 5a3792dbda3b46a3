//! The child's stderr: drained continuously (a full pipe would block the child) into `tracing`
//! (target `mcp_hub::upstream`) at a bounded rate, and into the embedder's optional sink.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::READ_CHUNK;
use super::lines::{Frame, LineFramer};

/// Longest stderr line kept; longer ones are reported by size only.
const MAX_STDERR_LINE: usize = 16 * 1024;

/// Upstream stderr lines logged per server: a burst, then a steady rate. The pipe is always
/// drained in full (a full pipe would block the child); what is over the rate is counted and
/// summarised instead of logged, so one chatty server cannot flood the hub's logs, its log file
/// and `/api/events`.
const STDERR_BURST: f64 = 200.0;
const STDERR_PER_SEC: f64 = 50.0;
/// How often a "suppressed N lines" summary is logged while lines are being suppressed.
const STDERR_SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// A token bucket over upstream stderr lines, with the count of lines it held back.
struct StderrBudget {
    tokens: f64,
    refilled: tokio::time::Instant,
    suppressed: u64,
    since: Option<tokio::time::Instant>,
}

impl StderrBudget {
    fn new() -> Self {
        StderrBudget {
            tokens: STDERR_BURST,
            refilled: tokio::time::Instant::now(),
            suppressed: 0,
            since: None,
        }
    }

    /// Whether the next line may be logged; if not, it is counted.
    fn admit(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * STDERR_PER_SEC;
        self.tokens = (self.tokens + earned).min(STDERR_BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        self.suppressed += 1;
        self.since.get_or_insert(now);
        false
    }

    /// When the summary of what is suppressed is due.
    fn summary_due(&self) -> Option<tokio::time::Instant> {
        self.since.map(|t| t + STDERR_SUMMARY_EVERY)
    }

    /// Logs how many lines were suppressed, if any.
    fn summarise(&mut self, name: &str) {
        if self.suppressed > 0 {
            let secs = self.since.map_or(0.0, |t| t.elapsed().as_secs_f64());
            tracing::warn!(
                target: "mcp_hub::upstream",
                server = %name,
                suppressed = self.suppressed,
                "suppressed {} stderr lines in the last {secs:.0} s (more than {STDERR_PER_SEC} lines/s)",
                self.suppressed
            );
        }
        self.suppressed = 0;
        self.since = None;
    }
}

/// Logs one upstream stderr line if the budget allows (the embedder's sink gets every line).
fn on_stderr_line(
    f: Frame<'_>,
    budget: &mut StderrBudget,
    sink: Option<&mpsc::Sender<String>>,
    name: &str,
) {
    let text = |l: &[u8]| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned();
    if let (Frame::Line(l), Some(sink)) = (&f, sink) {
        let _ = sink.try_send(text(l));
    }
    if !budget.admit() {
        return;
    }
    match f {
        Frame::Line(l) => {
            let line = text(l);
            tracing::info!(target: "mcp_hub::upstream", server = %name, "{line}");
        }
        Frame::Oversize(len, _, _) => {
            tracing::info!(target: "mcp_hub::upstream", server = %name, "(stderr line of {len} bytes omitted)");
        }
    }
}

pub(super) async fn stderr_loop(
    mut stderr: impl AsyncRead + Unpin,
    sink: Option<mpsc::Sender<String>>,
    name: Arc<str>,
) {
    let mut framer = LineFramer::new(MAX_STDERR_LINE);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut budget = StderrBudget::new();
    loop {
        let read = match budget.summary_due() {
            Some(at) => tokio::select! {
                r = stderr.read(&mut buf) => Some(r),
                () = tokio::time::sleep_until(at) => None,
            },
            None => Some(stderr.read(&mut buf).await),
        };
        match read {
            Some(Ok(0) | Err(_)) => break,
            Some(Ok(n)) => framer.push(&buf[..n], |f| {
                on_stderr_line(f, &mut budget, sink.as_ref(), &name)
            }),
            None => {}
        }
        if budget
            .summary_due()
            .is_some_and(|at| at <= tokio::time::Instant::now())
        {
            budget.summarise(&name);
        }
    }
    framer.finish(|f| on_stderr_line(f, &mut budget, sink.as_ref(), &name));
    budget.summarise(&name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_chatty_stderr_is_rate_limited_and_summarised() {
        let mut b = StderrBudget::new();
        let allowed = (0..10_000).filter(|_| b.admit()).count();
        assert_eq!(allowed, STDERR_BURST as usize, "the burst, then nothing");
        assert_eq!(b.suppressed, 10_000 - STDERR_BURST as u64);
        let due = b.summary_due().expect("a summary is due");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(due > tokio::time::Instant::now(), "not yet");
        let allowed = (0..1_000).filter(|_| b.admit()).count();
        assert_eq!(allowed, 2 * STDERR_PER_SEC as usize, "the steady rate");
        b.summarise("t");
        assert_eq!((b.suppressed, b.summary_due()), (0, None));
    }
}
