//! JSON-RPC decode/encode of the messages on the hub's hottest path: a `tools/call` request as a
//! client sends it and the result the upstream returns.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_hub_protocol::Message;

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

criterion_group!(benches, codec);
criterion_main!(benches);
