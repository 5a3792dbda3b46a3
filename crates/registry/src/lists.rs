//! Listing what a server offers (every page of tools, resources, templates and prompts) and
//! publishing the lists.

use std::sync::{Arc, Mutex};

use mcp_hub_protocol::methods;
use mcp_hub_transport::{ClientSession, RequestError, RequestOptions};
use serde_json::{Map, Value};

use crate::items::{self, Builder as ItemListBuilder};
use crate::prepared::PreparedList;
use crate::shared::{Inner, rebuild_catalog};
use crate::state::ServerState;
use crate::sync::lock;
use crate::{CatalogList, ItemList, ListKind, RegistryEvent, ServerStatus};

/// Why listing stopped.
enum ListFailure {
    Request(RequestError),
    /// More items than the hub serves (the count seen so far).
    TooMany(usize),
}

impl From<RequestError> for ListFailure {
    fn from(e: RequestError) -> Self {
        ListFailure::Request(e)
    }
}

/// Every page of a list, kept as JSON text (see [`ItemList`]); stops past `max` items.
async fn list_all(
    session: &ClientSession,
    method: &str,
    key: &str,
    max: usize,
) -> Result<ItemList, ListFailure> {
    let mut items = ItemListBuilder::default();
    let mut cursor: Option<String> = None;
    // Bounded: a server that keeps returning cursors cannot keep the hub listing forever.
    for _ in 0..1000 {
        let params = cursor.as_ref().map(|c| {
            let mut m = Map::new();
            m.insert("cursor".into(), Value::String(c.clone()));
            mcp_hub_protocol::to_raw(&m).expect("a map serialises")
        });
        let raw = session
            .request(method, params, RequestOptions::default())
            .await?;
        let bad = |e: serde_json::Error| {
            ListFailure::Request(RequestError::Closed(format!("bad {method} result: {e}")))
        };
        let (page, next) = items::page_parts(raw.get(), key).map_err(bad)?;
        if let Some(page) = page {
            // A member that is not an array lists nothing, as before.
            let _ = items::push_array(&mut items, page);
        }
        if items.len() > max {
            return Err(ListFailure::TooMany(items.len()));
        }
        match next {
            Some(c) if !c.is_empty() && cursor.as_deref() != Some(c.as_str()) => cursor = Some(c),
            _ => return Ok(items.finish()),
        }
    }
    Ok(items.finish())
}

/// Re-lists what a server offers (everything, or one kind) and rebuilds the catalogue.
pub(crate) async fn refresh_lists(
    inner: &Inner,
    state: &ServerState,
    session: &ClientSession,
    only: Option<ListKind>,
) {
    let caps = session.initialize_result().capabilities.clone();
    let want = |k: ListKind, cap: &str| only.is_none_or(|o| o == k) && caps.contains_key(cap);
    let max = inner.opts.max_list_items;
    let overflow = Mutex::new(None);
    let get = |want: bool, method: &'static str, key: &'static str| {
        let overflow = &overflow;
        async move {
            if !want {
                return None;
            }
            match list_all(session, method, key, max).await {
                Ok(v) => Some(v),
                Err(ListFailure::TooMany(n)) => {
                    *lock(overflow) = Some(format!(
                        "the server lists more than {max} {key} ({n} seen so far), more than the hub serves (--max-list-items)"
                    ));
                    None
                }
                Err(ListFailure::Request(e)) => {
                    let r = Err::<(), _>(e);
                    state.check_unauthorized(&r);
                    if let Err(e) = r {
                        let name = session_name(state);
                        let connector = lock(&inner.servers)
                            .get(&name)
                            .map(|s| s.def.connector.clone());
                        let e = match connector {
                            Some(c) => crate::redact::request_error(e, &*c),
                            None => e,
                        };
                        tracing::warn!(target: "mcp_hub::registry", server = %name, "{method} failed: {e}");
                    }
                    Some(ItemList::default())
                }
            }
        }
    };
    let (tools, resources, templates, prompts) = tokio::join!(
        get(want(ListKind::Tools, "tools"), methods::TOOLS_LIST, "tools"),
        get(
            want(ListKind::Resources, "resources"),
            methods::RESOURCES_LIST,
            "resources"
        ),
        get(
            want(ListKind::Resources, "resources"),
            methods::RESOURCES_TEMPLATES_LIST,
            "resourceTemplates"
        ),
        get(
            want(ListKind::Prompts, "prompts"),
            methods::PROMPTS_LIST,
            "prompts"
        ),
    );
    if let Some(reason) = overflow.into_inner().unwrap_or_else(|e| e.into_inner()) {
        tracing::error!(target: "mcp_hub::registry", server = %session_name(state), "{reason}");
        *lock(&state.list_overflow) = Some(reason);
        if state.snapshot().status == ServerStatus::Connected {
            // Already serving: the supervisor restarts it, and the new attempt reports why.
            session.close().await;
        }
        return;
    }
    let mut changed = Vec::new();
    state.update(|s| {
        // The snapshot holds only the tools the server's filter lets through; the whole list
        // is kept to filter again when the filter changes. Under the snapshot's lock, as in
        // `Registry::set_tool_filter`, so a new filter and a new list cannot cross.
        let tools = tools.map(|all| {
            let kept = lock(&state.tool_filter).apply(&all);
            *lock(&state.all_tools) = all;
            kept
        });
        let mut set = |slot: &mut ItemList, new: Option<ItemList>, kind: ListKind| {
            if let Some(new) = new
                && *slot != new
            {
                *slot = new;
                if !changed.contains(&kind) {
                    changed.push(kind);
                }
            }
        };
        set(&mut s.tools, tools, ListKind::Tools);
        set(&mut s.resources, resources, ListKind::Resources);
        set(&mut s.resource_templates, templates, ListKind::Resources);
        set(&mut s.prompts, prompts, ListKind::Prompts);
    });
    publish_changes(inner, state, changed);
}

/// After the snapshot's lists changed: prepares those lists again (only those: the others keep
/// their identity, so the catalogue announces only what changed), rebuilds the catalogue and
/// announces the change, when the server is serving.
pub(crate) fn publish_changes(inner: &Inner, state: &ServerState, changed: Vec<ListKind>) {
    if !changed.is_empty() {
        let raw = state.lists();
        if let Some(p) = lock(&state.prepared).as_mut() {
            for kind in &changed {
                let lists: &[CatalogList] = match kind {
                    ListKind::Tools => &[CatalogList::Tools],
                    ListKind::Resources => {
                        &[CatalogList::Resources, CatalogList::ResourceTemplates]
                    }
                    ListKind::Prompts => &[CatalogList::Prompts],
                };
                for &l in lists {
                    p.lists[l as usize] = Arc::new(PreparedList::prepare(
                        l,
                        &p.name,
                        &p.prefix,
                        &raw[l as usize],
                    ));
                }
            }
        }
    }
    // Before the server counts as connected its lists are not in the catalogue yet: the rebuild
    // that makes it connected picks them up.
    if !changed.is_empty() && state.snapshot().status == ServerStatus::Connected {
        rebuild_catalog(inner);
        let server: Arc<str> = Arc::from(session_name(state).as_str());
        for kind in changed {
            let _ = inner.events.send(RegistryEvent::ListChanged {
                server: server.clone(),
                kind,
            });
        }
    }
}

pub(crate) fn session_name(state: &ServerState) -> String {
    state.name()
}
