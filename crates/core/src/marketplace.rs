//! The marketplace catalogue behind `GET /api/marketplace` and `POST /api/marketplace/details`,
//! with the Node `mcp-hub` 4.2.1 registry, cache file format, filters and sort orders.
//!
//! The cache file (`<data>/cache/registry.json`) is shared with Node hubs, so it keeps their
//! shape: `{registry, lastFetchedAt, serverDocumentation: {<id>: {content, lastFetchedAt}}}`
//! with millisecond timestamps, and a one-hour lifetime for the catalogue and for each README.
//!
//! Where we deliberately differ from the Node hub:
//! * nothing is fetched at startup (the Node hub blocks its startup on the registry); the
//!   catalogue is loaded on the first request;
//! * when the registry cannot be fetched, a stale catalogue (and stale READMEs) are served
//!   instead of failing, and the fetch is not retried for [`RETRY_AFTER_FAILURE`];
//! * `tags` pieces are trimmed and empty pieces ignored (`tags=a,` matches like `tags=a`);
//! * entries missing `name`, `description` or `tags` are treated as empty instead of failing
//!   the whole request; there is no shell `curl` fallback.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use mcp_hub_transport::HttpClient;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

/// The registry the Node hub uses (since 4.0.0).
pub const DEFAULT_REGISTRY_URL: &str = "https://ravitemer.github.io/mcp-registry/registry.json";
/// Where READMEs are fetched from: `<base>/<owner>/<repo>/<branch>/README.md`.
pub const DEFAULT_README_BASE: &str = "https://raw.githubusercontent.com";
/// Lifetime of the cached catalogue and of each cached README (Node: one hour).
pub const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);
/// After a failed registry fetch with a stale catalogue at hand, how long the stale one is
/// served before the registry is tried again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// Bound on one HTTP exchange with the registry or GitHub.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// The registry is one JSON document that grows with the catalogue; READMEs use the client's
/// default bound.
const REGISTRY_BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Branches tried for a README, in order.
const README_BRANCHES: [&str; 2] = ["main", "master"];

/// Errors of the marketplace.
#[derive(Debug, thiserror::Error)]
pub enum MarketplaceError {
    /// The registry could not be fetched and no cached catalogue exists.
    #[error("marketplace registry unreachable: {0}")]
    Unreachable(String),
    /// The registry answered with something that is not a catalogue.
    #[error("marketplace registry invalid: {0}")]
    Invalid(String),
    /// No catalogue entry has this id (the REST layer answers 400 "Server not found").
    #[error("Server not found")]
    NotFound(String),
}

/// The marketplace: a lazily fetched, disk-cached registry catalogue and per-server READMEs.
#[derive(Debug)]
pub struct Marketplace {
    cache_file: PathBuf,
    registry_url: String,
    readme_base: String,
    ttl: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    loaded: bool,
    registry: Option<Arc<Value>>,
    fetched_at_ms: Option<u64>,
    docs: Map<String, Value>,
    last_failure: Option<Instant>,
}

/// The on-disk shape, shared with the Node hub.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    #[serde(default)]
    registry: Option<Value>,
    #[serde(rename = "lastFetchedAt", default)]
    last_fetched_at: Option<u64>,
    #[serde(rename = "serverDocumentation", default)]
    server_documentation: Map<String, Value>,
}

impl Marketplace {
    /// A marketplace caching to `cache_file` (usually [`crate::Paths::marketplace_cache`]),
    /// reading the catalogue from `registry_url` and READMEs from `readme_base` (see
    /// [`DEFAULT_REGISTRY_URL`], [`DEFAULT_README_BASE`]). Nothing is read or fetched yet.
    pub fn new(
        cache_file: impl Into<PathBuf>,
        registry_url: impl Into<String>,
        readme_base: impl Into<String>,
    ) -> Marketplace {
        Marketplace {
            cache_file: cache_file.into(),
            registry_url: registry_url.into(),
            readme_base: readme_base.into().trim_end_matches('/').to_owned(),
            ttl: DEFAULT_TTL,
            state: Mutex::new(State::default()),
        }
    }

    /// Changes the cache lifetime (default: one hour, as the Node hub).
    pub fn with_ttl(mut self, ttl: Duration) -> Marketplace {
        self.ttl = ttl;
        self
    }

    /// The catalogue entries matching `query` (`search`, `category`, `tags`, `sort`), as a JSON
    /// array of registry server objects.
    pub async fn list(&self, query: &HashMap<String, String>) -> Result<Value, MarketplaceError> {
        let registry = self.catalogue().await?;
        Ok(Value::Array(query_catalogue(servers_of(&registry), query)))
    }

    /// One catalogue entry and its README: `{server, readmeContent}` (`readmeContent` is `null`
    /// when no README could be found).
    pub async fn details(&self, mcp_id: &str) -> Result<Value, MarketplaceError> {
        let registry = self.catalogue().await?;
        let server = servers_of(&registry)
            .iter()
            .find(|s| s.get("id").and_then(Value::as_str) == Some(mcp_id))
            .cloned()
            .ok_or_else(|| MarketplaceError::NotFound(mcp_id.to_owned()))?;

        let cached = {
            let st = self.state.lock().await;
            st.docs.get(mcp_id).cloned()
        };
        let cached_content = cached
            .as_ref()
            .map(|d| d.get("content").and_then(Value::as_str).map(str::to_owned));
        let cached_at = cached
            .as_ref()
            .and_then(|d| d.get("lastFetchedAt"))
            .and_then(Value::as_u64);
        if let (Some(content), Some(at)) = (&cached_content, cached_at)
            && self.is_fresh(at)
        {
            return Ok(json!({"server": server, "readmeContent": content}));
        }

        let url = server.get("url").and_then(Value::as_str).unwrap_or("");
        let readme = match self.fetch_readme(url).await {
            Some(text) => {
                let mut st = self.state.lock().await;
                st.docs.insert(
                    mcp_id.to_owned(),
                    json!({"content": text, "lastFetchedAt": now_ms()}),
                );
                self.save(&st).await;
                Some(text)
            }
            // A README that cannot be fetched now is better served stale than not at all.
            None => cached_content.flatten(),
        };
        Ok(json!({"server": server, "readmeContent": readme}))
    }

    /// The registry document, fetched when the cache is missing or expired. Holding the state
    /// lock across the fetch makes concurrent first requests share one fetch.
    async fn catalogue(&self) -> Result<Arc<Value>, MarketplaceError> {
        let mut st = self.state.lock().await;
        if !st.loaded {
            self.load(&mut st).await;
        }
        let fresh = st.registry.as_deref().is_some_and(has_servers)
            && st.fetched_at_ms.is_some_and(|at| self.is_fresh(at));
        if fresh && let Some(registry) = &st.registry {
            return Ok(registry.clone());
        }
        let recently_failed = st
            .last_failure
            .is_some_and(|t| t.elapsed() < RETRY_AFTER_FAILURE);
        if let (Some(stale), true) = (&st.registry, recently_failed) {
            return Ok(stale.clone());
        }
        match self.fetch_registry().await {
            Ok(registry) => {
                let registry = Arc::new(registry);
                st.registry = Some(registry.clone());
                st.fetched_at_ms = Some(now_ms());
                st.last_failure = None;
                self.save(&st).await;
                Ok(registry)
            }
            Err(e) => {
                st.last_failure = Some(Instant::now());
                match &st.registry {
                    Some(stale) => {
                        tracing::warn!(error = %e, "using the stale marketplace catalogue");
                        Ok(stale.clone())
                    }
                    None => Err(e),
                }
            }
        }
    }

    fn is_fresh(&self, at_ms: u64) -> bool {
        let now = now_ms();
        // A timestamp from the future (clock moved back) does not count as fresh.
        now >= at_ms && u128::from(now - at_ms) < self.ttl.as_millis()
    }

    async fn load(&self, st: &mut State) {
        st.loaded = true;
        let bytes = match tokio::fs::read(&self.cache_file).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(file = %self.cache_file.display(), error = %e, "cannot read the marketplace cache");
                return;
            }
        };
        match serde_json::from_slice::<CacheFile>(&bytes) {
            Ok(cache) => {
                st.registry = cache.registry.filter(has_servers).map(Arc::new);
                st.fetched_at_ms = cache.last_fetched_at;
                st.docs = cache.server_documentation;
            }
            Err(e) => {
                tracing::warn!(file = %self.cache_file.display(), error = %e, "ignoring an unreadable marketplace cache");
            }
        }
    }

    /// Persists the cache; a failure only costs a refetch later, so it is logged, not returned.
    async fn save(&self, st: &State) {
        let doc = json!({
            "registry": st.registry.as_deref(),
            "lastFetchedAt": st.fetched_at_ms,
            "serverDocumentation": st.docs,
        });
        if let Err(e) = write_atomic(&self.cache_file, &doc).await {
            tracing::warn!(file = %self.cache_file.display(), error = %e, "cannot save the marketplace cache");
        }
    }

    async fn fetch_registry(&self) -> Result<Value, MarketplaceError> {
        tracing::debug!(url = %self.registry_url, "fetching the marketplace registry");
        let req = get_request(&self.registry_url)
            .map_err(|e| MarketplaceError::Unreachable(format!("{}: {e}", self.registry_url)))?;
        let (parts, body) = HttpClient::shared()
            .send_with_limit(req, FETCH_TIMEOUT, REGISTRY_BODY_LIMIT)
            .await
            .map_err(|e| MarketplaceError::Unreachable(e.to_string()))?;
        if !parts.status.is_success() {
            return Err(MarketplaceError::Unreachable(format!(
                "{}: HTTP {}",
                self.registry_url, parts.status
            )));
        }
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| MarketplaceError::Invalid(format!("{}: {e}", self.registry_url)))?;
        if !doc.get("servers").is_some_and(Value::is_array) {
            return Err(MarketplaceError::Invalid(format!(
                "{}: missing 'servers' array",
                self.registry_url
            )));
        }
        Ok(doc)
    }

    /// The README of a GitHub repository, trying `main` then `master`. `None` when the URL is
    /// not a GitHub repository or no README could be fetched.
    async fn fetch_readme(&self, repo_url: &str) -> Option<String> {
        let (owner, repo) = github_repo(repo_url)?;
        for branch in README_BRANCHES {
            let url = format!("{}/{owner}/{repo}/{branch}/README.md", self.readme_base);
            let req = match get_request(&url) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(%url, error = %e, "cannot build a README request");
                    return None;
                }
            };
            match HttpClient::shared().send(req, FETCH_TIMEOUT).await {
                Ok((parts, body)) if parts.status.is_success() => {
                    return Some(String::from_utf8_lossy(&body).into_owned());
                }
                Ok((parts, _)) if parts.status == http::StatusCode::NOT_FOUND => {
                    tracing::debug!(%url, "no README here");
                }
                Ok((parts, _)) => {
                    tracing::warn!(%url, status = %parts.status, "cannot fetch a README");
                    return None;
                }
                Err(e) => tracing::warn!(%url, error = %e, "cannot fetch a README"),
            }
        }
        None
    }
}

fn get_request(url: &str) -> Result<http::Request<Full<Bytes>>, http::Error> {
    http::Request::get(url)
        .header(
            http::header::USER_AGENT,
            concat!("mcp-hub-rs/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::new()))
}

fn has_servers(registry: &Value) -> bool {
    registry
        .get("servers")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
}

fn servers_of(registry: &Value) -> &[Value] {
    registry
        .get("servers")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `owner` and `repo` from the first `github.com/<owner>/<repo>` in a URL.
fn github_repo(url: &str) -> Option<(&str, &str)> {
    let (_, rest) = url.split_once("github.com/")?;
    let mut parts = rest.split('/');
    let owner = parts.next().filter(|s| !s.is_empty())?;
    let repo = parts.next()?;
    let repo = repo.split(['?', '#']).next().unwrap_or(repo);
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    (!repo.is_empty()).then_some((owner, repo))
}

fn str_field<'a>(server: &'a Value, key: &str) -> &'a str {
    server.get(key).and_then(Value::as_str).unwrap_or("")
}

fn tags_of(server: &Value) -> impl Iterator<Item = &str> {
    server
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn number_field(server: &Value, key: &str) -> f64 {
    server.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// The Node hub's `queryCatalog`: filter by `search`, `category`, `tags`, then sort.
fn query_catalogue(servers: &[Value], query: &HashMap<String, String>) -> Vec<Value> {
    let param = |k: &str| query.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let search = param("search").map(str::to_lowercase);
    let category = param("category");
    let tags: Vec<&str> = param("tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();

    let mut out: Vec<Value> = servers
        .iter()
        .filter(|s| {
            search.as_deref().is_none_or(|needle| {
                str_field(s, "name").to_lowercase().contains(needle)
                    || str_field(s, "description").to_lowercase().contains(needle)
                    || tags_of(s).any(|t| t.to_lowercase().contains(needle))
            })
        })
        .filter(|s| category.is_none_or(|c| s.get("category").and_then(Value::as_str) == Some(c)))
        .filter(|s| tags.iter().all(|wanted| tags_of(s).any(|t| t == *wanted)))
        .cloned()
        .collect();

    // Stable sorts, like V8's, so ties keep registry order.
    match param("sort") {
        Some("stars") => {
            out.sort_by(|a, b| number_field(b, "stars").total_cmp(&number_field(a, "stars")))
        }
        Some("name") => out.sort_by(|a, b| {
            let (a, b) = (str_field(a, "name"), str_field(b, "name"));
            // Approximates `localeCompare`: case-insensitive first, then lower case first.
            a.to_lowercase()
                .cmp(&b.to_lowercase())
                .then_with(|| b.cmp(a))
        }),
        _ => out.sort_by(|a, b| {
            number_field(b, "lastCommit").total_cmp(&number_field(a, "lastCommit"))
        }),
    }
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn write_atomic(path: &std::path::Path, doc: &Value) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    // Two-space indentation, as the Node hub writes it.
    let text = serde_json::to_string_pretty(doc).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = async {
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_urls() {
        assert_eq!(
            github_repo("https://github.com/owner/repo"),
            Some(("owner", "repo"))
        );
        assert_eq!(
            github_repo("https://github.com/o/r/tree/main/src/x"),
            Some(("o", "r"))
        );
        assert_eq!(github_repo("https://github.com/o/r.git"), Some(("o", "r")));
        assert_eq!(
            github_repo("https://github.com/o/r#readme"),
            Some(("o", "r"))
        );
        assert_eq!(github_repo("https://github.com/o"), None);
        assert_eq!(github_repo("https://github.com//r"), None);
        assert_eq!(github_repo("https://gitlab.com/o/r"), None);
    }

    #[test]
    fn name_sort_is_case_insensitive() {
        let servers = vec![
            json!({"name": "beta"}),
            json!({"name": "Alpha"}),
            json!({"name": "alpha"}),
            json!({"name": "Gamma"}),
        ];
        let q = HashMap::from([("sort".to_owned(), "name".to_owned())]);
        let names: Vec<String> = query_catalogue(&servers, &q)
            .iter()
            .map(|s| str_field(s, "name").to_owned())
            .collect();
        assert_eq!(names, ["alpha", "Alpha", "beta", "Gamma"]);
    }

    #[test]
    fn malformed_entries_do_not_fail_the_query() {
        let servers = vec![json!({"id": "x"}), json!({"name": "ok", "tags": ["t"]})];
        let q = HashMap::from([("search".to_owned(), "t".to_owned())]);
        assert_eq!(query_catalogue(&servers, &q), vec![servers[1].clone()]);
    }
}
