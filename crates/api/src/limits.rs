//! The cap on connections served at once, so that descriptor exhaustion can never make the hub
//! unreachable.
//!
//! Up to the cap, connections are served normally. A few more ("spare") are accepted with a
//! short header timeout, no keep-alive, and only `/api/health` (everything else gets `503`), so
//! a liveness check still gets through while slow or idle clients hold every normal slot. Past
//! that, a connection is closed as soon as it is accepted, which keeps the listen backlog
//! moving instead of letting `accept` fail with `EMFILE` and leaving the queue stuck. The cap is
//! the configured maximum, but never more than the process's descriptor limit minus a reserve
//! for upstream processes and sockets, files and the runtime: half the limit up to 2,048
//! descriptors, 1,024 above that, or an eighth of a limit past 8,192 (so 10,000 clients fit
//! under a limit of 20,000).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::body::{self, Body, RequestBody};
use crate::server::{Shared, dispatch};

/// How long a spare connection may take to send its request head.
pub(crate) const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the cap being reached is logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// `(normal, total)` connection slots for a configured maximum and a descriptor limit.
fn caps(max: usize, nofile: Option<u64>) -> (usize, usize) {
    let budget = nofile.map_or(usize::MAX, |n| {
        let reserve = (n / 8).max((n / 2).min(1024));
        usize::try_from(n - reserve).unwrap_or(usize::MAX)
    });
    let normal = max.min(budget).max(1);
    let spare = (budget / 8).clamp(4, 64);
    (normal, normal.saturating_add(spare))
}

fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The connection slots of one listener.
#[derive(Debug)]
pub(crate) struct Slots {
    active: Arc<AtomicUsize>,
    normal: usize,
    total: usize,
    turned_away: u64,
    warned_at: Option<Instant>,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Slots {
        let (normal, total) = caps(max, nofile_limit());
        tracing::debug!(target: "mcp_hub::api", normal, total, "connection slots");
        Slots {
            active: Arc::new(AtomicUsize::new(0)),
            normal,
            total,
            turned_away: 0,
            warned_at: None,
        }
    }

    /// A slot for a connection just accepted; `None` when it must be closed at once.
    pub(crate) fn take(&mut self) -> Option<Slot> {
        let n = self.active.load(Ordering::SeqCst);
        if n >= self.normal {
            self.turned_away += 1;
            if self.warned_at.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                tracing::warn!(
                    target: "mcp_hub::api",
                    connections = n,
                    cap = self.normal,
                    turned_away = self.turned_away,
                    "connection cap reached: extra connections get /api/health only, or are closed"
                );
                self.warned_at = Some(Instant::now());
                self.turned_away = 0;
            }
        }
        if n >= self.total {
            return None;
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        Some(Slot {
            active: self.active.clone(),
            overflow: n >= self.normal,
        })
    }
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    active: Arc<AtomicUsize>,
    overflow: bool,
}

impl Slot {
    /// Whether this is a spare slot (health only).
    pub(crate) fn overflow(&self) -> bool {
        self.overflow
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The service of a spare connection: `/api/health`, and `503` for everything else.
pub(crate) async fn overflow(
    shared: Arc<Shared>,
    req: Request<RequestBody>,
    peer: SocketAddr,
) -> Response<Body> {
    if req.uri().path() == "/api/health" {
        return dispatch(shared, req, Some(peer)).await;
    }
    let mut r = body::jsonrpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        -32000,
        "Service Unavailable: too many connections",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_descriptors_for_everything_else() {
        assert_eq!(caps(4096, Some(128)), (64, 72));
        assert_eq!(caps(4096, Some(1024)), (512, 576));
        assert_eq!(caps(4096, Some(1 << 20)), (4096, 4160));
        // Past 2,048 the reserve stops growing with the limit, then is an eighth of it.
        assert_eq!(caps(1 << 20, Some(4096)), (3072, 3136));
        assert_eq!(caps(1 << 20, Some(20_000)), (17_500, 17_564));
        assert_eq!(caps(10_300, Some(20_000)), (10_300, 10_364));
        assert_eq!(caps(100, None), (100, 164));
        assert_eq!(caps(4096, Some(4)), (2, 6));
    }

    #[test]
    fn slots_are_counted_and_given_back() {
        let mut slots = Slots {
            active: Arc::new(AtomicUsize::new(0)),
            normal: 2,
            total: 3,
            turned_away: 0,
            warned_at: None,
        };
        let a = slots.take().unwrap();
        let b = slots.take().unwrap();
        let spare = slots.take().unwrap();
        assert!(!a.overflow() && !b.overflow() && spare.overflow());
        assert!(slots.take().is_none());
        drop((a, spare));
        let c = slots.take().unwrap();
        assert!(!c.overflow());
        drop((b, c));
        assert_eq!(slots.active.load(Ordering::SeqCst), 0);
    }
}
