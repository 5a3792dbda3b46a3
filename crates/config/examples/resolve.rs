//! The config crate on its own: load several config files in order, resolve every server with
//! the real environment (`${VAR}` from this process, `${cmd: …}` through `/bin/sh`, `MCP_HUB_ENV`)
//! and print what a hub would launch or connect to, with every value a placeholder resolved to
//! redacted.
//!
//! ```sh
//! EXAMPLE_SEARCH_TOKEN=tok-123456 cargo run -p mcp-hub-config --example resolve -- \
//!     crates/config/examples/resolve/global.json crates/config/examples/resolve/project.json5
//! ```
//!
//! Exits 1 when a file does not load or a server does not resolve (each error is printed; none
//! contains a resolved value).

use std::path::PathBuf;
use std::process::ExitCode;

use mcp_hub_config::{
    ProcessEnv, Redactor, ResolveContext, ResolvedKind, ShellRunner, load_reporting_all, redact_url,
};

fn main() -> ExitCode {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        eprintln!("usage: resolve <config file>...");
        return ExitCode::from(2);
    }
    let config = match load_reporting_all(&files) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    for f in &config.skipped {
        eprintln!("skipped (not found): {}", f.display());
    }

    let runner = ShellRunner::DEFAULT;
    let ctx = match ResolveContext::from_env(&ProcessEnv, &runner) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = config.resolve_all(&ctx);
    // One redactor for everything printed: a secret of one server is hidden wherever it shows.
    let redactor = Redactor::new();
    for s in &report.servers {
        redactor.add(&s.secrets);
    }
    let r = |text: &str| redactor.redact(text).into_owned();
    for s in &report.servers {
        let state = if s.disabled { " (disabled)" } else { "" };
        println!("{}{state}  from {}", s.name, s.config_source.display());
        match &s.kind {
            ResolvedKind::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                println!("  command: {}", r(command));
                for a in args {
                    println!("  arg:     {}", r(a));
                }
                if let Some(cwd) = cwd {
                    println!("  cwd:     {}", r(&cwd.display().to_string()));
                }
                for (k, v) in env {
                    println!("  env:     {k}={}", r(v));
                }
            }
            ResolvedKind::Remote {
                url,
                headers,
                transport,
            } => {
                println!("  url:     {} ({transport:?})", r(&redact_url(url)));
                for (k, v) in headers {
                    println!("  header:  {k}: {}", r(v));
                }
            }
        }
        for w in &s.warnings {
            println!("  warning: {w}");
        }
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
