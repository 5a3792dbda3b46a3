//! The `/api/events` Server-Sent Events fan-out: one bounded queue per client, frames built once
//! per event. When a client falls behind, `log` events are the first to give way (counted and
//! logged); only a client whose queue is full of everything else is dropped, so it reconnects and
//! re-reads the hub's state. Such a client was slow, not gone: it still counts as present for a
//! grace period (auto-shutdown must not fire because a reader was slow).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::reply::Failure;
use crate::body::{self, Body};

/// Frames queued per client before it counts as too slow and is dropped.
const CLIENT_QUEUE: usize = 1024;
/// Free queue slots below which a client gets no more `log` events (the rest of its queue stays
/// for state and subscription events).
const LOG_RESERVE: usize = CLIENT_QUEUE / 4;
/// Most simultaneous `/api/events` clients (each holds a queue).
const MAX_CLIENTS: usize = 1024;
/// How long a client dropped for being slow still counts as present, waiting for it to
/// reconnect.
const RECONNECT_GRACE: Duration = Duration::from_secs(60);
/// Shedding is logged at most this often.
const SHED_LOG_EVERY: Duration = Duration::from_secs(10);

struct Client {
    id: String,
    tx: mpsc::Sender<Bytes>,
    connected_at: SystemTime,
    last_event_at: SystemTime,
}

/// Events other replicas relay to their own clients (cluster mode). `hub_state` and
/// `heartbeat` stay local: a client must not take another replica's restart for its own hub's.
const RELAYED: &[&str] = &["subscription_event", "log"];

/// Cluster mode: every event is tagged with this replica's id, and the relayed ones are
/// published to the other replicas.
struct Relay {
    /// `"replica":"<id>"`, the first member of every event's data.
    tag: String,
    fleet: std::sync::Arc<dyn crate::Fleet>,
}

impl Relay {
    /// The frame with the tag as the first member of its data.
    fn tagged(&self, f: &Bytes) -> Bytes {
        let Some(at) = f.windows(8).position(|w| w == b"\ndata: {") else {
            return f.clone();
        };
        let at = at + 8;
        let mut out = Vec::with_capacity(f.len() + self.tag.len() + 1);
        out.extend_from_slice(&f[..at]);
        out.extend_from_slice(self.tag.as_bytes());
        if f.get(at) != Some(&b'}') {
            out.push(b',');
        }
        out.extend_from_slice(&f[at..]);
        Bytes::from(out)
    }

    fn publish(&self, event: &str, f: &Bytes) {
        let Some(start) = f.windows(7).position(|w| w == b"\ndata: ") else {
            return;
        };
        let data = &f[start + 7..f.len().saturating_sub(2)];
        let Ok(data) = std::str::from_utf8(data) else {
            return;
        };
        self.fleet.publish_event(&format!(
            "{{\"event\":{},\"data\":{data}}}",
            Value::from(event)
        ));
    }
}

/// Every connected `/api/events` client.
#[derive(Default)]
pub(crate) struct EventHub {
    clients: Mutex<Vec<Client>>,
    /// When each client dropped for being slow was dropped (until it reconnects).
    lagging: Mutex<Vec<Instant>>,
    /// `log` events not sent to slow clients since the last warning, and when that was.
    shed: Mutex<(u64, Option<Instant>)>,
    /// Cluster mode's tagging and publishing of events.
    relay: std::sync::OnceLock<Relay>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One SSE frame: `event: <name>\ndata: <one-line JSON>\n\n`, with `timestamp` set now.
/// serde_json escapes control characters, so the data is always a single line, which is what
/// mcphub.nvim's parser requires.
pub(crate) fn frame(event: &str, mut payload: Value) -> Bytes {
    if let Some(o) = payload.as_object_mut() {
        o.insert("timestamp".into(), body::now_iso().into());
    }
    let data = serde_json::to_string(&payload).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// A v4 UUID, the shape of the Node hub's connection ids.
fn new_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Ids only need to be unique within this process.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        b[8..].copy_from_slice(&n.to_be_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Removes its client from the hub when the response body is dropped (the HTTP connection
/// closed or the hub shut down), so `event_clients()` and auto-shutdown see departures at once.
struct Departure {
    hub: Weak<EventHub>,
    id: String,
}

impl Drop for Departure {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            lock(&hub.clients).retain(|c| c.id != self.id);
        }
    }
}

impl EventHub {
    /// Cluster mode: tags every event with `replica` and publishes the relayed ones through
    /// `fleet`. A second call is ignored.
    pub(crate) fn set_relay(&self, replica: &str, fleet: std::sync::Arc<dyn crate::Fleet>) {
        let tag = format!("\"replica\":{}", Value::from(replica));
        let _ = self.relay.set(Relay { tag, fleet });
    }

    /// Whether an event would reach anyone: a client here, or (cluster mode) elsewhere.
    pub(crate) fn wanted(&self) -> bool {
        self.relay.get().is_some() || self.count() > 0
    }

    /// An event another replica published (its data already tagged with that replica), for
    /// this replica's clients only: it is never published again, so nothing loops.
    pub(crate) fn broadcast_remote(&self, event: &str, data: &str) -> usize {
        if self.count() == 0 {
            return 0;
        }
        let f = Bytes::from(format!("event: {event}\ndata: {data}\n\n"));
        self.broadcast_frame(event, f)
    }

    /// Sends a frame of this replica's own to its clients, tagged and published in cluster
    /// mode.
    fn send(&self, event: &str, f: Bytes) -> usize {
        let Some(relay) = self.relay.get() else {
            return self.broadcast_frame(event, f);
        };
        let f = relay.tagged(&f);
        if RELAYED.contains(&event) {
            relay.publish(event, &f);
        }
        self.broadcast_frame(event, f)
    }

    /// Number of connected clients.
    pub(crate) fn count(&self) -> usize {
        lock(&self.clients).len()
    }

    /// Connected clients plus those recently dropped for being slow (expected back): what
    /// auto-shutdown and the workspace cache count.
    pub(crate) fn present(&self) -> usize {
        let mut lagging = lock(&self.lagging);
        lagging.retain(|t| t.elapsed() < RECONNECT_GRACE);
        lagging.len() + self.count()
    }

    fn note_shed(&self, n: u64) {
        let mut shed = lock(&self.shed);
        shed.0 += n;
        if shed.1.is_none_or(|t| t.elapsed() >= SHED_LOG_EVERY) {
            tracing::warn!(target: "mcp_hub::api", shed = shed.0, "/api/events clients behind: log events not sent to them");
            *shed = (0, Some(Instant::now()));
        }
    }

    /// `{totalConnections, connections:[{id, state, connectedAt, lastEventAt}]}` for health.
    pub(crate) fn stats(&self) -> Value {
        let clients = lock(&self.clients);
        let list: Vec<Value> = clients
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "state": "connected",
                    "connectedAt": body::iso_time(c.connected_at),
                    "lastEventAt": body::iso_time(c.last_event_at),
                })
            })
            .collect();
        json!({"totalConnections": list.len(), "connections": list})
    }

    /// Sends an event to every client; returns how many got it. A client whose queue is full
    /// (or whose connection is gone) is dropped: its stream ends and it may reconnect.
    pub(crate) fn broadcast(&self, event: &str, payload: Value) -> usize {
        if !self.wanted() {
            return 0;
        }
        self.send(event, frame(event, payload))
    }

    /// [`EventHub::broadcast`] of data already serialised (one line of JSON, with its
    /// `timestamp`).
    pub(crate) fn broadcast_data(&self, event: &str, data: &str) -> usize {
        if !self.wanted() {
            return 0;
        }
        let f = Bytes::from(format!("event: {event}\ndata: {data}\n\n"));
        self.send(event, f)
    }

    fn broadcast_frame(&self, event: &str, f: Bytes) -> usize {
        let mut clients = lock(&self.clients);
        if clients.is_empty() {
            return 0;
        }
        let now = SystemTime::now();
        let sheddable = event == "log";
        let (mut shed, mut dropped) = (0, 0);
        clients.retain_mut(|c| {
            if sheddable && c.tx.capacity() < LOG_RESERVE {
                shed += 1;
                return true;
            }
            match c.tx.try_send(f.clone()) {
                Ok(()) => {
                    c.last_event_at = now;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(target: "mcp_hub::api", client = %c.id, "/api/events client too slow; dropping it (it may reconnect)");
                    dropped += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        let n = clients.len();
        drop(clients);
        if dropped > 0 {
            let now = Instant::now();
            lock(&self.lagging).extend(std::iter::repeat_n(now, dropped));
        }
        if shed > 0 {
            self.note_shed(shed);
        }
        n
    }

    /// `subscription_event` of a type with the payload's other fields.
    pub(crate) fn subscription(&self, kind: &str, mut payload: Value) {
        if let Some(o) = payload.as_object_mut() {
            o.shift_insert(0, "type".into(), kind.into());
        }
        self.broadcast("subscription_event", payload);
    }

    /// `servers_updated {changes:{modified:[...]}}`, what the Node hub sends after REST
    /// start/stop and OAuth completion.
    pub(crate) fn servers_updated(&self, modified: &[String], reason: Option<&str>) {
        let mut p = json!({"changes": {"modified": modified}});
        if let Some(r) = reason {
            p["reason"] = r.into();
        }
        self.subscription("servers_updated", p);
    }

    /// A `log` event produced by the API itself.
    pub(crate) fn log(&self, level: &str, message: &str, data: Value) {
        self.broadcast(
            "log",
            json!({"type": level, "message": message, "data": data}),
        );
    }

    /// Opens a stream for a new client whose first event is `first` (the `hub_state` event).
    /// The stream ends when the client is dropped as too slow or `shutdown` fires.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        first: Bytes,
        shutdown: &CancellationToken,
    ) -> Result<Response<Body>, Failure> {
        if shutdown.is_cancelled() {
            return Err(super::reply::shutting_down());
        }
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let id = new_id();
        {
            let mut clients = lock(&self.clients);
            if clients.len() >= MAX_CLIENTS {
                return Err(Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "TOO_MANY_CLIENTS",
                    "Too many /api/events clients",
                )
                .with("limit", MAX_CLIENTS));
            }
            // Queued before the client becomes visible, so it is the first event it sees.
            let first = match self.relay.get() {
                Some(r) => r.tagged(&first),
                None => first,
            };
            let _ = tx.try_send(first);
            // A client dropped for being slow that comes back is no longer expected.
            lock(&self.lagging).pop();
            let now = SystemTime::now();
            clients.push(Client {
                id: id.clone(),
                tx,
                connected_at: now,
                last_event_at: now,
            });
        }
        tracing::debug!(target: "mcp_hub::api", client = %id, "/api/events client connected");
        let state = Stream {
            rx,
            shutdown: shutdown.clone(),
            _departure: Departure {
                hub: Arc::downgrade(self),
                id,
            },
        };
        let stream = futures::stream::unfold(state, |mut s| async move {
            let next = tokio::select! {
                biased;
                _ = s.shutdown.cancelled() => None,
                b = s.rx.recv() => b,
            };
            next.map(|b| (Ok::<_, Infallible>(Frame::data(b)), s))
        });
        let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(r)
    }
}

struct Stream {
    rx: mpsc::Receiver<Bytes>,
    shutdown: CancellationToken,
    _departure: Departure,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_data_line_with_a_timestamp() {
        let f = frame("log", json!({"message": "a\nb\r\nc", "timestamp": "old"}));
        let s = std::str::from_utf8(&f).unwrap();
        assert!(s.starts_with("event: log\ndata: {"));
        assert!(s.ends_with("}\n\n"));
        assert_eq!(s.matches('\n').count(), 3, "{s:?}");
        let data: Value =
            serde_json::from_str(s.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(data["message"], "a\nb\r\nc");
        assert_ne!(data["timestamp"], "old");
    }

    #[test]
    fn ids_are_uuid_v4() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[tokio::test]
    async fn slow_clients_are_dropped_and_departures_counted() {
        let hub = Arc::new(EventHub::default());
        let token = CancellationToken::new();
        let slow = hub
            .subscribe(frame("hub_state", json!({})), &token)
            .unwrap();
        let fast = hub
            .subscribe(frame("hub_state", json!({})), &token)
            .unwrap();
        assert_eq!(hub.count(), 2);
        let mut fast_body = fast.into_body();
        // Fill both queues; only the fast client is drained.
        for i in 0..CLIENT_QUEUE + 10 {
            hub.broadcast("heartbeat", json!({"connections": i}));
            if i % 100 == 0 {
                while let Some(Ok(f)) =
                    futures::FutureExt::now_or_never(fast_body.frame()).flatten()
                {
                    drop(f);
                }
            }
        }
        assert_eq!(
            hub.count(),
            1,
            "the slow client is gone, the fast one stays"
        );
        assert_eq!(hub.present(), 2, "a slow client is not a client that left");
        drop(slow);
        drop(fast_body);
        assert_eq!(hub.count(), 0);
        assert_eq!(hub.present(), 1);
        let back = hub
            .subscribe(frame("hub_state", json!({})), &token)
            .unwrap();
        assert_eq!(hub.present(), 1, "it came back");
        drop(back);
        assert_eq!(hub.present(), 0);
    }

    #[tokio::test]
    async fn log_events_give_way_before_a_client_is_dropped() {
        let hub = Arc::new(EventHub::default());
        let token = CancellationToken::new();
        let slow = hub
            .subscribe(frame("hub_state", json!({})), &token)
            .unwrap();
        for i in 0..CLIENT_QUEUE * 10 {
            hub.broadcast("log", json!({"message": i}));
        }
        assert_eq!(hub.count(), 1, "a flood of log lines drops nobody");
        // What is left of the queue still takes state events.
        hub.broadcast("subscription_event", json!({"type": "servers_updated"}));
        let mut body = slow.into_body();
        let mut last = Bytes::new();
        while let Ok(Some(Ok(f))) =
            tokio::time::timeout(Duration::from_millis(200), body.frame()).await
        {
            last = f.into_data().unwrap_or_default();
        }
        assert!(last.starts_with(b"event: subscription_event\n"), "{last:?}");
    }

    #[tokio::test]
    async fn streams_end_on_shutdown() {
        let hub = Arc::new(EventHub::default());
        let token = CancellationToken::new();
        let r = hub
            .subscribe(frame("hub_state", json!({"state": "ready"})), &token)
            .unwrap();
        let mut b = r.into_body();
        let first = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(first.starts_with(b"event: hub_state\n"));
        token.cancel();
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), b.frame()).await;
        assert!(matches!(end, Ok(None)));
        assert!(hub.subscribe(Bytes::new(), &token).is_err());
    }

    /// Records what a replica would publish (the Redis side is tested end to end in
    /// `tests/e2e/cluster_ops.rs`).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl crate::Fleet for Recorder {
        fn replica(&self) -> &str {
            "r1"
        }
        fn publish_status(&self, _: String) {}
        async fn statuses(&self) -> Result<Vec<crate::ReplicaServers>, String> {
            Ok(Vec::new())
        }
        fn publish_event(&self, body: &str) {
            lock(&self.0).push(body.to_owned());
        }
        async fn publish_command(&self, _: &str) -> Result<usize, String> {
            Ok(0)
        }
        fn listen(&self) -> Option<mpsc::Receiver<crate::FleetMessage>> {
            None
        }
    }

    #[tokio::test]
    async fn cluster_events_are_tagged_and_only_local_ones_published() {
        let hub = Arc::new(EventHub::default());
        let rec = Arc::new(Recorder::default());
        hub.set_relay("r1", rec.clone());
        // Published even with no client here: the other replicas' clients may want it.
        assert_eq!(
            hub.broadcast("log", json!({"type": "info", "message": "m"})),
            0
        );
        let token = CancellationToken::new();
        let r = hub
            .subscribe(frame("hub_state", json!({"state": "ready"})), &token)
            .unwrap();
        let mut body = r.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(first.starts_with(b"event: hub_state\ndata: {\"replica\":\"r1\",\"state\""));
        hub.broadcast("hub_state", json!({"state": "restarting"}));
        hub.broadcast("heartbeat", json!({"connections": 1}));
        hub.broadcast_data("subscription_event", "{}");
        hub.broadcast_remote("log", r#"{"replica":"r2","message":"theirs"}"#);
        let mut got = Vec::new();
        for _ in 0..4 {
            let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
            let text = String::from_utf8(f.to_vec()).unwrap();
            let data: Value =
                serde_json::from_str(text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                    .unwrap();
            got.push(data["replica"].clone());
        }
        assert_eq!(got, [json!("r1"), json!("r1"), json!("r1"), json!("r2")]);
        // Published: this replica's log and subscription event, tagged; not hub_state, not
        // the heartbeat, not what came from another replica.
        let published = lock(&rec.0).clone();
        assert_eq!(published.len(), 2, "{published:?}");
        let p: Value = serde_json::from_str(&published[0]).unwrap();
        assert_eq!(p["event"], "log");
        assert_eq!(p["data"]["replica"], "r1");
        assert_eq!(p["data"]["message"], "m");
        let p: Value = serde_json::from_str(&published[1]).unwrap();
        assert_eq!(p["event"], "subscription_event");
        assert_eq!(p["data"], json!({"replica": "r1"}));
    }
}
