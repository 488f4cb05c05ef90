//! Parity with Calico's confd/calicoctl, round two (issue 16). Each test states the Calico
//! rule it follows; the rules were read from confd's peer expansion (`client.go`
//! `updatePeersV1`, `nodeAsBGPPeers`, `nodesWithIPPortAndAS`), its rendering
//! (`bgp_processor.go`, the `bird*.cfg.template`s), `HashToIPv4` and calicoctl's YAML
//! decoding (sigs.k8s.io/yaml over a YAML 1.1 parser). The resources here are written for
//! these tests.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use tabby_topology::*;

fn key(ip: &str, port: u16) -> PeerKey {
    PeerKey {
        address: ip.parse::<IpAddr>().unwrap(),
        port,
    }
}

fn load(text: &str) -> Resources {
    Resources::from_yaml_str(text, "inline").unwrap_or_else(|e| panic!("{e}"))
}

/// Two plain nodes, `lo` (198.18.0.11) and `hi` (198.18.0.2): "198.18.0.2" is the greater
/// string, so wherever Calico makes a session one-way, `lo` waits and `hi` connects.
const TWO_NODES: &str = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false, asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: lo, labels: {peering: 'on'}}
spec: {bgp: {ipv4Address: 198.18.0.11/24, ipv6Address: '2001:db8::11/64'}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: hi, labels: {peering: 'on'}}
spec: {bgp: {ipv4Address: 198.18.0.2/24, ipv6Address: '2001:db8::2/64'}}
";

/// A BGPPeer document.
fn bgp_peer(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

/// [`TWO_NODES`] and a BGPPeer for each `(name, spec)`.
fn with(peers: &[(&str, &str)]) -> Resources {
    let peers: Vec<String> = peers.iter().map(|(n, s)| bgp_peer(n, s)).collect();
    load(&format!("{TWO_NODES}---\n{}", peers.join("---\n")))
}

/// No mesh; `rr` (198.18.0.9, cluster id 198.18.0.100) labelled `route-reflector:
/// {rr_label}`, `client` (198.18.0.10), and the BGPPeer `to-rr` with `spec`.
fn reflector_and_client(rr_label: &str, spec: &str) -> Resources {
    load(&format!(
        "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {{name: default}}
spec: {{nodeToNodeMeshEnabled: false}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: rr, labels: {{route-reflector: {rr_label}}}}}
spec: {{bgp: {{ipv4Address: 198.18.0.9, routeReflectorClusterID: 198.18.0.100}}}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: client}}
spec: {{bgp: {{ipv4Address: 198.18.0.10}}}}
---
{}",
        bgp_peer("to-rr", spec)
    ))
}

// ---------------------------------------------------------------- 1. who is passive

#[test]
fn global_peer_selector_peerings_are_active_on_both_ends() {
    // confd: peers a peerSelector picks come from nodeAsBGPPeers, which never sets
    // calico_node, so the template's `passive on` (calico_node && ip > node ip) never
    // applies, on either end, even for a global BGPPeer.
    let res = with(&[("all-with-all", "{peerSelector: peering == 'on'}")]);
    for (me, other, other6) in [
        ("lo", "198.18.0.2", "2001:db8::2"),
        ("hi", "198.18.0.11", "2001:db8::11"),
    ] {
        let s = derive(&res, me).unwrap();
        for k in [key(other, 179), key(other6, 179)] {
            let p = &s.peers[&k];
            assert_eq!(p.kind, PeerKind::Global, "{me} → {k}");
            assert!(p.calico_node.is_some());
            assert!(
                !p.passive,
                "{me} → {k}: selector peerings are never passive"
            );
        }
    }
}

#[test]
fn node_specific_peer_selector_peerings_are_active() {
    // Node-specific peerings (node / nodeSelector) are rendered without `passive on` at all,
    // whatever selects the remote side; so are the automatic reverse peerings.
    let res = with(&[("lo-to-hi", "{node: lo, peerSelector: peering == 'on'}")]);
    let lo = derive(&res, "lo").unwrap();
    assert!(!lo.peers[&key("198.18.0.2", 179)].passive);
    let hi = derive(&res, "hi").unwrap();
    let back = &hi.peers[&key("198.18.0.11", 179)];
    assert_eq!(back.kind, PeerKind::Node);
    assert!(!back.passive);
}

#[test]
fn global_peer_ip_naming_a_calico_node_stays_one_way() {
    // The one explicit case confd makes one-way: a global BGPPeer whose peerIP is another
    // Calico node's address (calico_node set) — passive where the peer's address is the
    // greater string, for IPv6 too.
    let res = with(&[
        ("to-hi", "{peerIP: 198.18.0.2, asNumber: 64512}"),
        ("to-hi-v6", "{peerIP: '2001:db8::2', asNumber: 64512}"),
    ]);
    let lo = derive(&res, "lo").unwrap();
    assert!(lo.peers[&key("198.18.0.2", 179)].passive);
    // "2001:db8::2" > "2001:db8::11" as text too: lo waits over IPv6 as well.
    assert!(lo.peers[&key("2001:db8::2", 179)].passive);
    // hi's reverse peerings towards lo are node-specific: active.
    let hi = derive(&res, "hi").unwrap();
    for k in [key("198.18.0.11", 179), key("2001:db8::11", 179)] {
        assert_eq!(hi.peers[&k].kind, PeerKind::Node);
        assert!(!hi.peers[&k].passive, "{k}");
    }
}

#[test]
fn route_reflector_peerings_chosen_by_selector_are_active_both_ways() {
    // The usual reflector layout with a global BGPPeer: clients select the reflector by
    // label. Both ends connect (no calico_node); the reflector still treats the client as
    // an `rr client` (iBGP, cluster id differs), which has no bearing on passive.
    let res = reflector_and_client("'true'", "{peerSelector: route-reflector == 'true'}");
    let client = derive(&res, "client").unwrap();
    let up = &client.peers[&key("198.18.0.9", 179)];
    assert!(!up.passive && !up.rr_client);
    let rr = derive(&res, "rr").unwrap();
    let down = &rr.peers[&key("198.18.0.10", 179)];
    assert!(!down.passive && down.rr_client);
}

#[test]
fn mesh_stays_one_way() {
    let res = load(&TWO_NODES.replace("nodeToNodeMeshEnabled: false, ", ""));
    assert!(derive(&res, "lo").unwrap().peers[&key("198.18.0.2", 179)].passive);
    assert!(!derive(&res, "hi").unwrap().peers[&key("198.18.0.11", 179)].passive);
}

// ------------------------------------------- 3. one bad resource never rejects the rest

#[test]
fn peer_ip_without_as_number_takes_the_calico_nodes_as() {
    // asNumber is optional in the v3 API. confd treats an empty asNumber as the cluster's
    // AS when it matches the address against the Calico nodes (nodesWithIPPortAndAS), so
    // the node owning the address peers back with every selected node, using their ASes.
    let res = with(&[("to-hi", "{peerIP: 198.18.0.2}")]);
    let lo = derive(&res, "lo").unwrap();
    let p = &lo.peers[&key("198.18.0.2", 179)];
    assert_eq!(p.peer_as, 64512);
    assert!(p.internal);
    assert_eq!(p.calico_node.as_deref(), Some("hi"));
    // Named by peerIP and a Calico node's address: one-way like any such global peering.
    assert!(p.passive);
    assert!(lo.warnings.is_empty(), "{:?}", lo.warnings);
    let hi = derive(&res, "hi").unwrap();
    assert_eq!(hi.peers[&key("198.18.0.11", 179)].peer_as, 64512);
}

#[test]
fn peer_ip_without_as_number_uses_that_nodes_own_as() {
    let res = load(&format!(
        "{}---\n{}",
        TWO_NODES.replace(
            "ipv6Address: '2001:db8::2/64'}",
            "ipv6Address: '2001:db8::2/64', asNumber: 65002}"
        ),
        bgp_peer("to-hi", "{node: lo, peerIP: '2001:db8::2'}")
    ));
    let lo = derive(&res, "lo").unwrap();
    let p = &lo.peers[&key("2001:db8::2", 179)];
    assert_eq!(p.peer_as, 65002);
    assert!(!p.internal);
    // confd matches the address to a node only if that node has the cluster's AS (an
    // empty asNumber stands for it), so hi, with its own AS, does not peer back.
    let hi = derive(&res, "hi").unwrap();
    assert!(hi.peers.is_empty(), "{:?}", hi.peers.keys());
}

#[test]
fn peer_ip_without_as_number_to_an_outside_address_is_skipped_with_a_warning() {
    let res = with(&[
        ("mystery", "{peerIP: 203.0.113.7}"),
        ("tor", "{peerIP: 198.51.100.1, asNumber: 65000}"),
    ]);
    let s = derive(&res, "lo").unwrap();
    assert!(!s.peers.contains_key(&key("203.0.113.7", 179)));
    assert_eq!(s.peers[&key("198.51.100.1", 179)].peer_as, 65000);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    let w = &s.warnings[0];
    assert!(
        w.contains("BGPPeer 'mystery'") && w.contains("asNumber") && w.contains("203.0.113.7"),
        "{w}"
    );
}

#[test]
fn one_bad_document_is_skipped_the_rest_loads() {
    let text = format!(
        "{TWO_NODES}---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {{name: broken}}
spec: {{cidr: 100.64.0.1/16}}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {{name: fine}}
spec: {{cidr: 100.65.0.0/16}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeerList
items:
  - metadata: {{name: bad-item}}
    spec: {{peerIP: 198.51.100.300, asNumber: 65000}}
  - metadata: {{name: good-item}}
    spec: {{peerIP: 198.51.100.1, asNumber: 65000}}
"
    );
    let res = Resources::from_yaml_str(&text, "cluster.yaml").unwrap();
    assert_eq!(res.nodes.len(), 2);
    assert_eq!(res.ip_pools.keys().collect::<Vec<_>>(), vec!["fine"]);
    assert_eq!(res.bgp_peers.keys().collect::<Vec<_>>(), vec!["good-item"]);
    assert_eq!(res.problems.len(), 2, "{:?}", res.problems);
    assert!(
        res.problems[0].contains("cluster.yaml: document 4")
            && res.problems[0].contains("IPPool 'broken'")
            && res.problems[0].contains("spec.cidr"),
        "{}",
        res.problems[0]
    );
    assert!(
        res.problems[1].contains("document 6, item 1")
            && res.problems[1].contains("BGPPeer 'bad-item'")
            && res.problems[1].contains("spec.peerIP"),
        "{}",
        res.problems[1]
    );
    derive(&res, "lo").unwrap();
}

#[test]
fn a_second_definition_is_skipped_not_fatal() {
    let text = format!(
        "{TWO_NODES}---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: hi}}
spec: {{bgp: {{ipv4Address: 198.18.0.99}}}}
"
    );
    let res = Resources::from_yaml_str(&text, "t.yaml").unwrap();
    assert_eq!(
        res.nodes["hi"].ipv4_addr(),
        Some("198.18.0.2".parse().unwrap())
    );
    assert_eq!(res.problems.len(), 1);
    assert!(res.problems[0].contains("Node 'hi'") && res.problems[0].contains("twice"));
}

#[test]
fn a_yaml_syntax_error_still_rejects_the_file() {
    let text = format!("{TWO_NODES}---\nkind: BGPPeer\nspec: [unclosed\n");
    let e = Resources::from_yaml_str(&text, "t.yaml").unwrap_err();
    assert!(e.to_string().contains("t.yaml"), "{e}");
}

#[test]
fn this_nodes_own_bad_document_is_a_clear_derivation_error() {
    let text = TWO_NODES.replace("ipv4Address: 198.18.0.11/24", "ipv4Address: 198.18.0.311");
    let res = Resources::from_yaml_str(&text, "t.yaml").unwrap();
    assert_eq!(res.problems.len(), 1);
    // The other node is fine…
    derive(&res, "hi").unwrap();
    // …this one says why it cannot run.
    let e = derive(&res, "lo").unwrap_err().to_string();
    assert!(
        e.contains("'lo'") && e.contains("spec.bgp.ipv4Address"),
        "{e}"
    );
}

// ------------------------------------------------------------- 4. router id, IPv6 only

const V6_ONLY: &str = "
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: v6-only-1}
spec: {bgp: {ipv6Address: '2001:db8::61/64'}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: v6-only-2}
spec: {bgp: {ipv6Address: '2001:db8::62/64'}}
";

#[test]
fn an_ipv6_only_node_without_calico_router_id_names_the_fix() {
    // calico-node renders `router id ;` then (no IPv4 address, no CALICO_ROUTER_ID) and
    // BIRD refuses the configuration: the node cannot run BGP. Tabby refuses too, and
    // says what to set.
    let e = derive(&load(V6_ONLY), "v6-only-1").unwrap_err();
    assert!(matches!(e, TopologyError::NoRouterId(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("CALICO_ROUTER_ID") && msg.contains("hash"),
        "{msg}"
    );
}

fn with_router_id(spec: RouterIdSpec) -> DeriveOptions {
    DeriveOptions {
        router_id: Some(spec),
    }
}

#[test]
fn calico_router_id_hash_lets_an_ipv6_only_node_run() {
    // CALICO_ROUTER_ID=hash: the id calico-node derives from the node name. Expected
    // values computed with a standalone Go program following HashToIPv4's steps.
    let res = load(V6_ONLY);
    let opts = DeriveOptions::from_router_id_env(Some("hash")).unwrap();
    let one = derive_with(&res, "v6-only-1", &opts).unwrap();
    assert_eq!(one.router_id, Ipv4Addr::new(48, 173, 136, 91));
    assert_eq!(hash_router_id("v6-only-1"), one.router_id);
    // Everything else as usual: an IPv6 mesh, one-way by address text.
    let p = &one.peers[&key("2001:db8::62", 179)];
    assert_eq!(p.kind, PeerKind::Mesh);
    assert_eq!(p.source_address, Some("2001:db8::61".parse().unwrap()));
    assert!(p.passive, "\"2001:db8::62\" > \"2001:db8::61\"");
    assert_eq!(one.peers.len(), 1);
    let two = derive_with(&res, "v6-only-2", &opts).unwrap();
    assert_ne!(two.router_id, one.router_id);
    assert!(!two.peers[&key("2001:db8::61", 179)].passive);
}

#[test]
fn calico_router_id_overrides_the_node_address() {
    let res = load(TWO_NODES);
    assert_eq!(
        derive(&res, "lo").unwrap().router_id,
        Ipv4Addr::new(198, 18, 0, 11)
    );
    let fixed = with_router_id(RouterIdSpec::Address(Ipv4Addr::new(198, 19, 0, 1)));
    assert_eq!(
        derive_with(&res, "lo", &fixed).unwrap().router_id,
        Ipv4Addr::new(198, 19, 0, 1)
    );
    // hash applies to dual-stack nodes too, as in calico-node.
    let hashed = derive_with(&res, "lo", &with_router_id(RouterIdSpec::Hash)).unwrap();
    assert_eq!(hashed.router_id, hash_router_id("lo"));
    // Nothing but the id changes.
    let plain = derive(&res, "lo").unwrap();
    assert_eq!(
        NodeState {
            router_id: plain.router_id,
            ..hashed
        },
        plain
    );
    // The default options are today's derive().
    assert_eq!(
        derive_with(&res, "hi", &DeriveOptions::default()).unwrap(),
        derive(&res, "hi").unwrap()
    );
}

#[test]
fn a_bad_calico_router_id_is_refused_naming_it() {
    for bad in ["hash ", "0.0.0.0", "2001:db8::1", "router-1"] {
        match DeriveOptions::from_router_id_env(Some(bad)) {
            Ok(o) if bad.trim() == "hash" => assert_eq!(o.router_id, Some(RouterIdSpec::Hash)),
            Ok(o) => panic!("{bad:?} accepted: {o:?}"),
            Err(e) => {
                assert!(matches!(e, TopologyError::BadRouterId(_)));
                assert!(e.to_string().contains("CALICO_ROUTER_ID"), "{e}");
            }
        }
    }
}

// ------------------------------------------------------------ 5. YAML as calicoctl reads it

#[test]
fn unquoted_label_values_read_as_calicoctl_reads_them() {
    // calicoctl: YAML 1.1 (go-yaml v2) then JSON into map[string]string, converting
    // booleans to "true"/"false" and numbers to their decimal text.
    let text = "
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: n1
  labels:
    routeReflector: true
    route-reflector: yes
    a: Y
    b: no
    c: 'on'
    d: off
    e: ON
    f: n
    g: 'yes'
    h: 1.0
    i: 007
    j: 0x1F
    k: 1_000
    l: 2.50
    m: ~
    day: 2024-01-01
    o: \"no\"
    yes: key
  annotations:
    note: on
    count: 12
spec: {bgp: {ipv4Address: 198.18.0.1}}
";
    let res = load(text);
    let labels = &res.nodes["n1"].labels;
    // Quoted 'on' stays the string written; YAML 1.1 reads a leading 0 as octal (007 is 7);
    // keys resolve too (`yes: key` is "true": "key"). Nothing else is a label.
    let want = "routeReflector=true route-reflector=true a=true b=false c=on d=false e=true \
                f=false g=yes h=1 i=7 j=31 k=1000 l=2.5 m= day=2024-01-01 o=no true=key";
    let want: BTreeMap<&str, &str> = want
        .split_whitespace()
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let got: BTreeMap<&str, &str> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_selector_on_true_matches_a_label_written_yes() {
    let res = reflector_and_client(
        "yes",
        "{nodeSelector: \"!has(route-reflector)\", peerSelector: route-reflector == 'true'}",
    );
    let s = derive(&res, "client").unwrap();
    assert_eq!(
        s.peers.keys().copied().collect::<Vec<_>>(),
        vec![key("198.18.0.9", 179)]
    );
}

#[test]
fn unquoted_annotation_values_read_as_strings_too() {
    let text = "
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: n1
  annotations: {projectcalico.org/RouteReflectorClusterID: 198.18.0.100}
spec: {bgp: {ipv4Address: 198.18.0.1}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
  annotations: {tabby-routing.io/bfd: yes}
spec: {peerIP: 198.51.100.1, asNumber: 65000}
";
    let res = load(text);
    assert_eq!(
        res.nodes["n1"].rr_cluster_id,
        Some(Ipv4Addr::new(198, 18, 0, 100))
    );
    let s = derive(&res, "n1").unwrap();
    // `yes` is "true" to calicoctl: BFD on with the defaults.
    assert_eq!(
        s.peers[&key("198.51.100.1", 179)].bfd,
        Some(BfdSettings::DEFAULT)
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}
