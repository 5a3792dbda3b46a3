//! docs/API.md is the contract with Node-hub clients, including the table of every deliberate
//! difference from the Node hub: these checks keep it in step with the code and the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use mcp_hub_tests::bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn api_doc() -> String {
    std::fs::read_to_string(repo().join("docs/API.md")).expect("docs/API.md")
}

/// String literals that look like error codes (`SERVER_NOT_FOUND`) in a source file, outside its
/// tests and `env!` names.
fn codes_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    for (i, part) in code.split('"').enumerate() {
        let literal = i % 2 == 1;
        let is_code = part.len() >= 4
            && part.starts_with(|c: char| c.is_ascii_uppercase())
            && part.chars().all(|c| c.is_ascii_uppercase() || c == '_');
        if literal && is_code && !part.starts_with("CARGO_") {
            out.push(part.to_owned());
        }
    }
    out
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files.extend(sources(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            files.push(p);
        }
    }
    files
}

#[test]
fn every_rest_error_code_and_log_code_is_documented() {
    let doc = api_doc();
    let mut missing = Vec::new();
    for f in sources(&repo().join("crates/api/src/rest")) {
        for c in codes_in(&f) {
            if !doc.contains(&format!("`{c}`")) {
                missing.push(format!("{c} ({})", f.display()));
            }
        }
    }
    // Codes on log lines (`code = "…"` in tracing events) reach /api/events too.
    for crate_dir in ["core", "registry", "api"] {
        for f in sources(&repo().join("crates").join(crate_dir).join("src")) {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for piece in text.split("code = \"").skip(1) {
                let c = piece.split('"').next().unwrap_or_default();
                if !doc.contains(&format!("`{c}`")) {
                    missing.push(format!("log code {c} ({})", f.display()));
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "not in docs/API.md: {missing:#?}");
}

#[test]
fn the_differences_table_covers_every_surface_and_matches_the_binary() {
    let doc = api_doc();
    let table = doc
        .split("## Where we differ from the Node hub, and why")
        .nth(1)
        .expect("the differences section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    for surface in [
        "### Command line and files",
        "### REST API",
        "### Events",
        "### Unified endpoint",
    ] {
        assert!(table.contains(surface), "no {surface:?} table");
    }
    // Every row gives the Node hub's behaviour, ours and the reason: three filled cells.
    for row in table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Node hub"))
    {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        assert!(
            cells.len() >= 3 && cells.iter().all(|c| !c.is_empty()),
            "incomplete row: {row}"
        );
    }
    // What the table says `--version` prints is what it prints.
    let out = Command::new(bin("mcp-hub"))
        .arg("--version")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        table.contains(&format!("`{line}`")),
        "the table does not show the version line {line:?}"
    );
}
