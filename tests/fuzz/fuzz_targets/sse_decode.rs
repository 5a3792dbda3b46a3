//! The SSE decoder: never panics, never buffers past its limit, and (differentially) the events
//! do not depend on how the stream was cut into chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_hub_protocol::sse::{Decoder, Event, SseError};

const LIMIT: usize = 4096;

fn decode(chunks: &[&[u8]]) -> Result<Vec<Event>, SseError> {
    let mut d = Decoder::new(LIMIT);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(d.feed(c)?);
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks chunk lengths, the rest is the stream.
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = decode(&[stream]);
    let mut chunks = Vec::new();
    let mut rest = stream;
    let mut step = usize::from(seed % 7) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        chunks.push(&rest[..n]);
        rest = &rest[n..];
        step = step % 5 + 1;
    }
    let chunked = decode(&chunks);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let bytewise = decode(&bytes);
    assert_eq!(whole, chunked);
    assert_eq!(whole, bytewise);
    if let Ok(events) = whole {
        for e in events {
            assert!(
                e.data.len() <= LIMIT,
                "an event larger than the limit got through"
            );
        }
    }
});
