//! Calico 3.31/3.32 BGPConfiguration fields as the daemon applies them.

use super::*;

fn with_default_spec(extra: &str) -> String {
    CLUSTER.replace(
        "spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}",
        &format!("spec: {{asNumber: 64512, nodeToNodeMeshEnabled: true{extra}}}"),
    )
}

fn learned_remote_block(h: &mut Harness) {
    h.establish("198.18.0.12", 64512, Ipv4Addr::new(198, 18, 0, 12));
    h.announce(
        "198.18.0.12",
        &[],
        &["100.64.0.64/26"],
        Ipv4Addr::new(198, 18, 0, 12),
    );
}

#[test]
fn program_cluster_routes_disabled_leaves_remote_blocks_to_felix() {
    let remote: IpNet = "100.64.0.64/26".parse().unwrap();
    let mut h = harness(0);
    h.load(&with_default_spec(", programClusterRoutes: Disabled"));
    learned_remote_block(&mut h);
    let ops = h.fib_ops();
    assert!(
        !ops.iter()
            .any(|op| matches!(op, FibOp::Set(r) if r.prefix == remote)),
        "{ops:?}"
    );
    // Learned all the same.
    assert!(!h.daemon.in_fib(&remote));
}

#[test]
fn program_cluster_routes_turned_off_live_removes_the_kernel_route() {
    let remote: IpNet = "100.64.0.64/26".parse().unwrap();
    let mut h = harness(0);
    h.load(CLUSTER);
    learned_remote_block(&mut h);
    assert!(h.daemon.in_fib(&remote));
    h.fib_ops();
    h.commands("198.18.0.12");
    h.load(&with_default_spec(", programClusterRoutes: Disabled"));
    let ops = h.fib_ops();
    assert!(ops.contains(&FibOp::Remove(remote)), "{ops:?}");
    assert!(!h.daemon.in_fib(&remote));
    // The session stays.
    let cmds = h.commands("198.18.0.12");
    assert!(
        !cmds.iter().any(|c| matches!(c, PeerCommand::Stop(_))),
        "{cmds:?}"
    );
    // And back on: programmed again.
    h.load(CLUSTER);
    let ops = h.fib_ops();
    assert!(
        ops.iter()
            .any(|op| matches!(op, FibOp::Set(r) if r.prefix == remote)),
        "{ops:?}"
    );
}

#[test]
fn effective_config_shows_the_330_fields() {
    let mut h = harness(0);
    h.load(&with_default_spec(
        ", programClusterRoutes: Disabled, serviceLoadBalancerAggregation: Disabled, \
         ipv4NormalRoutePriority: 100",
    ));
    let doc: serde_json::Value = serde_json::from_str(&h.daemon.effective_config()).unwrap();
    let text = doc.to_string();
    assert!(
        text.contains("\"program_cluster_routes\":\"Disabled\""),
        "{text}"
    );
    assert!(
        text.contains("\"service_load_balancer_aggregation\":false"),
        "{text}"
    );
    assert!(
        text.contains("\"ipv4_normal_route_priority\":100"),
        "{text}"
    );
    assert!(
        text.contains("\"ipv6_normal_route_priority\":1024"),
        "{text}"
    );
}

#[test]
fn route_priority_is_sent_before_the_first_route_calico_default_1024() {
    let mut h = harness(0);
    h.load(CLUSTER);
    let ops = h.fib_ops();
    assert_eq!(
        ops.first(),
        Some(&FibOp::Priority { v4: 1024, v6: 1024 }),
        "{ops:?}"
    );
    assert_eq!(
        ops.iter()
            .filter(|op| matches!(op, FibOp::Priority { .. }))
            .count(),
        1
    );
}

#[test]
fn a_live_priority_change_moves_kernel_routes_without_touching_sessions() {
    let mut h = harness(0);
    h.load(CLUSTER);
    learned_remote_block(&mut h);
    h.fib_ops();
    h.commands("198.18.0.12");
    h.commands("198.18.0.1");
    h.load(&with_default_spec(
        ", ipv4NormalRoutePriority: 100, ipv6NormalRoutePriority: 200",
    ));
    let ops = h.fib_ops();
    assert_eq!(ops.first(), Some(&FibOp::Priority { v4: 100, v6: 200 }));
    // Routes are offered again (one whose LOCAL_PREF set its metric would
    // keep it); none without one gets a metric of its own.
    assert!(
        ops[1..]
            .iter()
            .all(|op| matches!(op, FibOp::Set(r) if r.metric.is_none())),
        "{ops:?}"
    );
    // Our block goes to the other node at the new priority's LOCAL_PREF; no
    // session is reset or stopped.
    for peer in ["198.18.0.12", "198.18.0.1"] {
        let cmds = h.commands(peer);
        assert!(
            cmds.iter().all(|c| matches!(
                c,
                PeerCommand::SendShared { .. }
                    | PeerCommand::SendEncoded(_)
                    | PeerCommand::SendUpdates(_)
            )),
            "{peer}: {cmds:?}"
        );
        if peer == "198.18.0.12" {
            assert!(!cmds.is_empty(), "our block was not re-sent");
        }
    }
    // Routes stay programmed (fib-sync moves them to the new metric).
    assert!(h.daemon.in_fib(&"100.64.0.64/26".parse().unwrap()));
    // Unchanged on the next load.
    h.load(&with_default_spec(
        ", ipv4NormalRoutePriority: 100, ipv6NormalRoutePriority: 200",
    ));
    assert_eq!(h.fib_ops(), vec![]);
    assert!(h.commands("198.18.0.12").is_empty());
}
