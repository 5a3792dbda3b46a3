//! Sessions opened on a profile's endpoint (`/mcp/<name>`): they see the profile's [`View`] of
//! the catalogue instead of the whole of it. Listing answers from the view, a routed request
//! that names something outside it is refused exactly as an unknown name is, `list_changed`
//! goes out only when the view's list changed, and in search mode the tools are reached through
//! the hub's `search_tools` and `call_tool` (see `search`).
//!
//! The same holds for 2026-07-28 requests to a profile's endpoint, which have no session: they
//! are served with the [`Sight`] of the path's profile (`stateless`).
//!
//! The rest of `mcp` calls in at four points: `local_request` (lists), `run_call` and
//! `stateless_call` (the gate before routing), the registry-event fan-out and the stateless
//! `subscriptions/listen` streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcp_hub_protocol::methods as m;
use mcp_hub_protocol::{ErrorCode, ErrorObject, Message, RawValue, Request};
use mcp_hub_registry::{CatalogList, ProfileMode, View};
use serde_json::{Map, Value, json};

use super::dispatch::{asks_for_cursor, err, list_of, reply, shape_list, unknown_cursor};
use super::search;
use super::session::Session;
use super::{Inner, lock};

/// The profile a request's path named (`/mcp/<name>...`), put in its extensions by the router.
#[derive(Debug, Clone)]
pub(crate) struct ProfilePath(pub(crate) Arc<str>);

/// The profile an HTTP request named, if any.
pub(crate) fn requested(ext: &http::Extensions) -> Option<Arc<str>> {
    ext.get::<ProfilePath>().map(|p| p.0.clone())
}

/// `/mcp/<name>` → (`name`, ``), `/mcp/<name>/sse` → (`name`, `/sse`), ….
pub(crate) fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/mcp/")?;
    let (name, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    (!name.is_empty()).then_some((name, tail))
}

/// What a session (or a stateless request) sees.
#[derive(Clone)]
pub(crate) enum Sight {
    /// Everything (`/mcp`).
    All,
    /// A profile's view.
    View(Arc<View>),
    /// Its profile was removed by a reload: nothing.
    Gone,
}

impl Sight {
    /// Whether it shows anything of `server`.
    pub(crate) fn sees(&self, server: &str) -> bool {
        match self {
            Sight::All => true,
            Sight::View(v) => v.includes_server(server),
            Sight::Gone => false,
        }
    }

    /// Whether it is a search-mode profile's view.
    pub(crate) fn is_search(&self) -> bool {
        matches!(self, Sight::View(v) if v.profile.mode == ProfileMode::Search)
    }
}

/// What the gate decided about a routed request.
pub(crate) enum Gate {
    /// Route it, with these params.
    Route(Map<String, Value>),
    /// Answer it without routing.
    Answer(Result<Box<RawValue>, ErrorObject>),
}

/// Which of a profile's lists changed from one view to the next, as its clients list them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ViewChange {
    pub(crate) tools: bool,
    pub(crate) resources: bool,
    pub(crate) prompts: bool,
}

impl ViewChange {
    /// `None` is a profile that does not exist (removed, or not yet there): nothing to show.
    pub(crate) fn between(before: Option<&View>, now: Option<&View>) -> ViewChange {
        let changed = |list: CatalogList| match (before, now) {
            (Some(a), Some(b)) => !a.same_list(b, list),
            (None, None) => false,
            _ => true,
        };
        let search = now
            .or(before)
            .is_some_and(|v| v.profile.mode == ProfileMode::Search);
        ViewChange {
            // A search profile's `tools/list` is always the same two tools, until the profile
            // changes mode.
            tools: match (before, now) {
                (Some(a), Some(b)) if a.profile.mode != b.profile.mode => true,
                _ => !search && changed(CatalogList::Tools),
            },
            resources: changed(CatalogList::Resources) || changed(CatalogList::ResourceTemplates),
            prompts: changed(CatalogList::Prompts),
        }
    }
}

/// The views last announced to each profile's sessions, to tell what changed.
#[derive(Default)]
pub(crate) struct Announced(Mutex<HashMap<Arc<str>, Option<Arc<View>>>>);

impl Inner {
    pub(crate) fn sight(&self, session: &Session) -> Sight {
        let profile = session.lock().profile.clone();
        self.sight_of(profile.as_deref())
    }

    /// What the endpoint of `profile` (`None`: `/mcp`) shows now.
    pub(crate) fn sight_of(&self, profile: Option<&str>) -> Sight {
        match profile {
            None => Sight::All,
            Some(p) => match self.registry.view(p) {
                Some(v) => Sight::View(v),
                None => Sight::Gone,
            },
        }
    }

    /// Whether a session sees `server` at all (for the instructions of `initialize`).
    pub(crate) fn sees_server(&self, session: &Session, server: &str) -> bool {
        self.sight(session).sees(server)
    }

    /// A list's result as a profile's endpoint shows it, in the latest shape (what a
    /// 2026-07-28 request gets); `None` for the full view, which the catalogue answers.
    pub(crate) fn sight_list(&self, sight: &Sight, which: CatalogList) -> Option<Box<RawValue>> {
        let text = match sight {
            Sight::All => return None,
            Sight::View(_) if which == CatalogList::Tools && sight.is_search() => {
                format!("{{\"tools\":{}}}", search::HUB_TOOLS)
            }
            Sight::View(v) => return Some(v.list_result(which).as_ref().to_owned()),
            Sight::Gone => format!("{{\"{}\":[]}}", which.key()),
        };
        RawValue::from_string(text).ok()
    }

    /// Answers a list request of a profile session; `None` for other requests and sessions.
    /// The cached result of a list request that is answered as it stands (2025-11-25 and
    /// later, no cursor, not a search profile's tools): shared with the catalogue snapshot or
    /// the profile's view, so it can be sent without a copy.
    pub(crate) fn cached_list(
        &self,
        session: &Session,
        req: &Request,
    ) -> Option<Arc<mcp_hub_protocol::RawValue>> {
        let which = list_of(&req.method)?;
        if session.version() < mcp_hub_protocol::ProtocolVersion::V2025_11_25
            || asks_for_cursor(req)
        {
            return None;
        }
        match self.sight(session) {
            Sight::All => Some(self.registry.catalog().list_result(which)),
            Sight::View(v)
                if !(v.profile.mode == ProfileMode::Search && which == CatalogList::Tools) =>
            {
                Some(v.list_result(which))
            }
            Sight::View(_) | Sight::Gone => None,
        }
    }

    pub(crate) fn profile_list(&self, session: &Session, req: &Request) -> Option<Message> {
        let which = list_of(&req.method)?;
        let view = match self.sight(session) {
            Sight::All => return None,
            Sight::View(v) => Some(v),
            Sight::Gone => None,
        };
        if asks_for_cursor(req) {
            return Some(unknown_cursor(req));
        }
        let key = which.key();
        let items = match &view {
            Some(v) if which == CatalogList::Tools && v.profile.mode == ProfileMode::Search => {
                search::HUB_TOOLS.to_owned()
            }
            Some(v) => v.list_json(which).to_string(),
            None => "[]".to_owned(),
        };
        let items = shape_list(&items, session.version());
        Some(reply(
            req,
            RawValue::from_string(format!("{{\"{key}\":{items}}}"))
                .map_err(|e| err(ErrorCode::INTERNAL_ERROR, e.to_string())),
        ))
    }

    /// Before a request is routed: refuses what the session's profile does not show, the way an
    /// unknown name is refused, and serves the search mode's own tools.
    pub(crate) fn gate(&self, sight: &Sight, method: &str, mut params: Map<String, Value>) -> Gate {
        let view = match sight {
            Sight::All => return Gate::Route(params),
            Sight::View(v) => Some(v.clone()),
            Sight::Gone => None,
        };
        let name =
            |p: &Map<String, Value>, k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        let shows_tool = |n: &str| view.as_ref().is_some_and(|v| v.tool(n).is_some());
        let shows_uri = |uri: &str| self.shows_uri(sight, uri);
        let unknown_tool = |n: &str| {
            Gate::Answer(Err(err(
                ErrorCode::INVALID_PARAMS,
                format!("Unknown tool: {n}"),
            )))
        };
        match method {
            m::TOOLS_CALL => {
                let Some(n) = name(&params, "name") else {
                    return Gate::Route(params);
                };
                let search = view
                    .as_ref()
                    .is_some_and(|v| v.profile.mode == ProfileMode::Search);
                if search && n == search::SEARCH_TOOLS {
                    let Some(v) = &view else {
                        return unknown_tool(&n);
                    };
                    return Gate::Answer(search::search_tools(v, &params));
                }
                if search && n == search::CALL_TOOL {
                    // Taken apart by value: nothing of the arguments is copied.
                    let mut args = match params.remove("arguments") {
                        Some(Value::Object(a)) => a,
                        None | Some(Value::Null) => Map::new(),
                        Some(_) => {
                            return Gate::Answer(Err(err(
                                ErrorCode::INVALID_PARAMS,
                                "Invalid params: arguments must be an object",
                            )));
                        }
                    };
                    let Some(Value::String(target)) = args.remove("name") else {
                        return Gate::Answer(Err(err(
                            ErrorCode::INVALID_PARAMS,
                            "Invalid params: call_tool needs the `name` of a tool found with search_tools",
                        )));
                    };
                    if !shows_tool(&target) {
                        return unknown_tool(&target);
                    }
                    // The call goes out as the direct call it stands for; the request's `_meta`
                    // (its progress token) stays, so progress and cancellation work as usual.
                    let mut direct = Map::new();
                    direct.insert("name".into(), Value::String(target));
                    direct.insert(
                        "arguments".into(),
                        args.remove("arguments").unwrap_or_else(|| json!({})),
                    );
                    if let Some(meta) = params.remove("_meta") {
                        direct.insert("_meta".into(), meta);
                    }
                    return Gate::Route(direct);
                }
                if shows_tool(&n) {
                    Gate::Route(params)
                } else {
                    unknown_tool(&n)
                }
            }
            m::PROMPTS_GET => match name(&params, "name") {
                Some(n) if view.as_ref().is_none_or(|v| v.prompt(&n).is_none()) => {
                    Gate::Answer(Err(err(
                        ErrorCode::INVALID_PARAMS,
                        format!("Unknown prompt: {n}"),
                    )))
                }
                _ => Gate::Route(params),
            },
            m::RESOURCES_READ | m::RESOURCES_SUBSCRIBE | m::RESOURCES_UNSUBSCRIBE => {
                match name(&params, "uri") {
                    Some(uri) if !shows_uri(&uri) => Gate::Answer(Err(ErrorObject::with_data(
                        ErrorCode::RESOURCE_NOT_FOUND,
                        "Resource not found",
                        &json!({"uri": uri}),
                    ))),
                    _ => Gate::Route(params),
                }
            }
            mcp_hub_registry::SKILLS_GET => match name(&params, "uri") {
                Some(uri)
                    if !self
                        .registry
                        .skill_owner(&uri)
                        .is_some_and(|s| view.as_ref().is_some_and(|v| v.includes_server(&s))) =>
                {
                    Gate::Answer(Err(err(
                        ErrorCode::INVALID_PARAMS,
                        format!("Invalid params: unknown skill: {uri}"),
                    )))
                }
                _ => Gate::Route(params),
            },
            m::COMPLETION_COMPLETE => {
                let r = params.get("ref").cloned().unwrap_or(Value::Null);
                let allowed = match r.get("type").and_then(Value::as_str) {
                    Some("ref/prompt") => r
                        .get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| view.as_ref().is_some_and(|v| v.prompt(n).is_some())),
                    Some("ref/resource") => {
                        r.get("uri").and_then(Value::as_str).is_some_and(shows_uri)
                    }
                    _ => false,
                };
                if allowed {
                    Gate::Route(params)
                } else {
                    Gate::Answer(Err(err(
                        ErrorCode::INVALID_PARAMS,
                        "Invalid params: unknown completion reference",
                    )))
                }
            }
            _ => Gate::Route(params),
        }
    }

    /// Whether a resource URI (or one of a template's) leads to a server `sight` shows.
    pub(crate) fn shows_uri(&self, sight: &Sight, uri: &str) -> bool {
        match sight {
            Sight::All => true,
            Sight::View(v) => self
                .registry
                .catalog()
                .resource(uri)
                .is_some_and(|r| v.allows_resource(&r)),
            Sight::Gone => false,
        }
    }

    /// `skills/list` of the servers a sight shows.
    pub(crate) async fn list_skills(
        &self,
        sight: &Sight,
        opts: mcp_hub_registry::RequestOptions,
    ) -> Result<Box<RawValue>, mcp_hub_registry::RouteError> {
        match sight {
            Sight::All => self.registry.list_skills(opts).await,
            Sight::View(v) => {
                self.registry
                    .list_skills_of(opts, &|s| v.includes_server(s))
                    .await
            }
            Sight::Gone => self.registry.list_skills_of(opts, &|_| false).await,
        }
    }

    /// After the catalogue or the profiles changed: each profile's sessions hear
    /// `list_changed` for the lists their view changed in, and only those.
    pub(crate) fn announce_views(&self, sessions: &[Arc<Session>]) {
        let mut by_profile: HashMap<Arc<str>, Vec<&Arc<Session>>> = HashMap::new();
        for s in sessions {
            let st = s.lock();
            if let (true, Some(p)) = (st.initialized, st.profile.clone()) {
                by_profile.entry(p).or_default().push(s);
            }
        }
        let mut announced = lock(&self.announced.0);
        announced.retain(|p, _| by_profile.contains_key(p));
        for (profile, members) in by_profile {
            let now = self.registry.view(&profile);
            let before = announced.insert(profile.clone(), now.clone());
            let Some(before) = before else {
                // First event this profile's sessions live through: nothing to compare with;
                // they listed after the view they know.
                continue;
            };
            let ViewChange {
                tools,
                resources,
                prompts,
            } = ViewChange::between(before.as_deref(), now.as_deref());
            let mut msgs = Vec::new();
            for (changed, method) in [
                (tools, m::TOOLS_LIST_CHANGED),
                (resources, m::RESOURCES_LIST_CHANGED),
                (prompts, m::PROMPTS_LIST_CHANGED),
            ] {
                if changed {
                    msgs.push(Message::notification(method, None));
                }
            }
            for s in members {
                for msg in &msgs {
                    s.send_unrelated(msg);
                }
            }
        }
    }

    /// Notes the view a profile's new session starts from, so the next change is measured
    /// against what it listed.
    pub(crate) fn note_view(&self, session: &Session) {
        let Some(p) = session.lock().profile.clone() else {
            return;
        };
        let mut announced = lock(&self.announced.0);
        announced
            .entry(p.clone())
            .or_insert_with(|| self.registry.view(&p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(version: u64, mode: ProfileMode, tools: &[&str]) -> View {
        let t = |n: &&str| json!({"name": n, "inputSchema": {"type": "object"}});
        let catalog = mcp_hub_registry::Catalog::from_tools(
            version,
            vec![("s".into(), tools.iter().map(t).collect())],
        );
        let p =
            mcp_hub_registry::Profile::new("p", None, mode, vec![("s".into(), Default::default())])
                .unwrap();
        View::build(&catalog, Arc::new(p))
    }

    #[test]
    fn a_view_changes_only_where_its_lists_do() {
        let full = |v, t: &[&str]| view(v, ProfileMode::Full, t);
        let a = full(1, &["x", "y"]);
        // A new snapshot with the same tools (another server changed): nothing to say.
        assert_eq!(
            ViewChange::between(Some(&a), Some(&full(2, &["x", "y"]))),
            ViewChange::default()
        );
        let c = ViewChange::between(Some(&a), Some(&full(3, &["x"])));
        assert!(c.tools && !c.prompts && !c.resources, "{c:?}");
        // Search mode lists the same two tools whatever its view holds...
        let s = |v, t: &[&str]| view(v, ProfileMode::Search, t);
        assert!(!ViewChange::between(Some(&s(1, &["x"])), Some(&s(2, &["y"]))).tools);
        // ...until the profile changes mode.
        assert!(ViewChange::between(Some(&a), Some(&s(2, &["x", "y"]))).tools);
        // A profile that appears or goes away changes every list.
        let gone = ViewChange::between(Some(&a), None);
        assert!(gone.tools && gone.prompts && gone.resources);
        assert_eq!(ViewChange::between(None, None), ViewChange::default());
    }

    #[test]
    fn profile_paths() {
        assert_eq!(split_path("/mcp/dev"), Some(("dev", "")));
        assert_eq!(split_path("/mcp/dev/sse"), Some(("dev", "/sse")));
        assert_eq!(split_path("/mcp/dev/messages"), Some(("dev", "/messages")));
        assert_eq!(split_path("/mcp/"), None);
        assert_eq!(split_path("/mcp"), None);
        assert_eq!(split_path("/mcpx/a"), None);
    }
}
