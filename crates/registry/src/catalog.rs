use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use serde_json::value::RawValue;

use crate::Prefix;
pub use crate::entry::{CatalogEntry, CatalogList, Collision, ResourceRoute};
use crate::items::{self, ItemList};
use crate::naming::NAMESPACE_SEPARATOR;
pub(crate) use crate::prepared::ServerLists;
use crate::prepared::{PreparedList, prefix_of, server_prefixes};

/// One list of a snapshot as a JSON array: a view into the cached list result, not a copy.
#[derive(Debug, Clone)]
pub struct ListJson {
    result: Arc<RawValue>,
    start: usize,
    end: usize,
}

impl Deref for ListJson {
    type Target = str;

    fn deref(&self) -> &str {
        &self.result.get()[self.start..self.end]
    }
}

impl AsRef<str> for ListJson {
    fn as_ref(&self) -> &str {
        self
    }
}

/// The merged, namespaced catalogue of every connected server: an immutable snapshot. The
/// registry builds a new one whenever a list changes and swaps it in atomically, so readers never
/// wait for writers.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Increases with every rebuild.
    pub version: u64,
    entries: [Vec<CatalogEntry>; 4],
    tool_index: HashMap<Arc<str>, usize>,
    prompt_index: HashMap<Arc<str>, usize>,
    resource_index: HashMap<Arc<str>, usize>,
    /// `(prefix + separator, server)` of prefixed servers, longest first.
    prefixes: Vec<(String, Arc<str>)>,
    /// Servers exposed without prefix, in config order.
    unprefixed: Vec<Arc<str>>,
    collisions: Vec<Collision>,
    /// Per list: which prepared list of which server went in, to tell cheaply whether two
    /// snapshots list the same things. Holding the `Arc`s keeps their addresses from being
    /// reused while this snapshot lives, so pointer equality means "the same list".
    sources: [Vec<(Arc<str>, Arc<PreparedList>)>; 4],
    /// Each server's effective prefix (its id after clash suffixes), in order.
    server_prefixes: Vec<(Arc<str>, Option<String>)>,
    results: [OnceLock<Arc<RawValue>>; 4],
}

impl Catalog {
    pub(crate) fn build(version: u64, servers: &[ServerLists]) -> Catalog {
        let mut collisions = Vec::new();
        let server_prefixes = server_prefixes(servers, &mut collisions);
        let mut entries: [Vec<CatalogEntry>; 4] = Default::default();
        let mut indexes: [HashMap<Arc<str>, usize>; 4] = Default::default();
        let mut sources: [Vec<(Arc<str>, Arc<PreparedList>)>; 4] = Default::default();
        for list in CatalogList::ALL {
            let i = list.index();
            let (out, index) = (&mut entries[i], &mut indexes[i]);
            for (s, (_, effective)) in servers.iter().zip(&server_prefixes) {
                let part = &s.lists[i];
                // A server with nothing in this list does not change it by coming or going.
                if !part.0.is_empty() {
                    sources[i].push((s.name.clone(), part.clone()));
                }
                // Rare: only a server whose id clashed is renamed here.
                let renamed_part = match effective {
                    Some(p) if prefix_of(&s.name, &s.prefix).as_deref() != Some(p) => {
                        Some(part.with_prefix(list, p))
                    }
                    _ => None,
                };
                for p in &renamed_part.as_ref().unwrap_or(part).0 {
                    let mut entry = CatalogEntry {
                        server: s.name.clone(),
                        original: p.original.clone(),
                        exposed: p.wanted.clone(),
                        json: p.json.clone(),
                    };
                    if let Some(&at) = index.get(&p.wanted) {
                        // A clash: the later server gets a suffix, and the clash is reported.
                        let exposed = (1..)
                            .map(|n| format!("{}_{n}", p.wanted))
                            .find(|c| !index.contains_key(c.as_str()))
                            .unwrap_or_default();
                        collisions.push(Collision {
                            kind: list.kind(),
                            wanted: p.wanted.to_string(),
                            kept_by: out[at].server.to_string(),
                            server: s.name.to_string(),
                            exposed_as: exposed.clone(),
                        });
                        entry.json =
                            Arc::from(items::with_member(&p.json, list.name_key(), &exposed));
                        entry.exposed = Arc::from(exposed);
                    }
                    index.insert(entry.exposed.clone(), out.len());
                    out.push(entry);
                }
            }
        }
        let [tool_index, resource_index, _, prompt_index] = indexes;
        let mut prefixes: Vec<(String, Arc<str>)> = server_prefixes
            .iter()
            .filter_map(|(name, p)| {
                p.as_ref()
                    .map(|p| (format!("{p}{NAMESPACE_SEPARATOR}"), name.clone()))
            })
            .collect();
        prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        let unprefixed = servers
            .iter()
            .filter(|s| s.prefix == Prefix::None)
            .map(|s| s.name.clone())
            .collect();
        Catalog {
            version,
            entries,
            tool_index,
            prompt_index,
            resource_index,
            prefixes,
            unprefixed,
            collisions,
            sources,
            server_prefixes,
            results: Default::default(),
        }
    }

    /// Whether `list` has the same content in both snapshots.
    pub(crate) fn same_list(&self, other: &Catalog, list: CatalogList) -> bool {
        let i = list.index();
        let (a, b) = (&self.sources[i], &other.sources[i]);
        self.server_prefixes == other.server_prefixes
            && a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((n1, l1), (n2, l2))| n1 == n2 && Arc::ptr_eq(l1, l2))
            && self
                .collisions
                .iter()
                .filter(|c| c.kind == list.kind())
                .eq(other.collisions.iter().filter(|c| c.kind == list.kind()))
    }

    /// A snapshot of servers that expose only tools, each with the default prefix, in order.
    /// For benchmarks and tests outside this crate; the registry builds its own snapshots.
    #[doc(hidden)]
    pub fn from_tools(version: u64, servers: Vec<(String, Vec<Value>)>) -> Catalog {
        let empty = ItemList::default();
        let lists: Vec<ServerLists> = servers
            .iter()
            .map(|(name, tools)| {
                let tools = ItemList::from_values(tools);
                ServerLists::prepare(name, &Prefix::Default, [&tools, &empty, &empty, &empty])
            })
            .collect();
        Catalog::build(version, &lists)
    }

    /// The servers in this snapshot (the connected ones), in config order.
    pub(crate) fn server_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.server_prefixes.iter().map(|(name, _)| name)
    }

    /// All exposed tools, in config order of their servers.
    pub fn tools(&self) -> &[CatalogEntry] {
        &self.entries[CatalogList::Tools.index()]
    }

    /// All exposed prompts.
    pub fn prompts(&self) -> &[CatalogEntry] {
        &self.entries[CatalogList::Prompts.index()]
    }

    /// All exposed resources.
    pub fn resources(&self) -> &[CatalogEntry] {
        &self.entries[CatalogList::Resources.index()]
    }

    /// All exposed resource templates.
    pub fn resource_templates(&self) -> &[CatalogEntry] {
        &self.entries[CatalogList::ResourceTemplates.index()]
    }

    /// Name clashes found while building this snapshot.
    pub fn collisions(&self) -> &[Collision] {
        &self.collisions
    }

    /// The owner of an exposed tool name, in O(1).
    pub fn tool(&self, exposed: &str) -> Option<&CatalogEntry> {
        self.tool_index.get(exposed).map(|&i| &self.tools()[i])
    }

    /// The owner of an exposed prompt name, in O(1).
    pub fn prompt(&self, exposed: &str) -> Option<&CatalogEntry> {
        self.prompt_index.get(exposed).map(|&i| &self.prompts()[i])
    }

    /// Where an exposed resource URI goes: an exact listed URI first, then a prefixed server's
    /// namespace, then the templates of unprefixed servers.
    pub fn resource(&self, exposed_uri: &str) -> Option<ResourceRoute> {
        if let Some(&i) = self.resource_index.get(exposed_uri) {
            let e = &self.resources()[i];
            return Some(ResourceRoute {
                server: e.server.clone(),
                upstream_uri: e.original.to_string(),
            });
        }
        for (p, server) in &self.prefixes {
            if let Some(rest) = exposed_uri.strip_prefix(p.as_str()) {
                return Some(ResourceRoute {
                    server: server.clone(),
                    upstream_uri: rest.to_owned(),
                });
            }
        }
        for t in self.resource_templates() {
            if self.unprefixed.contains(&t.server) && template_matches(&t.original, exposed_uri) {
                return Some(ResourceRoute {
                    server: t.server.clone(),
                    upstream_uri: exposed_uri.to_owned(),
                });
            }
        }
        // An unlisted URI of the only unprefixed server (servers may serve more than they list).
        if let [only] = self.unprefixed.as_slice() {
            return Some(ResourceRoute {
                server: only.clone(),
                upstream_uri: exposed_uri.to_owned(),
            });
        }
        None
    }

    /// The exposed form of an upstream URI of `server` (for `notifications/resources/updated` and
    /// read results).
    pub fn expose_uri(&self, server: &str, upstream_uri: &str) -> String {
        match self.prefixes.iter().find(|(_, s)| &**s == server) {
            Some((p, _)) => format!("{p}{upstream_uri}"),
            None => upstream_uri.to_owned(),
        }
    }

    /// A list as one JSON array: a view into [`Catalog::list_result`], so the array exists
    /// once per snapshot.
    pub fn list_json(&self, list: CatalogList) -> ListJson {
        ListJson::of(self.list_result(list), list)
    }

    /// The whole result of a list request (`{"tools":[...]}`), computed once per snapshot by
    /// concatenating the items' JSON, so answering `tools/list` is a copy rather than a
    /// serialisation.
    pub fn list_result(&self, list: CatalogList) -> Arc<RawValue> {
        let i = list.index();
        self.results[i]
            .get_or_init(|| concat_list(&self.entries[i], list))
            .clone()
    }
}

impl ListJson {
    /// The array inside a list result (`{"tools":[...]}` → `[...]`).
    pub(crate) fn of(result: Arc<RawValue>, list: CatalogList) -> ListJson {
        let start = list.key().len() + 4;
        let end = result.get().len().saturating_sub(1).max(start);
        ListJson { result, start, end }
    }
}

/// A list result (`{"tools":[...]}`) made by concatenating the entries' JSON.
pub(crate) fn concat_list(entries: &[CatalogEntry], list: CatalogList) -> Arc<RawValue> {
    let key = list.key();
    let mut out = String::with_capacity(
        key.len() + 6 + entries.iter().map(|e| e.json().len() + 1).sum::<usize>(),
    );
    out.push_str("{\"");
    out.push_str(key);
    out.push_str("\":[");
    for (n, e) in entries.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(e.json());
    }
    out.push_str("]}");
    // The parts are JSON the registry wrote, so this validation cannot fail; an empty list is
    // the harmless answer if it ever did.
    Arc::from(RawValue::from_string(out).unwrap_or_else(|_| empty_list(list)))
}

fn empty_list(list: CatalogList) -> Box<RawValue> {
    RawValue::from_string(format!("{{\"{}\":[]}}", list.key()))
        .unwrap_or_else(|_| mcp_hub_protocol::empty_object())
}

/// Whether `uri` matches an RFC 6570 level-1 template (`{var}` matches one or more characters
/// other than `/`, `{+var}` and `{#var}` match anything).
pub(crate) fn template_matches(template: &str, uri: &str) -> bool {
    fn go(t: &str, u: &str) -> bool {
        match t.find('{') {
            None => t == u,
            Some(i) => {
                let (lit, rest) = t.split_at(i);
                let Some(u) = u.strip_prefix(lit) else {
                    return false;
                };
                let Some(end) = rest.find('}') else {
                    return rest == u;
                };
                let expr = &rest[1..end];
                let after = &rest[end + 1..];
                let greedy = expr.starts_with('+') || expr.starts_with('#');
                // Bounded: each level tries every split point of the remaining URI once.
                (1..=u.len()).filter(|&k| u.is_char_boundary(k)).any(|k| {
                    let part = &u[..k];
                    (greedy || !part.contains('/')) && go(after, &u[k..])
                })
            }
        }
    }
    // Templates with many expressions could go exponential; real ones have a few.
    template.matches('{').count() <= 8 && go(template, uri)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lists(name: &str, prefix: Prefix, tools: &[&str]) -> ServerLists {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| json!({"name": t, "inputSchema": {"type": "object", "$defs": {}}}))
            .collect();
        let tools = ItemList::from_values(&tools);
        let resources =
            ItemList::from_values(&[json!({"uri": format!("test://{name}/r"), "name": "r"})]);
        let templates = ItemList::from_values(&[
            json!({"uriTemplate": "test://template/{id}/data", "name": "t"}),
        ]);
        let prompts = ItemList::from_values(&[json!({"name": "p"})]);
        ServerLists::prepare(name, &prefix, [&tools, &resources, &templates, &prompts])
    }

    #[test]
    fn default_prefix_follows_the_node_hub() {
        let c = Catalog::build(1, &[lists("my.server-2", Prefix::Default, &["echo"])]);
        let t = c.tool("my_server_2__echo").unwrap();
        assert_eq!(&*t.original, "echo");
        assert_eq!(t.item()["name"], "my_server_2__echo");
        assert_eq!(
            t.item()["inputSchema"],
            json!({"type": "object", "$defs": {}})
        );
        assert_eq!(&*c.prompt("my_server_2__p").unwrap().original, "p");
        let r = c.resource("my_server_2__test://my.server-2/r").unwrap();
        assert_eq!(r.upstream_uri, "test://my.server-2/r");
        let r = c.resource("my_server_2__test://template/7/data").unwrap();
        assert_eq!(r.upstream_uri, "test://template/7/data");
    }

    #[test]
    fn collisions_are_reported_not_shadowed() {
        let c = Catalog::build(
            1,
            &[
                lists("a", Prefix::None, &["echo"]),
                lists("b", Prefix::None, &["echo"]),
            ],
        );
        assert_eq!(c.tool("echo").unwrap().server.as_ref(), "a");
        assert_eq!(c.tool("echo_1").unwrap().server.as_ref(), "b");
        assert!(
            c.collisions()
                .iter()
                .any(|k| k.kind == "tool" && k.wanted == "echo" && k.exposed_as == "echo_1")
        );
    }

    #[test]
    fn clashing_server_ids_get_the_node_hubs_suffix() {
        // `a-b` and `a_b` both sanitise to `a_b`: the later server's id becomes `a_b_1` for all
        // of its names, as in the Node hub (`a_b_1__echo`, not `a_b__echo_1`).
        let servers = [
            lists("a-b", Prefix::Default, &["echo"]),
            lists("a_b", Prefix::Default, &["echo"]),
            lists("a.b", Prefix::Default, &["echo"]),
        ];
        let c = Catalog::build(1, &servers);
        let names: Vec<&str> = c.tools().iter().map(|t| &*t.exposed).collect();
        assert_eq!(names, ["a_b__echo", "a_b_1__echo", "a_b_2__echo"]);
        assert_eq!(c.tool("a_b_1__echo").unwrap().server.as_ref(), "a_b");
        assert_eq!(c.tool("a_b_1__echo").unwrap().item()["name"], "a_b_1__echo");
        assert_eq!(&*c.prompt("a_b_1__p").unwrap().server, "a_b");
        let r = c.resource("a_b_1__test://a_b/r").unwrap();
        assert_eq!(
            (&*r.server, r.upstream_uri.as_str()),
            ("a_b", "test://a_b/r")
        );
        let t = c.resource("a_b_2__test://template/9/data").unwrap();
        assert_eq!(
            (&*t.server, t.upstream_uri.as_str()),
            ("a.b", "test://template/9/data")
        );
        assert_eq!(c.expose_uri("a_b", "u://1"), "a_b_1__u://1");
        assert!(c.collisions().iter().any(|k| k.kind == "server"
            && k.wanted == "a_b"
            && k.kept_by == "a-b"
            && k.server == "a_b"
            && k.exposed_as == "a_b_1"));
        // Rebuilding from the same lists is the same catalogue (no spurious list_changed).
        let again = Catalog::build(2, &servers);
        assert!(c.same_list(&again, CatalogList::Tools));
        // When the first server goes, the second takes the plain id back, as in the Node hub.
        let c = Catalog::build(3, &servers[1..]);
        assert!(c.tool("a_b__echo").is_some());
        assert!(!c.same_list(&again, CatalogList::Tools));
    }

    #[test]
    fn unprefixed_templates_route() {
        let c = Catalog::build(
            1,
            &[
                lists("a", Prefix::None, &[]),
                lists("b", Prefix::Custom("bee".into()), &["x"]),
            ],
        );
        assert_eq!(
            c.resource("test://template/123/data")
                .unwrap()
                .server
                .as_ref(),
            "a"
        );
        assert_eq!(c.tool("bee__x").unwrap().server.as_ref(), "b");
        assert_eq!(c.expose_uri("b", "u://1"), "bee__u://1");
        assert_eq!(c.expose_uri("a", "u://1"), "u://1");
    }

    #[test]
    fn template_matching() {
        assert!(template_matches(
            "test://template/{id}/data",
            "test://template/123/data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template/1/2/data"
        ));
        assert!(template_matches("file:///{+path}", "file:///a/b/c"));
        assert!(!template_matches("a{x}", "a"));
    }

    #[test]
    fn list_json_is_the_items() {
        let c = Catalog::build(1, &[lists("a", Prefix::Default, &["x", "y"])]);
        let v: Value = serde_json::from_str(&c.list_json(CatalogList::Tools)).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["name"], "a__y");
        let r: Value = serde_json::from_str(c.list_result(CatalogList::Tools).get()).unwrap();
        assert_eq!(r["tools"], v);
        let empty = Catalog::build(2, &[]);
        assert_eq!(&*empty.list_json(CatalogList::Prompts), "[]");
        assert_eq!(
            empty.list_result(CatalogList::Prompts).get(),
            r#"{"prompts":[]}"#
        );
    }

    #[test]
    fn a_clash_renames_the_json_too() {
        let c = Catalog::build(
            1,
            &[
                lists("a", Prefix::None, &["echo"]),
                lists("b", Prefix::None, &["echo"]),
            ],
        );
        let e = c.tool("echo_1").unwrap();
        assert_eq!(e.item()["name"], "echo_1");
        assert_eq!(&*e.original, "echo");
    }
}
