//! Each server's lists prepared for the catalogue: items renamed into the hub's namespace once
//! per change (as JSON text: renaming edits the text, no value tree is built or kept), and the
//! server ids (prefixes) assigned as the Node hub does.

use std::collections::HashMap;
use std::sync::Arc;

use crate::Prefix;
use crate::entry::{CatalogList, Collision};
use crate::items::{self, ItemList};
use crate::naming::{NAMESPACE_SEPARATOR, default_server_id, sanitize_name};

pub(crate) fn prefix_of(server: &str, prefix: &Prefix) -> Option<String> {
    match prefix {
        Prefix::Default => Some(default_server_id(server)),
        Prefix::Custom(p) => Some(p.clone()),
        Prefix::None => None,
    }
}

/// Each server's effective prefix, as the Node hub assigns server ids: in order, a server whose
/// id is already taken gets the first free `<id>_1`, `<id>_2`, … (so `a-b` and `a_b` expose
/// `a_b__echo` and `a_b_1__echo`). Every clash is reported.
pub(crate) fn server_prefixes(
    servers: &[ServerLists],
    collisions: &mut Vec<Collision>,
) -> Vec<(Arc<str>, Option<String>)> {
    let mut owners: HashMap<String, Arc<str>> = HashMap::new();
    servers
        .iter()
        .map(|s| {
            let Some(wanted) = prefix_of(&s.name, &s.prefix) else {
                return (s.name.clone(), None);
            };
            let id = match owners.get(&wanted) {
                None => wanted,
                Some(kept_by) => {
                    let id = (1..)
                        .map(|n| format!("{wanted}_{n}"))
                        .find(|c| !owners.contains_key(c))
                        .unwrap_or_default();
                    collisions.push(Collision {
                        kind: "server",
                        wanted,
                        kept_by: kept_by.to_string(),
                        server: s.name.to_string(),
                        exposed_as: id.clone(),
                    });
                    id
                }
            };
            owners.insert(id.clone(), s.name.clone());
            (s.name.clone(), Some(id))
        })
        .collect()
}

/// One item of one server, renamed to the name it wants, as JSON.
#[derive(Debug)]
pub(crate) struct PreparedItem {
    pub(crate) original: Arc<str>,
    pub(crate) wanted: Arc<str>,
    pub(crate) json: Arc<str>,
}

/// One list of one server, prepared once each time the server's list changes, so that building
/// a snapshot of many servers is pointer copies and hash inserts rather than deep clones.
#[derive(Debug, Default)]
pub(crate) struct PreparedList(pub(crate) Vec<PreparedItem>);

/// The name (or URI) an item is exposed under, with the server's prefix if it has one.
fn exposed_name(list: CatalogList, prefix: Option<&str>, name: &str) -> String {
    match (prefix, list) {
        // Tool names must satisfy the 2025-11-25 rules; URIs and prompt names are kept.
        (Some(p), CatalogList::Tools) => sanitize_name(&format!("{p}{NAMESPACE_SEPARATOR}{name}")),
        (None, CatalogList::Tools) => sanitize_name(name),
        (Some(p), _) => format!("{p}{NAMESPACE_SEPARATOR}{name}"),
        (None, _) => name.to_owned(),
    }
}

impl PreparedList {
    pub(crate) fn prepare(
        list: CatalogList,
        server: &str,
        prefix: &Prefix,
        raw: &ItemList,
    ) -> PreparedList {
        let p = prefix_of(server, prefix);
        let key = list.name_key();
        let items = raw
            .iter()
            .filter_map(|v| {
                let (name, wanted, json) =
                    items::renamed(v, key, |name| exposed_name(list, p.as_deref(), name))?;
                Some(PreparedItem {
                    original: Arc::from(name),
                    wanted: Arc::from(wanted),
                    json: Arc::from(json),
                })
            })
            .collect();
        PreparedList(items)
    }

    /// The same items under another server prefix (the server's id clashed with an earlier
    /// server's and got a `_N` suffix).
    pub(crate) fn with_prefix(&self, list: CatalogList, prefix: &str) -> PreparedList {
        let key = list.name_key();
        let items = self
            .0
            .iter()
            .map(|p| {
                let wanted = exposed_name(list, Some(prefix), &p.original);
                let json = items::with_member(&p.json, key, &wanted);
                PreparedItem {
                    original: p.original.clone(),
                    wanted: Arc::from(wanted),
                    json: Arc::from(json),
                }
            })
            .collect();
        PreparedList(items)
    }
}

/// The prepared lists of one connected server, input of [`Catalog::build`].
#[derive(Debug, Clone)]
pub(crate) struct ServerLists {
    pub(crate) name: Arc<str>,
    pub(crate) prefix: Prefix,
    /// Indexed by [`CatalogList::index`].
    pub(crate) lists: [Arc<PreparedList>; 4],
}

impl ServerLists {
    pub(crate) fn prepare(name: &str, prefix: &Prefix, raw: [&ItemList; 4]) -> ServerLists {
        let lists = CatalogList::ALL
            .map(|l| Arc::new(PreparedList::prepare(l, name, prefix, raw[l.index()])));
        ServerLists {
            name: Arc::from(name),
            prefix: prefix.clone(),
            lists,
        }
    }
}
