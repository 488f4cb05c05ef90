//! Scenario 4 (issue 7): two Tabby route reflectors (standalone, `--no-fib`,
//! one cluster id) with a BIRD 2, a GoBGP and a Tabby client, the Calico way:
//! no mesh, one `BGPPeer` from every node to the nodes labelled
//! `route-reflector`. BIRD sees reflected routes with the right
//! ORIGINATOR_ID and CLUSTER_LIST (RFC 4456 §8); when one reflector is killed
//! no client loses a route, nor when it comes back.

mod fixtures;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use anyhow::{Result, anyhow, ensure};
use fixtures::*;
use interop_tests::*;

const CLUSTER_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);

#[test]
fn two_tabby_reflectors_bird_gobgp_tabby_clients() -> Result<()> {
    need(&[Need::Bird2, Need::GoBgp]);
    let started = Instant::now();
    let mut lab = Lab::new("scen4")?;
    let rr1 = lab.ns("rr-1")?;
    let rr2 = lab.ns("rr-2")?;
    let cb = lab.ns("c-bird")?;
    let cg = lab.ns("c-gobgp")?;
    let ct = lab.ns("c-tabby")?;
    let seg = lab.lan(&[&rr1, &rr2, &cb, &cg, &ct])?;
    let v4 = |n: &Ns| seg.v4(n);
    let (r1, r2, b, g, tc) = (v4(&rr1)?, v4(&rr2)?, v4(&cb)?, v4(&cg)?, v4(&ct)?);
    let ip = IpAddr::V4;
    let (pb, pg, pt) = (
        net("100.64.1.0/26"),
        net("100.64.2.0/26"),
        net("100.64.3.0/26"),
    );

    let mut c = Cluster::new().pool("100.64.0.0/16", "Never");
    c.mesh = false;
    for (name, a) in [("rr-1", r1), ("rr-2", r2)] {
        let mut n = NodeSpec::v4(name, a);
        n.rr_cluster_id = Some(CLUSTER_ID);
        n.labels.push(("route-reflector".into(), "true".into()));
        c = c.node(n);
    }
    let c = c
        .node(NodeSpec::v4("c-bird", b))
        .node(NodeSpec::v4("c-gobgp", g))
        .node(NodeSpec::v4("c-tabby", tc))
        .block("c-tabby", "100.64.3.0/26")
        .doc(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: to-reflectors\n\
             spec:\n  nodeSelector: all()\n  peerSelector: route-reflector == 'true'",
        );
    let file = lab.write_file("cluster.yaml", &c.render())?;

    let mut reflectors = vec![];
    for (n, name) in [(&rr1, "rr-1"), (&rr2, "rr-2")] {
        let o = TabbydOpts::new(name, Datastore::File(file.clone())).no_fib();
        reflectors.push(lab.start_tabbyd(n, name, &o)?);
    }
    let mut o = TabbydOpts::new("c-tabby", Datastore::File(file.clone()));
    o.deferral_time = Some(5);
    let tabby_client = lab.start_tabbyd(&ct, "c-tabby", &o)?;

    let mut bc = Bird2Conf::new(b).blackhole(pb);
    for (name, a) in [("refl1", r1), ("refl2", r2)] {
        let mut p = Bird2Peer::ibgp(name, CLUSTER_AS, ip(a));
        p.local_addr = Some(ip(b));
        bc = bc.peer(p);
    }
    let bird = lab.start_bird2(&cb, "bird", &bc.render())?;
    let mut gc = GoBgpConf::new(CLUSTER_AS, g);
    for a in [r1, r2] {
        let mut n = GoBgpNeighbor::new(ip(a), CLUSTER_AS);
        n.local_address = Some(ip(g));
        n.graceful_restart = true;
        gc = gc.neighbor(n);
    }
    let gobgp = lab.start_gobgp(&cg, "gobgp", &gc.render())?;

    lab.wait_for("every client Established with both reflectors", T, || {
        bird.established("refl1")?;
        bird.established("refl2")?;
        gobgp.established(ip(r1))?;
        gobgp.established(ip(r2))?;
        established(&tabby_client, &[ip(r1), ip(r2)])?;
        established(&reflectors[0], &[ip(r2), ip(b), ip(g), ip(tc)])?;
        established(&reflectors[1], &[ip(r1), ip(b), ip(g), ip(tc)])
    })?;
    gobgp.announce(pg, ip(g))?;

    // BIRD's view: GoBGP's and Tabby's blocks reflected by both, with the
    // originator's router id and our one cluster id.
    lab.wait_for("BIRD holds reflected routes with RR attributes", T, || {
        for (p, origin) in [(pg, g), (pt, tc)] {
            let rs = bird.routes_for(p)?;
            ensure!(
                rs.len() == 2,
                "{p}: want a path via each reflector, got {rs:?}"
            );
            for r in &rs {
                ensure!(r.originator_id() == Some(origin), "{p}: {r:?}");
                ensure!(r.cluster_list() == vec![CLUSTER_ID], "{p}: {r:?}");
                ensure!(r.bgp_next_hop().contains(&ip(origin)), "{p}: {r:?}");
            }
        }
        Ok(())
    })?;
    let everywhere = |lab: &Lab| -> Result<()> {
        let rib = gobgp.rib("ipv4")?;
        for p in [pb, pt] {
            ensure!(rib.iter().any(|r| r.prefix == p), "GoBGP lacks {p}");
        }
        kernel_has(
            lab,
            &ct,
            &[
                (pt, Want::Blackhole),
                (pb, Want::Via(ip(b))),
                (pg, Want::Via(ip(g))),
            ],
        )?;
        kernel_has(lab, &cb, &[(pg, Want::Via(ip(g))), (pt, Want::Via(ip(tc)))])
    };
    lab.wait_for("every client has every block", T, || everywhere(&lab))?;
    // Reflectors program nothing.
    for n in [&rr1, &rr2] {
        let k = lab.kernel_routes_proto(n, TABBY_PROTO)?;
        ensure!(k.is_empty(), "{n} runs --no-fib yet has {k:?}");
    }

    // Kill one reflector: the other carries every route, nothing is lost.
    for (n, l, probe) in [
        (&ct, "mon-tabby", "198.19.250.0/24"),
        (&cb, "mon-bird", "198.19.251.0/24"),
    ] {
        start_route_monitor(&mut lab, n, l, net(probe))?;
    }
    lab.kill9("rr-1")?;
    let t_kill = Instant::now();
    lab.wait_for("the clients notice rr-1 is gone", T, || {
        let p = bird.protocol("refl1")?;
        ensure!(!p.established(), "BIRD still has refl1 up");
        let n = gobgp.neighbors()?;
        let r = n
            .iter()
            .find(|p| p.address == ip(r1))
            .ok_or_else(|| anyhow!("no rr-1 at GoBGP"))?;
        ensure!(!r.established(), "GoBGP still has rr-1 up");
        Ok(())
    })?;
    // Past any flush a wrong client would do: check for a few seconds.
    let until = Instant::now() + std::time::Duration::from_secs(3);
    while Instant::now() < until {
        everywhere(&lab)?;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for (n, l, probe) in [
        (&ct, "mon-tabby", "198.19.252.0/24"),
        (&cb, "mon-bird", "198.19.253.0/24"),
    ] {
        monitor_sync(&lab, n, l, net(probe))?;
        let del = monitor_deletions(&lab, l, &[pb, pg, pt])?;
        assert!(
            del.is_empty(),
            "{l}: routes deleted after rr-1 died: {del:?}"
        );
    }
    // rr-1 returns (CONFORMANCE.md faults row 6): every client takes both
    // reflectors' paths again and no route goes away meanwhile.
    lab.restart("rr-1")?;
    lab.wait_for("rr-1 back with every client", T, || {
        bird.established("refl1")?;
        gobgp.established(ip(r1))?;
        established(&tabby_client, &[ip(r1)])?;
        for p in [pg, pt] {
            let rs = bird.routes_for(p)?;
            ensure!(rs.len() == 2, "{p}: {rs:?}");
        }
        everywhere(&lab)
    })?;
    for (n, l, probe) in [
        (&ct, "mon-tabby", "198.19.254.0/24"),
        (&cb, "mon-bird", "198.19.255.0/24"),
    ] {
        monitor_sync(&lab, n, l, net(probe))?;
        let del = monitor_deletions(&lab, l, &[pb, pg, pt])?;
        assert!(
            del.is_empty(),
            "{l}: routes deleted after rr-1 returned: {del:?}"
        );
    }
    eprintln!(
        "scenario 4: passed in {:?} ({:?} from the kill until rr-1 was back everywhere)",
        started.elapsed(),
        t_kill.elapsed()
    );
    Ok(())
}
