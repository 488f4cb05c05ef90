//! Scenario 8b (issue 7, scenario 8; issue 5): an IPAM drives blocks with
//! `tabbyctl replace` (ReplaceRoutes) against running tabbyds. Its set on
//! node-1 moves one block to node-2 by two replaces, and every kernel
//! follows; `replace --none` withdraws a node's whole set; routes of other
//! owners are never touched.

mod fixtures;

use anyhow::{Result, ensure};
use fixtures::*;
use interop_tests::*;

#[test]
fn tabbyctl_replace_moves_blocks_and_every_kernel_follows() -> Result<()> {
    need(&[]);
    let mut lab = Lab::new("scen8b")?;
    let mesh = NodeMesh::new(&mut lab, 3)?;
    let ns = &mesh.ns;
    let file = lab.write_file("cluster.yaml", &mesh.cluster(false).render())?;
    let t = mesh.start_tabbyds(&mut lab, &file, |o| o.deferral_time = Some(5))?;
    lab.wait_for("mesh Established", T, || mesh.established(&t))?;

    let (b9, b10, other) = (
        net("100.64.9.0/26"),
        net("100.64.10.0/26"),
        net("100.64.20.0/26"),
    );
    let replace = |node: usize, blocks: &[&str]| -> Result<serde_json::Value> {
        let mut a = vec!["replace", "--owner", "ipam", "--kind", "pod-block"];
        if blocks.is_empty() {
            a.push("--none");
        }
        a.extend_from_slice(blocks);
        ctl_json(&t[node], &a)
    };
    // Where a block must be in every kernel: a blackhole at its owner, via
    // the owner's address elsewhere.
    let follow = |block: ipnet::IpNet, owner: usize| mesh.wait_block_at(&lab, block, owner);
    let gone = |block: ipnet::IpNet| -> Result<()> {
        for n in ns {
            lab.wait_no_kernel_route(n, Some(TABBY_PROTO), block, T)?;
        }
        Ok(())
    };

    // Another owner on node-1, which no replace may touch.
    ctl(
        &t[0],
        &[
            "announce",
            &other.to_string(),
            "--owner",
            "lb",
            "--kind",
            "pod-block",
        ],
    )?;
    let r = replace(0, &["100.64.9.0/26", "100.64.10.0/26"])?;
    ensure!(r["added"].as_u64() == Some(2), "first replace: {r}");
    follow(b9, 0)?;
    follow(b10, 0)?;

    // The move: node-1's set loses 100.64.9.0/26, node-2's gains it.
    let r = replace(0, &["100.64.10.0/26"])?;
    ensure!(
        r["removed"].as_u64() == Some(1) && r["unchanged"].as_u64() == Some(1),
        "node-1's replace: {r}"
    );
    let r = replace(1, &["100.64.9.0/26"])?;
    ensure!(r["added"].as_u64() == Some(1), "node-2's replace: {r}");
    follow(b9, 1)?;
    follow(b10, 0)?;
    let k = lab.kernel_routes_proto(&ns[2], TABBY_PROTO)?;
    ensure!(
        k.iter().filter(|r| r.dst == b9).count() == 1,
        "node-3 holds one route for {b9}: {k:?}"
    );

    // Idempotent: the same set again changes nothing.
    let r = replace(1, &["100.64.9.0/26"])?;
    ensure!(
        r["added"].as_u64() == Some(0)
            && r["removed"].as_u64() == Some(0)
            && r["unchanged"].as_u64() == Some(1),
        "repeated replace: {r}"
    );

    // --none: node-2's IPAM set is emptied; nothing else moves.
    let r = replace(1, &[])?;
    ensure!(r["removed"].as_u64() == Some(1), "replace --none: {r}");
    gone(b9)?;
    follow(b10, 0)?;
    follow(other, 0)?;
    Ok(())
}
