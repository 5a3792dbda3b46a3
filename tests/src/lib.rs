//! Test kit for the end-to-end tests: finds the built binaries, starts the hub on an ephemeral
//! port with temporary config and state directories, speaks plain HTTP/1.1 to it, and checks that
//! no child process outlives it. Blocking std code on purpose: the tests drive a separate process.

// Shared with the modules below, which `use super::*`.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod events;
pub mod haproxy;
pub mod legacy;
pub mod node_hub;
pub mod oauth_server;
pub mod redis;
mod sse;

pub use sse::{Event, EventStream};

mod client;
mod http;
mod hub;
mod procfs;
mod upstreams;

pub use client::McpClient;
pub use http::{Response, jsonrpc_messages, parse_response, request, try_request};
pub use hub::{Hub, HubCmd, alive, wait_dead};
pub use procfs::{children, fd_count, rss_kib, thread_count};
pub use upstreams::{Fault, FaultyHttp, HttpFixture};

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/e2e-<hash> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// A built binary of the workspace. Panics with the command to run when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The fixture MCP server.
pub fn fixture() -> PathBuf {
    bin("mcp-hub-fixture")
}

/// The first line of a fixture's `--log` transcript (one received message per line) that `pred`
/// accepts, waiting up to `timeout` for it to be written. Panics naming the file when none comes.
pub fn transcript_line(log: &Path, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| pred(l)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no such line in {} within {timeout:?}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}
