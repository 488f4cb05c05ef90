//! The baseline: the same cluster on BIRD 2, changed the way Calico's confd
//! changes a node today: its whole configuration rewritten (a static
//! blackhole per block and borrowed /32, exported to both reflectors) and
//! `birdc configure`. Each node's kernel protocol exports the routes it
//! learns (and its own blocks, as tabbyd blackholes them) with protocol
//! `bird` (12).

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipnet::{IpNet, Ipv4Net};

use super::cluster::{ASN, Applier, CLUSTER_ID, Cluster, Flavour, LanLab, node_label, rr_label};
use super::load::Load;
use crate::bird::Bird;
use crate::bird_conf::{Bird2Conf, Bird2Peer, StaticRoute};

/// How long one `birdc configure` may take.
const CONFIGURE_LIMIT: Duration = Duration::from_secs(10);

/// The kernel protocol of a node: learned routes, and own blocks as
/// blackholes (never the node's own /32s, as tabbyd).
const KERNEL: &str = "protocol kernel {\n  ipv4 { import none; export where source = RTS_BGP || (source = RTS_STATIC && net.len < 32); };\n  merge paths on;\n}\n";

/// A node's configuration file and control socket, and its configuration
/// without routes.
#[derive(Debug)]
pub struct BirdNode {
    pub conf: Bird2Conf,
    pub path: PathBuf,
    pub sock: PathBuf,
}

impl BirdNode {
    /// What confd does on a change: render, write, `birdc configure`.
    pub async fn apply(&mut self, set: &[Ipv4Net]) -> Result<()> {
        self.conf.statics = set
            .iter()
            .map(|p| StaticRoute {
                prefix: IpNet::V4(*p),
                via: None,
            })
            .collect();
        tokio::fs::write(&self.path, self.conf.render())
            .await
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        let out = tokio::time::timeout(
            CONFIGURE_LIMIT,
            tokio::process::Command::new("birdc")
                .arg("-s")
                .arg(&self.sock)
                .arg("configure")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .with_context(|| format!("birdc configure took over {CONFIGURE_LIMIT:?}"))?
        .context("cannot run birdc (install bird2)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("Reconfigur") {
            bail!(
                "birdc configure of {}: {}",
                self.sock.display(),
                text.trim()
            );
        }
        Ok(())
    }
}

/// A node: iBGP to both reflectors, its set as static blackholes.
pub fn node_conf(addr: Ipv4Addr, rrs: [Ipv4Addr; 2], set: &[Ipv4Net]) -> Bird2Conf {
    let mut c = Bird2Conf::new(addr);
    c.log = false;
    c.kernel_export = false;
    c.extra = KERNEL.into();
    for (i, rr) in rrs.iter().enumerate() {
        let mut p = Bird2Peer::ibgp(&format!("refl{}", i + 1), ASN, IpAddr::V4(*rr));
        p.local_addr = Some(IpAddr::V4(addr));
        c = c.peer(p);
    }
    for p in set {
        c = c.blackhole(IpNet::V4(*p));
    }
    c
}

/// A reflector: every node a passive client, the other reflector a plain
/// iBGP peer, one cluster id.
pub fn rr_conf(addr: Ipv4Addr, other: Ipv4Addr, nodes: &[Ipv4Addr]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "router id {addr};");
    o.push_str("log stderr { error, fatal, bug };\n");
    o.push_str("protocol device { scan time 10; }\n");
    // Next hops resolve through the LAN's device route.
    o.push_str("protocol direct { ipv4; interface \"*\"; }\n");
    let _ = writeln!(
        o,
        "template bgp rrclient {{\n  local {addr} as {ASN};\n  rr client;\n  rr cluster id {CLUSTER_ID};\n  passive on;\n  ipv4 {{ import all; export where source = RTS_BGP; }};\n}}"
    );
    let _ = writeln!(
        o,
        "protocol bgp reflector {{\n  local {addr} as {ASN};\n  neighbor {other} as {ASN};\n  rr cluster id {CLUSTER_ID};\n  connect delay time 1;\n  connect retry time 2;\n  ipv4 {{ import all; export where source = RTS_BGP; }};\n}}"
    );
    for (i, n) in nodes.iter().enumerate() {
        let _ = writeln!(
            o,
            "protocol bgp n{i} from rrclient {{ neighbor {n} as {ASN}; }}"
        );
    }
    o
}

/// Starts the BIRD cluster and waits until every node has both reflectors
/// Established and every permanent block is in every kernel.
pub fn start(
    rt: &tokio::runtime::Runtime,
    nodes: usize,
    seed: u64,
    limit: Duration,
) -> Result<Cluster> {
    let load = Load::new(nodes, seed)?;
    let LanLab {
        mut lab,
        rr_ns,
        node_ns,
        rr_addrs: rrs,
        node_addrs,
    } = LanLab::new("churn-bird", nodes)?;
    for i in 0..2 {
        lab.start_bird2(
            &rr_ns[i],
            &rr_label(i),
            &rr_conf(rrs[i], rrs[1 - i], &node_addrs),
        )?;
    }
    let mut birds: Vec<Bird> = vec![];
    let mut appliers = vec![];
    for (i, ns) in node_ns.iter().enumerate() {
        let conf = node_conf(node_addrs[i], rrs, &load.set(i));
        let b = lab.start_bird2(ns, &node_label(i), &conf.render())?;
        appliers.push(Applier::Bird(BirdNode {
            conf,
            path: b.conf.clone(),
            sock: b.sock.clone(),
        }));
        birds.push(b);
    }
    let t0 = Instant::now();
    lab.wait_for(
        "every BIRD node Established with both reflectors",
        limit,
        || {
            for b in &birds {
                b.established("refl1")?;
                b.established("refl2")?;
            }
            Ok(())
        },
    )?;
    tracing::info!(nodes, elapsed = ?t0.elapsed(), "BIRD churn cluster established");
    let cluster = {
        let _g = rt.enter();
        Cluster::assemble(Flavour::Bird, lab, node_ns, appliers, load)?
    };
    cluster
        .wait_kernels(limit)
        .context("the initial blocks did not reach every kernel")?;
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_configuration_is_what_confd_would_write() {
        let c = node_conf(
            Ipv4Addr::new(198, 18, 1, 3),
            [Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2)],
            &[
                "100.64.0.0/26".parse().unwrap(),
                "100.64.96.7/32".parse().unwrap(),
            ],
        )
        .render();
        assert!(c.contains("route 100.64.0.0/26 blackhole;"));
        assert!(c.contains("route 100.64.96.7/32 blackhole;"));
        assert!(c.contains("neighbor 198.18.1.1 as 64512;"));
        assert!(c.contains("local 198.18.1.3 as 64512;"));
        assert!(c.contains("protocol bgp refl2 {"));
        assert_eq!(c.matches("protocol kernel").count(), 1);
        assert!(c.contains("net.len < 32"));
    }

    #[test]
    fn reflector_serves_every_node_as_a_client() {
        let c = rr_conf(
            Ipv4Addr::new(198, 18, 1, 1),
            Ipv4Addr::new(198, 18, 1, 2),
            &[Ipv4Addr::new(198, 18, 1, 3), Ipv4Addr::new(198, 18, 1, 4)],
        );
        assert!(c.contains("protocol bgp n1 from rrclient { neighbor 198.18.1.4 as 64512; }"));
        assert!(c.contains("rr client;"));
        assert!(c.contains("neighbor 198.18.1.2 as 64512;"));
        assert!(!c.contains("protocol kernel"));
    }
}
