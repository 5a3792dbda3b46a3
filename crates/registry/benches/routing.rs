//! The catalogue's hot paths: routing a namespaced tool name to its server among 10,000 tools,
//! serialising the merged `tools/list` of 5,000 tools (once per snapshot), handing out the
//! cached serialisation, and rebuilding a snapshot when a server connects.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mcp_hub_registry::{Catalog, CatalogList};
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

criterion_group!(benches, routing);
criterion_main!(benches);
