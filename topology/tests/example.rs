//! The demo cluster in examples/cluster.yaml derives what Calico would render for it.

use std::net::IpAddr;

use tabby_topology::*;

fn load() -> Resources {
    let text = include_str!("../examples/cluster.yaml");
    Resources::from_yaml_str(text, "examples/cluster.yaml").expect("example parses")
}

fn key(ip: &str, port: u16) -> PeerKey {
    PeerKey {
        address: ip.parse::<IpAddr>().unwrap(),
        port,
    }
}

#[test]
fn node_a_meshes_with_b_and_c_and_peers_with_the_tor() {
    let res = load();
    let s = derive(&res, "node-a").unwrap();
    assert_eq!(s.router_id.to_string(), "198.18.0.11");
    assert_eq!(s.local_as, 64512);
    assert_eq!(s.listen_port, 179);
    assert_eq!(
        s.peers.keys().copied().collect::<Vec<_>>(),
        vec![
            key("198.18.0.1", 179),
            key("198.18.0.12", 179),
            key("198.18.0.13", 179)
        ]
    );
    let tor = &s.peers[&key("198.18.0.1", 179)];
    assert_eq!(tor.kind, PeerKind::Global);
    assert_eq!(tor.peer_as, 65000);
    assert!(!tor.internal);
    // The ToR is not a Calico node: both ends may connect.
    assert!(!tor.passive);
    assert_eq!(tor.source_address, Some("198.18.0.11".parse().unwrap()));
    // Mesh: "198.18.0.12" > "198.18.0.11", so .12 connects and node-a waits.
    let b = &s.peers[&key("198.18.0.12", 179)];
    assert_eq!(b.kind, PeerKind::Mesh);
    assert!(b.passive);
    assert_eq!(
        b.graceful_restart_time,
        Some(std::time::Duration::from_secs(120))
    );
    // Only node-a's own block is originated, blackholed locally.
    let blocks: Vec<String> = s.originated.keys().map(|p| p.to_string()).collect();
    assert_eq!(blocks, vec!["100.64.0.0/26"]);
    assert!(s.originated.values().all(|o| o.blackhole));
    // node-c is the greater string in both its pairs: it initiates both.
    let c = derive(&res, "node-c").unwrap();
    assert!(
        c.peers
            .values()
            .filter(|p| p.kind == PeerKind::Mesh)
            .all(|p| !p.passive)
    );
}

#[test]
fn export_policy_sends_own_block_and_pool_routes_only() {
    let res = load();
    let s = derive(&res, "node-a").unwrap();
    let tor = &s.peers[&key("198.18.0.1", 179)];
    let policy = s.export_policy(tor);
    let verdict = |p: &str| {
        policy
            .evaluate(&RouteFacts {
                prefix: p.parse().unwrap(),
                from_bgp: false,
                interface: None,
                communities: &[],
                as_path: &[],
                priority: None,
            })
            .verdict
    };
    assert_eq!(verdict("100.64.0.0/26"), Verdict::Accept);
    // More specifics inside our own block stay inside.
    assert_eq!(verdict("100.64.0.5/32"), Verdict::Reject);
    // Another node's block (learned over the mesh) is inside the pool: exported.
    assert_eq!(verdict("100.64.0.64/26"), Verdict::Accept);
    // Anything outside every pool is not ours to announce.
    assert_eq!(verdict("198.19.0.0/24"), Verdict::Reject);
}

#[test]
fn route_reflector_example() {
    let text = include_str!("../examples/rr-cluster.yaml");
    let res = Resources::from_yaml_str(text, "examples/rr-cluster.yaml").unwrap();
    let rr = derive(&res, "rr-1").unwrap();
    assert_eq!(rr.rr_cluster_id, Some("198.18.0.10".parse().unwrap()));
    assert_eq!(rr.peers.len(), 3);
    assert!(rr.peers.values().all(|p| p.rr_client && p.internal));
    // A reflector announces no block of its own.
    assert!(rr.originated.is_empty());
    for n in ["node-a", "node-b", "node-c"] {
        let s = derive(&res, n).unwrap();
        assert_eq!(
            s.peers.keys().copied().collect::<Vec<_>>(),
            vec![key("198.18.0.10", 179)],
            "{n}"
        );
        assert!(!s.peers[&key("198.18.0.10", 179)].rr_client);
        assert_eq!(s.originated.len(), 1);
    }
}
