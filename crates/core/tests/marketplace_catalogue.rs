//! The marketplace against a local HTTP server playing the registry and raw.githubusercontent.com:
//! filters and sort orders, the on-disk cache in the Node hub's format, README lookup, and
//! offline behaviour.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mcp_hub_core::{Marketplace, MarketplaceError};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type Hits = Arc<Mutex<HashMap<String, usize>>>;

/// A tiny HTTP server answering fixed bodies by path (404 otherwise) and counting requests.
struct FakeServer {
    addr: SocketAddr,
    hits: Hits,
    task: JoinHandle<()>,
}

impl FakeServer {
    async fn start(routes: HashMap<String, String>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits: Hits = Arc::default();
        let routes = Arc::new(routes);
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set, so aborting the server closes them too.
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (routes, counter) = (routes.clone(), counter.clone());
                connections.spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let path = req.uri().path().to_owned();
                        *counter
                            .lock()
                            .expect("hits")
                            .entry(path.clone())
                            .or_default() += 1;
                        let (status, body) = match routes.get(&path) {
                            Some(body) => (StatusCode::OK, body.clone()),
                            None => (StatusCode::NOT_FOUND, "404: Not Found".to_owned()),
                        };
                        async move {
                            let mut resp = Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = status;
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeServer { addr, hits, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A URL on 127.0.0.1 where nothing listens.
async fn dead_url(path: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}{path}")
}

fn registry() -> Value {
    json!({
        "version": "1.0.0",
        "generatedAt": 1_750_000_000,
        "totalServers": 4,
        "servers": [
            {"id": "alpha", "name": "Alpha Files", "description": "Read and write local files",
             "author": "a", "url": "https://github.com/acme/alpha", "category": "filesystem",
             "tags": ["files", "local"], "installations": [], "stars": 10, "lastCommit": 1_700_000_000},
            {"id": "beta", "name": "beta search", "description": "Web SEARCH engine",
             "author": "b", "url": "https://github.com/acme/beta/tree/main/server", "category": "search",
             "tags": ["web", "Search"], "installations": [], "stars": 500, "lastCommit": 1_600_000_000},
            {"id": "gamma", "name": "Gamma", "description": "Database access",
             "author": "c", "url": "https://gitlab.com/acme/gamma", "category": "database",
             "tags": ["sql", "local"], "installations": [], "lastCommit": 1_750_000_000},
            {"id": "delta", "name": "delta", "description": "Local web fetcher",
             "author": "d", "url": "https://github.com/acme/delta", "category": "search",
             "tags": ["web", "local"], "installations": [], "stars": 42}
        ]
    })
}

fn registry_routes() -> HashMap<String, String> {
    HashMap::from([("/registry.json".to_owned(), registry().to_string())])
}

fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect()
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
}

fn write_cache(path: &Path, doc: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, serde_json::to_string_pretty(doc).expect("json")).expect("write");
}

#[tokio::test]
async fn filters_sorts_and_reuses_the_cache() {
    let server = FakeServer::start(registry_routes()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache").join("registry.json");
    let market = Marketplace::new(&cache, server.url("/registry.json"), server.url("/raw"));

    // Default and unknown sorts: newest first by lastCommit; missing counts as 0.
    let all = market.list(&q(&[])).await.expect("list");
    assert_eq!(ids(&all), ["gamma", "alpha", "beta", "delta"]);
    let all = market.list(&q(&[("sort", "bogus")])).await.expect("list");
    assert_eq!(ids(&all), ["gamma", "alpha", "beta", "delta"]);
    let by_stars = market.list(&q(&[("sort", "stars")])).await.expect("list");
    assert_eq!(ids(&by_stars), ["beta", "delta", "alpha", "gamma"]);
    let by_name = market.list(&q(&[("sort", "name")])).await.expect("list");
    assert_eq!(ids(&by_name), ["alpha", "beta", "delta", "gamma"]);

    // search: case-insensitive substring of name, description or any tag.
    let hits = market
        .list(&q(&[("search", "SEARCH")]))
        .await
        .expect("list");
    assert_eq!(ids(&hits), ["beta"]);
    let hits = market.list(&q(&[("search", "local")])).await.expect("list");
    assert_eq!(ids(&hits), ["gamma", "alpha", "delta"]);
    let hits = market.list(&q(&[("search", "sql")])).await.expect("list");
    assert_eq!(ids(&hits), ["gamma"]);
    // category: exact.
    let hits = market
        .list(&q(&[("category", "search")]))
        .await
        .expect("list");
    assert_eq!(ids(&hits), ["beta", "delta"]);
    let hits = market
        .list(&q(&[("category", "Search")]))
        .await
        .expect("list");
    assert_eq!(ids(&hits), Vec::<&str>::new());
    // tags: every listed tag must be present, case-sensitively.
    let hits = market
        .list(&q(&[("tags", "web,local")]))
        .await
        .expect("list");
    assert_eq!(ids(&hits), ["delta"]);
    let hits = market.list(&q(&[("tags", "search")])).await.expect("list");
    assert_eq!(ids(&hits), Vec::<&str>::new());
    let hits = market
        .list(&q(&[("tags", "local"), ("sort", "name"), ("search", "a")]))
        .await
        .expect("list");
    assert_eq!(ids(&hits), ["alpha", "delta", "gamma"]);
    // Empty parameters filter nothing.
    let hits = market
        .list(&q(&[("search", ""), ("category", ""), ("tags", "")]))
        .await
        .expect("list");
    assert_eq!(hits.as_array().map(Vec::len), Some(4));
    // Entries come back whole.
    assert_eq!(all[0], registry()["servers"][2]);

    // Within the TTL the registry was fetched once, and the cache is in the Node hub's format.
    assert_eq!(server.hits("/registry.json"), 1);
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).expect("cache file")).expect("json");
    assert_eq!(on_disk["registry"], registry());
    let fetched_at = on_disk["lastFetchedAt"].as_u64().expect("ms timestamp");
    assert!(fetched_at.abs_diff(now_ms()) < 60_000);
    assert_eq!(on_disk["serverDocumentation"], json!({}));

    // Another hub (or a restart) reuses the fresh file without fetching.
    let other = Marketplace::new(&cache, server.url("/registry.json"), server.url("/raw"));
    assert_eq!(ids(&other.list(&q(&[])).await.expect("list")).len(), 4);
    assert_eq!(server.hits("/registry.json"), 1);

    // An expired cache is fetched again.
    let expired = Marketplace::new(&cache, server.url("/registry.json"), server.url("/raw"))
        .with_ttl(Duration::ZERO);
    expired.list(&q(&[])).await.expect("list");
    assert_eq!(server.hits("/registry.json"), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_share_one_fetch() {
    let server = FakeServer::start(registry_routes()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let market = Arc::new(Marketplace::new(
        dir.path().join("registry.json"),
        server.url("/registry.json"),
        server.url("/raw"),
    ));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let market = market.clone();
            tokio::spawn(async move { market.list(&HashMap::new()).await })
        })
        .collect();
    for t in tasks {
        let list = t.await.expect("join").expect("list");
        assert_eq!(list.as_array().map(Vec::len), Some(4));
    }
    assert_eq!(server.hits("/registry.json"), 1);
    server.stop().await;
}

#[tokio::test]
async fn details_fetch_readme_from_main_then_master_and_cache_it() {
    let mut routes = registry_routes();
    routes.insert(
        "/raw/acme/alpha/main/README.md".to_owned(),
        "# Alpha\n".to_owned(),
    );
    routes.insert(
        "/raw/acme/beta/master/README.md".to_owned(),
        "# Beta (master)\n".to_owned(),
    );
    let server = FakeServer::start(routes).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("registry.json");
    let market = Marketplace::new(&cache, server.url("/registry.json"), server.url("/raw/"));

    let alpha = market.details("alpha").await.expect("details");
    assert_eq!(alpha["server"], registry()["servers"][0]);
    assert_eq!(alpha["readmeContent"], "# Alpha\n");
    assert_eq!(
        alpha
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["server".to_owned(), "readmeContent".to_owned()])
    );

    let beta = market.details("beta").await.expect("details");
    assert_eq!(beta["readmeContent"], "# Beta (master)\n");
    assert_eq!(server.hits("/raw/acme/beta/main/README.md"), 1);
    assert_eq!(server.hits("/raw/acme/beta/master/README.md"), 1);

    // No README anywhere, or not a GitHub repository: null.
    let delta = market.details("delta").await.expect("details");
    assert_eq!(delta["readmeContent"], Value::Null);
    assert_eq!(server.hits("/raw/acme/delta/master/README.md"), 1);
    let gamma = market.details("gamma").await.expect("details");
    assert_eq!(gamma["readmeContent"], Value::Null);

    let missing = market.details("nope").await.expect_err("unknown id");
    assert!(matches!(missing, MarketplaceError::NotFound(ref id) if id == "nope"));
    assert_eq!(missing.to_string(), "Server not found");

    // READMEs are cached in memory and on disk, in the Node hub's shape.
    market.details("alpha").await.expect("details");
    assert_eq!(server.hits("/raw/acme/alpha/main/README.md"), 1);
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).expect("cache file")).expect("json");
    let doc = &on_disk["serverDocumentation"]["alpha"];
    assert_eq!(doc["content"], "# Alpha\n");
    assert!(doc["lastFetchedAt"].as_u64().is_some());
    assert!(on_disk["serverDocumentation"].get("delta").is_none());
    assert_eq!(server.hits("/registry.json"), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_stale_cache_is_served_when_the_registry_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache").join("registry.json");
    let two_hours_ago = now_ms() - 2 * 60 * 60 * 1000;
    // A cache as a Node hub left it, two hours old.
    write_cache(
        &cache,
        &json!({
            "registry": registry(),
            "lastFetchedAt": two_hours_ago,
            "serverDocumentation": {
                "alpha": {"content": "# Old alpha\n", "lastFetchedAt": two_hours_ago}
            }
        }),
    );
    let market = Marketplace::new(
        &cache,
        dead_url("/registry.json").await,
        dead_url("/raw").await,
    );
    let list = market
        .list(&q(&[("sort", "stars")]))
        .await
        .expect("stale list");
    assert_eq!(ids(&list), ["beta", "delta", "alpha", "gamma"]);
    let alpha = market.details("alpha").await.expect("stale details");
    assert_eq!(alpha["readmeContent"], "# Old alpha\n");
    let beta = market.details("beta").await.expect("details");
    assert_eq!(beta["readmeContent"], Value::Null);
}

#[tokio::test]
async fn registry_going_down_after_a_fetch_serves_what_was_fetched() {
    let server = FakeServer::start(registry_routes()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let market = Marketplace::new(
        dir.path().join("registry.json"),
        server.url("/registry.json"),
        server.url("/raw"),
    )
    .with_ttl(Duration::ZERO);
    assert_eq!(ids(&market.list(&q(&[])).await.expect("list")).len(), 4);
    let hits = server.hits.clone();
    server.stop().await;
    let again = market.list(&q(&[("category", "database")])).await;
    assert_eq!(ids(&again.expect("stale list")), ["gamma"]);
    // The stale answer came from memory after a failed fetch, not from a lingering connection.
    assert_eq!(hits.lock().expect("hits").get("/registry.json"), Some(&1));
}

#[tokio::test]
async fn no_cache_and_no_registry_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let market = Marketplace::new(
        dir.path().join("registry.json"),
        dead_url("/registry.json").await,
        dead_url("/raw").await,
    );
    let err = market.list(&q(&[])).await.expect_err("offline");
    assert!(matches!(err, MarketplaceError::Unreachable(_)));
    assert!(
        err.to_string()
            .starts_with("marketplace registry unreachable: "),
        "{err}"
    );
    let err = market.details("alpha").await.expect_err("offline");
    assert!(matches!(err, MarketplaceError::Unreachable(_)));
    assert!(!dir.path().join("registry.json").exists());
}

#[tokio::test]
async fn a_non_catalogue_answer_is_rejected() {
    let routes = HashMap::from([
        (
            "/registry.json".to_owned(),
            json!({"items": []}).to_string(),
        ),
        ("/html".to_owned(), "<html>oops</html>".to_owned()),
    ]);
    let server = FakeServer::start(routes).await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, expected) in [
        ("/registry.json", "missing 'servers' array"),
        ("/html", "expected value"),
    ] {
        let market = Marketplace::new(
            dir.path().join("registry.json"),
            server.url(path),
            server.url("/raw"),
        );
        let err = market.list(&q(&[])).await.expect_err("invalid");
        assert!(matches!(err, MarketplaceError::Invalid(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    // A 404 is unreachable, not invalid.
    let market = Marketplace::new(
        dir.path().join("registry.json"),
        server.url("/missing.json"),
        server.url("/raw"),
    );
    let err = market.list(&q(&[])).await.expect_err("404");
    assert!(err.to_string().contains("404"), "{err}");
    server.stop().await;
}
