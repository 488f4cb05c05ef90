//! (c) FIB (issue 7): N routes into a node's kernel table and out again, by
//! tabby-fib-sync, `ip -batch` and BIRD 2, each in a fresh lab namespace.
//!
//! The methods run one after another, each followed by a pause
//! ([`SETTLE`]): a namespace is torn down asynchronously, and a million
//! withdrawn routes leave the kernel a backlog of RCU frees that would
//! otherwise be charged to whichever method runs next.
//!
//! What the clock and the CPU figure cover:
//! - tabby-fib-sync, in this process on one thread (a current-thread tokio
//!   runtime in the namespace): install from `FibSync::start` until `sync()`
//!   resolves, i.e. every request acknowledged, as `ip -batch` ends at its
//!   last acknowledgement; the dump that then verifies the table is timed on
//!   its own. Withdraw: `replace_all([])` until `sync()`. CPU is the
//!   thread's user + system time, the kernel's work in its system calls
//!   included.
//! - `ip -batch` of `route add` / `route del`: from spawning `ip` until it
//!   exits (it waits for each acknowledgement in turn); CPU is the child's.
//! - BIRD 2, a static protocol exported by its kernel protocol: install from
//!   spawning BIRD (configuration parsing included) until a route monitor in
//!   the namespace has received N `RTM_NEWROUTE` of protocol bird; withdraw
//!   from SIGTERM until N `RTM_DELROUTE`. CPU is BIRD's, from `/proc`.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ipnet::IpNet;
use nix::sys::resource::{UsageWho, getrusage};
use tabby_fib_sync::{FibConfig, FibRoute, FibSync, TABBY_RT_PROTO};

use super::client::host_prefixes;
use super::monitor::RouteMonitor;
use super::report::{spread, spread_text};
use super::scenario::load_average;
use crate::daemon::Daemon;
use crate::lab::{Lab, Ns};
use crate::procfs;

/// The pause after each method (see the module comment).
pub const SETTLE: Duration = Duration::from_secs(3);
/// BIRD's kernel route protocol number (`RTPROT_BIRD`).
const RTPROT_BIRD: u8 = 12;
/// The metric every method installs with (BIRD's kernel protocol sets it).
const METRIC: u32 = 32;
/// IPv4 routes are /32s of 100.64.0.0/10.
const V4_BASE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
const V4_SPACE: u32 = 1 << 22;
/// IPv6 routes are /64s of 2001:db8:1000::/36.
const V6_BASE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1000, 0, 0, 0, 0, 0);
const V6_SPACE: u32 = 1 << 28;

/// One load: `routes` routes of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FibCase {
    pub v6: bool,
    pub routes: u32,
}

impl FibCase {
    fn family(self) -> &'static str {
        if self.v6 { "IPv6" } else { "IPv4" }
    }

    /// The table title.
    pub fn title(self) -> String {
        format!(
            "(c) FIB: {} {} routes into one namespace's kernel and out again",
            self.routes,
            self.family()
        )
    }

    /// The routes every method installs: /32s or /64s from the lab's
    /// prefix space.
    fn prefixes(self) -> Result<Vec<IpNet>> {
        let space = if self.v6 { V6_SPACE } else { V4_SPACE };
        ensure!(
            self.routes <= space,
            "at most {space} {} routes fit the lab's prefix space",
            self.family()
        );
        if !self.v6 {
            return Ok(host_prefixes(V4_BASE, self.routes as usize)
                .into_iter()
                .map(IpNet::V4)
                .collect());
        }
        let base = u128::from(V6_BASE);
        (0..self.routes)
            .map(|i| {
                let a = Ipv6Addr::from(base + (u128::from(i) << 64));
                IpNet::new(IpAddr::V6(a), 64).context("a /64 is a valid prefix")
            })
            .collect()
    }

    /// The gateway, on-link on the lab interface.
    fn gateway(self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2))
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2))
        }
    }

    fn ip_family(self) -> &'static str {
        if self.v6 { "-6" } else { "-4" }
    }

    /// How long an install or withdraw may take before the run fails.
    fn limit(self) -> Duration {
        Duration::from_secs(120 + u64::from(self.routes) / 5_000)
    }
}

/// A way of getting routes into the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    IpBatch,
    Tabby,
    Bird2,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::IpBatch => "ip -batch",
            Method::Tabby => "tabby-fib-sync",
            Method::Bird2 => "BIRD 2",
        }
    }
}

/// Wall and CPU time of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub wall: Duration,
    pub cpu: Duration,
}

/// What one method did in one repetition.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodRun {
    pub install: Timing,
    pub withdraw: Timing,
    /// tabby-fib-sync's verifying dump after the install (not in `install`).
    pub verify: Option<Timing>,
    /// The 1-minute load average when the method started.
    pub host_load: f64,
    /// Something the reader should know about this run.
    pub note: Option<String>,
}

/// One repetition: each method once, in order, or why it failed.
#[derive(Debug, Clone, Default)]
pub struct FibRep(pub Vec<(Method, Result<MethodRun, String>)>);

impl FibRep {
    fn get(&self, m: Method) -> Option<&MethodRun> {
        self.0
            .iter()
            .find(|(x, _)| *x == m)
            .and_then(|(_, r)| r.as_ref().ok())
    }
}

/// Runs every method once on `case`, pausing [`SETTLE`] after each.
pub fn run_rep(case: FibCase, methods: &[Method]) -> FibRep {
    let mut rep = FibRep::default();
    for &m in methods {
        let r = match m {
            Method::IpBatch => ip_batch(case),
            Method::Tabby => tabby(case),
            Method::Bird2 => bird2(case),
        };
        match &r {
            Ok(r) => eprintln!(
                "  {}: install {:.3} s ({:.2} CPU s), withdraw {:.3} s ({:.2} CPU s){}",
                m.name(),
                r.install.wall.as_secs_f64(),
                r.install.cpu.as_secs_f64(),
                r.withdraw.wall.as_secs_f64(),
                r.withdraw.cpu.as_secs_f64(),
                r.verify
                    .map(|v| format!(
                        ", verifying dump {:.3} s ({:.2} CPU s)",
                        v.wall.as_secs_f64(),
                        v.cpu.as_secs_f64()
                    ))
                    .unwrap_or_default()
            ),
            Err(e) => eprintln!("  {}: failed: {e:#}", m.name()),
        }
        rep.0.push((m, r.map_err(|e| format!("{e:#}"))));
        std::thread::sleep(SETTLE);
    }
    rep
}

/// A fresh lab: one namespace with a veth whose end `t0` holds
/// 198.18.0.1/24 and 2001:db8::1/64, so the gateways .2 and ::2 are on-link.
fn fib_lab() -> Result<(Lab, Ns)> {
    let mut lab = Lab::new("bench-fib")?;
    let ns = lab.ns("fib")?;
    lab.stub_iface(&ns, "t0")?;
    lab.add_addr(&ns, "t0", "198.18.0.1/24")?;
    lab.add_addr(&ns, "t0", "2001:db8::1/64")?;
    Ok((lab, ns))
}

fn rusage(who: UsageWho) -> Result<Duration> {
    let u = getrusage(who).context("getrusage failed")?;
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Ok(tv(u.user_time()) + tv(u.system_time()))
}

/// The default configuration; `TABBY_BENCH_FIB_IN_FLIGHT` and
/// `TABBY_BENCH_FIB_BATCH_BYTES` override the window and batch size when
/// tuning.
fn fib_config() -> FibConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    let mut c = FibConfig::default();
    if let Some(n) = env("TABBY_BENCH_FIB_IN_FLIGHT") {
        c.max_in_flight = n;
    }
    if let Some(n) = env("TABBY_BENCH_FIB_BATCH_BYTES") {
        c.batch_bytes = n;
    }
    c
}

/// tabby-fib-sync: install all, then withdraw all.
fn tabby(case: FibCase) -> Result<MethodRun> {
    let (lab, ns) = fib_lab()?;
    let gw = case.gateway();
    let routes: Vec<FibRoute> = case
        .prefixes()?
        .into_iter()
        .map(|p| FibRoute::via(p, gw))
        .collect();
    let host_load = load_average();
    lab.in_ns(&ns, move || -> Result<MethodRun> {
        // One thread runs the actor and this client: its CPU time is all
        // of tabby-fib-sync's work.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a tokio runtime")?;
        let mut run = rt.block_on(tabby_in_ns(case, routes))?;
        run.host_load = host_load;
        Ok(run)
    })?
}

async fn tabby_in_ns(case: FibCase, routes: Vec<FibRoute>) -> Result<MethodRun> {
    let n = case.routes;
    let thread_cpu = || rusage(UsageWho::RUSAGE_THREAD);
    let cpu0 = thread_cpu()?;
    let t0 = Instant::now();
    let (fib, task) = FibSync::start(fib_config()).await?;
    let join = tokio::spawn(task.run());
    fib.converged().await?;
    let resyncs0 = fib.stats().await?.resyncs;
    fib.set_many(routes).await?;
    fib.sync().await?;
    let install = Timing {
        wall: t0.elapsed(),
        cpu: thread_cpu()? - cpu0,
    };
    // A bulk run ends with a dump that verifies the table; `sync` does not
    // wait for it when every request succeeded. Timed on its own, so that
    // it is reported and the withdraw is not charged with it.
    let cpu0 = thread_cpu()?;
    let t0 = Instant::now();
    let s = loop {
        let s = fib.stats().await?;
        if s.resyncs >= resyncs0 + s.bulk_runs {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60 + u64::from(n) / 10_000) {
            bail!("the verifying dump did not finish: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let verify = Timing {
        wall: t0.elapsed(),
        cpu: thread_cpu()? - cpu0,
    };
    ensure!(
        s.installs == u64::from(n) && s.installed == n as usize,
        "tabby-fib-sync installed {} of {n} routes: {s:?}",
        s.installs
    );
    eprintln!(
        "tabby-fib-sync: {n} routes on {} nexthop object(s) (0: next hops per route)",
        s.nexthops
    );
    let cpu0 = thread_cpu()?;
    let t0 = Instant::now();
    fib.replace_all(Vec::new()).await?;
    fib.sync().await?;
    let withdraw = Timing {
        wall: t0.elapsed(),
        cpu: thread_cpu()? - cpu0,
    };
    let s = fib.stats().await?;
    ensure!(
        s.installed == 0,
        "tabby-fib-sync left {} routes",
        s.installed
    );
    drop(fib);
    let _ = join.await;
    Ok(MethodRun {
        install,
        withdraw,
        verify: Some(verify),
        host_load: 0.0,
        note: None,
    })
}

/// `ip -batch` of `route add`, then of `route del`.
fn ip_batch(case: FibCase) -> Result<MethodRun> {
    let (lab, ns) = fib_lab()?;
    let prefixes = case.prefixes()?;
    let gw = case.gateway();
    let (mut add, mut del) = (String::new(), String::new());
    for p in &prefixes {
        let _ = writeln!(
            add,
            "route add {p} via {gw} proto {TABBY_RT_PROTO} metric {METRIC}"
        );
        let _ = writeln!(del, "route del {p} proto {TABBY_RT_PROTO} metric {METRIC}");
    }
    let add = lab.write_file("add.ip", &add)?;
    let del = lab.write_file("del.ip", &del)?;
    let host_load = load_average();
    Ok(MethodRun {
        install: run_ip(&ns, &add, case)?,
        withdraw: run_ip(&ns, &del, case)?,
        verify: None,
        host_load,
        note: None,
    })
}

/// One `ip -batch`, waited for directly: [`Lab::ip_batch`] polls its child
/// every few milliseconds, which would blur a half-second measurement.
fn run_ip(ns: &Ns, file: &Path, case: FibCase) -> Result<Timing> {
    let children_cpu = || rusage(UsageWho::RUSAGE_CHILDREN);
    let cpu0 = children_cpu()?;
    let t0 = Instant::now();
    let st = Command::new("ip")
        .args(["-n", &ns.name, case.ip_family(), "-batch"])
        .arg(file)
        .stdin(Stdio::null())
        .status()
        .context("cannot run ip (install iproute2)")?;
    let wall = t0.elapsed();
    ensure!(st.success(), "ip -batch {} failed ({st})", file.display());
    Ok(Timing {
        wall,
        cpu: children_cpu()? - cpu0,
    })
}

/// BIRD 2's configuration: a static protocol with the routes, exported to
/// the kernel protocol; errors-only log as in the reflector benchmark.
fn bird_conf(case: FibCase) -> Result<String> {
    let fam = if case.v6 { "ipv6" } else { "ipv4" };
    let gw = case.gateway();
    let mut text = String::with_capacity(case.routes as usize * 48);
    let _ = writeln!(
        text,
        "router id 198.18.0.1;\nlog stderr {{ error, fatal, bug }};\n\
         protocol device {{ scan time 60; }}\n\
         protocol kernel {{ {fam} {{ import none; export all; }}; metric {METRIC}; }}\n\
         protocol static {{ {fam};"
    );
    for p in case.prefixes()? {
        let _ = writeln!(text, "  route {p} via {gw};");
    }
    text.push_str("}\n");
    Ok(text)
}

/// BIRD 2: start with every route configured; withdraw = SIGTERM, on which
/// BIRD removes what it exported.
fn bird2(case: FibCase) -> Result<MethodRun> {
    let (mut lab, ns) = fib_lab()?;
    let conf = lab.write_file("bird.conf", &bird_conf(case)?)?;
    let (sock, pidfile) = (lab.path("bird.ctl"), lab.path("bird.pid"));
    let n = u64::from(case.routes);
    let mon = RouteMonitor::counter(&lab, &ns, RTPROT_BIRD)?;
    let host_load = load_average();
    let t0 = Instant::now();
    // Started without `Lab::start_bird2`'s readiness poll: its birdc
    // processes would run beside BIRD during the measured install.
    let shown = |p: &Path| p.display().to_string();
    lab.start(
        &ns,
        "bird",
        Daemon::other(
            "bird",
            &[
                "-f",
                "-c",
                &shown(&conf),
                "-s",
                &shown(&sock),
                "-P",
                &shown(&pidfile),
            ],
        ),
    )?;
    let pid = lab.pid("bird")?;
    let log = lab.log_path("bird")?;
    mon.wait_until(case.limit(), |added, _| {
        if !procfs::alive(pid) {
            bail!(
                "BIRD exited during the install; its log ends:\n{}",
                crate::cmd::tail_file(&log, 10)
            );
        }
        Ok(added >= n)
    })
    .context("BIRD 2's install")?;
    let end = mon.last_seen().unwrap_or_else(Instant::now);
    let cpu = procfs::stats(pid)?.cpu_secs;
    let install = Timing {
        wall: end.saturating_duration_since(t0),
        cpu: Duration::from_secs_f64(cpu),
    };
    // The monitor counts notifications: check that they were N distinct
    // routes in the table, not fewer announced more than once.
    let in_table = lab
        .ip(&ns, &[case.ip_family(), "route", "show", "proto", "bird"])
        .map(|o| o.lines().count())
        .unwrap_or(0);
    let note = (in_table < case.routes as usize).then(|| {
        format!(
            "{n} RTM_NEWROUTE seen but only {in_table} routes in the table when they were counted"
        )
    });
    // Read while BIRD lives; after the exit `/proc` keeps the times until the
    // lab reaps it (it does so only when dropped).
    let cpu0 = procfs::stats(pid)?.cpu_secs;
    let t1 = Instant::now();
    let bird = nix::unistd::Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
    nix::sys::signal::kill(bird, nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| anyhow!("cannot signal BIRD (pid {pid}): {e}"))?;
    mon.wait_counts(case.limit(), |_, deleted| deleted >= n)
        .context("BIRD 2's withdraw on SIGTERM")?;
    let end = mon.last_seen().unwrap_or_else(Instant::now);
    let cpu1 = procfs::stats(pid)?.cpu_secs;
    Ok(MethodRun {
        install,
        withdraw: Timing {
            wall: end.saturating_duration_since(t1),
            cpu: Duration::from_secs_f64((cpu1 - cpu0).max(0.0)),
        },
        verify: None,
        host_load,
        note,
    })
}

/// `median (min–max)` of per-repetition rate ratios `m` against `base`
/// (`base`'s wall over `m`'s: above 1, `m` is faster).
fn rate_ratio(
    reps: &[FibRep],
    m: Method,
    base: Method,
    wall: impl Fn(&MethodRun) -> Duration,
) -> String {
    if m == base {
        return "—".into();
    }
    let v: Vec<f64> = reps
        .iter()
        .filter_map(|r| {
            let (a, b) = (r.get(m)?, r.get(base)?);
            let w = wall(a).as_secs_f64();
            (w > 0.0).then(|| wall(b).as_secs_f64() / w)
        })
        .collect();
    match spread(&v) {
        Some(_) => format!("{}×", spread_text(&v, 2)),
        None => "—".into(),
    }
}

/// The markdown table of one case over every repetition.
pub fn table(case: FibCase, methods: &[Method], reps: &[FibRep]) -> String {
    let n = f64::from(case.routes);
    let mut o = String::new();
    let _ = writeln!(o, "### {}\n", case.title());
    o.push_str("| method | runs | install (s) | routes/s | CPU (s) | rate vs ip -batch | rate vs BIRD 2 | withdraw (s) | routes/s | CPU (s) | rate vs ip -batch | rate vs BIRD 2 | host load |\n");
    o.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut notes = Vec::new();
    for &m in methods {
        let ok: Vec<&MethodRun> = reps.iter().filter_map(|r| r.get(m)).collect();
        for (i, r) in reps.iter().enumerate() {
            for (x, res) in &r.0 {
                match res {
                    Err(e) if *x == m => {
                        notes.push(format!("- {}: run {} failed: {e}", m.name(), i + 1))
                    }
                    Ok(MethodRun { note: Some(t), .. }) if *x == m => {
                        notes.push(format!("- {}: run {}: {t}", m.name(), i + 1))
                    }
                    _ => {}
                }
            }
        }
        if ok.is_empty() {
            let _ = writeln!(
                o,
                "| {} | 0/{} | not measured | | | | | | | | | | |",
                m.name(),
                reps.len()
            );
            continue;
        }
        let col = |f: &dyn Fn(&MethodRun) -> f64, d: usize| -> String {
            spread_text(&ok.iter().map(|r| f(r)).collect::<Vec<_>>(), d)
        };
        let rate = |f: &dyn Fn(&MethodRun) -> Duration| -> String {
            let v: Vec<f64> = ok.iter().map(|r| f(r).as_secs_f64()).collect();
            spread(&v)
                .filter(|(med, ..)| *med > 0.0)
                .map(|(med, ..)| format!("{:.0}", n / med))
                .unwrap_or_else(|| "—".into())
        };
        let _ = writeln!(
            o,
            "| {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.name(),
            ok.len(),
            reps.len(),
            col(&|r| r.install.wall.as_secs_f64(), 3),
            rate(&|r| r.install.wall),
            col(&|r| r.install.cpu.as_secs_f64(), 2),
            rate_ratio(reps, m, Method::IpBatch, |r| r.install.wall),
            rate_ratio(reps, m, Method::Bird2, |r| r.install.wall),
            col(&|r| r.withdraw.wall.as_secs_f64(), 3),
            rate(&|r| r.withdraw.wall),
            col(&|r| r.withdraw.cpu.as_secs_f64(), 2),
            rate_ratio(reps, m, Method::IpBatch, |r| r.withdraw.wall),
            rate_ratio(reps, m, Method::Bird2, |r| r.withdraw.wall),
            col(&|r| r.host_load, 1),
        );
    }
    let verify: Vec<Timing> = reps
        .iter()
        .filter_map(|r| r.get(Method::Tabby)?.verify)
        .collect();
    if !verify.is_empty() {
        let secs = |f: &dyn Fn(&Timing) -> Duration| -> Vec<f64> {
            verify.iter().map(|t| f(t).as_secs_f64()).collect()
        };
        let _ = writeln!(
            o,
            "\ntabby-fib-sync's verifying dump after the install (not in the install column): {} s, {} CPU s. Counted into the install, its rate is {} `ip -batch`'s and {} BIRD 2's.",
            spread_text(&secs(&|t| t.wall), 3),
            spread_text(&secs(&|t| t.cpu), 2),
            rate_ratio(reps, Method::Tabby, Method::IpBatch, with_verify),
            rate_ratio(reps, Method::Tabby, Method::Bird2, with_verify),
        );
    }
    if !notes.is_empty() {
        o.push('\n');
        for n in notes {
            let _ = writeln!(o, "{}", n.replace('\n', " / "));
        }
    }
    o
}

/// Install plus the verifying dump, for the method that has one.
fn with_verify(r: &MethodRun) -> Duration {
    r.install.wall + r.verify.map(|v| v.wall).unwrap_or_default()
}

/// What the tables measure, for the report.
pub fn describe() -> String {
    format!(
        "Each method runs in a fresh network namespace with the same routes (/32s from 100.64.0.0/10 or /64s from 2001:db8:1000::/36, via an on-link gateway on a veth, metric {METRIC}), one method after another with a {} s pause after each so that none is charged the previous one's namespace teardown and RCU backlog; a run is one pass over every method, and the rate ratios compare methods within the same run (above 1: faster than the other). *Install*: tabby-fib-sync (the library in this process, one thread: actor and caller) from `FibSync::start` until `sync()` resolves, i.e. every request acknowledged; `ip -batch` of `route add` from spawning `ip` until it exits (it waits for each acknowledgement in turn); BIRD 2 (a static protocol exported by its kernel protocol) from spawning BIRD, configuration parsing included, until a route monitor in the namespace has received N `RTM_NEWROUTE` of protocol bird. *Withdraw*: tabby-fib-sync `replace_all([])` until `sync()`; `ip -batch` of `route del`; BIRD from SIGTERM until N `RTM_DELROUTE`. CPU is user + system time of the tabby thread, the `ip` child or the BIRD process, kernel work in their system calls included. tabby-fib-sync pauses route notifications during a bulk run and verifies the table with one dump afterwards; that dump is timed separately (below each table). *Host load*: the 1-minute load average when the method started.\n",
        SETTLE.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(install: f64, withdraw: f64) -> MethodRun {
        let t = |s: f64| Timing {
            wall: Duration::from_secs_f64(s),
            cpu: Duration::from_secs_f64(s / 2.0),
        };
        MethodRun {
            install: t(install),
            withdraw: t(withdraw),
            verify: None,
            host_load: 2.0,
            note: None,
        }
    }

    fn case(v6: bool, routes: u32) -> FibCase {
        FibCase { v6, routes }
    }

    #[test]
    fn prefixes_are_distinct_and_in_the_lab_plan() {
        let v4 = case(false, 3).prefixes().unwrap();
        let s: Vec<String> = v4.iter().map(|p| p.to_string()).collect();
        assert_eq!(s, ["100.64.0.0/32", "100.64.0.1/32", "100.64.0.2/32"]);
        let v6 = case(true, 2).prefixes().unwrap();
        let s: Vec<String> = v6.iter().map(|p| p.to_string()).collect();
        assert_eq!(s, ["2001:db8:1000::/64", "2001:db8:1000:1::/64"]);
        assert!(case(false, V4_SPACE + 1).prefixes().is_err());
    }

    #[test]
    fn bird_conf_lists_every_route() {
        let c = bird_conf(case(true, 2)).unwrap();
        assert!(c.contains("protocol kernel { ipv6 { import none; export all; }; metric 32; }"));
        assert!(c.contains("route 2001:db8:1000:1::/64 via 2001:db8::2;"));
        assert_eq!(c.matches("  route ").count(), 2);
    }

    #[test]
    fn table_has_medians_and_same_run_ratios() {
        let tabby = |install, withdraw| MethodRun {
            verify: Some(Timing {
                wall: Duration::from_millis(100),
                cpu: Duration::from_millis(100),
            }),
            ..run(install, withdraw)
        };
        let reps = vec![
            FibRep(vec![
                (Method::IpBatch, Ok(run(1.0, 1.0))),
                (Method::Tabby, Ok(tabby(0.5, 0.4))),
                (Method::Bird2, Ok(run(2.0, 0.8))),
            ]),
            FibRep(vec![
                (Method::IpBatch, Ok(run(2.0, 1.0))),
                (Method::Tabby, Ok(tabby(0.5, 0.5))),
                (Method::Bird2, Err("bird not installed".into())),
            ]),
        ];
        let case = case(false, 100_000);
        let t = table(
            case,
            &[Method::IpBatch, Method::Tabby, Method::Bird2],
            &reps,
        );
        // ip -batch: install medians 1.5 s; no ratio against itself.
        assert!(
            t.contains(
                "| ip -batch | 2/2 | 1.500 (1.000–2.000) | 66667 | 0.75 (0.50–1.00) | — | 2.00× |"
            ),
            "{t}"
        );
        // tabby: 2× and 4× ip -batch's install rate in runs 1 and 2; BIRD
        // only in run 1.
        assert!(
            t.contains("| tabby-fib-sync | 2/2 | 0.500 (0.500–0.500) | 200000 | 0.25 (0.25–0.25) | 3.00 (2.00–4.00)× | 4.00× |"),
            "{t}"
        );
        assert!(t.contains("| BIRD 2 | 1/2 | 2.000 |"), "{t}");
        assert!(
            t.contains("- BIRD 2: run 2 failed: bird not installed"),
            "{t}"
        );
        // The dump counted in: 1.0 / 0.6 and 2.0 / 0.6.
        assert!(
            t.contains("0.100 (0.100–0.100) s, 0.10 (0.10–0.10) CPU s. Counted into the install, its rate is 2.50 (1.67–3.33)× `ip -batch`'s and 3.33× BIRD 2's."),
            "{t}"
        );
    }
}
