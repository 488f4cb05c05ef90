//! Faults during churn (Tabby only): one reflector killed with SIGKILL and
//! restarted, one node killed and restarted (graceful restart keeps its
//! kernel routes; the driver gives the new process the node's set again, as
//! a reconnecting client would). Each is a window at a moderate rate with
//! the fault in its middle.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::cluster::{Cluster, lock};
use super::drive::Driver;
use super::measure::{RateRun, measure};
use super::tabby::established;
use crate::bench::client::Api;

/// Which fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` of reflector 1, restarted after a while.
    Reflector,
    /// `kill -9` of node 0's tabbyd, restarted after a while.
    Node,
}

impl Fault {
    pub fn title(self) -> &'static str {
        match self {
            Fault::Reflector => "one of two reflectors killed (-9) and restarted",
            Fault::Node => "a node's tabbyd killed (-9) and restarted",
        }
    }
}

/// A fault's window and what it is judged by.
#[derive(Debug, Clone)]
pub struct FaultRun {
    pub fault: Fault,
    pub run: RateRun,
    /// How long the daemon was down, and until it was back (Established,
    /// its set given again).
    pub down: Duration,
    pub back: Duration,
    /// Deletions nobody asked for in the restarted node's own kernel (node
    /// fault only), and on every other node.
    pub deletions_own: Option<u64>,
    pub deletions_others: u64,
}

/// How a fault's window runs.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    pub rate: f64,
    pub length: Duration,
    /// From the kill to the restart.
    pub down: Duration,
    pub settle: Duration,
}

/// Runs `fault` in a window of `plan.length` at `plan.rate`: the daemon
/// dies a quarter into it and is restarted `plan.down` later.
pub fn run(
    rt: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    driver: &Driver,
    fault: Fault,
    plan: FaultPlan,
) -> Result<FaultRun> {
    let FaultPlan {
        rate,
        length,
        down,
        settle,
    } = plan;
    let mut back = Duration::ZERO;
    let run = measure(rt, cluster, driver, rate, settle, |cluster| {
        let d = driver.clone();
        let h = rt.spawn(async move { d.window(rate, length).await });
        std::thread::sleep(length / 4);
        let t0 = Instant::now();
        match fault {
            Fault::Reflector => {
                let rr = cluster.rr_labels[0].clone();
                cluster.lab.kill9(&rr)?;
                std::thread::sleep(down);
                cluster.lab.restart(&rr)?;
                back = t0.elapsed();
            }
            Fault::Node => {
                let label = cluster.node_labels[0].clone();
                {
                    driver
                        .down
                        .lock()
                        .map_err(|_| anyhow!("poisoned"))?
                        .insert(0);
                    lock(&cluster.shared).tracker.excuse(0);
                }
                cluster.lab.kill9(&label)?;
                std::thread::sleep(down);
                cluster.lab.restart(&label)?;
                // The node's set goes back as soon as its API answers, as a
                // local agent reconnecting would give it.
                node_back(rt, cluster, &label, false)?;
                cluster.push_sets(Some(0))?;
                node_back(rt, cluster, &label, true)?;
                driver
                    .down
                    .lock()
                    .map_err(|_| anyhow!("poisoned"))?
                    .remove(&0);
                back = t0.elapsed();
            }
        }
        rt.block_on(h).context("the churn driver task failed")
    })?;
    let all: u64 = run.stray_deleted.iter().sum();
    let deletions_own = match fault {
        Fault::Reflector => None,
        Fault::Node => run.stray_deleted.first().copied(),
    };
    Ok(FaultRun {
        fault,
        deletions_others: all - deletions_own.unwrap_or(0),
        deletions_own,
        run,
        down,
        back,
    })
}

/// Waits until the restarted node's API answers (and, with `sessions`,
/// both reflectors are Established with it again).
fn node_back(
    rt: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    label: &str,
    sessions: bool,
) -> Result<()> {
    let sock = cluster.lab.path(&format!("{label}.api.sock"));
    let t0 = Instant::now();
    let limit = Duration::from_secs(60);
    loop {
        let probe = async {
            if sessions {
                established(&[], std::slice::from_ref(&sock)).await
            } else {
                Api::connect(&sock).await?.status().await.map(|_| ())
            }
        };
        match rt.block_on(probe) {
            Ok(()) => return Ok(()),
            Err(e) if t0.elapsed() > limit => {
                bail!("{label} not back within {limit:?} after its restart: {e:#}")
            }
            Err(_) => {}
        }
        cluster.lab.check_alive(label)?;
        std::thread::sleep(Duration::from_millis(50));
    }
}
