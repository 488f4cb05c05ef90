//! Invalid resources are skipped with a problem naming the resource, the field and why (a
//! text that is not YAML at all is an error); nothing panics; unknown kinds and fields are
//! ignored.

use tabby_topology::*;

/// The one thing wrong with `yaml`: the file-level error, or the one problem of the one
/// document (which must then have been skipped).
fn err(yaml: &str) -> String {
    match Resources::from_yaml_str(yaml, "test.yaml") {
        Err(e) => e.to_string(),
        Ok(r) if r.problems.len() == 1 && r.is_empty() => r.problems[0].clone(),
        Ok(r) => panic!("accepted: {r:?}"),
    }
}

fn obj(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}\n"
    )
}

fn assert_names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} lacks {p:?}");
    }
}

#[test]
fn bad_peer_fields() {
    let e = err(&obj(
        "BGPPeer",
        "p1",
        "  peerIP: 198.18.0.300\n  asNumber: 65000",
    ));
    assert_names(&e, &["BGPPeer 'p1'", "spec.peerIP", "198.18.0.300"]);
    // asNumber is optional with peerIP (derivation resolves it, or warns).
    let ok = Resources::from_yaml_str(&obj("BGPPeer", "p2", "  peerIP: 198.18.0.3"), "t").unwrap();
    assert!(ok.problems.is_empty() && ok.bgp_peers["p2"].as_number.is_none());
    let e = err(&obj(
        "BGPPeer",
        "p3",
        "  peerIP: 198.18.0.3\n  asNumber: -5",
    ));
    assert_names(&e, &["spec.asNumber", "AS number"]);
    let e = err(&obj("BGPPeer", "p4", "  peerSelector: rack = 'a'"));
    assert_names(&e, &["BGPPeer 'p4'", "spec.peerSelector", "position"]);
    let e = err(&obj(
        "BGPPeer",
        "p5",
        "  node: n1\n  nodeSelector: all()\n  peerIP: 198.18.0.3\n  asNumber: 1",
    ));
    assert_names(&e, &["spec.nodeSelector", "cannot both"]);
    let e = err(&obj(
        "BGPPeer",
        "p6",
        "  peerIP: 198.18.0.3\n  asNumber: 1\n  ttlSecurity: 300",
    ));
    assert_names(&e, &["spec.ttlSecurity", "255"]);
    let e = err(&obj(
        "BGPPeer",
        "p7",
        "  peerIP: 198.18.0.3\n  asNumber: 1\n  maxRestartTime: 120",
    ));
    assert_names(&e, &["spec.maxRestartTime", "duration"]);
    let e = err(&obj(
        "BGPPeer",
        "p8",
        "  peerIP: 198.18.0.3\n  asNumber: 1\n  nextHopMode: Sometimes",
    ));
    assert_names(&e, &["spec.nextHopMode", "Sometimes"]);
    let e = err(&obj(
        "BGPPeer",
        "p9",
        "  peerIP: 198.18.0.3\n  asNumber: 1\n  password:\n    secretKeyRef:\n      name: s",
    ));
    assert_names(&e, &["spec.password.secretKeyRef.key"]);
    let e = err(&obj(
        "BGPPeer",
        "p10",
        "  peerIP: 198.18.0.3\n  asNumber: 1\n  filters: edge",
    ));
    assert_names(&e, &["spec.filters", "list"]);
    let e = err(&obj(
        "BGPPeer",
        "p11",
        "  peerSelector: all()\n  asNumber: 1",
    ));
    assert_names(&e, &["spec.peerSelector", "asNumber"]);
    let e = err(&obj("BGPPeer", "p12", "  asNumber: 1"));
    assert_names(&e, &["spec.peerIP", "peerSelector"]);
    let e = err(&obj(
        "BGPPeer",
        "p13",
        "  peerIP: \"198.18.0.3:0\"\n  asNumber: 1",
    ));
    assert_names(&e, &["spec.peerIP", "port 0"]);
}

#[test]
fn bad_node_pool_filter_config_affinity() {
    let e = err(&obj(
        "Node",
        "n1",
        "  bgp:\n    ipv4Address: 2001:db8::1/64",
    ));
    assert_names(&e, &["Node 'n1'", "spec.bgp.ipv4Address", "not IPv4"]);
    let e = err(&obj(
        "Node",
        "n2",
        "  bgp:\n    ipv4Address: 198.18.0.1\n    routeReflectorClusterID: abc",
    ));
    assert_names(&e, &["Node 'n2'", "routeReflectorClusterID"]);
    let e = err(&obj("Node", "n3", "  bgp: [1, 2]"));
    assert_names(&e, &["spec.bgp", "mapping"]);
    let e = err(&obj("IPPool", "p", "  cidr: 100.64.0.1/16"));
    assert_names(&e, &["IPPool 'p'", "spec.cidr", "100.64.0.0/16"]);
    let e = err(&obj(
        "IPPool",
        "p",
        "  cidr: 100.64.0.0/24\n  blockSize: 20",
    ));
    assert_names(&e, &["spec.blockSize", "fit"]);
    let e = err(&obj(
        "IPPool",
        "p",
        "  cidr: 100.64.0.0/16\n  blockSize: 40",
    ));
    assert_names(&e, &["spec.blockSize"]);
    let e = err(&obj(
        "IPPool",
        "p",
        "  cidr: 100.64.0.0/16\n  ipipMode: Always\n  vxlanMode: Always",
    ));
    assert_names(&e, &["spec.vxlanMode", "both"]);
    let e = err(&obj(
        "IPPool",
        "p",
        "  cidr: 2001:db8:1000::/48\n  ipipMode: Always",
    ));
    assert_names(&e, &["spec.ipipMode", "IPv4"]);
    let e = err(&obj("IPPool", "p", "  blockSize: 26"));
    assert_names(&e, &["spec.cidr", "required"]);
    let e = err(&obj(
        "BGPFilter",
        "f",
        "  exportV4:\n    - action: Accept\n      matchOperator: In\n      cidr: 2001:db8::/32",
    ));
    assert_names(&e, &["BGPFilter 'f'", "spec.exportV4[0].cidr", "IPv4"]);
    let e = err(&obj(
        "BGPFilter",
        "f",
        "  importV4:\n    - action: Accept\n    - action: Maybe",
    ));
    assert_names(&e, &["spec.importV4[1].action", "Maybe"]);
    let e = err(&obj(
        "BGPFilter",
        "f",
        "  importV4:\n    - action: Accept\n      cidr: 100.64.0.0/16",
    ));
    assert_names(&e, &["spec.importV4[0].matchOperator"]);
    let e = err(&obj(
        "BGPFilter",
        "f",
        "  importV4:\n    - action: Accept\n      matchOperator: In\n      cidr: 100.64.0.0/16\n      prefixLength: {min: 8}",
    ));
    assert_names(&e, &["spec.importV4[0].prefixLength"]);
    let e = err(&obj("BGPConfiguration", "node.n1", "  asNumber: 65000"));
    assert_names(
        &e,
        &["BGPConfiguration 'node.n1'", "spec.asNumber", "default"],
    );
    let e = err(&obj("BGPConfiguration", "other", "  listenPort: 1790"));
    assert_names(&e, &["metadata.name"]);
    let e = err(&obj("BGPConfiguration", "default", "  listenPort: 70000"));
    assert_names(&e, &["spec.listenPort", "65535"]);
    let e = err(&obj(
        "BGPConfiguration",
        "default",
        "  nodeToNodeMeshEnabled: maybe",
    ));
    assert_names(&e, &["spec.nodeToNodeMeshEnabled", "true or false"]);
    let e = err(&obj(
        "BGPConfiguration",
        "default",
        "  prefixAdvertisements:\n    - cidr: 100.64.0.0/16\n      communities: [nosuch]",
    ));
    assert_names(
        &e,
        &["spec.prefixAdvertisements[0].communities[0]", "nosuch"],
    );
    let e = err(&obj(
        "BGPConfiguration",
        "default",
        "  communities:\n    - name: big\n      value: \"70000:1\"",
    ));
    assert_names(&e, &["spec.communities[0].value"]);
    let e = err(&obj(
        "BGPConfiguration",
        "default",
        "  bindMode: Everywhere",
    ));
    assert_names(&e, &["spec.bindMode"]);
    let e = err(&obj(
        "BlockAffinity",
        "b",
        "  node: n1\n  cidr: 100.64.0.0/26\n  state: maybe",
    ));
    assert_names(&e, &["BlockAffinity 'b'", "spec.state"]);
    let e = err(&obj("BlockAffinity", "b", "  cidr: 100.64.0.0/26"));
    assert_names(&e, &["spec.node", "required"]);
    let e = err("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '!!!'}\n");
    assert_names(&e, &["Secret 's'", "data.k", "base64"]);
}

#[test]
fn structural_errors() {
    let e = err("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {}\n");
    assert_names(&e, &["document 1", "metadata.name"]);
    let e = err("kind: Node\n  bad: [indent\n");
    assert_names(&e, &["test.yaml"]);
    let e = err("- just\n- a list\n");
    assert_names(&e, &["mapping"]);
    let twice = format!(
        "{}---\n{}",
        obj("Node", "n1", "  bgp: {}"),
        obj("Node", "n1", "  bgp: {}")
    );
    let r = Resources::from_yaml_str(&twice, "test.yaml").unwrap();
    assert_eq!(r.nodes.len(), 1);
    assert_names(
        &r.problems.join("\n"),
        &["document 2", "Node 'n1'", "twice"],
    );
    let e = err("apiVersion: projectcalico.org/v3\nkind: List\nitems: 5\n");
    assert_names(&e, &["items"]);
    // The problem names the document it is in; the good one loads.
    let r = Resources::from_yaml_str(
        &format!(
            "{}---\n{}",
            obj("Node", "ok", "  bgp: {}"),
            obj("IPPool", "bad", "  cidr: nope")
        ),
        "test.yaml",
    )
    .unwrap();
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.problems.len(), 1);
    assert_names(
        &r.problems[0],
        &[
            "test.yaml: document 2",
            "IPPool 'bad'",
            "spec.cidr",
            "skipped",
        ],
    );
    // A key given twice makes the document unusable (calicoctl decodes strictly).
    let e = err(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 100.64.0.0/16, cidr: 100.65.0.0/16}\n",
    );
    assert_names(&e, &["document 1", "'cidr'", "twice"]);
}

#[test]
fn unknown_kinds_and_fields_are_ignored() {
    let text = "\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: x}
spec: {selector: all()}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: n1
  resourceVersion: '12'
  uid: abc
spec:
  bgp:
    ipv4Address: 198.18.0.1
    futureField: 1
  orchRefs: [{nodeName: n1}]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: p}
spec: {peerIP: 198.18.0.2, asNumber: 65000, someNewKnob: true}
---
";
    let r = Resources::from_yaml_str(text, "t").unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r.nodes["n1"].ipv4.unwrap().to_string(), "198.18.0.1/32");
    // Empty documents and an empty file are fine.
    assert!(Resources::from_yaml_str("", "t").unwrap().is_empty());
    assert!(
        Resources::from_yaml_str("---\n---\n", "t")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "{{{{",
        "]",
        "kind: Node\nmetadata: 5",
        "kind: BGPPeer\nmetadata: {name: x}\nspec: 7",
        "kind: BGPPeer\nmetadata: {name: x}\nspec: {peerIP: [1]}",
        "kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 100.64.0.0/99}",
        "kind: BGPFilter\nmetadata: {name: f}\nspec: {exportV4: [5]}",
        "kind: List\nitems: [5]",
        "kind: Secret\nmetadata: {name: s}\nstringData: [1]",
        "kind: Node\nmetadata: {name: n, labels: {a: [1]}}",
        "kind: BGPConfiguration\nmetadata: {name: default}\nspec: {serviceClusterIPs: [5]}",
        "kind: BGPPeer\nmetadata: {name: x}\nspec: {peerIP: 198.18.0.2, asNumber: \"1.99999\"}",
        "kind: BGPPeer\nmetadata: {name: x}\nspec: {peerSelector: \"has(a) && (\"}",
    ];
    for s in samples {
        match Resources::from_yaml_str(s, "g") {
            Err(_) => {}
            Ok(r) => assert!(r.is_empty() && r.problems.len() == 1, "{s}: {r:?}"),
        }
    }
}

#[test]
fn typed_lists_give_their_items_a_kind() {
    let text = "\
apiVersion: projectcalico.org/v3
kind: BGPPeerList
items:
  - metadata: {name: a}
    spec: {peerIP: 198.18.0.1, asNumber: 65000}
  - apiVersion: projectcalico.org/v3
    kind: BGPPeer
    metadata: {name: b}
    spec: {peerIP: 198.18.0.2, asNumber: 65000}
";
    let r = Resources::from_yaml_str(text, "t").unwrap();
    assert_eq!(r.bgp_peers.keys().collect::<Vec<_>>(), vec!["a", "b"]);
}
