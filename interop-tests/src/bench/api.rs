//! The API under load (issue 5): 100k routes through one `AnnounceRoutes`
//! call into a real tabbyd, and ten `WatchRoutes` streams following 100k
//! changes.
//!
//! tabbyd answers `AnnounceRoutes` only after its Loc-RIB holds the routes
//! and the resulting UPDATEs are queued (it pumps the RIB before replying),
//! so the call's wall time is the time into the RIB; `Status` then confirms
//! the count. The same pair as (d) runs it: node A takes the calls, node B
//! (its mesh peer) installs what A advertises, so the figure includes A's
//! UPDATE encoding, as in a Calico node.
//!
//! The watchers see the changes twice: 100k announcements in calls of 1,000
//! (an IPAM assigning addresses), then the withdrawal of all of them in one
//! call. tabbyd publishes every change of one call before the watchers run
//! and its live feed holds 4,096 events, so a change set larger than that
//! in one call makes every watcher lag; each is then told to resync and gets
//! a fresh snapshot instead of the individual events.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use tabby_proto::v1 as pb;

use super::client::{Api, host_prefixes};
use super::pair::{Pair, start_run};
use super::report::spread_text;
use super::scenario::load_average;

/// The bulk routes: 100.68.0.0 onwards (100k /32s end in 100.69.134.159).
const BASE: Ipv4Addr = Ipv4Addr::new(100, 68, 0, 0);
/// How long a phase may take before the run fails.
const LIMIT: Duration = Duration::from_secs(180);

/// The load.
#[derive(Debug, Clone, Copy)]
pub struct ApiLoad {
    pub routes: usize,
    pub watchers: usize,
    /// Routes per call in the watched announce phase.
    pub batch: usize,
}

/// One watcher over one phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct WatcherPhase {
    /// Change events (BEST_CHANGED, WITHDRAWN) received.
    pub changes: u64,
    /// RESYNC events received.
    pub resyncs: u64,
    /// Snapshot events received after a RESYNC.
    pub snapshot: u64,
    /// From the phase's first call until the watcher had seen the last
    /// change (or a snapshot at least as new); `None`: never within 180 s.
    pub done: Option<Duration>,
    /// Change events seen before the phase's first RESYNC, and when that
    /// RESYNC came (from the phase's first call).
    pub first_resync: Option<(u64, Duration)>,
}

impl WatcherPhase {
    /// Events per second while the watcher kept up: every change over the
    /// time to be current, or, if it was told to resync, the changes before
    /// that over the time until then.
    pub fn delivery_rate(&self) -> Option<f64> {
        let (n, d) = match self.first_resync {
            Some(x) => x,
            None => (self.changes, self.done?),
        };
        Some(n as f64 / d.as_secs_f64().max(1e-9))
    }
}

/// A watched phase.
#[derive(Debug, Clone, Default)]
pub struct WatchPhase {
    pub calls: usize,
    pub changes: u64,
    /// From the first call's start to the last call's return.
    pub calls_time: Duration,
    pub watchers: Vec<WatcherPhase>,
    /// Node A's and this process's (the watchers') CPU seconds in the phase.
    pub cpu_a: f64,
    pub client_cpu: f64,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct ApiRun {
    /// The one AnnounceRoutes call with every route.
    pub bulk_call: Duration,
    /// Best routes in A's Loc-RIB afterwards (`Status.routes`).
    pub rib_routes: u64,
    /// From the bulk call's start until B's kernel had every route.
    pub bulk_to_b_kernel: Duration,
    /// The one WithdrawRoutes call with every route (unwatched).
    pub withdraw_call: Duration,
    /// Announcements in calls of `batch`, each call as soon as the last
    /// returned (open loop).
    pub announce_open: WatchPhase,
    /// Withdrawals in calls of `batch`, each call once every watcher has
    /// the previous one's changes (closed loop): the rate the watchers
    /// sustain.
    pub withdraw_closed: WatchPhase,
    /// Announcements in calls of `batch`, closed loop.
    pub announce_closed: WatchPhase,
    /// Every route withdrawn in one call.
    pub withdraw_one_call: WatchPhase,
    /// Node A's CPU seconds during the bulk call.
    pub bulk_cpu_a: f64,
    pub host_load: f64,
}

#[derive(Debug, Default)]
struct WatcherState {
    ready: bool,
    changes: u64,
    resyncs: u64,
    /// Change count and time at each RESYNC.
    resync_log: Vec<(u64, Instant)>,
    snapshot: u64,
    /// The newest sequence the watcher is known to be current with.
    current: u64,
    current_at: Option<Instant>,
    error: Option<String>,
}

type Shared = Arc<Mutex<WatcherState>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, WatcherState> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the load once in a fresh pair of nodes.
pub fn run_once(tabbyd: &Path, load: ApiLoad) -> Result<ApiRun> {
    ensure!(
        load.routes > 0 && load.routes <= 1 << 20 && load.batch > 0,
        "the API load needs 1 to 1,048,576 routes and a batch size"
    );
    let (rt, mut pair, mon, mut a) = start_run(tabbyd, 2)?;
    let prefixes = host_prefixes(BASE, load.routes);
    let n = prefixes.len() as u64;
    let mut run = ApiRun {
        host_load: load_average(),
        ..ApiRun::default()
    };
    let base_routes = rt.block_on(a.status())?.routes;

    // --- bulk: one call.
    let (a0, _) = pair.cpu()?;
    let t0 = Instant::now();
    let r = rt.block_on(a.announce(&prefixes))?;
    run.bulk_call = t0.elapsed();
    run.bulk_cpu_a = pair.cpu()?.0 - a0;
    ensure!(
        r.added == n,
        "AnnounceRoutes added {} of {n} routes",
        r.added
    );
    run.rib_routes = rt.block_on(a.status())?.routes.saturating_sub(base_routes);
    ensure!(
        run.rib_routes >= n,
        "node A's Loc-RIB holds {} of the {n} routes after AnnounceRoutes returned",
        run.rib_routes
    );
    let at = mon
        .wait_counts(LIMIT, |added, _| added >= n)
        .context("bulk routes into node B's kernel")?;
    run.bulk_to_b_kernel = at.duration_since(t0);

    // --- withdraw in one call, unwatched; B empties its kernel before the
    // watched phases start.
    let t0 = Instant::now();
    rt.block_on(a.withdraw(&prefixes))?;
    run.withdraw_call = t0.elapsed();
    mon.wait_counts(LIMIT, |_, deleted| deleted >= n)
        .context("bulk withdrawal from node B's kernel")?;

    // --- watchers.
    let states: Vec<Shared> = (0..load.watchers).map(|_| Shared::default()).collect();
    for s in &states {
        rt.block_on(start_watcher(&pair.a_sock, s.clone()))?;
    }
    wait_all(&states, Duration::from_secs(30), |w| w.ready)
        .context("the watchers did not get their snapshots")?;

    // Each phase leaves B's kernel settled before the next starts.
    let (mut added0, mut deleted0) = (mon.added(), mon.deleted());
    let mut phase = |announce: bool, per_call: usize, closed: bool| -> Result<WatchPhase> {
        let p = watched(&pair, &states, || {
            let mut last = 0;
            let mut calls = 0;
            for chunk in prefixes.chunks(per_call) {
                let r = if announce {
                    rt.block_on(a.announce(chunk))?
                } else {
                    rt.block_on(a.withdraw(chunk))?
                };
                last = r.sequence;
                calls += 1;
                if closed {
                    wait_all(&states, LIMIT, |w| w.current >= last)?;
                }
            }
            Ok((calls, last))
        })?;
        if announce {
            added0 += n;
        } else {
            deleted0 += n;
        }
        mon.wait_counts(LIMIT, |added, deleted| {
            added >= added0 && deleted >= deleted0
        })
        .context("node B's kernel after a watched phase")?;
        Ok(WatchPhase { changes: n, ..p })
    };
    run.announce_open = phase(true, load.batch, false)?;
    run.withdraw_closed = phase(false, load.batch, true)?;
    run.announce_closed = phase(true, load.batch, true)?;
    run.withdraw_one_call = phase(false, prefixes.len(), false)?;
    mon.check()?;
    pair.check_alive()?;
    Ok(run)
}

/// Runs `calls` (returning the number of calls and the last sequence) and
/// waits until every watcher is current with that sequence.
fn watched(
    pair: &Pair,
    states: &[Shared],
    calls: impl FnOnce() -> Result<(usize, u64)>,
) -> Result<WatchPhase> {
    let before: Vec<(u64, u64, u64)> = states
        .iter()
        .map(|s| {
            let w = lock(s);
            (w.changes, w.resyncs, w.snapshot)
        })
        .collect();
    let (a0, _) = pair.cpu()?;
    let c0 = crate::procfs::stats(std::process::id())?.cpu_secs;
    let t0 = Instant::now();
    let (ncalls, target) = calls()?;
    let calls_time = t0.elapsed();
    let _ = wait_all(states, LIMIT, |w| w.current >= target);
    let cpu_a = pair.cpu()?.0 - a0;
    let client_cpu = crate::procfs::stats(std::process::id())?.cpu_secs - c0;
    let watchers = states
        .iter()
        .zip(before)
        .map(|(s, (c, r, sn))| {
            let w = lock(s);
            WatcherPhase {
                changes: w.changes - c,
                resyncs: w.resyncs - r,
                snapshot: w.snapshot - sn,
                done: (w.current >= target)
                    .then(|| w.current_at.map(|at| at.saturating_duration_since(t0)))
                    .flatten(),
                first_resync: w
                    .resync_log
                    .iter()
                    .find(|(_, at)| *at >= t0)
                    .map(|(n, at)| (n.saturating_sub(c), at.duration_since(t0))),
            }
        })
        .collect();
    Ok(WatchPhase {
        calls: ncalls,
        changes: 0,
        calls_time,
        watchers,
        cpu_a,
        client_cpu,
    })
}

fn wait_all(states: &[Shared], limit: Duration, ok: impl Fn(&WatcherState) -> bool) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let mut all = true;
        for (i, s) in states.iter().enumerate() {
            let w = lock(s);
            if let Some(e) = &w.error {
                bail!("watcher {i}: {e}");
            }
            all &= ok(&w);
        }
        if all {
            return Ok(());
        }
        if t0.elapsed() > limit {
            return Err(anyhow!("watchers not done after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One watcher on its own connection, counting what it receives.
async fn start_watcher(sock: &Path, state: Shared) -> Result<()> {
    let mut stream = Api::connect(sock).await?.watch().await?;
    tokio::spawn(async move {
        loop {
            match stream.message().await {
                Ok(Some(ev)) => {
                    let mut w = lock(&state);
                    match pb::RouteEventKind::try_from(ev.kind) {
                        // Only snapshots after a RESYNC count.
                        Ok(pb::RouteEventKind::Snapshot) if w.ready => w.snapshot += 1,
                        Ok(pb::RouteEventKind::EndOfSnapshot) => {
                            w.ready = true;
                            w.current = w.current.max(ev.sequence);
                            w.current_at = Some(Instant::now());
                        }
                        Ok(pb::RouteEventKind::Resync) => {
                            w.resyncs += 1;
                            let c = w.changes;
                            w.resync_log.push((c, Instant::now()));
                        }
                        Ok(pb::RouteEventKind::BestChanged | pb::RouteEventKind::Withdrawn) => {
                            w.changes += 1;
                            w.current = w.current.max(ev.sequence);
                            w.current_at = Some(Instant::now());
                        }
                        _ => {}
                    }
                }
                Ok(None) => {
                    lock(&state).error = Some("stream ended".into());
                    break;
                }
                Err(s) => {
                    lock(&state).error = Some(s.message().to_string());
                    break;
                }
            }
        }
    });
    Ok(())
}

/// Thousands of routes (or events) per second.
fn krate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9) / 1e3
}

/// The markdown tables: bulk, then the watchers.
pub fn table(load: ApiLoad, runs: &[Result<ApiRun, String>]) -> String {
    let ok: Vec<&ApiRun> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let mut o = String::new();
    let n = load.routes as u64;
    let _ = writeln!(
        o,
        "### API bulk: {} routes in one AnnounceRoutes call\n",
        load.routes
    );
    o.push_str("| runs | call (s) | into A's Loc-RIB (k routes/s) | node A CPU in the call (s) | until all in node B's kernel (s) | one WithdrawRoutes call (s) | withdrawn (k routes/s) | host load |\n|---|---|---|---|---|---|---|---|\n");
    let col = |f: &dyn Fn(&ApiRun) -> f64, d: usize| -> String {
        spread_text(&ok.iter().map(|r| f(r)).collect::<Vec<_>>(), d)
    };
    let _ = writeln!(
        o,
        "| {}/{} | {} | {} | {} | {} | {} | {} | {} |",
        ok.len(),
        runs.len(),
        col(&|r| r.bulk_call.as_secs_f64(), 3),
        col(&|r| krate(n, r.bulk_call), 0),
        col(&|r| r.bulk_cpu_a, 2),
        col(&|r| r.bulk_to_b_kernel.as_secs_f64(), 2),
        col(&|r| r.withdraw_call.as_secs_f64(), 3),
        col(&|r| krate(n, r.withdraw_call), 0),
        col(&|r| r.host_load, 1),
    );
    for (i, r) in runs.iter().enumerate() {
        if let Err(e) = r {
            let _ = writeln!(o, "\n- run {} failed: {}", i + 1, e.replace('|', "/"));
        }
    }
    let _ = writeln!(
        o,
        "\n### WatchRoutes: {} watchers on node A during {} changes\n",
        load.watchers, load.routes
    );
    o.push_str("| phase | calls | calls took (s) | changes offered (k/s) | watchers current at the end | watchers told to resync | RESYNCs per watcher | change events per watcher | per-watcher delivery while keeping up (k events/s) | last watcher current after (s) | node A CPU (s) | watchers' CPU (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    type Pick = fn(&ApiRun) -> &WatchPhase;
    let phases: [(String, Pick); 4] = [
        (
            format!("announce, {} per call, open loop", load.batch),
            |r| &r.announce_open,
        ),
        (
            format!(
                "withdraw, {} per call, closed loop (each call waits for every watcher)",
                load.batch
            ),
            |r| &r.withdraw_closed,
        ),
        (
            format!("announce, {} per call, closed loop", load.batch),
            |r| &r.announce_closed,
        ),
        ("withdraw, all in one call".into(), |r| &r.withdraw_one_call),
    ];
    for (name, pick) in phases {
        let ph: Vec<&WatchPhase> = ok.iter().map(|r| pick(r)).collect();
        let all_w: Vec<&WatcherPhase> = ph.iter().flat_map(|p| p.watchers.iter()).collect();
        let current = all_w.iter().filter(|w| w.done.is_some()).count();
        let resynced = all_w.iter().filter(|w| w.resyncs > 0).count();
        let changes: Vec<f64> = all_w.iter().map(|w| w.changes as f64).collect();
        let resyncs: Vec<f64> = all_w.iter().map(|w| w.resyncs as f64).collect();
        let rates: Vec<f64> = all_w
            .iter()
            .filter_map(|w| w.delivery_rate().map(|r| r / 1e3))
            .collect();
        let last: Vec<f64> = ph
            .iter()
            .filter_map(|p| {
                p.watchers
                    .iter()
                    .map(|w| w.done.map(|d| d.as_secs_f64()))
                    .collect::<Option<Vec<f64>>>()
                    .and_then(|v| v.into_iter().max_by(f64::total_cmp))
            })
            .collect();
        let calls_t: Vec<f64> = ph.iter().map(|p| p.calls_time.as_secs_f64()).collect();
        let offered: Vec<f64> = ph.iter().map(|p| krate(p.changes, p.calls_time)).collect();
        let cpu_a: Vec<f64> = ph.iter().map(|p| p.cpu_a).collect();
        let cpu_c: Vec<f64> = ph.iter().map(|p| p.client_cpu).collect();
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {current}/{} | {resynced}/{} | {} | {} | {} | {} | {} | {} |",
            ph.first().map(|p| p.calls).unwrap_or(0),
            spread_text(&calls_t, 3),
            spread_text(&offered, 0),
            all_w.len(),
            all_w.len(),
            spread_text(&resyncs, 0),
            spread_text(&changes, 0),
            spread_text(&rates, 0),
            spread_text(&last, 2),
            spread_text(&cpu_a, 2),
            spread_text(&cpu_c, 2),
        );
    }
    o
}

/// What the tables measure, for the report.
pub fn describe(load: ApiLoad) -> String {
    format!(
        "The same two-node pair as (d), fresh per run. *Bulk*: one AnnounceRoutes call with {r} host /32s on node A; tabbyd answers after its Loc-RIB holds them and the UPDATEs to B are queued, and Status then confirms the count; the rate is routes over the call's wall time (client encoding and transfer included). *Until all in node B's kernel*: from the call's start until B's route monitor counted {r} RTM_NEWROUTE. *WatchRoutes*: {w} watchers, each on its own connection from this process (one tokio runtime, 2 worker threads), follow node A through four phases of {r} changes each: announcements in calls of {b} made back to back (open loop: the API's pace); withdrawals, then announcements, in calls of {b}, each call made only once every watcher has the previous call's last event (closed loop: the watchers' pace, so the delivery rate is what they sustain); all {r} withdrawn in one call. Node B's kernel settles between phases. A watcher is current when it has seen the last call's sequence (or a snapshot at least that new). Delivery while keeping up: change events over the time from the phase's first call until that watcher was current, or, for a watcher told to resync, the change events before the RESYNC over the time until it came. tabbyd's live feed holds 4,096 events and a call's changes are published before any watcher runs, so a single call with more changes than that makes watchers lag: they get RESYNC and a fresh snapshot (bounded memory, as the API promises) rather than every event.\n",
        r = load.routes,
        w = load.watchers,
        b = load.batch
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_reports_rates_and_resyncs() {
        let w = |changes, resyncs, done: Option<f64>| WatcherPhase {
            changes,
            resyncs,
            snapshot: 0,
            done: done.map(Duration::from_secs_f64),
            first_resync: (resyncs > 0).then(|| (changes, Duration::from_millis(100))),
        };
        let phase = |calls, t: u64, watchers| WatchPhase {
            calls,
            changes: 100,
            calls_time: Duration::from_millis(t),
            watchers,
            cpu_a: 0.5,
            client_cpu: 0.25,
        };
        let run = ApiRun {
            bulk_call: Duration::from_millis(250),
            rib_routes: 100,
            bulk_to_b_kernel: Duration::from_secs(2),
            withdraw_call: Duration::from_millis(100),
            announce_open: phase(10, 1000, vec![w(100, 0, Some(1.0)), w(100, 0, Some(2.0))]),
            withdraw_closed: phase(10, 2000, vec![w(100, 0, Some(2.0)); 2]),
            announce_closed: phase(10, 2000, vec![w(100, 0, Some(2.0)); 2]),
            withdraw_one_call: phase(1, 100, vec![w(5, 1, Some(0.5)), w(5, 1, None)]),
            bulk_cpu_a: 0.2,
            host_load: 1.0,
        };
        let load = ApiLoad {
            routes: 100_000,
            watchers: 2,
            batch: 10_000,
        };
        let t = table(load, &[Ok(run), Err("x".into())]);
        assert!(
            t.contains("| 1/2 | 0.250 | 400 | 0.20 | 2.00 | 0.100 | 1000 | 1.0 |"),
            "{t}"
        );
        assert!(t.contains("| announce, 10000 per call, open loop | 10 | 1.000 | 0 | 2/2 | 0/2 | 0 (0–0) | 100 (100–100) | 0 (0–0) | 2.00 | 0.50 | 0.25 |"), "{t}");
        assert!(t.contains("| withdraw, all in one call | 1 | 0.100 | 1 | 1/2 | 2/2 | 1 (1–1) | 5 (5–5) | 0 (0–0) | — | 0.50 | 0.25 |"), "{t}");
        assert!(t.contains("- run 2 failed: x"), "{t}");
    }
}
