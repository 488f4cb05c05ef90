//! Scenario 14 (issue 16 point 6): Calico 3.30–3.32 fields on real sessions
//! and real kernels.
//!
//! A BIRD 2 top-of-rack (AS 65000) and two Tabby nodes (AS 64512, mesh) on
//! one LAN; node-1 peers with the ToR through a node-specific BGPPeer with
//! `keepaliveTime: 10s`. Two pools: 100.64.0.0/16 without encapsulation and
//! 100.72.0.0/16 with IP-in-IP; node-2 holds a block of each.
//!
//! 1. `ipv4NormalRoutePriority: 512`, `programClusterRoutes:
//!    EnabledNoEncapOnly`, LoadBalancer range 198.19.100.0/24:
//!    - the session to the ToR runs a 30 s hold time and 10 s keepalive
//!      (BIRD's view of the negotiated timers);
//!    - node-1's kernel holds node-2's unencapsulated block and the ToR's
//!      prefix at metric 512, and not node-2's IP-in-IP block, which
//!      node-1 has learned (Felix would own that route);
//!    - the ToR learns the LoadBalancer range, and node-2's block with
//!      node-1 as next hop (`nextHopMode` Auto on eBGP).
//!    - a BGPFilter on the ToR peering adds a community and prepends two ASNs
//!      to node-1's own block only (Calico 3.32 operations).
//! 2. One live edit: priority 256, `programClusterRoutes: Disabled`,
//!    `serviceLoadBalancerAggregation: Disabled`, the BGPPeer's
//!    `nextHopMode: Keep`:
//!    - the ToR's prefix moves to metric 256 (no copy left at 512), node-2's
//!      block leaves node-1's kernel but stays learned;
//!    - the ToR loses the LoadBalancer range and sees node-2's block with
//!      node-2's own address as next hop;
//!    - no session was re-established for any of it.
//!
//! Needs root and BIRD 2.

mod fixtures;

use std::net::IpAddr;

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;

const TOR_AS: u32 = 65000;

/// The ToR's route for `prefix` from node-1 and its BGP next hops.
fn tor_next_hops(bird: &Bird, prefix: ipnet::IpNet) -> Result<Vec<IpAddr>> {
    let rs = bird.routes_for(prefix)?;
    let r = rs
        .iter()
        .find(|r| r.protocol == "node1")
        .ok_or_else(|| anyhow!("the ToR has no route for {prefix} from node-1: {rs:?}"))?;
    Ok(r.bgp_next_hop())
}

#[test]
fn calico_3_32_fields_change_real_sessions_and_routes() -> Result<()> {
    need(&[Need::Bird2]);
    let mut lab = Lab::new("scen14")?;
    let tor = lab.ns("tor")?;
    let n1 = lab.ns("node-1")?;
    let n2 = lab.ns("node-2")?;
    let seg = lab.lan(&[&tor, &n1, &n2])?;
    let (at, a1, a2) = (seg.v4(&tor)?, seg.v4(&n1)?, seg.v4(&n2)?);
    let (it, i1, i2) = (IpAddr::V4(at), IpAddr::V4(a1), IpAddr::V4(a2));
    let tor_net = net("198.19.0.0/24");
    let lb = net("198.19.100.0/24");
    let (plain, ipip) = (net("100.64.2.0/26"), net("100.72.2.0/26"));

    let cluster = |live: bool| {
        let mut c = Cluster::new()
            .pool("100.64.0.0/16", "Never")
            .pool("100.72.0.0/16", "Always")
            .block("node-1", "100.64.1.0/26")
            .block("node-2", "100.64.2.0/26")
            .block("node-2", "100.72.2.0/26")
            .node(NodeSpec::v4("node-1", a1))
            .node(NodeSpec::v4("node-2", a2))
            .doc(&bgp_peer_yaml(
                "tor",
                it,
                TOR_AS,
                Some("node-1"),
                &format!(
                    "  keepaliveTime: 10s\n  nextHopMode: {}\n  filters: [to-tor]\n",
                    if live { "Keep" } else { "Auto" }
                ),
            ))
            .doc(
                "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata:\n  name: to-tor\nspec:\n  \
                 exportV4:\n  - action: Accept\n    matchOperator: Equal\n    cidr: 100.64.1.0/26\n    \
                 operations:\n    - addCommunity: {value: '64512:100'}\n    \
                 - prependASPath: {prefix: [65010, 65011]}\n",
            );
        c.default_spec = vec![
            "serviceLoadBalancerIPs: [{cidr: 198.19.100.0/24}]".into(),
            format!("ipv4NormalRoutePriority: {}", if live { 256 } else { 512 }),
            format!(
                "programClusterRoutes: {}",
                if live {
                    "Disabled"
                } else {
                    "EnabledNoEncapOnly"
                }
            ),
        ];
        if live {
            c.default_spec
                .push("serviceLoadBalancerAggregation: Disabled".into());
        }
        c.render()
    };
    let file = lab.write_file("cluster.yaml", &cluster(false))?;

    let conf = Bird2Conf::new(at)
        .blackhole(tor_net)
        .peer(Bird2Peer::ebgp("node1", TOR_AS, i1, CLUSTER_AS));
    let bird = lab.start_bird2(&tor, "tor", &conf.render())?;
    let mut tabby = vec![];
    for (ns, name) in [(&n1, "node-1"), (&n2, "node-2")] {
        let mut o = TabbydOpts::new(name, Datastore::File(file.clone()));
        o.deferral_time = Some(2);
        tabby.push(lab.start_tabbyd(ns, name, &o)?);
    }
    let (t1, t2) = (&tabby[0], &tabby[1]);

    // 1. As configured at start.
    lab.wait_for("sessions Established", T, || {
        bird.established("node1")?;
        established(t1, &[it, i2])?;
        established(t2, &[i1])
    })?;
    let p = bird.cmd("show protocols all node1")?;
    for want in ["Hold timer:", "Keepalive timer:"] {
        let line = p
            .lines()
            .find(|l| l.trim_start().starts_with(want))
            .ok_or_else(|| anyhow!("BIRD shows no {want}:\n{p}"))?;
        let limit = if want.starts_with("Hold") {
            "/30"
        } else {
            "/10"
        };
        ensure!(
            line.trim_end().ends_with(limit),
            "BIRD's {want} is not {limit}: {line}"
        );
    }
    let s = &peer(t1, it)?["settings"];
    ensure!(
        s["keepalive_seconds"] == 10 && s["hold_time_seconds"] == 30,
        "Tabby's session settings: {s}"
    );
    lab.wait_for("routes at metric 512 and at the ToR", T, || {
        kernel_has(
            &lab,
            &n1,
            &[(plain, Want::Via(i2)), (tor_net, Want::Via(it))],
        )?;
        for pfx in [plain, tor_net] {
            let m = metrics_of(&lab, &n1, pfx)?;
            ensure!(m == [Some(512)], "{pfx} metrics in node-1's kernel: {m:?}");
        }
        ensure!(
            tor_next_hops(&bird, lb).is_ok(),
            "the ToR has not learned the LoadBalancer range"
        );
        let nh = tor_next_hops(&bird, plain)?;
        ensure!(
            nh == [i1],
            "node-2's block at the ToR via {nh:?}, not node-1"
        );
        Ok(())
    })?;
    // BGPFilter operations on export: node-1's own block leaves with the community
    // added and the ASNs prepended (after node-1's own AS, as BIRD sends it); node-2's
    // block, which the rule does not match, goes unchanged.
    let own = bird
        .routes_for(net("100.64.1.0/26"))?
        .into_iter()
        .find(|r| r.protocol == "node1")
        .ok_or_else(|| anyhow!("the ToR has no route for node-1's block"))?;
    ensure!(
        own.as_path() == [CLUSTER_AS, 65010, 65011] && own.communities().contains(&(64512, 100)),
        "node-1's block at the ToR: path {:?}, communities {:?}",
        own.as_path(),
        own.communities()
    );
    let other = bird
        .routes_for(plain)?
        .into_iter()
        .find(|r| r.protocol == "node1")
        .ok_or_else(|| anyhow!("the ToR has no route for node-2's block"))?;
    ensure!(
        other.as_path() == [CLUSTER_AS] && !other.communities().contains(&(64512, 100)),
        "node-2's block at the ToR: path {:?}, communities {:?}",
        other.as_path(),
        other.communities()
    );
    ensure!(
        metrics_of(&lab, &n1, ipip)?.is_empty(),
        "EnabledNoEncapOnly: the IP-in-IP block is in node-1's kernel"
    );
    best_path(t1, ipip)?;
    let up_before = uptime(t1, it)?;
    let mesh_before = uptime(t1, i2)?;

    // 2. One live edit.
    write_atomic(&file, &cluster(true))?;
    lab.wait_for("the live edit applied", T, || {
        let m = metrics_of(&lab, &n1, tor_net)?;
        ensure!(
            m == [Some(256)],
            "the ToR's prefix in node-1's kernel: {m:?}"
        );
        kernel_has(&lab, &n1, &[(tor_net, Want::Via(it))])?;
        ensure!(
            metrics_of(&lab, &n1, plain)?.is_empty(),
            "programClusterRoutes Disabled: node-2's block is still in node-1's kernel"
        );
        ensure!(
            bird.routes_for(lb)?.is_empty(),
            "serviceLoadBalancerAggregation Disabled: the ToR still has the LoadBalancer range"
        );
        let nh = tor_next_hops(&bird, plain)?;
        ensure!(
            nh == [i2],
            "nextHopMode Keep: node-2's block at the ToR via {nh:?}"
        );
        Ok(())
    })?;
    best_path(t1, plain)?;
    best_path(t1, ipip)?;
    for (addr, before) in [(it, up_before), (i2, mesh_before)] {
        let now = uptime(t1, addr)?;
        ensure!(
            now >= before,
            "the session to {addr} was re-established ({before} s up before, {now} s after)"
        );
        let flaps = &peer(t1, addr)?["counters"]["flaps"];
        ensure!(flaps == 0, "the session to {addr} flapped: {flaps}");
    }
    bird.established("node1")?;
    Ok(())
}
