//! Per-Service host routes, from Kubernetes Services and EndpointSlices, as confd's
//! route generator decides them (`confd/pkg/backends/calico/routes.go`:
//! `advertiseThisService`, `getAllRoutesForService`). The objects are written in the
//! Kubernetes form the file datastore reads.

use std::collections::BTreeSet;

use ipnet::IpNet;
use tabby_topology::*;

/// node-a and node-b (AS 64512); service ranges 100.96.0.0/16 (cluster IPs),
/// 198.19.200.0/24 and the single 198.19.201.7/32 (external IPs), 198.19.100.0/24 and the
/// single 198.19.101.9/32 (LoadBalancer).
fn cluster(default_extra: &str, node_a_labels: &str) -> String {
    format!(
        "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {{name: default}}
spec:
  asNumber: 64512
  serviceClusterIPs: [{{cidr: 100.96.0.0/16}}]
  serviceExternalIPs: [{{cidr: 198.19.200.0/24}}, {{cidr: 198.19.201.7/32}}]
  serviceLoadBalancerIPs: [{{cidr: 198.19.100.0/24}}, {{cidr: 198.19.101.9/32}}]
{default_extra}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: node-a, labels: {{{node_a_labels}}}}}
spec: {{bgp: {{ipv4Address: 198.18.0.11/24}}}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: node-b}}
spec: {{bgp: {{ipv4Address: 198.18.0.12/24}}}}
"
    )
}

/// A Service with one cluster IP, its external IPs and LoadBalancer ingress.
fn service(
    name: &str,
    ty: &str,
    policy: &str,
    cluster_ip: &str,
    external: &str,
    ingress: &str,
) -> String {
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec:
  type: {ty}
  externalTrafficPolicy: {policy}
  clusterIP: {cluster_ip}
  clusterIPs: [{cluster_ip}]
  ipFamilies: [IPv4]
  externalIPs: [{external}]
status:
  loadBalancer:
    ingress: [{ingress}]
"
    )
}

/// An EndpointSlice of `service` with one endpoint on `node`.
fn slice(name: &str, service: &str, node: &str, ready: bool) -> String {
    format!(
        "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  namespace: shop
  labels: {{kubernetes.io/service-name: {service}}}
addressType: IPv4
endpoints:
- addresses: [100.64.1.5]
  conditions: {{ready: {ready}}}
  nodeName: {node}
ports: [{{port: 8080, protocol: TCP}}]
"
    )
}

/// `shop/web`: LoadBalancer, Local, with a ready endpoint on node-a.
fn web_local() -> String {
    service(
        "web",
        "LoadBalancer",
        "Local",
        "100.96.0.10",
        "198.19.200.4",
        "{ip: 198.19.100.20}",
    ) + &slice("web-1", "web", "node-a", true)
}

fn service_routes(yaml: &str, node: &str) -> BTreeSet<IpNet> {
    let res = Resources::from_yaml_str(yaml, "services.yaml").expect("cluster");
    assert!(res.problems.is_empty(), "{:?}", res.problems);
    let state = derive(&res, node).expect("derive");
    state
        .originated
        .values()
        .filter(|o| o.kind == OriginKind::ServiceAddress)
        .map(|o| o.prefix)
        .collect()
}

fn nets(list: &[&str]) -> BTreeSet<IpNet> {
    list.iter().map(|s| s.parse().expect("net")).collect()
}

#[test]
fn a_local_service_is_announced_by_the_nodes_with_a_ready_endpoint_only() {
    let yaml = cluster("", "") + &web_local();
    // Its cluster IP, its allowed external IP and its LoadBalancer ingress, each as a /32.
    assert_eq!(
        service_routes(&yaml, "node-a"),
        nets(&["100.96.0.10/32", "198.19.200.4/32", "198.19.100.20/32"])
    );
    assert!(service_routes(&yaml, "node-b").is_empty());
    // The ranges themselves are still announced by every node.
    let res = Resources::from_yaml_str(&yaml, "services.yaml").expect("cluster");
    let b = derive(&res, "node-b").expect("derive");
    assert!(
        b.originated
            .contains_key(&"198.19.100.0/24".parse().expect("net"))
    );
    // A not-ready endpoint announces nothing.
    let not_ready = yaml.replace("ready: true", "ready: false");
    assert!(service_routes(&not_ready, "node-a").is_empty());
}

#[test]
fn addresses_outside_the_allowed_ranges_are_not_announced() {
    let yaml = cluster("", "")
        + &service(
            "web",
            "LoadBalancer",
            "Local",
            "100.96.0.10",
            "203.0.113.4",
            "{ip: 203.0.113.20}, {hostname: lb.example.com}",
        )
        + &slice("web-1", "web", "node-a", true);
    assert_eq!(service_routes(&yaml, "node-a"), nets(&["100.96.0.10/32"]));
    // Without serviceClusterIPs, no cluster IP either.
    let no_cluster = yaml.replace("  serviceClusterIPs: [{cidr: 100.96.0.0/16}]\n", "");
    assert!(service_routes(&no_cluster, "node-a").is_empty());
}

#[test]
fn cluster_services_follow_the_load_balancer_aggregation() {
    let svc = service(
        "api",
        "LoadBalancer",
        "Cluster",
        "100.96.0.11",
        "198.19.200.5",
        "{ip: 198.19.100.21}",
    ) + &slice("api-1", "api", "node-b", true);
    // Aggregated (the default): the ranges stand for them, no host route.
    let yaml = cluster("", "") + &svc;
    assert!(service_routes(&yaml, "node-a").is_empty());
    // Disabled: every node announces them while any endpoint is ready, wherever it is.
    let yaml = cluster("  serviceLoadBalancerAggregation: Disabled", "") + &svc;
    let want = nets(&["100.96.0.11/32", "198.19.200.5/32", "198.19.100.21/32"]);
    assert_eq!(service_routes(&yaml, "node-a"), want);
    assert_eq!(service_routes(&yaml, "node-b"), want);
    let not_ready = yaml.replace("ready: true", "ready: false");
    assert!(service_routes(&not_ready, "node-a").is_empty());
}

#[test]
fn a_single_allowed_address_is_announced_even_when_aggregated() {
    // 198.19.101.9 is allowed by a /32 entry: a Cluster LoadBalancer announces it from
    // every node, endpoints or not; the same for a /32-allowed external IP.
    let yaml = cluster("", "")
        + &service(
            "one",
            "LoadBalancer",
            "Cluster",
            "100.96.0.12",
            "198.19.200.6",
            "{ip: 198.19.101.9}",
        )
        + &service(
            "ext",
            "ClusterIP",
            "Cluster",
            "100.96.0.13",
            "198.19.201.7",
            "",
        );
    // 198.19.101.9/32 and 198.19.201.7/32 are also ranges of their own, announced as such.
    let want = nets(&["100.96.0.12/32", "198.19.200.6/32", "100.96.0.13/32"]);
    for node in ["node-a", "node-b"] {
        assert_eq!(service_routes(&yaml, node), want, "{node}");
    }
    let res = Resources::from_yaml_str(&yaml, "services.yaml").expect("cluster");
    let a = derive(&res, "node-a").expect("derive");
    for single in ["198.19.101.9/32", "198.19.201.7/32"] {
        assert!(
            a.originated.contains_key(&single.parse().expect("net")),
            "{single}"
        );
    }
    // Aggregation off: the LoadBalancer ranges go, and the single address still comes,
    // as the Service's, with no endpoint anywhere.
    let off = yaml.replace(
        "  serviceLoadBalancerIPs:",
        "  serviceLoadBalancerAggregation: Disabled\n  serviceLoadBalancerIPs:",
    );
    let got = service_routes(&off, "node-b");
    assert!(
        got.contains(&"198.19.101.9/32".parse().expect("net")),
        "{got:?}"
    );
    // Without the Services, only the ranges: the /32s above came from the Services.
    let bare = cluster("", "");
    assert!(service_routes(&bare, "node-a").is_empty());
}

#[test]
fn excluded_nodes_headless_and_external_name_services_announce_nothing() {
    let local = web_local();
    let excluded = cluster(
        "",
        "'node.kubernetes.io/exclude-from-external-load-balancers': 'true'",
    ) + &local;
    assert!(service_routes(&excluded, "node-a").is_empty());
    let headless = cluster("", "")
        + &local
            .replace("clusterIP: 100.96.0.10", "clusterIP: None")
            .replace("clusterIPs: [100.96.0.10]", "clusterIPs: [None]");
    assert!(service_routes(&headless, "node-a").is_empty());
    let external_name =
        cluster("", "") + &local.replace("type: LoadBalancer", "type: ExternalName");
    assert!(service_routes(&external_name, "node-a").is_empty());
    // An EndpointSlice of another family than the Service's is not its endpoint.
    let v6_slice = cluster("", "") + &local.replace("addressType: IPv4", "addressType: IPv6");
    assert!(service_routes(&v6_slice, "node-a").is_empty());
}

#[test]
fn a_bad_service_is_reported_and_the_others_still_announce() {
    let yaml = cluster("", "")
        + &web_local()
        + &service(
            "broken",
            "LoadBalancer",
            "Local",
            "100.96.0.99",
            "not-an-address",
            "",
        );
    let res = Resources::from_yaml_str(&yaml, "services.yaml").expect("cluster");
    assert!(
        res.problems.len() == 1
            && res.problems[0].contains("shop/broken")
            && res.problems[0].contains("not-an-address"),
        "{:?}",
        res.problems
    );
    let state = derive(&res, "node-a").expect("derive");
    let got: BTreeSet<IpNet> = state
        .originated
        .values()
        .filter(|o| o.kind == OriginKind::ServiceAddress)
        .map(|o| o.prefix)
        .collect();
    assert_eq!(
        got,
        nets(&["100.96.0.10/32", "198.19.200.4/32", "198.19.100.20/32"])
    );
}
