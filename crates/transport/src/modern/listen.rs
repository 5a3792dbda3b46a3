//! The hub listening to a 2026-07-28 upstream: the era has no GET stream and no
//! `resources/subscribe`, so a modern session keeps one `subscriptions/listen` request open
//! for the list changes the server declares, and the resources the hub's clients subscribed to.
//! What arrives on it (`notifications/*/list_changed`, `notifications/resources/updated`) goes to
//! the session notification stream, exactly where a handshake-era server's notifications go:
//! the registry above cannot tell the eras apart.
//!
//! `resources/subscribe` and `unsubscribe` toward such a server change the listen filter: the
//! listen request is replaced by one with the new `resourceSubscriptions` (the old one is
//! closed once the new one is acknowledged, so nothing falls between them) and the call returns
//! once the server acknowledged it (or after [`REFILTER_WAIT`]). A listen stream that ends
//! (the server restarted, the connection broke) is opened again after a growing pause; once it
//! is back, the hub announces every list change and resource update the filter covers, because
//! any of them may have happened while nobody listened.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_hub_protocol::modern::methods::{SUBSCRIPTIONS_ACKNOWLEDGED, SUBSCRIPTIONS_LISTEN};
use mcp_hub_protocol::{Notification, methods};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, watch};

use super::ModernMeta;
use crate::RequestOptions;
use crate::engine::Engine;

/// How long a listen request may stay open before it is renewed (it is not an error).
const LISTEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// First pause before listening again after the stream was lost; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(30);
/// How long `resources/subscribe` waits for the new filter to be acknowledged.
pub(crate) const REFILTER_WAIT: Duration = Duration::from_secs(5);

/// The list changes a server declares (`capabilities.<kind>.listChanged`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Lists {
    tools: bool,
    prompts: bool,
    resources: bool,
}

/// A modern session's listener: what it listens for.
#[derive(Debug)]
pub(crate) struct Listen {
    lists: Lists,
    uris: Mutex<BTreeSet<String>>,
    /// Bumped on every filter change.
    wanted: watch::Sender<u64>,
    /// The filter generation the server acknowledged last.
    acked: watch::Sender<u64>,
    refilter: Notify,
    /// The server answered the last listen request with an error, unacknowledged: it does not
    /// listen (or not to this filter). Subscriptions are then refused at once instead of
    /// waiting for an acknowledgement that will not come.
    refused: std::sync::atomic::AtomicBool,
}

impl Listen {
    /// A listener for a server with these capabilities; `None` when there is nothing it could
    /// announce (no list changes, no resources).
    pub(crate) fn new(capabilities: &Map<String, Value>) -> Option<Arc<Listen>> {
        let declared = |kind: &str| {
            capabilities
                .get(kind)
                .and_then(|c| c.get("listChanged"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let lists = Lists {
            tools: declared("tools"),
            prompts: declared("prompts"),
            resources: declared("resources"),
        };
        if lists == Lists::default() && !capabilities.contains_key("resources") {
            return None;
        }
        Some(Arc::new(Listen {
            lists,
            uris: Mutex::default(),
            wanted: watch::channel(0).0,
            acked: watch::channel(0).0,
            refilter: Notify::new(),
            refused: Default::default(),
        }))
    }

    fn uris(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.uris.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listen request's params; `None` when there is nothing to listen for.
    fn filter(&self) -> Option<Map<String, Value>> {
        let uris: Vec<String> = self.uris().iter().cloned().collect();
        let Lists {
            tools,
            prompts,
            resources,
        } = self.lists;
        if !tools && !prompts && !resources && uris.is_empty() {
            return None;
        }
        let mut n = Map::new();
        let mut put = |k: &str, on: bool| {
            if on {
                n.insert(k.into(), Value::Bool(true));
            }
        };
        put("toolsListChanged", tools);
        put("promptsListChanged", prompts);
        put("resourcesListChanged", resources);
        if !uris.is_empty() {
            n.insert("resourceSubscriptions".into(), json!(uris));
        }
        let mut params = Map::new();
        params.insert("notifications".into(), Value::Object(n));
        Some(params)
    }

    /// `resources/subscribe` (`on`) or `unsubscribe` of `uri`: the listen request is renewed
    /// with the new filter; returns once the server acknowledged it, or after
    /// [`REFILTER_WAIT`] (the subscription stays recorded and applies when the stream is back).
    /// `false` when a subscription cannot be listened to (the server refuses to listen).
    pub(crate) async fn subscribe(&self, uri: &str, on: bool) -> bool {
        let changed = match on {
            true => self.uris().insert(uri.to_owned()),
            false => self.uris().remove(uri),
        };
        if !changed {
            return !(on && self.refused());
        }
        let mut generation = 0;
        self.wanted.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        self.refilter.notify_one();
        let mut acked = self.acked.subscribe();
        let _ = tokio::time::timeout(REFILTER_WAIT, acked.wait_for(|g| *g >= generation)).await;
        if on && self.refused() {
            // Not listened to: the caller's subscription fails, and is not kept.
            self.uris().remove(uri);
            return false;
        }
        true
    }

    fn refused(&self) -> bool {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What may have been missed while no stream was open.
    fn missed(&self) -> Vec<Notification> {
        let mut out = Vec::new();
        for (on, method) in [
            (self.lists.tools, methods::TOOLS_LIST_CHANGED),
            (self.lists.prompts, methods::PROMPTS_LIST_CHANGED),
            (self.lists.resources, methods::RESOURCES_LIST_CHANGED),
        ] {
            if on {
                out.push(Notification {
                    method: method.to_owned(),
                    params: None,
                });
            }
        }
        for uri in self.uris().iter() {
            out.push(Notification {
                method: methods::RESOURCES_UPDATED.to_owned(),
                params: mcp_hub_protocol::to_raw(&json!({ "uri": uri })).ok(),
            });
        }
        out
    }
}

enum Leg {
    /// The filter changed: listen again at once.
    Refilter,
    /// The stream ended (answered, failed, or timed out); whether it had been acknowledged, and
    /// whether the server answered it with an error.
    Ended { acked: bool, refused: bool },
}

/// Keeps a listen request open on `engine` until the session closes.
///
/// A new filter does not leave a gap: the listen request it replaces stays open until the new
/// one is acknowledged (what arrives on both meanwhile may arrive twice, never not at all).
pub(crate) async fn run(engine: Arc<Engine>, listen: Arc<Listen>, meta: ModernMeta) {
    let mut lost = false;
    let mut pause = FIRST_PAUSE;
    // The acknowledged listen request a new filter is replacing.
    let mut previous = None;
    loop {
        let generation = *listen.wanted.borrow();
        let Some(filter) = listen.filter() else {
            // Nothing to listen for: the previous request (if any) goes.
            previous = None;
            listen.acked.send_replace(generation);
            tokio::select! {
                () = listen.refilter.notified() => continue,
                _ = engine.closed() => return,
            }
        };
        let params = mcp_hub_protocol::to_raw(&filter).ok();
        let (tx, mut acks) = mpsc::channel::<Notification>(4);
        let options = RequestOptions {
            timeout: Some(LISTEN_LIFETIME),
            max_total_timeout: Some(LISTEN_LIFETIME),
            related: Some(tx),
            ..RequestOptions::default()
        };
        let mut request =
            Box::pin(engine.request(SUBSCRIPTIONS_LISTEN, meta.apply(params), options, true));
        let mut acked = false;
        let leg = loop {
            tokio::select! {
                outcome = &mut request => {
                    if let Err(e) = &outcome {
                        tracing::debug!(server = %engine.name(), error = %e, "the listen stream ended");
                    }
                    let refused = matches!(outcome, Err(crate::RequestError::Rpc(_)));
                    break Leg::Ended { acked, refused };
                }
                // The replaced request ended on its own: nothing to close any more.
                _ = async { previous.as_mut().expect("guarded").await }, if previous.is_some() => {
                    previous = None;
                    lost = true;
                }
                Some(n) = acks.recv() => {
                    if n.method != SUBSCRIPTIONS_ACKNOWLEDGED || acked {
                        continue;
                    }
                    acked = true;
                    pause = FIRST_PAUSE;
                    listen.refused.store(false, std::sync::atomic::Ordering::Relaxed);
                    // Dropping the replaced request cancels it upstream (closing its stream).
                    previous = None;
                    listen.acked.send_replace(generation);
                    if std::mem::take(&mut lost) {
                        tracing::debug!(server = %engine.name(), "listening again: announcing what may have been missed");
                        for n in listen.missed() {
                            engine.publish_own(n);
                        }
                    }
                }
                () = listen.refilter.notified() => break Leg::Refilter,
                _ = engine.closed() => return,
            }
        };
        match leg {
            // An acknowledged request stays open until its successor is acknowledged; one not
            // acknowledged yet is of no use and goes at once.
            Leg::Refilter if acked => previous = Some(request),
            Leg::Refilter => drop(request),
            Leg::Ended { acked, refused } => {
                lost = true;
                if !acked {
                    // Refused or unreachable: wait longer each time.
                    pause = (pause * 2).min(MAX_PAUSE);
                    if refused {
                        tracing::debug!(server = %engine.name(), "the server refuses subscriptions/listen");
                        listen
                            .refused
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        // Nobody waits for an acknowledgement that will not come.
                        listen.acked.send_replace(generation);
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = listen.refilter.notified() => {}
                    _ = engine.closed() => return,
                }
            }
        }
    }
}
