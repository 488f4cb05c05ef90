//! Cluster churn (issue 17 §3): N nodes and two route reflectors on one
//! LAN, each node in its own namespace with its own kernel FIB, blocks and
//! borrowed /32s coming and going at a combined rate R. Tabby takes each
//! change through `ReplaceRoutes`; the baseline, BIRD 2, the way Calico's
//! confd does it (configuration rewritten, `birdc configure`). Measured per
//! change: from the call returning until the route is in (or gone from)
//! every other node's kernel, seen by a route monitor in each namespace.
//!
//! - [`load`]: desired sets and the seeded change generator;
//! - [`track`]: kernel notifications matched to changes;
//! - [`cluster`]: monitors, per-node workers, kernel checks, CPU;
//! - [`tabby`] and [`bird`]: the two clusters;
//! - [`drive`]: the open-loop schedule; [`measure`]: one window's figures;
//! - [`fault`]: a reflector or a node killed during churn;
//! - [`report`]: the markdown tables.

pub mod bird;
pub mod cluster;
pub mod drive;
pub mod fault;
pub mod load;
pub mod measure;
pub mod report;
pub mod tabby;
pub mod track;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use cluster::{Cluster, Flavour};
use drive::Driver;
use fault::{Fault, FaultPlan, FaultRun};
use measure::{RateRun, measure};

/// How long the idle cost is measured for.
const IDLE: Duration = Duration::from_secs(5);

/// What the scenario runs.
#[derive(Debug, Clone)]
pub struct ChurnOpts {
    pub nodes: usize,
    /// Changes per second, one window each, ascending.
    pub rates: Vec<f64>,
    /// Length of each window.
    pub window: Duration,
    /// After a window: how long changes may take to arrive everywhere.
    pub settle: Duration,
    pub seed: u64,
    /// How long the cluster may take to come up.
    pub setup_limit: Duration,
    /// Runs the fault windows (Tabby only) at this rate.
    pub fault_rate: Option<f64>,
    /// Which faults, in order.
    pub faults: Vec<Fault>,
    /// Each fault's window.
    pub fault_window: Duration,
}

/// One cluster's results.
#[derive(Debug)]
pub struct FlavourRun {
    pub flavour: Flavour,
    /// From the first namespace to every session Established and every
    /// permanent block in every kernel.
    pub setup: Option<Duration>,
    /// CPU seconds per second of one node's daemon (mean over nodes) and
    /// of a reflector (mean of the two) while nothing changes.
    pub idle: Option<(f64, f64)>,
    pub rates: Vec<RateRun>,
    /// Rates not run, and why.
    pub skipped: Vec<(f64, String)>,
    pub faults: Vec<Result<FaultRun, String>>,
    /// Why the run ended early, if it did.
    pub error: Option<String>,
}

impl FlavourRun {
    /// The highest rate that was sustained (see [`RateRun::sustained`]).
    pub fn sustained(&self) -> Option<f64> {
        self.rates
            .iter()
            .filter(|r| r.sustained())
            .map(|r| r.rate)
            .reduce(f64::max)
    }
}

/// Runs the scenario on one flavour (`tabbyd` is needed for Tabby).
pub fn run(flavour: Flavour, tabbyd: Option<&Path>, opts: &ChurnOpts) -> FlavourRun {
    let mut out = FlavourRun {
        flavour,
        setup: None,
        idle: None,
        rates: vec![],
        skipped: vec![],
        faults: vec![],
        error: None,
    };
    if let Err(e) = run_into(flavour, tabbyd, opts, &mut out) {
        eprintln!("{}: the run failed: {e:#}", flavour.name());
        out.error = Some(format!("{e:#}"));
    }
    out
}

fn run_into(
    flavour: Flavour,
    tabbyd: Option<&Path>,
    opts: &ChurnOpts,
    out: &mut FlavourRun,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    let t0 = Instant::now();
    let mut cluster: Cluster = match flavour {
        Flavour::Tabby => {
            let bin = tabbyd.context("no tabbyd binary to run the Tabby cluster")?;
            tabby::start(&rt, bin, opts.nodes, opts.seed, opts.setup_limit)?
        }
        Flavour::Bird => bird::start(&rt, opts.nodes, opts.seed, opts.setup_limit)?,
    };
    out.setup = Some(t0.elapsed());
    eprintln!(
        "{}: {} nodes up in {:.1} s",
        flavour.name(),
        opts.nodes,
        t0.elapsed().as_secs_f64()
    );
    // Idle cost (keepalives, timers), to tell it from the cost of changes.
    let (n0, r0) = cluster.cpu()?;
    let t_idle = Instant::now();
    std::thread::sleep(IDLE);
    let (n1, r1) = cluster.cpu()?;
    let secs = t_idle.elapsed().as_secs_f64();
    out.idle = Some((
        (n1 - n0) / secs / opts.nodes.max(1) as f64,
        (r1[0] - r0[0] + r1[1] - r0[1]) / 2.0 / secs,
    ));
    let driver = Driver {
        shared: cluster.shared.clone(),
        queues: cluster.queues.clone(),
        down: Arc::new(Mutex::new(BTreeSet::new())),
    };
    let mut stop: Option<String> = None;
    for &rate in &opts.rates {
        if let Some(why) = &stop {
            out.skipped.push((rate, why.clone()));
            continue;
        }
        eprintln!("  {rate} changes/s for {:?}", opts.window);
        let r = measure(&rt, &mut cluster, &driver, rate, opts.settle, |_| {
            Ok(rt.block_on(driver.window(rate, opts.window)))
        })?;
        eprintln!("    {}", report::one_line(&r));
        if r.window.stopped_at.is_some() {
            stop = Some(format!(
                "{rate}/s already fell {:?} behind its schedule",
                drive::BACKLOG_LIMIT
            ));
        }
        out.rates.push(r);
    }
    if flavour == Flavour::Tabby
        && let Some(rate) = opts.fault_rate
    {
        let plan = FaultPlan {
            rate,
            length: opts.fault_window,
            down: Duration::from_secs(2),
            settle: opts.settle.max(Duration::from_secs(30)),
        };
        for &f in &opts.faults {
            eprintln!("  fault: {} at {rate}/s", f.title());
            let r = fault::run(&rt, &mut cluster, &driver, f, plan).map_err(|e| format!("{e:#}"));
            match &r {
                Ok(fr) => {
                    eprintln!(
                        "    {}; unasked deletions: own kernel {:?}, other nodes {}",
                        report::one_line(&fr.run),
                        fr.deletions_own,
                        fr.deletions_others
                    );
                    let g = cluster::lock(&cluster.shared);
                    for (j, p, added) in &g.tracker.stray_examples {
                        eprintln!(
                            "    stray: node-{j} {} {p}",
                            if *added { "added" } else { "deleted" }
                        );
                    }
                }
                Err(e) => eprintln!("    failed: {e}"),
            }
            let failed = r.is_err();
            out.faults.push(r);
            if failed {
                break;
            }
        }
    }
    drop(cluster);
    drop(rt);
    Ok(())
}
