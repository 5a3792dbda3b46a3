//! Three managers (three replicas) sharing tokens through a real Redis, with the cluster
//! crate's store and lock: a login on one serves all, an expired token is refreshed exactly
//! once (the fake authorization server rotates refresh tokens, so a second refresh with the
//! old one would be refused and the tokens lost). Skips, saying so, without `redis-server`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mcp_hub_cluster::{Cluster, ClusterConfig, SharedSecret};

use super::fake::{FakeConfig, start_fake};
use super::{authorize, call_mcp, manager, through_hook};
use crate::{AuthConfig, ClientConfig, OAuthManager, SharedLock, SharedTokens};

struct Redis(Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis() -> Option<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let Ok(child) = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!(
            "SKIP: no redis-server (Debian's redis-server; scripts/cluster-test.sh installs it)"
        );
        return None;
    };
    let r = Redis(child, port);
    for _ in 0..250 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not start");
}

/// The store over the cluster, as `mcp-hub-core` wires it.
#[derive(Debug)]
struct Shared(Cluster, Duration);

struct Held(Cluster, mcp_hub_cluster::Lock);

#[async_trait::async_trait]
impl SharedLock for Held {
    async fn release(self: Box<Self>) {
        let Held(c, l) = *self;
        c.unlock(l).await.unwrap();
    }
}

#[async_trait::async_trait]
impl SharedTokens for Shared {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        self.0.shared_get(key).await.map_err(|e| e.to_string())
    }
    async fn put(&self, key: &str, json: &str) -> Result<(), String> {
        self.0
            .shared_set(key, json)
            .await
            .map_err(|e| e.to_string())
    }
    async fn delete(&self, key: &str) -> Result<(), String> {
        self.0.shared_delete(key).await.map_err(|e| e.to_string())
    }
    async fn lock(&self, key: &str) -> Result<Box<dyn SharedLock>, String> {
        let l = self
            .0
            .lock(key, self.1, Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("lock not had")?;
        Ok(Box::new(Held(self.0.clone(), l)))
    }
    async fn put_for(&self, key: &str, json: &str, ttl: Duration) -> Result<(), String> {
        self.0
            .shared_set_for(key, json, ttl)
            .await
            .map_err(|e| e.to_string())
    }
    async fn take(&self, key: &str) -> Result<Option<String>, String> {
        self.0.shared_take(key).await.map_err(|e| e.to_string())
    }
}

/// Three managers sharing one Redis, as three replicas would (their temporary directories
/// must outlive them).
async fn replicas(r: &Redis) -> (Vec<tempfile::TempDir>, Vec<OAuthManager>) {
    replicas_with_lease(r, Duration::from_secs(30)).await
}

/// [`replicas`] whose refresh locks are held at most `lease`.
async fn replicas_with_lease(
    r: &Redis,
    lease: Duration,
) -> (Vec<tempfile::TempDir>, Vec<OAuthManager>) {
    let mut dirs = Vec::new();
    let mut managers = Vec::new();
    for i in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(&dir);
        let secret = SharedSecret::new("auth-cluster-test-secret").unwrap();
        let c = Cluster::join(ClusterConfig::new(
            format!("redis://127.0.0.1:{}", r.1),
            format!("127.0.0.1:{}", 1000 + i),
            secret,
        ))
        .await
        .unwrap();
        m.share_tokens(Arc::new(Shared(c, lease)));
        dirs.push(dir);
        managers.push(m);
    }
    (dirs, managers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_tokens_and_refresh_once() {
    let Some(r) = redis() else { return };
    let fake = start_fake(FakeConfig {
        expires_in: 600,
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let (_dirs, managers) = replicas(&r).await;
    let hooks: Vec<_> = managers
        .iter()
        .map(|m| m.hook("srv", &url, ClientConfig::default()))
        .collect();
    // The user logs in once, through replica 0.
    authorize(&managers[0], &hooks[0], "srv", &url)
        .await
        .unwrap();
    let first = hooks[0].authorization().await.unwrap().unwrap();
    // The other replicas use that login: no OAuth request of theirs.
    for h in &hooks[1..] {
        assert_eq!(h.authorization().await.unwrap().as_deref(), Some(&*first));
    }
    assert_eq!(fake.st().grants, ["authorization_code"]);

    // The token expires everywhere; all three need it at once.
    for m in &managers {
        m.advance_clock(600);
    }
    let mut tasks = Vec::new();
    for h in hooks.iter().cycle().take(9) {
        let h = h.clone();
        tasks.push(tokio::spawn(async move { h.authorization().await }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(
            t.await
                .unwrap()
                .unwrap()
                .expect("a token after the refresh"),
        );
    }
    assert_eq!(
        fake.st().grants,
        ["authorization_code", "refresh_token"],
        "refreshed exactly once"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]), "all use the result");
    assert_ne!(tokens[0], first);
    assert_eq!(call_mcp(&url, Some(&tokens[0])).await.0, 200);

    // The next expiry is refreshed by whichever replica comes first (here replica 2, which has
    // the registration only from the shared copy), with the rotated refresh token.
    for m in &managers {
        m.advance_clock(600);
    }
    let third = hooks[2].authorization().await.unwrap().unwrap();
    assert_ne!(third, tokens[0]);
    assert_eq!(
        hooks[0].authorization().await.unwrap().as_deref(),
        Some(&*third)
    );
    assert_eq!(
        fake.st().grants,
        ["authorization_code", "refresh_token", "refresh_token"]
    );
    assert_eq!(call_mcp(&url, Some(&third)).await.0, 200);
}

/// A grant without a user (`client_credentials`, no refresh token) is obtained under the same
/// cluster-wide lock as a refresh: three replicas that all need a token at once (starting
/// together, then all seeing it expire) make one grant each time, and all use its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_obtain_a_machine_grant_once() {
    let Some(r) = redis() else { return };
    let fake = start_fake(FakeConfig {
        grants: vec!["client_credentials"],
        expires_in: 600,
        ..FakeConfig::default()
    })
    .await;
    fake.st()
        .clients
        .insert("svc".into(), Some("svc-s3cret".into()));
    let url = fake.mcp_url();
    let (_dirs, managers) = replicas(&r).await;
    let auth = AuthConfig::from_json(&serde_json::json!({
        "type": "client_credentials", "client_id": "svc", "client_secret": "svc-s3cret"}))
    .unwrap();
    let hooks: Vec<_> = managers
        .iter()
        .map(|m| m.hook_with("cc", &url, ClientConfig::default(), auth.clone()))
        .collect();
    // Every replica is refused (401) before any of them has a token, and all renew at once.
    let all_at_once = |hooks: &Vec<std::sync::Arc<dyn mcp_hub_transport::AuthHook>>,
                       challenge: mcp_hub_transport::AuthChallenge| {
        let mut tasks = Vec::new();
        for h in hooks.iter().cycle().take(9) {
            let (h, c) = (h.clone(), challenge.clone());
            tasks.push(tokio::spawn(async move { h.on_unauthorized(&c).await }));
        }
        tasks
    };
    let (status, challenge) = call_mcp(&url, None).await;
    assert_eq!(status, 401);
    for t in all_at_once(&hooks, challenge.clone()) {
        assert!(t.await.unwrap().unwrap(), "new credentials");
    }
    for h in &hooks {
        assert_eq!(through_hook(h, &url).await, Ok(200));
    }
    assert_eq!(fake.st().grants, ["client_credentials"], "one grant");
    let first = hooks[0].authorization().await.unwrap().unwrap();
    for h in &hooks[1..] {
        assert_eq!(h.authorization().await.unwrap().as_deref(), Some(&*first));
    }

    // It expires everywhere: still one grant, used by all.
    for m in &managers {
        m.advance_clock(600);
    }
    for t in all_at_once(&hooks, challenge) {
        assert!(t.await.unwrap().unwrap(), "new credentials");
    }
    assert_eq!(
        fake.st().grants,
        ["client_credentials", "client_credentials"],
        "one grant per expiry"
    );
    let second = hooks[2].authorization().await.unwrap().unwrap();
    assert_ne!(second, first);
    for h in &hooks[..2] {
        assert_eq!(h.authorization().await.unwrap().as_deref(), Some(&*second));
    }
}

/// The authorization code flow's pending state is shared: started on replica 0, completed by
/// the callback on replica 1 (with the verifier and client replica 0 chose), its tokens then
/// used by replica 0; the `state` is consumed for every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flow_started_on_one_replica_completes_on_another() {
    let Some(r) = redis() else { return };
    let fake = start_fake(FakeConfig::default()).await;
    let url = fake.mcp_url();
    let (_dirs, managers) = replicas(&r).await;
    let hooks: Vec<_> = managers
        .iter()
        .map(|m| m.hook("srv", &url, ClientConfig::default()))
        .collect();
    let (status, challenge) = call_mcp(&url, None).await;
    assert_eq!(status, 401);
    let auth_url = managers[0]
        .start_authorization("srv", &url, Some(&challenge))
        .await
        .unwrap();
    assert!(managers[1].is_pending_anywhere(&auth_url).await);
    assert!(
        !managers[1].is_pending(&auth_url),
        "not in replica 1's memory"
    );
    assert_eq!(
        managers[1].complete_headless(&auth_url).await.unwrap(),
        "srv"
    );
    let token = hooks[0]
        .authorization()
        .await
        .unwrap()
        .expect("shared tokens");
    assert_eq!(call_mcp(&url, Some(&token)).await.0, 200);
    // Consumed for all, the replica that started it included.
    assert!(!managers[0].is_pending_anywhere(&auth_url).await);
    for m in &managers {
        assert!(matches!(
            m.complete_headless(&auth_url).await,
            Err(crate::AuthError::UnknownState)
        ));
    }
    assert_eq!(fake.st().grants, ["authorization_code"]);
}

/// A replica that dies holding a token's refresh lock (here: a lock taken and never released)
/// blocks the others until its lease ends; then exactly one of them refreshes, with the
/// refresh token the dead one never used, and all use the result: the login is not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lock_holder_delays_the_refresh_but_loses_nothing() {
    let Some(r) = redis() else { return };
    let fake = start_fake(FakeConfig {
        expires_in: 600,
        ..FakeConfig::default()
    })
    .await;
    let url = fake.mcp_url();
    let lease = Duration::from_millis(1200);
    let (_dirs, managers) = replicas_with_lease(&r, lease).await;
    let hooks: Vec<_> = managers
        .iter()
        .map(|m| m.hook("srv", &url, ClientConfig::default()))
        .collect();
    authorize(&managers[0], &hooks[0], "srv", &url)
        .await
        .unwrap();
    let first = hooks[0].authorization().await.unwrap().unwrap();
    for m in &managers {
        m.advance_clock(600);
    }
    // The dying replica: it takes the lock and is gone before releasing it.
    let dead = Cluster::join(ClusterConfig::new(
        format!("redis://127.0.0.1:{}", r.1),
        "127.0.0.1:1999",
        SharedSecret::new("auth-cluster-test-secret").unwrap(),
    ))
    .await
    .unwrap();
    let key = crate::urls::canonical_resource(&url);
    let held = dead
        .lock(&key, lease, Duration::ZERO)
        .await
        .unwrap()
        .expect("the lock is free");
    drop(held);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for h in hooks[1..].iter().cycle().take(6) {
        let h = h.clone();
        tasks.push(tokio::spawn(async move { h.authorization().await }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap().expect("a token"));
    }
    assert!(
        started.elapsed() >= lease - Duration::from_millis(300),
        "did not wait for the lease: {:?}",
        started.elapsed()
    );
    assert_eq!(fake.st().grants, ["authorization_code", "refresh_token"]);
    assert!(tokens.iter().all(|t| *t == tokens[0]) && tokens[0] != first);
    assert_eq!(call_mcp(&url, Some(&tokens[0])).await.0, 200);
}
