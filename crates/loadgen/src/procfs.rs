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
    /// Of which system (kernel) time, seconds.
    #[serde(default)]
    pub sys_s: f64,
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

/// CPU seconds of every live descendant of `pid` (a hub's upstream servers), found through
/// `/proc/<pid>/task/<tid>/children`. Processes that exit in between are skipped.
pub(crate) fn descendants_cpu(pid: u32) -> f64 {
    let mut total = 0.0;
    let mut stack = vec![pid];
    let mut seen = 0;
    // Bounded: a process tree larger than this is not a benchmark setup.
    while let Some(p) = stack.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for child in text
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{child}/stat"))
                    && let Some(cpu) = parse_stat_cpu(&s)
                {
                    total += cpu.total().as_secs_f64();
                }
                stack.push(child);
            }
        }
    }
    total
}

fn sample_at(dir: &Path) -> Result<ProcSample, LoadgenError> {
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| LoadgenError::Proc(format!("{}: {e}", p.display())))
    };
    let mut s = parse_status(&read("status")?);
    let cpu = parse_stat_cpu(&read("stat")?)
        .ok_or_else(|| LoadgenError::Proc(format!("{}/stat: unexpected format", dir.display())))?;
    s.cpu_s = cpu.total().as_secs_f64();
    s.sys_s = cpu.system.as_secs_f64();
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

/// A process's CPU time: in user space and in the kernel on its behalf.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuTimes {
    user: Duration,
    system: Duration,
}

impl CpuTimes {
    fn total(self) -> Duration {
        self.user + self.system
    }
}

/// `utime` and `stime` from `/proc/<pid>/stat`. The command name (field 2) is in parentheses and
/// may contain spaces and parentheses itself, so fields are counted after the last `)`.
fn parse_stat_cpu(text: &str) -> Option<CpuTimes> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After the name: state(3) ppid(4) … utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = |t: u64| Duration::from_secs_f64(t as f64 / USER_HZ);
    Some(CpuTimes {
        user: ticks(utime),
        system: ticks(stime),
    })
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
                cpu_s: 0.0,
                sys_s: 0.0,
            }
        );
    }

    #[test]
    fn stat_cpu_survives_odd_names() {
        let line =
            "1234 (we) ird (name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        let cpu = parse_stat_cpu(line).unwrap();
        assert_eq!(
            (cpu.user, cpu.system, cpu.total()),
            (
                Duration::from_millis(2500),
                Duration::from_millis(500),
                Duration::from_secs(3)
            )
        );
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let s = sample_self().unwrap();
        assert!(s.vm_rss_kb > 0 && s.vm_hwm_kb >= s.vm_rss_kb && s.threads >= 1);
    }

    #[test]
    fn children_are_found() {
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5",
            ])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut cpu = 0.0;
        while cpu == 0.0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            cpu = descendants_cpu(std::process::id());
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(cpu > 0.0, "the busy child's CPU time is counted");
    }
}
