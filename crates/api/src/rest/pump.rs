//! The task that feeds `/api/events`: heartbeats, the core's hub events (state, logs,
//! subscription events), and the registry's events turned into the Node hub's
//! `*_list_changed` and `servers_updated` subscription events.

use std::sync::{Arc, Weak};
use std::time::Duration;

use mcp_hub_registry::{ListKind, RegistryEvent, ServerStatus};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Inner, OWN_CHANGE_GRACE};
use crate::{HubEvent, HubState};

/// Status changes within this window become one `servers_updated`. Long enough to merge a
/// crash and the quick reconnect after it (first backoff 0.5 s), since mcphub.nvim pops up a
/// notification for each one.
const COALESCE: Duration = Duration::from_secs(1);
/// Longest a config reload may keep status announcements quiet if its `servers_updated` never
/// comes.
const RELOAD_QUIET_MAX: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    /// Servers whose status changed on their own (crash, restart with backoff, upstream
    /// recovery), not yet announced.
    pending: Vec<String>,
    deadline: Option<Instant>,
    /// Until when status changes are the doing of a config reload or a hub restart, which
    /// announce themselves.
    quiet_until: Option<Instant>,
}

pub(super) fn spawn(inner: &Arc<Inner>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(target: "mcp_hub::api", "no async runtime: /api/events gets no events");
        return;
    };
    let weak = Arc::downgrade(inner);
    let registry_events = inner.registry.events();
    let hub_events = inner.control.subscribe();
    let shutdown = inner.shutdown.clone();
    let period = inner.heartbeat;
    handle.spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = run(weak, registry_events, hub_events, period) => {}
        }
    });
}

async fn run(
    weak: Weak<Inner>,
    mut registry_events: tokio::sync::broadcast::Receiver<RegistryEvent>,
    mut hub_events: tokio::sync::broadcast::Receiver<HubEvent>,
    period: Duration,
) {
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut st = State::default();
    let (mut registry_open, mut hub_open) = (true, true);
    loop {
        let flush_at = st.deadline;
        tokio::select! {
            _ = tick.tick() => {
                let Some(inner) = weak.upgrade() else { return };
                let n = inner.events.count();
                if n > 0 {
                    inner.events.broadcast("heartbeat", json!({ "connections": n }));
                }
            }
            ev = registry_events.recv(), if registry_open => {
                let Some(inner) = weak.upgrade() else { return };
                match ev {
                    Ok(ev) => on_registry_event(&inner, &mut st, ev),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(target: "mcp_hub::api", missed, "/api/events fell behind the registry; announcing every server");
                        for name in inner.registry.names() {
                            queue(&mut st, name);
                        }
                    }
                    Err(RecvError::Closed) => registry_open = false,
                }
            }
            ev = hub_events.recv(), if hub_open => {
                let Some(inner) = weak.upgrade() else { return };
                match ev {
                    Ok(ev) => on_hub_event(&inner, &mut st, ev),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(target: "mcp_hub::api", missed, "/api/events fell behind the hub's events");
                    }
                    Err(RecvError::Closed) => hub_open = false,
                }
            }
            _ = async { if let Some(at) = flush_at { tokio::time::sleep_until(at).await } }, if flush_at.is_some() => {
                let Some(inner) = weak.upgrade() else { return };
                flush(&inner, &mut st);
            }
        }
    }
}

fn queue(st: &mut State, server: String) {
    if !st.pending.contains(&server) {
        st.pending.push(server);
    }
    st.deadline.get_or_insert_with(|| Instant::now() + COALESCE);
}

/// Whether a server's status change is already announced by whoever caused it: a REST route,
/// a config reload (`servers_updating` … `servers_updated`), or a hub (re)start (`hub_state`).
fn announced_elsewhere(inner: &Inner, st: &State, server: &str) -> bool {
    inner.is_busy(server)
        || !matches!(inner.control.state(), HubState::Ready | HubState::Restarted)
        || st.quiet_until.is_some_and(|t| t > Instant::now())
}

fn on_registry_event(inner: &Inner, st: &mut State, ev: RegistryEvent) {
    match ev {
        // `connecting` is transient; the outcome that follows is what clients need.
        RegistryEvent::ServerStatus { server, status }
            if status != ServerStatus::Connecting && !announced_elsewhere(inner, st, &server) =>
        {
            queue(st, server.to_string());
        }
        RegistryEvent::ListChanged { server, kind } => {
            if inner.events.count() == 0 {
                return;
            }
            let Some(snap) = inner.registry.snapshot(&server) else {
                return;
            };
            // Lists fetched while connecting arrive with the connection itself.
            if snap.status != ServerStatus::Connected {
                return;
            }
            // The lists go in as the JSON text the registry keeps: a large catalogue is not
            // turned into a value tree for each change.
            let (kind, lists) = match kind {
                ListKind::Tools => ("tool_list_changed", vec![("tools", &snap.tools)]),
                ListKind::Resources => (
                    "resource_list_changed",
                    vec![
                        ("resources", &snap.resources),
                        ("resourceTemplates", &snap.resource_templates),
                    ],
                ),
                ListKind::Prompts => ("prompt_list_changed", vec![("prompts", &snap.prompts)]),
            };
            let mut data = format!(
                "{{\"type\":{},\"server\":{}",
                Value::from(kind),
                Value::from(&*server)
            );
            for (key, list) in lists {
                data.push_str(&format!(",{}:", Value::from(key)));
                data.push_str(list.json());
            }
            data.push_str(&format!(
                ",\"timestamp\":{}}}",
                Value::from(crate::body::now_iso())
            ));
            inner.events.broadcast_data("subscription_event", &data);
        }
        _ => {}
    }
}

fn on_hub_event(inner: &Inner, st: &mut State, ev: HubEvent) {
    match ev {
        HubEvent::State(state) => {
            if matches!(state, HubState::Ready | HubState::Restarted) {
                // Clients re-read everything on `ready`/`restarted`.
                st.pending.clear();
                st.deadline = None;
                st.quiet_until = Some(Instant::now() + OWN_CHANGE_GRACE);
            }
            inner.events.broadcast("hub_state", inner.hub_state(state));
        }
        HubEvent::Log {
            level,
            message,
            data,
        } => {
            inner.events.broadcast(
                "log",
                json!({"type": level, "message": message, "data": data}),
            );
        }
        HubEvent::Subscription(payload) => {
            match payload.get("type").and_then(Value::as_str) {
                Some("servers_updating") => {
                    st.quiet_until = Some(Instant::now() + RELOAD_QUIET_MAX);
                }
                Some("servers_updated") => {
                    st.quiet_until = Some(Instant::now() + OWN_CHANGE_GRACE);
                    st.pending.clear();
                    st.deadline = None;
                }
                _ => {}
            }
            inner
                .events
                .broadcast("subscription_event", Value::Object(payload));
        }
    }
}

fn flush(inner: &Inner, st: &mut State) {
    st.deadline = None;
    let known = inner.registry.names();
    let names: Vec<String> = std::mem::take(&mut st.pending)
        .into_iter()
        .filter(|n| known.contains(n) && !inner.is_busy(n))
        .collect();
    if !names.is_empty() {
        inner.events.servers_updated(&names, Some("server_status"));
    }
}
