//! Scenario 3 (issue 7): top-of-rack eBGP. FRR is the ToR in its own AS; two
//! Tabby nodes each have their own AS (Node `spec.bgp.asNumber`), no mesh,
//! and peer with the ToR through one global `BGPPeer`. Routes flow both ways
//! with the AS paths and next hops eBGP prescribes.

mod fixtures;

use std::net::IpAddr;
use std::time::Instant;

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;

const TOR_AS: u32 = 65000;

#[test]
fn tor_ebgp_frr_with_two_tabby_nodes() -> Result<()> {
    need(&[Need::Frr]);
    let started = Instant::now();
    let mut lab = Lab::new("scen3")?;
    let tor = lab.ns("tor")?;
    let n1 = lab.ns("node-1")?;
    let n2 = lab.ns("node-2")?;
    let seg = lab.lan(&[&tor, &n1, &n2])?;
    let (at, a1, a2) = (seg.v4(&tor)?, seg.v4(&n1)?, seg.v4(&n2)?);
    let (it, i1, i2) = (IpAddr::V4(at), IpAddr::V4(a1), IpAddr::V4(a2));

    let (b1, b2, tor_net) = (
        net("100.64.1.0/26"),
        net("100.64.2.0/26"),
        net("198.19.0.0/24"),
    );
    let mut c = Cluster::new()
        .pool("100.64.0.0/16", "Never")
        .block("node-1", "100.64.1.0/26")
        .block("node-2", "100.64.2.0/26")
        .peer("tor", it, TOR_AS, None);
    c.mesh = false;
    let mut s1 = NodeSpec::v4("node-1", a1);
    s1.asn = Some(65001);
    let mut s2 = NodeSpec::v4("node-2", a2);
    s2.asn = Some(65002);
    let c = c.node(s1).node(s2);
    let file = lab.write_file("cluster.yaml", &c.render())?;

    let frr_conf = FrrConf::new("tor", TOR_AS, at)
        .network(tor_net)
        .neighbor(FrrNeighbor::new(i1, 65001))
        .neighbor(FrrNeighbor::new(i2, 65002));
    let frr = lab.start_frr(&tor, "tor", &frr_conf.render())?;

    let mut tabby = vec![];
    for (ns, name) in [(&n1, "node-1"), (&n2, "node-2")] {
        let mut o = TabbydOpts::new(name, Datastore::File(file.clone()));
        o.deferral_time = Some(5);
        o.metrics = Some(format!("127.0.0.1:{METRICS_PORT}"));
        tabby.push(lab.start_tabbyd(ns, name, &o)?);
    }
    let (t1, t2) = (&tabby[0], &tabby[1]);

    lab.wait_for("ToR sessions Established", T, || {
        frr.established(i1)?;
        frr.established(i2)?;
        established(t1, &[it])?;
        established(t2, &[it])
    })?;
    // Each node's only peer is the ToR.
    ensure!(
        peers(t1)?.len() == 1 && peers(t2)?.len() == 1,
        "mesh is off"
    );

    // ToR's view: each block once, from its node, AS path = the node's AS.
    lab.wait_for("blocks best at the ToR", T, || {
        let rs = frr.routes("ipv4")?;
        for (p, from, asn) in [(b1, i1, 65001), (b2, i2, 65002)] {
            let best = rs
                .iter()
                .find(|r| r.prefix == p && r.best)
                .ok_or_else(|| anyhow!("{p} not best at the ToR yet: {rs:?}"))?;
            ensure!(best.as_path == vec![asn], "{p}: AS path {:?}", best.as_path);
            ensure!(
                best.next_hops.contains(&from),
                "{p}: next hops {:?}",
                best.next_hops
            );
        }
        Ok(())
    })?;

    // Nodes' kernels: own block blackholed; the ToR's prefix via the ToR; the
    // other node's block via the ToR or (third-party next hop, RFC 4271
    // §5.1.3) straight via the other node on the shared segment.
    for (ns, t, own, other, other_node, other_as) in [
        (&n1, t1, b1, b2, i2, 65002u64),
        (&n2, t2, b2, b1, i1, 65001u64),
    ] {
        lab.wait_for(&format!("routes in {ns}"), T, || {
            kernel_has(
                &lab,
                ns,
                &[(own, Want::Blackhole), (tor_net, Want::Via(it))],
            )?;
            let k = lab.kernel_routes_proto(ns, TABBY_PROTO)?;
            let r = k
                .iter()
                .find(|r| r.dst == other)
                .ok_or_else(|| anyhow!("{other} not in {ns}'s kernel yet"))?;
            let gw = r.gateway();
            ensure!(
                gw == Some(it) || gw == Some(other_node),
                "{other} in {ns}: {r:?}"
            );
            Ok(())
        })?;
        let p = best_path(t, other)?;
        assert_eq!(as_path(&p), vec![u64::from(TOR_AS), other_as], "{p}");
        let p = best_path(t, tor_net)?;
        assert_eq!(as_path(&p), vec![u64::from(TOR_AS)], "{p}");
        assert_eq!(p["next_hop"].as_str(), Some(at.to_string().as_str()), "{p}");
    }
    // Prometheus, as an operator scrapes it: one Established session, the
    // ToR's prefix and the other node's block received, our block sent.
    let text = lab.in_ns(&n1, || scrape_metrics(METRICS_PORT))??;
    for want in [
        "tabby_bgp_sessions{state=\"Established\"} 1".to_string(),
        format!("tabby_bgp_prefixes_received{{peer=\"{it}\",family=\"ipv4-unicast\"}} 2"),
        format!("tabby_bgp_prefixes_advertised{{peer=\"{it}\",family=\"ipv4-unicast\"}} 1"),
    ] {
        ensure!(
            text.lines().any(|l| l == want),
            "/metrics lacks `{want}`:\n{text}"
        );
    }
    ensure!(
        text.lines()
            .any(|l| l.starts_with(&format!("tabby_bgp_updates_sent_total{{peer=\"{it}\"}}"))),
        "/metrics lacks the UPDATEs sent to the ToR:\n{text}"
    );
    eprintln!("scenario 3: converged after {:?}", started.elapsed());
    Ok(())
}

const METRICS_PORT: u16 = 9464;
