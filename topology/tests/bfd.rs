//! BFD from the `tabby-routing.io/bfd` annotation: a BGPPeer's reaches the sessions it
//! derives, BGPConfiguration `default`'s the mesh, `node.<name>`'s overrides it for that
//! node; a bad value is a warning, never a rejected resource, and its sessions run
//! without BFD.

use std::net::IpAddr;
use std::time::Duration;

use tabby_topology::*;

/// Three nodes (node-c IPv4 only), a mesh, and three BGPPeers: `tor` (rack r1, annotated),
/// `transit` (global, not annotated) and `edge` (global IPv6, multihop).
const CLUSTER: &str = r#"
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
  annotations:
    tabby-routing.io/bfd: '{"interval":"200ms","multiplier":4}'
spec:
  asNumber: 64512
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 198.18.0.11/24, ipv6Address: "2001:db8::11/64"}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b, labels: {rack: r1}}
spec: {bgp: {ipv4Address: 198.18.0.12/24, ipv6Address: "2001:db8::12/64"}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-c, labels: {rack: r2}}
spec: {bgp: {ipv4Address: 198.18.0.13/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
  annotations:
    tabby-routing.io/bfd: '{"minTx":"100ms","minRx":"150ms","graceful":true,"waitForUp":true}'
spec:
  nodeSelector: rack == 'r1'
  peerIP: 198.51.100.1
  asNumber: 65100
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: transit}
spec: {peerIP: 203.0.113.1, asNumber: 65200}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: edge
  annotations:
    tabby-routing.io/bfd: |
      {"multihop": true, "minTTL": 250, "interval": "1s", "passive": true}
spec:
  peerIP: "2001:db8:ff::1"
  asNumber: 65300
"#;

const TOR_ANNOTATION: &str =
    r#"'{"minTx":"100ms","minRx":"150ms","graceful":true,"waitForUp":true}'"#;

fn derive_from(text: &str, node: &str) -> NodeState {
    let res = Resources::from_yaml_str(text, "inline").unwrap_or_else(|e| panic!("{e}"));
    derive(&res, node).unwrap()
}

/// CLUSTER with `from` replaced by `to` (which must be there).
fn edited(from: &str, to: &str) -> String {
    assert!(CLUSTER.contains(from), "cluster lacks {from:?}");
    CLUSTER.replacen(from, to, 1)
}

/// CLUSTER plus one more document.
fn with(doc: &str) -> String {
    format!("{CLUSTER}---\n{doc}")
}

fn key(ip: &str) -> PeerKey {
    PeerKey {
        address: ip.parse::<IpAddr>().unwrap(),
        port: 179,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn bfd_warnings(s: &NodeState) -> Vec<&String> {
    s.warnings
        .iter()
        .filter(|w| w.contains("tabby-routing.io/bfd"))
        .collect()
}

/// The mesh sessions of node-a: node-b on both families, node-c on IPv4.
const MESH: [&str; 3] = ["198.18.0.12", "2001:db8::12", "198.18.0.13"];

#[test]
fn a_bgppeer_annotation_reaches_its_sessions_only() {
    let s = derive_from(CLUSTER, "node-a");
    let tor = &s.peers[&key("198.51.100.1")];
    assert_eq!(tor.origin, "BGPPeer tor");
    assert_eq!(
        tor.bfd,
        Some(BfdSettings {
            min_tx: ms(100),
            min_rx: ms(150),
            graceful: true,
            wait_for_up: true,
            ..BfdSettings::DEFAULT
        })
    );
    let edge = &s.peers[&key("2001:db8:ff::1")];
    assert_eq!(
        edge.bfd,
        Some(BfdSettings {
            min_tx: ms(1000),
            min_rx: ms(1000),
            multihop: true,
            min_ttl: 250,
            passive: true,
            ..BfdSettings::DEFAULT
        })
    );
    // Another BGPPeer's sessions stay without BFD; so does the BGP session's own
    // passive flag, which BFD's passive has nothing to do with.
    let transit = &s.peers[&key("203.0.113.1")];
    assert_eq!(transit.bfd, None);
    assert!(!edge.passive);
    assert!(bfd_warnings(&s).is_empty(), "{:?}", s.warnings);
    // node-c is not in rack r1: no tor session, and nothing about it.
    let c = derive_from(CLUSTER, "node-c");
    assert!(!c.peers.contains_key(&key("198.51.100.1")));
    assert_eq!(c.peers[&key("203.0.113.1")].bfd, None);
}

#[test]
fn the_default_configuration_annotation_reaches_mesh_sessions_only() {
    let s = derive_from(CLUSTER, "node-a");
    let mesh = BfdSettings {
        min_tx: ms(200),
        min_rx: ms(200),
        multiplier: 4,
        ..BfdSettings::DEFAULT
    };
    for ip in MESH {
        let p = &s.peers[&key(ip)];
        assert_eq!(p.kind, PeerKind::Mesh, "{ip}");
        assert_eq!(p.bfd, Some(mesh), "{ip}");
    }
    // Not the explicit peerings: BGPPeers carry their own.
    assert_eq!(s.peers[&key("203.0.113.1")].bfd, None);
    assert_eq!(s.peers[&key("198.51.100.1")].bfd.unwrap().multiplier, 3);
    // Every node's mesh: node-c's towards node-a too.
    let c = derive_from(CLUSTER, "node-c");
    assert_eq!(c.peers[&key("198.18.0.11")].bfd, Some(mesh));
    // Without the annotation, no BFD on the mesh.
    let plain = edited(
        "  annotations:\n    tabby-routing.io/bfd: '{\"interval\":\"200ms\",\"multiplier\":4}'\n",
        "",
    );
    let s = derive_from(&plain, "node-a");
    assert!(MESH.iter().all(|ip| s.peers[&key(ip)].bfd.is_none()));
}

#[test]
fn a_node_configuration_overrides_the_mesh_default_for_that_node() {
    let text = with(
        r#"apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: node.node-a
  annotations: {tabby-routing.io/bfd: '{"interval":"50ms","multiplier":5}'}
spec: {logSeverityScreen: Debug}
"#,
    );
    let s = derive_from(&text, "node-a");
    for ip in MESH {
        let b = s.peers[&key(ip)].bfd.unwrap();
        assert_eq!(
            (b.min_tx, b.min_rx, b.multiplier),
            (ms(50), ms(50), 5),
            "{ip}"
        );
    }
    // Other nodes keep the default; BGPPeer sessions are not the mesh's.
    let b = derive_from(&text, "node-b");
    assert_eq!(b.peers[&key("198.18.0.11")].bfd.unwrap().multiplier, 4);
    assert_eq!(s.peers[&key("203.0.113.1")].bfd, None);
    assert_eq!(s.peers[&key("198.51.100.1")].bfd.unwrap().min_tx, ms(100));

    // A node configuration without the annotation inherits default's.
    let text = with(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.node-a}\nspec: {logSeverityScreen: Debug}\n",
    );
    let s = derive_from(&text, "node-a");
    assert!(
        MESH.iter()
            .all(|ip| s.peers[&key(ip)].bfd.unwrap().multiplier == 4)
    );

    // Only a node configuration can turn BFD on for the mesh of one node.
    let plain = edited(
        "    tabby-routing.io/bfd: '{\"interval\":\"200ms\",\"multiplier\":4}'\n",
        "    unrelated: x\n",
    );
    let text = format!(
        "{plain}---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.node-c\n  annotations: {{tabby-routing.io/bfd: enabled}}\n"
    );
    let c = derive_from(&text, "node-c");
    assert_eq!(c.peers[&key("198.18.0.11")].bfd, Some(BfdSettings::DEFAULT));
    assert_eq!(
        derive_from(&text, "node-a").peers[&key("198.18.0.13")].bfd,
        None
    );
}

#[test]
fn false_on_a_node_configuration_turns_the_mesh_default_off() {
    for off in ["\"false\"", "disabled", "'{\"enabled\":false}'"] {
        let text = with(&format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.node-a\n  annotations:\n    tabby-routing.io/bfd: {off}\n"
        ));
        let s = derive_from(&text, "node-a");
        assert!(
            MESH.iter().all(|ip| s.peers[&key(ip)].bfd.is_none()),
            "{off}"
        );
        // Only the mesh: the BGPPeer keeps its own.
        assert!(s.peers[&key("198.51.100.1")].bfd.is_some(), "{off}");
        assert!(bfd_warnings(&s).is_empty(), "{off}: {:?}", s.warnings);
        assert!(
            derive_from(&text, "node-b").peers[&key("198.18.0.11")]
                .bfd
                .is_some()
        );
    }
    // "false" on the BGPPeer itself: its sessions without BFD.
    let s = derive_from(&edited(TOR_ANNOTATION, "\"false\""), "node-a");
    assert_eq!(s.peers[&key("198.51.100.1")].bfd, None);
}

#[test]
fn a_bad_bgppeer_value_is_one_warning_and_its_sessions_run_without_bfd() {
    let text = edited(TOR_ANNOTATION, r#"'{"interval":"5ms"}'"#);
    // Loading does not fail: the resource is there.
    let res = Resources::from_yaml_str(&text, "inline").unwrap();
    assert!(matches!(
        res.bgp_peers["tor"].bfd,
        Some(BfdAnnotation::Invalid(_))
    ));
    let s = derive(&res, "node-a").unwrap();
    let tor = &s.peers[&key("198.51.100.1")];
    assert_eq!(tor.origin, "BGPPeer tor");
    assert_eq!(tor.bfd, None);
    assert_eq!(
        bfd_warnings(&s),
        vec![
            "BGPPeer 'tor': annotation tabby-routing.io/bfd: \"interval\" '5ms' is below 10ms; BFD is off for its sessions until fixed"
        ]
    );
    // The rest is as before: the mesh and the other BGPPeers keep their BFD.
    let good = derive_from(CLUSTER, "node-a");
    for (k, p) in &s.peers {
        if *k != tor.key {
            assert_eq!(*p, good.peers[k], "{k}");
        }
    }
    assert_eq!(s.peers.len(), good.peers.len());
    // Only where it applies: node-c has no session from `tor`, so no warning.
    assert!(bfd_warnings(&derive_from(&text, "node-c")).is_empty());
}

#[test]
fn one_warning_per_bgppeer_not_per_session() {
    // A BGPPeer deriving three sessions on node-a (node-b on both families, node-c on
    // IPv4; they replace the mesh's) warns once.
    let text = with(
        r#"apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack-mesh
  annotations: {tabby-routing.io/bfd: '{"multiplier":0,"minTTL":9}'}
spec: {peerSelector: all()}
"#,
    );
    let s = derive_from(&text, "node-a");
    let from_it: Vec<&Peer> = s
        .peers
        .values()
        .filter(|p| p.origin == "BGPPeer rack-mesh")
        .collect();
    assert_eq!(from_it.len(), 3, "{:#?}", s.peers.keys());
    assert!(from_it.iter().all(|p| p.bfd.is_none()));
    assert_eq!(
        bfd_warnings(&s),
        vec![
            "BGPPeer 'rack-mesh': annotation tabby-routing.io/bfd: \"multiplier\" '0' is not a whole number from 1 to 255; \"minTTL\" applies to multihop sessions only (single-hop BFD requires TTL 255, RFC 5881 §5): add \"multihop\":true or remove \"minTTL\"; BFD is off for its sessions until fixed"
        ]
    );
}

#[test]
fn a_bad_mesh_value_warns_and_the_mesh_runs_without_bfd() {
    let text = edited(
        r#"'{"interval":"200ms","multiplier":4}'"#,
        r#"'{"interval":"200ms","multiplier":4,"intervall":"1s"}'"#,
    );
    let s = derive_from(&text, "node-a");
    assert!(MESH.iter().all(|ip| s.peers[&key(ip)].bfd.is_none()));
    assert_eq!(
        bfd_warnings(&s),
        vec![
            "BGPConfiguration 'default': annotation tabby-routing.io/bfd: unknown key \"intervall\" (known keys: interval, minTx, minRx, multiplier, multihop, minTTL, passive, waitForUp, graceful, enabled); BFD is off for the node-to-node mesh sessions until fixed"
        ]
    );
    // The BGPPeers are unaffected.
    assert_eq!(s.peers[&key("198.51.100.1")].bfd.unwrap().min_rx, ms(150));
    assert_eq!(s.peers.len(), derive_from(CLUSTER, "node-a").peers.len());

    // A good node override hides the bad default on that node (which then has nothing
    // to warn about); a bad node override is named itself.
    let good = format!(
        "{text}---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.node-a\n  annotations: {{tabby-routing.io/bfd: \"true\"}}\n"
    );
    let s = derive_from(&good, "node-a");
    assert!(MESH.iter().all(|ip| s.peers[&key(ip)].bfd.is_some()));
    assert!(bfd_warnings(&s).is_empty(), "{:?}", s.warnings);
    let bad = with(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: node.node-a\n  annotations: {tabby-routing.io/bfd: sometimes}\n",
    );
    let s = derive_from(&bad, "node-a");
    assert!(MESH.iter().all(|ip| s.peers[&key(ip)].bfd.is_none()));
    assert_eq!(
        bfd_warnings(&s),
        vec![
            "BGPConfiguration 'node.node-a': annotation tabby-routing.io/bfd: 'sometimes' is not true, false, enabled, disabled or a JSON object such as {\"interval\":\"300ms\",\"multiplier\":3}; BFD is off for the node-to-node mesh sessions until fixed"
        ]
    );
    // No mesh, nothing to warn about.
    let nomesh = text.replace(
        "  asNumber: 64512",
        "  asNumber: 64512\n  nodeToNodeMeshEnabled: false",
    );
    let s = derive_from(&nomesh, "node-a");
    assert!(s.peers.values().all(|p| p.kind != PeerKind::Mesh));
    assert!(bfd_warnings(&s).is_empty());
}

#[test]
fn unquoted_yaml_values_read_as_calicoctl_reads_them() {
    // calicoctl decodes annotations into strings: an unquoted `true` (or YAML 1.1's `on`)
    // is "true", `off` is "false".
    for on in ["true", "on", "yes"] {
        let s = derive_from(&edited(TOR_ANNOTATION, on), "node-a");
        assert_eq!(
            s.peers[&key("198.51.100.1")].bfd,
            Some(BfdSettings::DEFAULT),
            "{on}"
        );
        assert!(bfd_warnings(&s).is_empty());
    }
    let s = derive_from(&edited(TOR_ANNOTATION, "off"), "node-a");
    assert_eq!(s.peers[&key("198.51.100.1")].bfd, None);
    assert!(bfd_warnings(&s).is_empty());
    // A YAML mapping is no string at all: a warning, not a rejected file.
    let s = derive_from(&edited(TOR_ANNOTATION, "{interval: 300ms}"), "node-a");
    assert_eq!(s.peers[&key("198.51.100.1")].bfd, None);
    assert_eq!(
        bfd_warnings(&s),
        vec![
            "BGPPeer 'tor': annotation tabby-routing.io/bfd: found a mapping, but annotation values are strings: quote it, as in \"true\" or '{\"interval\":\"300ms\",\"multiplier\":3}'; BFD is off for its sessions until fixed"
        ]
    );
    // Empty: as if not annotated.
    let s = derive_from(&edited(TOR_ANNOTATION, "''"), "node-a");
    assert_eq!(s.peers[&key("198.51.100.1")].bfd, None);
    assert!(bfd_warnings(&s).is_empty());
}

async fn next(src: &mut FileSource) -> std::sync::Arc<Resources> {
    tokio::time::timeout(Duration::from_secs(10), src.next())
        .await
        .expect("file source produced nothing within 10 s")
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_file_source_applies_bfd_edits_and_keeps_a_bad_value_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    let write = |text: &str| {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    write(CLUSTER);
    let mut src = FileSource::new(path.clone()).with_interval(Duration::from_millis(50));
    let first = derive(&*next(&mut src).await, "node-a").unwrap();

    // Slower timers: one change, BFD only, no reset.
    write(&edited(TOR_ANNOTATION, r#"'{"interval":"1s"}'"#));
    let second = derive(&*next(&mut src).await, "node-a").unwrap();
    let changes = diff(&first, &second);
    assert_eq!(
        changes,
        vec![Change::PeerChanged {
            key: key("198.51.100.1"),
            fields: vec![PeerField::Bfd]
        }]
    );
    assert!(!changes[0].needs_reset());

    // A bad value: still a snapshot (not an error), BFD off there, a warning.
    write(&edited(TOR_ANNOTATION, r#"'{"interval":"1 s"}'"#));
    let third = derive(&*next(&mut src).await, "node-a").unwrap();
    assert_eq!(third.peers[&key("198.51.100.1")].bfd, None);
    assert_eq!(bfd_warnings(&third).len(), 1);
    assert_eq!(third.peers.len(), first.peers.len());
}
