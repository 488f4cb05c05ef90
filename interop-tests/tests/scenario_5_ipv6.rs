//! Scenario 5 (issue 7): IPv6. Two dual-stack Tabby nodes mesh over both
//! families and peer with a BIRD 2 ToR over IPv6: IPv6 blocks reach every
//! kernel over IPv6 sessions. Then IPv4 over an IPv6 session (RFC 8950
//! extended next hop) with FRR.

mod fixtures;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;
use ipnet::IpNet;

const TOR_AS: u32 = 65000;

/// Ok when `ns` routes `p` via `gw`, or via a link-local address of the
/// same neighbour (BIRD sends both next hops on a shared segment).
fn v6_via(lab: &Lab, ns: &Ns, p: IpNet, gw: Ipv6Addr) -> Result<()> {
    let k = lab.kernel_routes(ns)?;
    let r = k
        .iter()
        .find(|r| r.dst == p)
        .ok_or_else(|| anyhow!("{p} not in {ns}'s kernel yet"))?;
    let g = r.gateway();
    ensure!(
        g == Some(IpAddr::V6(gw)) || matches!(g, Some(IpAddr::V6(a)) if a.segments()[0] == 0xfe80),
        "{p} in {ns}: {r:?}"
    );
    Ok(())
}

#[test]
fn ipv6_blocks_over_ipv6_sessions_with_bird2() -> Result<()> {
    need(&[Need::Bird2]);
    let started = Instant::now();
    let mut lab = Lab::new("scen5")?;
    let tor = lab.ns("tor")?;
    let n1 = lab.ns("node-1")?;
    let n2 = lab.ns("node-2")?;
    let seg = lab.lan(&[&tor, &n1, &n2])?;
    let (t4, t6) = (seg.v4(&tor)?, seg.v6(&tor)?);
    let (a1, a2) = (seg.v6(&n1)?, seg.v6(&n2)?);
    let (b1, b2, tor_net) = (
        net("2001:db8:1000:1::/122"),
        net("2001:db8:1000:2::/122"),
        net("2001:db8:1000:ff::/64"),
    );

    let mut s1 = NodeSpec::v4("node-1", seg.v4(&n1)?);
    s1.v6 = Some(a1);
    let mut s2 = NodeSpec::v4("node-2", seg.v4(&n2)?);
    s2.v6 = Some(a2);
    let c = Cluster::new()
        .node(s1)
        .node(s2)
        .pool("100.64.0.0/16", "Never")
        .pool("2001:db8:1000::/48", "Never")
        .block("node-1", "2001:db8:1000:1::/122")
        .block("node-2", "2001:db8:1000:2::/122")
        .peer("tor6", IpAddr::V6(t6), TOR_AS, None);
    let file = lab.write_file("cluster.yaml", &c.render())?;

    let mut conf = Bird2Conf::new(t4).blackhole(tor_net);
    for (name, a) in [("node1", a1), ("node2", a2)] {
        let mut p = Bird2Peer::ebgp(name, TOR_AS, IpAddr::V6(a), CLUSTER_AS);
        p.local_addr = Some(IpAddr::V6(t6));
        conf = conf.peer(p);
    }
    let bird = lab.start_bird2(&tor, "tor", &conf.render())?;
    let mut t = vec![];
    for (n, name) in [(&n1, "node-1"), (&n2, "node-2")] {
        let mut o = TabbydOpts::new(name, Datastore::File(file.clone()));
        o.deferral_time = Some(5);
        t.push(lab.start_tabbyd(n, name, &o)?);
    }
    lab.wait_for("IPv6 mesh and ToR sessions Established", T, || {
        bird.established("node1")?;
        bird.established("node2")?;
        established(&t[0], &[IpAddr::V6(a2), IpAddr::V6(t6)])?;
        established(&t[1], &[IpAddr::V6(a1), IpAddr::V6(t6)])
    })?;
    let p = peer(&t[0], IpAddr::V6(t6))?;
    ensure!(
        p["negotiated_families"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("ipv6"))),
        "ToR session families: {p}"
    );
    lab.wait_for("IPv6 routes in every kernel", T, || {
        kernel_has(&lab, &n1, &[(b1, Want::Blackhole)])?;
        kernel_has(&lab, &n2, &[(b2, Want::Blackhole)])?;
        v6_via(&lab, &n1, b2, a2)?;
        v6_via(&lab, &n2, b1, a1)?;
        v6_via(&lab, &n1, tor_net, t6)?;
        v6_via(&lab, &n2, tor_net, t6)?;
        // Each node also re-advertises the other's block (Calico exports
        // every pool route to global peers), so the ToR may hold both paths.
        for (b, a) in [(b1, a1), (b2, a2)] {
            let k = lab.kernel_routes(&tor)?;
            let r = k
                .iter()
                .find(|r| r.dst == b)
                .ok_or_else(|| anyhow!("{b} not at the ToR yet"))?;
            ensure!(
                r.nexthops.iter().any(|h| h.gateway == Some(IpAddr::V6(a))),
                "{b} at the ToR: {r:?}"
            );
        }
        Ok(())
    })?;
    for (b, a) in [(b1, a1), (b2, a2)] {
        let rs = bird.routes_for(b)?;
        ensure!(
            rs.iter()
                .any(|r| r.as_path() == vec![CLUSTER_AS]
                    && r.bgp_next_hop().contains(&IpAddr::V6(a))),
            "BIRD's view of {b}: {rs:?}"
        );
    }
    eprintln!(
        "scenario 5 (IPv6 with BIRD 2): passed in {:?}",
        started.elapsed()
    );
    Ok(())
}

/// IPv4 NLRI over an IPv6-only session with FRR (RFC 8950).
#[test]
fn ipv4_over_ipv6_session_with_frr() -> Result<()> {
    need(&[Need::Frr]);
    let mut lab = Lab::new("scen5b")?;
    let tor = lab.ns("tor")?;
    let n1 = lab.ns("node-1")?;
    let seg = lab.link(&tor, &n1)?;
    let (t4, t6, a1) = (seg.v4(&tor)?, seg.v6(&tor)?, seg.v6(&n1)?);
    let mut s1 = NodeSpec::v4("node-1", seg.v4(&n1)?);
    s1.v6 = Some(a1);
    let c = Cluster::new()
        .node(s1)
        .pool("100.64.0.0/16", "Never")
        .block("node-1", "100.64.1.0/26")
        .peer("tor6", IpAddr::V6(t6), TOR_AS, None);
    let file = lab.write_file("cluster.yaml", &c.render())?;
    let mut n = FrrNeighbor::new(IpAddr::V6(a1), CLUSTER_AS);
    n.ipv4 = true;
    n.extended_nexthop = true;
    let frr = lab.start_frr(
        &tor,
        "tor",
        &FrrConf::new("tor", TOR_AS, t4)
            .network(net("198.19.9.0/24"))
            .neighbor(n)
            .render(),
    )?;
    let mut o = TabbydOpts::new("node-1", Datastore::File(file));
    o.deferral_time = Some(5);
    let t = lab.start_tabbyd(&n1, "node-1", &o)?;
    lab.wait_for("IPv6 session Established", T, || {
        frr.established(IpAddr::V6(a1))?;
        established(&t, &[IpAddr::V6(t6)])
    })?;
    // The peer is reached over IPv6 alone: IPv4 rides the same session.
    let p = peer(&t, IpAddr::V6(t6))?;
    let fams: Vec<&str> = p["negotiated_families"]
        .as_array()
        .map(|f| f.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    ensure!(
        fams.contains(&"ipv4") && fams.contains(&"ipv6"),
        "session families: {p}"
    );
    lab.wait_for("IPv4 block at FRR with an IPv6 next hop", T, || {
        let rs = frr.routes("ipv4")?;
        let r = rs
            .iter()
            .find(|r| r.prefix == net("100.64.1.0/26") && r.best)
            .ok_or_else(|| anyhow!("not at FRR: {rs:?}"))?;
        ensure!(r.next_hops.contains(&IpAddr::V6(a1)), "{r:?}");
        Ok(())
    })?;
    // FRR's IPv4 prefix in node-1's kernel via an IPv6 gateway (`via inet6`).
    let r = lab.wait_kernel_route(&n1, Some(TABBY_PROTO), net("198.19.9.0/24"), T)?;
    ensure!(r.gateway() == Some(IpAddr::V6(t6)), "{r:?}");
    Ok(())
}
