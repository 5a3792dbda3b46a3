//! A routed call's params seen one level deep (`protocol::object`) on arbitrary JSON: never
//! panics; swapping the name gives exactly what parsing the params into a map, replacing the
//! name and serialising would give; and the depth scan refuses whatever serde_json refuses for
//! depth, so the hub never forwards what it would not parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_hub_protocol::RawValue;
use mcp_hub_protocol::object::{MAX_DEPTH, RawObject, depth_within};
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = serde_json::from_str::<&RawValue>(text) else {
        return;
    };
    let parsed = serde_json::from_str::<Value>(raw.get());
    let within = depth_within(raw.get(), MAX_DEPTH);
    match &parsed {
        Ok(_) => assert!(within, "parsed, so within the depth limit"),
        Err(e) if e.to_string().contains("recursion limit") => {
            assert!(!within, "too deep for serde_json, so too deep for the scan")
        }
        Err(_) => {}
    }
    let object = RawObject::parse(raw);
    if !raw.get().starts_with('{') {
        assert!(object.is_none(), "objects only");
    }
    if matches!(parsed, Ok(Value::Object(_))) {
        // The other way round need not hold: RawValue lets a lone surrogate escape through that
        // a key (and serde_json) refuses; the hub then takes the parsed path and its refusal.
        assert!(object.is_some(), "every object a map reads");
    }
    let (Some(o), Ok(Value::Object(map))) = (object, parsed) else {
        return;
    };
    assert_eq!(
        o.get_str("name").as_deref(),
        map.get("name").and_then(Value::as_str),
        "the name a map reads"
    );
    let renamed = o.with_str("name", "swapped\"\u{1}");
    let mut expected: Map<String, Value> = map;
    expected.insert("name".into(), Value::String("swapped\"\u{1}".into()));
    let got: Map<String, Value> = serde_json::from_str(renamed.get()).expect("valid JSON");
    assert_eq!(got, expected, "the map's rename");
    // Member order too: the map keeps a key in its first place and appends a new one.
    let got_keys: Vec<&String> = got.keys().collect();
    let want_keys: Vec<&String> = expected.keys().collect();
    assert_eq!(got_keys, want_keys);
});
