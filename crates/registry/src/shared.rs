//! What every part of the registry shares: the server slots, the catalogue snapshot and how it
//! is rebuilt, the event bus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use indexmap::IndexMap;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::events::RegistryEvent;
use crate::options::{ClientRequestHandler, RegistryOptions};
use crate::prepared::ServerLists;
use crate::state::{Desired, ServerState};
use crate::sync::lock;
use crate::{Catalog, ServerDefinition};

/// One configured server: its definition, its state, what the user wants of it, and the token
/// that stops its supervisor.
pub(crate) struct Slot {
    pub(crate) def: ServerDefinition,
    pub(crate) state: Arc<ServerState>,
    pub(crate) desired: watch::Sender<Desired>,
    pub(crate) stop: CancellationToken,
}

pub(crate) struct Inner {
    pub(crate) opts: RegistryOptions,
    pub(crate) servers: Mutex<IndexMap<String, Slot>>,
    pub(crate) catalog: ArcSwap<Catalog>,
    catalog_version: AtomicU64,
    rebuild_lock: Mutex<()>,
    rebuild_requested: AtomicU64,
    rebuilt_through: AtomicU64,
    pub(crate) events: broadcast::Sender<RegistryEvent>,
    pub(crate) client_handler: ArcSwap<Option<Arc<dyn ClientRequestHandler>>>,
    pub(crate) subscriptions: Mutex<IndexMap<(Arc<str>, String), usize>>,
    /// The level last set with `logging/setLevel`, for servers that connect later.
    pub(crate) log_level: Mutex<Option<String>>,
    /// Skill entries relayed downstream, for verifying reads of their files.
    pub(crate) skills: Mutex<crate::skills::SkillIndex>,
    pub(crate) tracker: TaskTracker,
    pub(crate) shutdown: CancellationToken,
    /// The profiles, in config order.
    pub(crate) profiles: ArcSwap<Vec<Arc<crate::Profile>>>,
    /// The latest view of each profile (rebuilt when the catalogue or the profile changed).
    pub(crate) views: Mutex<std::collections::HashMap<String, Arc<crate::View>>>,
    /// Figures of calls no server's catalogue routes.
    pub(crate) observer: crate::observe::Observer,
}

impl Inner {
    pub(crate) fn new(opts: RegistryOptions) -> Inner {
        Inner {
            opts,
            servers: Mutex::new(IndexMap::new()),
            catalog: ArcSwap::from_pointee(Catalog::default()),
            catalog_version: AtomicU64::new(0),
            rebuild_lock: Mutex::new(()),
            rebuild_requested: AtomicU64::new(0),
            rebuilt_through: AtomicU64::new(0),
            events: broadcast::channel(1024).0,
            client_handler: ArcSwap::from_pointee(None),
            subscriptions: Mutex::new(IndexMap::new()),
            log_level: Mutex::new(None),
            skills: Mutex::new(Default::default()),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            profiles: ArcSwap::from_pointee(Vec::new()),
            views: Mutex::new(std::collections::HashMap::new()),
            observer: crate::observe::Observer::default(),
        }
    }
}

pub(crate) fn rebuild_catalog(inner: &Inner) {
    // Coalesce: many servers connecting at once each ask for a rebuild; one build that starts
    // after a request covers it, so the others return at once instead of rebuilding again.
    let ticket = inner.rebuild_requested.fetch_add(1, Ordering::SeqCst) + 1;
    let _building = lock(&inner.rebuild_lock);
    if inner.rebuilt_through.load(Ordering::SeqCst) >= ticket {
        return;
    }
    let through = inner.rebuild_requested.load(Ordering::SeqCst);
    let lists: Vec<ServerLists> = lock(&inner.servers)
        .values()
        .filter_map(|s| {
            let lists = s.state.lists_if_connected(&s.def)?;
            crate::observe::forget_unlisted(&s.state);
            Some(lists)
        })
        .collect();
    let version = inner.catalog_version.fetch_add(1, Ordering::Relaxed) + 1;
    let new = Arc::new(Catalog::build(version, &lists));
    let old = inner.catalog.swap(new.clone());
    inner.rebuilt_through.store(through, Ordering::SeqCst);
    for c in new
        .collisions()
        .iter()
        .filter(|c| !old.collisions().contains(c))
    {
        tracing::warn!(
            kind = c.kind, wanted = %c.wanted, kept_by = %c.kept_by, server = %c.server, exposed_as = %c.exposed_as,
            "name collision: {} `{}` of server `{}` is exposed as `{}` because `{}` already has it",
            c.kind, c.wanted, c.server, c.exposed_as, c.kept_by
        );
    }
    use crate::CatalogList::*;
    let changed = |a: crate::CatalogList| !old.same_list(&new, a);
    let tools = changed(Tools);
    let resources = changed(Resources) || changed(ResourceTemplates);
    let prompts = changed(Prompts);
    if tools || resources || prompts {
        let _ = inner.events.send(RegistryEvent::CatalogChanged {
            tools,
            resources,
            prompts,
        });
    }
}
