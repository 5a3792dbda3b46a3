//! Placeholder resolution on a server whose fields come from the input. Invariants: no panic;
//! a command is only ever run when `cmd:` was written in the config text itself (a variable's
//! value never becomes a command); no resolved value leaks into an error message.
#![no_main]

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use mcp_hub_config::{CommandError, CommandRunner, MapEnv, ResolveContext, load_from_strs};

/// The value every variable and command resolves to: it must never appear in an error.
const SECRET: &str = "S3CRET-VALUE";

struct Recorder<'a>(&'a Cell<usize>);

impl CommandRunner for Recorder<'_> {
    fn run(&self, _command: &str) -> Result<String, CommandError> {
        self.0.set(self.0.get() + 1);
        Ok(SECRET.to_owned())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Fields separated by 0x1F: command, args..., then an env value, a url and a header.
    let parts: Vec<&str> = text.split('\u{1f}').collect();
    let field = |i: usize| parts.get(i).copied().unwrap_or("");
    let stdio = serde_json::json!({
        "command": field(0),
        "args": parts.iter().skip(1).take(4).collect::<Vec<_>>(),
        "env": {"A": field(5), "B": field(6), "SELF": format!("{}${{SELF}}", field(7))},
        "cwd": field(8),
    });
    let remote = serde_json::json!({
        "url": format!("https://example.invalid/{}", field(9)),
        "headers": {"Authorization": field(10), "X": field(5)},
        "env": {"A": field(6)},
    });
    let file = serde_json::json!({"mcpServers": {"s": stdio, "r": remote}}).to_string();
    let Ok(config) = load_from_strs([("servers.json", file.as_str())]) else {
        return;
    };
    let env = MapEnv::from_iter([("HOME", SECRET), ("PATH", SECRET), ("X", SECRET)]);
    let runs = Cell::new(0);
    let runner = Recorder(&runs);
    let ctx = ResolveContext::new(&env, &runner, "/work", "/home/fuzz");
    for name in ["s", "r"] {
        if let Err(e) = config.resolve_server(name, &ctx) {
            let msg = e.to_string();
            assert!(
                !msg.contains(SECRET) || text.contains(SECRET),
                "a resolved value leaked: {msg}"
            );
        }
    }
    if runs.get() > 0 {
        assert!(
            text.contains("cmd:") || text.contains("cmd :"),
            "a command ran that the config did not write"
        );
    }
});
