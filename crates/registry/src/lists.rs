//! Listing what a server offers (every page of tools, resources, templates and prompts) and
//! publishing the lists.

use std::sync::Arc;

use mcp_hub_protocol::methods;
use mcp_hub_transport::{ClientSession, RequestError, RequestOptions};
use serde_json::{Map, Value};

use crate::shared::{Inner, rebuild_catalog};
use crate::state::ServerState;
use crate::sync::lock;
use crate::{ListKind, RegistryEvent, ServerStatus};

async fn list_all(
    session: &ClientSession,
    method: &str,
    key: &str,
) -> Result<Vec<Value>, RequestError> {
    let mut items = Vec::new();
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
        let mut page: Map<String, Value> = serde_json::from_str(raw.get())
            .map_err(|e| RequestError::Closed(format!("bad {method} result: {e}")))?;
        if let Some(Value::Array(list)) = page.remove(key) {
            items.extend(list);
        }
        match page.remove("nextCursor") {
            Some(Value::String(c)) if !c.is_empty() && cursor.as_deref() != Some(c.as_str()) => {
                cursor = Some(c)
            }
            _ => return Ok(items),
        }
    }
    Ok(items)
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
    let get = |want: bool, method: &'static str, key: &'static str| async move {
        if !want {
            return None;
        }
        let r = list_all(session, method, key).await;
        state.check_unauthorized(&r);
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(target: "mcp_hub::registry", server = %session_name(state), "{method} failed: {e}");
                Some(Vec::new())
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
    let mut changed = Vec::new();
    state.update(|s| {
        let mut set = |slot: &mut Arc<Vec<Value>>, new: Option<Vec<Value>>, kind: ListKind| {
            if let Some(new) = new
                && **slot != new
            {
                *slot = Arc::new(new);
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
    if !changed.is_empty() {
        *lock(&state.prepared) = None;
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
