//! Scenario 17 (issue 16 point 6): Calico 3.32 route priority on real
//! sessions and kernels.
//!
//! Two dual-stack Tabby nodes (AS 64512, mesh) and a BIRD 2 router that is an
//! iBGP peer of node-1 (a node-specific BGPPeer in the cluster's AS), on one
//! LAN. `ipv6NormalRoutePriority: 2048`; IPv4 keeps Calico's 1024.
//!
//! 1. Each node's blocks reach the other's kernel at that family's normal
//!    priority (1024 for IPv4, 2048 for IPv6: the LOCAL_PREF the origin sent,
//!    2147483647 − priority, read back), and BIRD sees node-1's block with
//!    LOCAL_PREF 2147482623.
//! 2. node-1's IPAM announces a host route in its own block at the normal
//!    priority: aggregated (neither BIRD nor node-2 learns it). At priority
//!    512 it leaves the aggregation: BIRD learns it with LOCAL_PREF
//!    2147483135 and node-2 programs it at metric 512.
//! 3. Live migration: node-1 still originates 100.64.1.7/32 (normal
//!    priority) when node-2 announces it at 512. node-1's kernel then sends
//!    the address to node-2, at metric 512; when node-2 withdraws it, the
//!    route leaves node-1's kernel again.
//!
//! Needs root and BIRD 2.

mod fixtures;

use std::net::IpAddr;

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;

/// BIRD's LOCAL_PREF for `prefix` from node-1, if it has the route.
fn bird_local_pref(bird: &Bird, prefix: ipnet::IpNet) -> Result<Option<u32>> {
    Ok(bird
        .routes_for(prefix)?
        .into_iter()
        .find(|r| r.protocol == "node1")
        .and_then(|r| r.local_pref()))
}

#[test]
fn calico_route_priority_reaches_kernels_and_peers() -> Result<()> {
    need(&[Need::Bird2]);
    let mut lab = Lab::new("scen17")?;
    let rtr = lab.ns("router")?;
    let n1 = lab.ns("node-1")?;
    let n2 = lab.ns("node-2")?;
    let seg = lab.lan(&[&rtr, &n1, &n2])?;
    let (ar, a1, a2) = (seg.v4(&rtr)?, seg.v4(&n1)?, seg.v4(&n2)?);
    let (ir, i1, i2) = (IpAddr::V4(ar), IpAddr::V4(a1), IpAddr::V4(a2));
    let (b1, b2) = (net("100.64.1.0/26"), net("100.64.2.0/26"));
    let (b1v6, b2v6) = (net("2001:db8:1000:1::/122"), net("2001:db8:1000:2::/122"));
    let (elevated, migrated) = (net("100.64.1.9/32"), net("100.64.1.7/32"));

    let mut s1 = NodeSpec::v4("node-1", a1);
    s1.v6 = Some(seg.v6(&n1)?);
    let mut s2 = NodeSpec::v4("node-2", a2);
    s2.v6 = Some(seg.v6(&n2)?);
    let mut c = Cluster::new()
        .node(s1)
        .node(s2)
        .pool("100.64.0.0/16", "Never")
        .pool("2001:db8:1000::/48", "Never")
        .block("node-1", "100.64.1.0/26")
        .block("node-1", "2001:db8:1000:1::/122")
        .block("node-2", "100.64.2.0/26")
        .block("node-2", "2001:db8:1000:2::/122")
        .peer("router", ir, CLUSTER_AS, Some("node-1"));
    c.default_spec = vec!["ipv6NormalRoutePriority: 2048".into()];
    let file = lab.write_file("cluster.yaml", &c.render())?;

    let conf = Bird2Conf::new(ar).peer(Bird2Peer::ibgp("node1", CLUSTER_AS, i1));
    let bird = lab.start_bird2(&rtr, "router", &conf.render())?;
    let mut tabby = vec![];
    for (ns, name) in [(&n1, "node-1"), (&n2, "node-2")] {
        let mut o = TabbydOpts::new(name, Datastore::File(file.clone()));
        o.deferral_time = Some(2);
        tabby.push(lab.start_tabbyd(ns, name, &o)?);
    }
    let (t1, t2) = (&tabby[0], &tabby[1]);

    // 1. Blocks at each family's normal priority.
    lab.wait_for("sessions Established", T, || {
        bird.established("node1")?;
        established(t1, &[ir, i2])?;
        established(t2, &[i1])
    })?;
    lab.wait_for("blocks at the normal priorities", T, || {
        for (ns, prefix, metric) in [
            (&n2, b1, 1024),
            (&n1, b2, 1024),
            (&n2, b1v6, 2048),
            (&n1, b2v6, 2048),
        ] {
            let m = metrics_of(&lab, ns, prefix)?;
            ensure!(m == [Some(metric)], "{prefix} at {m:?}, not {metric}");
        }
        let lp = bird_local_pref(&bird, b1)?;
        ensure!(
            lp == Some(2_147_482_623),
            "BIRD's LOCAL_PREF for node-1's block: {lp:?}"
        );
        Ok(())
    })?;

    // 2. A host route in node-1's own block: aggregated at the normal
    //    priority, exported at 512.
    let host = |t: &Tabbyd, prefix: ipnet::IpNet, priority: Option<&str>| {
        let p = prefix.to_string();
        let mut args = vec!["announce", &p, "--owner", "ipam", "--kind", "host"];
        if let Some(pr) = priority {
            args.extend(["--priority", pr]);
        }
        ctl(t, &args)
    };
    host(t1, elevated, None)?;
    host(t1, migrated, None)?;
    best_path(t1, elevated)?;
    // Aggregated: give a change the time to travel, then check it did not.
    std::thread::sleep(std::time::Duration::from_secs(2));
    ensure!(
        bird.routes_for(elevated)?.is_empty(),
        "BIRD learned a host route inside node-1's block at the normal priority"
    );
    ensure!(
        rib_paths(t2, elevated)?.is_empty(),
        "node-2 learned a host route inside node-1's block at the normal priority"
    );
    host(t1, elevated, Some("512"))?;
    lab.wait_for("the elevated host route leaves the aggregation", T, || {
        let lp = bird_local_pref(&bird, elevated)?;
        ensure!(lp == Some(2_147_483_135), "BIRD's LOCAL_PREF: {lp:?}");
        kernel_has(&lab, &n2, &[(elevated, Want::Via(i1))])?;
        let m = metrics_of(&lab, &n2, elevated)?;
        ensure!(m == [Some(512)], "node-2's kernel: {m:?}");
        Ok(())
    })?;

    // 3. Live migration: node-2 announces node-1's address above the normal
    //    priority; node-1's kernel follows it although node-1 still
    //    originates the address.
    ensure!(
        metrics_of(&lab, &n1, migrated)?.is_empty(),
        "node-1 programs its own host route"
    );
    host(t2, migrated, Some("512"))?;
    lab.wait_for("node-1 sends the migrated address to node-2", T, || {
        kernel_has(&lab, &n1, &[(migrated, Want::Via(i2))])?;
        let m = metrics_of(&lab, &n1, migrated)?;
        ensure!(m == [Some(512)], "node-1's kernel: {m:?}");
        let best = best_path(t1, migrated)?;
        ensure!(
            best["next_hop"].as_str() == Some(a2.to_string().as_str()),
            "node-1's best path for the migrated address: {best}"
        );
        Ok(())
    })?;
    ctl(t2, &["withdraw", &migrated.to_string(), "--owner", "ipam"])?;
    lab.wait_for("the address is node-1's own again", T, || {
        ensure!(
            metrics_of(&lab, &n1, migrated)?.is_empty(),
            "node-1 still routes the address to node-2"
        );
        let best = best_path(t1, migrated)?;
        ensure!(
            best["source"].to_string().contains("ipam"),
            "node-1's best path: {best}"
        );
        Ok(())
    })
    .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
