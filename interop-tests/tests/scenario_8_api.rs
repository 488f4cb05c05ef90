//! Scenario 8 (issue 7): the management APIs against running tabbyds. The
//! real `gobgp` CLI (GoBGP v3 API) and `tabbyctl` see the mesh; an IPAM moves
//! a block from one node to another through the API (the old owner's set
//! replaced by nothing, the new owner's by the block) and every kernel
//! follows; a route added with `gobgp global rib add` reaches the others.

mod fixtures;

use std::time::Instant;

use anyhow::{Result, ensure};
use fixtures::*;
use interop_tests::*;

const GOBGP_PORT: u16 = 50071;

#[test]
fn api_gobgp_cli_tabbyctl_and_block_move() -> Result<()> {
    need(&[Need::GoBgp]);
    let started = Instant::now();
    let mut lab = Lab::new("scen8")?;
    let mesh = NodeMesh::new(&mut lab, 3)?;
    let (ns, addrs) = (&mesh.ns, &mesh.addrs);
    let file = lab.write_file("cluster.yaml", &mesh.cluster(true).render())?;
    let t = mesh.start_tabbyds(&mut lab, &file, |o| {
        o.deferral_time = Some(5);
        o.gobgp_api = Some(format!("127.0.0.1:{GOBGP_PORT}"));
    })?;
    lab.wait_for("mesh Established", T, || mesh.established(&t))?;

    // --- the real gobgp CLI, inside node-1's namespace.
    let g = GoBgp {
        label: "node-1 (gobgp API)".into(),
        ns: ns[0].clone(),
        conf: lab.path("none"),
        port: GOBGP_PORT,
    };
    lab.wait_for("gobgp neighbor: both peers established", T, || {
        g.established(addrs[1])?;
        g.established(addrs[2])
    })?;
    let text = g.cli(&["neighbor"])?;
    for a in &addrs[1..] {
        ensure!(text.contains(&a.to_string()), "gobgp neighbor: {text}");
    }
    lab.wait_for("gobgp global rib: every block", T, || {
        let rib = g.rib("ipv4")?;
        for i in 1..=3 {
            let p = net(&format!("100.64.{i}.0/26"));
            ensure!(rib.iter().any(|r| r.prefix == p && r.best), "{p}: {rib:?}");
        }
        Ok(())
    })?;
    let text = g.cli(&["global", "rib"])?;
    ensure!(text.contains("100.64.2.0/26"), "gobgp global rib: {text}");

    // --- tabbyctl.
    let st = ctl_json(&t[0], &["status"])?;
    ensure!(st["peers_established"].as_u64() == Some(2), "status: {st}");
    ensure!(
        st["local_as"].as_u64() == Some(u64::from(CLUSTER_AS)),
        "status: {st}"
    );
    let table = ctl(&t[0], &["status"])?;
    ensure!(table.contains("Established"), "tabbyctl status: {table}");

    // --- an IPAM assigns a block to node-1, then moves it to node-2.
    let moved = net("100.64.9.0/26");
    let m = moved.to_string();
    ctl(
        &t[0],
        &["announce", &m, "--owner", "ipam", "--kind", "pod-block"],
    )?;
    let follow = |owner: usize| mesh.wait_block_at(&lab, moved, owner);
    follow(0)?;
    let t_move = Instant::now();
    // The move: node-1's IPAM set becomes empty, node-2's holds the block.
    ctl(&t[0], &["withdraw", &m, "--owner", "ipam"])?;
    ctl(
        &t[1],
        &["announce", &m, "--owner", "ipam", "--kind", "pod-block"],
    )?;
    follow(1)?;
    let move_time = t_move.elapsed();
    let p = best_path(&t[2], moved)?;
    ensure!(
        p["next_hop"].as_str() == Some(addrs[1].to_string().as_str()),
        "node-3's best path: {p}"
    );

    // --- gobgp global rib add on node-3 reaches node-1's kernel.
    let g3 = GoBgp {
        label: "node-3 (gobgp API)".into(),
        ns: ns[2].clone(),
        conf: lab.path("none"),
        port: GOBGP_PORT,
    };
    // Inside the pool: Calico exports nothing else to the mesh.
    let svc = net("100.64.50.0/26");
    g3.cli(&["global", "rib", "add", &svc.to_string(), "-a", "ipv4"])?;
    let r = lab.wait_kernel_route(&ns[0], Some(TABBY_PROTO), svc, T)?;
    ensure!(r.gateway() == Some(addrs[2]), "{svc} at node-1: {r:?}");
    g3.cli(&["global", "rib", "del", &svc.to_string(), "-a", "ipv4"])?;
    lab.wait_no_kernel_route(&ns[0], Some(TABBY_PROTO), svc, T)?;
    eprintln!(
        "scenario 8: passed in {:?}; block move reached every kernel in {move_time:?}",
        started.elapsed()
    );
    Ok(())
}
