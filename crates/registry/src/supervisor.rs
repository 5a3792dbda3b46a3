//! One task per server: connect, list, watch, restart with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use mcp_hub_protocol::{Notification, methods};
use mcp_hub_transport::{ClientSession, RequestError, RequestOptions};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::connect::{Attempt, UNAUTHORIZED, connect};
use crate::lists::{refresh_lists, session_name};
use crate::shared::{Inner, rebuild_catalog};
use crate::state::{Desired, ServerState};
use crate::sync::lock;
use crate::{ListKind, RegistryEvent, ServerDefinition, ServerStatus};

const TARGET: &str = "mcp_hub::registry";

fn emit_status(inner: &Inner, state: &ServerState) {
    let s = state.snapshot();
    let _ = inner.events.send(RegistryEvent::ServerStatus {
        server: Arc::from(s.name.as_str()),
        status: s.status,
    });
}

/// Upstream subscriptions live in the upstream's session, so a server that restarted (a crash,
/// a reload, a stop and start) knows none of them: every URI the hub's clients still hold is
/// subscribed again, in the background so a slow upstream does not hold up its notifications.
fn resubscribe(inner: &Inner, name: &str, session: &ClientSession) {
    let uris: Vec<String> = lock(&inner.subscriptions)
        .keys()
        .filter(|(server, _)| &**server == name)
        .map(|(_, uri)| uri.clone())
        .collect();
    if uris.is_empty() {
        return;
    }
    let (session, name) = (session.clone(), name.to_owned());
    inner.tracker.spawn(async move {
        for uri in uris {
            let p = serde_json::value::to_raw_value(&serde_json::json!({ "uri": uri }))
                .expect("a JSON object serializes");
            let o = RequestOptions {
                timeout: Some(Duration::from_secs(10)),
                ..Default::default()
            };
            if let Err(e) = session
                .request(methods::RESOURCES_SUBSCRIBE, Some(p), o)
                .await
            {
                // The resource may be gone from the new process; its subscribers keep their
                // subscription and simply hear nothing, as for a resource that never changes.
                tracing::debug!(target: TARGET, server = %name, %uri,
                    "re-subscribing after a reconnect failed: {e}");
            }
        }
    });
}

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() {
        u16::from_le_bytes(b)
    } else {
        0
    };
    // ±20 %, so servers that failed together do not all come back at the same instant.
    let factor = 0.8 + 0.4 * (f64::from(r) / f64::from(u16::MAX));
    d.mul_f64(factor)
}

/// Sleeps for the backoff, or less if the user asks for something. Returns false on shutdown.
async fn backoff_sleep(
    d: Duration,
    desired: &mut watch::Receiver<Desired>,
    stop: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(jitter(d)) => true,
        r = desired.changed() => r.is_ok(),
    }
}

/// Logs a failed attempt. The first failure of a run (and any failure whose reason differs from
/// the previous one) is an `error` naming the server, as the Node hub logs it, so editor plugins
/// list it among their issues; a retry failing the same way again is only a debug line, so a
/// server that stays down does not flood the log.
fn log_failure(name: &str, reason: &str, next: &str, previous: &mut Option<String>) {
    if previous.as_deref() == Some(reason) {
        tracing::debug!(target: TARGET, server = %name, error = %reason,
            "'{name}' still failing: {reason}; {next}");
    } else {
        tracing::error!(target: TARGET, server = %name, error = %reason, code = "CONNECTION_ERROR",
            "Failed to connect to \"{name}\" MCP server: {reason}; {next}");
    }
    *previous = Some(reason.to_owned());
}

pub(crate) async fn run(
    inner: Arc<Inner>,
    def: ServerDefinition,
    state: Arc<ServerState>,
    mut desired: watch::Receiver<Desired>,
    stop: CancellationToken,
) {
    let opts = inner.opts.clone();
    let name = def.name.as_str();
    let mut backoff = opts.backoff_initial;
    // The reason of the last failed attempt since the server last connected or was asked to
    // start, so that repeating the same failure is not announced again.
    let mut last_failure: Option<String> = None;
    'outer: loop {
        // Idle until asked to run.
        loop {
            let d = *desired.borrow_and_update();
            if d.run {
                break;
            }
            let status = if d.disabled {
                ServerStatus::Disabled
            } else {
                ServerStatus::Disconnected
            };
            let was = state.snapshot().status;
            state.update(|s| {
                s.status = status;
                s.connected_at = None;
                s.pid = None;
                s.transport_in_use = None;
                if status == ServerStatus::Disabled {
                    s.error = None;
                }
            });
            if was != status {
                emit_status(&inner, &state);
            }
            last_failure = None;
            state.attempts_done.fetch_add(1, Ordering::SeqCst);
            state.changed.send_replace(());
            tokio::select! {
                _ = stop.cancelled() => break 'outer,
                r = desired.changed() => if r.is_err() { break 'outer },
            }
        }
        let epoch = desired.borrow().epoch;
        if epoch != state.started_epoch() {
            // A start request: whatever failed before gets a fresh chance, and is reported anew.
            last_failure = None;
        }
        state.begin_attempt(epoch);
        let attempt_started = Instant::now();
        state.update(|s| {
            s.status = ServerStatus::Connecting;
            s.last_started = Some(SystemTime::now());
            s.error = None;
        });
        emit_status(&inner, &state);
        if last_failure.is_none() {
            tracing::info!(target: TARGET, server = %name, "Initializing MCP server '{name}'");
        } else {
            tracing::debug!(target: TARGET, server = %name, "Retrying MCP server '{name}'");
        }

        let attempt = tokio::select! {
            _ = stop.cancelled() => break 'outer,
            a = connect(&inner, &def) => a,
            _ = wait_for_change(&mut desired, epoch) => continue 'outer,
        };
        let (session, mut notes) = match attempt {
            Attempt::Connected(s, n) => (s, n),
            Attempt::Retry(reason) => {
                let next = format!("retrying in ~{backoff:?}");
                log_failure(name, &reason, &next, &mut last_failure);
                fail(&inner, &state, ServerStatus::Disconnected, reason, None);
                if !backoff_sleep(backoff, &mut desired, &stop).await {
                    break 'outer;
                }
                backoff = (backoff * 2).min(opts.backoff_max);
                state.update(|s| s.restarts += 1);
                continue 'outer;
            }
            Attempt::Fatal(reason) => {
                let next = "not retrying until its config changes or it is started again";
                log_failure(name, &reason, next, &mut last_failure);
                fail(&inner, &state, ServerStatus::Disconnected, reason, None);
                if !wait_for_request(&mut desired, &stop).await {
                    break 'outer;
                }
                continue 'outer;
            }
            Attempt::Unauthorized(reason, url) => {
                tracing::warn!(target: TARGET, server = %name, "Server '{name}' requires authorization");
                fail(&inner, &state, ServerStatus::Unauthorized, reason, url);
                if !wait_for_request(&mut desired, &stop).await {
                    break 'outer;
                }
                continue 'outer;
            }
        };

        *lock(&state.session) = Some(session.clone());
        *lock(&state.list_overflow) = None;
        let level = lock(&inner.log_level).clone();
        if let Some(level) = level {
            // A level a client set before this server (re)connected applies to it too.
            crate::all_servers::apply_log_level(&session, &level).await;
        }
        refresh_lists(&inner, &state, &session, None).await;
        let overflow = lock(&state.list_overflow).take();
        if let Some(reason) = overflow {
            session.close().await;
            *lock(&state.session) = None;
            fail(&inner, &state, ServerStatus::Disconnected, reason, None);
            if !wait_for_request(&mut desired, &stop).await {
                break 'outer;
            }
            continue 'outer;
        }
        let init = session.initialize_result().clone();
        state.calls.set_connect_duration(attempt_started.elapsed());
        state.finish_attempt(
            || rebuild_catalog(&inner),
            |s| {
                s.status = ServerStatus::Connected;
                s.error = None;
                s.authorization_url = None;
                s.connected_at = Some(Instant::now());
                s.server_info = serde_json::to_value(&init.server_info).ok();
                s.instructions = init.instructions.clone();
                s.capabilities = Some(init.capabilities.clone());
                s.protocol_version = Some(init.protocol_version.clone());
                s.pid = session.pid();
                s.transport_in_use = Some(session.transport_kind());
            },
        );
        emit_status(&inner, &state);
        last_failure = None;
        tracing::info!(target: TARGET, server = %name, transport = session.transport_kind(),
            "'{name}' MCP server connected");
        resubscribe(&inner, name, &session);
        let connected_at = Instant::now();

        let mut ping = opts
            .ping_interval
            .map(|p| tokio::time::interval_at(tokio::time::Instant::now() + p, p));
        let mut missed_pings = 0u32;
        let mut notes_open = true;
        let reason = loop {
            tokio::select! {
                reason = session.closed() => break Some(def.connector.redact(reason.to_string())),
                n = notes.recv(), if notes_open => match n {
                    Some(n) => on_notification(&inner, &state, &session, n).await,
                    None => notes_open = false,
                },
                _ = async { match ping.as_mut() { Some(p) => { p.tick().await; } None => std::future::pending().await } } => {
                    let o = RequestOptions { timeout: Some(Duration::from_secs(10)), ..Default::default() };
                    match session.request(methods::PING, None, o).await {
                        Ok(_) => missed_pings = 0,
                        Err(RequestError::Rpc(_)) => missed_pings = 0, // it answered
                        Err(e) => {
                            let e = crate::redact::request_error(e, &*def.connector);
                            missed_pings += 1;
                            tracing::warn!(target: TARGET, server = %name, "'{name}' did not answer a ping ({missed_pings}): {e}");
                            if missed_pings >= 2 {
                                session.close().await;
                                break Some(format!("stopped answering pings: {e}"));
                            }
                        }
                    }
                }
                _ = state.auth_needed.notified() => {
                    let challenge = lock(&state.auth_challenge).take();
                    session.close().await;
                    *lock(&state.session) = None;
                    tracing::warn!(target: TARGET, server = %name, "'{name}' refused the hub's credentials");
                    let (status, reason, url) = match challenge {
                        Some(c) => match def.connector.authorization_url(&c).await {
                            Ok(url) => (ServerStatus::Unauthorized, UNAUTHORIZED.to_owned(), url),
                            Err(reason) => (ServerStatus::Disconnected, def.connector.redact(reason), None),
                        },
                        None => (ServerStatus::Unauthorized, UNAUTHORIZED.to_owned(), None),
                    };
                    fail(&inner, &state, status, reason, url);
                    if !wait_for_request(&mut desired, &stop).await {
                        break 'outer;
                    }
                    continue 'outer;
                }
                r = desired.changed() => {
                    if r.is_err() { session.close().await; break None; }
                    let d = *desired.borrow();
                    if !d.run || d.epoch != epoch {
                        session.close().await;
                        break None;
                    }
                }
                _ = stop.cancelled() => {
                    session.close().await;
                    *lock(&state.session) = None;
                    break 'outer;
                }
            }
        };
        *lock(&state.session) = None;
        state.update(|s| {
            s.connected_at = None;
            s.pid = None;
        });
        match reason {
            None => {
                // Stopped or restarted on request: the idle loop or the next attempt sets status.
                state.instances.close_all().await;
                state.update(|s| s.status = ServerStatus::Disconnected);
                rebuild_catalog(&inner);
                emit_status(&inner, &state);
            }
            Some(reason) => {
                if connected_at.elapsed() >= opts.healthy_after {
                    backoff = opts.backoff_initial;
                }
                tracing::warn!(target: TARGET, server = %name, error = %reason, code = "CONNECTION_LOST",
                    "'{name}' connection lost: {reason}; reconnecting in ~{backoff:?}");
                fail(&inner, &state, ServerStatus::Disconnected, reason, None);
                if !backoff_sleep(backoff, &mut desired, &stop).await {
                    break 'outer;
                }
                backoff = (backoff * 2).min(opts.backoff_max);
                state.update(|s| s.restarts += 1);
            }
        }
    }
    let leftover = lock(&state.session).take();
    if let Some(s) = leftover {
        s.close().await;
    }
    state.instances.shut_down().await;
    state.update(|s| {
        s.status = ServerStatus::Disconnected;
        s.connected_at = None;
        s.pid = None;
    });
    rebuild_catalog(&inner);
    state.exited.store(true, Ordering::SeqCst);
    state.changed.send_replace(());
}

/// Ends an attempt in a failure state, with the catalogue rebuilt before anyone sees it.
fn fail(
    inner: &Inner,
    state: &ServerState,
    status: ServerStatus,
    reason: String,
    url: Option<String>,
) {
    state.finish_attempt(
        || rebuild_catalog(inner),
        |s| {
            s.status = status;
            s.error = Some(reason);
            s.authorization_url = url;
            s.connected_at = None;
            s.pid = None;
            s.transport_in_use = None;
        },
    );
    emit_status(inner, state);
}

async fn wait_for_change(desired: &mut watch::Receiver<Desired>, epoch: u64) {
    loop {
        if desired.changed().await.is_err() {
            return std::future::pending().await;
        }
        let d = *desired.borrow();
        if !d.run || d.epoch != epoch {
            return;
        }
    }
}

/// Waits for the user to ask for a (re)start. Returns false on shutdown.
async fn wait_for_request(
    desired: &mut watch::Receiver<Desired>,
    stop: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        r = desired.changed() => r.is_ok(),
    }
}

async fn on_notification(
    inner: &Inner,
    state: &ServerState,
    session: &ClientSession,
    n: Notification,
) {
    let server: Arc<str> = Arc::from(session_name(state).as_str());
    match n.method.as_str() {
        methods::TOOLS_LIST_CHANGED => {
            refresh_lists(inner, state, session, Some(ListKind::Tools)).await
        }
        methods::RESOURCES_LIST_CHANGED => {
            refresh_lists(inner, state, session, Some(ListKind::Resources)).await
        }
        methods::PROMPTS_LIST_CHANGED => {
            refresh_lists(inner, state, session, Some(ListKind::Prompts)).await
        }
        methods::RESOURCES_UPDATED => {
            let uri = n
                .params
                .as_ref()
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .and_then(|v| v.get("uri").and_then(Value::as_str).map(str::to_owned));
            if let Some(uri) = uri {
                let exposed = inner.catalog.load().expose_uri(&server, &uri);
                let _ = inner.events.send(RegistryEvent::ResourceUpdated {
                    server,
                    uri: exposed,
                });
            }
        }
        _ => {
            let _ = inner.events.send(RegistryEvent::ServerNotification {
                server,
                notification: n,
            });
        }
    }
}
