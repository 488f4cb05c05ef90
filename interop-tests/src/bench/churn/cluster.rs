//! A churn cluster, whichever daemon runs it: N nodes and two route
//! reflectors on one LAN, a route monitor in every node's namespace feeding
//! one tracker, a worker per node applying its changes in order, and the
//! checks that every kernel holds what it should.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipnet::{IpNet, Ipv4Net};
use tokio::sync::mpsc as tmpsc;

use super::bird::BirdNode;
use super::load::Load;
use super::track::Tracker;
use crate::bench::client::Api;
use crate::bench::monitor::{RouteMonitor, RouteSeen};
use crate::kernel;
use crate::lab::{Lab, Ns};

/// The cluster's AS.
pub const ASN: u32 = 64512;
/// Both reflectors' cluster id (RFC 4456 §7).
pub const CLUSTER_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);

/// Which daemon runs the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// tabbyd on every node and reflector, changes through `ReplaceRoutes`.
    Tabby,
    /// BIRD 2 everywhere, changes the way confd makes them: the node's
    /// configuration rewritten, then `birdc configure`.
    Bird,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Tabby => "Tabby (tabbyd, ReplaceRoutes)",
            Flavour::Bird => "BIRD 2 (config rewrite + birdc configure)",
        }
    }

    /// The kernel route protocol its nodes install with.
    pub fn proto(self) -> u8 {
        match self {
            Flavour::Tabby => 84,
            // RTPROT_BIRD.
            Flavour::Bird => 12,
        }
    }
}

/// A cluster's lab before its daemons: two reflectors' and `nodes` nodes'
/// namespaces on one LAN, with their addresses.
#[derive(Debug)]
pub struct LanLab {
    pub lab: Lab,
    pub rr_ns: [Ns; 2],
    pub node_ns: Vec<Ns>,
    pub rr_addrs: [Ipv4Addr; 2],
    pub node_addrs: Vec<Ipv4Addr>,
}

impl LanLab {
    pub fn new(label: &str, nodes: usize) -> Result<LanLab> {
        let mut lab = Lab::new(label)?;
        let rr_ns = [lab.ns(&rr_label(0))?, lab.ns(&rr_label(1))?];
        let node_ns: Vec<Ns> = (0..nodes)
            .map(|i| lab.ns(&node_label(i)))
            .collect::<Result<_>>()?;
        let members: Vec<&Ns> = rr_ns.iter().chain(&node_ns).collect();
        let seg = lab.lan(&members)?;
        let rr_addrs = [seg.v4(&rr_ns[0])?, seg.v4(&rr_ns[1])?];
        let node_addrs: Vec<Ipv4Addr> = node_ns.iter().map(|n| seg.v4(n)).collect::<Result<_>>()?;
        Ok(LanLab {
            lab,
            rr_ns,
            node_ns,
            rr_addrs,
            node_addrs,
        })
    }
}

/// What every node's monitor and worker share.
#[derive(Debug)]
pub struct Shared {
    pub load: Load,
    pub tracker: Tracker,
}

/// Locks the shared state (a panicked holder leaves it usable).
pub fn lock(s: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One change for a node's worker: its whole new set; `id` is the tracked
/// change (none for the initial routes and re-syncs after a restart).
#[derive(Debug)]
pub struct Job {
    pub id: Option<usize>,
    pub set: Vec<Ipv4Net>,
}

/// How a node's worker applies a set.
#[derive(Debug)]
pub enum Applier {
    /// `ReplaceRoutes` on the node's API socket (reconnecting when needed).
    Tabby {
        sock: PathBuf,
        api: Option<Box<Api>>,
    },
    Bird(BirdNode),
}

impl Applier {
    async fn apply(&mut self, set: &[Ipv4Net]) -> Result<()> {
        match self {
            Applier::Tabby { sock, api } => {
                // A restarted daemon breaks the old connection: one retry
                // on a fresh one.
                let mut last = None;
                for _ in 0..2 {
                    let a = match api {
                        Some(a) => a,
                        None => api.insert(Box::new(Api::connect(sock).await?)),
                    };
                    match a.replace(set).await {
                        Ok(_) => return Ok(()),
                        Err(e) => {
                            *api = None;
                            last = Some(e);
                        }
                    }
                }
                Err(last.unwrap_or_else(|| anyhow::anyhow!("ReplaceRoutes failed")))
            }
            Applier::Bird(b) => b.apply(set).await,
        }
    }
}

/// A running cluster.
pub struct Cluster {
    pub flavour: Flavour,
    /// Owns namespaces and daemons; dropping it cleans up.
    pub lab: Lab,
    pub nodes: Vec<Ns>,
    pub node_labels: Vec<String>,
    pub rr_labels: [String; 2],
    pub shared: Arc<Mutex<Shared>>,
    pub queues: Vec<tmpsc::UnboundedSender<Job>>,
    monitors: Vec<RouteMonitor>,
    collector: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("flavour", &self.flavour)
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

/// The node's label in the lab.
pub fn node_label(i: usize) -> String {
    format!("node-{i}")
}

/// Reflector `i`'s label (0 or 1).
pub fn rr_label(i: usize) -> String {
    format!("rr-{}", i + 1)
}

impl Cluster {
    /// Wires monitors, the collector and the workers around a started lab.
    /// Must run inside the tokio runtime (workers are tasks).
    pub fn assemble(
        flavour: Flavour,
        lab: Lab,
        nodes: Vec<Ns>,
        appliers: Vec<Applier>,
        load: Load,
    ) -> Result<Cluster> {
        let n = nodes.len();
        let shared = Arc::new(Mutex::new(Shared {
            load,
            tracker: Tracker::new(n),
        }));
        let (tx, rx) = mpsc::channel::<(usize, RouteSeen)>();
        let mut monitors = Vec::with_capacity(n);
        for (i, ns) in nodes.iter().enumerate() {
            let tx = tx.clone();
            monitors.push(RouteMonitor::start_with(
                &lab,
                ns,
                flavour.proto(),
                move |ev| {
                    let _ = tx.send((i, ev));
                },
            )?);
        }
        drop(tx);
        let s = shared.clone();
        let collector = std::thread::Builder::new()
            .name("churn-collector".into())
            .spawn(move || {
                while let Ok((j, ev)) = rx.recv() {
                    let mut g = lock(&s);
                    let Shared { load, tracker } = &mut *g;
                    tracker.seen(j, &ev, load);
                }
            })
            .context("cannot start the churn collector thread")?;
        let mut queues = Vec::with_capacity(n);
        for (i, mut applier) in appliers.into_iter().enumerate() {
            let (qtx, mut qrx) = tmpsc::unbounded_channel::<Job>();
            let s = shared.clone();
            tokio::spawn(async move {
                let mut failures = 0u32;
                while let Some(job) = qrx.recv().await {
                    if let Some(id) = job.id {
                        lock(&s).tracker.started(id, Instant::now());
                    }
                    let r = applier.apply(&job.set).await;
                    let at = Instant::now();
                    if let Err(e) = &r {
                        failures += 1;
                        if failures <= 3 {
                            tracing::warn!(node = i, error = %format!("{e:#}"), "churn change failed");
                        }
                    }
                    if let Some(id) = job.id {
                        lock(&s).tracker.returned(id, at, r.is_ok());
                    }
                }
            });
            queues.push(qtx);
        }
        Ok(Cluster {
            flavour,
            lab,
            node_labels: (0..n).map(node_label).collect(),
            rr_labels: [rr_label(0), rr_label(1)],
            nodes,
            shared,
            queues,
            monitors,
            collector: Some(collector),
        })
    }

    /// Sends every node its current set, untracked (initial routes, or a
    /// re-sync of node `only`).
    pub fn push_sets(&self, only: Option<usize>) -> Result<()> {
        let g = lock(&self.shared);
        for (i, q) in self.queues.iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            q.send(Job {
                id: None,
                set: g.load.set(i),
            })
            .context("a node's worker stopped")?;
        }
        Ok(())
    }

    /// Fails if a monitor's socket overran (its counts are then short).
    pub fn check_monitors(&self) -> Result<()> {
        for (m, ns) in self.monitors.iter().zip(&self.nodes) {
            m.check()
                .with_context(|| format!("route monitor of {ns}"))?;
        }
        Ok(())
    }

    /// Routes missing from and extra in every node's kernel against the
    /// desired state, summed over nodes.
    pub fn kernel_diff(&self) -> Result<KernelDiff> {
        let want: Vec<BTreeSet<IpNet>> = {
            let g = lock(&self.shared);
            (0..self.nodes.len()).map(|j| g.load.kernel(j)).collect()
        };
        let proto = self.flavour.proto().to_string();
        let mut d = KernelDiff::default();
        for (ns, want) in self.nodes.iter().zip(&want) {
            let have: BTreeSet<IpNet> = kernel::routes(&ns.name, Some(&proto))
                .with_context(|| format!("dumping the kernel routes of {ns}"))?
                .into_iter()
                .map(|r| r.dst)
                .collect();
            let missing = want.difference(&have).count();
            let extra = have.difference(want).count();
            if (missing > 0 || extra > 0) && d.first.is_none() {
                d.first = Some(format!(
                    "{ns}: {missing} missing (e.g. {:?}), {extra} extra (e.g. {:?})",
                    want.difference(&have).next(),
                    have.difference(want).next()
                ));
            }
            d.missing += missing;
            d.extra += extra;
            d.routes += want.len();
        }
        Ok(d)
    }

    /// Waits until every kernel equals the desired state.
    pub fn wait_kernels(&self, limit: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        loop {
            let d = self.kernel_diff()?;
            if d.clean() {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > limit {
                bail!(
                    "after {limit:?} the kernels still differ from the desired state: {} missing, {} extra; first: {}",
                    d.missing,
                    d.extra,
                    d.first.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// CPU seconds of every node's daemon, summed, and of each reflector.
    pub fn cpu(&self) -> Result<(f64, [f64; 2])> {
        let mut nodes = 0.0;
        for l in &self.node_labels {
            nodes += self.lab.stats(l)?.cpu_secs;
        }
        let rr = [
            self.lab.stats(&self.rr_labels[0])?.cpu_secs,
            self.lab.stats(&self.rr_labels[1])?.cpu_secs,
        ];
        Ok((nodes, rr))
    }

    /// Fails if any daemon died.
    pub fn check_alive(&mut self) -> Result<()> {
        for l in self.node_labels.iter().chain(&self.rr_labels) {
            self.lab.check_alive(l)?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Monitors stop first; the collector ends when their senders go.
        for m in &self.monitors {
            m.stop();
        }
        self.monitors.clear();
        if let Some(c) = self.collector.take() {
            let _ = c.join();
        }
    }
}

/// Kernels against the desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelDiff {
    pub missing: usize,
    pub extra: usize,
    /// Desired routes over all nodes.
    pub routes: usize,
    /// The first node that differed, for messages.
    pub first: Option<String>,
}

impl KernelDiff {
    pub fn clean(&self) -> bool {
        self.missing == 0 && self.extra == 0
    }
}
