//! `mcp-hub-core`: the embeddable MCP hub. Composes config, transport, registry, auth and api into
//! a [`Hub`] that other Rust programs can start, drive and shut down.
//!
//! Owns: wiring, config watching and hot reload, process-level concerns (paths, workspace cache).
