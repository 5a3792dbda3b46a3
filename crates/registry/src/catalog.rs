use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use serde_json::value::RawValue;

use crate::Prefix;
use crate::naming::{NAMESPACE_SEPARATOR, default_server_id, sanitize_name};

/// One exposed tool, prompt, resource or template. Cheap to clone: everything is shared.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The owning server.
    pub server: Arc<str>,
    /// The upstream name (tool, prompt) or URI (resource, template).
    pub original: Arc<str>,
    /// The name or URI exposed downstream.
    pub exposed: Arc<str>,
    /// The upstream object with its name/URI replaced by the exposed one; all other members
    /// verbatim.
    pub item: Arc<Value>,
    /// `item` serialised, so listing is concatenation.
    json: Arc<str>,
}

/// Two servers wanted the same exposed name; the later one got a suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// `tool`, `prompt`, `resource` or `resourceTemplate`.
    pub kind: &'static str,
    /// The name both wanted.
    pub wanted: String,
    /// The server that kept it.
    pub kept_by: String,
    /// The server that got the suffixed name.
    pub server: String,
    /// The name it got instead.
    pub exposed_as: String,
}

/// Where a resource URI goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRoute {
    /// The owning server.
    pub server: Arc<str>,
    /// The URI to send upstream.
    pub upstream_uri: String,
}

/// The four lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogList {
    /// `tools`
    Tools,
    /// `resources`
    Resources,
    /// `resourceTemplates`
    ResourceTemplates,
    /// `prompts`
    Prompts,
}

impl CatalogList {
    const ALL: [CatalogList; 4] = [
        CatalogList::Tools,
        CatalogList::Resources,
        CatalogList::ResourceTemplates,
        CatalogList::Prompts,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The member of the list result (`tools`, `resources`, `resourceTemplates`, `prompts`).
    pub fn key(self) -> &'static str {
        match self {
            CatalogList::Tools => "tools",
            CatalogList::Resources => "resources",
            CatalogList::ResourceTemplates => "resourceTemplates",
            CatalogList::Prompts => "prompts",
        }
    }

    /// The member of each item that carries its name or URI.
    fn name_key(self) -> &'static str {
        match self {
            CatalogList::Tools | CatalogList::Prompts => "name",
            CatalogList::Resources => "uri",
            CatalogList::ResourceTemplates => "uriTemplate",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            CatalogList::Tools => "tool",
            CatalogList::Resources => "resource",
            CatalogList::ResourceTemplates => "resourceTemplate",
            CatalogList::Prompts => "prompt",
        }
    }
}

fn prefix_of(server: &str, prefix: &Prefix) -> Option<String> {
    match prefix {
        Prefix::Default => Some(default_server_id(server)),
        Prefix::Custom(p) => Some(p.clone()),
        Prefix::None => None,
    }
}

/// One item of one server, renamed to the name it wants and serialised.
#[derive(Debug)]
struct PreparedItem {
    original: Arc<str>,
    wanted: Arc<str>,
    item: Arc<Value>,
    json: Arc<str>,
}

/// One list of one server, prepared once each time the server's list changes, so that building
/// a snapshot of many servers is pointer copies and hash inserts rather than deep clones.
#[derive(Debug, Default)]
pub(crate) struct PreparedList(Vec<PreparedItem>);

fn renamed(raw: &Value, key: &str, name: &str) -> (Arc<Value>, Arc<str>) {
    let mut item = raw.clone();
    if let Some(obj) = item.as_object_mut() {
        obj.insert(key.to_owned(), Value::String(name.to_owned()));
    }
    let json = serde_json::to_string(&item).unwrap_or_else(|_| "null".to_owned());
    (Arc::new(item), Arc::from(json))
}

impl PreparedList {
    pub(crate) fn prepare(
        list: CatalogList,
        server: &str,
        prefix: &Prefix,
        raw: &[Value],
    ) -> PreparedList {
        let p = prefix_of(server, prefix);
        let key = list.name_key();
        let items = raw
            .iter()
            .filter_map(|v| {
                let name = v.get(key).and_then(Value::as_str)?;
                let wanted = match (&p, list) {
                    // Tool names must satisfy the 2025-11-25 rules; URIs and prompt names are kept.
                    (Some(p), CatalogList::Tools) => {
                        sanitize_name(&format!("{p}{NAMESPACE_SEPARATOR}{name}"))
                    }
                    (None, CatalogList::Tools) => sanitize_name(name),
                    (Some(p), _) => format!("{p}{NAMESPACE_SEPARATOR}{name}"),
                    (None, _) => name.to_owned(),
                };
                let (item, json) = renamed(v, key, &wanted);
                Some(PreparedItem {
                    original: Arc::from(name),
                    wanted: Arc::from(wanted),
                    item,
                    json,
                })
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
    pub(crate) fn prepare(name: &str, prefix: &Prefix, raw: [&[Value]; 4]) -> ServerLists {
        let lists = CatalogList::ALL
            .map(|l| Arc::new(PreparedList::prepare(l, name, prefix, raw[l.index()])));
        ServerLists {
            name: Arc::from(name),
            prefix: prefix.clone(),
            lists,
        }
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
    json: [OnceLock<Arc<str>>; 4],
    results: [OnceLock<Arc<RawValue>>; 4],
}

impl Catalog {
    pub(crate) fn build(version: u64, servers: &[ServerLists]) -> Catalog {
        let mut collisions = Vec::new();
        let mut entries: [Vec<CatalogEntry>; 4] = Default::default();
        let mut indexes: [HashMap<Arc<str>, usize>; 4] = Default::default();
        let mut sources: [Vec<(Arc<str>, Arc<PreparedList>)>; 4] = Default::default();
        for list in CatalogList::ALL {
            let i = list.index();
            let (out, index) = (&mut entries[i], &mut indexes[i]);
            for s in servers {
                let part = &s.lists[i];
                // A server with nothing in this list does not change it by coming or going.
                if !part.0.is_empty() {
                    sources[i].push((s.name.clone(), part.clone()));
                }
                for p in &part.0 {
                    let mut entry = CatalogEntry {
                        server: s.name.clone(),
                        original: p.original.clone(),
                        exposed: p.wanted.clone(),
                        item: p.item.clone(),
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
                        let (item, json) = renamed(&p.item, list.name_key(), &exposed);
                        entry.exposed = Arc::from(exposed);
                        entry.item = item;
                        entry.json = json;
                    }
                    index.insert(entry.exposed.clone(), out.len());
                    out.push(entry);
                }
            }
        }
        let [tool_index, resource_index, _, prompt_index] = indexes;
        let mut prefixes: Vec<(String, Arc<str>)> = servers
            .iter()
            .filter_map(|s| {
                prefix_of(&s.name, &s.prefix)
                    .map(|p| (format!("{p}{NAMESPACE_SEPARATOR}"), s.name.clone()))
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
            json: Default::default(),
            results: Default::default(),
        }
    }

    /// Whether `list` has the same content in both snapshots.
    pub(crate) fn same_list(&self, other: &Catalog, list: CatalogList) -> bool {
        let i = list.index();
        let (a, b) = (&self.sources[i], &other.sources[i]);
        a.len() == b.len()
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
        let lists: Vec<ServerLists> = servers
            .iter()
            .map(|(name, tools)| {
                ServerLists::prepare(name, &Prefix::Default, [tools, &[], &[], &[]])
            })
            .collect();
        Catalog::build(version, &lists)
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

    /// A list as one serialised JSON array, computed once per snapshot by concatenating the
    /// items' cached serialisations.
    pub fn list_json(&self, list: CatalogList) -> Arc<str> {
        let i = list.index();
        self.json[i]
            .get_or_init(|| {
                let entries = &self.entries[i];
                let mut out = String::with_capacity(
                    2 + entries.iter().map(|e| e.json.len() + 1).sum::<usize>(),
                );
                out.push('[');
                for (n, e) in entries.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&e.json);
                }
                out.push(']');
                Arc::from(out)
            })
            .clone()
    }

    /// The whole result of a list request (`{"tools":[...]}`), computed once per snapshot, so
    /// answering `tools/list` is a copy rather than a serialisation.
    pub fn list_result(&self, list: CatalogList) -> Arc<RawValue> {
        self.results[list.index()]
            .get_or_init(|| {
                let text = format!("{{\"{}\":{}}}", list.key(), self.list_json(list));
                // The parts are serde_json output, so this validation cannot fail; an empty list
                // is the harmless answer if it ever did.
                Arc::from(RawValue::from_string(text).unwrap_or_else(|_| empty_list(list)))
            })
            .clone()
    }
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
        let resources = vec![json!({"uri": format!("test://{name}/r"), "name": "r"})];
        let templates = vec![json!({"uriTemplate": "test://template/{id}/data", "name": "t"})];
        let prompts = vec![json!({"name": "p"})];
        ServerLists::prepare(name, &prefix, [&tools, &resources, &templates, &prompts])
    }

    #[test]
    fn default_prefix_follows_the_node_hub() {
        let c = Catalog::build(1, &[lists("my.server-2", Prefix::Default, &["echo"])]);
        let t = c.tool("my_server_2__echo").unwrap();
        assert_eq!(&*t.original, "echo");
        assert_eq!(t.item["name"], "my_server_2__echo");
        assert_eq!(
            t.item["inputSchema"],
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
    }
}
