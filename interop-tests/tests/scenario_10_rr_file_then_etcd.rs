//! Issue 6's namespace test: three Tabby nodes and one Tabby route
//! reflector, the way Calico sets up reflectors (mesh off; one `BGPPeer`
//! with `nodeSelector: all()` and `peerSelector: route-reflector == 'true'`;
//! the reflector is a normal node with a `routeReflectorClusterID`, FIB on).
//!
//! Part 1 reads the cluster from one YAML file. Part 2 writes the same
//! resources to a real etcd (Calico's etcdv3 layout) and, while the sessions
//! run, edits them:
//! - a node-specific `BGPPeer` (node-3 towards a BIRD 2 ToR) gets a keepalive
//!   time: that one session is re-established, every other keeps its uptime;
//! - the `BGPFilter` attached to the reflector `BGPPeer` gains an export rule
//!   (node-1's block) and an import rule (node-2's block): those blocks leave
//!   the other kernels and no session resets anywhere; emptied again, the
//!   blocks come back (re-export, and a route refresh for the import side),
//!   still without a reset.

mod fixtures;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;
use ipnet::IpNet;

const RR_PEER: &str = "peer-with-route-reflectors";
const FILTER: &str = "rr-filter";
const TOR_PEER: &str = "node-3-tor";
const TOR_AS: u32 = 65001;
const TOR_PREFIX: &str = "198.19.1.0/24";
/// After a routing effect, how long to keep watching for a late reset.
const SETTLE: Duration = Duration::from_secs(3);

/// One Calico node of the test: its namespace, address and block.
struct Host {
    name: &'static str,
    ns: Ns,
    addr: Ipv4Addr,
    block: IpNet,
}

impl Host {
    fn ip(&self) -> IpAddr {
        IpAddr::V4(self.addr)
    }
}

/// The `BGPFilter` attached to the reflector peering; `export`/`import` are
/// YAML list items (or empty for no rules).
fn filter_yaml(export: &str, import: &str) -> String {
    let list = |key: &str, items: &str| {
        if items.is_empty() {
            format!("  {key}: []\n")
        } else {
            format!("  {key}:\n{items}")
        }
    };
    format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: {FILTER}\nspec:\n{}{}",
        list("exportV4", export),
        list("importV4", import)
    )
    .trim_end()
    .to_string()
}

/// A filter rule matching exactly `cidr`.
fn rule(action: &str, cidr: IpNet) -> String {
    format!("    - action: {action}\n      matchOperator: Equal\n      cidr: {cidr}\n")
}

/// Nodes, reflector, blocks, the reflector `BGPPeer` and its (empty) filter.
fn cluster(hosts: &[Host]) -> Cluster {
    let mut c = Cluster::new().pool("100.64.0.0/16", "Never");
    c.mesh = false;
    for h in hosts {
        let mut n = NodeSpec::v4(h.name, h.addr);
        if h.name.starts_with("rr") {
            // RFC 4456 §7: the router id is a fine cluster id.
            n.rr_cluster_id = Some(h.addr);
            n.labels.push(("route-reflector".into(), "true".into()));
        }
        c = c.node(n).block(h.name, &h.block.to_string());
    }
    c.doc(&format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: {RR_PEER}\n\
         spec:\n  nodeSelector: all()\n  peerSelector: route-reflector == 'true'\n  \
         filters:\n    - {FILTER}"
    ))
    .doc(&filter_yaml("", ""))
}

/// Ok when `t`'s peers are exactly `want`, all Established, none from the mesh.
fn exact_peers(t: &Tabbyd, want: &[IpAddr]) -> Result<()> {
    let ps = peers(t)?;
    let mut have: Vec<String> = ps
        .iter()
        .filter_map(|p| p["address"].as_str().map(str::to_string))
        .collect();
    have.sort();
    let mut w: Vec<String> = want.iter().map(IpAddr::to_string).collect();
    w.sort();
    ensure!(have == w, "{}: peers {have:?}, want exactly {w:?}", t.label);
    for p in &ps {
        ensure!(
            p["type"].as_str() != Some("node-mesh"),
            "{}: a mesh session with the mesh off: {p}",
            t.label
        );
    }
    established(t, want)
}

/// Ok when every host's kernel holds its own block as a blackhole and each
/// other block in `blocks` via its owner, and none of `absent`.
fn kernels(lab: &Lab, hosts: &[Host], blocks: &[IpNet], absent: &[IpNet]) -> Result<()> {
    for h in hosts {
        let mut want = vec![(h.block, Want::Blackhole)];
        for o in hosts.iter().filter(|o| o.name != h.name) {
            if blocks.contains(&o.block) {
                want.push((o.block, Want::Via(o.ip())));
            }
        }
        kernel_has(lab, &h.ns, &want)?;
        let routes = lab.kernel_routes(&h.ns)?;
        for p in absent.iter().filter(|p| **p != h.block) {
            let r: Vec<&KernelRoute> = routes.iter().filter(|r| r.dst == *p).collect();
            ensure!(
                r.is_empty(),
                "{}: {p} should be gone, kernel has {r:?}",
                h.ns
            );
        }
    }
    Ok(())
}

/// (since, flaps) of one session: a reset moves both.
fn mark(t: &Tabbyd, addr: IpAddr) -> Result<(u64, u64)> {
    let p = peer(t, addr)?;
    ensure!(
        p["state"].as_str() == Some("Established"),
        "{}: {addr} is not Established: {p}",
        t.label
    );
    let since = p["state_since_unix_seconds"]
        .as_u64()
        .ok_or_else(|| anyhow!("{}: no state_since for {addr}: {p}", t.label))?;
    let flaps = p["counters"]["flaps"].as_u64().unwrap_or(0);
    Ok((since, flaps))
}

type Marks = BTreeMap<(String, IpAddr), (u64, u64)>;

fn marks(sessions: &[(&Tabbyd, IpAddr)]) -> Result<Marks> {
    sessions
        .iter()
        .map(|(t, a)| Ok(((t.label.clone(), *a), mark(t, *a)?)))
        .collect()
}

/// Every session in `sessions` (except `skip`) is as it was in `before`.
fn untouched(
    lab: &Lab,
    sessions: &[(&Tabbyd, IpAddr)],
    before: &Marks,
    skip: Option<(&str, IpAddr)>,
    what: &str,
) -> Result<()> {
    for (t, a) in sessions {
        if skip == Some((t.label.as_str(), *a)) {
            continue;
        }
        let now = mark(t, *a).map_err(|e| anyhow!("after {what}: {e:#}\n{}", lab.dump()))?;
        let was = before
            .get(&(t.label.clone(), *a))
            .ok_or_else(|| anyhow!("no earlier mark for {} {a}", t.label))?;
        ensure!(
            now == *was,
            "SESSION RESET by {what}: {}'s session with {a} went from (since, flaps) {was:?} \
             to {now:?}; it should have kept its uptime\n{}",
            t.label,
            lab.dump()
        );
    }
    Ok(())
}

/// Waits until the wall clock is past every `since` in `m`: a reset after
/// that shows as a later `since`, never the same second.
fn next_second(lab: &Lab, m: &Marks) -> Result<()> {
    let latest = m.values().map(|(s, _)| *s).max().unwrap_or(0);
    lab.wait_for("a second passes", T, || {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        ensure!(now > latest, "same second");
        Ok(())
    })
}

/// Namespaces beside the Calico nodes (etcd, the ToR) and their addresses.
type Extras = Vec<(Ns, Ipv4Addr)>;

/// Four namespaces on one LAN (plus `extra`), named and addressed.
fn hosts(lab: &mut Lab, extra: &[&str]) -> Result<(Vec<Host>, Extras)> {
    let names = ["node-1", "node-2", "node-3", "rr-1"];
    let blocks = [
        "100.64.1.0/26",
        "100.64.2.0/26",
        "100.64.3.0/26",
        "100.64.4.0/26",
    ];
    let mut all = vec![];
    for n in names.iter().chain(extra) {
        all.push(lab.ns(n)?);
    }
    let refs: Vec<&Ns> = all.iter().collect();
    let seg = lab.lan(&refs)?;
    let mut hs = vec![];
    for ((name, block), ns) in names.into_iter().zip(blocks).zip(&all) {
        hs.push(Host {
            name,
            ns: ns.clone(),
            addr: seg.v4(ns)?,
            block: net(block),
        });
    }
    let mut others = vec![];
    for ns in &all[names.len()..] {
        others.push((ns.clone(), seg.v4(ns)?));
    }
    Ok((hs, others))
}

fn start_all(lab: &mut Lab, hs: &[Host], ds: &Datastore) -> Result<Vec<Tabbyd>> {
    let mut t = vec![];
    for h in hs {
        let mut o = TabbydOpts::new(h.name, ds.clone());
        o.deferral_time = Some(5);
        t.push(lab.start_tabbyd(&h.ns, h.name, &o)?);
    }
    Ok(t)
}

/// Part 1: the cluster from one YAML file.
fn from_file() -> Result<Duration> {
    let started = Instant::now();
    let mut lab = Lab::new("scen10f")?;
    let (hs, _) = hosts(&mut lab, &[])?;
    let file = lab.write_file("cluster.yaml", &cluster(&hs).render())?;
    let t = start_all(&mut lab, &hs, &Datastore::File(file))?;
    let rr = hs[3].ip();
    let nodes: Vec<IpAddr> = hs[..3].iter().map(Host::ip).collect();
    lab.wait_for("every node Established with the reflector only", T, || {
        for ti in &t[..3] {
            exact_peers(ti, &[rr])?;
        }
        exact_peers(&t[3], &nodes)
    })?;
    let all: Vec<IpNet> = hs.iter().map(|h| h.block).collect();
    lab.wait_for("every block in every kernel (file)", T, || {
        kernels(&lab, &hs, &all, &[])
    })?;
    // Still no node↔node session once routes flowed.
    for ti in &t[..3] {
        exact_peers(ti, &[rr])?;
    }
    exact_peers(&t[3], &nodes)?;
    Ok(started.elapsed())
}

/// Part 2: the same resources in etcd, edited while the sessions run.
fn from_etcd() -> Result<Duration> {
    let started = Instant::now();
    let mut lab = Lab::new("scen10e")?;
    let (hs, others) = hosts(&mut lab, &["etcd", "tor"])?;
    let [(ens, e), (tns, tor)] = [others[0].clone(), others[1].clone()];
    let etcd = lab.start_etcd(&ens, "etcd", IpAddr::V4(e))?;
    let tor_ip = IpAddr::V4(tor);
    let tor_peer = |more: &str| bgp_peer_yaml(TOR_PEER, tor_ip, TOR_AS, Some("node-3"), more);
    let c = cluster(&hs).doc(&tor_peer(""));
    put_cluster(&etcd, &c)?;

    let mut p = Bird2Peer::ebgp("node3", TOR_AS, hs[2].ip(), CLUSTER_AS);
    p.local_addr = Some(tor_ip);
    let conf = Bird2Conf::new(tor).blackhole(net(TOR_PREFIX)).peer(p);
    let bird = lab.start_bird2(&tns, "bird-tor", &conf.render())?;

    let t = start_all(&mut lab, &hs, &Datastore::Etcd(vec![etcd.endpoint.clone()]))?;
    let (t3, trr) = (&t[2], &t[3]);
    let rr = hs[3].ip();
    let nodes: Vec<IpAddr> = hs[..3].iter().map(Host::ip).collect();
    lab.wait_for("every session Established (etcd)", T, || {
        exact_peers(&t[0], &[rr])?;
        exact_peers(&t[1], &[rr])?;
        exact_peers(t3, &[rr, tor_ip])?;
        exact_peers(trr, &nodes)?;
        bird.established("node3")
    })?;
    let all: Vec<IpNet> = hs.iter().map(|h| h.block).collect();
    lab.wait_for("every block in every kernel (etcd)", T, || {
        kernels(&lab, &hs, &all, &[])?;
        kernel_has(&lab, &hs[2].ns, &[(net(TOR_PREFIX), Want::Via(tor_ip))])
    })?;
    let t_converged = started.elapsed();

    let mut sessions: Vec<(&Tabbyd, IpAddr)> = vec![];
    for (ti, h) in t[..3].iter().zip(&hs) {
        sessions.push((ti, rr));
        sessions.push((trr, h.ip()));
    }
    sessions.push((t3, tor_ip));
    let before = marks(&sessions)?;
    next_second(&lab, &before)?;

    // (a) Edit the node-specific BGPPeer: keepalive 10 s, so hold 30 s.
    etcd.put(
        &calico_etcd_key("BGPPeer", TOR_PEER)?,
        &tor_peer("  keepaliveTime: 10s\n"),
    )?;
    let tor_was = before
        .get(&(t3.label.clone(), tor_ip))
        .copied()
        .ok_or_else(|| anyhow!("no mark for the ToR session"))?;
    lab.wait_for(
        "node-3's ToR session re-established with hold 30",
        T,
        || {
            let p = peer(t3, tor_ip)?;
            ensure!(p["state"].as_str() == Some("Established"), "{p}");
            ensure!(mark(t3, tor_ip)?.0 > tor_was.0, "not re-established yet");
            ensure!(
                p["negotiated_hold_time_seconds"].as_u64() == Some(30),
                "{p}"
            );
            bird.established("node3")
        },
    )?;
    std::thread::sleep(SETTLE);
    untouched(
        &lab,
        &sessions,
        &before,
        Some((t3.label.as_str(), tor_ip)),
        &format!("editing BGPPeer {TOR_PEER}"),
    )?;
    lab.wait_for("every route back after the ToR edit", T, || {
        kernels(&lab, &hs, &all, &[])?;
        kernel_has(&lab, &hs[2].ns, &[(net(TOR_PREFIX), Want::Via(tor_ip))])
    })?;

    // (b) The BGPFilter on the reflector peering: node-1's block no longer
    // exported, node-2's no longer imported. Policy only: no reset.
    let before = marks(&sessions)?;
    next_second(&lab, &before)?;
    let (b1, b2) = (hs[0].block, hs[1].block);
    // A BGPFilter edit is policy only: once its effect is in the kernels
    // (`blocks` present, `absent` gone), no session may have reset.
    let edit_filter =
        |yaml: String, effect: &str, blocks: &[IpNet], absent: &[IpNet], what: &str| {
            etcd.put(&calico_etcd_key("BGPFilter", FILTER)?, &yaml)?;
            lab.wait_for(effect, T, || kernels(&lab, &hs, blocks, absent))?;
            std::thread::sleep(SETTLE);
            untouched(&lab, &sessions, &before, None, what)
        };
    let kept: Vec<IpNet> = hs[2..].iter().map(|h| h.block).collect();
    edit_filter(
        filter_yaml(&rule("Reject", b1), &rule("Reject", b2)),
        "the filtered blocks gone from the other kernels",
        &kept,
        &[b1, b2],
        &format!("adding rules to BGPFilter {FILTER}"),
    )?;
    kernels(&lab, &hs, &kept, &[b1, b2])?;

    // (c) The rules go again: re-export for node-1's block, a route refresh
    // towards node-2 for its block; still no reset.
    edit_filter(
        filter_yaml("", ""),
        "the filtered blocks back in every kernel",
        &all,
        &[],
        &format!("removing the rules of BGPFilter {FILTER}"),
    )?;
    exact_peers(t3, &[rr, tor_ip])?;
    exact_peers(trr, &nodes)?;
    eprintln!(
        "scenario 10 (etcd): converged after {t_converged:?}, edits done after {:?}",
        started.elapsed()
    );
    Ok(started.elapsed())
}

#[test]
fn reflector_cluster_from_file_then_etcd_with_live_edits() -> Result<()> {
    need(&[Need::Etcd, Need::Bird2]);
    let file = from_file()?;
    eprintln!("scenario 10 (file): converged in {file:?}");
    let etcd = from_etcd()?;
    eprintln!("scenario 10: passed; file part {file:?}, etcd part {etcd:?}");
    Ok(())
}
