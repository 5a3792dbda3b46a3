//! The set of upstream MCP servers managed as one: lifecycle (start, stop, restart with backoff),
//! the aggregated catalogue of tools/resources/templates/prompts with namespacing, and routing of
//! calls to their owners.
//!
//! Owns: server state, the catalogue snapshot, the event bus.
//!
//! Must not know: HTTP, configuration files, OAuth flows.
