//! Kept-alive connections to the other replicas of a cluster, for forwarded requests (see
//! `docs/SCALE-OUT.md`). An HTTP/1.1 connection carries one request at a time: it goes back to
//! the pool when the relayed answer has ended (an SSE stream keeps its connection for its whole
//! life), and is dropped when the answer is cut. Idle connections are kept at most [`IDLE`],
//! well under the owners' 30 s header read timeout (so a pooled connection is not one its
//! owner is about to close), and at most [`MAX_IDLE`] per replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;

use super::lock;
use crate::body::RequestBody;

/// How long an idle connection is kept.
const IDLE: Duration = Duration::from_secs(10);
/// Idle connections kept per replica.
const MAX_IDLE: usize = 32;

/// A sender to one replica.
pub(crate) type Sender = SendRequest<RequestBody>;

/// The idle connections, by replica address.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<(Sender, Instant)>>>,
}

impl Pool {
    /// An idle connection to `addr` that is still open, the most recently used first.
    pub(crate) fn checkout(&self, addr: &str) -> Option<Sender> {
        let mut idle = lock(&self.idle);
        let list = idle.get_mut(addr)?;
        while let Some((s, at)) = list.pop() {
            if at.elapsed() < IDLE && !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Gives back a connection whose last answer has ended.
    pub(crate) fn checkin(&self, addr: &str, s: Sender) {
        if s.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        let list = idle.entry(addr.to_owned()).or_default();
        list.retain(|(s, at)| at.elapsed() < IDLE && !s.is_closed());
        if list.len() < MAX_IDLE {
            list.push((s, Instant::now()));
        }
    }
}
