//! Server-Sent Events framing: what the hub does for every message on a `/mcp` stream
//! (encode) and what its upstream client does for every Streamable HTTP answer (decode).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcp_hub_protocol::sse::{Decoder, encode_event};

const RESULT: &str = r#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"hello, hub"}],"isError":false}}"#;

/// A `tools/list` result of `n` tools, as one line of JSON.
fn big_list(n: usize) -> String {
    let tools: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name":"srv__tool_{i}","description":"Echoes its text argument back ({i})","inputSchema":{{"type":"object","properties":{{"text":{{"type":"string"}}}},"required":["text"]}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}]}}}}"#,
        tools.join(",")
    )
}

fn sse(c: &mut Criterion) {
    let list = big_list(5_000);
    let mut g = c.benchmark_group("sse");
    for (name, data) in [("small_result", RESULT), ("tools_list_5000", list.as_str())] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let mut out = Vec::with_capacity(data.len() + 64);
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                encode_event(&mut out, Some("message"), Some("1-17"), black_box(data));
                out.len()
            })
        });
        let mut wire = Vec::new();
        encode_event(&mut wire, Some("message"), Some("1-17"), data);
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                let mut d = Decoder::new(16 << 20);
                d.feed(black_box(&wire)).expect("within limit")
            })
        });
        // The same bytes in 1,400-byte pieces, as they come off a TCP socket.
        g.bench_function(format!("decode_chunked/{name}"), |b| {
            b.iter(|| {
                let mut d = Decoder::new(16 << 20);
                let mut n = 0;
                for chunk in wire.chunks(1400) {
                    n += d.feed(black_box(chunk)).expect("within limit").len();
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sse);
criterion_main!(benches);
