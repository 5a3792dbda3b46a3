//! The bridge from a handshake-era upstream to a 2026-07-28 client (MRTR, SEP-2322): an
//! upstream's `sampling/createMessage`, `elicitation/create` or `roots/list` during a stateless
//! call cannot be sent to the client, so the call is *parked*: the client gets an
//! `InputRequiredResult` whose `inputRequests` hold the upstream's request and whose
//! `requestState` names the parked call; its retry (a new request, with `inputResponses` and
//! that state) answers the upstream and picks the call up where it stopped.
//!
//! `requestState` is sealed with HMAC-SHA256 under a key drawn once per process (ring): it
//! binds the parked call's number to the caller (its bearer token, if any), the endpoint (the
//! profile, if any), the method and the tool, prompt or resource name, and an expiry. A forged,
//! altered, expired or foreign state is refused. A parked call nobody resumes within
//! `ApiConfig::parked_input_ttl` is dropped, which cancels it
//! upstream and answers the upstream's request with an error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mcp_hub_protocol::{ErrorCode, ErrorObject, Message, RawValue, Request, RequestId};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::mcp::dispatch::err;
use crate::mcp::{Inner, lock};

/// How long a call waits for the rest of a round's input requests (a 2026-07-28 upstream's
/// `InputRequiredResult` asks them all at once; they reach the bridge one by one).
const GATHER_WAIT: Duration = Duration::from_secs(2);

/// The answer the upstream waits for.
pub(crate) type Reply = Result<Box<RawValue>, ErrorObject>;

/// What a stateless call's task produces, in order.
pub(crate) enum Ev {
    /// A notification for the client, or the call's answer (which ends it).
    Msg(Message),
    /// The upstream asks the client something.
    Input {
        request: Request,
        reply: oneshot::Sender<Reply>,
    },
}

/// A call waiting for its client's retry.
struct Parked {
    events: mpsc::Receiver<Ev>,
    /// Input key → where its answer goes.
    waiting: HashMap<String, (Request, oneshot::Sender<Reply>)>,
    binding: Binding,
}

/// What a `requestState` is bound to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Binding {
    /// The caller's bearer token (its index), if the hub has tokens.
    pub(crate) principal: Option<usize>,
    /// The profile whose endpoint the call came to: a retry elsewhere is refused.
    pub(crate) profile: Option<String>,
    pub(crate) method: String,
    /// The tool or prompt name, or the resource URI.
    pub(crate) name: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    /// The parked call.
    p: u64,
    /// Expiry, Unix milliseconds.
    e: u64,
    b: Binding,
}

/// The bridge's state: the process key and the parked calls.
pub(crate) struct Bridge {
    key: ring::hmac::Key,
    parked: std::sync::Mutex<HashMap<u64, Parked>>,
    next: std::sync::atomic::AtomicU64,
}

impl Bridge {
    pub(crate) fn new() -> Bridge {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            // No randomness from the OS: fall back to a key nobody else can know either
            // (the process id and time), rather than not serving at all.
            let seed = format!("{:?}{}", SystemTime::now(), std::process::id());
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed.as_bytes())
        });
        Bridge {
            key,
            parked: std::sync::Mutex::new(HashMap::new()),
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn seal(&self, s: &Sealed) -> String {
        let payload = B64.encode(serde_json::to_vec(s).unwrap_or_default());
        let tag = ring::hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", B64.encode(tag.as_ref()))
    }

    fn open(&self, state: &str) -> Option<Sealed> {
        let (payload, tag) = state.split_once('.')?;
        let tag = B64.decode(tag).ok()?;
        ring::hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        serde_json::from_slice(&B64.decode(payload).ok()?).ok()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Consumes a call's events for one HTTP answer: notifications pass, the answer ends it, and an
/// input request parks the call and ends this leg with an `InputRequiredResult`.
pub(crate) struct Drive {
    inner: Arc<Inner>,
    events: Option<mpsc::Receiver<Ev>>,
    id: RequestId,
    binding: Binding,
    /// Messages ready for the client before anything else.
    queue: std::collections::VecDeque<Message>,
}

impl Drive {
    pub(crate) fn new(
        inner: Arc<Inner>,
        events: mpsc::Receiver<Ev>,
        id: RequestId,
        binding: Binding,
    ) -> Drive {
        Drive {
            inner,
            events: Some(events),
            id,
            binding,
            queue: Default::default(),
        }
    }

    /// The next message for the client; `None` when this leg is over.
    pub(crate) async fn next(&mut self) -> Option<Message> {
        if let Some(m) = self.queue.pop_front() {
            return Some(m);
        }
        let events = self.events.as_mut()?;
        match events.recv().await {
            None => {
                self.events = None;
                None
            }
            Some(Ev::Msg(m)) => Some(match m {
                Message::Notification(_) => m,
                // The call's answer answers this leg: after a resumption, the retry's id.
                Message::Response(mut r) => {
                    self.events = None;
                    r.id = self.id.clone();
                    Message::Response(r)
                }
                Message::Error(mut e) => {
                    self.events = None;
                    e.id = Some(self.id.clone());
                    Message::Error(e)
                }
                other => other,
            }),
            Some(Ev::Input { request, reply }) => {
                let mut events = self.events.take()?;
                // A round of a 2026-07-28 upstream says how many requests it has: the client
                // gets them together, as the upstream asked them.
                let expected = match &request.id {
                    RequestId::String(s) => mcp_hub_protocol::modern::parse_input_request_id(s)
                        .map_or(1, |(_, count, _)| count),
                    RequestId::Number(_) => 1,
                };
                let mut waiting = HashMap::new();
                add_input(&mut waiting, request, reply);
                let deadline = tokio::time::Instant::now() + GATHER_WAIT;
                while waiting.len() < expected {
                    match tokio::time::timeout_at(deadline, events.recv()).await {
                        Ok(Some(Ev::Input { request, reply })) => {
                            add_input(&mut waiting, request, reply)
                        }
                        // Notifications of the call go out first.
                        Ok(Some(Ev::Msg(m))) => self.queue.push_back(m),
                        _ => break,
                    }
                }
                let parked = self.park(events, waiting);
                self.queue.push_back(parked);
                self.queue.pop_front()
            }
        }
    }

    fn park(
        &self,
        events: mpsc::Receiver<Ev>,
        waiting: HashMap<String, (Request, oneshot::Sender<Reply>)>,
    ) -> Message {
        let bridge = &self.inner.bridge;
        let n = bridge
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let requests: Map<String, Value> = waiting
            .iter()
            .map(|(k, (r, _))| {
                let params: Value = r.params_as().unwrap_or(Value::Null);
                (k.clone(), json!({"method": r.method, "params": params}))
            })
            .collect();
        let ttl = self.inner.config.parked_input_ttl;
        let mut state = bridge.seal(&Sealed {
            p: n,
            e: now_ms() + ttl.as_millis() as u64,
            b: self.binding.clone(),
        });
        if let Some(c) = self.inner.cluster.get() {
            state = super::elsewhere::stamp(c.replica_id(), state);
        }
        lock(&bridge.parked).insert(
            n,
            Parked {
                events,
                waiting,
                binding: self.binding.clone(),
            },
        );
        // Never resumed: dropping it closes the call's channel, which cancels it upstream.
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            if let Some(inner) = inner.upgrade()
                && lock(&inner.bridge.parked).remove(&n).is_some()
            {
                tracing::debug!(target: "mcp_hub::api", parked = n, "a parked call was not resumed in time: cancelled");
            }
        });
        let result = json!({
            "resultType": "input_required",
            "inputRequests": requests,
            "requestState": state,
        });
        Message::response(self.id.clone(), super::super::dispatch::raw(&result))
    }
}

/// Adds an input request under its key (a different one if the key is taken).
fn add_input(
    waiting: &mut HashMap<String, (Request, oneshot::Sender<Reply>)>,
    request: Request,
    reply: oneshot::Sender<Reply>,
) {
    let mut key = input_key(&request);
    if waiting.contains_key(&key) {
        key = fallback_key(&request);
    }
    waiting.insert(key, (request, reply));
}

/// The key of an upstream request in `inputRequests`: a 2026-07-28 upstream's own key when the
/// request is one of its input requests, else its method's first word and its id.
fn input_key(r: &Request) -> String {
    if let RequestId::String(s) = &r.id
        && let Some((_, _, key)) = mcp_hub_protocol::modern::parse_input_request_id(s)
    {
        return key.to_owned();
    }
    fallback_key(r)
}

fn fallback_key(r: &Request) -> String {
    let kind = r.method.split('/').next().unwrap_or("input");
    let id = match &r.id {
        RequestId::Number(n) => n.to_string(),
        RequestId::String(s) => s.chars().filter(char::is_ascii_alphanumeric).collect(),
    };
    format!("{kind}-{id}")
}

/// A retry's `requestState` resumes its parked call: the answers in `inputResponses` go to
/// the upstream, and the call's events drive this request's answer. `Err` when the state is not
/// one this hub issued for this caller and request, or the call is gone.
pub(crate) fn resume(
    inner: &Arc<Inner>,
    state: &str,
    responses: Option<&Map<String, Value>>,
    id: RequestId,
    binding: Binding,
) -> Result<Drive, ErrorObject> {
    let refuse = |why: &str| {
        err(
            ErrorCode::INVALID_PARAMS,
            format!("Invalid params: requestState {why}"),
        )
    };
    // In a cluster, a retry for another replica's call reaches this point only when that
    // replica is gone (see `elsewhere`): its call died with it.
    let (parker, state) = super::elsewhere::split(state);
    if let (Some(parker), Some(c)) = (parker, inner.cluster.get())
        && parker != c.replica_id()
    {
        return Err(refuse("has expired"));
    }
    let sealed = inner
        .bridge
        .open(state)
        .ok_or_else(|| refuse("was not issued by this hub or was altered"))?;
    if sealed.b != binding {
        return Err(refuse("belongs to another caller or request"));
    }
    if sealed.e < now_ms() {
        return Err(refuse("has expired"));
    }
    let mut parked = lock(&inner.bridge.parked)
        .remove(&sealed.p)
        .ok_or_else(|| refuse("names a call that has ended or was resumed already"))?;
    debug_assert_eq!(parked.binding, binding);
    let mut unanswered = HashMap::new();
    for (key, (request, reply)) in parked.waiting.drain() {
        match responses.and_then(|r| r.get(&key)) {
            Some(answer) => {
                let _ = reply.send(Ok(super::super::dispatch::raw(answer)));
            }
            None => {
                unanswered.insert(key, (request, reply));
            }
        }
    }
    let drive = Drive {
        inner: inner.clone(),
        events: None,
        id,
        binding,
        queue: Default::default(),
    };
    if !unanswered.is_empty() {
        // Asked again for what the retry did not answer (`missing-input-response`).
        let again = drive.park(parked.events, unanswered);
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Ev::Msg(again));
        return Ok(Drive {
            events: Some(rx),
            ..drive
        });
    }
    Ok(Drive {
        events: Some(parked.events),
        ..drive
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding {
        Binding {
            principal: None,
            profile: None,
            method: "tools/call".into(),
            name: Some("t".into()),
        }
    }

    #[test]
    fn sealed_state_is_bound_and_tamper_evident() {
        let b = Bridge::new();
        let s = b.seal(&Sealed {
            p: 7,
            e: 1,
            b: binding(),
        });
        let opened = b.open(&s).unwrap();
        assert_eq!((opened.p, opened.b), (7, binding()));
        // Another process (another key) cannot open it.
        assert!(Bridge::new().open(&s).is_none());
        // Any change to the payload breaks the tag.
        let (payload, tag) = s.split_once('.').unwrap();
        let mut forged: Vec<u8> = B64.decode(payload).unwrap();
        let text = String::from_utf8(forged.clone())
            .unwrap()
            .replace("\"p\":7", "\"p\":8");
        forged = text.into_bytes();
        assert!(b.open(&format!("{}.{tag}", B64.encode(forged))).is_none());
        assert!(b.open("garbage").is_none());
    }

    #[test]
    fn input_keys_are_tidy() {
        let r = Request {
            id: RequestId::from("s-1"),
            method: "elicitation/create".into(),
            params: None,
        };
        assert_eq!(input_key(&r), "elicitation-s1");
        let r = Request {
            id: RequestId::from(3),
            method: "roots/list".into(),
            params: None,
        };
        assert_eq!(input_key(&r), "roots-3");
        // A 2026-07-28 upstream's input request keeps the upstream's key.
        let r = Request {
            id: RequestId::from(mcp_hub_protocol::modern::input_request_id(
                0,
                2,
                "user_name",
            )),
            method: "elicitation/create".into(),
            params: None,
        };
        assert_eq!(input_key(&r), "user_name");
    }
}
