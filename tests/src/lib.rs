//! Test kit for the integration tests.
