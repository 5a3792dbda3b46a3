//! The JSON-RPC decoder on arbitrary bytes: never panics, and whatever it accepts re-encodes to
//! a message that decodes to the same kind, id and method (encoding is a fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_hub_protocol::{Incoming, Message};

fuzz_target!(|data: &[u8]| {
    // Batches and single messages (the server side's entry point).
    let _ = Incoming::from_slice(data);
    let Ok(msg) = Message::from_slice(data) else {
        return;
    };
    let wire = msg.to_vec();
    let again = Message::from_slice(&wire).expect("the hub's own encoding decodes");
    assert_eq!(again.method(), msg.method());
    assert_eq!(again.id(), msg.id());
    assert_eq!(again.to_vec(), wire, "encoding is a fixed point");
    // Payloads stay raw, so insignificant whitespace inside them survives encoding: only input
    // without CR/LF is guaranteed to encode as one line (stdio framing relies on the transport
    // for the rest).
    if !data.contains(&b'\n') && !data.contains(&b'\r') {
        assert!(!wire.contains(&b'\n'), "one message is one line");
    }
});
