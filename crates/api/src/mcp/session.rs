//! Downstream sessions: what the hub remembers about one MCP client between its HTTP requests.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mcp_hub_protocol::types::log_level_rank;
use mcp_hub_protocol::{ErrorObject, Message, ProtocolVersion, RawValue, RequestId};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::stream::{EventStream, StreamKind};

/// Finished POST streams are kept this long for `Last-Event-ID` replay.
const FINISHED_RETENTION: Duration = Duration::from_secs(120);
/// At most this many finished POST streams are kept per session after a prune (a session that
/// opens streams faster than the sweep runs prunes itself at twice this many).
const MAX_FINISHED: usize = 32;

pub(crate) type ClientReply = Result<Box<RawValue>, ErrorObject>;

/// Who a session counts against for the per-client quota: the bearer token that opened it,
/// else the address it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    Token(usize),
    Peer(IpAddr),
    /// Neither is known (an embedder serving without a socket address).
    Unknown,
}

/// Why a session cannot be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The client has its quota of sessions, every one of them busy.
    Client,
    /// The table is full of busy sessions.
    Table,
}

/// Which session makes room for one more of `client`, if one must: `Ok(None)` when there is
/// room. A client at its quota pays with its own least recently used idle session; a full
/// table gives up first a session that never finished its handshake, then the least recently
/// used idle one. Busy sessions (an open stream, a call in flight) and legacy ones (which live
/// exactly as long as their stream) are never taken.
pub(crate) fn make_room(
    sessions: &HashMap<Arc<str>, Arc<Session>>,
    client: ClientKey,
    max_sessions: usize,
    max_per_client: usize,
) -> Result<Option<Arc<str>>, Full> {
    let mine = sessions.values().filter(|s| s.client == client).count();
    // (never finished the handshake, last activity) orders the candidates: half-open first.
    let evictable = |s: &&Arc<Session>| -> Option<((bool, Instant), Arc<str>)> {
        if s.legacy {
            return None;
        }
        s.idle_for()?;
        let st = s.lock();
        Some(((st.handshake_done, st.last_activity), s.id.clone()))
    };
    if mine >= max_per_client {
        return sessions
            .values()
            .filter(|s| s.client == client)
            .filter_map(|s| evictable(&s))
            .min()
            .map(|(_, id)| Some(id))
            .ok_or(Full::Client);
    }
    if sessions.len() >= max_sessions {
        return sessions
            .values()
            .filter_map(|s| evictable(&s))
            .min()
            .map(|(_, id)| Some(id))
            .ok_or(Full::Table);
    }
    Ok(None)
}

pub(crate) struct SessionState {
    /// The negotiated protocol version.
    pub(crate) version: ProtocolVersion,
    /// Whether `initialize` was answered (legacy sessions exist before it).
    pub(crate) initialized: bool,
    /// Whether the client finished the handshake (`notifications/initialized`) or used the
    /// session since. Sessions that never do are the first to go when the table is full.
    pub(crate) handshake_done: bool,
    /// Which of the hub's bearer tokens opened the session (`None` without tokens): only the
    /// same principal may use it.
    pub(crate) principal: Option<usize>,
    /// The profile whose endpoint opened the session (`None`: `/mcp`, everything). Fixed for
    /// the session's life.
    pub(crate) profile: Option<Arc<str>>,
    /// The client's declared capabilities.
    pub(crate) client_caps: Map<String, Value>,
    /// The `logging/setLevel` rank; `None` forwards every message.
    pub(crate) log_level: Option<usize>,
    /// URIs this session subscribed to (unsubscribed upstream when it ends).
    pub(crate) subscriptions: HashSet<String>,
    /// Streams that can still be read or replayed, by id.
    pub(crate) streams: mcp_hub_registry::IdMap<u64, Arc<EventStream>>,
    /// The standalone GET stream (the only stream of a legacy session).
    pub(crate) get_stream: Option<Arc<EventStream>>,
    next_stream: u64,
    /// Downstream requests being served: cancelling the token drops the upstream call.
    pub(crate) in_flight: HashMap<RequestId, (CancellationToken, u64)>,
    /// Requests the hub sent to the client (sampling, elicitation, roots), by hub id.
    pub(crate) pending: HashMap<RequestId, oneshot::Sender<ClientReply>>,
    next_out_id: i64,
    pub(crate) last_activity: Instant,
}

pub(crate) struct Session {
    pub(crate) id: Arc<str>,
    /// `id` as the `Mcp-Session-Id` value every answer carries (`None` if it could not be one).
    pub(crate) id_header: Option<http::HeaderValue>,
    /// The session's number in upstream attributions ([`Requester::session`]); unique within the
    /// process and never reused.
    ///
    /// [`Requester::session`]: mcp_hub_registry::Requester::session
    pub(crate) key: u64,
    /// A legacy HTTP+SSE session (everything goes on its one stream).
    pub(crate) legacy: bool,
    /// The client it counts against.
    pub(crate) client: ClientKey,
    /// Fires when the session ends: in-flight calls are dropped, bodies end.
    pub(crate) cancel: CancellationToken,
    state: Mutex<SessionState>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("legacy", &self.legacy)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Session {
    #[cfg(test)]
    pub(crate) fn new(
        id: String,
        legacy: bool,
        version: ProtocolVersion,
        parent: &CancellationToken,
    ) -> Arc<Session> {
        Session::for_client(id, legacy, version, parent, ClientKey::Unknown)
    }

    pub(crate) fn for_client(
        id: String,
        legacy: bool,
        version: ProtocolVersion,
        parent: &CancellationToken,
        client: ClientKey,
    ) -> Arc<Session> {
        Arc::new(Session {
            id_header: http::HeaderValue::from_str(&id).ok(),
            id: Arc::from(id),
            key: next_key(),
            legacy,
            client,
            cancel: parent.child_token(),
            state: Mutex::new(SessionState {
                version,
                initialized: false,
                handshake_done: false,
                principal: None,
                profile: None,
                client_caps: Map::new(),
                log_level: None,
                subscriptions: HashSet::new(),
                streams: Default::default(),
                get_stream: None,
                next_stream: 1,
                in_flight: HashMap::new(),
                pending: HashMap::new(),
                next_out_id: 1,
                last_activity: Instant::now(),
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn touch(&self) {
        self.lock().last_activity = Instant::now();
    }

    pub(crate) fn version(&self) -> ProtocolVersion {
        self.lock().version
    }

    /// A new stream registered for replay.
    pub(crate) fn new_stream(&self, kind: StreamKind) -> Arc<EventStream> {
        // Enforce the bound on finished streams here too, not only on the periodic sweep: a busy
        // session opens many POST streams between two sweeps. Only past twice the bound, so the
        // scan and sort run once per MAX_FINISHED calls, not on every call (they were a seventh
        // of the hub's instructions per tools/call).
        if self.lock().streams.len() > 2 * MAX_FINISHED {
            self.prune_streams();
        }
        let mut st = self.lock();
        let id = st.next_stream;
        st.next_stream += 1;
        let s = EventStream::new(id, kind, self.id.clone(), self.cancel.clone());
        st.streams.insert(id, s.clone());
        if kind != StreamKind::Post {
            st.get_stream = Some(s.clone());
        }
        s
    }

    /// Where a message that belongs to no request goes: the GET stream (or the legacy stream).
    /// Returns false when the client has none.
    pub(crate) fn send_unrelated(&self, msg: &Message) -> bool {
        let s = self.lock().get_stream.clone();
        match s {
            Some(s) => s.push(msg),
            None => false,
        }
    }

    /// Whether a log message of `level` passes this session's `logging/setLevel`.
    pub(crate) fn admits_log(&self, level: Option<&str>) -> bool {
        let Some(min) = self.lock().log_level else {
            return true;
        };
        level.and_then(log_level_rank).is_none_or(|r| r >= min)
    }

    /// A fresh id for a request the hub sends to this client.
    pub(crate) fn register_pending(&self, tx: oneshot::Sender<ClientReply>) -> RequestId {
        let mut st = self.lock();
        let id = RequestId::Number(st.next_out_id);
        st.next_out_id += 1;
        st.pending.insert(id.clone(), tx);
        id
    }

    /// Whether nothing keeps the session alive: no open body, no call in flight.
    pub(crate) fn idle_for(&self) -> Option<Duration> {
        let st = self.lock();
        if !st.in_flight.is_empty()
            || !st.pending.is_empty()
            || st.streams.values().any(|s| s.is_attached())
        {
            return None;
        }
        Some(st.last_activity.elapsed())
    }

    /// Forgets finished POST streams that are too old or too many.
    pub(crate) fn prune_streams(&self) {
        let mut st = self.lock();
        let mut finished: Vec<(Instant, u64)> = st
            .streams
            .values()
            .filter(|s| s.kind == StreamKind::Post && !s.is_attached())
            .filter_map(|s| s.finished_at().map(|t| (t, s.id)))
            .collect();
        finished.sort_unstable();
        let excess = finished.len().saturating_sub(MAX_FINISHED);
        let now = Instant::now();
        for (i, (t, id)) in finished.into_iter().enumerate() {
            if i < excess || now.saturating_duration_since(t) > FINISHED_RETENTION {
                st.streams.remove(&id);
            }
        }
    }

    /// Which server-to-client requests the client declared it can answer.
    pub(crate) fn features(&self) -> mcp_hub_registry::ClientFeatures {
        mcp_hub_registry::ClientFeatures::from_capabilities(&self.lock().client_caps)
    }

    /// Whether the client declared a capability (a top-level key of its capabilities).
    pub(crate) fn capability(&self, name: &str) -> Option<Value> {
        self.lock().client_caps.get(name).cloned()
    }
}

/// A fresh requester key ([`Session::key`]); stateless requests take one each.
pub(crate) fn next_key() -> u64 {
    static NEXT_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A session id: 128 bits from the operating system's CSPRNG, as hex.
pub(crate) fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    fn session(id: &str, client: ClientKey, handshake: bool, age_ms: u64) -> Arc<Session> {
        let s = Session::for_client(
            id.into(),
            false,
            ProtocolVersion::LATEST,
            &CancellationToken::new(),
            client,
        );
        let mut st = s.lock();
        st.handshake_done = handshake;
        st.last_activity = Instant::now() - Duration::from_millis(age_ms);
        drop(st);
        s
    }

    fn table(list: Vec<Arc<Session>>) -> HashMap<Arc<str>, Arc<Session>> {
        list.into_iter().map(|s| (s.id.clone(), s)).collect()
    }

    #[test]
    fn room_is_made_by_the_greedy_client_or_by_idle_sessions() {
        let a = ClientKey::Peer("10.0.0.1".parse().unwrap());
        let b = ClientKey::Token(1);
        let t = table(vec![
            session("a-old", a, true, 500),
            session("a-new", a, true, 100),
            session("b-oldest", b, true, 900),
        ]);
        // Room: nobody goes.
        assert_eq!(make_room(&t, b, 10, 5), Ok(None));
        // A client at its quota pays with its own least recently used session.
        assert_eq!(make_room(&t, a, 10, 2), Ok(Some(Arc::from("a-old"))));
        // A full table gives up the least recently used idle session, whoever's.
        assert_eq!(make_room(&t, a, 3, 5), Ok(Some(Arc::from("b-oldest"))));
        // A session that never finished its handshake goes before any other.
        let mut t = t;
        let half = session("half-open", b, false, 1);
        t.insert(half.id.clone(), half);
        assert_eq!(make_room(&t, a, 4, 5), Ok(Some(Arc::from("half-open"))));
    }

    #[test]
    fn busy_sessions_are_never_taken() {
        let a = ClientKey::Token(0);
        let busy = session("busy", a, true, 1000);
        busy.lock()
            .in_flight
            .insert(RequestId::Number(1), (CancellationToken::new(), 1));
        let listening = session("listening", a, true, 1000);
        let get = listening.new_stream(StreamKind::Get);
        let _reader = get.attach().unwrap();
        let t = table(vec![busy, listening]);
        assert_eq!(make_room(&t, a, 10, 2), Err(Full::Client));
        assert_eq!(make_room(&t, ClientKey::Token(1), 2, 5), Err(Full::Table));
    }

    #[test]
    fn log_filter() {
        let s = Session::new(
            "x".into(),
            false,
            ProtocolVersion::LATEST,
            &CancellationToken::new(),
        );
        assert!(s.admits_log(Some("debug")));
        s.lock().log_level = log_level_rank("warning");
        assert!(!s.admits_log(Some("info")));
        assert!(s.admits_log(Some("error")));
        assert!(s.admits_log(None));
    }
}
