//! What replicas tell each other through Redis pub/sub (`docs/SCALE-OUT.md`, "Cluster-wide
//! `/api/servers` and `/api/events`"): events for `/api/events` on `<ns>:events`, operator
//! commands (start, stop, refresh) on `<ns>:commands`. Every message is sealed
//! ([`crate::seal`]) and names its replica; a replica ignores its own (no echo), messages it
//! cannot open (forged, another cluster's, malformed), commands written more than
//! [`MAX_AGE_MS`] from its clock and commands it has already seen (replayed).
//!
//! Pub/sub delivers to whoever listens at that moment: a replica that is not connected to Redis
//! misses what is published meanwhile (it logs the outage once, and its own state stays what
//! it was). Statuses are not sent this way but kept in keys ([`crate::status`]), so they survive
//! a missed message.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::mpsc;

use crate::seal::{Envelope, MAX_MESSAGE, Sealer};
use crate::{Cluster, ClusterError, Inner, membership, secret};

/// Messages older (or newer) than this by the receiver's clock are dropped: replicas' clocks
/// must agree within it (NTP).
pub const MAX_AGE_MS: u64 = 120_000;
/// Events waiting to be published; past it, events are dropped (counted in a log line).
const OUTBOX: usize = 1024;
/// Messages received and not yet taken by the hub; past it, the oldest wait in Redis' buffer.
const INBOX: usize = 1024;
/// Command ids remembered against replays (more than can arrive within [`MAX_AGE_MS`]).
const SEEN_IDS: usize = 4096;

/// What another replica published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The replica that published it.
    pub replica: String,
    /// Which channel it came on.
    pub kind: MessageKind,
    /// Its body, JSON text as that replica wrote it.
    pub body: String,
}

/// The channel a [`Message`] came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `<ns>:events`.
    Event,
    /// `<ns>:commands`.
    Command,
}

impl MessageKind {
    fn as_str(self) -> &'static str {
        match self {
            MessageKind::Event => "event",
            MessageKind::Command => "command",
        }
    }
}

/// The pub/sub side of a replica.
pub(crate) struct Bus {
    pub(crate) client: redis::Client,
    pub(crate) sealer: Sealer,
    outbox: OnceLock<mpsc::Sender<String>>,
    listening: AtomicBool,
    seen: Mutex<Seen>,
    /// Events dropped because the outbox was full, not yet logged.
    dropped: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Seen {
    /// Whether `id` is new (and remembers it).
    fn first(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() >= SEEN_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned());
        true
    }
}

impl Bus {
    pub(crate) fn new(client: redis::Client, secret: &crate::SharedSecret) -> Bus {
        Bus {
            client,
            sealer: Sealer::new(secret),
            outbox: OnceLock::new(),
            listening: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
            dropped: Default::default(),
        }
    }
}

pub(crate) fn channel(ns: &str, kind: MessageKind) -> String {
    match kind {
        MessageKind::Event => format!("{ns}:events"),
        MessageKind::Command => format!("{ns}:commands"),
    }
}

/// Seals `body` (a JSON text) as `kind` from this replica.
pub(crate) fn envelope(inner: &Inner, kind: &str, body: &str) -> Result<String, ClusterError> {
    let body = serde_json::value::RawValue::from_string(body.to_owned()).map_err(|e| {
        ClusterError::Corrupt {
            key: kind.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let env = Envelope {
        replica: inner.me.id.clone(),
        kind: kind.to_owned(),
        id: secret::random_hex(12)?,
        at: membership::now_ms(),
        body: &body,
    };
    let json = serde_json::to_string(&env).map_err(|e| ClusterError::Corrupt {
        key: kind.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(inner.bus.sealer.seal(&json))
}

impl Cluster {
    /// Publishes an event (a JSON text) to the other replicas, without waiting: it is queued
    /// for a task that publishes in order. When the queue is full (Redis slow or away) the
    /// event is dropped and counted.
    pub fn emit_event(&self, body: &str) {
        if body.len() > MAX_MESSAGE - 1024 {
            tracing::debug!(target: "mcp_hub::cluster", bytes = body.len(), "an event too large to publish");
            return;
        }
        let tx = self
            .inner
            .bus
            .outbox
            .get_or_init(|| spawn_outbox(&self.inner));
        let sealed = match envelope(&self.inner, MessageKind::Event.as_str(), body) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(target: "mcp_hub::cluster", "an event that cannot be published: {e}");
                return;
            }
        };
        if tx.try_send(sealed).is_err() {
            let n = self.inner.bus.dropped.fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                tracing::warn!(target: "mcp_hub::cluster", "events for the other replicas are piling up (Redis slow or unreachable); dropping some");
            }
        }
    }

    /// Publishes a command (a JSON text) to the other replicas; returns how many received it
    /// (this replica's own listener excluded). It does not wait for them to apply it.
    pub async fn send_command(&self, body: &str) -> Result<usize, ClusterError> {
        let sealed = envelope(&self.inner, MessageKind::Command.as_str(), body)?;
        let mut conn = self.inner.conn.clone();
        let n: usize = redis::cmd("PUBLISH")
            .arg(channel(&self.inner.ns, MessageKind::Command))
            .arg(sealed)
            .query_async(&mut conn)
            .await
            .map_err(|e| ClusterError::redis(&self.inner.shown_url, e))?;
        let me = usize::from(self.inner.bus.listening.load(Ordering::Relaxed));
        Ok(n.saturating_sub(me))
    }

    /// Starts receiving the other replicas' events and commands. The first call gets the
    /// receiver; later calls get `None`. The listener reconnects on its own until the cluster
    /// is left.
    pub fn listen(&self) -> Option<mpsc::Receiver<Message>> {
        if self.inner.bus.listening.swap(true, Ordering::SeqCst) {
            return None;
        }
        let (tx, rx) = mpsc::channel(INBOX);
        tokio::spawn(listener(self.inner.clone(), tx));
        Some(rx)
    }
}

fn spawn_outbox(inner: &Arc<Inner>) -> mpsc::Sender<String> {
    let (tx, mut rx) = mpsc::channel::<String>(OUTBOX);
    let inner = inner.clone();
    tokio::spawn(async move {
        let ch = channel(&inner.ns, MessageKind::Event);
        let mut failing = false;
        loop {
            let msg = tokio::select! {
                _ = inner.stop.cancelled() => return,
                m = rx.recv() => match m { Some(m) => m, None => return },
            };
            let mut conn = inner.conn.clone();
            let r: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(&ch)
                .arg(msg)
                .query_async(&mut conn)
                .await;
            match r {
                Ok(_) if failing => {
                    failing = false;
                    let dropped = inner.bus.dropped.swap(0, Ordering::Relaxed);
                    tracing::info!(target: "mcp_hub::cluster", dropped, "publishing events to the other replicas again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(target: "mcp_hub::cluster", "cannot publish events to the other replicas: {}", ClusterError::redis(&inner.shown_url, e));
                }
                Err(_) => {}
            }
        }
    });
    tx
}

/// Receives both channels until the cluster is left, reconnecting with a growing pause.
async fn listener(inner: Arc<Inner>, tx: mpsc::Sender<Message>) {
    let events = channel(&inner.ns, MessageKind::Event);
    let commands = channel(&inner.ns, MessageKind::Command);
    let mut pause = Duration::from_millis(100);
    let mut failing = false;
    loop {
        let connect = async {
            let mut ps = inner.bus.client.get_async_pubsub().await?;
            ps.subscribe(&[&events, &commands]).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let ps = tokio::select! {
            _ = inner.stop.cancelled() => return,
            r = tokio::time::timeout(Duration::from_secs(3), connect) => r,
        };
        match ps {
            Ok(Ok(ps)) => {
                if failing {
                    tracing::info!(target: "mcp_hub::cluster", "receiving the other replicas' events and commands again");
                }
                pause = Duration::from_millis(100);
                let mut stream = ps.into_on_message();
                loop {
                    let msg = tokio::select! {
                        _ = inner.stop.cancelled() => return,
                        m = stream.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    let kind = if msg.get_channel_name() == commands {
                        MessageKind::Command
                    } else {
                        MessageKind::Event
                    };
                    let Ok(raw) = std::str::from_utf8(msg.get_payload_bytes()) else {
                        tracing::debug!(target: "mcp_hub::cluster", "a message that is not UTF-8 on the cluster channel; ignored");
                        continue;
                    };
                    if let Some(m) = accept(&inner, kind, raw)
                        && tx.send(m).await.is_err()
                    {
                        return;
                    }
                }
                tracing::warn!(target: "mcp_hub::cluster", "lost the subscription to the other replicas' events and commands; reconnecting");
                failing = true;
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(target: "mcp_hub::cluster", "cannot subscribe to the other replicas' events and commands: {}", ClusterError::redis(&inner.shown_url, e));
            }
            Err(_) if !failing => {
                failing = true;
                tracing::warn!(target: "mcp_hub::cluster", "cannot subscribe to the other replicas' events and commands: Redis did not answer in time");
            }
            _ => {}
        }
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The message, if it is sealed by this cluster, from another replica, fresh, of the kind of
/// its channel, and (for commands) not seen before.
fn accept(inner: &Inner, kind: MessageKind, raw: &str) -> Option<Message> {
    let Some(json) = inner.bus.sealer.open(raw) else {
        tracing::debug!(target: "mcp_hub::cluster", "a message on the cluster channel without this cluster's seal; ignored");
        return None;
    };
    let env: Envelope<'_> = match serde_json::from_str(json) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(target: "mcp_hub::cluster", "a sealed message that is not an envelope: {e}; ignored");
            return None;
        }
    };
    if env.replica == inner.me.id || env.kind != kind.as_str() {
        return None;
    }
    if membership::now_ms().abs_diff(env.at) > MAX_AGE_MS {
        tracing::debug!(target: "mcp_hub::cluster", from = %env.replica, "a stale (or replayed) message; ignored");
        return None;
    }
    if kind == MessageKind::Command
        && !inner
            .bus
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first(&env.id)
    {
        tracing::debug!(target: "mcp_hub::cluster", from = %env.replica, "a command seen before (replayed); ignored");
        return None;
    }
    Some(Message {
        replica: env.replica,
        kind,
        body: env.body.get().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_are_bounded_and_remembered() {
        let mut s = Seen::default();
        assert!(s.first("a"));
        assert!(!s.first("a"));
        for i in 0..SEEN_IDS {
            assert!(s.first(&i.to_string()));
        }
        assert!(s.first("a"), "the oldest id was forgotten");
        assert!(s.order.len() <= SEEN_IDS);
        assert_eq!(s.order.len(), s.ids.len());
    }
}
