//! Scenario 15: workload peering (BGPPeer `localWorkloadSelector`, Calico 3.31+). A
//! "workload" namespace runs BIRD 2 (a virtual router in a pod) and connects to its
//! node's tabbyd; tabbyd waits (passive), as confd renders these sessions. Which workload
//! peers is Felix's choice: the test writes Felix's endpoint status file the way Felix
//! would. The workload's routes that the BGPFilter lets in reach the node's kernel;
//! removing the file closes the session and withdraws them.

mod fixtures;

use std::net::IpAddr;
use std::time::Instant;

use anyhow::{Result, ensure};
use fixtures::*;
use interop_tests::*;

const WORKLOAD_AS: u32 = 65010;

#[test]
fn a_workload_peers_with_its_node_while_felix_says_so() -> Result<()> {
    need(&[Need::Root, Need::Bird2]);
    let started = Instant::now();
    let mut lab = Lab::new("scen14")?;
    let node = lab.ns("node-1")?;
    let vr = lab.ns("vr-1")?;
    let seg = lab.link(&node, &vr)?;
    let (an, aw) = (seg.v4(&node)?, seg.v4(&vr)?);
    let (node_ip, vr_ip) = (IpAddr::V4(an), IpAddr::V4(aw));

    // The workload announces one prefix the filter accepts and one it rejects.
    let (allowed, refused) = (net("100.65.1.0/24"), net("100.66.1.0/24"));
    let c = Cluster::new()
        .pool("100.64.0.0/16", "Never")
        .block("node-1", "100.64.1.0/26")
        .node(NodeSpec::v4("node-1", an))
        .doc(
            "apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: workload-routes}
spec:
  importV4: [{action: Accept, matchOperator: In, cidr: 100.65.0.0/16}, {action: Reject}]",
        )
        .doc(&format!(
            "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: virtual-routers}}
spec: {{localWorkloadSelector: \"role == 'virtual-router'\", asNumber: {WORKLOAD_AS}, filters: [workload-routes]}}"
        ));
    let file = lab.write_file("cluster.yaml", &c.render())?;

    // Felix's endpoint status directory, empty until the workload is selected.
    let prefix = lab.path("calico");
    let status_dir = prefix.join("endpoint-status");
    std::fs::create_dir_all(&status_dir)?;
    let status_file = status_dir.join("k8s routers%2Fvr-1 eth0");

    let mut o = TabbydOpts::new("node-1", Datastore::File(file));
    o.deferral_time = Some(5);
    o.extra_args = vec![
        "--endpoint-status-path-prefix".into(),
        prefix.display().to_string(),
    ];
    let t = lab.start_tabbyd(&node, "node-1", &o)?;

    let mut p = Bird2Peer::ebgp("node", WORKLOAD_AS, node_ip, CLUSTER_AS);
    p.local_addr = Some(vr_ip);
    let bird_conf = Bird2Conf::new(aw)
        .blackhole(allowed)
        .blackhole(refused)
        .peer(p);
    let bird = lab.start_bird2(&vr, "vr-1", &bird_conf.render())?;

    // Not selected yet: tabbyd has no session, so the workload cannot establish.
    lab.wait_for("tabbyd running with no workload peer", T, || {
        let ps = peers(&t)?;
        ensure!(
            ps.iter()
                .all(|p| p["address"].as_str() != Some(vr_ip.to_string().as_str())),
            "unexpected workload peer: {ps:?}"
        );
        Ok(())
    })?;
    ensure!(
        bird.established("node").is_err(),
        "the workload must not establish before Felix selects it"
    );

    // Felix selects the workload (its format: compact JSON, omitempty fields left out).
    std::fs::write(
        &status_file,
        format!(
            r#"{{"ifaceName":"cali1a2b3c4d5e6","mac":"ee:ee:ee:ee:ee:ee","ipv4Nets":["{aw}/32"],"bgpPeerName":"virtual-routers"}}"#
        ),
    )?;
    lab.wait_for("workload session Established", T, || {
        bird.established("node")?;
        established(&t, &[vr_ip])
    })?;
    let wp = peer(&t, vr_ip)?;
    ensure!(
        wp["settings"]["passive"].as_bool() == Some(true),
        "tabbyd waits for the workload: {wp}"
    );
    ensure!(
        wp["remote_as"].as_u64() == Some(u64::from(WORKLOAD_AS)),
        "the BGPPeer's asNumber: {wp}"
    );
    ensure!(
        wp["type"].as_str() == Some("workload"),
        "shown as a workload peering: {wp}"
    );

    // The accepted prefix reaches the node's kernel via the workload; the other does not.
    wait_kernel(&lab, &node, &[(allowed, Want::Via(vr_ip))])?;
    let k = lab.kernel_routes(&node)?;
    ensure!(
        !k.iter().any(|r| r.dst == refused),
        "{refused} is rejected by the BGPFilter, yet in the kernel: {k:?}"
    );
    // And the workload learns the node's block (the export policy of every peer).
    lab.wait_for("the node's block at the workload", T, || {
        let rs = bird.routes_for(net("100.64.1.0/26"))?;
        ensure!(!rs.is_empty(), "not yet");
        Ok(())
    })?;

    // Felix removes the file (the workload went away or is no longer selected).
    std::fs::remove_file(&status_file)?;
    lab.wait_for("workload session closed", T, || {
        let ps = peers(&t)?;
        ensure!(
            ps.iter()
                .all(|p| p["address"].as_str() != Some(vr_ip.to_string().as_str())),
            "tabbyd still has the workload peer: {ps:?}"
        );
        ensure!(bird.established("node").is_err(), "BIRD still Established");
        Ok(())
    })?;
    lab.wait_for("workload routes withdrawn", T, || {
        let k = lab.kernel_routes(&node)?;
        ensure!(
            !k.iter().any(|r| r.dst == allowed),
            "{allowed} still in the kernel"
        );
        Ok(())
    })?;
    eprintln!("Scenario 15: done after {:?}", started.elapsed());
    Ok(())
}
