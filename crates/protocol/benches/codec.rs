//! JSON-RPC decode/encode of the messages on the hub's hottest path: a `tools/call` request as a
//! client sends it and the result the upstream returns; and the one edit a routed call makes to
//! its params, the tool's name swapped for the upstream's, done on the raw text
//! (`object::RawObject`, as the hub does) and through a `serde_json::Map` (as it did before).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_hub_protocol::object::{self, RawObject};
use mcp_hub_protocol::{Message, RawValue};
use serde_json::{Map, Value};

const CALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"fx__echo","arguments":{"text":"hello, hub"},"_meta":{"progressToken":"p-42"}}}"#;
const RESULT: &str = r#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"hello, hub"}],"structuredContent":{"echo":"hello, hub"},"isError":false}}"#;

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("jsonrpc");
    for (name, text) in [("tools_call_request", CALL), ("tools_call_result", RESULT)] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Message::from_slice(black_box(text.as_bytes())).expect("valid"))
        });
        let msg = Message::from_str(text).expect("valid");
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(&msg).to_vec())
        });
    }
    g.finish();
}

/// Reads the name and swaps it, as a routed call does: the depth check, the members, the name,
/// the object written again around the untouched values.
fn rename_raw(params: &RawValue) -> Box<RawValue> {
    assert!(object::depth_within(params.get(), object::MAX_DEPTH));
    let o = RawObject::parse(params).expect("an object");
    let name = o.get_str("name").expect("a name");
    o.with_str("name", name.strip_prefix("fx__").expect("namespaced"))
}

/// The same through a parsed map (the arguments become a value tree and are written again).
fn rename_map(params: &RawValue) -> Box<RawValue> {
    let mut m: Map<String, Value> = serde_json::from_str(params.get()).expect("an object");
    let name = m.get("name").and_then(Value::as_str).expect("a name");
    let upstream = name.strip_prefix("fx__").expect("namespaced").to_owned();
    m.insert("name".into(), Value::String(upstream));
    serde_json::value::to_raw_value(&m).expect("serialises")
}

fn params(c: &mut Criterion) {
    // A call as small as the hot path's, and one carrying a 16 KB document in its arguments.
    let doc = "lorem ipsum dolor sit amet, ".repeat(600);
    let small =
        r#"{"name":"fx__echo","arguments":{"text":"hello, hub"},"_meta":{"progressToken":"p-42"}}"#
            .to_owned();
    let large = serde_json::json!({
        "name": "fx__summarise",
        "arguments": {"document": doc, "options": {"length": 200, "style": ["brief", "plain"], "seed": 12345678901234567u64}},
    })
    .to_string();
    let mut g = c.benchmark_group("params");
    for (name, text) in [("small", small), ("large", large)] {
        let raw = RawValue::from_string(text).expect("valid");
        // Both ways must agree on what goes upstream before either is timed.
        let (a, b): (Value, Value) = (
            serde_json::from_str(rename_raw(&raw).get()).expect("valid"),
            serde_json::from_str(rename_map(&raw).get()).expect("valid"),
        );
        assert_eq!(a, b);
        g.throughput(Throughput::Bytes(raw.get().len() as u64));
        g.bench_function(format!("rename_raw/{name}"), |b| {
            b.iter(|| rename_raw(black_box(&raw)))
        });
        g.bench_function(format!("rename_map/{name}"), |b| {
            b.iter(|| rename_map(black_box(&raw)))
        });
    }
    g.finish();
}

criterion_group!(benches, codec, params);
criterion_main!(benches);
