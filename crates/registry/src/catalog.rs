use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::Prefix;
use crate::naming::{NAMESPACE_SEPARATOR, default_server_id, sanitize_name};

/// One exposed tool, prompt, resource or template.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The owning server.
    pub server: Arc<str>,
    /// The upstream name (tool, prompt) or URI (resource, template).
    pub original: String,
    /// The name or URI exposed downstream.
    pub exposed: String,
    /// The upstream object with its name/URI replaced by the exposed one; all other members
    /// verbatim.
    pub item: Value,
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

/// The lists of one connected server, input of [`Catalog::build`].
#[derive(Debug, Clone)]
pub(crate) struct ServerLists {
    pub(crate) name: Arc<str>,
    pub(crate) prefix: Prefix,
    pub(crate) tools: Arc<Vec<Value>>,
    pub(crate) resources: Arc<Vec<Value>>,
    pub(crate) templates: Arc<Vec<Value>>,
    pub(crate) prompts: Arc<Vec<Value>>,
}

/// The merged, namespaced catalogue of every connected server: an immutable snapshot. The
/// registry builds a new one whenever a list changes and swaps it in atomically, so readers never
/// wait for writers.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Increases with every rebuild.
    pub version: u64,
    tools: Vec<CatalogEntry>,
    prompts: Vec<CatalogEntry>,
    resources: Vec<CatalogEntry>,
    templates: Vec<CatalogEntry>,
    tool_index: HashMap<String, usize>,
    prompt_index: HashMap<String, usize>,
    resource_index: HashMap<String, usize>,
    /// `(prefix + separator, server)` of prefixed servers, longest first.
    prefixes: Vec<(String, Arc<str>)>,
    /// Servers exposed without prefix, in config order.
    unprefixed: Vec<Arc<str>>,
    collisions: Vec<Collision>,
    json: [OnceLock<Arc<str>>; 4],
}

/// The four lists, for [`Catalog::list_json`].
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

fn prefix_of(server: &str, prefix: &Prefix) -> Option<String> {
    match prefix {
        Prefix::Default => Some(default_server_id(server)),
        Prefix::Custom(p) => Some(p.clone()),
        Prefix::None => None,
    }
}

struct Builder<'a> {
    entries: Vec<CatalogEntry>,
    index: HashMap<String, usize>,
    collisions: &'a mut Vec<Collision>,
    kind: &'static str,
}

impl Builder<'_> {
    fn push(
        &mut self,
        server: &Arc<str>,
        original: String,
        wanted: String,
        mut item: Value,
        key: &str,
    ) {
        let mut exposed = wanted.clone();
        if let Some(&at) = self.index.get(&wanted) {
            let mut n = 1;
            while self.index.contains_key(&format!("{wanted}_{n}")) {
                n += 1;
            }
            exposed = format!("{wanted}_{n}");
            self.collisions.push(Collision {
                kind: self.kind,
                wanted,
                kept_by: self.entries[at].server.to_string(),
                server: server.to_string(),
                exposed_as: exposed.clone(),
            });
        }
        if let Some(obj) = item.as_object_mut() {
            obj.insert(key.to_owned(), Value::String(exposed.clone()));
        }
        self.index.insert(exposed.clone(), self.entries.len());
        self.entries.push(CatalogEntry {
            server: server.clone(),
            original,
            exposed,
            item,
        });
    }
}

impl Catalog {
    pub(crate) fn build(version: u64, servers: &[ServerLists]) -> Catalog {
        let mut collisions = Vec::new();
        let mut tools = Builder {
            entries: vec![],
            index: HashMap::new(),
            collisions: &mut collisions,
            kind: "tool",
        };
        for s in servers {
            let p = prefix_of(&s.name, &s.prefix);
            for t in s.tools.iter() {
                let Some(name) = t.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let wanted = match &p {
                    Some(p) => sanitize_name(&format!("{p}{NAMESPACE_SEPARATOR}{name}")),
                    None => sanitize_name(name),
                };
                tools.push(&s.name, name.to_owned(), wanted, t.clone(), "name");
            }
        }
        let (tools, tool_index) = (tools.entries, tools.index);
        let mut prompts = Builder {
            entries: vec![],
            index: HashMap::new(),
            collisions: &mut collisions,
            kind: "prompt",
        };
        for s in servers {
            let p = prefix_of(&s.name, &s.prefix);
            for t in s.prompts.iter() {
                let Some(name) = t.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let wanted = match &p {
                    Some(p) => format!("{p}{NAMESPACE_SEPARATOR}{name}"),
                    None => name.to_owned(),
                };
                prompts.push(&s.name, name.to_owned(), wanted, t.clone(), "name");
            }
        }
        let (prompts, prompt_index) = (prompts.entries, prompts.index);
        let mut resources = Builder {
            entries: vec![],
            index: HashMap::new(),
            collisions: &mut collisions,
            kind: "resource",
        };
        for s in servers {
            let p = prefix_of(&s.name, &s.prefix);
            for r in s.resources.iter() {
                let Some(uri) = r.get("uri").and_then(Value::as_str) else {
                    continue;
                };
                let wanted = match &p {
                    Some(p) => format!("{p}{NAMESPACE_SEPARATOR}{uri}"),
                    None => uri.to_owned(),
                };
                resources.push(&s.name, uri.to_owned(), wanted, r.clone(), "uri");
            }
        }
        let (resources, resource_index) = (resources.entries, resources.index);
        let mut templates = Builder {
            entries: vec![],
            index: HashMap::new(),
            collisions: &mut collisions,
            kind: "resourceTemplate",
        };
        for s in servers {
            let p = prefix_of(&s.name, &s.prefix);
            for r in s.templates.iter() {
                let Some(uri) = r.get("uriTemplate").and_then(Value::as_str) else {
                    continue;
                };
                let wanted = match &p {
                    Some(p) => format!("{p}{NAMESPACE_SEPARATOR}{uri}"),
                    None => uri.to_owned(),
                };
                templates.push(&s.name, uri.to_owned(), wanted, r.clone(), "uriTemplate");
            }
        }
        let templates = templates.entries;
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
            tools,
            prompts,
            resources,
            templates,
            tool_index,
            prompt_index,
            resource_index,
            prefixes,
            unprefixed,
            collisions,
            json: Default::default(),
        }
    }

    /// A snapshot of servers that expose only tools, each with the default prefix, in order.
    /// For benchmarks and tests outside this crate; the registry builds its own snapshots.
    #[doc(hidden)]
    pub fn from_tools(version: u64, servers: Vec<(String, Vec<Value>)>) -> Catalog {
        let lists: Vec<ServerLists> = servers
            .into_iter()
            .map(|(name, tools)| ServerLists {
                name: Arc::from(name),
                prefix: Prefix::Default,
                tools: Arc::new(tools),
                resources: Arc::default(),
                templates: Arc::default(),
                prompts: Arc::default(),
            })
            .collect();
        Catalog::build(version, &lists)
    }

    /// All exposed tools, in config order of their servers.
    pub fn tools(&self) -> &[CatalogEntry] {
        &self.tools
    }

    /// All exposed prompts.
    pub fn prompts(&self) -> &[CatalogEntry] {
        &self.prompts
    }

    /// All exposed resources.
    pub fn resources(&self) -> &[CatalogEntry] {
        &self.resources
    }

    /// All exposed resource templates.
    pub fn resource_templates(&self) -> &[CatalogEntry] {
        &self.templates
    }

    /// Name clashes found while building this snapshot.
    pub fn collisions(&self) -> &[Collision] {
        &self.collisions
    }

    /// The owner of an exposed tool name, in O(1).
    pub fn tool(&self, exposed: &str) -> Option<&CatalogEntry> {
        self.tool_index.get(exposed).map(|&i| &self.tools[i])
    }

    /// The owner of an exposed prompt name, in O(1).
    pub fn prompt(&self, exposed: &str) -> Option<&CatalogEntry> {
        self.prompt_index.get(exposed).map(|&i| &self.prompts[i])
    }

    /// Where an exposed resource URI goes: an exact listed URI first, then a prefixed server's
    /// namespace, then the templates of unprefixed servers.
    pub fn resource(&self, exposed_uri: &str) -> Option<ResourceRoute> {
        if let Some(&i) = self.resource_index.get(exposed_uri) {
            let e = &self.resources[i];
            return Some(ResourceRoute {
                server: e.server.clone(),
                upstream_uri: e.original.clone(),
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
        for t in &self.templates {
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

    /// A list as one serialised JSON array, computed once per snapshot.
    pub fn list_json(&self, list: CatalogList) -> Arc<str> {
        let (slot, entries) = match list {
            CatalogList::Tools => (&self.json[0], &self.tools),
            CatalogList::Resources => (&self.json[1], &self.resources),
            CatalogList::ResourceTemplates => (&self.json[2], &self.templates),
            CatalogList::Prompts => (&self.json[3], &self.prompts),
        };
        slot.get_or_init(|| {
            let items: Vec<&Value> = entries.iter().map(|e| &e.item).collect();
            Arc::from(serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned()))
        })
        .clone()
    }
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
        ServerLists {
            name: Arc::from(name),
            prefix,
            tools: Arc::new(
                tools
                    .iter()
                    .map(|t| json!({"name": t, "inputSchema": {"type": "object", "$defs": {}}}))
                    .collect(),
            ),
            resources: Arc::new(vec![
                json!({"uri": format!("test://{name}/r"), "name": "r"}),
            ]),
            templates: Arc::new(vec![
                json!({"uriTemplate": "test://template/{id}/data", "name": "t"}),
            ]),
            prompts: Arc::new(vec![json!({"name": "p"})]),
        }
    }

    #[test]
    fn default_prefix_follows_the_node_hub() {
        let c = Catalog::build(1, &[lists("my.server-2", Prefix::Default, &["echo"])]);
        let t = c.tool("my_server_2__echo").unwrap();
        assert_eq!(t.original, "echo");
        assert_eq!(t.item["name"], "my_server_2__echo");
        assert_eq!(
            t.item["inputSchema"],
            json!({"type": "object", "$defs": {}})
        );
        assert_eq!(c.prompt("my_server_2__p").unwrap().original, "p");
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
