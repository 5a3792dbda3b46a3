//! `mcp-hub check`: load and resolve the config the way `serve` would, and report every problem.

use std::process::ExitCode;

use crate::cli::Args;

pub(crate) fn run(args: &Args, extra: &[std::path::PathBuf]) -> ExitCode {
    let files: Vec<_> = args.config.iter().chain(extra).cloned().collect();
    if files.is_empty() {
        eprintln!("mcp-hub check: give at least one config file (--config FILE)");
        return ExitCode::from(2);
    }
    let config = match mcp_hub_core::config::load_reporting_all(&files) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s)", errors.len());
            return ExitCode::FAILURE;
        }
    };
    for p in &config.skipped {
        eprintln!("note: {} does not exist (skipped)", p.display());
    }
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    let env = mcp_hub_core::config::ProcessEnv;
    let runner =
        mcp_hub_core::config::ShellRunner::default().with_watch(std::sync::Arc::new(Watchdog));
    let ctx = match mcp_hub_core::config::ResolveContext::from_env(&env, &runner) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = config.resolve_all(&ctx);
    // What the placeholders resolved to may be secrets: shown scrubbed, the URL without its
    // userinfo and query.
    let redactor = mcp_hub_core::config::Redactor::new();
    for s in &report.servers {
        redactor.add(&s.secrets);
    }
    for s in &report.servers {
        let kind = match &s.kind {
            mcp_hub_core::config::ResolvedKind::Stdio { command, .. } => {
                format!("stdio: {}", redactor.redact(command))
            }
            mcp_hub_core::config::ResolvedKind::Remote { url, .. } => {
                let url = mcp_hub_core::config::redact_url(url);
                format!("remote: {}", redactor.redact(&url))
            }
        };
        let state = if s.disabled { " (disabled)" } else { "" };
        println!("ok    {}{state} - {kind}", s.name);
        for w in &s.warnings {
            println!("      warning: {w}");
        }
    }
    for e in &report.errors {
        println!("error {e}");
    }
    if report.errors.is_empty() {
        println!("{} server(s), no errors", report.servers.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} error(s)", report.errors.len());
        ExitCode::FAILURE
    }
}

/// Commands of `check` die with it: the transport's watchdog kills their process group if
/// `check` is interrupted (Ctrl-C reaches only the foreground group, not theirs).
struct Watchdog;

impl mcp_hub_core::config::CommandWatch for Watchdog {
    fn started(&self, pgid: u32) {
        mcp_hub_core::transport::watch_group(pgid);
    }

    fn finished(&self, pgid: u32) {
        mcp_hub_core::transport::unwatch_group(pgid);
    }
}
