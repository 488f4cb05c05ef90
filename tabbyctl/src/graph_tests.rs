//! The DOT text `tabbyctl graph` writes, from a daemon's peers and from a
//! cluster's resources.

use tabby_proto::v1 as pb;
use tabby_topology::Resources;

use super::*;

fn peer(address: &str, port: u32, state: pb::SessionState, node: &str) -> pb::Peer {
    pb::Peer {
        config: Some(pb::PeerConfig {
            address: address.into(),
            remote_as: if node.is_empty() { 65000 } else { 64512 },
            r#type: if node.is_empty() {
                pb::PeerType::Global
            } else {
                pb::PeerType::NodeMesh
            } as i32,
            ..Default::default()
        }),
        state: state as i32,
        enabled: true,
        counters: Some(pb::PeerCounters {
            prefixes_received: 3,
            prefixes_advertised: 2,
            ..Default::default()
        }),
        settings: Some(pb::PeerSettings {
            port,
            calico_node: node.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn local() -> Local {
    Local {
        name: Some("node-a".into()),
        router_id: "198.18.0.11".into(),
        local_as: 64512,
    }
}

#[test]
fn a_daemons_sessions_are_a_star_around_the_node() {
    let peers = [
        peer("198.18.0.12", 179, pb::SessionState::Established, "node-b"),
        peer("198.51.100.1", 1179, pb::SessionState::Active, ""),
    ];
    let dot = sessions(&local(), &peers).to_dot();
    assert_eq!(
        dot,
        r##"graph tabby {
  graph [label="BGP sessions of node-a", labelloc=t, fontname="Helvetica", fontsize=12, rankdir=LR];
  node [fontname="Helvetica", fontsize=10];
  edge [fontname="Helvetica", fontsize=9];
  "198.18.0.12" [label="198.18.0.12\nAS 64512\nnode-mesh\nnode node-b", shape=box, style="rounded,filled", fillcolor="#eceff1"];
  "198.51.100.1:1179" [label="198.51.100.1:1179\nAS 65000\nglobal", shape=ellipse, style=filled, fillcolor="#fff8e1"];
  "node-a" [label="node-a\nrouter id 198.18.0.11\nAS 64512", shape=box, style="rounded,filled,bold", fillcolor="#bbdefb", color="#0d47a1"];
  "node-a" -- "198.18.0.12" [label="Established\nin 3 / out 2", color="#2e7d32", fontcolor="#2e7d32", style=solid];
  "node-a" -- "198.51.100.1:1179" [label="Active\nin 3 / out 2", color="#c62828", fontcolor="#c62828", style=dashed];
}
"##
    );
}

#[test]
fn session_colours_follow_the_state() {
    let mut disabled = peer("198.18.0.14", 179, pb::SessionState::Idle, "node-d");
    disabled.enabled = false;
    let mut bfd = peer("2001:db8::1", 179, pb::SessionState::OpenConfirm, "");
    bfd.bfd = Some(pb::BfdStatus {
        phase: pb::BfdPhase::Down as i32,
        ..Default::default()
    });
    let dot = sessions(&local(), &[disabled, bfd]).to_dot();
    assert!(
        dot.contains(
            r##""node-a" -- "198.18.0.14" [label="disabled\nin 3 / out 2", color="#757575", fontcolor="#757575", style=dotted];"##
        ),
        "{dot}"
    );
    assert!(
        dot.contains(
            r##""node-a" -- "2001:db8::1" [label="OpenConfirm\nin 3 / out 2\nBFD Down", color="#ef6c00""##
        ),
        "{dot}"
    );
}

#[test]
fn a_daemon_without_a_name_or_peers_is_still_drawn() {
    let g = sessions(
        &Local {
            name: None,
            router_id: "198.18.0.11".into(),
            local_as: 64512,
        },
        &[],
    );
    let dot = g.to_dot();
    assert!(
        dot.contains(r#"label="BGP sessions of this node\nno peers""#),
        "{dot}"
    );
    assert!(
        dot.contains(r#""this node" [label="this node\nrouter id"#),
        "{dot}"
    );
    assert!(!dot.contains(" -- "), "{dot}");
}

#[test]
fn quotes_and_backslashes_are_escaped() {
    assert_eq!(quote(r#"a "b" \n"#), r#""a \"b\" \\n""#);
    assert_eq!(quote("two\nlines"), r#""two\nlines""#);
}

fn resources(yaml: &str) -> Resources {
    Resources::from_yaml_str(yaml, "test.yaml").expect("valid YAML")
}

/// Two mesh nodes and a top-of-rack router every node peers with.
const MESH: &str = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 198.18.0.11/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b}
spec: {bgp: {ipv4Address: 198.18.0.12/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: 198.51.100.1, asNumber: 65000}
";

#[test]
fn a_mesh_session_seen_from_both_nodes_is_one_edge() {
    let dot = cluster(&resources(MESH), "file:test.yaml").to_dot();
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -- ")).collect();
    assert_eq!(
        edges,
        [
            r##"  "198.51.100.1" -- "node-a" [label="global eBGP", color="#ef6c00", fontcolor="#ef6c00", style=solid];"##,
            r##"  "198.51.100.1" -- "node-b" [label="global eBGP", color="#ef6c00", fontcolor="#ef6c00", style=solid];"##,
            r##"  "node-a" -- "node-b" [label="node-mesh iBGP", color="#546e7a", fontcolor="#546e7a", style=solid];"##,
        ],
        "{dot}"
    );
    assert!(
        dot.contains(
            r##""198.51.100.1" [label="198.51.100.1\nAS 65000\nBGPPeer tor", shape=ellipse"##
        ),
        "{dot}"
    );
    assert!(
        dot.contains(r##""node-a" [label="node-a\n198.18.0.11\nAS 64512", shape=box"##),
        "{dot}"
    );
    assert!(
        dot.contains(r#"label="intended BGP topology\nfile:test.yaml: 2 node(s), 3 session(s)""#),
        "{dot}"
    );
}

#[test]
fn reflectors_are_marked_with_their_clients() {
    let yaml = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: rr-1, labels: {route-reflector: 'true'}}
spec: {bgp: {ipv4Address: 198.18.0.10/24, routeReflectorClusterID: 198.18.0.10}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 198.18.0.11/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: peer-with-rr}
spec: {nodeSelector: '!has(route-reflector)', peerSelector: has(route-reflector)}
";
    let dot = cluster(&resources(yaml), "file:rr.yaml").to_dot();
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -- ")).collect();
    assert_eq!(
        edges,
        [
            r##"  "node-a" -- "rr-1" [label="node-specific iBGP\nnode-a is a client of rr-1", color="#1565c0", fontcolor="#1565c0", style=solid];"##
        ],
        "{dot}"
    );
    assert!(
        dot.contains(
            r##""rr-1" [label="rr-1\n198.18.0.10\nAS 64512\nroute reflector, cluster id 198.18.0.10", shape=box, peripheries=2"##
        ),
        "{dot}"
    );
}

/// `reversePeering: Manual` and nothing peering back: node-b refuses node-a.
#[test]
fn a_peering_only_one_node_derives_is_drawn_red() {
    let yaml = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 198.18.0.11/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b}
spec: {bgp: {ipv4Address: 198.18.0.12/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: a-to-b}
spec: {node: node-a, peerIP: 198.18.0.12, asNumber: 64512, reversePeering: Manual}
";
    let dot = cluster(&resources(yaml), "file:one-sided.yaml").to_dot();
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -- ")).collect();
    assert_eq!(
        edges,
        [
            r##"  "node-a" -- "node-b" [label="node-specific iBGP\none-sided: node-b has no peering back to node-a", color="#c62828", fontcolor="#c62828", style=dashed];"##
        ],
        "{dot}"
    );
}

#[test]
fn a_node_that_cannot_run_is_drawn_with_the_reason() {
    let yaml = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 198.18.0.11/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-v6}
spec: {bgp: {ipv6Address: 2001:db8::16/64}}
";
    let dot = cluster(&resources(yaml), "file:v6.yaml").to_dot();
    let line = dot
        .lines()
        .find(|l| l.starts_with("  \"node-v6\" ["))
        .unwrap_or_else(|| panic!("no node-v6 vertex: {dot}"));
    assert!(line.contains(r"node-v6\ncannot run: "), "{line}");
    assert!(line.contains(r##"color="#c62828""##), "{line}");
    assert!(dot.contains(", 1 node(s) cannot run"), "{dot}");
}

#[test]
fn external_peers_on_other_ports_keep_their_port() {
    assert_eq!(
        key_name(PeerKey {
            address: "2001:db8::1".parse().unwrap(),
            port: 1179
        }),
        "[2001:db8::1]:1179"
    );
    assert_eq!(
        key_name(PeerKey {
            address: "198.51.100.1".parse().unwrap(),
            port: 179
        }),
        "198.51.100.1"
    );
}
