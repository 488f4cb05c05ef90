//! Process facts from `/proc`: liveness, descendants (so a daemon's helper
//! children die with it) and resource accounting for the benchmark.

use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};

/// CPU time and memory of one process, as the kernel accounts them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStats {
    /// utime + stime of the process itself, seconds.
    pub cpu_secs: f64,
    /// cutime + cstime: CPU of children it has waited for, seconds.
    pub children_cpu_secs: f64,
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Current resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
}

impl ProcStats {
    /// Peak RSS in MiB, for tables.
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// Clock ticks per second for `/proc/PID/stat` times. Asked of `getconf` once
/// (no libc call: the workspace forbids unsafe); Linux uses 100 everywhere we run.
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        crate::cmd::run_ok("getconf", &["CLK_TCK"], crate::cmd::CMD_TIMEOUT)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Fields of `/proc/PID/stat` after the `(comm)` field: index 0 is `state`.
fn stat_fields(pid: u32) -> Result<Vec<String>> {
    let raw = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    parse_stat_tail(&raw).ok_or_else(|| anyhow!("cannot parse /proc/{pid}/stat"))
}

/// `comm` may contain spaces and parentheses: split after the last `)`.
fn parse_stat_tail(raw: &str) -> Option<Vec<String>> {
    let close = raw.rfind(')')?;
    let tail = raw.get(close + 1..)?;
    Some(tail.split_whitespace().map(str::to_string).collect())
}

fn field_u64(f: &[String], i: usize) -> Result<u64> {
    f.get(i)
        .ok_or_else(|| anyhow!("/proc stat has no field {i}"))?
        .parse()
        .with_context(|| format!("/proc stat field {i} is not a number"))
}

/// CPU and memory of `pid` now. Read before the process exits: afterwards
/// `/proc` forgets it.
pub fn stats(pid: u32) -> Result<ProcStats> {
    let f = stat_fields(pid)?;
    // After comm: state=0 ppid=1 … utime=11 stime=12 cutime=13 cstime=14.
    let tck = clock_ticks() as f64;
    let cpu = (field_u64(&f, 11)? + field_u64(&f, 12)?) as f64 / tck;
    let ccpu = (field_u64(&f, 13)? + field_u64(&f, 14)?) as f64 / tck;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcStats {
        cpu_secs: cpu,
        children_cpu_secs: ccpu,
        peak_rss_kib: kib("VmHWM:"),
        rss_kib: kib("VmRSS:"),
    })
}

/// [`stats`] of `pid` plus all its live descendants (ExaBGP's API helper,
/// etcd's threads are already in its own figure). Peak RSS is summed, an
/// upper bound of the tree's true peak.
pub fn stats_tree(pid: u32) -> Result<ProcStats> {
    let mut total = stats(pid)?;
    for d in descendants(pid) {
        if let Ok(s) = stats(d) {
            total.cpu_secs += s.cpu_secs;
            total.children_cpu_secs += s.children_cpu_secs;
            total.peak_rss_kib += s.peak_rss_kib;
            total.rss_kib += s.rss_kib;
        }
    }
    Ok(total)
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match stat_fields(pid) {
        Ok(f) => f.first().map(|s| s != "Z" && s != "X").unwrap_or(false),
        Err(_) => false,
    }
}

/// Parent pid of `pid`.
pub fn ppid(pid: u32) -> Option<u32> {
    stat_fields(pid).ok()?.get(1)?.parse().ok()
}

/// Every descendant of `pid` (children, grandchildren, …), from a scan of `/proc`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut pairs = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && let Some(pp) = ppid(p)
            {
                pairs.push((p, pp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &pairs {
            if pp == parent && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

/// Effective uid of this process (from `/proc/self/status`).
pub fn euid() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_tail_survives_odd_comm() {
        let raw = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0";
        let f = parse_stat_tail(raw).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[1], "1");
        assert_eq!(f[11], "7");
        assert_eq!(f[12], "3");
    }

    #[test]
    fn own_stats_are_sane() {
        let me = std::process::id();
        assert!(alive(me));
        let s = stats(me).unwrap();
        assert!(s.peak_rss_kib > 0 && s.peak_rss_kib >= s.rss_kib);
        assert!(s.cpu_secs >= 0.0);
    }

    #[test]
    fn descendants_finds_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let me = std::process::id();
        let d = descendants(me);
        let cid = child.id();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(d.contains(&cid), "{d:?} lacks {cid}");
        assert!(!alive(cid));
    }
}
