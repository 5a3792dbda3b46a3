//! `subscriptions/listen`: the modern era's one long-lived request, in place of the GET stream
//! and `resources/subscribe`. The stream opens with `notifications/subscriptions/acknowledged`
//! (the filter the hub agreed to), then carries the list changes and resource updates the
//! client asked for, each tagged with the listen request's id. Resource subscriptions are taken
//! upstream through the registry's per-URI count (shared with the legacy sessions' own), and
//! released when the stream ends; the stream ends when the client closes it or the hub stops.
//!
//! On a profile's endpoint the stream hears what the profile's sessions hear: a list change
//! only when the profile's view of that list changed (its view is compared with the one it last
//! told the stream about, so a missed event costs nothing), and resource updates only for URIs
//! the view shows; a URI it hides is acknowledged like an unknown one, never subscribed.

use std::sync::Arc;

use mcp_hub_protocol::modern::{self, meta};
use mcp_hub_protocol::{Message, Request, methods as m};
use mcp_hub_registry::{RegistryEvent, View};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{Response, channel_body};
use crate::mcp::dispatch::params_map;
use crate::mcp::profile::{Sight, ViewChange};
use crate::mcp::{Inner, sse_response};

/// Events a listen stream holds before its client is counted as gone.
const QUEUE: usize = 64;
/// Most resource URIs one listen request may watch.
const MAX_URIS: usize = 256;

/// What the client asked to hear about.
#[derive(Debug, Default, Clone, PartialEq)]
struct Filter {
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: Vec<String>,
}

impl Filter {
    fn parse(params: &Map<String, Value>) -> Filter {
        let n = params.get("notifications");
        let flag = |k: &str| n.and_then(|n| n.get(k)).and_then(Value::as_bool) == Some(true);
        let uris = n
            .and_then(|n| n.get("resourceSubscriptions"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .take(MAX_URIS)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Filter {
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris,
        }
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        for (k, on) in [
            ("toolsListChanged", self.tools),
            ("promptsListChanged", self.prompts),
            ("resourcesListChanged", self.resources),
        ] {
            if on {
                o.insert(k.into(), Value::Bool(true));
            }
        }
        if !self.uris.is_empty() {
            o.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(o)
    }

    /// The notifications one registry event means for this stream.
    fn notifications(&self, event: &RegistryEvent) -> Vec<(&'static str, Map<String, Value>)> {
        match event {
            RegistryEvent::CatalogChanged {
                tools,
                resources,
                prompts,
            } => [
                (*tools && self.tools, m::TOOLS_LIST_CHANGED),
                (*prompts && self.prompts, m::PROMPTS_LIST_CHANGED),
                (*resources && self.resources, m::RESOURCES_LIST_CHANGED),
            ]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, method)| (method, Map::new()))
            .collect(),
            RegistryEvent::ResourceUpdated { uri, .. } if self.uris.contains(uri) => {
                let mut p = Map::new();
                p.insert("uri".into(), Value::String(uri.clone()));
                vec![(m::RESOURCES_UPDATED, p)]
            }
            _ => Vec::new(),
        }
    }
}

/// Whose changes a stream hears.
enum Scope {
    /// The whole catalogue's (`/mcp`).
    All,
    /// One profile's view, and the view the stream was last told about.
    Profile {
        name: Arc<str>,
        last: Option<Arc<View>>,
    },
}

impl Scope {
    /// The notifications `event` means for a stream of this scope and `filter`.
    fn notifications(
        &mut self,
        inner: &Inner,
        filter: &Filter,
        event: &RegistryEvent,
    ) -> Vec<(&'static str, Map<String, Value>)> {
        let Scope::Profile { name, last } = self else {
            return filter.notifications(event);
        };
        match event {
            RegistryEvent::CatalogChanged { .. } | RegistryEvent::ProfilesChanged => {
                let now = inner.registry.view(name);
                let c = ViewChange::between(last.as_deref(), now.as_deref());
                *last = now;
                filter.notifications(&RegistryEvent::CatalogChanged {
                    tools: c.tools,
                    resources: c.resources,
                    prompts: c.prompts,
                })
            }
            RegistryEvent::ResourceUpdated { uri, .. }
                if inner.shows_uri(&inner.sight_of(Some(name)), uri) =>
            {
                filter.notifications(event)
            }
            _ => Vec::new(),
        }
    }
}

fn tagged(method: &str, mut params: Map<String, Value>, id: &Value) -> Message {
    params.insert("_meta".into(), json!({ meta::SUBSCRIPTION_ID: id }));
    Message::notification(method, Some(&Value::Object(params)))
}

pub(super) fn open(inner: &Arc<Inner>, req: Request, profile: Option<Arc<str>>) -> Response {
    let params = params_map(&req).unwrap_or_default();
    let filter = Filter::parse(&params);
    let id = serde_json::to_value(&req.id).unwrap_or(Value::Null);
    let (tx, rx) = mpsc::channel::<Message>(QUEUE);
    // Subscribed before the acknowledgement goes out, so nothing after it is missed.
    let mut events = inner.registry.events();
    let mut scope = match profile {
        None => Scope::All,
        Some(name) => Scope::Profile {
            last: inner.registry.view(&name),
            name,
        },
    };
    // What the stream may subscribe upstream: for a profile, only the URIs its view shows.
    let sight = match &scope {
        Scope::All => Sight::All,
        Scope::Profile { last: Some(v), .. } => Sight::View(v.clone()),
        Scope::Profile { last: None, .. } => Sight::Gone,
    };
    let ack = {
        let mut p = Map::new();
        p.insert("notifications".into(), filter.to_json());
        tagged(modern::methods::SUBSCRIPTIONS_ACKNOWLEDGED, p, &id)
    };
    let _ = tx.try_send(ack);
    let inner = inner.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for uri in filter.uris.iter().filter(|u| inner.shows_uri(&sight, u)) {
            match inner.registry.subscribe_resource(uri).await {
                Ok(_) => held.push(uri.clone()),
                Err(e) => {
                    tracing::debug!(target: "mcp_hub::api", %uri, "listen: upstream subscription failed: {e}")
                }
            }
        }
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                _ = inner.shutdown.cancelled() => break,
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        // A client that does not read loses its stream, not the hub's memory.
                        let sent = scope
                            .notifications(&inner, &filter, &ev)
                            .into_iter()
                            .all(|(method, p)| tx.try_send(tagged(method, p, &id)).is_ok());
                        if !sent {
                            tracing::debug!(target: "mcp_hub::api", "listen stream full or closed: ending it");
                            break;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Missed events: say everything the client watches may have changed.
                        let all = RegistryEvent::CatalogChanged { tools: true, resources: true, prompts: true };
                        for (method, p) in scope.notifications(&inner, &filter, &all) {
                            let _ = tx.try_send(tagged(method, p, &id));
                        }
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
        for uri in held {
            if let Err(e) = inner.registry.unsubscribe_resource(&uri).await {
                tracing::debug!(target: "mcp_hub::api", %uri, "listen: unsubscribe failed: {e}");
            }
        }
    });
    sse_response(channel_body(None, rx), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_decides_what_is_sent() {
        let p = json!({"notifications": {"promptsListChanged": true, "resourceSubscriptions": ["a://1"]}});
        let f = Filter::parse(p.as_object().unwrap());
        assert_eq!(
            f.to_json(),
            json!({"promptsListChanged": true, "resourceSubscriptions": ["a://1"]})
        );
        let tools_only = RegistryEvent::CatalogChanged {
            tools: true,
            resources: false,
            prompts: false,
        };
        assert!(f.notifications(&tools_only).is_empty());
        let both = RegistryEvent::CatalogChanged {
            tools: true,
            resources: false,
            prompts: true,
        };
        let n = f.notifications(&both);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].0, m::PROMPTS_LIST_CHANGED);
        let msg = tagged(n[0].0, n[0].1.clone(), &json!(5));
        assert!(
            msg.to_string()
                .contains(r#""_meta":{"io.modelcontextprotocol/subscriptionId":5}"#)
        );
    }
}
