//! Scenario 2 (issue 7): node restart under graceful restart (RFC 4724).
//! Three Tabby nodes in a mesh reach steady state; one is killed with
//! SIGKILL. The other kernels lose no route while it is down (its peers keep
//! its routes as stale); restarted, it converges without deleting a single
//! route from its own kernel (its FIB waits for End-of-RIB), and ends with
//! exactly the routes it had. Then two more crashes inside the peers'
//! restart time (RFC 4724 §4.2), the second right after the session came
//! back: still no route deleted anywhere.

mod fixtures;

use std::time::Instant;

use anyhow::{Result, ensure};
use fixtures::*;
use interop_tests::*;
use ipnet::IpNet;

#[test]
fn node_restart_keeps_every_route() -> Result<()> {
    need(&[]);
    let started = Instant::now();
    let mut lab = Lab::new("scen2")?;
    let mesh = NodeMesh::new(&mut lab, 3)?;
    let (ns, addrs) = (&mesh.ns, &mesh.addrs);
    let blocks: Vec<IpNet> = (1..=3).map(|i| net(&format!("100.64.{i}.0/26"))).collect();
    let file = lab.write_file("cluster.yaml", &mesh.cluster(true).render())?;
    // Long enough that only End-of-RIB, not the timer, ends the deferral.
    let t = mesh.start_tabbyds(&mut lab, &file, |o| o.deferral_time = Some(60))?;
    let steady = |lab: &Lab| -> Result<()> {
        for (i, n) in ns.iter().enumerate() {
            let want: Vec<(IpNet, Want)> = blocks
                .iter()
                .enumerate()
                .map(|(j, b)| {
                    (
                        *b,
                        if i == j {
                            Want::Blackhole
                        } else {
                            Want::Via(addrs[j])
                        },
                    )
                })
                .collect();
            kernel_has(lab, n, &want)?;
        }
        Ok(())
    };
    lab.wait_for(
        "steady state: mesh up, every block in every kernel",
        T,
        || {
            mesh.established(&t)?;
            steady(&lab)
        },
    )?;
    let before: Vec<Vec<KernelRoute>> = ns
        .iter()
        .map(|n| lab.kernel_routes_proto(n, TABBY_PROTO))
        .collect::<Result<_>>()?;

    // Watch every kernel from before the crash until after recovery.
    for (i, n) in ns.iter().enumerate() {
        let probe = net(&format!("198.19.{}.0/24", 200 + i));
        start_route_monitor(&mut lab, n, &format!("monitor-{}", i + 1), probe)?;
    }

    lab.kill9("node-2")?;
    let t_kill = Instant::now();
    // The peers notice (the kernel closes the dead process's sockets) and
    // keep node-2's routes as stale.
    lab.wait_for("node-2 down at its peers", T, || {
        for i in [0, 2] {
            let p = peer(&t[i], addrs[1])?;
            ensure!(p["state"].as_str() != Some("Established"), "{p}");
        }
        Ok(())
    })?;
    steady(&lab)?;
    for i in [0, 2] {
        let p = best_path(&t[i], blocks[1])?;
        ensure!(
            p["stale"].as_bool() == Some(true),
            "node-{} holds {p}",
            i + 1
        );
    }

    lab.restart("node-2")?;
    let t_restart = Instant::now();
    let recovered = |lab: &Lab| -> Result<()> {
        established(&t[1], &mesh.others(1))?;
        for i in [0, 2] {
            established(&t[i], &[addrs[1]])?;
            let p = best_path(&t[i], blocks[1])?;
            ensure!(p["stale"].as_bool() != Some(true), "still stale: {p}");
        }
        let st = ctl_json(&t[1], &["status"])?;
        ensure!(
            st["fib"]["state"].as_str() == Some("in sync"),
            "node-2 FIB: {}",
            st["fib"]
        );
        steady(lab)
    };
    lab.wait_for("node-2 back: sessions up, routes fresh", T, || {
        recovered(&lab)
    })?;
    let converged = t_restart.elapsed();

    let key = |v: &[KernelRoute]| {
        let mut k: Vec<String> = v.iter().map(|r| format!("{r:?}")).collect();
        k.sort();
        k
    };
    let unchanged = |lab: &Lab, round: usize| -> Result<()> {
        // Everything the kernels did until now is in the monitors' logs.
        for (i, n) in ns.iter().enumerate() {
            let probe = net(&format!("198.19.{}.0/24", 210 + 10 * round + i));
            monitor_sync(lab, n, &format!("monitor-{}", i + 1), probe)?;
        }
        for (i, n) in ns.iter().enumerate() {
            let d = monitor_deletions(lab, &format!("monitor-{}", i + 1), &blocks)?;
            ensure!(d.is_empty(), "{n} deleted routes (round {round}): {d:?}");
            let after = lab.kernel_routes_proto(n, TABBY_PROTO)?;
            ensure!(
                key(&before[i]) == key(&after),
                "{n}: routes differ after round {round}: {:?} vs {after:?}",
                before[i]
            );
        }
        Ok(())
    };
    unchanged(&lab, 1)?;

    // Two more crashes inside the peers' restart time (RFC 4724 §4.2): the
    // second as soon as the restarted node's session is up again, before it
    // can have finished. The peers keep its routes throughout.
    lab.kill9("node-2")?;
    lab.restart("node-2")?;
    lab.wait_for("node-2's new session up at node-1", T, || {
        established(&t[0], &[addrs[1]])
    })?;
    lab.kill9("node-2")?;
    steady(&lab)?;
    lab.restart("node-2")?;
    lab.wait_for("node-2 back after the double restart", T, || {
        recovered(&lab)
    })?;
    unchanged(&lab, 2)?;
    eprintln!(
        "scenario 2: passed in {:?}; node-2 down {:?}, converged {converged:?} after restart",
        started.elapsed(),
        t_restart.duration_since(t_kill)
    );
    Ok(())
}
