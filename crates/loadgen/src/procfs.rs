//! What Linux tells about a process in `/proc/<pid>/status` and `/proc/<pid>/stat`: memory high
//! water mark, resident set, threads, CPU time.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::LoadgenError;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProcSample {
    /// Peak resident set size since the process started (`VmHWM`), KiB.
    pub vm_hwm_kb: u64,
    /// Resident set size now (`VmRSS`), KiB.
    pub vm_rss_kb: u64,
    /// Threads now.
    pub threads: u64,
    /// User plus system CPU time so far, seconds.
    pub cpu_s: f64,
}

/// Clock ticks per second for `utime`/`stime`. Linux has reported these fields in USER_HZ = 100
/// on every architecture the hub targets, whatever the kernel's internal HZ.
const USER_HZ: f64 = 100.0;

pub(crate) fn sample(pid: u32) -> Result<ProcSample, LoadgenError> {
    sample_at(Path::new(&format!("/proc/{pid}")))
}

pub(crate) fn sample_self() -> Result<ProcSample, LoadgenError> {
    sample_at(Path::new("/proc/self"))
}

fn sample_at(dir: &Path) -> Result<ProcSample, LoadgenError> {
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| LoadgenError::Proc(format!("{}: {e}", p.display())))
    };
    let mut s = parse_status(&read("status")?);
    s.cpu_s = parse_stat_cpu(&read("stat")?)
        .ok_or_else(|| LoadgenError::Proc(format!("{}/stat: unexpected format", dir.display())))?
        .as_secs_f64();
    Ok(s)
}

fn parse_status(text: &str) -> ProcSample {
    let mut s = ProcSample::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let n = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        match (key, n) {
            ("VmHWM", Some(n)) => s.vm_hwm_kb = n,
            ("VmRSS", Some(n)) => s.vm_rss_kb = n,
            ("Threads", Some(n)) => s.threads = n,
            _ => {}
        }
    }
    s
}

/// `utime + stime` from `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// contain spaces and parentheses itself, so fields are counted after the last `)`.
fn parse_stat_cpu(text: &str) -> Option<Duration> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After the name: state(3) ppid(4) … utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let s = parse_status(
            "Name:\tmcp-hub\nVmPeak:\t  99999 kB\nVmHWM:\t    8200 kB\nVmRSS:\t    7100 kB\nThreads:\t5\n",
        );
        assert_eq!(
            s,
            ProcSample {
                vm_hwm_kb: 8200,
                vm_rss_kb: 7100,
                threads: 5,
                cpu_s: 0.0
            }
        );
    }

    #[test]
    fn stat_cpu_survives_odd_names() {
        let line =
            "1234 (we) ird (name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_cpu(line), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let s = sample_self().unwrap();
        assert!(s.vm_rss_kb > 0 && s.vm_hwm_kb >= s.vm_rss_kb && s.threads >= 1);
    }
}
