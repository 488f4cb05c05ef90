//! Scenario 1 (issue 7): a Calico node-to-node mesh of two Tabby nodes and
//! one BIRD 1.6 node configured the way Calico's confd templates configure
//! it. Every node's block reaches every kernel; the IP-in-IP pool's routes go
//! onlink through the configured tunnel device on the Tabby nodes.

mod fixtures;

use std::net::IpAddr;
use std::time::Instant;

use anyhow::Result;
use fixtures::*;
use interop_tests::*;

/// The IP-in-IP stand-in (the lab kernel has no `ipip` module).
const TUNNEL: &str = "tnl0";

#[test]
fn calico_mesh_two_tabby_one_bird1() -> Result<()> {
    need(&[Need::Bird1]);
    let started = Instant::now();
    let mut lab = Lab::new("scen1")?;
    let n1 = lab.ns("node-1")?;
    let n2 = lab.ns("node-2")?;
    let n3 = lab.ns("node-3")?;
    let seg = lab.lan(&[&n1, &n2, &n3])?;
    let (a1, a2, a3) = (seg.v4(&n1)?, seg.v4(&n2)?, seg.v4(&n3)?);
    for ns in [&n1, &n2] {
        lab.stub_iface(ns, TUNNEL)?;
    }

    let (b1, b2, b3) = (
        net("100.64.1.0/26"),
        net("100.64.2.0/26"),
        net("100.64.3.0/26"),
    );
    let cluster = Cluster::new()
        .node(NodeSpec::v4("node-1", a1))
        .node(NodeSpec::v4("node-2", a2))
        .node(NodeSpec::v4("node-3", a3))
        .pool("100.64.0.0/16", "Always")
        .block("node-1", "100.64.1.0/26")
        .block("node-2", "100.64.2.0/26")
        .block("node-3", "100.64.3.0/26");
    let file = lab.write_file("cluster.yaml", &cluster.render())?;

    // BIRD 1.6 as Calico renders node-3's bird.cfg.
    let mut calico = CalicoBird1Conf::new(a3, CLUSTER_AS);
    calico.blocks.push(b3);
    calico.pools.push(CalicoPool {
        cidr: net("100.64.0.0/16"),
        mode: PoolMode::Ipip,
        disable_bgp_export: false,
    });
    for a in [a1, a2, a3] {
        calico = calico.mesh_peer(a.into());
    }
    let bird = lab.start_bird1(&n3, "bird1", &calico.render())?;

    let mut tabby = vec![];
    for (ns, name) in [(&n1, "node-1"), (&n2, "node-2")] {
        let mut o = TabbydOpts::new(name, Datastore::File(file.clone()));
        o.tunnel_device = Some(TUNNEL.into());
        o.deferral_time = Some(5);
        tabby.push(lab.start_tabbyd(ns, name, &o)?);
    }
    let (t1, t2) = (&tabby[0], &tabby[1]);

    let (i1, i2, i3) = (IpAddr::V4(a1), IpAddr::V4(a2), IpAddr::V4(a3));
    lab.wait_for("the mesh Established everywhere", T, || {
        established(t1, &[i2, i3])?;
        established(t2, &[i1, i3])?;
        bird.established(&format!("Mesh_{}", a1.to_string().replace('.', "_")))?;
        bird.established(&format!("Mesh_{}", a2.to_string().replace('.', "_")))
    })?;
    let t_established = started.elapsed();

    // Tabby nodes: own block blackholed, the others onlink via the tunnel.
    wait_kernel(
        &lab,
        &n1,
        &[
            (b1, Want::Blackhole),
            (b2, Want::Onlink(i2, TUNNEL)),
            (b3, Want::Onlink(i3, TUNNEL)),
        ],
    )?;
    wait_kernel(
        &lab,
        &n2,
        &[
            (b2, Want::Blackhole),
            (b1, Want::Onlink(i1, TUNNEL)),
            (b3, Want::Onlink(i3, TUNNEL)),
        ],
    )?;
    // Upstream BIRD 1.6 has no krt_tunnel: plain routes via the nodes.
    wait_kernel(
        &lab,
        &n3,
        &[
            (b3, Want::Blackhole),
            (b1, Want::Via(i1)),
            (b2, Want::Via(i2)),
        ],
    )?;
    // The Tabby routes carry Tabby's protocol number.
    for ns in [&n1, &n2] {
        let ours = lab.kernel_routes_proto(ns, TABBY_PROTO)?;
        for p in [b1, b2, b3] {
            assert!(
                ours.iter().any(|r| r.dst == p),
                "{ns}: {p} not of protocol {TABBY_PROTO}: {ours:?}"
            );
        }
    }
    // BIRD sees each Tabby block once, from its owner, with an empty AS path (iBGP).
    for (p, from) in [(b1, i1), (b2, i2)] {
        let rs = bird.routes_for(p)?;
        assert!(
            rs.iter()
                .any(|r| r.bgp_next_hop().contains(&from) && r.as_path().is_empty()),
            "BIRD's view of {p}: {rs:?}"
        );
    }
    eprintln!(
        "scenario 1: established after {t_established:?}, all kernels converged after {:?}",
        started.elapsed()
    );
    Ok(())
}
