//! Calico's Kubernetes datastore (KDD) objects → the `projectcalico.org/v3` form that
//! [`crate::parse_object`] reads, so the Kubernetes source yields exactly the
//! resources the file and etcd sources do.
//!
//! - Calico's custom resources (`crd.projectcalico.org/v1`, or `projectcalico.org/v3` where
//!   Calico 3.32+ installs its CRDs in that group) carry the v3 `spec` unchanged. Calico may
//!   keep a resource's own labels and annotations in the `projectcalico.org/metadata`
//!   annotation (a JSON ObjectMeta); they are merged over the object's.
//! - A Calico Node is a core `v1` Node: its BGP settings are `projectcalico.org/*`
//!   annotations, its labels the Node's labels over those of the `projectcalico.org/labels`
//!   annotation (the Kubernetes label wins on a clash). An annotation Calico would not
//!   accept is dropped with a warning, as libcalico-go drops it; the Node itself stays.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use serde_json::Value as Json;
use serde_yaml_ng::{Mapping, Value};

use crate::error::TopologyError;
use crate::fields::parse_as_number;
use crate::model::{CALICO_API_VERSION, parse_object};
use crate::types::{Kind, Resource};

/// The annotations of a Kubernetes Node that carry its Calico BGP settings.
pub const IPV4_ANNOTATION: &str = "projectcalico.org/IPv4Address";
pub const IPV6_ANNOTATION: &str = "projectcalico.org/IPv6Address";
pub const AS_ANNOTATION: &str = "projectcalico.org/ASNumber";
pub const RR_CLUSTER_ANNOTATION: &str = "projectcalico.org/RouteReflectorClusterID";
/// Calico-only labels of a Node (JSON map), under the Node's own labels.
pub const LABELS_ANNOTATION: &str = "projectcalico.org/labels";
/// Calico metadata of a custom resource (JSON ObjectMeta: labels, annotations).
pub const METADATA_ANNOTATION: &str = "projectcalico.org/metadata";

/// One object read from the API server, converted and validated.
#[derive(Debug)]
pub struct Converted {
    /// `Ok(None)`: an object of no interest (it names nothing Tabby uses).
    pub resource: Result<Option<Resource>, TopologyError>,
    /// Parts Calico too would ignore (a bad annotation), each said once per change.
    pub warnings: Vec<String>,
}

fn str_map(v: Option<&Json>) -> BTreeMap<String, String> {
    v.and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn yaml_map(m: &BTreeMap<String, String>) -> Value {
    Value::Mapping(
        m.iter()
            .map(|(k, v)| (Value::String(k.clone()), Value::String(v.clone())))
            .collect(),
    )
}

fn name_of(obj: &Json) -> Option<&str> {
    obj.get("metadata")?.get("name")?.as_str()
}

/// A core `v1` Node (a full object or only its metadata) as a Calico v3 Node.
pub fn node(obj: &Json) -> Converted {
    let mut warnings = Vec::new();
    let Some(name) = name_of(obj) else {
        return Converted {
            resource: Err(parse_err("a Kubernetes Node without metadata.name")),
            warnings,
        };
    };
    let meta = obj.get("metadata");
    let annotations = str_map(meta.and_then(|m| m.get("annotations")));
    let mut labels = BTreeMap::new();
    if let Some(text) = annotations.get(LABELS_ANNOTATION) {
        match serde_json::from_str::<BTreeMap<String, String>>(text) {
            Ok(m) => labels = m,
            Err(e) => warnings.push(format!(
                "Node '{name}': annotation {LABELS_ANNOTATION} is not a JSON map of strings ({e}); using the Node's labels only"
            )),
        }
    }
    labels.extend(str_map(meta.and_then(|m| m.get("labels"))));

    let mut bgp = Mapping::new();
    let mut take = |annotation: &str, field: &str, ok: &dyn Fn(&str) -> bool, want: &str| {
        let Some(v) = annotations.get(annotation) else {
            return;
        };
        let v = v.trim();
        if v.is_empty() {
            return;
        }
        if ok(v) {
            bgp.insert(Value::String(field.into()), Value::String(v.into()));
        } else {
            warnings.push(format!(
                "Node '{name}': annotation {annotation} '{v}' is not {want}; ignored, as Calico ignores it"
            ));
        }
    };
    take(
        IPV4_ANNOTATION,
        "ipv4Address",
        &|v| is_addr_or_cidr(v, true),
        "an IPv4 address or CIDR",
    );
    take(
        IPV6_ANNOTATION,
        "ipv6Address",
        &|v| is_addr_or_cidr(v, false),
        "an IPv6 address or CIDR",
    );
    take(
        AS_ANNOTATION,
        "asNumber",
        &|v| parse_as_number(v).is_some(),
        "an AS number (65001 or 1.10)",
    );
    take(
        RR_CLUSTER_ANNOTATION,
        "routeReflectorClusterID",
        &|v| is_rr_cluster_id(v),
        "an IPv4 address",
    );

    let mut metadata = Mapping::new();
    metadata.insert("name".into(), Value::String(name.to_string()));
    metadata.insert("labels".into(), yaml_map(&labels));
    let mut spec = Mapping::new();
    if !bgp.is_empty() {
        spec.insert("bgp".into(), Value::Mapping(bgp));
    }
    let v3 = object(Kind::Node, metadata, Value::Mapping(spec));
    Converted {
        resource: parse_object(&v3, &format!("Kubernetes Node {name}"), Some(Kind::Node)),
        warnings,
    }
}

fn is_addr_or_cidr(v: &str, v4: bool) -> bool {
    let ip = v
        .parse::<IpNet>()
        .map(|n| n.addr())
        .or_else(|_| v.parse::<IpAddr>());
    matches!(
        (ip, v4),
        (Ok(IpAddr::V4(_)), true) | (Ok(IpAddr::V6(_)), false)
    )
}

/// An IPv4 address, or a CIDR with no host bits (what Calico's validator accepts).
fn is_rr_cluster_id(v: &str) -> bool {
    v.parse::<Ipv4Addr>().is_ok() || v.parse::<Ipv4Net>().is_ok_and(|n| n.trunc() == n)
}

/// One of Calico's custom resources (`kind` as the API server names it) as its v3 object.
pub fn custom(kind: Kind, obj: &Json) -> Converted {
    let mut warnings = Vec::new();
    let Some(name) = name_of(obj) else {
        return Converted {
            resource: Err(parse_err(&format!("a {kind} without metadata.name"))),
            warnings,
        };
    };
    let meta = obj.get("metadata");
    let mut labels = str_map(meta.and_then(|m| m.get("labels")));
    let mut annotations = str_map(meta.and_then(|m| m.get("annotations")));
    if let Some(text) = annotations.remove(METADATA_ANNOTATION) {
        match serde_json::from_str::<Json>(&text) {
            Ok(m) => {
                labels.extend(str_map(m.get("labels")));
                annotations.extend(str_map(m.get("annotations")));
            }
            Err(e) => warnings.push(format!(
                "{kind} '{name}': annotation {METADATA_ANNOTATION} is not JSON ({e}); ignored"
            )),
        }
    }
    let mut metadata = Mapping::new();
    metadata.insert("name".into(), Value::String(name.to_string()));
    metadata.insert("labels".into(), yaml_map(&labels));
    metadata.insert("annotations".into(), yaml_map(&annotations));
    let spec = obj
        .get("spec")
        .map(to_yaml)
        .unwrap_or(Value::Mapping(Mapping::new()));
    let v3 = object(kind, metadata, spec);
    Converted {
        resource: parse_object(&v3, &format!("Kubernetes {kind} {name}"), Some(kind)),
        warnings,
    }
}

/// A core `v1` Secret (BGP passwords), in the namespace it was read from.
pub fn secret(obj: &Json) -> Converted {
    let name = name_of(obj).unwrap_or("?");
    let mut v = to_yaml(obj);
    if let Value::Mapping(m) = &mut v {
        m.insert("apiVersion".into(), Value::String("v1".into()));
        m.insert("kind".into(), Value::String("Secret".into()));
    }
    Converted {
        resource: parse_object(&v, &format!("Kubernetes Secret {name}"), Some(Kind::Secret)),
        warnings: Vec::new(),
    }
}

/// A core `v1` Service or a `discovery.k8s.io/v1` EndpointSlice, as the API server
/// serves it (per-Service routes).
pub fn service_object(kind: Kind, obj: &Json) -> Converted {
    let name = name_of(obj).unwrap_or("?");
    let mut v = to_yaml(obj);
    if let Value::Mapping(m) = &mut v {
        let api = if kind == Kind::EndpointSlice {
            "discovery.k8s.io/v1"
        } else {
            "v1"
        };
        m.insert("apiVersion".into(), Value::String(api.into()));
        m.insert("kind".into(), Value::String(kind.as_str().into()));
    }
    Converted {
        resource: parse_object(&v, &format!("Kubernetes {kind} {name}"), Some(kind)),
        warnings: Vec::new(),
    }
}

fn object(kind: Kind, metadata: Mapping, spec: Value) -> Value {
    let mut m = Mapping::new();
    m.insert(
        "apiVersion".into(),
        Value::String(CALICO_API_VERSION.into()),
    );
    m.insert("kind".into(), Value::String(kind.as_str().into()));
    m.insert("metadata".into(), Value::Mapping(metadata));
    m.insert("spec".into(), spec);
    Value::Mapping(m)
}

fn parse_err(reason: &str) -> TopologyError {
    TopologyError::Parse {
        origin: "Kubernetes API".into(),
        reason: reason.into(),
    }
}

/// JSON → the YAML value model (numbers stay numbers, strings stay strings).
pub fn to_yaml(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else {
                Value::Number(n.as_f64().unwrap_or(f64::NAN).into())
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Sequence(a.iter().map(to_yaml).collect()),
        Json::Object(o) => Value::Mapping(
            o.iter()
                .map(|(k, v)| (Value::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{AffinityState, BindMode};
    use serde_json::json;

    /// A Service and an EndpointSlice as the typed watch hands them over (through
    /// k8s-openapi's types, as `feed.rs` serialises them).
    #[test]
    fn services_and_endpoint_slices_from_the_api_server() {
        let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "1", "resourceVersion": "7"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                     "clusterIP": "100.96.0.10", "clusterIPs": ["100.96.0.10"],
                     "ipFamilies": ["IPv4"], "ports": [{"port": 80}],
                     "selector": {"app": "web"}},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.19.100.20"}]}}
        }))
        .expect("Service");
        let c = service_object(Kind::Service, &serde_json::to_value(&svc).expect("json"));
        match c.resource {
            Ok(Some(Resource::Service(s))) => {
                assert_eq!(s.name, "shop/web");
                assert_eq!(s.cluster_ips, vec![IpAddr::from([100, 96, 0, 10])]);
                assert_eq!(s.ingress_ips, vec![IpAddr::from([198, 19, 100, 20])]);
                assert_eq!(s.traffic_policy.as_deref(), Some("Local"));
            }
            other => panic!("expected a Service, got {other:?}"),
        }
        let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x1", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["100.64.1.5"], "conditions": {"ready": true}, "nodeName": "node-a"},
                {"addresses": ["100.64.2.5"], "conditions": {"ready": false}, "nodeName": "node-b"},
                {"addresses": ["100.64.3.5"]}
            ]
        }))
        .expect("EndpointSlice");
        let c = service_object(
            Kind::EndpointSlice,
            &serde_json::to_value(&slice).expect("json"),
        );
        match c.resource {
            Ok(Some(Resource::EndpointSlice(e))) => {
                assert_eq!(e.name, "shop/web-x1");
                assert_eq!(e.service.as_deref(), Some("shop/web"));
                let seen: Vec<(bool, Option<&str>)> = e
                    .endpoints
                    .iter()
                    .map(|p| (p.ready, p.node_name.as_deref()))
                    .collect();
                assert_eq!(
                    seen,
                    [
                        (true, Some("node-a")),
                        (false, Some("node-b")),
                        (true, None)
                    ]
                );
            }
            other => panic!("expected an EndpointSlice, got {other:?}"),
        }
    }

    fn node_of(c: Converted) -> crate::types::Node {
        match c.resource {
            Ok(Some(Resource::Node(n))) => n,
            other => panic!("expected a Node, got {other:?}"),
        }
    }

    #[test]
    fn kubernetes_node_with_calico_annotations() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": "node-a",
                "labels": {"kubernetes.io/hostname": "node-a", "rack": "r1"},
                "annotations": {
                    "projectcalico.org/IPv4Address": "192.0.2.10/24",
                    "projectcalico.org/IPv6Address": "2001:db8::10/64",
                    "projectcalico.org/ASNumber": "64513",
                    "projectcalico.org/RouteReflectorClusterID": "203.0.113.1",
                    "projectcalico.org/labels": "{\"rack\":\"calico-says\",\"route-reflector\":\"true\"}",
                    "node.alpha.kubernetes.io/ttl": "0"
                }
            },
            "spec": {"podCIDR": "198.51.100.0/24"}
        });
        let c = node(&obj);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let n = node_of(c);
        assert_eq!(n.name, "node-a");
        assert_eq!(n.ipv4.unwrap().to_string(), "192.0.2.10/24");
        assert_eq!(n.ipv6.unwrap().to_string(), "2001:db8::10/64");
        assert_eq!(n.as_number, Some(64513));
        assert_eq!(n.rr_cluster_id, Some("203.0.113.1".parse().unwrap()));
        // The Kubernetes label wins over the Calico one of the same key.
        assert_eq!(n.labels.get("rack").map(String::as_str), Some("r1"));
        assert_eq!(
            n.labels.get("route-reflector").map(String::as_str),
            Some("true")
        );
        assert_eq!(n.labels.len(), 3);
    }

    #[test]
    fn bad_annotations_are_dropped_not_fatal() {
        let obj = json!({
            "metadata": {
                "name": "node-b",
                "annotations": {
                    "projectcalico.org/IPv4Address": "2001:db8::1",
                    "projectcalico.org/IPv6Address": "2001:db8::b/64",
                    "projectcalico.org/ASNumber": "sixty-five",
                    "projectcalico.org/RouteReflectorClusterID": "203.0.113.1/24",
                    "projectcalico.org/labels": "not json"
                }
            }
        });
        let c = node(&obj);
        assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("ASNumber 'sixty-five'"))
        );
        let n = node_of(c);
        assert_eq!(n.ipv4, None);
        assert_eq!(n.ipv6.unwrap().addr().to_string(), "2001:db8::b");
        assert_eq!(n.as_number, None);
        assert_eq!(n.rr_cluster_id, None);
    }

    #[test]
    fn dotted_as_and_bare_address() {
        let obj = json!({"metadata": {"name": "n", "annotations": {
            "projectcalico.org/IPv4Address": "192.0.2.7",
            "projectcalico.org/ASNumber": "1.10"
        }}});
        let n = node_of(node(&obj));
        assert_eq!(n.as_number, Some(65546));
        assert_eq!(n.ipv4_addr(), Some("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn node_without_calico_annotations_has_no_bgp() {
        let n = node_of(node(&json!({"metadata": {"name": "plain"}})));
        assert_eq!((n.ipv4, n.ipv6, n.as_number), (None, None, None));
        assert!(node(&json!({"metadata": {}})).resource.is_err());
    }

    #[test]
    fn custom_resources_keep_their_v3_spec() {
        let peer = json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "BGPPeer",
            "metadata": {"name": "tor", "resourceVersion": "12", "uid": "x",
                         "annotations": {"projectcalico.org/metadata": "{\"labels\":{\"team\":\"net\"}}"}},
            "spec": {"peerIP": "192.0.2.1", "asNumber": 65001,
                     "password": {"secretKeyRef": {"name": "bgp", "key": "tor"}}}
        });
        let c = custom(Kind::BgpPeer, &peer);
        let Ok(Some(Resource::BgpPeer(p))) = c.resource else {
            panic!("{:?}", c.resource)
        };
        assert_eq!(p.name, "tor");
        assert_eq!(p.as_number, Some(65001));
        assert_eq!(p.password.unwrap().name, "bgp");

        let cfg = json!({"metadata": {"name": "default"},
                         "spec": {"asNumber": 64600, "nodeToNodeMeshEnabled": false, "bindMode": "NodeIP"}});
        let Ok(Some(Resource::BgpConfiguration(b))) = custom(Kind::BgpConfiguration, &cfg).resource
        else {
            panic!()
        };
        assert_eq!(b.as_number, Some(64600));
        assert_eq!(b.node_to_node_mesh_enabled, Some(false));
        assert_eq!(b.bind_mode, Some(BindMode::NodeIp));

        // BlockAffinity v1 keeps `deleted` as a string.
        let ba = json!({"metadata": {"name": "node-a-198-51-100-0-26"},
                        "spec": {"state": "confirmed", "node": "node-a", "cidr": "198.51.100.0/26",
                                 "deleted": "false", "type": ""}});
        let Ok(Some(Resource::BlockAffinity(a))) = custom(Kind::BlockAffinity, &ba).resource else {
            panic!()
        };
        assert_eq!(a.state, AffinityState::Confirmed);
        assert!(!a.deleted);
        assert_eq!(a.node, "node-a");
    }

    #[test]
    fn bfd_annotation_reaches_the_parser_from_either_metadata() {
        use crate::bfd::BfdAnnotation;
        use crate::state::BfdSettings;
        // On the custom resource itself…
        let peer = json!({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "BGPPeer",
            "metadata": {"name": "tor-a",
                         "annotations": {"tabby-routing.io/bfd": " {\"interval\":\"100ms\"} "}},
            "spec": {"peerIP": "192.0.2.1", "asNumber": 65001}
        });
        let Ok(Some(Resource::BgpPeer(p))) = custom(Kind::BgpPeer, &peer).resource else {
            panic!()
        };
        let s = p.bfd.as_ref().and_then(BfdAnnotation::settings).unwrap();
        assert_eq!(s.min_tx, std::time::Duration::from_millis(100));
        // …or inside projectcalico.org/metadata (where Calico's API server keeps a v3
        // object's own annotations), which wins over the object's.
        let inner = json!({"annotations": {"tabby-routing.io/bfd": "false"}}).to_string();
        let peer = json!({
            "metadata": {"name": "tor-b",
                         "annotations": {"tabby-routing.io/bfd": "true",
                                         "projectcalico.org/metadata": inner}},
            "spec": {"peerIP": "192.0.2.2", "asNumber": 65001}
        });
        let Ok(Some(Resource::BgpPeer(p))) = custom(Kind::BgpPeer, &peer).resource else {
            panic!()
        };
        assert_eq!(p.bfd, Some(BfdAnnotation::Off));
        // The mesh's: on a BGPConfiguration.
        let inner = json!({"annotations": {"tabby-routing.io/bfd": "enabled"}}).to_string();
        let cfg = json!({"metadata": {"name": "default",
                                      "annotations": {"projectcalico.org/metadata": inner}},
                         "spec": {"asNumber": 64600}});
        let Ok(Some(Resource::BgpConfiguration(c))) = custom(Kind::BgpConfiguration, &cfg).resource
        else {
            panic!()
        };
        assert_eq!(c.bfd, Some(BfdAnnotation::On(BfdSettings::DEFAULT)));
        // A bad value is carried, not an error: the resource converts.
        let cfg = json!({"metadata": {"name": "node.node-a",
                                      "annotations": {"tabby-routing.io/bfd": "{\"multiplier\":0}"}}});
        let c = custom(Kind::BgpConfiguration, &cfg);
        assert!(c.warnings.is_empty());
        let Ok(Some(Resource::BgpConfiguration(c))) = c.resource else {
            panic!()
        };
        assert!(matches!(c.bfd, Some(BfdAnnotation::Invalid(ref m)) if m.contains("multiplier")));
    }

    #[test]
    fn invalid_custom_resource_is_an_error_naming_it() {
        let bad = json!({"metadata": {"name": "p"}, "spec": {"cidr": "not-a-cidr"}});
        let e = custom(Kind::IpPool, &bad).resource.unwrap_err().to_string();
        assert!(e.contains("IPPool 'p'") && e.contains("cidr"), "{e}");
    }

    #[test]
    fn secrets_decode_base64_data() {
        let s = json!({"metadata": {"name": "bgp", "namespace": "kube-system"},
                       "data": {"tor": "czNjcjN0"}, "type": "Opaque"});
        let Ok(Some(Resource::Secret(s))) = secret(&s).resource else {
            panic!()
        };
        assert_eq!(s.namespace, "kube-system");
        assert_eq!(s.data.get("tor").map(String::as_str), Some("s3cr3t"));
    }
}
