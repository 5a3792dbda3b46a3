//! What routing touches besides the call itself: which list changes are announced, what a
//! call to a stopped server says, log levels for late servers, resource URIs inside tool
//! results, and per-session instances of isolated servers.

mod common;

use std::time::{Duration, Instant};

use common::{def, fast, fixture};
use mcp_hub_registry::{
    ClientContext, ClientFeatures, Isolation, Prefix, Registry, RegistryEvent, RegistryOptions,
    RequestOptions, Requester, RouteError, ServerStatus,
};
use serde_json::{Map, Value, json};

fn params(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn text(raw: &serde_json::value::RawValue) -> String {
    let v: Value = serde_json::from_str(raw.get()).unwrap();
    v["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn as_session(session: u64) -> RequestOptions {
    RequestOptions {
        requester: Some(Requester {
            session,
            call: session * 100,
            features: ClientFeatures::ALL,
        }),
        ..Default::default()
    }
}

async fn pid_for(reg: &Registry, tool: &str, opts: RequestOptions) -> Result<u32, RouteError> {
    let r = reg
        .call_tool(params(json!({"name": tool, "arguments": {}})), opts)
        .await?;
    Ok(text(&r).parse().unwrap())
}

/// Whether a process exists at all (a zombie counts: it was not reaped).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while exists(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tools_change_announces_only_tools() {
    need_fixture!();
    let reg = Registry::new(fast());
    let mut events = reg.events();
    reg.upsert(def("fx", Prefix::Default, &["--list-changed-after", "300"]).unwrap());
    reg.wait_settled(Duration::from_secs(10)).await;
    assert_eq!(reg.snapshot("fx").unwrap().status, ServerStatus::Connected);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut changes = Vec::new();
    while !reg
        .catalog()
        .tools()
        .iter()
        .any(|t| &*t.original == "late_tool")
    {
        assert!(Instant::now() < deadline, "late_tool never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Ok(ev) = events.try_recv() {
        if let RegistryEvent::CatalogChanged {
            tools,
            resources,
            prompts,
        } = ev
        {
            changes.push((tools, resources, prompts));
        }
    }
    // The connect announced everything the server brought; the late tool only tools.
    assert_eq!(changes.last(), Some(&(true, false, false)), "{changes:?}");
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_stopped_servers_tool_says_not_connected() {
    need_fixture!();
    let reg = Registry::new(fast());
    reg.upsert(def("fx", Prefix::Default, &[]).unwrap());
    reg.upsert(def("plain", Prefix::None, &["--name", "plain"]).unwrap());
    reg.wait_settled(Duration::from_secs(10)).await;
    reg.stop("fx", false).await.unwrap();
    reg.stop("plain", true).await.unwrap();
    for name in ["fx__echo", "echo"] {
        let e = reg
            .call_tool(params(json!({"name": name})), RequestOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, RouteError::ServerNotConnected(_)),
            "{name}: {e}"
        );
    }
    let e = reg
        .call_tool(
            params(json!({"name": "nobody__echo"})),
            RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RouteError::UnknownTool(_)), "{e}");
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_level_set_earlier_reaches_servers_that_connect_later() {
    need_fixture!();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fx.jsonl");
    let log_arg = log.display().to_string();
    let reg = Registry::new(fast());
    reg.set_log_level("warning").await;
    reg.upsert(def("fx", Prefix::Default, &["--log", &log_arg]).unwrap());
    reg.wait_settled(Duration::from_secs(10)).await;
    let set_levels = |log: &std::path::Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("logging/setLevel") && l.contains("warning"))
            .count()
    };
    assert_eq!(set_levels(&log), 1);
    // And again after a restart: a new process knows nothing of the old one's level.
    reg.restart("fx").await.unwrap();
    assert_eq!(set_levels(&log), 2);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_uris_in_tool_results_are_the_hubs() {
    need_fixture!();
    let reg = Registry::new(fast());
    reg.upsert(def("fx", Prefix::Default, &[]).unwrap());
    reg.upsert(def("plain", Prefix::None, &["--name", "plain"]).unwrap());
    reg.wait_settled(Duration::from_secs(10)).await;
    let r = reg
        .call_tool(
            params(json!({"name": "fx__links", "arguments": {"uri": "test://static-text"}})),
            RequestOptions::default(),
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_str(r.get()).unwrap();
    assert_eq!(v["content"][0]["uri"], "fx__test://static-text");
    assert_eq!(v["content"][1]["resource"]["uri"], "fx__test://static-text");
    assert_eq!(v["content"][2]["text"], "two links");
    // What the tool pointed at can be read through the hub.
    let read = reg
        .read_resource(
            params(json!({"uri": v["content"][0]["uri"]})),
            RequestOptions::default(),
        )
        .await
        .unwrap();
    assert!(read.get().contains("static"), "{}", read.get());
    // An unprefixed server's URIs are the hub's already.
    let r = reg
        .call_tool(
            params(json!({"name": "links", "arguments": {"uri": "test://static-text"}})),
            RequestOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        r.get().contains(r#""uri":"test://static-text""#),
        "{}",
        r.get()
    );
    reg.shutdown().await;
}

fn isolated(name: &str, max: usize) -> mcp_hub_registry::ServerDefinition {
    let mut d = def(name, Prefix::Default, &[]).unwrap();
    d.client_context = ClientContext {
        isolation: Isolation::Session { max_instances: max },
        roots: None,
    };
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_servers_give_each_session_its_own_process() {
    need_fixture!();
    let reg = Registry::new(RegistryOptions {
        instance_idle_timeout: Duration::from_millis(600),
        ..fast()
    });
    reg.upsert(isolated("iso", 2));
    reg.wait_settled(Duration::from_secs(10)).await;
    let main = reg.snapshot("iso").unwrap().pid.unwrap();
    assert_eq!(
        reg.catalog()
            .tools()
            .iter()
            .filter(|t| &*t.original == "pid")
            .count(),
        1
    );

    let a = pid_for(&reg, "iso__pid", as_session(1)).await.unwrap();
    let b = pid_for(&reg, "iso__pid", as_session(2)).await.unwrap();
    assert_ne!(a, b);
    assert!(a != main && b != main);
    assert_eq!(pid_for(&reg, "iso__pid", as_session(1)).await.unwrap(), a);
    // Calls without a downstream session (the REST API) use the server's own connection.
    assert_eq!(
        pid_for(&reg, "iso__pid", RequestOptions::default())
            .await
            .unwrap(),
        main
    );
    assert_eq!(reg.snapshot("iso").unwrap().routing.instances, 2);
    assert_eq!(reg.snapshot("iso").unwrap().routing.isolation, "session");
    let e = pid_for(&reg, "iso__pid", as_session(3)).await.unwrap_err();
    assert!(
        matches!(&e, RouteError::Isolation(m) if m.contains("maximum of 2")),
        "{e}"
    );

    // A session that ends takes its process with it (reaped: not even a zombie stays).
    reg.release_session(1).await;
    assert!(wait_gone(a).await, "instance {a} outlived its session");
    assert_eq!(reg.snapshot("iso").unwrap().routing.instances, 1);
    let c = pid_for(&reg, "iso__pid", as_session(3)).await.unwrap();
    // Idle instances close by themselves.
    assert!(wait_gone(b).await, "idle instance {b} was not closed");
    assert!(wait_gone(c).await, "idle instance {c} was not closed");
    assert_eq!(reg.snapshot("iso").unwrap().routing.instances, 0);

    // Stopping the server closes its instances too.
    let d = pid_for(&reg, "iso__pid", as_session(4)).await.unwrap();
    reg.stop("iso", false).await.unwrap();
    assert!(wait_gone(d).await);
    assert!(wait_gone(main).await);
    let e = pid_for(&reg, "iso__pid", as_session(4)).await.unwrap_err();
    assert!(matches!(e, RouteError::ServerNotConnected(_)), "{e}");
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_instance() {
    need_fixture!();
    let reg = Registry::new(fast());
    reg.upsert(isolated("iso", 8));
    reg.wait_settled(Duration::from_secs(10)).await;
    let mut pids = Vec::new();
    for s in 1..=4 {
        pids.push(pid_for(&reg, "iso__pid", as_session(s)).await.unwrap());
    }
    reg.shutdown().await;
    for pid in pids {
        assert!(!exists(pid), "instance {pid} survived the shutdown");
    }
}
