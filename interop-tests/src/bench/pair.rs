//! Two tabbyd nodes in a fresh lab, for the API benchmarks: node A and node
//! B in their own namespaces on one link, one Calico cluster file (full
//! mesh, an IP pool over the benchmark's prefixes), both with the FIB on as a
//! Calico node runs. A's API is where routes are announced; B's kernel is
//! where they must arrive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use super::anchors::ASN;
use super::client::Api;
use super::monitor::RouteMonitor;
use crate::daemon::{Daemon, DaemonKind, Datastore, TabbydOpts};
use crate::lab::{Lab, Ns};

/// tabbyd's kernel route protocol (fib-sync's default).
pub const TABBY_PROTO: u8 = 84;

/// What every API benchmark run starts with: a tokio runtime of `workers`
/// threads for the clients, the pair (Established), a route monitor in B's
/// namespace and a client of A's API.
pub fn start_run(
    tabbyd: &Path,
    workers: usize,
) -> Result<(tokio::runtime::Runtime, Pair, RouteMonitor, Api)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    let pair = rt.block_on(Pair::start(tabbyd))?;
    let mon = RouteMonitor::start(&pair.lab, &pair.b_ns, TABBY_PROTO)?;
    let a = rt.block_on(Api::connect(&pair.a_sock))?;
    Ok((rt, pair, mon, a))
}

/// The running pair.
#[derive(Debug)]
pub struct Pair {
    /// Owns the namespaces and daemons; dropping it cleans up.
    pub lab: Lab,
    pub a_ns: Ns,
    pub b_ns: Ns,
    pub a_sock: PathBuf,
    pub b_sock: PathBuf,
}

/// Node A's and B's labels in the lab (for CPU accounting).
pub const A: &str = "node-a";
pub const B: &str = "node-b";

/// The cluster: two mesh nodes and a pool over 100.64.0.0/10 (Calico
/// exports only routes inside an enabled pool).
pub fn cluster_yaml(a: std::net::Ipv4Addr, b: std::net::Ipv4Addr) -> String {
    let mut o = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: {ASN}\n  nodeToNodeMeshEnabled: true\n  logSeverityScreen: Error\n"
    );
    for (name, addr) in [(A, a), (B, b)] {
        o.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  bgp:\n    ipv4Address: {addr}/24\n"
        ));
    }
    o.push_str("---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: bench\nspec:\n  cidr: 100.64.0.0/10\n  blockSize: 26\n  ipipMode: Never\n  vxlanMode: Never\n");
    o
}

/// Starts `tabbyd` as `label` in `ns` from the cluster file `yaml`, with
/// its API on a socket in the lab (returned). `TABBY_BENCH_TABBYD_LOG`
/// raises its log level to debug a run (off in figures);
/// `TABBY_BENCH_TABBYD_ARGS` adds arguments.
pub(crate) fn start_tabbyd(
    lab: &mut Lab,
    tabbyd: &Path,
    ns: &Ns,
    label: &str,
    yaml: &Path,
    no_fib: bool,
) -> Result<PathBuf> {
    let mut opts = TabbydOpts::new(label, Datastore::File(yaml.to_path_buf()));
    opts.no_fib = no_fib;
    opts.log_level = std::env::var("TABBY_BENCH_TABBYD_LOG").unwrap_or_else(|_| "error".into());
    if let Ok(extra) = std::env::var("TABBY_BENCH_TABBYD_ARGS") {
        opts.extra_args = extra.split_whitespace().map(str::to_string).collect();
    }
    let sock = lab.path(&format!("{label}.api.sock"));
    opts.api = Some(format!("unix:{}", sock.display()));
    opts.run_dir = Some(lab.path(&format!("{label}.run")));
    let mut daemon = Daemon::other(tabbyd, &[]);
    daemon.kind = DaemonKind::Tabbyd;
    daemon.args = opts.args();
    lab.start(ns, label, daemon)
        .with_context(|| format!("starting tabbyd as {label}"))?;
    Ok(sock)
}

impl Pair {
    /// Starts both nodes with `tabbyd` and waits until their session is
    /// Established (seen through A's API).
    pub async fn start(tabbyd: &Path) -> Result<Pair> {
        let mut lab = Lab::new("bench-api")?;
        let a_ns = lab.ns("a")?;
        let b_ns = lab.ns("b")?;
        let seg = lab.link(&a_ns, &b_ns)?;
        let (a4, b4) = (seg.v4(&a_ns)?, seg.v4(&b_ns)?);
        let yaml = lab.write_file("cluster.yaml", &cluster_yaml(a4, b4))?;
        let mut socks = vec![];
        for (label, ns) in [(A, &a_ns), (B, &b_ns)] {
            socks.push(start_tabbyd(&mut lab, tabbyd, ns, label, &yaml, false)?);
        }
        let (Some(b_sock), Some(a_sock)) = (socks.pop(), socks.pop()) else {
            bail!("two sockets expected");
        };
        let pair = Pair {
            lab,
            a_ns,
            b_ns,
            a_sock,
            b_sock,
        };
        pair.wait_established(Duration::from_secs(60)).await?;
        Ok(pair)
    }

    async fn wait_established(&self, limit: Duration) -> Result<()> {
        let t0 = std::time::Instant::now();
        let mut last = String::from("API socket not there yet");
        while t0.elapsed() < limit {
            if self.a_sock.exists() && self.b_sock.exists() {
                match self.established().await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = format!("{e:#}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("node A and B did not establish their session within {limit:?}: {last}")
    }

    async fn established(&self) -> Result<()> {
        for s in [&self.a_sock, &self.b_sock] {
            let st = Api::connect(s).await?.status().await?;
            ensure!(
                st.peers_established == 1,
                "{} has {} of {} peers Established",
                s.display(),
                st.peers_established,
                st.peers_configured
            );
        }
        Ok(())
    }

    /// Fails if either daemon died.
    pub fn check_alive(&mut self) -> Result<()> {
        self.lab.check_alive(A)?;
        self.lab.check_alive(B)
    }

    /// CPU seconds of (A, B) so far.
    pub fn cpu(&self) -> Result<(f64, f64)> {
        Ok((self.lab.stats(A)?.cpu_secs, self.lab.stats(B)?.cpu_secs))
    }
}
