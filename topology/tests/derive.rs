//! Derivation from YAML fixtures, checked against what Calico's confd renders for the same
//! resources (bird.cfg.template, bird_aggr.cfg.template, bird_ipam.cfg.template and the
//! peer expansion in confd's calico client). Each expectation says which Calico rule it
//! follows.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use tabby_topology::*;

fn load(name: &str) -> Resources {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    Resources::from_yaml_str(&text, &path).unwrap_or_else(|e| panic!("{e}"))
}

fn key(ip: &str, port: u16) -> PeerKey {
    PeerKey {
        address: ip.parse::<IpAddr>().unwrap(),
        port,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn full_fixture_speaker_settings() {
    let s = derive(&load("full.yaml"), "node-a").unwrap();
    // router id = node IPv4 (template: `router id {{$node_ip}}`).
    assert_eq!(s.router_id.to_string(), "198.18.0.11");
    // Node has no asNumber: the global one (65001) applies.
    assert_eq!(s.local_as, 65001);
    // node.node-a's listenPort beats default's (template: node key first, then global).
    assert_eq!(s.listen_port, 1791);
    // bindMode NodeIP: listen on the node's addresses only.
    assert_eq!(
        s.listen_addresses,
        vec![
            "198.18.0.11".parse::<IpAddr>().unwrap(),
            "2001:db8::11".parse().unwrap()
        ]
    );
    assert_eq!(s.log_severity.as_deref(), Some("Debug"));
    assert_eq!(s.ignored_interfaces, vec!["veth-ignored*".to_string()]);
    assert!(s.mesh_enabled);
    assert_eq!(s.rr_cluster_id, None);
}

#[test]
fn full_fixture_mesh() {
    let s = derive(&load("full.yaml"), "node-a").unwrap();
    // Mesh peers use the *peer's* listen port (global 1790: they have no node config).
    let b4 = &s.peers[&key("198.18.0.12", 1790)];
    let b6 = &s.peers[&key("2001:db8::12", 1790)];
    let c4 = &s.peers[&key("198.18.0.9", 1790)];
    for p in [b4, b6, c4] {
        assert_eq!(p.kind, PeerKind::Mesh);
        // nodeMeshPassword from the Secret's base64 `data`.
        assert_eq!(p.password.as_deref(), Some("mesh-secret"));
        // nodeMeshMaxRestartTime: 5m.
        assert_eq!(p.graceful_restart_time, Some(Duration::from_secs(300)));
        assert_eq!(p.local_as, 65001);
        assert!(!p.rr_client);
    }
    // The peer's own AS (node-b overrides to 65002), so this mesh session is eBGP.
    assert_eq!(b4.peer_as, 65002);
    assert!(!b4.internal);
    assert_eq!(c4.peer_as, 65001);
    assert!(c4.internal);
    // `passive on` when peer IP > our IP as strings: "198.18.0.9" > "198.18.0.11".
    assert!(b4.passive && b6.passive && c4.passive);
    // source address = our address of the same family.
    assert_eq!(b6.source_address, Some("2001:db8::11".parse().unwrap()));
    // node-c has no IPv6 address: no v6 session to it.
    assert!(
        !s.peers
            .keys()
            .any(|k| k.address.is_ipv6() && k.address.to_string().ends_with("::9"))
    );
    // And the other end agrees: node-c connects (not passive) towards node-a.
    let c = derive(&load("full.yaml"), "node-c").unwrap();
    assert!(!c.peers[&key("198.18.0.11", 1791)].passive);
    assert_eq!(
        s.peers.len(),
        5,
        "{:#?}",
        s.peers.keys().collect::<Vec<_>>()
    );
}

#[test]
fn full_fixture_explicit_peers() {
    let s = derive(&load("full.yaml"), "node-a").unwrap();
    let tor = &s.peers[&key("198.18.0.1", 1179)];
    assert_eq!(tor.kind, PeerKind::Node);
    assert_eq!(tor.origin, "BGPPeer tor-v4");
    assert_eq!(tor.peer_as, 65100);
    // localASNumber overrides the node AS on this session only.
    assert_eq!(tor.local_as, 65009);
    assert_eq!(tor.local_as_override, Some(65009));
    assert_eq!(tor.password.as_deref(), Some("tor-secret"));
    assert_eq!(tor.ttl_security, Some(1));
    assert_eq!(tor.source_address, Some("198.18.0.11".parse().unwrap()));
    // keepOriginalNextHop on an eBGP peer = `next hop keep`.
    assert_eq!(tor.next_hop, NextHop::Keep);
    assert_eq!(tor.num_allowed_local_as, Some(2));
    assert_eq!(tor.graceful_restart_time, Some(Duration::from_secs(90)));
    assert_eq!(tor.keepalive_time, Some(Duration::from_secs(20)));
    assert_eq!(tor.reachable_by, Some("198.18.0.254".parse().unwrap()));
    assert!(
        !tor.passive,
        "node-specific peerings are never passive in Calico"
    );
    assert_eq!(
        tor.filters,
        vec!["edge".to_string(), "missing-filter".to_string()]
    );
    // The v4 rules of `edge`, in order; the missing filter is skipped with a warning.
    assert_eq!(tor.export_rules.len(), 2);
    assert_eq!(
        tor.export_rules[0],
        PolicyRule {
            matches: vec![Match::Prefix(PrefixMatch {
                net: net("100.64.0.0/16"),
                min_len: 28,
                max_len: 32
            })],
            actions: vec![PolicyAction::Reject],
        }
    );
    assert_eq!(
        tor.import_rules,
        vec![
            PolicyRule {
                matches: vec![
                    Match::NotPrefix(PrefixMatch::within(net("198.18.0.0/16"))),
                    Match::FromBgp
                ],
                actions: vec![PolicyAction::Reject],
            },
            PolicyRule {
                matches: vec![Match::Interface("eth*".into())],
                actions: vec![PolicyAction::Accept],
            },
        ]
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("missing-filter")),
        "{:?}",
        s.warnings
    );
    // reachableBy: a /32 static route to the peer via the gateway (bird_aggr static protocol).
    assert_eq!(
        s.static_routes,
        vec![StaticRoute {
            prefix: net("198.18.0.1/32"),
            via: "198.18.0.254".parse().unwrap()
        }]
    );

    let tor6 = &s.peers[&key("2001:db8::1", 179)];
    assert_eq!(tor6.origin, "BGPPeer tor-v6");
    assert_eq!(tor6.peer_as, 65100);
    assert_eq!(tor6.source_address, None, "sourceAddress: None");
    assert_eq!(tor6.next_hop, NextHop::SelfAddr);
    // v6 peer gets the v6 rules of the filter.
    assert_eq!(
        tor6.export_rules,
        vec![PolicyRule {
            matches: vec![Match::NotPrefix(PrefixMatch::exact(net(
                "2001:db8:1000::/48"
            )))],
            actions: vec![PolicyAction::Reject],
        }]
    );
    assert_eq!(
        tor6.import_rules[0].matches,
        vec![Match::Prefix(PrefixMatch {
            net: net("2001:db8::/32"),
            min_len: 48,
            max_len: 64
        })]
    );
    // nodeSelector rack in {r2,r3} does not select node-a.
    assert!(!s.peers.contains_key(&key("198.18.0.2", 179)));
    let c = derive(&load("full.yaml"), "node-c").unwrap();
    assert!(c.peers.contains_key(&key("198.18.0.2", 179)));
}

#[test]
fn full_fixture_originated_routes_and_pools() {
    let s = derive(&load("full.yaml"), "node-a").unwrap();
    let got: Vec<(String, OriginKind, bool)> = s
        .originated
        .values()
        .map(|o| (o.prefix.to_string(), o.kind, o.blackhole))
        .collect();
    // Confirmed (or state-less) blocks of this node only; pending and deleted ones are not
    // advertised (calico_aggr). A /32 is never blackholed (bird_aggr skips /32 routes).
    assert_eq!(
        got,
        vec![
            ("100.64.0.0/26".into(), OriginKind::Block, true),
            ("100.65.0.7/32".into(), OriginKind::Block, false),
            ("198.19.0.0/24".into(), OriginKind::ServiceClusterIps, false),
            (
                "198.19.1.0/24".into(),
                OriginKind::ServiceExternalIps,
                false
            ),
            (
                "198.19.2.0/24".into(),
                OriginKind::ServiceLoadBalancerIps,
                false
            ),
            ("2001:db8:1000::/122".into(), OriginKind::Block, true),
            (
                "2001:db8:1000:ff::/112".into(),
                OriginKind::ServiceLoadBalancerIps,
                false
            ),
        ]
    );
    // prefixAdvertisements: named community resolved, large community parsed.
    assert_eq!(
        s.originated[&net("100.64.0.0/26")].communities,
        vec![
            Community::Standard(65001, 100),
            Community::Large(65001, 1, 2)
        ]
    );
    assert_eq!(
        s.originated[&net("198.19.0.0/24")].communities,
        vec![Community::Standard(65001, 300)]
    );

    // Kernel programming per pool (calico_kernel_programming): IPIP via tunnel, CrossSubnet
    // via tunnel unless the next hop is on our subnet, VXLAN left to Felix.
    assert_eq!(
        s.kernel_route_for(&net("100.64.3.0/26")),
        KernelRoute::Tunnel
    );
    assert_eq!(
        s.kernel_route_for(&net("100.65.3.0/28")),
        KernelRoute::TunnelUnlessNextHopIn("198.18.0.0/24".parse().unwrap())
    );
    assert_eq!(s.kernel_route_for(&net("100.66.3.0/26")), KernelRoute::Skip);
    assert_eq!(
        s.kernel_route_for(&net("100.67.3.0/26")),
        KernelRoute::Direct
    );
    assert_eq!(
        s.kernel_route_for(&net("198.51.100.0/24")),
        KernelRoute::Direct
    );
    let cross = s.pools.iter().find(|p| p.name == "pods-cross").unwrap();
    assert_eq!(cross.block_size, 28);
    let v6 = s.pools.iter().find(|p| p.name == "pods-v6").unwrap();
    assert_eq!(v6.block_size, 122, "Calico's IPv6 default block size");
    let private = s.pools.iter().find(|p| p.name == "private").unwrap();
    assert!(private.disabled && private.disable_bgp_export);
}

#[test]
fn full_fixture_export_policy_matches_calico_export_to_bgp_peers() {
    let s = derive(&load("full.yaml"), "node-a").unwrap();
    let mesh = &s.peers[&key("198.18.0.9", 1790)];
    let p = s.export_policy(mesh);
    let eval = |prefix: &str, iface: Option<&str>| {
        p.evaluate(&RouteFacts {
            prefix: net(prefix),
            from_bgp: iface.is_none(),
            interface: iface,
            communities: &[],
            as_path: &[],
            priority: None,
        })
    };
    // Our block: accepted, tagged per prefixAdvertisements.
    let e = eval("100.64.0.0/26", Some("lo"));
    assert_eq!(e.verdict, Verdict::Accept);
    assert_eq!(
        e.communities,
        vec![
            Community::Standard(65001, 100),
            Community::Large(65001, 1, 2)
        ]
    );
    // More specific than our block: rejected (calico_aggr `net ~ block` reject).
    assert_eq!(eval("100.64.0.8/29", Some("lo")).verdict, Verdict::Reject);
    // Other nodes' blocks in an exported pool: accepted.
    assert_eq!(eval("100.64.1.0/26", None).verdict, Verdict::Accept);
    assert_eq!(eval("100.66.0.0/26", None).verdict, Verdict::Accept);
    // disableBGPExport pool: rejected first (reject_disabled_pools).
    assert_eq!(eval("100.67.0.0/26", None).verdict, Verdict::Reject);
    // Service ranges: accepted (static routes).
    assert_eq!(eval("198.19.1.0/24", Some("lo")).verdict, Verdict::Accept);
    // Internal peer: Felix tunnel routes never leave (reject_tunnel_routes).
    assert_eq!(
        eval("100.64.9.0/26", Some("vxlan.calico")).verdict,
        Verdict::Reject
    );
    // Not ours: default reject.
    assert_eq!(eval("203.0.113.0/24", None).verdict, Verdict::Reject);
    // A mesh session to a node of another AS still counts as internal for tunnel routes
    // (Calico renders calico_export_to_bgp_peers(true) for every mesh peer).
    let b4 = &s.peers[&key("198.18.0.12", 1790)];
    assert!(!b4.internal);
    let pb = s.export_policy(b4);
    let tunnel = RouteFacts {
        prefix: net("100.64.9.0/26"),
        from_bgp: false,
        interface: Some("vxlan.calico"),
        communities: &[],
        as_path: &[],
        priority: None,
    };
    assert_eq!(pb.evaluate(&tunnel).verdict, Verdict::Reject);

    // eBGP ToR: its filter runs first: /28 and longer inside 100.64/16 are dropped…
    let tor = &s.peers[&key("198.18.0.1", 1179)];
    let pt = s.export_policy(tor);
    let v = |prefix: &str| {
        pt.evaluate(&RouteFacts {
            prefix: net(prefix),
            from_bgp: true,
            interface: Some("vxlan.calico"),
            communities: &[],
            as_path: &[],
            priority: None,
        })
        .verdict
    };
    assert_eq!(v("100.64.1.16/28"), Verdict::Reject);
    // …and tunnel routes are not rejected for eBGP peers (internal_peer = false).
    assert_eq!(v("100.64.1.0/26"), Verdict::Accept);

    // Import: filter rules, then accept.
    let imp = s.import_policy(tor);
    let i = |prefix: &str, from_bgp: bool, iface: Option<&str>| {
        imp.evaluate(&RouteFacts {
            prefix: net(prefix),
            from_bgp,
            interface: iface,
            communities: &[],
            as_path: &[],
            priority: None,
        })
        .verdict
    };
    assert_eq!(i("203.0.113.0/24", true, None), Verdict::Reject);
    assert_eq!(i("198.18.5.0/24", true, None), Verdict::Accept);
}

#[test]
fn full_fixture_warnings_and_unknown_kinds() {
    let res = load("full.yaml");
    // FelixConfiguration and the v1 Node were ignored, everything else loaded.
    assert_eq!(res.nodes.len(), 3);
    assert_eq!(res.ip_pools.len(), 5);
    assert_eq!(res.block_affinities.len(), 6);
    assert_eq!(res.secrets.len(), 1);
    // A missing Secret: the session still comes up (without MD5), and the state says why.
    let mut res2 = res.clone();
    res2.delete(Kind::Secret, Some("calico-system"), "bgp-secrets");
    let s = derive(&res2, "node-a").unwrap();
    assert_eq!(s.peers[&key("198.18.0.1", 1179)].password, None);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("bgp-secrets") && w.contains("tor"))
    );
}

#[test]
fn route_reflector_clients_and_reflector_mesh() {
    let res = load("route-reflectors.yaml");
    // A client peers with both reflectors (peer-with-rr), as plain iBGP.
    let n1 = derive(&res, "node-1").unwrap();
    assert_eq!(
        n1.peers.keys().copied().collect::<Vec<_>>(),
        vec![key("198.18.0.101", 179), key("198.18.0.102", 179)]
    );
    for p in n1.peers.values() {
        assert_eq!(p.origin, "BGPPeer peer-with-rr");
        assert!(p.internal && !p.rr_client && !p.passive);
        assert_eq!(
            p.calico_node.as_deref().map(|n| n.starts_with("rr-")),
            Some(true)
        );
    }
    // A reflector: the other reflector (same cluster id: not a client) from rr-mesh, and
    // every client through the automatic reverse of peer-with-rr (different cluster id:
    // `rr client`).
    let rr1 = derive(&res, "rr-1").unwrap();
    assert_eq!(rr1.rr_cluster_id, Some("198.18.0.100".parse().unwrap()));
    let rr2 = &rr1.peers[&key("198.18.0.102", 179)];
    assert_eq!(rr2.origin, "BGPPeer rr-mesh");
    assert!(!rr2.rr_client);
    for ip in ["198.18.0.11", "198.18.0.12", "198.18.0.13"] {
        let p = &rr1.peers[&key(ip, 179)];
        assert!(p.rr_client, "{ip}");
        assert_eq!(p.origin, "BGPPeer peer-with-rr");
    }
    assert_eq!(rr1.peers.len(), 4);
    // The annotation marks rr-2 a reflector too.
    let rr2s = derive(&res, "rr-2").unwrap();
    assert_eq!(rr2s.rr_cluster_id, Some("198.18.0.100".parse().unwrap()));
    assert_eq!(rr2s.peers.values().filter(|p| p.rr_client).count(), 3);
}

#[test]
fn mesh_excludes_route_reflectors_and_reverse_peering_manual() {
    let mut res = load("route-reflectors.yaml");
    let text = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: true}\n";
    let cfg = Resources::from_yaml_str(text, "inline").unwrap();
    res.bgp_configurations = cfg.bgp_configurations;
    let n1 = derive(&res, "node-1").unwrap();
    let mesh: Vec<_> = n1
        .peers
        .values()
        .filter(|p| p.kind == PeerKind::Mesh)
        .map(|p| p.key)
        .collect();
    assert_eq!(mesh, vec![key("198.18.0.12", 179), key("198.18.0.13", 179)]);
    // A reflector ignores the mesh setting.
    let rr1 = derive(&res, "rr-1").unwrap();
    assert!(rr1.peers.values().all(|p| p.kind != PeerKind::Mesh));

    // reversePeering: Manual — the reflectors no longer peer back automatically.
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/route-reflectors.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace(
        "  peerSelector: has(route-reflector)\n---",
        "  peerSelector: has(route-reflector)\n  reversePeering: Manual\n---",
    );
    let manual = Resources::from_yaml_str(&text, "inline").unwrap();
    assert_eq!(
        manual.bgp_peers["peer-with-rr"].reverse_peering,
        ReversePeering::Manual
    );
    let rr1 = derive(&manual, "rr-1").unwrap();
    assert_eq!(
        rr1.peers.keys().copied().collect::<Vec<_>>(),
        vec![key("198.18.0.102", 179)]
    );
}

#[test]
fn global_peer_to_a_calico_node_is_reversed_and_unidirectional() {
    // A global BGPPeer naming node-2 by address: every node peers with node-2 (global,
    // passive per the string order), and node-2 peers back with every node (reverse pass).
    let text = r#"
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false, listenPort: 1790}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-1}
spec: {bgp: {ipv4Address: 198.18.0.11}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-2}
spec: {bgp: {ipv4Address: 198.18.0.2}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: to-node-2}
spec: {peerIP: 198.18.0.2, asNumber: 64512}
"#;
    let res = Resources::from_yaml_str(text, "inline").unwrap();
    let n1 = derive(&res, "node-1").unwrap();
    // No port given but the address is a Calico node of that AS: its listen port is used.
    let p = &n1.peers[&key("198.18.0.2", 1790)];
    assert_eq!(p.kind, PeerKind::Global);
    assert_eq!(p.calico_node.as_deref(), Some("node-2"));
    // "198.18.0.2" > "198.18.0.11" as text: node-2 connects, node-1 waits.
    assert!(p.passive);
    let n2 = derive(&res, "node-2").unwrap();
    let back = &n2.peers[&key("198.18.0.11", 1790)];
    assert_eq!(back.kind, PeerKind::Node);
    assert!(!back.passive);
    assert_eq!(n2.peers.len(), 1, "node-2 does not peer with itself");
}

#[test]
fn derive_errors() {
    let res = load("full.yaml");
    let e = derive(&res, "nope").unwrap_err();
    assert!(matches!(e, TopologyError::NodeNotFound(_)));
    assert!(e.to_string().contains("--node-name"));
    let text = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: v6only}\nspec: {bgp: {ipv6Address: 2001:db8::5/64}}\n";
    let r = Resources::from_yaml_str(text, "inline").unwrap();
    assert!(matches!(
        derive(&r, "v6only"),
        Err(TopologyError::NoRouterId(_))
    ));
}
