//! Kubernetes Services and EndpointSlices, and the per-Service host routes Calico
//! advertises from them (confd's route generator, `confd/pkg/backends/calico/routes.go`).
//!
//! A node advertises a Service's cluster IPs (when `serviceClusterIPs` is set), its
//! allowed external IPs and its allowed LoadBalancer ingress IPs, each as a /32 or /128,
//! when:
//! - the node is not labelled `node.kubernetes.io/exclude-from-external-load-balancers`;
//! - the Service is of type ClusterIP, NodePort or LoadBalancer and has a cluster IP;
//! - and either its `externalTrafficPolicy` is Cluster and it has a LoadBalancer or
//!   external IP that a single-address entry (/32, /128) of `serviceLoadBalancerIPs` /
//!   `serviceExternalIPs` allows; or it has a ready endpoint of its address family, on
//!   this node for `externalTrafficPolicy: Local`, anywhere for Cluster — the latter only
//!   when `serviceLoadBalancerAggregation` is `Disabled` (otherwise the ranges stand for
//!   Cluster Services).
//!
//! Only the fields these rules read are kept; the rest of each object is ignored.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_yaml_ng::Value;

use crate::error::TopologyError;
use crate::resources::Resources;
use crate::types::{BgpConfiguration, Kind};
use crate::yaml11::go_string;

/// A Service's namespace and name, `namespace/name`: the key Services and EndpointSlices
/// are held under (the namespace defaults to `default`, as in Kubernetes).
pub fn service_key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or("default"))
}

/// What Tabby reads of a core `v1` Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `namespace/name`.
    pub name: String,
    /// `spec.type` (`ClusterIP` when absent).
    pub service_type: String,
    /// `spec.clusterIPs` (or `spec.clusterIP`), without `None`.
    pub cluster_ips: Vec<IpAddr>,
    pub external_ips: Vec<IpAddr>,
    /// `spec.loadBalancerIP` (deprecated, still read for the single-IP rule).
    pub load_balancer_ip: Option<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub ingress_ips: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy` (`Cluster`, `Local`; unset on plain ClusterIP Services).
    pub traffic_policy: Option<String>,
    /// `spec.ipFamilies` (`IPv4`, `IPv6`).
    pub ip_families: Vec<String>,
}

/// What Tabby reads of a `discovery.k8s.io/v1` EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    /// `namespace/name`.
    pub name: String,
    /// The Service it belongs to (`namespace/<kubernetes.io/service-name>`).
    pub service: Option<String>,
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: String,
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `conditions.ready`; absent means ready.
    pub ready: bool,
    pub node_name: Option<String>,
}

fn invalid(kind: Kind, name: &str, field: &str, reason: impl Into<String>) -> TopologyError {
    TopologyError::invalid(kind.as_str(), name, field, reason)
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    text(v, path).and_then(go_string)
}

/// Addresses of a list field; a value that is not an address rejects the object (an
/// address Tabby cannot read could be one it must advertise).
fn ips(
    kind: Kind,
    name: &str,
    v: &Value,
    path: &[&str],
    pick: Option<&str>,
) -> Result<Vec<IpAddr>, TopologyError> {
    let Some(list) = text(v, path) else {
        return Ok(Vec::new());
    };
    let Some(items) = list.as_sequence() else {
        return Err(invalid(kind, name, &path.join("."), "expected a list"));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let s = match pick {
            Some(k) => match item.get(k).and_then(go_string) {
                Some(s) => s,
                None => continue, // an ingress by hostname only
            },
            None => go_string(item).unwrap_or_default(),
        };
        let s = s.trim();
        if s.is_empty() || s == "None" {
            continue;
        }
        let ip = s.parse::<IpAddr>().map_err(|_| {
            invalid(
                kind,
                name,
                &format!("{}[{i}]", path.join(".")),
                format!("'{s}' is not an IP address"),
            )
        })?;
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// Parses a core `v1` Service object.
pub(crate) fn parse_service(
    namespace: Option<&str>,
    name: &str,
    v: &Value,
) -> Result<Service, TopologyError> {
    let key = service_key(namespace, name);
    let k = Kind::Service;
    let mut cluster_ips = ips(k, &key, v, &["spec", "clusterIPs"], None)?;
    if cluster_ips.is_empty()
        && let Some(s) = str_at(v, &["spec", "clusterIP"]).filter(|s| s != "None" && !s.is_empty())
    {
        cluster_ips.push(s.trim().parse().map_err(|_| {
            invalid(
                k,
                &key,
                "spec.clusterIP",
                format!("'{s}' is not an IP address"),
            )
        })?);
    }
    let load_balancer_ip = match str_at(v, &["spec", "loadBalancerIP"]) {
        Some(s) if !s.trim().is_empty() => Some(s.trim().parse().map_err(|_| {
            invalid(
                k,
                &key,
                "spec.loadBalancerIP",
                format!("'{s}' is not an IP address"),
            )
        })?),
        _ => None,
    };
    let ip_families = match text(v, &["spec", "ipFamilies"]).and_then(Value::as_sequence) {
        Some(l) => l.iter().filter_map(go_string).collect(),
        None => Vec::new(),
    };
    Ok(Service {
        service_type: str_at(v, &["spec", "type"]).unwrap_or_else(|| "ClusterIP".into()),
        external_ips: ips(k, &key, v, &["spec", "externalIPs"], None)?,
        ingress_ips: ips(
            k,
            &key,
            v,
            &["status", "loadBalancer", "ingress"],
            Some("ip"),
        )?,
        traffic_policy: str_at(v, &["spec", "externalTrafficPolicy"]),
        cluster_ips,
        load_balancer_ip,
        ip_families,
        name: key,
    })
}

/// Parses a `discovery.k8s.io/v1` EndpointSlice object.
pub(crate) fn parse_endpoint_slice(
    namespace: Option<&str>,
    name: &str,
    v: &Value,
) -> Result<EndpointSlice, TopologyError> {
    let key = service_key(namespace, name);
    let k = Kind::EndpointSlice;
    let service = str_at(v, &["metadata", "labels", "kubernetes.io/service-name"])
        .map(|s| service_key(namespace, &s));
    let address_type = str_at(v, &["addressType"]).unwrap_or_default();
    let mut endpoints = Vec::new();
    if let Some(list) = v.get("endpoints").filter(|l| !l.is_null()) {
        let Some(items) = list.as_sequence() else {
            return Err(invalid(k, &key, "endpoints", "expected a list"));
        };
        for (i, e) in items.iter().enumerate() {
            let ready = match text(e, &["conditions", "ready"]) {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(invalid(
                        k,
                        &key,
                        &format!("endpoints[{i}].conditions.ready"),
                        format!("expected true or false, found {other:?}"),
                    ));
                }
            };
            endpoints.push(Endpoint {
                ready,
                node_name: str_at(e, &["nodeName"]),
            });
        }
    }
    Ok(EndpointSlice {
        name: key,
        service,
        address_type,
        endpoints,
    })
}

fn allowed(ip: &IpAddr, nets: &[IpNet]) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

fn single(ip: &IpAddr, nets: &[IpNet]) -> bool {
    nets.iter()
        .any(|n| n.prefix_len() == n.max_prefix_len() && n.contains(ip))
}

/// The host routes `node` advertises for Services (confd's route generator), each with
/// the Service it is for. `aggregate`: `serviceLoadBalancerAggregation` is not Disabled.
pub(crate) fn service_routes(
    res: &Resources,
    node: &str,
    cfg: &BgpConfiguration,
    aggregate: bool,
) -> BTreeMap<IpNet, String> {
    let mut slices: BTreeMap<&str, Vec<&EndpointSlice>> = BTreeMap::new();
    for s in res.endpoint_slices.values() {
        if let Some(svc) = &s.service {
            slices.entry(svc.as_str()).or_default().push(s);
        }
    }
    let mut out = BTreeMap::new();
    for svc in res.services.values() {
        let eps = slices.get(svc.name.as_str()).map_or(&[][..], Vec::as_slice);
        if !advertise(svc, eps, node, cfg, aggregate) {
            continue;
        }
        let cluster = if cfg.service_cluster_ips.is_empty() {
            &[][..]
        } else {
            &svc.cluster_ips[..]
        };
        let external = svc
            .external_ips
            .iter()
            .filter(|ip| allowed(ip, &cfg.service_external_ips));
        let lb = svc
            .ingress_ips
            .iter()
            .filter(|ip| allowed(ip, &cfg.service_load_balancer_ips));
        for ip in cluster.iter().chain(external).chain(lb) {
            out.entry(IpNet::from(*ip))
                .or_insert_with(|| svc.name.clone());
        }
    }
    out
}

fn advertise(
    svc: &Service,
    eps: &[&EndpointSlice],
    node: &str,
    cfg: &BgpConfiguration,
    aggregate: bool,
) -> bool {
    if !matches!(
        svc.service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) || svc.cluster_ips.is_empty()
    {
        return false;
    }
    let local = svc.traffic_policy.as_deref() == Some("Local");
    // A single allowed address of a Cluster Service is announced as itself, whatever
    // the aggregation.
    if svc.traffic_policy.as_deref() == Some("Cluster") {
        let lb_single = svc.service_type == "LoadBalancer"
            && svc
                .load_balancer_ip
                .iter()
                .chain(&svc.ingress_ips)
                .any(|ip| single(ip, &cfg.service_load_balancer_ips));
        if lb_single
            || svc
                .external_ips
                .iter()
                .any(|ip| single(ip, &cfg.service_external_ips))
        {
            return true;
        }
    }
    // Aggregated: the ranges stand for every Service that is not Local.
    if !local && aggregate {
        return false;
    }
    eps.iter()
        .filter(|s| svc.ip_families.contains(&s.address_type))
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.ready)
        .any(|e| !local || e.node_name.as_deref() == Some(node))
}
