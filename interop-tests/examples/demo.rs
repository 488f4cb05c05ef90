//! The Tabby demo: a top-of-rack BIRD 2 and three Tabby nodes in network
//! namespaces, configured from one Calico cluster YAML. Each node gets a pod;
//! pods ping each other across nodes through the routes Tabby programmed.
//!
//! Run it with `bash scripts/demo.sh` (as root). Everything it creates is
//! removed when it ends, on success, failure or Ctrl-C.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use interop_tests::*;
use ipnet::IpNet;

const NODE_AS: u32 = 64512;
const TOR_AS: u32 = 65000;
/// The prefix the top-of-rack router announces (standing in for the rest of
/// the data centre).
const TOR_PREFIX: &str = "198.19.0.0/24";

struct Node {
    name: &'static str,
    block: &'static str,
    pod_ip: Ipv4Addr,
}

const NODES: [Node; 3] = [
    Node {
        name: "node-a",
        block: "100.64.0.0/26",
        pod_ip: Ipv4Addr::new(100, 64, 0, 2),
    },
    Node {
        name: "node-b",
        block: "100.64.0.64/26",
        pod_ip: Ipv4Addr::new(100, 64, 0, 66),
    },
    Node {
        name: "node-c",
        block: "100.64.0.128/26",
        pod_ip: Ipv4Addr::new(100, 64, 0, 130),
    },
];

/// The cluster, as Calico's v3 resources: a mesh of three nodes, one pool,
/// a global peering with the top-of-rack router, one block per node.
fn cluster_yaml(tor: Ipv4Addr, nodes: &[Ipv4Addr]) -> String {
    let mut y = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\n\
         spec:\n  asNumber: {NODE_AS}\n  nodeToNodeMeshEnabled: true\n---\n\
         apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: pods\n\
         spec:\n  cidr: 100.64.0.0/16\n  blockSize: 26\n  ipipMode: Never\n  vxlanMode: Never\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\n\
         spec:\n  peerIP: {tor}\n  asNumber: {TOR_AS}\n"
    );
    for (n, addr) in NODES.iter().zip(nodes) {
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {name}\n\
             spec:\n  bgp:\n    ipv4Address: {addr}/24\n---\n\
             apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata:\n  name: {name}-block\n\
             spec:\n  node: {name}\n  cidr: {block}\n  state: confirmed\n",
            name = n.name,
            block = n.block,
        );
    }
    y
}

fn banner(s: &str) {
    println!("\n\x1b[1m== {s}\x1b[0m");
}

fn tabbyctl_bin() -> Result<PathBuf> {
    let tabbyd = tabbyd_bin()?;
    let ctl = tabbyd.with_file_name("tabbyctl");
    if !ctl.is_file() {
        bail!(
            "tabbyctl not found beside {}: build it with `cargo build -p tabbyctl`",
            tabbyd.display()
        );
    }
    Ok(ctl)
}

fn tabbyctl(sock: &std::path::Path, args: &[&str]) -> Result<String> {
    let out = Command::new(tabbyctl_bin()?)
        .arg("--api")
        .arg(format!("unix:{}", sock.display()))
        .args(args)
        .output()
        .context("running tabbyctl")?;
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(s)
}

fn main() -> Result<()> {
    preflight(&[Need::Root, Need::Bird2]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let mut lab = Lab::new("demo")?;

    banner("Lab: a top-of-rack router and three nodes on one segment");
    let tor = lab.ns("tor")?;
    let mut node_ns = Vec::new();
    for n in &NODES {
        node_ns.push(lab.ns(n.name)?);
    }
    let mut members = vec![&tor];
    members.extend(node_ns.iter());
    let seg = lab.lan(&members)?;
    let tor_addr = seg.v4(&tor)?;
    let node_addrs: Vec<Ipv4Addr> = node_ns.iter().map(|ns| seg.v4(ns)).collect::<Result<_>>()?;
    println!("tor     {tor_addr}  AS {TOR_AS}  (BIRD 2)");
    for (n, a) in NODES.iter().zip(&node_addrs) {
        println!(
            "{}  {a}  AS {NODE_AS}  (tabbyd)  block {}  pod {}",
            n.name, n.block, n.pod_ip
        );
    }

    // The top-of-rack router: eBGP to every node, announcing a prefix of
    // its own and programming what it learns into its kernel.
    let mut conf = Bird2Conf::new(tor_addr).blackhole(TOR_PREFIX.parse()?);
    for (i, a) in node_addrs.iter().enumerate() {
        conf = conf.peer(Bird2Peer::ebgp(
            &format!("node{i}"),
            TOR_AS,
            IpAddr::V4(*a),
            NODE_AS,
        ));
    }
    let bird = lab.start_bird2(&tor, "tor", &conf.render())?;

    // Pods: a namespace per node, its veth on the node side with a /32 device
    // route (what the CNI plugin does) and proxy ARP; the pod's default route
    // points at the link.
    for (i, n) in NODES.iter().enumerate() {
        let node = &node_ns[i];
        let pod = lab.ns(&format!("pod{i}"))?;
        lab.ip(
            node,
            &[
                "link", "add", "name", "cali0", "type", "veth", "peer", "name", "eth0", "netns",
                &pod.name,
            ],
        )?;
        lab.ip(node, &["link", "set", "dev", "cali0", "up"])?;
        lab.sysctl(node, "net.ipv4.ip_forward", "1")?;
        lab.sysctl(node, "net.ipv4.conf.cali0.proxy_arp", "1")?;
        lab.add_route(node, &format!("{}/32 dev cali0", n.pod_ip))?;
        lab.add_addr(&pod, "eth0", &format!("{}/32", n.pod_ip))?;
        lab.ip(&pod, &["link", "set", "dev", "eth0", "up"])?;
        lab.add_route(&pod, "default dev eth0")?;
    }

    banner("Cluster configuration (Calico v3 resources)");
    let yaml = cluster_yaml(tor_addr, &node_addrs);
    let cluster = lab.write_file("cluster.yaml", &yaml)?;
    println!("{yaml}");

    banner("Starting tabbyd on every node");
    let mut tabbys = Vec::new();
    for (i, n) in NODES.iter().enumerate() {
        let mut opts = TabbydOpts::new(n.name, Datastore::File(cluster.clone()));
        opts.deferral_time = Some(10);
        let t = lab.start_tabbyd(&node_ns[i], n.name, &opts)?;
        println!("{}: pid {}", n.name, lab.pid(n.name)?);
        tabbys.push(t);
    }

    banner("Waiting for every block in every kernel");
    let t0 = Instant::now();
    for (i, n) in NODES.iter().enumerate() {
        for other in NODES.iter() {
            let prefix: IpNet = other.block.parse()?;
            lab.wait_kernel_route(&node_ns[i], None, prefix, Duration::from_secs(60))
                .with_context(|| format!("{} never got {}", n.name, other.block))?;
        }
        lab.wait_kernel_route(
            &node_ns[i],
            None,
            TOR_PREFIX.parse()?,
            Duration::from_secs(60),
        )?;
    }
    for n in &NODES {
        lab.wait_kernel_route(&tor, None, n.block.parse()?, Duration::from_secs(60))?;
    }
    println!("converged in {:.1} s", t0.elapsed().as_secs_f64());

    for (i, n) in NODES.iter().enumerate() {
        banner(&format!("{}: tabbyctl status", n.name));
        if let Some(sock) = &tabbys[i].api_socket {
            print!("{}", tabbyctl(sock, &["status"])?);
        }
        banner(&format!("{}: kernel routes (ip route)", n.name));
        print!("{}", lab.ip(&node_ns[i], &["route", "show"])?);
    }
    banner("tor (BIRD 2): birdc show route");
    print!("{}", bird.cmd("show route")?);

    banner("Pod to pod across nodes");
    let mut failed = 0;
    for (i, from) in NODES.iter().enumerate() {
        let pod = lab
            .namespaces()
            .iter()
            .find(|ns| ns.label == format!("pod{i}"))
            .cloned()
            .context("pod namespace")?;
        for to in NODES.iter().filter(|t| t.name != from.name) {
            // The first packet may wait for neighbour discovery: allow three.
            let ok = (0..3).any(|_| lab.ping(&pod, IpAddr::V4(to.pod_ip)));
            println!(
                "ping {} ({}) -> {} ({}): {}",
                from.pod_ip,
                from.name,
                to.pod_ip,
                to.name,
                if ok { "ok" } else { "FAILED" }
            );
            failed += usize::from(!ok);
        }
    }
    if failed > 0 {
        bail!("{failed} pod-to-pod pings failed; the lab dump above shows every kernel");
    }
    banner(&format!(
        "Done in {:.1} s; removing the lab",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
