//! (d) End to end: `AnnounceRoutes` on node A until the route is in node B's
//! kernel (issue 5 "API → wire → remote kernel", issue 7 (d)).
//!
//! One announcement at a time, each a new /32: the clock starts before the
//! call on A's unix socket and stops when B's route monitor receives the
//! `RTM_NEWROUTE` (protocol tabby) for that prefix. Two stamps on the way
//! show where the time goes: when A's call returned (A's Loc-RIB has the
//! route and the UPDATE is queued to the session: tabbyd pumps before it
//! answers) and when B's `WatchRoutes` stream reported the new best path
//! (B's Loc-RIB; that stamp carries B's gRPC delivery as well).

use std::collections::HashMap;
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ipnet::{IpNet, Ipv4Net};
use tabby_proto::v1 as pb;

use super::client::{Api, host_prefixes};
use super::monitor::RouteMonitor;
use super::pair::start_run;
use super::report::median;
use super::scenario::load_average;

/// The warm-up route, outside the measured range.
const PROBE: Ipv4Addr = Ipv4Addr::new(100, 64, 255, 255);
/// The measured routes: 100.65.0.0 onwards.
const BASE: Ipv4Addr = Ipv4Addr::new(100, 65, 0, 0);
/// How long one announcement may take to reach B's kernel.
const EACH_LIMIT: Duration = Duration::from_secs(5);

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct E2eRun {
    /// Per announcement: call start → RTM_NEWROUTE in B's namespace.
    pub kernel: Vec<Duration>,
    /// Per announcement: call start → call returned.
    pub api: Vec<Duration>,
    /// Per announcement seen on B's watch stream: call start → event.
    pub rib_b: Vec<Duration>,
    /// Announcements that did not reach B's kernel within 5 s.
    pub lost: usize,
    /// CPU seconds of node A and B over the announcements.
    pub cpu_a: f64,
    pub cpu_b: f64,
    /// The bench process's own CPU seconds over the same interval.
    pub client_cpu: f64,
    pub host_load: f64,
}

/// Runs `n` announcements in a fresh pair of nodes.
pub fn run_once(tabbyd: &Path, n: usize) -> Result<E2eRun> {
    let (rt, mut pair, mon, mut a) = start_run(tabbyd, 1)?;

    // B's Loc-RIB as its watchers see it.
    let seen_b: Arc<Mutex<HashMap<Ipv4Net, Instant>>> = Arc::default();
    let ready = rt.block_on(start_watch(&pair.b_sock, seen_b.clone()))?;
    ready_wait(ready)?;

    // Warm-up: B selects best paths only after A's End-of-RIB, and the
    // first route through each layer pays for lazy setup.
    let probe = Ipv4Net::new(PROBE, 32)?;
    rt.block_on(a.announce(&[probe]))?;
    wait_route(&mon, probe, Duration::from_secs(60))
        .with_context(|| format!("warm-up route {probe} never reached node B's kernel"))?;

    let prefixes = host_prefixes(BASE, n);
    let mut run = E2eRun {
        host_load: load_average(),
        ..E2eRun::default()
    };
    let (a0, b0) = pair.cpu()?;
    let c0 = crate::procfs::stats(std::process::id())?.cpu_secs;
    let mut starts = Vec::with_capacity(n);
    for p in &prefixes {
        // Only notifications after this call count.
        while mon.events.try_recv().is_ok() {}
        let t0 = Instant::now();
        rt.block_on(a.announce(&[*p]))?;
        run.api.push(t0.elapsed());
        starts.push(t0);
        match wait_route(&mon, *p, EACH_LIMIT) {
            Ok(at) => run.kernel.push(at.duration_since(t0)),
            Err(_) => run.lost += 1,
        }
    }
    let (a1, b1) = pair.cpu()?;
    run.client_cpu = crate::procfs::stats(std::process::id())?.cpu_secs - c0;
    run.cpu_a = a1 - a0;
    run.cpu_b = b1 - b0;
    mon.check()?;
    pair.check_alive()?;
    // The watch stream may trail the kernel: give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let seen = seen_b.lock().unwrap_or_else(PoisonError::into_inner);
    for (p, t0) in prefixes.iter().zip(&starts) {
        if let Some(at) = seen.get(p) {
            run.rib_b.push(at.saturating_duration_since(*t0));
        }
    }
    drop(seen);
    if run.kernel.is_empty() {
        bail!("no announcement reached node B's kernel");
    }
    Ok(run)
}

/// When `prefix` was added in the monitored kernel.
fn wait_route(mon: &RouteMonitor, prefix: Ipv4Net, limit: Duration) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match mon.events.recv_timeout(left) {
            Ok(ev) if ev.added && ev.prefix == IpNet::V4(prefix) => return Ok(ev.at),
            Ok(_) => {}
            Err(_) => {
                mon.check()?;
                return Err(anyhow!("{prefix} not in the kernel after {limit:?}"));
            }
        }
    }
}

type Ready = tokio::sync::oneshot::Receiver<Result<(), String>>;

fn ready_wait(ready: Ready) -> Result<()> {
    let t0 = Instant::now();
    let mut ready = ready;
    loop {
        match ready.try_recv() {
            Ok(r) => return r.map_err(|e| anyhow!("node B's route watch: {e}")),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                bail!("node B's route watch ended before its snapshot")
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
        }
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("node B's route watch sent no snapshot within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Follows B's WatchRoutes in a task; `ready` fires at END_OF_SNAPSHOT.
async fn start_watch(sock: &Path, seen: Arc<Mutex<HashMap<Ipv4Net, Instant>>>) -> Result<Ready> {
    let mut stream = Api::connect(sock).await?.watch().await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        loop {
            match stream.message().await {
                Ok(Some(ev)) => {
                    if ev.kind == pb::RouteEventKind::EndOfSnapshot as i32 {
                        if let Some(t) = tx.take() {
                            let _ = t.send(Ok(()));
                        }
                    } else if ev.kind == pb::RouteEventKind::BestChanged as i32 {
                        let at = Instant::now();
                        if let Ok(p) = ev.prefix.parse::<Ipv4Net>() {
                            seen.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .entry(p)
                                .or_insert(at);
                        }
                    }
                }
                Ok(None) => break,
                Err(s) => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(Err(s.message().to_string()));
                    }
                    break;
                }
            }
        }
    });
    Ok(rx)
}

/// The `q` quantile (nearest rank) of `v`, in milliseconds.
pub fn quantile_ms(v: &[Duration], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s: Vec<Duration> = v.to_vec();
    s.sort();
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s.get(rank - 1).map(|d| d.as_secs_f64() * 1e3)
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into())
}

/// The markdown table: one row per run and one over every announcement.
pub fn table(n: usize, runs: &[Result<E2eRun, String>]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "### (d) End to end: AnnounceRoutes on node A → route in node B's kernel, {n} announcements per run\n"
    );
    o.push_str("| run | reached B's kernel | min (ms) | p50 (ms) | p99 (ms) | max (ms) | A's call returned p50 / p99 (ms) | in B's Loc-RIB (watch) p50 / p99 (ms) | node A CPU (s) | node B CPU (s) | client CPU (s) | host load |\n");
    o.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut all = E2eRun::default();
    let (mut ca, mut cb, mut cc, mut hl) = (vec![], vec![], vec![], vec![]);
    for (i, r) in runs.iter().enumerate() {
        match r {
            Ok(r) => {
                row(&mut o, &(i + 1).to_string(), r, n, None);
                all.kernel.extend_from_slice(&r.kernel);
                all.api.extend_from_slice(&r.api);
                all.rib_b.extend_from_slice(&r.rib_b);
                all.lost += r.lost;
                ca.push(r.cpu_a);
                cb.push(r.cpu_b);
                cc.push(r.client_cpu);
                hl.push(r.host_load);
            }
            Err(e) => {
                let _ = writeln!(
                    o,
                    "| {} | failed: {} | | | | | | | | | | |",
                    i + 1,
                    e.replace('|', "/")
                );
            }
        }
    }
    let ok = runs.iter().filter(|r| r.is_ok()).count();
    if ok > 1 {
        all.cpu_a = median(ca.iter().copied()).unwrap_or(0.0);
        all.cpu_b = median(cb.iter().copied()).unwrap_or(0.0);
        all.client_cpu = median(cc.iter().copied()).unwrap_or(0.0);
        all.host_load = median(hl.iter().copied()).unwrap_or(0.0);
        row(&mut o, "**all runs**", &all, n * ok, Some("median "));
    }
    o
}

fn row(o: &mut String, label: &str, r: &E2eRun, asked: usize, med: Option<&str>) {
    let q = |v: &[Duration], x: f64| ms(quantile_ms(v, x));
    let m = med.unwrap_or("");
    let _ = writeln!(
        o,
        "| {label} | {}/{asked} | {} | {} | {} | {} | {} / {} | {} / {} | {m}{:.2} | {m}{:.2} | {m}{:.2} | {m}{:.1} |",
        r.kernel.len(),
        q(&r.kernel, 0.0),
        q(&r.kernel, 0.5),
        q(&r.kernel, 0.99),
        q(&r.kernel, 1.0),
        q(&r.api, 0.5),
        q(&r.api, 0.99),
        q(&r.rib_b, 0.5),
        q(&r.rib_b, 0.99),
        r.cpu_a,
        r.cpu_b,
        r.client_cpu,
        r.host_load,
    );
}

/// What the table measures, for the report.
pub fn describe() -> String {
    "Two tabbyd nodes (release build, FIB on, log level error) in their own namespaces on one veth link, full iBGP mesh from one Calico cluster file with an IP pool over 100.64.0.0/10. Each announcement is one AnnounceRoutes call with one new host /32 on node A's unix socket, made after the previous one reached B; the clock stops when an rtnetlink socket in B's namespace (RTNLGRP_IPV4_ROUTE) receives RTM_NEWROUTE of protocol 84 for that prefix. *A's call returned*: AnnounceRoutes answers after A's Loc-RIB has the route and the UPDATE is queued to the session. *In B's Loc-RIB*: B's WatchRoutes stream reported the new best path (this stamp includes B's gRPC delivery, so it may trail the kernel). CPU covers the announcements only; the client is this bench process (API calls, route monitor, watch stream).\n".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&v, 0.5), Some(50.0));
        assert_eq!(quantile_ms(&v, 0.99), Some(99.0));
        assert_eq!(quantile_ms(&v, 1.0), Some(100.0));
        assert_eq!(quantile_ms(&v, 0.0), Some(1.0));
        assert_eq!(quantile_ms(&[], 0.5), None);
    }

    #[test]
    fn table_has_a_row_per_run_and_a_pooled_row() {
        let r = E2eRun {
            kernel: vec![Duration::from_millis(2), Duration::from_millis(4)],
            api: vec![Duration::from_micros(300); 2],
            rib_b: vec![Duration::from_millis(3)],
            lost: 0,
            cpu_a: 0.5,
            cpu_b: 0.7,
            client_cpu: 0.2,
            host_load: 1.0,
        };
        let t = table(2, &[Ok(r.clone()), Ok(r), Err("boom".into())]);
        assert!(
            t.contains("| 1 | 2/2 | 2.00 | 2.00 | 4.00 | 4.00 | 0.30 / 0.30 | 3.00 / 3.00 |"),
            "{t}"
        );
        assert!(t.contains("| 3 | failed: boom |"), "{t}");
        assert!(t.contains("| **all runs** | 4/4 |"), "{t}");
    }
}
