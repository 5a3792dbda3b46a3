//! The config loader (JSON5 and strict JSON) on arbitrary text: errors, never panics; a syntax
//! error points inside the file (an early end of file at its end, not at 1:1); whatever loads
//! can be resolved without running anything, serialised, and diffed with itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_hub_config::{
    ConfigDiff, ConfigError, DenyCommands, MapEnv, ResolveContext, load_from_strs,
};

/// Lines as JSON5 counts them: LF, CR, CRLF (one), U+2028 and U+2029 end a line.
fn json5_lines(text: &str) -> usize {
    let mut lines = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}') {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            lines += 1;
        }
    }
    lines
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = json5_lines(text);
    for name in ["servers.json", "servers.json5"] {
        let config = match load_from_strs([(name, text)]) {
            Ok(c) => c,
            Err(ConfigError::Syntax {
                line,
                column,
                message,
                ..
            }) => {
                assert!(line >= 1 && column >= 1, "{line}:{column}");
                assert!(line <= lines, "line {line} of {lines}: {message}");
                if message.starts_with("EOF") {
                    assert_eq!(line, lines, "an early end of file is reported at the end");
                }
                continue;
            }
            Err(_) => continue,
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
