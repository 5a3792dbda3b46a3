//! Per-session instances of servers configured with `isolation: "session"`.
//!
//! Each downstream session that calls such a server gets its own upstream connection (for stdio,
//! its own process), started on its first call. Everything that instance sends (sampling,
//! elicitation, roots, logs) can only be that session's, so it is delivered to it whatever the
//! wire can tell. An instance is closed when its session ends, when it has been idle for the
//! registry's `instance_idle_timeout`, or when its server is stopped, restarted or removed; at
//! most `max_instances` run at once. The supervisor's own connection still lists the server's
//! tools for the catalogue, so they are listed once however many instances run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_hub_protocol::methods;
use mcp_hub_transport::{ClientFeatures, ClientSession, NotificationStream, Requester};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::all_servers::apply_log_level;
use crate::connect::{UpstreamHandler, session_options};
use crate::shared::Inner;
use crate::sync::lock;
use crate::{Isolation, RegistryEvent, RouteError, ServerDefinition};

/// The instances of one server, keyed by downstream session.
pub(crate) struct InstancePool {
    server: Arc<str>,
    max: usize,
    entries: Arc<Mutex<HashMap<u64, Arc<Instance>>>>,
    reaper_started: AtomicBool,
    stop: CancellationToken,
    tasks: TaskTracker,
}

struct Instance {
    owner: Requester,
    session: OnceCell<Result<ClientSession, String>>,
    last_used: Mutex<Instant>,
    active: AtomicUsize,
}

/// A call's hold on an instance: while it lives the instance is not idle.
pub(crate) struct Lease {
    instance: Arc<Instance>,
    pub(crate) session: ClientSession,
}

impl Drop for Lease {
    fn drop(&mut self) {
        *lock(&self.instance.last_used) = Instant::now();
        self.instance.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InstancePool {
    pub(crate) fn new(server: &str, isolation: Isolation) -> InstancePool {
        InstancePool {
            server: Arc::from(server),
            max: match isolation {
                Isolation::Session { max_instances } => max_instances.max(1),
                Isolation::Shared => 0,
            },
            entries: Arc::new(Mutex::new(HashMap::new())),
            reaper_started: AtomicBool::new(false),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// Instances running (or starting).
    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// The open sessions of the running instances.
    pub(crate) fn sessions(&self) -> Vec<ClientSession> {
        lock(&self.entries)
            .values()
            .filter_map(|i| i.session.get().and_then(|s| s.as_ref().ok()).cloned())
            .collect()
    }

    /// The open session of `session`'s instance, if it runs.
    pub(crate) fn session_of(&self, session: u64) -> Option<ClientSession> {
        let instance = lock(&self.entries).get(&session).cloned()?;
        instance
            .session
            .get()
            .and_then(|s| s.as_ref().ok())
            .cloned()
    }

    /// Log messages of the running instances that reached no client.
    pub(crate) fn unattributed_logs(&self) -> u64 {
        self.sessions().iter().map(|s| s.unattributed_logs()).sum()
    }

    /// The instance of `owner`'s session, started on first use.
    pub(crate) async fn acquire(
        &self,
        inner: &Arc<Inner>,
        def: &ServerDefinition,
        owner: Requester,
    ) -> Result<Lease, RouteError> {
        if self.stop.is_cancelled() {
            return Err(RouteError::ServerNotConnected(self.server.to_string()));
        }
        self.start_reaper(inner.opts.instance_idle_timeout);
        // A dead instance is replaced once; a second failure is reported.
        for _ in 0..2 {
            let instance = {
                let mut entries = lock(&self.entries);
                match entries.get(&owner.session) {
                    Some(i) => i.clone(),
                    None => {
                        if entries.len() >= self.max {
                            return Err(RouteError::Isolation(format!(
                                "server `{}` is isolated per session and already runs its maximum of {} instances; \
                                 end another client session or raise `maxInstances`",
                                self.server, self.max
                            )));
                        }
                        let i = Arc::new(Instance {
                            owner,
                            session: OnceCell::new(),
                            last_used: Mutex::new(Instant::now()),
                            active: AtomicUsize::new(0),
                        });
                        entries.insert(owner.session, i.clone());
                        i
                    }
                }
            };
            instance.active.fetch_add(1, Ordering::SeqCst);
            let lease_of = |session: ClientSession| Lease {
                instance: instance.clone(),
                session,
            };
            let started = instance
                .session
                .get_or_init(|| self.start(inner, def, instance.owner))
                .await
                .clone();
            match started {
                Ok(session) if session.is_open() => return Ok(lease_of(session)),
                Ok(session) => {
                    drop(lease_of(session));
                    self.forget(owner.session, &instance);
                }
                Err(reason) => {
                    instance.active.fetch_sub(1, Ordering::SeqCst);
                    self.forget(owner.session, &instance);
                    return Err(RouteError::Isolation(format!(
                        "could not start an instance of server `{}` for this session: {reason}",
                        self.server
                    )));
                }
            }
        }
        Err(RouteError::Isolation(format!(
            "the instance of server `{}` for this session keeps closing",
            self.server
        )))
    }

    /// Connects a new instance for `owner`, declaring upstream only what `owner` can answer.
    async fn start(
        &self,
        inner: &Arc<Inner>,
        def: &ServerDefinition,
        owner: Requester,
    ) -> Result<ClientSession, String> {
        let spec = def.connector.spec().await?;
        let mut opts = session_options(&inner.opts);
        let f: ClientFeatures = owner.features;
        for (key, has) in [
            ("sampling", f.sampling),
            ("elicitation", f.elicitation),
            ("roots", f.roots),
        ] {
            if !has {
                opts.capabilities.remove(key);
            }
        }
        let handler = Arc::new(UpstreamHandler::new(&self.server, inner, Some(owner)));
        let connecting = ClientSession::connect(spec, opts, handler);
        let (session, notes) = tokio::time::timeout(inner.opts.initialize_timeout, connecting)
            .await
            .map_err(|_| {
                format!(
                    "no answer to initialize within {:?}",
                    inner.opts.initialize_timeout
                )
            })?
            .map_err(|e| e.to_string())?;
        tracing::info!(target: "mcp_hub::registry", server = %self.server, session = owner.session, pid = ?session.pid(), "per-session instance started");
        let level = lock(&inner.log_level).clone();
        if let Some(level) = level {
            apply_log_level(&session, &level).await;
        }
        let events = inner.events.clone();
        let server = self.server.clone();
        self.tasks
            .spawn(forward_notifications(notes, events, server, owner.session));
        Ok(session)
    }

    /// Removes `instance` from the table (if it is still the one there) and closes it.
    fn forget(&self, session: u64, instance: &Arc<Instance>) {
        let removed = {
            let mut entries = lock(&self.entries);
            match entries.get(&session) {
                Some(i) if Arc::ptr_eq(i, instance) => entries.remove(&session),
                _ => None,
            }
        };
        if let Some(i) = removed {
            self.tasks.spawn(close(i));
        }
    }

    /// Closes the instance of a downstream session that ended. Returns when it is closed.
    /// Whether `session` has an instance here.
    pub(crate) fn holds(&self, session: u64) -> bool {
        lock(&self.entries).contains_key(&session)
    }

    pub(crate) async fn release(&self, session: u64) {
        let removed = lock(&self.entries).remove(&session);
        if let Some(i) = removed {
            close(i).await;
        }
    }

    /// Closes every instance (the server stops, restarts or goes away) and waits for them.
    pub(crate) async fn close_all(&self) {
        let all: Vec<Arc<Instance>> = lock(&self.entries).drain().map(|(_, i)| i).collect();
        futures::future::join_all(all.into_iter().map(close)).await;
    }

    /// Stops the pool for good: no new instances, every one closed, every task finished.
    pub(crate) async fn shut_down(&self) {
        self.stop.cancel();
        self.close_all().await;
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.tasks.wait()).await;
    }

    fn start_reaper(&self, idle: Duration) {
        if self.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let period = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        let stop = self.stop.clone();
        let entries = self.entries.clone();
        let tasks = self.tasks.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                let idle_ones: Vec<Arc<Instance>> = {
                    let mut map = lock(&entries);
                    let ids: Vec<u64> = map
                        .iter()
                        .filter(|(_, i)| {
                            i.active.load(Ordering::SeqCst) == 0
                                && lock(&i.last_used).elapsed() >= idle
                                && i.session.initialized()
                        })
                        .map(|(k, _)| *k)
                        .collect();
                    ids.iter().filter_map(|k| map.remove(k)).collect()
                };
                for i in idle_ones {
                    tracing::debug!(target: "mcp_hub::registry", session = i.owner.session, "per-session instance idle, closing");
                    tasks.spawn(close(i));
                }
            }
        });
    }
}

/// Closes an instance, waiting for one that is still starting.
async fn close(instance: Arc<Instance>) {
    let started = instance
        .session
        .get_or_init(|| async { Err("closed before it started".to_owned()) })
        .await;
    if let Ok(session) = started {
        session.close().await;
        tracing::info!(target: "mcp_hub::registry", session = instance.owner.session, "per-session instance closed");
    }
}

/// What an instance sends outside of calls belongs to its session: logs and the like go to it,
/// list changes are ignored (the catalogue follows the supervisor's own connection).
async fn forward_notifications(
    mut notes: NotificationStream,
    events: tokio::sync::broadcast::Sender<RegistryEvent>,
    server: Arc<str>,
    session: u64,
) {
    while let Some(n) = notes.recv().await {
        if n.method.ends_with("/list_changed") || n.method == methods::RESOURCES_UPDATED {
            continue;
        }
        let _ = events.send(RegistryEvent::SessionNotification {
            server: server.clone(),
            session,
            notification: n,
        });
    }
}
