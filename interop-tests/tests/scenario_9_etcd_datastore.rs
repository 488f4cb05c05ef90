//! Scenario 9 (issue 7): the mesh driven from etcd (Calico's etcdv3 layout).
//! Two Tabby nodes read their resources from a real etcd, mesh with each
//! other and peer with two BIRD 2 ToRs through two global `BGPPeer`s. Editing
//! one `BGPPeer` in etcd re-establishes only that peer's sessions: the mesh
//! and the other ToR keep their uptime.

mod fixtures;

use std::net::IpAddr;
use std::time::Instant;

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;

/// When the session with `addr` last entered its state (seconds since epoch).
fn since(t: &Tabbyd, addr: IpAddr) -> Result<u64> {
    peer(t, addr)?["state_since_unix_seconds"]
        .as_u64()
        .ok_or_else(|| anyhow!("no state_since for {addr}"))
}

#[test]
fn mesh_from_etcd_and_one_bgppeer_edit() -> Result<()> {
    need(&[Need::Etcd, Need::Bird2]);
    let started = Instant::now();
    let mut lab = Lab::new("scen9")?;
    let ens = lab.ns("etcd")?;
    let n1 = lab.ns("node-1")?;
    let n2 = lab.ns("node-2")?;
    let ta = lab.ns("tor-a")?;
    let tb = lab.ns("tor-b")?;
    let seg = lab.lan(&[&ens, &n1, &n2, &ta, &tb])?;
    let v4 = |n: &Ns| seg.v4(n);
    let (e, a1, a2, aa, ab) = (v4(&ens)?, v4(&n1)?, v4(&n2)?, v4(&ta)?, v4(&tb)?);
    let ip = IpAddr::V4;
    let etcd = lab.start_etcd(&ens, "etcd", ip(e))?;

    let c = Cluster::new()
        .pool("100.64.0.0/16", "Never")
        .node(NodeSpec::v4("node-1", a1))
        .node(NodeSpec::v4("node-2", a2))
        .block("node-1", "100.64.1.0/26")
        .block("node-2", "100.64.2.0/26")
        .peer("tor-a", ip(aa), 65001, None)
        .peer("tor-b", ip(ab), 65002, None);
    put_cluster(&etcd, &c)?;

    for (n, a, asn, origin) in [
        (&ta, aa, 65001, "198.19.1.0/24"),
        (&tb, ab, 65002, "198.19.2.0/24"),
    ] {
        let mut conf = Bird2Conf::new(a).blackhole(net(origin));
        for (pn, pa) in [("node1", a1), ("node2", a2)] {
            let mut p = Bird2Peer::ebgp(pn, asn, ip(pa), CLUSTER_AS);
            p.local_addr = Some(ip(a));
            conf = conf.peer(p);
        }
        lab.start_bird2(n, &format!("bird-{}", n.label), &conf.render())?;
    }

    let mut t = vec![];
    for (n, name) in [(&n1, "node-1"), (&n2, "node-2")] {
        let mut o = TabbydOpts::new(name, Datastore::Etcd(vec![etcd.endpoint.clone()]));
        o.deferral_time = Some(5);
        t.push(lab.start_tabbyd(n, name, &o)?);
    }
    let (t1, t2) = (&t[0], &t[1]);
    lab.wait_for("mesh and ToR sessions Established", T, || {
        established(t1, &[ip(a2), ip(aa), ip(ab)])?;
        established(t2, &[ip(a1), ip(aa), ip(ab)])
    })?;
    wait_kernel(
        &lab,
        &n1,
        &[
            (net("100.64.1.0/26"), Want::Blackhole),
            (net("100.64.2.0/26"), Want::Via(ip(a2))),
            (net("198.19.1.0/24"), Want::Via(ip(aa))),
            (net("198.19.2.0/24"), Want::Via(ip(ab))),
        ],
    )?;
    wait_kernel(
        &lab,
        &n2,
        &[
            (net("100.64.2.0/26"), Want::Blackhole),
            (net("100.64.1.0/26"), Want::Via(ip(a1))),
        ],
    )?;
    let t_converged = started.elapsed();

    let keep = [(t1, ip(a2)), (t1, ip(aa)), (t2, ip(a1)), (t2, ip(aa))];
    let before: Vec<u64> = keep
        .iter()
        .map(|(t, a)| since(t, *a))
        .collect::<Result<_>>()?;
    let tb_before = [since(t1, ip(ab))?, since(t2, ip(ab))?];
    // The edit must land in a later second than the sessions came up, or
    // an untouched and a re-established session would look the same.
    lab.wait_for("a second passes", T, || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        ensure!(now > tb_before[0].max(tb_before[1]), "same second");
        Ok(())
    })?;

    // Edit BGPPeer tor-b: a keepalive time of 10 s (hold 30 s).
    etcd.put(
        &calico_etcd_key("BGPPeer", "tor-b")?,
        &bgp_peer_yaml("tor-b", ip(ab), 65002, None, "  keepaliveTime: 10s\n"),
    )?;
    lab.wait_for(
        "tor-b's sessions re-established with hold time 30",
        T,
        || {
            for (i, ti) in [t1, t2].into_iter().enumerate() {
                let p = peer(ti, ip(ab))?;
                ensure!(p["state"].as_str() == Some("Established"), "{p}");
                ensure!(
                    since(ti, ip(ab))? > tb_before[i],
                    "{} not re-established yet",
                    ti.label
                );
                ensure!(
                    p["negotiated_hold_time_seconds"].as_u64() == Some(30),
                    "{p}"
                );
            }
            Ok(())
        },
    )?;
    for ((t, a), b) in keep.iter().zip(&before) {
        let p = peer(t, *a)?;
        ensure!(
            p["state"].as_str() == Some("Established"),
            "{}: {p}",
            t.label
        );
        ensure!(
            since(t, *a)? == *b,
            "{}: session with {a} was touched: {p}",
            t.label
        );
    }
    kernel_has(
        &lab,
        &n1,
        &[
            (net("100.64.2.0/26"), Want::Via(ip(a2))),
            (net("198.19.1.0/24"), Want::Via(ip(aa))),
        ],
    )?;
    lab.wait_kernel_route(&n1, Some(TABBY_PROTO), net("198.19.2.0/24"), T)?;
    eprintln!(
        "scenario 9: converged from etcd after {t_converged:?}, passed in {:?}",
        started.elapsed()
    );
    Ok(())
}
