//! The Tabby cluster: one Calico cluster file (no mesh, two reflector Nodes
//! with a `routeReflectorClusterID`, one BGPPeer from every node to them, a
//! pool over the load's prefixes), tabbyd on every node with its FIB and on
//! both reflectors with `--no-fib`.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::cluster::{ASN, Applier, CLUSTER_ID, Cluster, Flavour, LanLab, node_label, rr_label};
use super::load::{Load, POOL};
use crate::bench::client::Api;
use crate::bench::pair::start_tabbyd;
use crate::lab::Ns;

/// The Calico resources of the cluster.
pub fn cluster_yaml(rrs: [Ipv4Addr; 2], nodes: &[Ipv4Addr]) -> String {
    let mut o = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: {ASN}\n  nodeToNodeMeshEnabled: false\n  logSeverityScreen: Error\n"
    );
    for (i, a) in rrs.iter().enumerate() {
        let _ = write!(
            o,
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {}\n  labels:\n    route-reflector: \"true\"\nspec:\n  bgp:\n    ipv4Address: {a}/24\n    routeReflectorClusterID: {CLUSTER_ID}\n",
            rr_label(i)
        );
    }
    for (i, a) in nodes.iter().enumerate() {
        let _ = write!(
            o,
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {}\nspec:\n  bgp:\n    ipv4Address: {a}/24\n",
            node_label(i)
        );
    }
    let _ = write!(
        o,
        "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: to-reflectors\nspec:\n  nodeSelector: all()\n  peerSelector: route-reflector == 'true'\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: churn\nspec:\n  cidr: {POOL}\n  blockSize: 26\n  ipipMode: Never\n  vxlanMode: Never\n"
    );
    o
}

/// Starts the cluster (`nodes` nodes, two reflectors) and waits until every
/// session is Established and every node's permanent block is in every
/// kernel.
pub fn start(
    rt: &tokio::runtime::Runtime,
    tabbyd: &Path,
    nodes: usize,
    seed: u64,
    limit: Duration,
) -> Result<Cluster> {
    let load = Load::new(nodes, seed)?;
    let LanLab {
        mut lab,
        rr_ns,
        node_ns,
        rr_addrs,
        node_addrs,
    } = LanLab::new("churn-tabby", nodes)?;
    let yaml = lab.write_file("cluster.yaml", &cluster_yaml(rr_addrs, &node_addrs))?;

    let mut start = |ns: &Ns, label: &str, no_fib: bool| -> Result<PathBuf> {
        start_tabbyd(&mut lab, tabbyd, ns, label, &yaml, no_fib)
    };
    let mut rr_socks = vec![];
    for (i, ns) in rr_ns.iter().enumerate() {
        rr_socks.push(start(ns, &rr_label(i), true)?);
    }
    let mut node_socks = vec![];
    for (i, ns) in node_ns.iter().enumerate() {
        node_socks.push(start(ns, &node_label(i), false)?);
    }
    let t0 = Instant::now();
    loop {
        let err = match rt.block_on(established(&rr_socks, &node_socks)) {
            Ok(()) => break,
            Err(e) => e,
        };
        if t0.elapsed() > limit {
            bail!("the tabby cluster did not come up within {limit:?}: {err:#}");
        }
        for l in (0..2).map(rr_label).chain((0..nodes).map(node_label)) {
            lab.check_alive(&l)?;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    tracing::info!(nodes, elapsed = ?t0.elapsed(), "tabby churn cluster established");
    let appliers = node_socks
        .into_iter()
        .map(|sock| Applier::Tabby { sock, api: None })
        .collect();
    let cluster = {
        let _g = rt.enter();
        Cluster::assemble(Flavour::Tabby, lab, node_ns, appliers, load)?
    };
    cluster.push_sets(None)?;
    cluster
        .wait_kernels(limit)
        .context("the initial blocks did not reach every kernel")?;
    Ok(cluster)
}

/// Every node has both reflectors Established, every reflector every node
/// and the other reflector.
pub async fn established(rrs: &[PathBuf], nodes: &[PathBuf]) -> Result<()> {
    let want_rr = nodes.len() as u32 + 1;
    for (socks, want) in [(rrs, want_rr), (nodes, 2)] {
        for s in socks {
            ensure!(s.exists(), "{} not there yet", s.display());
            let st = Api::connect(s).await?.status().await?;
            ensure!(
                st.peers_established >= want,
                "{} has {} of {} peers Established",
                s.display(),
                st.peers_established,
                want
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_file_has_reflectors_and_no_mesh() {
        let y = cluster_yaml(
            [Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2)],
            &[Ipv4Addr::new(198, 18, 1, 3)],
        );
        assert!(y.contains("nodeToNodeMeshEnabled: false"));
        assert_eq!(
            y.matches("routeReflectorClusterID: 198.18.255.1").count(),
            2
        );
        assert_eq!(y.matches("kind: Node\n").count(), 3);
        assert!(y.contains("name: node-0\nspec:\n  bgp:\n    ipv4Address: 198.18.1.3/24"));
        assert!(y.contains("peerSelector: route-reflector == 'true'"));
        assert!(y.contains("cidr: 100.64.0.0/10"));
    }
}
