//! Read MCP server configuration the way the Node `mcp-hub`, Claude Desktop and VS Code do.
//!
//! Owns: finding nothing on its own (callers pass paths), reading JSON/JSON5 files, merging them in
//! order, resolving placeholders, validating server entries and diffing two configs.
//!
//! Must not know: processes it launches, sockets, the async runtime, the registry or the API.
