//! The catalogue's hot paths: routing a namespaced tool name to its server among 10,000 tools,
//! serialising the merged `tools/list` of 5,000 tools (once per snapshot), handing out the
//! cached serialisation, and rebuilding a snapshot when a server connects.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::sync::Arc;

use mcp_hub_registry::{
    Catalog, CatalogList, Profile, ProfileMode, Registry, RegistryOptions, ToolFilter, View,
};
use serde_json::{Value, json};

/// `servers` servers with `per` tools each, shaped like real tool definitions.
fn servers(servers: usize, per: usize) -> Vec<(String, Vec<Value>)> {
    (0..servers)
        .map(|s| {
            let tools = (0..per)
                .map(|t| {
                    json!({
                        "name": format!("tool_{t}"),
                        "description": format!("Echoes its text argument back ({s}/{t})"),
                        "inputSchema": {
                            "type": "object",
                            "properties": {"text": {"type": "string", "description": "what to echo"}},
                            "required": ["text"],
                        },
                        "annotations": {"readOnlyHint": true},
                    })
                })
                .collect();
            (format!("server-{s}"), tools)
        })
        .collect()
}

fn routing(c: &mut Criterion) {
    let catalog = Catalog::from_tools(1, servers(100, 100));
    assert_eq!(catalog.tools().len(), 10_000);
    let names: Vec<String> = (0..1000)
        .map(|i| format!("server_{}__tool_{}", (i * 37) % 100, (i * 53) % 100))
        .collect();
    let mut g = c.benchmark_group("catalog");
    g.bench_function("route_tool/10000_tools", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % names.len();
            catalog.tool(black_box(&names[i])).map(|e| e.server.len())
        })
    });
    g.bench_function("route_tool_miss/10000_tools", |b| {
        b.iter(|| catalog.tool(black_box("server_7__no_such_tool")).is_none())
    });

    let input = servers(50, 100);
    g.bench_function("list_json_first/5000_tools", |b| {
        b.iter_batched(
            || Catalog::from_tools(1, input.clone()),
            // The snapshot is returned so that criterion drops it outside the timing.
            |c| (c.list_json(CatalogList::Tools).len(), c),
            BatchSize::LargeInput,
        )
    });
    let snapshot = Catalog::from_tools(1, input.clone());
    snapshot.list_json(CatalogList::Tools);
    g.bench_function("list_json_cached/5000_tools", |b| {
        b.iter(|| snapshot.list_json(black_box(CatalogList::Tools)).len())
    });
    g.bench_function("build/50_servers_x_100_tools", |b| {
        b.iter_batched(
            || input.clone(),
            |i| Catalog::from_tools(1, i),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// What a profile adds to a call: finding the session's view (cached per snapshot) and the tool
/// in it; and search mode: building a view and its index (once per snapshot), and a search.
fn views(c: &mut Criterion) {
    let catalog = Catalog::from_tools(1, servers(50, 120));
    assert_eq!(catalog.tools().len(), 6_000);
    let all = ToolFilter::default();
    let profile = Arc::new(
        Profile::new(
            "p",
            None,
            ProfileMode::Search,
            vec![("*".into(), all.clone())],
        )
        .unwrap(),
    );
    let view = View::build(&catalog, profile.clone());
    let names: Vec<String> = (0..1000)
        .map(|i| format!("server_{}__tool_{}", (i * 37) % 50, (i * 53) % 120))
        .collect();
    let mut g = c.benchmark_group("view");
    g.bench_function("route_tool/6000_tools", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % names.len();
            view.tool(black_box(&names[i])).map(|e| e.server.len())
        })
    });
    let registry = Registry::new(RegistryOptions::default());
    registry.set_profiles(vec![
        Profile::new(
            "other",
            None,
            ProfileMode::Full,
            vec![("x".into(), all.clone())],
        )
        .unwrap(),
        Profile::new("p", None, ProfileMode::Search, vec![("*".into(), all)]).unwrap(),
    ]);
    registry.view("p");
    g.bench_function("registry_view_cached", |b| {
        b.iter(|| registry.view(black_box("p")).map(|v| v.catalog_version))
    });
    g.bench_function("build/6000_tools", |b| {
        b.iter(|| View::build(&catalog, profile.clone()).tools().len())
    });
    g.bench_function("search_first_with_index_build/6000_tools", |b| {
        b.iter_batched(
            || View::build(&catalog, profile.clone()),
            |v| (v.search("echo the text of tool 42", 5).len(), v),
            BatchSize::LargeInput,
        )
    });
    view.search("warm", 5);
    g.bench_function("search/6000_tools", |b| {
        b.iter(|| {
            view.search(black_box("what to echo for server 7 tool 42"), 5)
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, routing, views);
criterion_main!(benches);
