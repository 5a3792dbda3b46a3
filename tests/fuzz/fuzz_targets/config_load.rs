//! The config loader (JSON5 and strict JSON) on arbitrary text: errors, never panics; whatever
//! loads can be resolved without running anything, serialised, and diffed with itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_hub_config::{ConfigDiff, DenyCommands, MapEnv, ResolveContext, load_from_strs};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["servers.json", "servers.json5"] {
        let Ok(config) = load_from_strs([(name, text)]) else {
            continue;
        };
        let env = MapEnv::from_iter([("HOME", "/home/fuzz"), ("PATH", "/usr/bin")]);
        let ctx = ResolveContext::new(&env, &DenyCommands, "/work", "/home/fuzz");
        let _ = config.resolve_all(&ctx);
        let _ = config.to_json().to_string();
        let diff = ConfigDiff::between(&config, &config);
        assert!(!diff.is_significant(), "a config differs from itself");
    }
    // Merging the text with itself must behave like loading it once.
    let once = load_from_strs([("a.json5", text)]).map(|c| c.server_names().count());
    let twice =
        load_from_strs([("a.json5", text), ("b.json5", text)]).map(|c| c.server_names().count());
    if let (Ok(a), Ok(b)) = (once, twice) {
        assert_eq!(a, b);
    }
});
