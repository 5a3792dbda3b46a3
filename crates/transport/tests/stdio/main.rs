//! Integration tests of the stdio transport and the session engine against real MCP servers:
//! `@modelcontextprotocol/server-everything` (npm; skipped when `MCP_HUB_SERVER_EVERYTHING` is
//! not set) and the workspace's `mcp-hub-fixture` (skipped when not built). Every test checks
//! that the processes it started, and their process groups, are gone when it ends.

mod everything;
mod fixture;
mod support;
