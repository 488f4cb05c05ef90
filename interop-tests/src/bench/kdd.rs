//! The Kubernetes datastore under a real kube-apiserver (`--scenario kdd`):
//! what a Calico operator's `kubectl` costs Tabby, and what a large cluster
//! costs a starting node.
//!
//! One lab: the API server (with its etcd) in namespace `api`, the node under
//! test (`node-00000`, tabbyd as the DaemonSet's ServiceAccount
//! `tabby-system/tabby-node` with exactly `deploy/tabby-node.yaml`'s RBAC) in
//! `node`, and a BIRD 2 peer in `peer`, all on one LAN (198.18.1.1–3).
//!
//! 1. [`KddLab::peer_apply`]: the cluster has no BGPPeer; the clock starts
//!    just before `kubectl apply` of one (`crd.projectcalico.org/v1`) and
//!    stops when tabbyd's API shows the session Established (polled every
//!    10 ms over its unix socket). `kubectl delete` and waiting for the peer
//!    to go make the next sample.
//! 2. [`KddLab::create_cluster`] then [`KddLab::first_config`]: N core v1
//!    Nodes with Calico's annotations (addresses spread over 198.18.16.0 and
//!    up), one confirmed BlockAffinity each (/26s of 100.64.0.0/10), two of
//!    the nodes route reflectors, every other node peered with them by
//!    selector (Calico's large-cluster shape, no mesh). A fresh tabbyd per
//!    sample: process start → first configuration applied (DaemonStatus has
//!    the local AS and the datastore in sync), its CPU and peak RSS then.
//! 3. [`KddLab::node_change`]: a reflector's `projectcalico.org/IPv4Address`
//!    annotated to a new address (then back): `kubectl annotate` → the new
//!    address in tabbyd's peer list and the old one gone, and tabbyd's CPU.
//!
//! There is no anchor: calico-node's confd (what renders BIRD's
//! configuration from the same objects) cannot run here.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use tabby_proto::v1 as pb;

use super::client::Api;
use super::report::spread;
use super::scenario::load_average;
use crate::bird::Bird;
use crate::bird_conf::{Bird2Conf, Bird2Peer};
use crate::cmd::{self, CmdOutput};
use crate::daemon::{Daemon, DaemonKind, Datastore, TabbydOpts};
use crate::kube::{KubeApi, kubectl_bin};
use crate::lab::{Lab, Ns};
use crate::{preflight, procfs};

/// The cluster's AS.
pub const CLUSTER_AS: u32 = 64512;
/// The BIRD 2 peer's AS (eBGP).
pub const PEER_AS: u32 = 65001;
/// The node tabbyd runs as.
pub const NODE: &str = "node-00000";
/// The two route reflectors of the large cluster.
pub const REFLECTORS: [&str; 2] = ["rr-1", "rr-2"];
/// Their cluster ID (`projectcalico.org/RouteReflectorClusterID`).
pub const RR_CLUSTER_ID: &str = "224.0.0.1";
/// The BGPPeer of measurement 1.
const PEER_NAME: &str = "bird-peer";
/// Lab labels.
const TABBYD: &str = "tabbyd";
const BIRD: &str = "bird-peer";
/// The BIRD protocol that takes tabbyd's session.
const BIRD_PROTO: &str = "tabby";
/// How often tabbyd's API is asked.
const POLL: Duration = Duration::from_millis(10);
/// Objects per `kubectl create -f -` (a `kind: List`).
pub const BATCH: usize = 500;
/// `kubectl create` processes at once (kubectl creates a list's items one
/// request at a time, and limits itself to 50 requests/s).
pub const PARALLEL: usize = 4;
/// How long one BGPPeer may take to come up or go.
const PEER_LIMIT: Duration = Duration::from_secs(30);
/// How long a fresh tabbyd may take to its first configuration.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long one annotation may take to reach the peer list.
const CHANGE_LIMIT: Duration = Duration::from_secs(30);
/// tabbyd's kernel route protocol (flushed between fresh processes).
const TABBY_PROTO: &str = "84";

/// Generated node `i` (1 and up; node 0 is the one under test, at its lab
/// address): 198.18.16.1 onwards, 254 hosts per /24.
pub fn node_addr(i: usize) -> Result<Ipv4Addr> {
    ensure!(i >= 1, "node 0 is the node under test, at its lab address");
    let h = i - 1;
    let third = 16 + h / 254;
    ensure!(
        third <= 255,
        "node {i} does not fit 198.18.16.1–198.18.255.254"
    );
    Ok(Ipv4Addr::new(198, 18, third as u8, (1 + h % 254) as u8))
}

/// Where a reflector moves in measurement 3: the same host in 198.18.15.0/24,
/// outside the generated range.
pub fn moved_addr(a: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 15, a.octets()[3])
}

/// Node `i`'s block: the `i`-th /26 of 100.64.0.0/10.
pub fn node_block(i: usize) -> Result<Ipv4Net> {
    let off = u32::try_from(i)
        .ok()
        .and_then(|i| i.checked_mul(64))
        .filter(|&o| o < 1 << 22)
        .ok_or_else(|| anyhow!("node {i}'s /26 does not fit 100.64.0.0/10"))?;
    Ok(Ipv4Net::new(
        Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + off),
        26,
    )?)
}

/// The name of generated node `i`.
pub fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

/// A core v1 Node as Calico's Kubernetes datastore has it: its BGP address
/// (and a reflector's cluster ID) in `projectcalico.org/*` annotations.
pub fn node_object(name: &str, addr: Ipv4Addr, reflector: bool) -> Value {
    let mut labels = json!({ "kubernetes.io/hostname": name });
    let mut ann = json!({ "projectcalico.org/IPv4Address": format!("{addr}/24") });
    if reflector {
        labels["route-reflector"] = json!("true");
        ann["projectcalico.org/RouteReflectorClusterID"] = json!(RR_CLUSTER_ID);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": labels, "annotations": ann }
    })
}

/// A confirmed BlockAffinity of `node` for `block`.
pub fn block_object(node: &str, block: Ipv4Net) -> Value {
    let name = format!("{node}-{}", block.to_string().replace(['.', '/'], "-"));
    json!({
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BlockAffinity",
        "metadata": { "name": name },
        "spec": { "node": node, "cidr": block.to_string(), "state": "confirmed", "deleted": "false" }
    })
}

fn bgp_peer_object(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BGPPeer",
        "metadata": { "name": name },
        "spec": spec
    })
}

/// `items` as one `kind: List` document.
fn list(items: &[Value]) -> String {
    json!({ "apiVersion": "v1", "kind": "List", "items": items }).to_string()
}

/// The base cluster: BGPConfiguration `default` without the mesh, one IP
/// pool over 100.64.0.0/10, and the node under test with its block.
fn base_cluster(node_addr: Ipv4Addr) -> Result<String> {
    Ok(list(&[
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "BGPConfiguration",
            "metadata": { "name": "default" },
            "spec": { "asNumber": CLUSTER_AS, "nodeToNodeMeshEnabled": false, "logSeverityScreen": "Info" }
        }),
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "IPPool",
            "metadata": { "name": "bench" },
            "spec": { "cidr": "100.64.0.0/10", "blockSize": 26, "ipipMode": "Never", "vxlanMode": "Never" }
        }),
        node_object(NODE, node_addr, false),
        block_object(NODE, node_block(0)?),
    ]))
}

/// The large cluster's objects beyond the base: `n` nodes in all (the one
/// under test, `n - 3` more, the two reflectors), a block each, and the
/// BGPPeers of Calico's reflector topology. Returns (nodes, blocks, peers)
/// and the reflectors' addresses.
#[allow(clippy::type_complexity)]
pub fn large_cluster(n: usize) -> Result<(Vec<Value>, Vec<Value>, Vec<Value>, [Ipv4Addr; 2])> {
    ensure!(
        n >= 3,
        "the cluster needs at least 3 nodes (the one under test and two reflectors)"
    );
    let mut nodes = Vec::with_capacity(n - 1);
    let mut blocks = Vec::with_capacity(n - 1);
    for i in 1..n - 2 {
        let name = node_name(i);
        nodes.push(node_object(&name, node_addr(i)?, false));
        blocks.push(block_object(&name, node_block(i)?));
    }
    let rr = [node_addr(n - 2)?, node_addr(n - 1)?];
    for (k, (name, addr)) in REFLECTORS.iter().zip(rr).enumerate() {
        nodes.push(node_object(name, addr, true));
        blocks.push(block_object(name, node_block(n - 2 + k)?));
    }
    let peers = vec![
        bgp_peer_object(
            "peer-with-route-reflectors",
            json!({ "nodeSelector": "!has(route-reflector)", "peerSelector": "has(route-reflector)" }),
        ),
        bgp_peer_object(
            "route-reflector-mesh",
            json!({ "nodeSelector": "has(route-reflector)", "peerSelector": "has(route-reflector)" }),
        ),
    ];
    Ok((nodes, blocks, peers, rr))
}

// ------------------------------------------------------------------ results

/// One sample of measurement 1.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeerApplyRun {
    /// `kubectl apply` started → returned.
    pub kubectl: Duration,
    /// `kubectl apply` started → the peer in tabbyd's peer list.
    pub configured: Duration,
    /// `kubectl apply` started → the session Established.
    pub established: Duration,
    /// tabbyd's CPU seconds over apply → Established.
    pub cpu: f64,
    /// `kubectl delete` started → the peer gone from tabbyd's list.
    pub delete_gone: Duration,
    pub host_load: f64,
}

/// Setting up the large cluster (not Tabby's cost).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SetupRun {
    /// Nodes in the cluster (the one under test included).
    pub nodes: usize,
    /// Objects created (Nodes, BlockAffinities, BGPPeers).
    pub objects: usize,
    pub wall: Duration,
    /// kube-apiserver's and its etcd's CPU seconds over the creation.
    pub apiserver_cpu: f64,
    pub etcd_cpu: f64,
}

/// One fresh tabbyd in measurement 2.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartRun {
    /// Process start → DaemonStatus shows the local AS and the datastore in sync.
    pub first_config: Duration,
    /// tabbyd's CPU seconds then.
    pub cpu: f64,
    /// Its VmHWM then, MiB.
    pub peak_rss_mib: f64,
    /// kube-apiserver's and etcd's CPU seconds over the same interval.
    pub apiserver_cpu: f64,
    pub etcd_cpu: f64,
    /// The derived node's peers (addresses, sorted).
    pub peers: Vec<String>,
    /// DaemonStatus's datastore detail (e.g. "10004 resources").
    pub datastore: String,
    pub host_load: f64,
}

/// One annotation in measurement 3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangeRun {
    pub from: Ipv4Addr,
    pub to: Ipv4Addr,
    /// `kubectl annotate` started → returned.
    pub kubectl: Duration,
    /// `kubectl annotate` started → the new address in the peer list, the old gone.
    pub seen: Duration,
    /// tabbyd's CPU seconds over the same interval.
    pub cpu: f64,
    pub host_load: f64,
}

/// Measurement 1 and tabbyd's CPU at rest for comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerApplyResults {
    pub runs: Vec<PeerApplyRun>,
    /// tabbyd's CPU seconds per second before the first apply, while the
    /// bench asked ListPeers every 10 ms as it does while measuring.
    pub rest_cpu_per_s: f64,
}

/// Measurement 3 and tabbyd's CPU at rest for comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeResults {
    pub runs: Vec<ChangeRun>,
    /// tabbyd's CPU seconds per second while nothing changes (its sessions
    /// with the absent reflectors retrying) and the bench asks ListPeers
    /// every 10 ms as it does while measuring.
    pub rest_cpu_per_s: f64,
}

// ------------------------------------------------------------------ the lab

/// The API server, the node under test and its BIRD peer.
#[derive(Debug)]
pub struct KddLab {
    /// Owns the namespaces and processes; dropping it cleans up.
    pub lab: Lab,
    pub api: KubeApi,
    /// The DaemonSet ServiceAccount's kubeconfig.
    pub kubeconfig: PathBuf,
    pub node_ns: Ns,
    pub peer_ns: Ns,
    /// The node's and the BIRD peer's lab addresses.
    pub node_addr: Ipv4Addr,
    pub peer_addr: Ipv4Addr,
    /// API server start (PKI, etcd, `/readyz`) through CRDs, RBAC and the base cluster.
    pub startup: Duration,
    /// The reflectors' addresses now (after [`KddLab::create_cluster`]).
    pub reflectors: Option<[Ipv4Addr; 2]>,
    tabbyd: PathBuf,
    sock: PathBuf,
    tabbyd_started: bool,
    kubectl_cache: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl KddLab {
    /// Starts the API server, installs `deploy/crds/` and
    /// `deploy/tabby-node.yaml`, and writes the base cluster (no BGPPeer).
    /// `tabbyd` is the binary measured.
    pub fn start(tabbyd: &Path) -> Result<KddLab> {
        preflight::preflight(&[preflight::Need::KubeApiServer, preflight::Need::Bird2])?;
        let t0 = Instant::now();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a tokio runtime")?;
        let mut lab = Lab::new("bench-kdd")?;
        let api_ns = lab.ns("api")?;
        let node_ns = lab.ns("node")?;
        let peer_ns = lab.ns("peer")?;
        let seg = lab.lan(&[&api_ns, &node_ns, &peer_ns])?;
        let (api_addr, node_addr, peer_addr) =
            (seg.v4(&api_ns)?, seg.v4(&node_ns)?, seg.v4(&peer_ns)?);
        let api = lab.start_kube_apiserver(&api_ns, "kube", IpAddr::V4(api_addr))?;
        let kubeconfig = api.install_tabby()?;
        let kubectl_cache = api.dir.join("bench-kubectl-cache");
        let sock = lab.path("tabbyd.api.sock");
        let k = KddLab {
            lab,
            api,
            kubeconfig,
            node_ns,
            peer_ns,
            node_addr,
            peer_addr,
            startup: Duration::ZERO,
            reflectors: None,
            tabbyd: tabbyd.to_path_buf(),
            sock,
            tabbyd_started: false,
            kubectl_cache,
            rt,
        };
        k.kubectl(&["create", "-f", "-"], Some(&base_cluster(node_addr)?))?;
        Ok(KddLab {
            startup: t0.elapsed(),
            ..k
        })
    }

    /// `kubectl ARGS` as the admin, with a limit fit for big lists (the
    /// lab's own helper allows 30 s).
    fn kubectl_output(&self, args: &[&str], input: Option<&str>) -> Result<CmdOutput> {
        const LIMIT: Duration = Duration::from_secs(300);
        let k = kubectl_bin().display().to_string();
        let c = format!("--kubeconfig={}", self.api.admin_kubeconfig.display());
        let d = format!("--cache-dir={}", self.kubectl_cache.display());
        let mut full = vec![
            "netns",
            "exec",
            self.api.ns.name.as_str(),
            &k,
            &c,
            &d,
            "--request-timeout=60s",
        ];
        full.extend_from_slice(args);
        match input {
            Some(i) => cmd::run_input("ip", &full, i, LIMIT),
            None => cmd::run("ip", &full, LIMIT),
        }
    }

    fn kubectl(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let out = self.kubectl_output(args, input)?;
        ensure!(
            out.status.success(),
            "`kubectl {}` failed ({}): {}",
            args.join(" "),
            out.status,
            cmd::first_lines(&format!("{}{}", out.stderr, out.stdout), 6)
        );
        Ok(out.stdout)
    }

    /// Runs `kubectl` on a thread while `watch` polls on this one; returns
    /// when `watch` says done (or fails), and how long kubectl took.
    fn kubectl_while<T>(
        &self,
        args: &[&str],
        input: Option<&str>,
        t0: Instant,
        mut watch: impl FnMut() -> Result<Option<T>>,
        limit: Duration,
        what: &str,
    ) -> Result<(Duration, T)> {
        let kubectl_failed = AtomicBool::new(false);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let r = self.kubectl(args, input).map(|_| t0.elapsed());
                if r.is_err() {
                    kubectl_failed.store(true, Ordering::Release);
                }
                r
            });
            let mut outcome = Err(anyhow!("{what}: not within {limit:?}"));
            loop {
                match watch() {
                    Ok(Some(v)) => {
                        outcome = Ok(v);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
                // A failed kubectl changes nothing: its error says why.
                if t0.elapsed() > limit || kubectl_failed.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(POLL);
            }
            let kubectl = h
                .join()
                .map_err(|_| anyhow!("the kubectl thread panicked"))??;
            Ok((kubectl, outcome?))
        })
    }

    fn tabbyd_opts(&self) -> TabbydOpts {
        let mut o = TabbydOpts::new(NODE, Datastore::Kubernetes(self.kubeconfig.clone()));
        o.api = Some(format!("unix:{}", self.sock.display()));
        o.run_dir = Some(self.lab.path("tabbyd.run"));
        o.log_level = std::env::var("TABBY_BENCH_TABBYD_LOG").unwrap_or_else(|_| "info".into());
        if let Ok(extra) = std::env::var("TABBY_BENCH_TABBYD_ARGS") {
            o.extra_args = extra.split_whitespace().map(str::to_string).collect();
        }
        o
    }

    /// Starts a fresh tabbyd as the node under test (stopping the previous
    /// one and flushing its kernel routes, so every start finds the same
    /// kernel). Returns when the process was spawned, and its pid.
    fn start_tabbyd(&mut self) -> Result<(Instant, u32)> {
        if self.tabbyd_started {
            self.lab.stop(TABBYD)?;
        }
        let _ = self
            .lab
            .ip(&self.node_ns, &["route", "flush", "proto", TABBY_PROTO]);
        let _ = std::fs::remove_file(&self.sock);
        let t0 = Instant::now();
        let pid = if self.tabbyd_started {
            self.lab.restart(TABBYD)?
        } else {
            let opts = self.tabbyd_opts();
            let mut d = Daemon::other(&self.tabbyd, &[]);
            d.kind = DaemonKind::Tabbyd;
            d.args = opts.args();
            let ns = self.node_ns.clone();
            self.lab.start(&ns, TABBYD, d)?
        };
        self.tabbyd_started = true;
        Ok((t0, pid))
    }

    /// A connection to tabbyd's API, once its socket answers.
    fn connect(&self) -> Result<Api> {
        self.rt.block_on(Api::connect(&self.sock))
    }

    fn status(&self, api: &mut Api) -> Result<pb::StatusResponse> {
        self.rt.block_on(api.status())
    }

    /// tabbyd's CPU seconds per second over `d` at rest, while the bench asks
    /// ListPeers every 10 ms as it does while measuring.
    fn rest_cpu(&self, api: &mut Api, d: Duration) -> Result<f64> {
        let c0 = self.tabbyd_cpu()?;
        let t0 = Instant::now();
        while t0.elapsed() < d {
            self.peers(api)?;
            std::thread::sleep(POLL);
        }
        Ok((self.tabbyd_cpu()? - c0) / t0.elapsed().as_secs_f64())
    }

    fn peers(&self, api: &mut Api) -> Result<Vec<pb::Peer>> {
        let r = self
            .rt
            .block_on(api.peers.list_peers(pb::ListPeersRequest {}))
            .map_err(|s| anyhow!("ListPeers: {}", s.message()))?;
        Ok(r.into_inner().peers)
    }

    /// Waits (polling every 10 ms from `t0`) until tabbyd `pid` has applied
    /// its first configuration; returns when, and its status.
    fn wait_first_config(
        &mut self,
        pid: u32,
        t0: Instant,
    ) -> Result<(Duration, Api, pb::StatusResponse)> {
        let mut api: Option<Api> = None;
        let mut last = String::from("no API socket yet");
        loop {
            if !procfs::alive(pid) {
                self.lab.check_alive(TABBYD)?;
                bail!("tabbyd (pid {pid}) exited");
            }
            if api.is_none() && self.sock.exists() {
                match self.connect() {
                    Ok(a) => api = Some(a),
                    Err(e) => last = format!("{e:#}"),
                }
            }
            if let Some(a) = api.as_mut() {
                match self.status(a) {
                    Ok(s)
                        if s.local_as != 0
                            && s.datastore_sync == pb::DatastoreSyncState::InSync as i32 =>
                    {
                        let at = t0.elapsed();
                        let a = api.take().ok_or_else(|| anyhow!("no API client"))?;
                        return Ok((at, a, s));
                    }
                    Ok(s) => last = format!("datastore: {}", s.datastore_detail),
                    Err(e) => {
                        last = format!("{e:#}");
                        api = None;
                    }
                }
            }
            if t0.elapsed() > START_LIMIT {
                let log = cmd::tail_file(&self.lab.log_path(TABBYD)?, 20);
                bail!(
                    "tabbyd applied no configuration within {START_LIMIT:?} ({last}); its log ends:\n{log}"
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// tabbyd's CPU seconds so far, to the nanosecond (see [`thread_cpu`]).
    fn tabbyd_cpu(&self) -> Result<f64> {
        thread_cpu(self.lab.pid(TABBYD)?)
    }

    fn apiserver_cpu(&self) -> Result<(f64, f64)> {
        Ok((
            self.lab.stats(&self.api.label)?.cpu_secs,
            self.lab.stats(&self.api.etcd.label)?.cpu_secs,
        ))
    }

    // ------------------------------------------------------------ measurement 1

    /// Measurement 1: `reps` times BGPPeer applied → Established, then deleted
    /// → gone, with one tabbyd and one BIRD 2 peer (eBGP, passive: it only
    /// accepts tabbyd's connection). Stops both at the end.
    pub fn peer_apply(&mut self, reps: usize) -> Result<PeerApplyResults> {
        let mut p = Bird2Peer::ebgp(BIRD_PROTO, PEER_AS, IpAddr::V4(self.node_addr), CLUSTER_AS);
        p.local_addr = Some(IpAddr::V4(self.peer_addr));
        p.passive = true;
        let conf = Bird2Conf::new(self.peer_addr).peer(p).render();
        let peer_ns = self.peer_ns.clone();
        let bird = self.lab.start_bird2(&peer_ns, BIRD, &conf)?;
        let (t0, pid) = self.start_tabbyd()?;
        let (_, mut api, _) = self.wait_first_config(pid, t0)?;
        ensure!(
            self.peers(&mut api)?.is_empty(),
            "tabbyd has peers before the BGPPeer exists"
        );
        // A running node, not one whose watches are still opening: its CPU at
        // rest over 2 s, after 1 s.
        std::thread::sleep(Duration::from_secs(1));
        let rest_cpu_per_s = self.rest_cpu(&mut api, Duration::from_secs(2))?;
        let addr = self.peer_addr.to_string();
        let doc =
            bgp_peer_object(PEER_NAME, json!({ "peerIP": addr, "asNumber": PEER_AS })).to_string();
        let mut runs = Vec::with_capacity(reps);
        for rep in 1..=reps {
            wait_bird_accepting(&self.lab, &bird)?;
            let host_load = load_average();
            let cpu0 = self.tabbyd_cpu()?;
            let mut configured = None;
            let t0 = Instant::now();
            let (kubectl, established) = self.kubectl_while(
                &["apply", "-f", "-"],
                Some(&doc),
                t0,
                || {
                    let at = t0.elapsed();
                    let ps = self.peers(&mut api)?;
                    let Some(p) = ps.iter().find(|p| peer_addr_of(p) == addr) else {
                        return Ok(None);
                    };
                    configured.get_or_insert(at);
                    Ok((p.state == pb::SessionState::Established as i32).then_some(at))
                },
                PEER_LIMIT,
                "the BGPPeer's session Established in tabbyd",
            )?;
            let cpu = self.tabbyd_cpu()? - cpu0;
            let t1 = Instant::now();
            let (_, delete_gone) = self.kubectl_while(
                &["delete", "bgppeers.crd.projectcalico.org", PEER_NAME],
                None,
                t1,
                || {
                    let at = t1.elapsed();
                    let ps = self.peers(&mut api)?;
                    Ok((!ps.iter().any(|p| peer_addr_of(p) == addr)).then_some(at))
                },
                PEER_LIMIT,
                "the BGPPeer gone from tabbyd",
            )?;
            let r = PeerApplyRun {
                kubectl,
                configured: configured.unwrap_or(established),
                established,
                cpu,
                delete_gone,
                host_load,
            };
            eprintln!(
                "  BGPPeer {rep}/{reps}: kubectl returned {:.0} ms, configured {:.0} ms, Established {:.0} ms, tabbyd CPU {:.1} ms; deleted → gone {:.0} ms",
                ms(r.kubectl),
                ms(r.configured),
                ms(r.established),
                r.cpu * 1e3,
                ms(r.delete_gone)
            );
            runs.push(r);
        }
        self.lab.stop(TABBYD)?;
        self.lab.stop(BIRD)?;
        Ok(PeerApplyResults {
            runs,
            rest_cpu_per_s,
        })
    }

    // ------------------------------------------------------------ measurement 2

    /// Creates the large cluster of `n` nodes (see [`large_cluster`]):
    /// `kubectl create -f -` of `kind: List` batches of [`BATCH`],
    /// [`PARALLEL`] at once.
    pub fn create_cluster(&mut self, n: usize) -> Result<SetupRun> {
        let (nodes, blocks, peers, rr) = large_cluster(n)?;
        let objects = nodes.len() + blocks.len() + peers.len();
        let batches: Vec<String> = nodes
            .chunks(BATCH)
            .chain(blocks.chunks(BATCH))
            .map(list)
            .chain(std::iter::once(list(&peers)))
            .collect();
        let (a0, e0) = self.apiserver_cpu()?;
        let t0 = Instant::now();
        let me = &*self;
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = (0..PARALLEL)
                .map(|w| {
                    let mine: Vec<&String> = batches.iter().skip(w).step_by(PARALLEL).collect();
                    s.spawn(move || -> Result<()> {
                        for b in mine {
                            me.kubectl(&["create", "-f", "-"], Some(b))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| anyhow!("a kubectl thread panicked"))??;
            }
            Ok(())
        })?;
        let wall = t0.elapsed();
        let (a1, e1) = self.apiserver_cpu()?;
        self.reflectors = Some(rr);
        Ok(SetupRun {
            nodes: n,
            objects,
            wall,
            apiserver_cpu: a1 - a0,
            etcd_cpu: e1 - e0,
        })
    }

    /// Measurement 2: `reps` fresh tabbyds for the node under test, each to
    /// its first configuration. The last one keeps running (for
    /// [`KddLab::node_change`]).
    pub fn first_config(&mut self, reps: usize) -> Result<Vec<StartRun>> {
        let rr = self
            .reflectors
            .ok_or_else(|| anyhow!("create the cluster first"))?;
        let want: Vec<String> = {
            let mut v: Vec<String> = rr.iter().map(Ipv4Addr::to_string).collect();
            v.sort();
            v
        };
        let mut runs = Vec::with_capacity(reps);
        for rep in 1..=reps {
            // Let the previous process's exit and the API server settle.
            std::thread::sleep(Duration::from_millis(500));
            let host_load = load_average();
            let (a0, e0) = self.apiserver_cpu()?;
            let (t0, pid) = self.start_tabbyd()?;
            let (first_config, mut api, status) = self.wait_first_config(pid, t0)?;
            let st = procfs::stats(pid)?;
            let (a1, e1) = self.apiserver_cpu()?;
            let mut peers: Vec<String> = self.peers(&mut api)?.iter().map(peer_addr_of).collect();
            peers.sort();
            ensure!(
                peers == want,
                "node {NODE} should peer with the reflectors {want:?}, has {peers:?}"
            );
            let r = StartRun {
                first_config,
                cpu: st.cpu_secs,
                peak_rss_mib: st.peak_rss_mib(),
                apiserver_cpu: a1 - a0,
                etcd_cpu: e1 - e0,
                peers,
                datastore: status.datastore_detail,
                host_load,
            };
            eprintln!(
                "  fresh tabbyd {rep}/{reps}: first configuration after {:.3} s, CPU {:.3} s, peak RSS {:.1} MiB (kube-apiserver CPU {:.3} s); {}",
                r.first_config.as_secs_f64(),
                r.cpu,
                r.peak_rss_mib,
                r.apiserver_cpu,
                r.datastore
            );
            runs.push(r);
        }
        Ok(runs)
    }

    // ------------------------------------------------------------ measurement 3

    /// Measurement 3: with the last tabbyd of [`KddLab::first_config`]
    /// running, `reps` annotations of reflector `rr-1`'s address, alternately
    /// to [`moved_addr`] and back.
    pub fn node_change(&mut self, reps: usize) -> Result<ChangeResults> {
        let rr = self
            .reflectors
            .ok_or_else(|| anyhow!("create the cluster first"))?;
        self.lab.check_alive(TABBYD)?;
        let mut api = self.connect()?;
        // Settle, then tabbyd's CPU at rest for comparison.
        std::thread::sleep(Duration::from_secs(1));
        let rest_cpu_per_s = self.rest_cpu(&mut api, Duration::from_secs(2))?;
        let home = rr[0];
        let other = rr[1].to_string();
        let mut runs = Vec::with_capacity(reps);
        for rep in 1..=reps {
            let (from, to) = if rep % 2 == 1 {
                (home, moved_addr(home))
            } else {
                (moved_addr(home), home)
            };
            let (old, new) = (from.to_string(), to.to_string());
            let ann = format!("projectcalico.org/IPv4Address={to}/24");
            let host_load = load_average();
            let cpu0 = self.tabbyd_cpu()?;
            let t0 = Instant::now();
            let (kubectl, seen) = self.kubectl_while(
                &["annotate", "--overwrite", "node", REFLECTORS[0], &ann],
                None,
                t0,
                || {
                    let at = t0.elapsed();
                    let ps: Vec<String> = self.peers(&mut api)?.iter().map(peer_addr_of).collect();
                    let done = ps.contains(&new) && !ps.contains(&old);
                    Ok(done.then_some(at))
                },
                CHANGE_LIMIT,
                "the reflector's new address in tabbyd's peer list",
            )?;
            let cpu = self.tabbyd_cpu()? - cpu0;
            let ps: Vec<String> = self.peers(&mut api)?.iter().map(peer_addr_of).collect();
            ensure!(
                ps.len() == 2 && ps.contains(&other),
                "after the change tabbyd should peer with {new} and {other}, has {ps:?}"
            );
            let r = ChangeRun {
                from,
                to,
                kubectl,
                seen,
                cpu,
                host_load,
            };
            eprintln!(
                "  {} {from} → {to} {rep}/{reps}: kubectl returned {:.0} ms, in tabbyd's peers after {:.0} ms, tabbyd CPU {:.1} ms",
                REFLECTORS[0],
                ms(r.kubectl),
                ms(r.seen),
                r.cpu * 1e3
            );
            runs.push(r);
            // Let the settle window and the peer's new session attempt pass.
            std::thread::sleep(Duration::from_millis(300));
        }
        self.reflectors = Some([runs.last().map_or(home, |r| r.to), rr[1]]);
        Ok(ChangeResults {
            runs,
            rest_cpu_per_s,
        })
    }
}

/// CPU seconds of every live thread of `pid`, from
/// `/proc/PID/task/*/schedstat` (nanoseconds): utime+stime count 10 ms
/// ticks, too coarse for one change. Threads that ended are not counted, so
/// only differences over a short interval are meant.
pub fn thread_cpu(pid: u32) -> Result<f64> {
    let dir = format!("/proc/{pid}/task");
    let mut ns = 0u64;
    for e in std::fs::read_dir(&dir).with_context(|| format!("process {pid} is gone"))? {
        let e = e?;
        if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(ns as f64 / 1e9)
}

fn peer_addr_of(p: &pb::Peer) -> String {
    p.config
        .as_ref()
        .map(|c| c.address.clone())
        .unwrap_or_default()
}

/// Waits until BIRD's protocol for tabbyd is down and back to waiting for a
/// connection (after a Cease it restarts the protocol), so the next BGPPeer
/// is not refused.
fn wait_bird_accepting(lab: &Lab, bird: &Bird) -> Result<()> {
    lab.wait_for("BIRD waiting for tabbyd's connection", PEER_LIMIT, || {
        let p = bird.protocol(BIRD_PROTO)?;
        ensure!(
            p.state == "start" && (p.info.starts_with("Passive") || p.info.starts_with("Active")),
            "BIRD's protocol is {} / {}",
            p.state,
            p.info
        );
        Ok(())
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ------------------------------------------------------------------ the run

/// Sizes of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KddOpts {
    /// Nodes in the large cluster.
    pub nodes: usize,
    /// Samples per measurement.
    pub reps: usize,
}

/// Everything one run measured; a failed part holds its error.
#[derive(Debug)]
pub struct KddResults {
    pub opts: KddOpts,
    pub startup: Duration,
    pub peer_apply: Result<PeerApplyResults, String>,
    pub setup: Result<SetupRun, String>,
    pub start: Result<Vec<StartRun>, String>,
    pub change: Result<ChangeResults, String>,
    /// `/proc/loadavg` when the run began and ended.
    pub loadavg_before: String,
    pub loadavg_after: String,
    /// The whole run, lab start to teardown.
    pub elapsed: Duration,
}

fn loadavg_line() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn err_text(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The whole scenario in one lab. Fails only when the lab cannot start.
pub fn run(tabbyd: &Path, opts: KddOpts) -> Result<KddResults> {
    let loadavg_before = loadavg_line();
    let t0 = Instant::now();
    eprintln!("kdd: starting kube-apiserver, CRDs and RBAC");
    let mut k = KddLab::start(tabbyd)?;
    eprintln!("kdd: lab ready after {:.1} s", k.startup.as_secs_f64());
    eprintln!(
        "kdd (1): BGPPeer apply → Established, {} samples",
        opts.reps
    );
    let peer_apply = k.peer_apply(opts.reps).map_err(|e| {
        eprintln!("  failed: {e:#}");
        err_text(&e)
    });
    eprintln!("kdd (2): creating {} nodes", opts.nodes);
    let setup = k.create_cluster(opts.nodes).map_err(|e| {
        eprintln!("  failed: {e:#}");
        err_text(&e)
    });
    if let Ok(s) = &setup {
        eprintln!(
            "  {} objects in {:.1} s ({:.0}/s)",
            s.objects,
            s.wall.as_secs_f64(),
            s.objects as f64 / s.wall.as_secs_f64().max(1e-9)
        );
    }
    let start = match &setup {
        Ok(_) => {
            eprintln!("kdd (2): {} fresh tabbyds", opts.reps);
            k.first_config(opts.reps).map_err(|e| {
                eprintln!("  failed: {e:#}");
                err_text(&e)
            })
        }
        Err(_) => Err("not run: the cluster was not created".into()),
    };
    let change = match &start {
        Ok(_) => {
            eprintln!("kdd (3): {} annotations of {}", opts.reps, REFLECTORS[0]);
            k.node_change(opts.reps).map_err(|e| {
                eprintln!("  failed: {e:#}");
                err_text(&e)
            })
        }
        Err(_) => Err("not run: no tabbyd reached its first configuration".into()),
    };
    let startup = k.startup;
    drop(k);
    Ok(KddResults {
        opts,
        startup,
        peer_apply,
        setup,
        start,
        change,
        loadavg_before,
        loadavg_after: loadavg_line(),
        elapsed: t0.elapsed(),
    })
}

// ------------------------------------------------------------------ the report

/// One `| what | median | min | max |` row with `digits` decimals.
fn row(o: &mut String, what: &str, v: &[f64], digits: usize) {
    match spread(v) {
        Some((m, lo, hi)) => {
            let _ = writeln!(
                o,
                "| {what} | **{m:.digits$}** | {lo:.digits$} | {hi:.digits$} |"
            );
        }
        None => {
            let _ = writeln!(o, "| {what} | — | — | — |");
        }
    }
}

fn table_head(o: &mut String) {
    o.push_str("| what | median | min | max |\n|---|---|---|---|\n");
}

fn failed(o: &mut String, e: &str) {
    let _ = writeln!(o, "Not measured: {}\n", e.replace('|', "/"));
}

/// The tables of a run, in markdown.
pub fn tables(r: &KddResults) -> String {
    let mut o = String::new();
    let n = r.opts.nodes;

    let _ = writeln!(o, "### (1) BGPPeer `kubectl apply` → session Established\n");
    match &r.peer_apply {
        Ok(p) => {
            let f = |g: &dyn Fn(&PeerApplyRun) -> f64| p.runs.iter().map(g).collect::<Vec<f64>>();
            let rest = p.rest_cpu_per_s;
            table_head(&mut o);
            row(
                &mut o,
                "`kubectl apply` returned (ms)",
                &f(&|x| ms(x.kubectl)),
                0,
            );
            row(
                &mut o,
                "peer in tabbyd's peer list (ms)",
                &f(&|x| ms(x.configured)),
                0,
            );
            row(
                &mut o,
                "**session Established** (ms)",
                &f(&|x| ms(x.established)),
                0,
            );
            row(
                &mut o,
                "tabbyd CPU, apply → Established (ms)",
                &f(&|x| x.cpu * 1e3),
                1,
            );
            row(
                &mut o,
                "the same above tabbyd's rest rate (ms)",
                &f(&|x| (x.cpu - rest * x.established.as_secs_f64()) * 1e3),
                1,
            );
            row(
                &mut o,
                "`kubectl delete` → peer gone from tabbyd (ms)",
                &f(&|x| ms(x.delete_gone)),
                0,
            );
            row(&mut o, "host load (1 min)", &f(&|x| x.host_load), 1);
            let _ = writeln!(
                o,
                "\n{} sample(s), one tabbyd process that had run 3 s before the first; at rest it used {:.2} ms CPU per second with the bench polling its API.\n",
                p.runs.len(),
                rest * 1e3
            );
        }
        Err(e) => failed(&mut o, e),
    }

    let _ = writeln!(o, "### (2) List and derive a {n}-node cluster\n");
    match &r.setup {
        Ok(s) => {
            let _ = writeln!(
                o,
                "Setup (the API server's and kubectl's cost, not Tabby's): {} objects ({} Nodes, {} BlockAffinities, 2 BGPPeers) created in **{:.1} s** ({:.0} objects/s) with `kubectl create -f -` of `kind: List` batches of {BATCH}, {PARALLEL} kubectl processes at once; kube-apiserver CPU {:.1} s, its etcd {:.1} s.\n",
                s.objects,
                s.nodes - 1,
                s.nodes - 1,
                s.wall.as_secs_f64(),
                s.objects as f64 / s.wall.as_secs_f64().max(1e-9),
                s.apiserver_cpu,
                s.etcd_cpu
            );
        }
        Err(e) => failed(&mut o, &format!("creating the cluster: {e}")),
    }
    match &r.start {
        Ok(runs) => {
            let f = |g: &dyn Fn(&StartRun) -> f64| runs.iter().map(g).collect::<Vec<f64>>();
            table_head(&mut o);
            row(
                &mut o,
                "**process start → first configuration applied** (s)",
                &f(&|x| x.first_config.as_secs_f64()),
                3,
            );
            row(&mut o, "tabbyd CPU then (s)", &f(&|x| x.cpu), 2);
            row(
                &mut o,
                "tabbyd peak RSS (VmHWM) then (MiB)",
                &f(&|x| x.peak_rss_mib),
                1,
            );
            row(
                &mut o,
                "*kube-apiserver* CPU over the same interval (s; the API server's, not Tabby's)",
                &f(&|x| x.apiserver_cpu),
                2,
            );
            row(
                &mut o,
                "*etcd* CPU over the same interval (s)",
                &f(&|x| x.etcd_cpu),
                2,
            );
            row(&mut o, "host load (1 min)", &f(&|x| x.host_load), 1);
            if let Some(x) = runs.first() {
                let _ = writeln!(
                    o,
                    "\n{} fresh tabbyd process(es). The derived node {NODE} peers with the reflectors {} (DaemonStatus: {}).\n",
                    runs.len(),
                    x.peers.join(" and "),
                    x.datastore
                );
            }
        }
        Err(e) => failed(&mut o, e),
    }

    let _ = writeln!(
        o,
        "### (3) One Node's address change reaching tabbyd's peers\n"
    );
    match &r.change {
        Ok(c) => {
            let f = |g: &dyn Fn(&ChangeRun) -> f64| c.runs.iter().map(g).collect::<Vec<f64>>();
            let rest = c.rest_cpu_per_s;
            table_head(&mut o);
            row(
                &mut o,
                "`kubectl annotate` returned (ms)",
                &f(&|x| ms(x.kubectl)),
                0,
            );
            row(
                &mut o,
                "**new address in tabbyd's peer list, old one gone** (ms)",
                &f(&|x| ms(x.seen)),
                0,
            );
            row(
                &mut o,
                "tabbyd CPU, annotate → seen (ms)",
                &f(&|x| x.cpu * 1e3),
                1,
            );
            row(
                &mut o,
                "the same above tabbyd's rest rate (ms)",
                &f(&|x| (x.cpu - rest * x.seen.as_secs_f64()) * 1e3),
                1,
            );
            row(&mut o, "host load (1 min)", &f(&|x| x.host_load), 1);
            let moves: Vec<String> = c
                .runs
                .iter()
                .map(|x| format!("{} → {}", x.from, x.to))
                .collect();
            let _ = writeln!(
                o,
                "\n{} sample(s) on {} ({}); tabbyd at rest used {:.2} ms CPU per second (its sessions to the absent reflectors retrying, the bench polling its API).\n",
                c.runs.len(),
                REFLECTORS[0],
                moves.join(", "),
                rest * 1e3
            );
        }
        Err(e) => failed(&mut o, e),
    }
    o
}

/// What the tables measure, for the report.
pub fn describe(r: &KddResults) -> String {
    format!(
        "How: one lab, {startup:.1} s to start the API server with its etcd, install `deploy/crds/` and `deploy/tabby-node.yaml` and write the base cluster (BGPConfiguration `default`: AS {CLUSTER_AS}, `nodeToNodeMeshEnabled: false`; IPPool 100.64.0.0/10, /26 blocks; node {NODE} at 198.18.1.2/24 with a confirmed BlockAffinity). tabbyd (the binary named above, FIB on, log level `info` unless `TABBY_BENCH_TABBYD_LOG` says otherwise) runs as node {NODE} with `--datastore kubernetes:KUBECONFIG`, the kubeconfig of the DaemonSet's ServiceAccount `tabby-system/tabby-node`, in its own namespace; the bench asks its gRPC API on the unix socket every 10 ms (Status, ListPeers). Every clock starts just before the `kubectl` process is spawned, so kubectl's own start (a Go binary, in the API server's namespace) is inside the times; its return is shown separately. tabbyd batches datastore changes for 50 ms (at most 250 ms) before deriving, and that wait is inside (1) and (3).\n\n\
         (1): a BIRD 2 peer (AS {PEER_AS}, passive, so it only accepts tabbyd's connection) at 198.18.1.3; the BGPPeer is global (`peerIP`, `asNumber`). tabbyd had run for 3 s before the first apply (its watches open, as on a running node); before each later one the previous BGPPeer was deleted, gone from tabbyd's list, and BIRD back to waiting.\n\n\
         (2): {n} core v1 Nodes (the node under test, {m} more at 198.18.16.1 onwards, 254 per /24, and the reflectors {rr1} and {rr2} labelled `route-reflector: \"true\"` with `projectcalico.org/RouteReflectorClusterID: {RR_CLUSTER_ID}`), one confirmed BlockAffinity per node (the i-th /26 of 100.64.0.0/10), BGPPeers `peer-with-route-reflectors` (nodeSelector `!has(route-reflector)`, peerSelector `has(route-reflector)`) and `route-reflector-mesh` (both `has(route-reflector)`). The reflectors do not run (their sessions stay Active). Each sample is a fresh tabbyd process (the previous one stopped, its kernel routes flushed); *first configuration applied* is the first DaemonStatus with the local AS set and the datastore in sync, i.e. every collection listed (Nodes as metadata only, in pages of 500 by kube-rs's watcher), converted, this node derived and its sessions created. CPU is utime+stime from `/proc/PID/stat` (10 ms ticks), peak RSS VmHWM, read at that moment; the API server's and etcd's CPU over the same interval include their background work.\n\n\
         (3): reflector {rr1}'s `projectcalico.org/IPv4Address` annotated (`kubectl annotate --overwrite`) to 198.18.15.x and back, alternately; the clock stops when tabbyd's ListPeers shows the new address and not the old one. The tabbyd is the last one of (2), which had run for 3 s since its first configuration.\n\n\
         CPU in (1) and (3): the sum of tabbyd's threads' run time from `/proc/PID/task/*/schedstat` (nanoseconds; utime+stime tick at 10 ms, too coarse for one change) from just before kubectl to the moment seen. It includes tabbyd's work at rest (answering the bench's polls, in (3) also its sessions to the absent reflectors retrying), measured for 2 s before the first sample with the same polling and stated below each table; the rows *above tabbyd's rest rate* subtract it.\n\n\
         No anchor: calico-node's confd, which renders BIRD's configuration from the same objects, cannot run here, so these are Tabby's figures alone.\n",
        startup = r.startup.as_secs_f64(),
        n = r.opts.nodes,
        m = r.opts.nodes.saturating_sub(3),
        rr1 = REFLECTORS[0],
        rr2 = REFLECTORS[1],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_blocks_follow_the_lab_plan() {
        let plan: Ipv4Net = "198.18.0.0/16".parse().unwrap();
        let pods: Ipv4Net = "100.64.0.0/10".parse().unwrap();
        assert_eq!(node_addr(1).unwrap(), Ipv4Addr::new(198, 18, 16, 1));
        assert_eq!(node_addr(254).unwrap(), Ipv4Addr::new(198, 18, 16, 254));
        assert_eq!(node_addr(255).unwrap(), Ipv4Addr::new(198, 18, 17, 1));
        assert!(node_addr(0).is_err());
        for i in [1, 4999, 60_000] {
            let a = node_addr(i).unwrap();
            assert!(plan.contains(&a) && a.octets()[3] != 0 && a.octets()[3] != 255);
            assert!(plan.contains(&moved_addr(a)));
            assert_ne!(moved_addr(a), a);
        }
        assert!(node_addr(61_000).is_err());
        assert_eq!(node_block(0).unwrap().to_string(), "100.64.0.0/26");
        assert_eq!(node_block(5).unwrap().to_string(), "100.64.1.64/26");
        assert!(pods.contains(&node_block(65_535).unwrap()));
        assert!(node_block(65_536).is_err());
    }

    #[test]
    fn the_large_cluster_has_every_object_once() {
        let (nodes, blocks, peers, rr) = large_cluster(20).unwrap();
        assert_eq!(nodes.len(), 19);
        assert_eq!(blocks.len(), 19);
        assert_eq!(peers.len(), 2);
        assert_eq!(rr, [node_addr(18).unwrap(), node_addr(19).unwrap()]);
        let rr1 = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == "rr-1")
            .unwrap();
        assert_eq!(rr1["metadata"]["labels"]["route-reflector"], "true");
        assert_eq!(
            rr1["metadata"]["annotations"]["projectcalico.org/RouteReflectorClusterID"],
            RR_CLUSTER_ID
        );
        let n1 = &nodes[0];
        assert_eq!(n1["metadata"]["name"], "node-00001");
        assert_eq!(
            n1["metadata"]["annotations"]["projectcalico.org/IPv4Address"],
            "198.18.16.1/24"
        );
        assert!(n1["metadata"]["labels"].get("route-reflector").is_none());
        assert_eq!(blocks[0]["spec"]["cidr"], "100.64.0.64/26");
        assert_eq!(blocks[0]["metadata"]["name"], "node-00001-100-64-0-64-26");
        assert_eq!(peers[0]["spec"]["nodeSelector"], "!has(route-reflector)");
        let mut names: Vec<&str> = nodes
            .iter()
            .map(|n| n["metadata"]["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 19);
        assert!(large_cluster(2).is_err());
    }

    #[test]
    fn tables_show_medians_and_failures() {
        let d = Duration::from_millis;
        let r = KddResults {
            opts: KddOpts { nodes: 20, reps: 3 },
            startup: Duration::from_secs(20),
            peer_apply: Ok(PeerApplyResults {
                rest_cpu_per_s: 0.001,
                runs: vec![
                    PeerApplyRun {
                        kubectl: d(100),
                        configured: d(120),
                        established: d(130),
                        cpu: 0.002,
                        delete_gone: d(110),
                        host_load: 1.0,
                    },
                    PeerApplyRun {
                        kubectl: d(90),
                        configured: d(100),
                        established: d(150),
                        cpu: 0.003,
                        delete_gone: d(100),
                        host_load: 1.0,
                    },
                    PeerApplyRun {
                        kubectl: d(95),
                        configured: d(110),
                        established: d(140),
                        cpu: 0.004,
                        delete_gone: d(105),
                        host_load: 1.0,
                    },
                ],
            }),
            setup: Ok(SetupRun {
                nodes: 20,
                objects: 40,
                wall: Duration::from_secs(2),
                apiserver_cpu: 1.0,
                etcd_cpu: 0.2,
            }),
            start: Err("boom | bang".into()),
            change: Err("not run".into()),
            loadavg_before: "1 1 1".into(),
            loadavg_after: "1 1 1".into(),
            elapsed: Duration::from_secs(60),
        };
        let t = tables(&r);
        assert!(
            t.contains("| **session Established** (ms) | **140** | 130 | 150 |"),
            "{t}"
        );
        assert!(
            t.contains("40 objects (19 Nodes, 19 BlockAffinities"),
            "{t}"
        );
        assert!(t.contains("Not measured: boom / bang"), "{t}");
        // 3 ms less 1 ms/s × 0.14 s at rest.
        assert!(
            t.contains("| the same above tabbyd's rest rate (ms) | **2.9** |"),
            "{t}"
        );
        assert!(describe(&r).contains("No anchor"));
    }
}
