//! Profiles and their views: a profile names some servers (by name or glob) and some of their
//! tools; its [`View`] is the part of a catalogue snapshot it shows, with its own list results,
//! lookups and (for search mode) a search index. A view is built from a snapshot and never
//! changes, like the snapshot; the registry keeps the latest one per profile.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use globset::{Glob, GlobMatcher};
use serde_json::value::RawValue;

use crate::catalog::concat_list;
use crate::search::SearchIndex;
use crate::{Catalog, CatalogEntry, CatalogList, ListJson, ResourceRoute, ToolFilter};

/// How a profile presents its tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProfileMode {
    /// Every tool is listed.
    #[default]
    Full,
    /// `tools/list` lists only the hub's `search_tools` and `call_tool`.
    Search,
}

impl ProfileMode {
    /// `"full"` or `"search"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileMode::Full => "full",
            ProfileMode::Search => "search",
        }
    }
}

/// One entry of a profile's servers: a name or glob over server names and a tool filter.
#[derive(Debug, Clone)]
pub struct ProfileServers {
    pattern: String,
    matcher: GlobMatcher,
    tools: ToolFilter,
}

impl PartialEq for ProfileServers {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.tools == other.tools
    }
}

impl ProfileServers {
    /// The server name or glob, as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Which of those servers' tools the profile shows.
    pub fn tools(&self) -> &ToolFilter {
        &self.tools
    }
}

/// A named view of some servers and tools, served at `/mcp/<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The name (a URL path segment).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Full listing or search.
    pub mode: ProfileMode,
    servers: Vec<ProfileServers>,
}

impl Profile {
    /// A profile; `servers` are (server name or glob, tool filter) pairs, the first that matches
    /// a server decides its tools. An error names a pattern that does not compile.
    pub fn new(
        name: impl Into<String>,
        description: Option<String>,
        mode: ProfileMode,
        servers: Vec<(String, ToolFilter)>,
    ) -> Result<Profile, String> {
        let servers = servers
            .into_iter()
            .map(|(pattern, tools)| {
                let matcher = Glob::new(&pattern)
                    .map_err(|e| format!("invalid glob pattern `{pattern}`: {}", e.kind()))?
                    .compile_matcher();
                Ok(ProfileServers {
                    pattern,
                    matcher,
                    tools,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Profile {
            name: name.into(),
            description,
            mode,
            servers,
        })
    }

    /// The server entries, in order.
    pub fn servers(&self) -> &[ProfileServers] {
        &self.servers
    }

    /// The tool filter the profile applies to `server`, or `None` when it does not include it.
    pub fn selects(&self, server: &str) -> Option<&ToolFilter> {
        self.servers
            .iter()
            .find(|s| s.matcher.is_match(server))
            .map(|s| &s.tools)
    }
}

/// What one profile shows of one catalogue snapshot.
#[derive(Debug)]
pub struct View {
    /// The profile.
    pub profile: Arc<Profile>,
    /// The [`Catalog::version`] it was built from.
    pub catalog_version: u64,
    entries: [Vec<CatalogEntry>; 4],
    tool_index: HashMap<Arc<str>, usize>,
    prompt_index: HashMap<Arc<str>, usize>,
    /// The servers the profile includes, whether they have anything listed or not.
    servers: Vec<Arc<str>>,
    results: [OnceLock<Arc<RawValue>>; 4],
    search: OnceLock<SearchIndex>,
}

impl View {
    /// The part of `catalog` that `profile` shows.
    pub fn build(catalog: &Catalog, profile: Arc<Profile>) -> View {
        let mut entries: [Vec<CatalogEntry>; 4] = Default::default();
        let mut servers: Vec<Arc<str>> = Vec::new();
        let mut decided: HashMap<Arc<str>, Option<ToolFilter>> = HashMap::new();
        for list in CatalogList::ALL {
            let all = match list {
                CatalogList::Tools => catalog.tools(),
                CatalogList::Resources => catalog.resources(),
                CatalogList::ResourceTemplates => catalog.resource_templates(),
                CatalogList::Prompts => catalog.prompts(),
            };
            for e in all {
                let filter = decided
                    .entry(e.server.clone())
                    .or_insert_with(|| profile.selects(&e.server).cloned());
                let Some(filter) = filter else { continue };
                if list == CatalogList::Tools && !filter.allows(&e.original) {
                    continue;
                }
                entries[list.index()].push(e.clone());
            }
        }
        for s in catalog.server_names() {
            if profile.selects(s).is_some() {
                servers.push(s.clone());
            }
        }
        let index = |list: &[CatalogEntry]| -> HashMap<Arc<str>, usize> {
            list.iter()
                .enumerate()
                .map(|(i, e)| (e.exposed.clone(), i))
                .collect()
        };
        View {
            tool_index: index(&entries[CatalogList::Tools.index()]),
            prompt_index: index(&entries[CatalogList::Prompts.index()]),
            catalog_version: catalog.version,
            profile,
            entries,
            servers,
            results: Default::default(),
            search: OnceLock::new(),
        }
    }

    /// The entries of one list.
    pub fn entries(&self, list: CatalogList) -> &[CatalogEntry] {
        &self.entries[list.index()]
    }

    /// The tools it shows.
    pub fn tools(&self) -> &[CatalogEntry] {
        self.entries(CatalogList::Tools)
    }

    /// A tool it shows, by exposed name.
    pub fn tool(&self, exposed: &str) -> Option<&CatalogEntry> {
        self.tool_index.get(exposed).map(|&i| &self.tools()[i])
    }

    /// A prompt it shows, by exposed name.
    pub fn prompt(&self, exposed: &str) -> Option<&CatalogEntry> {
        self.prompt_index
            .get(exposed)
            .map(|&i| &self.entries(CatalogList::Prompts)[i])
    }

    /// Whether it includes `server` (for resources: a URI is reachable when its route's server
    /// is included).
    pub fn includes_server(&self, server: &str) -> bool {
        self.servers.iter().any(|s| &**s == server)
    }

    /// Whether a resource route leads to a server it includes.
    pub fn allows_resource(&self, route: &ResourceRoute) -> bool {
        self.includes_server(&route.server)
    }

    /// The result of a list request, computed once per view.
    pub fn list_result(&self, list: CatalogList) -> Arc<RawValue> {
        let i = list.index();
        self.results[i]
            .get_or_init(|| concat_list(&self.entries[i], list))
            .clone()
    }

    /// One list as a JSON array.
    pub fn list_json(&self, list: CatalogList) -> ListJson {
        ListJson::of(self.list_result(list), list)
    }

    /// Whether `list` shows the same items in both views (the same entries, in the same order,
    /// with the same JSON): what decides a `list_changed` for the profile's clients.
    pub fn same_list(&self, other: &View, list: CatalogList) -> bool {
        let (a, b) = (self.entries(list), other.entries(list));
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.exposed == y.exposed && (Arc::ptr_eq(&x.json, &y.json) || x.json == y.json)
            })
    }

    /// The tools that best match `query` (BM25 over names, titles, descriptions and parameter
    /// names), best first, at most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Vec<&CatalogEntry> {
        let index = self.search.get_or_init(|| SearchIndex::build(self.tools()));
        index
            .search(query, limit)
            .into_iter()
            .filter_map(|i| self.tools().get(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn profile(servers: &[(&str, &[&str], &[&str])]) -> Arc<Profile> {
        let servers = servers
            .iter()
            .map(|(p, inc, exc)| {
                let f = ToolFilter::new(
                    inc.iter().map(|s| (*s).to_owned()).collect(),
                    exc.iter().map(|s| (*s).to_owned()).collect(),
                )
                .unwrap();
                ((*p).to_owned(), f)
            })
            .collect();
        Arc::new(Profile::new("p", None, ProfileMode::Full, servers).unwrap())
    }

    fn catalog(version: u64) -> Catalog {
        let t = |n: &str| json!({"name": n, "inputSchema": {"type": "object"}});
        Catalog::from_tools(
            version,
            vec![
                ("gh".into(), vec![t("search"), t("delete_repo")]),
                ("jira-a".into(), vec![t("get")]),
                ("jira-b".into(), vec![t("get")]),
                ("other".into(), vec![t("x")]),
            ],
        )
    }

    #[test]
    fn a_view_shows_the_selected_servers_and_tools() {
        let c = catalog(1);
        let v = View::build(
            &c,
            profile(&[("gh", &[], &["delete_*"]), ("jira-*", &[], &[])]),
        );
        let names: Vec<&str> = v.tools().iter().map(|e| &*e.exposed).collect();
        assert_eq!(names, ["gh__search", "jira_a__get", "jira_b__get"]);
        assert!(v.tool("gh__delete_repo").is_none());
        assert!(v.tool("other__x").is_none());
        assert!(c.tool("gh__delete_repo").is_some());
        assert!(v.includes_server("jira-b") && !v.includes_server("other"));
        let listed: serde_json::Value =
            serde_json::from_str(v.list_result(CatalogList::Tools).get()).unwrap();
        assert_eq!(listed["tools"].as_array().unwrap().len(), 3);
        // The first matching entry decides: `gh` is not re-included by a later `*`.
        let v = View::build(&c, profile(&[("gh", &["search"], &[]), ("*", &[], &[])]));
        assert!(v.tool("gh__delete_repo").is_none());
        assert!(v.tool("other__x").is_some());
    }

    #[test]
    fn views_compare_by_what_they_show() {
        let p = profile(&[("gh", &[], &[])]);
        let a = View::build(&catalog(1), p.clone());
        let b = View::build(&catalog(2), p);
        assert!(a.same_list(&b, CatalogList::Tools));
        let c = View::build(&catalog(3), profile(&[("gh", &["search"], &[])]));
        assert!(!a.same_list(&c, CatalogList::Tools));
        assert!(a.same_list(&c, CatalogList::Prompts));
    }
}
