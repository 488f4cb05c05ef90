//! One measured window and what it yields: latencies, losses, kernels
//! against the desired state, CPU per change.

use std::time::Duration;

use anyhow::Result;

use super::cluster::{Cluster, KernelDiff, lock};
use super::drive::{Driver, Window};
use crate::bench::e2e::quantile_ms;
use crate::bench::scenario::load_average;

/// The latency a sustained rate must keep at p99 (and its schedule lag).
pub const P99_TARGET: Duration = Duration::from_millis(50);

/// What one window measured.
#[derive(Debug, Clone)]
pub struct RateRun {
    pub rate: f64,
    pub window: Window,
    /// Per change seen everywhere: call returned → every other kernel.
    pub latency: Vec<Duration>,
    /// [`RateRun::latency`] of additions and of removals.
    pub latency_add: Vec<Duration>,
    pub latency_del: Vec<Duration>,
    /// Per change seen everywhere: call started → every other kernel.
    pub from_start: Vec<Duration>,
    /// Per change: scheduled → call started.
    pub lag: Vec<Duration>,
    /// Changes issued in the window.
    pub issued: usize,
    /// Changes whose call succeeded but that were not in every expected
    /// kernel after the settle time.
    pub lost: usize,
    /// Calls that failed (their change may or may not have happened).
    pub failed: usize,
    /// Notifications against the desired state: deletions per node,
    /// additions over all nodes, and interim notifications (see
    /// [`super::track::Strays::interim`]) over all nodes.
    pub stray_deleted: Vec<u64>,
    pub stray_added: u64,
    pub interim: u64,
    /// Every deletion notification, per node.
    pub deletions: Vec<u64>,
    pub kernel: KernelDiff,
    /// CPU seconds over the window and settle: all nodes' daemons, each
    /// reflector, and the processes the driver ran (`birdc`).
    pub node_cpu: f64,
    pub rr_cpu: [f64; 2],
    pub helper_cpu: f64,
    /// This process (driver, route monitors, collector) over the same time.
    pub bench_cpu: f64,
    pub nodes: usize,
    pub settle: Duration,
    pub host_load: f64,
}

impl RateRun {
    pub fn p(&self, q: f64) -> Option<f64> {
        quantile_ms(&self.latency, q)
    }

    /// The `q` quantile from the call starting, in ms.
    pub fn from_start_ms(&self, q: f64) -> Option<f64> {
        quantile_ms(&self.from_start, q)
    }

    pub fn lag_p99(&self) -> Option<f64> {
        quantile_ms(&self.lag, 0.99)
    }

    /// p99 ≤ 50 ms, the schedule kept (lag p99 ≤ 50 ms, not stopped),
    /// nothing lost or failed, every kernel equal to the desired state.
    pub fn sustained(&self) -> bool {
        let target = P99_TARGET.as_secs_f64() * 1e3;
        self.window.stopped_at.is_none()
            && self.lost == 0
            && self.failed == 0
            && self.kernel.clean()
            && self.issued > 0
            && self.p(0.99).is_some_and(|p| p <= target)
            && self.lag_p99().is_some_and(|p| p <= target)
    }

    /// Node CPU per change per node in µs net of the idle cost (`idle`: CPU
    /// seconds per second of one node doing nothing).
    pub fn node_us_net_of_idle(&self, idle: f64) -> f64 {
        let secs = (self.window.elapsed + self.settle).as_secs_f64();
        let net = self.node_cpu - idle * secs * self.nodes as f64;
        net.max(0.0) / self.issued.max(1) as f64 / self.nodes.max(1) as f64 * 1e6
    }

    /// Microseconds of CPU per change: per node (all nodes' CPU divided by
    /// changes and nodes), per reflector (mean of the two), of helpers, of
    /// this process.
    pub fn cpu_us_per_change(&self) -> (f64, f64, f64, f64) {
        let c = self.issued.max(1) as f64;
        (
            self.node_cpu / c / self.nodes.max(1) as f64 * 1e6,
            (self.rr_cpu[0] + self.rr_cpu[1]) / 2.0 / c * 1e6,
            self.helper_cpu / c * 1e6,
            self.bench_cpu / c * 1e6,
        )
    }
}

/// CPU seconds of the processes this one ran and waited for.
pub fn children_cpu() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| {
            let t = |v: nix::sys::time::TimeVal| v.tv_sec() as f64 + v.tv_usec() as f64 * 1e-6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// CPU seconds of this process so far (0 when /proc cannot say).
fn own_cpu() -> f64 {
    crate::procfs::stats(std::process::id())
        .map(|s| s.cpu_secs)
        .unwrap_or(0.0)
}

/// Runs `body` (a window, with whatever fault it carries), then settles and
/// measures.
pub fn measure(
    rt: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    driver: &Driver,
    rate: f64,
    settle: Duration,
    body: impl FnOnce(&mut Cluster) -> Result<Window>,
) -> Result<RateRun> {
    let host_load = load_average();
    let (n0, r0) = cluster.cpu()?;
    let h0 = children_cpu();
    let b0 = own_cpu();
    let (sd0, sa0, i0, del0) = strays(cluster);
    let window = body(cluster)?;
    let settled = rt.block_on(driver.settle(settle));
    let (n1, r1) = cluster.cpu()?;
    let h1 = children_cpu();
    let b1 = own_cpu();
    cluster.check_monitors()?;
    cluster.check_alive()?;
    let kernel = cluster.kernel_diff()?;
    let (sd1, sa1, i1, del1) = strays(cluster);
    let g = lock(&cluster.shared);
    let recs = g
        .tracker
        .records
        .get(window.first..window.end)
        .unwrap_or(&[]);
    let latency: Vec<Duration> = recs.iter().filter_map(|r| r.latency()).collect();
    let from_start: Vec<Duration> = recs.iter().filter_map(|r| r.from_start()).collect();
    let lag: Vec<Duration> = recs.iter().filter_map(|r| r.lag()).collect();
    let failed = recs.iter().filter(|r| r.failed).count();
    let lost = recs.iter().filter(|r| !r.done() && !r.failed).count();
    let split = |add: bool| -> Vec<Duration> {
        recs.iter()
            .filter(|r| r.add == add)
            .filter_map(|r| r.latency())
            .collect()
    };
    let (latency_add, latency_del) = (split(true), split(false));
    drop(g);
    Ok(RateRun {
        rate,
        issued: window.end - window.first,
        window,
        latency,
        latency_add,
        latency_del,
        from_start,
        lag,
        lost,
        failed,
        stray_deleted: sd1.iter().zip(&sd0).map(|(a, b)| a - b).collect(),
        stray_added: sa1 - sa0,
        interim: i1 - i0,
        deletions: del1.iter().zip(&del0).map(|(a, b)| a - b).collect(),
        kernel,
        node_cpu: n1 - n0,
        rr_cpu: [r1[0] - r0[0], r1[1] - r0[1]],
        helper_cpu: h1 - h0,
        bench_cpu: b1 - b0,
        nodes: cluster.nodes.len(),
        settle: settled,
        host_load,
    })
}

/// Stray deletions per node, stray additions and interim notifications
/// over all nodes, and every deletion per node.
fn strays(cluster: &Cluster) -> (Vec<u64>, u64, u64, Vec<u64>) {
    let g = lock(&cluster.shared);
    let t = &g.tracker;
    (
        t.strays.iter().map(|s| s.deleted).collect(),
        t.strays.iter().map(|s| s.added).sum(),
        t.strays.iter().map(|s| s.interim).sum(),
        t.deletions.clone(),
    )
}
