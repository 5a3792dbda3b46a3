//! Integration tests of the public API, one binary (linking several is slow on small machines).

mod common;
mod diff;
mod load;
mod props;
mod resolve;
mod resolve_env;
mod resolve_secrets;
