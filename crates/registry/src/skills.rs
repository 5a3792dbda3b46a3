//! The skills extension (SEP-2640, `io.modelcontextprotocol/skills`) through the hub.
//!
//! A skill is a set of ordinary resources plus an entry (`skills/list`, `skills/get`) that
//! carries each file's SHA-256 digest and size and the `SKILL.md` frontmatter. The hub is the
//! client of every upstream, so it is where a tampered, truncated or stale file can be stopped
//! before any downstream host sees it: every entry the hub relays is remembered (keyed by server
//! *and* URI, as the extension requires: two servers may serve the same `skill://` URI), and a
//! `resources/read` of a remembered file is verified against it. A mismatch is refreshed once
//! with `skills/get` (the entry may just be stale); content that still does not match is never
//! relayed. The hub never reads a skill file on its own (no prefetch on connect or on listing).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use mcp_hub_protocol::RawValue;
use mcp_hub_transport::RequestOptions;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::sync::lock;
use crate::{Registry, RouteError};

/// The extension's identifier in `capabilities.extensions`.
pub const SKILLS_EXTENSION: &str = "io.modelcontextprotocol/skills";
/// `skills/list`.
pub const SKILLS_LIST: &str = "skills/list";
/// `skills/get`.
pub const SKILLS_GET: &str = "skills/get";

/// Pages of one upstream's `skills/list` the hub follows before it stops (a server that hands
/// out cursors forever must not keep a call open forever).
const MAX_PAGES: usize = 64;
/// Files the hub remembers across all skills of one server; the extension caps a skill at 512
/// files, and a listing may be large, but memory is not unbounded.
const MAX_FILES_PER_SERVER: usize = 65_536;

/// What the hub holds for one file of a skill it relayed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expected {
    /// The upstream URI of the skill's `SKILL.md` (for a refresh with `skills/get`).
    skill_uri: String,
    /// `sha256:<hex>`; `None` when the skill's resources are `"dynamic"`.
    digest: Option<String>,
    size: Option<u64>,
    /// The entry's frontmatter, for the skill's own `SKILL.md`.
    frontmatter: Option<Map<String, Value>>,
}

/// Entries the hub has relayed, by (server, upstream URI), and the exposed URIs they answer to.
#[derive(Debug, Default)]
pub(crate) struct SkillIndex {
    files: HashMap<(Arc<str>, String), Expected>,
    exposed: HashMap<String, (Arc<str>, String)>,
}

impl SkillIndex {
    fn route(&self, exposed: &str) -> Option<(Arc<str>, String)> {
        self.exposed.get(exposed).cloned()
    }

    fn count(&self, server: &str) -> usize {
        self.files.keys().filter(|(s, _)| &**s == server).count()
    }

    /// Remembers one entry of `server` (its URIs as the upstream spells them); an invalid entry
    /// is not remembered, and hosts must not load it anyway.
    fn remember(&mut self, server: &Arc<str>, entry: &Value, expose: &dyn Fn(&str) -> String) {
        let Some(files) = entry_files(entry) else {
            return;
        };
        let Some(skill_uri) = entry.get("uri").and_then(Value::as_str) else {
            return;
        };
        let frontmatter = entry.get("frontmatter").and_then(Value::as_object);
        if self.count(server) + files.len() > MAX_FILES_PER_SERVER {
            tracing::warn!(target: "mcp_hub::registry", server = %server,
                "skills: more than {MAX_FILES_PER_SERVER} skill files listed; the rest are relayed unverified");
            return;
        }
        // The SKILL.md itself is always checked against the frontmatter, even when dynamic.
        let mut all = files;
        if !all.iter().any(|f| f.0 == skill_uri) {
            all.push((skill_uri.to_owned(), None, None));
        }
        for (uri, digest, size) in all {
            let expected = Expected {
                skill_uri: skill_uri.to_owned(),
                digest,
                size,
                frontmatter: (uri == skill_uri).then(|| frontmatter.cloned()).flatten(),
            };
            self.exposed
                .insert(expose(&uri), (server.clone(), uri.clone()));
            self.files.insert((server.clone(), uri), expected);
        }
    }
}

/// One file of an entry: its URI, digest and size (`None`s when the skill is dynamic).
type SkillFile = (String, Option<String>, Option<u64>);

/// The files of a valid entry: `(uri, digest, size)`, with `None`s for a dynamic skill. `None`
/// for an entry the extension calls invalid (no uri, no frontmatter name/description, resources
/// neither an array of complete file records nor `"dynamic"`).
fn entry_files(entry: &Value) -> Option<Vec<SkillFile>> {
    entry.get("uri")?.as_str()?;
    let fm = entry.get("frontmatter")?.as_object()?;
    fm.get("name")?.as_str()?;
    fm.get("description")?.as_str()?;
    match entry.get("resources")? {
        Value::String(s) if s == "dynamic" => Some(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|f| {
                Some((
                    f.get("uri")?.as_str()?.to_owned(),
                    Some(f.get("digest")?.as_str()?.to_owned()),
                    Some(f.get("size")?.as_u64()?),
                ))
            })
            .collect(),
        _ => None,
    }
}

/// Why relayed content did not match its entry.
pub(crate) fn verify(
    expected: &Expected,
    upstream_uri: &str,
    result: &Value,
) -> Result<(), String> {
    let contents = result
        .get("contents")
        .and_then(Value::as_array)
        .ok_or("the read result has no contents")?;
    let item = match contents.as_slice() {
        [only] => only,
        many => many
            .iter()
            .find(|c| c.get("uri").and_then(Value::as_str) == Some(upstream_uri))
            .ok_or("the read result does not hold the requested file")?,
    };
    let bytes: Vec<u8> = if let Some(text) = item.get("text").and_then(Value::as_str) {
        text.as_bytes().to_vec()
    } else if let Some(blob) = item.get("blob").and_then(Value::as_str) {
        base64::engine::general_purpose::STANDARD
            .decode(blob)
            .map_err(|_| "the blob is not valid base64")?
    } else {
        return Err("the content has neither text nor blob".into());
    };
    if let Some(size) = expected.size
        && bytes.len() as u64 != size
    {
        return Err(format!(
            "size mismatch: the entry says {size} bytes, the server sent {}",
            bytes.len()
        ));
    }
    if let Some(digest) = &expected.digest {
        let actual = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        if !digest.eq_ignore_ascii_case(&actual) {
            return Err("digest mismatch: the content is not what the entry describes".into());
        }
    }
    if let Some(fm) = &expected.frontmatter {
        let text = std::str::from_utf8(&bytes).map_err(|_| "SKILL.md is not UTF-8")?;
        let parsed = frontmatter(text)?;
        if &parsed != fm {
            let differing: Vec<&str> = fm
                .keys()
                .chain(parsed.keys())
                .filter(|k| fm.get(*k) != parsed.get(*k))
                .map(String::as_str)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            return Err(format!(
                "frontmatter mismatch: the SKILL.md differs from its entry in {}",
                differing.join(", ")
            ));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The YAML frontmatter at the start of a `SKILL.md`, as JSON.
pub(crate) fn frontmatter(text: &str) -> Result<Map<String, Value>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return Err("SKILL.md does not start with YAML frontmatter".into());
    }
    let mut yaml = String::new();
    let mut closed = false;
    for line in lines {
        if line.trim_end() == "---" {
            closed = true;
            break;
        }
        yaml.push_str(line);
    }
    if !closed {
        return Err("SKILL.md frontmatter is not closed".into());
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(&yaml)
        .map_err(|e| format!("SKILL.md frontmatter is not valid YAML: {e}"))?;
    match docs.first().map(yaml_to_json) {
        Some(Value::Object(o)) => Ok(o),
        _ => Err("SKILL.md frontmatter is not a mapping".into()),
    }
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(s.clone()), Value::Number),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) | Yaml::Real(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        _ => String::new(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

impl Registry {
    /// Connected servers that declare the skills extension, in config order.
    fn skill_servers(&self) -> Vec<Arc<str>> {
        lock(&self.inner.servers)
            .iter()
            .filter(|(_, slot)| {
                slot.state.session().is_some_and(|s| {
                    s.initialize_result()
                        .capabilities
                        .get("extensions")
                        .and_then(|e| e.get(SKILLS_EXTENSION))
                        .is_some()
                })
            })
            .map(|(name, _)| Arc::from(name.as_str()))
            .collect()
    }

    /// Whether any connected server offers skills.
    pub fn offers_skills(&self) -> bool {
        !self.skill_servers().is_empty()
    }

    /// `skills/list` over every connected server that offers skills, as one page. Entries keep
    /// their shape; their URIs are the exposed ones. A server that fails to list is left out
    /// (a partial listing is allowed, and proves nothing about a server's skills).
    pub async fn list_skills(&self, opts: RequestOptions) -> Result<Box<RawValue>, RouteError> {
        self.list_skills_of(opts, &|_| true).await
    }

    /// [`Registry::list_skills`] over the servers `keep` admits (a profile's servers).
    pub async fn list_skills_of(
        &self,
        opts: RequestOptions,
        keep: &(dyn Fn(&str) -> bool + Send + Sync),
    ) -> Result<Box<RawValue>, RouteError> {
        let mut skills = Vec::new();
        let mut ttl: Option<u64> = None;
        for server in self.skill_servers().into_iter().filter(|s| keep(s)) {
            let mut cursor: Option<Value> = None;
            for _ in 0..MAX_PAGES {
                let mut params = Map::new();
                if let Some(c) = cursor.take() {
                    params.insert("cursor".into(), c);
                }
                let page = match self
                    .request(&server, SKILLS_LIST, Some(params), opts.clone())
                    .await
                {
                    Ok(raw) => serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null),
                    Err(e) => {
                        tracing::debug!(target: "mcp_hub::registry", server = %server, "skills/list failed: {e}");
                        break;
                    }
                };
                if let Some(t) = page.get("ttlMs").and_then(Value::as_u64) {
                    ttl = Some(ttl.map_or(t, |x| x.min(t)));
                }
                for entry in page
                    .get("skills")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    skills.push(self.relay_entry(&server, entry));
                }
                match page.get("nextCursor") {
                    Some(c) if !c.is_null() => cursor = Some(c.clone()),
                    _ => break,
                }
            }
        }
        to_raw(&json!({
            "resultType": "complete",
            "skills": skills,
            // The hub's view mixes servers and changes with them: cache it briefly and privately.
            "ttlMs": ttl.unwrap_or(0),
            "cacheScope": "private",
        }))
    }

    /// `skills/get` by exposed URI, routed to the server that serves the skill.
    pub async fn get_skill(
        &self,
        params: Map<String, Value>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, RouteError> {
        let uri = params
            .get("uri")
            .and_then(Value::as_str)
            .ok_or_else(|| RouteError::InvalidParams("missing uri".into()))?;
        let (server, upstream_uri) = self
            .skill_route(uri)
            .ok_or_else(|| RouteError::InvalidParams(format!("unknown skill: {uri}")))?;
        let mut result = self.fetch_entry(&server, &upstream_uri, opts).await?;
        if let Some(entry) = result.get("skill").cloned() {
            result["skill"] = self.relay_entry(&server, &entry);
        }
        to_raw(&result)
    }

    /// Where an exposed URI that may name a skill file goes: a relayed entry first, then the
    /// catalogue (a skill can be read, and got, by URI without ever being listed).
    pub(crate) fn skill_route(&self, exposed: &str) -> Option<(Arc<str>, String)> {
        if let Some(r) = lock(&self.inner.skills).route(exposed) {
            return Some(r);
        }
        let route = self.catalog().resource(exposed)?;
        let offers = self.skill_servers().contains(&route.server);
        offers.then_some((route.server, route.upstream_uri))
    }

    /// The server that serves an exposed skill URI, if the hub knows it as one.
    pub fn skill_owner(&self, exposed: &str) -> Option<String> {
        self.skill_route(exposed).map(|(s, _)| s.to_string())
    }

    async fn fetch_entry(
        &self,
        server: &str,
        upstream_uri: &str,
        opts: RequestOptions,
    ) -> Result<Value, RouteError> {
        let mut p = Map::new();
        p.insert("uri".into(), Value::String(upstream_uri.to_owned()));
        let raw = self.request(server, SKILLS_GET, Some(p), opts).await?;
        Ok(serde_json::from_str(raw.get()).unwrap_or(Value::Null))
    }

    /// Remembers an entry of `server` and returns it with exposed URIs.
    fn relay_entry(&self, server: &Arc<str>, entry: &Value) -> Value {
        let catalog = self.catalog();
        let mut index = lock(&self.inner.skills);
        let taken = |index: &SkillIndex, exposed: &str| {
            index.exposed.get(exposed).is_some_and(|(s, _)| s != server)
        };
        // Same URI on two unprefixed servers: the second is exposed under its server's name, so
        // neither shadows the other.
        let expose = |uri: &str| {
            let e = catalog.expose_uri(server, uri);
            if taken(&index, &e) {
                format!("{server}{}{uri}", crate::NAMESPACE_SEPARATOR)
            } else {
                e
            }
        };
        let exposed_uri = |uri: &str| expose(uri);
        let mut out = entry.clone();
        if let Some(u) = out.get_mut("uri")
            && let Some(s) = u.as_str()
        {
            *u = Value::String(exposed_uri(s));
        }
        if let Some(items) = out.get_mut("resources").and_then(Value::as_array_mut) {
            for f in items {
                if let Some(u) = f.get_mut("uri")
                    && let Some(s) = u.as_str()
                {
                    *u = Value::String(exposed_uri(s));
                }
            }
        }
        let mapping: HashMap<String, String> = entry_files(entry)
            .into_iter()
            .flatten()
            .map(|(u, _, _)| (u.clone(), exposed_uri(&u)))
            .chain(
                entry
                    .get("uri")
                    .and_then(Value::as_str)
                    .map(|u| (u.to_owned(), exposed_uri(u))),
            )
            .collect();
        index.remember(server, entry, &|u: &str| {
            mapping.get(u).cloned().unwrap_or_else(|| u.to_owned())
        });
        out
    }

    /// Checks a `resources/read` result against the skill entry that lists the file, if the hub
    /// relayed one. On a mismatch the entry is refreshed once (it may be stale); content that
    /// still does not match is refused.
    pub(crate) async fn verify_skill_read(
        &self,
        server: &Arc<str>,
        upstream_uri: &str,
        exposed_uri: &str,
        raw: &RawValue,
        opts: &RequestOptions,
    ) -> Result<(), RouteError> {
        let key = (server.clone(), upstream_uri.to_owned());
        let Some(expected) = lock(&self.inner.skills).files.get(&key).cloned() else {
            return Ok(());
        };
        let result: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
        let Err(first) = verify(&expected, upstream_uri, &result) else {
            return Ok(());
        };
        let refreshed = match self
            .fetch_entry(server, &expected.skill_uri, opts.clone())
            .await
        {
            Ok(r) => r.get("skill").cloned(),
            Err(_) => None,
        };
        let verdict = match refreshed.filter(|e| entry_files(e).is_some()) {
            Some(entry) => {
                {
                    let mut index = lock(&self.inner.skills);
                    index
                        .files
                        .retain(|(s, _), e| !(s == server && e.skill_uri == expected.skill_uri));
                }
                self.relay_entry(server, &entry);
                let now = lock(&self.inner.skills).files.get(&key).cloned();
                match now {
                    Some(e) => verify(&e, upstream_uri, &result),
                    // The current entry no longer lists the file: it is not part of the skill.
                    None => Err("the file is not listed in the skill's current entry".into()),
                }
            }
            None => Err(first),
        };
        verdict.map_err(|reason| {
            tracing::warn!(target: "mcp_hub::registry", server = %server, uri = %exposed_uri,
                "skill file refused: {reason}");
            RouteError::SkillVerification {
                uri: exposed_uri.to_owned(),
                reason,
            }
        })
    }

    /// Forgets the entries of a server that is gone or reconnected (its skills may differ).
    pub(crate) fn forget_skills(&self, server: &str) {
        let mut index = lock(&self.inner.skills);
        index.files.retain(|(s, _), _| &**s != server);
        index.exposed.retain(|_, (s, _)| &**s != server);
    }
}

fn to_raw(v: &Value) -> Result<Box<RawValue>, RouteError> {
    mcp_hub_protocol::to_raw(v).map_err(|e| RouteError::InvalidParams(e.to_string()))
}

#[cfg(test)]
mod tests;
