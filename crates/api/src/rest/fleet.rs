//! Cluster mode for operators (`docs/SCALE-OUT.md`): `/api/servers` with every replica's status
//! of each server, `/api/events` with the other replicas' events, start/stop/refresh applied by
//! every replica. Only runs once [`RestApi::set_fleet`] was called (`--cluster`); a single hub
//! never gets here.
//!
//! The top-level fields of a server stay what this replica sees (the Node hub's shape, and the
//! replica whose connection answers the tools a client calls here); `replicas` adds every live
//! replica's own status. A command is applied here first, then published; the answer does not
//! wait for the other replicas (it says how many received the command), and only this replica
//! writes `disabled` to the config file.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use mcp_hub_registry::{RegistryEvent, ServerSnapshot, ServerStatus};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::input::required_str;
use super::reply::{Failure, Reply};
use super::shape::server_json;
use super::{Inner, RestApi};
use crate::body::{self, Body};
use crate::{Fleet, FleetMessage};

/// Status changes within this window are published as one snapshot.
const STATUS_DEBOUNCE: Duration = Duration::from_millis(100);

impl RestApi {
    /// Joins the API to its cluster; see the module doc. A second call is ignored.
    pub(crate) fn set_fleet(&self, fleet: Arc<dyn Fleet>) {
        let inner = &self.inner;
        if inner.fleet.set(fleet.clone()).is_err() {
            return;
        }
        inner.events.set_relay(fleet.replica(), fleet.clone());
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(target: "mcp_hub::cluster", "no async runtime: the other replicas are not heard");
            return;
        };
        let weak = Arc::downgrade(inner);
        let shutdown = inner.shutdown.clone();
        handle.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = run(weak, fleet) => {}
            }
        });
    }
}

/// Publishes this replica's statuses when they change, and serves what the others publish.
async fn run(weak: Weak<Inner>, fleet: Arc<dyn Fleet>) {
    let Some(mut registry_events) = weak.upgrade().map(|i| i.registry.events()) else {
        return;
    };
    let mut incoming = fleet.listen();
    let mut due = Some(tokio::time::Instant::now());
    loop {
        tokio::select! {
            ev = registry_events.recv() => match ev {
                Ok(RegistryEvent::ServerStatus { .. }) | Err(RecvError::Lagged(_)) => {
                    due.get_or_insert_with(|| tokio::time::Instant::now() + STATUS_DEBOUNCE);
                }
                Ok(_) => {}
                Err(RecvError::Closed) => return,
            },
            _ = async { if let Some(at) = due { tokio::time::sleep_until(at).await } }, if due.is_some() => {
                due = None;
                let Some(inner) = weak.upgrade() else { return };
                fleet.publish_status(status_body(&inner.registry.snapshots()));
            }
            m = async { match incoming.as_mut() { Some(rx) => rx.recv().await, None => None } }, if incoming.is_some() => {
                let Some(m) = m else { incoming = None; continue };
                let Some(inner) = weak.upgrade() else { return };
                if m.command {
                    // Its own task: a slow start must not hold the other messages.
                    tokio::spawn(async move { inner.apply(m).await });
                } else {
                    inner.relay(&m);
                }
            }
        }
    }
}

/// What this replica publishes about its servers.
fn status_body(snaps: &[ServerSnapshot]) -> String {
    let servers: Vec<Value> = snaps.iter().map(|s| entry(s, None)).collect();
    json!({ "servers": servers }).to_string()
}

/// One replica's status of one server (`replica` set when shown in `replicas`).
fn entry(s: &ServerSnapshot, replica: Option<(&str, bool)>) -> Value {
    let mut v = Map::new();
    if let Some((id, local)) = replica {
        v.insert("replica".into(), id.into());
        v.insert("local".into(), local.into());
    } else {
        v.insert("name".into(), s.name.clone().into());
    }
    v.insert("status".into(), s.status.as_str().into());
    v.insert("error".into(), s.error.clone().into());
    v.insert(
        "lastStarted".into(),
        s.last_started.map(body::iso_time).into(),
    );
    v.insert("pid".into(), s.pid.into());
    v.insert("restarts".into(), s.restarts.into());
    Value::Object(v)
}

/// The cluster's view: per server name, every live replica's entry (this one's from its own
/// registry, the others' from what they published), and the `cluster` member.
struct View {
    per_server: std::collections::HashMap<String, Vec<Value>>,
    cluster: Value,
}

impl Inner {
    pub(super) async fn servers_view(&self) -> Response<Body> {
        let Some(fleet) = self.fleet.get() else {
            return self.servers();
        };
        let snaps = self.registry.snapshots();
        let view = view(fleet.as_ref(), &snaps).await;
        let mut parts = vec![Bytes::from_static(b"{\"servers\":[")];
        for (i, s) in snaps.iter().enumerate() {
            if i > 0 {
                parts.push(Bytes::from_static(b","));
            }
            parts.extend(with_replicas(s, &view));
        }
        parts.push(Bytes::from(format!(
            "],\"cluster\":{},\"timestamp\":{}}}",
            view.cluster,
            Value::from(body::now_iso())
        )));
        body::json_chunks(StatusCode::OK, parts)
    }

    pub(super) async fn info_view(&self, req: &Map<String, Value>) -> Reply {
        let Some(fleet) = self.fleet.get() else {
            return self.info(req);
        };
        let name = required_str(req, "server_name", "Missing server name")?;
        let snap = self
            .registry
            .snapshot(name)
            .ok_or_else(|| Failure::server_not_found(name))?;
        let view = view(fleet.as_ref(), std::slice::from_ref(&snap)).await;
        let mut parts = vec![Bytes::from_static(b"{\"server\":")];
        parts.extend(with_replicas(&snap, &view));
        parts.push(Bytes::from(format!(
            ",\"cluster\":{},\"timestamp\":{}}}",
            view.cluster,
            Value::from(body::now_iso())
        )));
        Ok(body::json_chunks(StatusCode::OK, parts))
    }

    /// Publishes a command this replica just applied; the `cluster` member of the answer.
    pub(super) async fn spread(&self, command: Value) -> Option<Value> {
        let fleet = self.fleet.get()?;
        Some(match fleet.publish_command(&command.to_string()).await {
            Ok(n) => json!({"replica": fleet.replica(), "notified": n}),
            Err(e) => {
                tracing::warn!(target: "mcp_hub::cluster", "could not send a command to the other replicas: {e}");
                json!({"replica": fleet.replica(), "notified": 0, "error": e})
            }
        })
    }

    /// Applies another replica's command to this replica's connections. `disabled` is not
    /// written to the config file: the replica that received the REST call did.
    async fn apply(&self, m: FleetMessage) {
        let Ok(Value::Object(cmd)) = serde_json::from_str::<Value>(&m.body) else {
            tracing::debug!(target: "mcp_hub::cluster", from = %m.replica, "a command that is not an object; ignored");
            return;
        };
        let op = cmd.get("op").and_then(Value::as_str).unwrap_or("");
        if op == "refresh_all" {
            tracing::info!(target: "mcp_hub::cluster", from = %m.replica, "refreshing every server, as another replica did");
            for n in self.registry.names() {
                let _ = self.registry.refresh(&n).await;
            }
            return;
        }
        let Some(name) = cmd.get("server").and_then(Value::as_str) else {
            tracing::debug!(target: "mcp_hub::cluster", from = %m.replica, "a command without a server; ignored");
            return;
        };
        let Some(snap) = self.registry.snapshot(name) else {
            tracing::info!(target: "mcp_hub::cluster", from = %m.replica, server = name, "a command for a server this replica does not have; ignored");
            return;
        };
        let _busy = self.busy(name);
        let result = match op {
            "start" => self.registry.start(name).await,
            "stop" => {
                let disable = cmd.get("disable").and_then(Value::as_bool) == Some(true);
                let was_disabled = snap.status == ServerStatus::Disabled;
                self.registry.stop(name, disable || was_disabled).await
            }
            "refresh" => self.registry.refresh(name).await,
            // A login on another replica: its tokens are shared, so a server this replica
            // could not authorize connects now; one that is up (or stopped) stays as it is.
            "authorized" if snap.status == ServerStatus::Unauthorized => {
                self.registry.start(name).await
            }
            "authorized" => return,
            _ => {
                tracing::debug!(target: "mcp_hub::cluster", from = %m.replica, op, "an unknown command; ignored");
                return;
            }
        };
        tracing::info!(target: "mcp_hub::cluster", from = %m.replica, server = name, op, ok = result.is_ok(), "applied another replica's command");
        if op != "refresh" {
            self.announce(&[name.to_owned()], None);
        }
    }

    /// Passes another replica's event to this replica's `/api/events` clients, if it is one
    /// that is relayed and its data is one line of JSON tagged with that replica.
    fn relay(&self, m: &FleetMessage) {
        #[derive(serde::Deserialize)]
        struct Relayed<'a> {
            event: &'a str,
            #[serde(borrow)]
            data: &'a serde_json::value::RawValue,
        }
        let Ok(r) = serde_json::from_str::<Relayed<'_>>(&m.body) else {
            tracing::debug!(target: "mcp_hub::cluster", from = %m.replica, "an event that is not {{event, data}}; ignored");
            return;
        };
        let data = r.data.get();
        let tag = format!("{{\"replica\":{}", Value::from(m.replica.as_str()));
        if !matches!(r.event, "subscription_event" | "log")
            || !data.starts_with(&tag)
            || data.contains(['\n', '\r'])
        {
            tracing::debug!(target: "mcp_hub::cluster", from = %m.replica, "an event this replica does not relay; ignored");
            return;
        }
        self.events.broadcast_remote(r.event, data);
    }
}

async fn view(fleet: &dyn Fleet, snaps: &[ServerSnapshot]) -> View {
    let me = fleet.replica();
    let mut per_server: std::collections::HashMap<String, Vec<Value>> =
        snaps.iter().map(|s| (s.name.clone(), Vec::new())).collect();
    let (listed, error) = match fleet.statuses().await {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut ids: Vec<String> = listed.iter().map(|r| r.replica.clone()).collect();
    if !ids.iter().any(|i| i == me) {
        ids.push(me.to_owned());
        ids.sort();
    }
    for id in &ids {
        if id == me {
            for s in snaps {
                if let Some(v) = per_server.get_mut(&s.name) {
                    v.push(entry(s, Some((me, true))));
                }
            }
            continue;
        }
        let Some(body) = listed
            .iter()
            .find(|r| &r.replica == id)
            .and_then(|r| r.body.as_deref())
        else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(body) else {
            continue;
        };
        for s in v["servers"].as_array().into_iter().flatten() {
            let Some(name) = s["name"].as_str() else {
                continue;
            };
            if let (Some(list), Some(obj)) = (per_server.get_mut(name), s.as_object()) {
                let mut e = Map::new();
                e.insert("replica".into(), id.as_str().into());
                e.insert("local".into(), false.into());
                for (k, v) in obj {
                    if k != "name" {
                        e.insert(k.clone(), v.clone());
                    }
                }
                list.push(Value::Object(e));
            }
        }
    }
    let mut cluster = json!({"replica": me, "replicas": ids});
    if let Some(e) = error {
        cluster["error"] = e.into();
    }
    View {
        per_server,
        cluster,
    }
}

/// The server object with `replicas` as its last member.
fn with_replicas(s: &ServerSnapshot, view: &View) -> Vec<Bytes> {
    let mut parts = server_json(s);
    let replicas = view
        .per_server
        .get(&s.name)
        .map(|l| Value::Array(l.clone()))
        .unwrap_or_else(|| Value::Array(Vec::new()));
    if let Some(last) = parts.pop() {
        // The object's closing brace goes after the new member.
        let trimmed = last.strip_suffix(b"}").unwrap_or(&last);
        let mut tail = trimmed.to_vec();
        tail.extend_from_slice(format!(",\"replicas\":{replicas}}}").as_bytes());
        parts.push(Bytes::from(tail));
    }
    parts
}
