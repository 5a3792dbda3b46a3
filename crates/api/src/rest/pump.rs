//! The task that feeds `/api/events`: heartbeats, the core's hub events (state, logs,
//! subscription events), and the registry's events turned into the Node hub's
//! `*_list_changed`, `servers_updated` and upstream `log` events.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

use mcp_hub_registry::{ListKind, RegistryEvent};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Inner, OWN_CHANGE_GRACE};
use crate::{HubEvent, HubState};

/// Status changes within this window become one `servers_updated`. Long enough to merge a
/// crash and the quick reconnect after it (first backoff 0.5 s), since mcphub.nvim pops up a
/// notification for each one.
const COALESCE: Duration = Duration::from_secs(1);
/// Longest a config reload may keep status announcements quiet if its `servers_updated` never
/// comes (a reload waits for its servers up to the connect timeout).
const RELOAD_QUIET_MAX: Duration = Duration::from_secs(120);
/// Upstream log messages forwarded per server: a burst of this many, then this many per second.
/// The rest are counted and reported in one line, so a chatty server cannot fill the clients'
/// queues (a full queue drops the client).
const UPSTREAM_LOG_BURST: f64 = 100.0;
const UPSTREAM_LOGS_PER_SEC: f64 = 50.0;

#[derive(Default)]
struct State {
    /// When to look at the servers whose status changed on their own.
    deadline: Option<Instant>,
    /// Until when status changes are the doing of a config reload or a hub restart, which
    /// announce themselves.
    quiet_until: Option<Instant>,
    /// Per server: the upstream log budget.
    log_budget: HashMap<String, Budget>,
}

struct Budget {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

pub(super) fn spawn(inner: &std::sync::Arc<Inner>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(target: "mcp_hub::api", "no async runtime: /api/events gets no events");
        return;
    };
    let weak = std::sync::Arc::downgrade(inner);
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
                        inner.seen.all_dirty(&inner.registry);
                        schedule(&mut st);
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

fn schedule(st: &mut State) {
    st.deadline.get_or_insert_with(|| Instant::now() + COALESCE);
}

fn on_registry_event(inner: &Inner, st: &mut State, ev: RegistryEvent) {
    match ev {
        RegistryEvent::ServerStatus { server, status } if inner.seen.note(&server, status) => {
            schedule(st);
        }
        RegistryEvent::ListChanged { server, kind } => list_changed(inner, &server, kind),
        RegistryEvent::ServerNotification {
            server,
            notification,
        } if notification.method == mcp_hub_protocol::methods::LOGGING_MESSAGE => {
            let params: Value = notification
                .params
                .as_ref()
                .and_then(|p| serde_json::from_str(p.get()).ok())
                .unwrap_or(Value::Null);
            upstream_log(inner, st, &server, &params);
        }
        _ => {}
    }
}

fn list_changed(inner: &Inner, server: &str, kind: ListKind) {
    if !inner.events.wanted() {
        return;
    }
    let Some(snap) = inner.registry.snapshot(server) else {
        return;
    };
    // Lists fetched while connecting arrive with the connection itself.
    if snap.status != mcp_hub_registry::ServerStatus::Connected {
        return;
    }
    // The lists go in as the JSON text the registry keeps: a large catalogue is not turned
    // into a value tree for each change.
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
        Value::from(server)
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

/// An upstream `notifications/message` as a `log` event with the Node hub's message
/// (`["<server>" server <level> log]: <data as JSON>`). Levels map onto the four log types, capped at
/// `warn`: an upstream's own error is not a problem of the hub (mcphub.nvim files `error` lines
/// as hub issues).
fn upstream_log(inner: &Inner, st: &mut State, server: &str, params: &Value) {
    if !inner.events.wanted() {
        return;
    }
    let now = Instant::now();
    let budget = st
        .log_budget
        .entry(server.to_owned())
        .or_insert_with(|| Budget {
            tokens: UPSTREAM_LOG_BURST,
            at: now,
            dropped: 0,
        });
    let refill = now.duration_since(budget.at).as_secs_f64() * UPSTREAM_LOGS_PER_SEC;
    budget.tokens = (budget.tokens + refill).min(UPSTREAM_LOG_BURST);
    budget.at = now;
    if budget.tokens < 1.0 {
        budget.dropped += 1;
        return;
    }
    budget.tokens -= 1.0;
    let dropped = std::mem::take(&mut budget.dropped);
    if dropped > 0 {
        inner.events.broadcast(
            "log",
            json!({"type": "warn",
                "message": format!("'{server}': {dropped} log messages from the server were not forwarded (too many)"),
                "data": {"server": server, "dropped": dropped}}),
        );
    }
    let level = params
        .get("level")
        .and_then(Value::as_str)
        .unwrap_or("info");
    let kind = match level {
        "debug" => "debug",
        "info" | "notice" => "info",
        _ => "warn",
    };
    // JSON, as the Node hub shows it (a string in quotes), but on one line.
    let text = params.get("data").map(Value::to_string).unwrap_or_default();
    let mut data = Map::new();
    data.insert("server".into(), server.into());
    data.insert("level".into(), level.into());
    if let Some(logger) = params.get("logger") {
        data.insert("logger".into(), logger.clone());
    }
    data.insert(
        "data".into(),
        params.get("data").cloned().unwrap_or(Value::Null),
    );
    inner.events.broadcast(
        "log",
        json!({"type": kind, "message": format!("[\"{server}\" server {level} log]: {text}"), "data": data}),
    );
}

fn on_hub_event(inner: &Inner, st: &mut State, ev: HubEvent) {
    match ev {
        HubEvent::State(state) => {
            if matches!(state, HubState::Ready | HubState::Restarted) {
                // Clients re-read everything on `ready`/`restarted`.
                inner.seen.refreshed(&inner.registry);
                st.quiet_until = Some(Instant::now() + OWN_CHANGE_GRACE);
            }
            inner.events.broadcast("hub_state", inner.hub_state(state));
        }
        HubEvent::Log {
            level,
            message,
            data,
            code,
        } => {
            let mut payload = json!({"type": level, "message": message, "data": data});
            if let Some(code) = code {
                payload["code"] = code.into();
            }
            inner.events.broadcast("log", payload);
        }
        HubEvent::Subscription(payload) => {
            match payload.get("type").and_then(Value::as_str) {
                Some("servers_updating") => {
                    st.quiet_until = Some(Instant::now() + RELOAD_QUIET_MAX);
                }
                Some("servers_updated") => {
                    st.quiet_until = Some(Instant::now() + OWN_CHANGE_GRACE);
                    inner.seen.refreshed(&inner.registry);
                }
                _ => {}
            }
            inner
                .events
                .broadcast("subscription_event", Value::Object(payload));
        }
    }
}

/// Whether status changes are being announced by whoever causes them: a config reload
/// (`servers_updating` … `servers_updated`) or a hub (re)start (`hub_state`).
fn quiet(inner: &Inner, st: &State) -> bool {
    !matches!(inner.control.state(), HubState::Ready | HubState::Restarted)
        || st.quiet_until.is_some_and(|t| t > Instant::now())
}

fn flush(inner: &Inner, st: &mut State) {
    st.deadline = None;
    if quiet(inner, st) {
        schedule(st);
        return;
    }
    let f = inner.seen.flush(&inner.registry, |n| inner.is_busy(n));
    if !f.announce.is_empty() {
        inner.announce(&f.announce, Some("server_status"));
    }
    if f.more {
        schedule(st);
    }
}
