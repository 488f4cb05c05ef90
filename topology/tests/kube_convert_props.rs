//! Whatever the Kubernetes API hands over, converting it never panics: an object of any
//! shape (Calico's field names with values of any type, annotations of any text) becomes
//! a resource, "not ours", or an error naming it.

use proptest::prelude::*;
use serde_json::{Value, json};
use tabby_topology::Kind;
use tabby_topology::source::kube::convert;

/// Calico's and Kubernetes' own field names, so values land where parsing looks.
fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "metadata",
        "name",
        "labels",
        "annotations",
        "spec",
        "peerIP",
        "asNumber",
        "node",
        "nodeSelector",
        "peerSelector",
        "password",
        "secretKeyRef",
        "key",
        "cidr",
        "blockSize",
        "ipipMode",
        "state",
        "deleted",
        "data",
        "stringData",
        "exportV4",
        "importV6",
        "action",
        "communities",
        "prefixAdvertisements",
        "listenPort",
        "keepaliveTime",
        "filters",
    ])
    .prop_map(str::to_string)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[ -~]{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "192.0.2.1",
            "2001:db8::1/64",
            "198.51.100.0/26",
            "65001",
            "1.10",
            "true",
            "confirmed",
            "all()",
            "has(rr)",
            "{\"a\":\"b\"}",
            "{\"labels\":{\"x\":\"y\"}}",
            "czNjcjN0",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Node annotations of Calico's names with any text.
fn node_object() -> impl Strategy<Value = Value> {
    let ann = prop::collection::btree_map(
        prop::sample::select(vec![
            "projectcalico.org/IPv4Address",
            "projectcalico.org/IPv6Address",
            "projectcalico.org/ASNumber",
            "projectcalico.org/RouteReflectorClusterID",
            "projectcalico.org/labels",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,30}",
        0..5,
    );
    let labels = prop::collection::btree_map("[a-z./-]{1,12}", "[ -~]{0,8}", 0..4);
    ("[a-z0-9-]{0,10}", ann, labels).prop_map(|(name, ann, labels)| {
        json!({"metadata": {"name": name, "annotations": ann, "labels": labels}})
    })
}

/// A `tabby-routing.io/bfd` value: any text, or a JSON object of its keys (and others) with
/// values of any type.
fn bfd_value() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "interval",
        "minTx",
        "minRx",
        "multiplier",
        "multihop",
        "minTTL",
        "passive",
        "waitForUp",
        "graceful",
        "enabled",
        "MinTx",
        "other",
    ])
    .prop_map(str::to_string);
    let values = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[0-9.]{0,6}(ns|us|ms|s|m|h)?".prop_map(Value::String),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    prop_oneof![
        "[ -~]{0,40}",
        prop::collection::btree_map(keys, values, 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect()).to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_bfd_annotation_never_fails_its_resource(value in bfd_value()) {
        let peer = json!({"metadata": {"name": "tor", "annotations": {"tabby-routing.io/bfd": value}},
                          "spec": {"peerIP": "192.0.2.1", "asNumber": 65001}});
        let c = convert::custom(Kind::BgpPeer, &peer);
        let Ok(Some(tabby_topology::Resource::BgpPeer(p))) = c.resource else {
            return Err(TestCaseError::fail(format!("{value:?}: {:?}", c.resource)));
        };
        // Absent only when empty; settings, when on, within the documented ranges.
        prop_assert_eq!(p.bfd.is_none(), value.trim().is_empty());
        if let Some(s) = p.bfd.as_ref().and_then(tabby_topology::BfdAnnotation::settings) {
            for d in [s.min_tx, s.min_rx] {
                prop_assert!(d >= tabby_topology::BFD_MIN_INTERVAL && d <= tabby_topology::BFD_MAX_INTERVAL);
            }
            prop_assert!(s.multiplier >= 1 && s.min_ttl >= 1);
        }
    }

    #[test]
    fn any_object_converts_without_panicking(v in json_value()) {
        let _ = convert::node(&v);
        let _ = convert::secret(&v);
        for kind in [Kind::BgpConfiguration, Kind::BgpPeer, Kind::BgpFilter, Kind::IpPool, Kind::BlockAffinity] {
            let _ = convert::custom(kind, &v);
        }
    }

    #[test]
    fn a_node_with_a_name_is_always_kept(v in node_object()) {
        let named = v["metadata"]["name"].as_str().is_some_and(|n| !n.is_empty());
        let c = convert::node(&v);
        // Bad annotations are dropped with a warning, never fatal for a named Node.
        prop_assert_eq!(c.resource.is_ok(), named, "{:?}", c.resource);
    }
}
