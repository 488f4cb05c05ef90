//! BGPConfiguration fields of Calico 3.31/3.32: programClusterRoutes,
//! serviceLoadBalancerAggregation, ipv4/ipv6NormalRoutePriority.

use tabby_topology::*;

const BASE: &str = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  asNumber: 64512
  serviceLoadBalancerIPs: [{cidr: 198.19.2.0/24}]
  serviceExternalIPs: [{cidr: 198.19.1.0/24}]
EXTRA
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 198.18.0.11/24}}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: ipip}
spec: {cidr: 100.64.0.0/16, ipipMode: Always}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: plain}
spec: {cidr: 100.65.0.0/16, ipipMode: Never}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: vx}
spec: {cidr: 100.66.0.0/16, vxlanMode: Always}
";

fn state(extra: &str) -> NodeState {
    let res = Resources::from_yaml_str(&BASE.replace("EXTRA", extra), "inline")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(res.problems.is_empty(), "{:?}", res.problems);
    derive(&res, "node-a").unwrap()
}

/// A bad value skips the BGPConfiguration with a problem naming the field.
fn refused(extra: &str, field: &str) -> bool {
    let res = Resources::from_yaml_str(&BASE.replace("EXTRA", extra), "inline").unwrap();
    res.problems.iter().any(|p| p.contains(field))
}

fn kernel(s: &NodeState, p: &str) -> KernelRoute {
    s.kernel_route_for(&p.parse().unwrap())
}

#[test]
fn program_cluster_routes_defaults_to_enabled() {
    let s = state("");
    assert_eq!(s.program_cluster_routes, ProgramClusterRoutes::Enabled);
    assert_eq!(kernel(&s, "100.64.1.0/26"), KernelRoute::Tunnel);
    assert_eq!(kernel(&s, "100.65.1.0/26"), KernelRoute::Direct);
    assert_eq!(kernel(&s, "100.66.1.0/26"), KernelRoute::Skip);
}

#[test]
fn program_cluster_routes_disabled_skips_ipip_and_unencapsulated_pools() {
    let s = state("  programClusterRoutes: Disabled");
    assert_eq!(s.program_cluster_routes, ProgramClusterRoutes::Disabled);
    for p in ["100.64.1.0/26", "100.65.1.0/26", "100.66.1.0/26"] {
        assert_eq!(kernel(&s, p), KernelRoute::Skip, "{p}");
    }
    // Still advertised: the export rules do not change.
    let on = state("");
    assert_eq!(s.export_base_v4, on.export_base_v4);
}

#[test]
fn program_cluster_routes_split_values() {
    let s = state("  programClusterRoutes: EnabledNoEncapOnly");
    assert_eq!(kernel(&s, "100.64.1.0/26"), KernelRoute::Skip);
    assert_eq!(kernel(&s, "100.65.1.0/26"), KernelRoute::Direct);
    let s = state("  programClusterRoutes: EnabledIPIPOnly");
    assert_eq!(kernel(&s, "100.64.1.0/26"), KernelRoute::Tunnel);
    assert_eq!(kernel(&s, "100.65.1.0/26"), KernelRoute::Skip);
    assert!(refused(
        "  programClusterRoutes: Sometimes",
        "programClusterRoutes"
    ));
}

#[test]
fn program_cluster_routes_change_is_a_pool_change_without_resets() {
    let changes = diff(&state(""), &state("  programClusterRoutes: Disabled"));
    assert!(changes.contains(&Change::PoolsChanged), "{changes:?}");
    assert!(changes.iter().all(|c| !c.needs_reset()), "{changes:?}");
}

#[test]
fn lb_aggregation_disabled_drops_the_lb_ranges() {
    let lb: ipnet::IpNet = "198.19.2.0/24".parse().unwrap();
    let ext: ipnet::IpNet = "198.19.1.0/24".parse().unwrap();
    let on = state("");
    assert!(on.service_lb_aggregation);
    assert!(on.originated.contains_key(&lb));
    let off = state("  serviceLoadBalancerAggregation: Disabled");
    assert!(!off.service_lb_aggregation);
    assert!(!off.originated.contains_key(&lb));
    assert!(off.originated.contains_key(&ext));
    let explicit = state("  serviceLoadBalancerAggregation: Enabled");
    assert!(explicit.originated.contains_key(&lb));
    assert!(refused(
        "  serviceLoadBalancerAggregation: Off",
        "serviceLoadBalancerAggregation"
    ));
    let changes = diff(&on, &off);
    assert!(
        changes.contains(&Change::OriginatedRemoved(lb)),
        "{changes:?}"
    );
    assert!(changes.iter().all(|c| !c.needs_reset()), "{changes:?}");
}

#[test]
fn normal_route_priorities_default_to_1024_and_parse() {
    let s = state("");
    assert_eq!(
        (s.normal_route_priority_v4, s.normal_route_priority_v6),
        (1024, 1024)
    );
    let s = state("  ipv4NormalRoutePriority: 100\n  ipv6NormalRoutePriority: 200");
    assert_eq!(
        (s.normal_route_priority_v4, s.normal_route_priority_v6),
        (100, 200)
    );
    assert!(refused(
        "  ipv4NormalRoutePriority: 0",
        "ipv4NormalRoutePriority"
    ));
    assert!(refused(
        "  ipv6NormalRoutePriority: 2147483647",
        "ipv6NormalRoutePriority"
    ));
    let changes = diff(&state(""), &state("  ipv4NormalRoutePriority: 100"));
    assert_eq!(
        changes,
        vec![Change::GlobalChanged(vec![
            GlobalField::NormalRoutePriority
        ])]
    );
    assert!(!changes[0].needs_reset());
}
