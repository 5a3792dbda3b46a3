//! The `mcp-hub` command.
fn main() {}
