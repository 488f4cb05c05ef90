//! Maps the topology's plain desired state onto the RIB's and the FIB's
//! types. Kept here because neither crate may know the other.

use std::net::IpAddr;
use std::sync::Arc;

use tabby_bgp::Asn;
use tabby_bgp::attr::{Community, LargeCommunity};
use tabby_rib::policy::{Action, Match, Policy, Rule, SourceMatch, Verdict};
use tabby_rib::{LocalKind, LocalRoute, NextHopMode, PeerConfig};
use tabby_topology::Community as TopoCommunity;
use tabby_topology::{self as topo, NodeState, OriginKind, OriginatedRoute, Peer, PolicyAction};

/// The RIB's policy for one topology policy. Rules that match on kernel
/// interfaces only concern kernel-learned routes; the RIB never sees an
/// interface, so such a match never holds.
pub fn policy(name: &str, p: &topo::Policy) -> Policy {
    let mut rules = Vec::with_capacity(p.rules.len());
    'rules: for (i, r) in p.rules.iter().enumerate() {
        let mut rule = Rule::new(format!("{name}#{i}"), None);
        for m in &r.matches {
            let m = match m {
                topo::Match::Prefix(pm) => Match::PrefixRange {
                    cidr: pm.net,
                    ge: Some(pm.min_len),
                    le: Some(pm.max_len),
                },
                topo::Match::NotPrefix(pm) => Match::Not(Box::new(Match::PrefixRange {
                    cidr: pm.net,
                    ge: Some(pm.min_len),
                    le: Some(pm.max_len),
                })),
                topo::Match::FromBgp => Match::Source(SourceMatch::Remote),
                topo::Match::Interface(_) => continue 'rules,
                topo::Match::Community(c) => community_match(*c),
                topo::Match::AsPathPrefix(asns) => {
                    Match::AsPathPrefix(asns.iter().copied().map(Asn).collect())
                }
                topo::Match::Priority { value, local } => Match::Priority {
                    priority: *value,
                    local: *local,
                },
                topo::Match::PriorityBelow { value, local } => Match::PriorityBelow {
                    priority: *value,
                    local: *local,
                },
            };
            rule.matches.push(m);
        }
        for a in &r.actions {
            match a {
                PolicyAction::AddCommunity(c) => rule.actions.push(add_community(*c)),
                // One ASN at a time, last first, so the first listed ends up first
                // (Calico renders `bgp_path.prepend()` in the same order).
                PolicyAction::PrependAsPath(asns) => {
                    rule.actions
                        .extend(asns.iter().rev().map(|a| Action::Prepend {
                            asn: Some(Asn(*a)),
                            times: 1,
                        }))
                }
                PolicyAction::SetPriority(p) => rule.actions.push(Action::SetPriority(*p)),
                PolicyAction::Accept => rule.verdict = Some(Verdict::Accept),
                PolicyAction::Reject => rule.verdict = Some(Verdict::Reject),
            }
            if rule.verdict.is_some() {
                break;
            }
        }
        rules.push(rule);
    }
    Policy {
        name: name.to_owned(),
        rules,
        default: match p.default {
            topo::Verdict::Accept => Verdict::Accept,
            topo::Verdict::Reject => Verdict::Reject,
        },
    }
}

fn large(g: u32, l1: u32, l2: u32) -> LargeCommunity {
    LargeCommunity {
        global_admin: g,
        local_data_1: l1,
        local_data_2: l2,
    }
}

/// The route carries the community.
fn community_match(c: TopoCommunity) -> Match {
    match c {
        TopoCommunity::Standard(asn, v) => Match::Community(Community::new(asn, v)),
        TopoCommunity::Large(g, l1, l2) => Match::LargeCommunity(large(g, l1, l2)),
    }
}

/// Adds the community (BIRD's `bgp_community.add`, `bgp_large_community.add`).
fn add_community(c: TopoCommunity) -> Action {
    match c {
        TopoCommunity::Standard(asn, v) => Action::AddCommunity(Community::new(asn, v)),
        TopoCommunity::Large(g, l1, l2) => Action::AddLargeCommunity(large(g, l1, l2)),
    }
}

/// Whether this node offers IPv4 unicast with the extended next hop
/// capability (RFC 8950: IPv4 NLRI, IPv6 next hop) on `peer`'s session.
///
/// Only on an IPv6 session to a peer (the same `BGPPeer` resource or mesh
/// node) that has no IPv4 session from this node: a dual-stack mesh keeps
/// IPv4 on its IPv4 sessions, as Calico's BIRD does. Not for peers with
/// `BGPFilter`s: their rules are per family and the topology derives only
/// the IPv6 ones for an IPv6 peer, so IPv4 routes would bypass the IPv4
/// rules.
pub fn ipv4_over_ipv6(state: &NodeState, peer: &Peer) -> bool {
    peer.key.address.is_ipv6()
        && peer.filters.is_empty()
        && !state.peers.values().any(|q| {
            q.key.address.is_ipv4() && q.origin == peer.origin && q.calico_node == peer.calico_node
        })
}

/// The topology's export chain for `peer`, with Calico's IPv4 rules added
/// when IPv4 goes over this IPv6 session (every base rule matches on a
/// prefix of its own family, so the two chains do not interfere).
fn export_policy(state: &NodeState, peer: &Peer) -> topo::Policy {
    let mut p = state.export_policy(peer);
    if ipv4_over_ipv6(state, peer) {
        p.rules.extend(state.export_base_v4.iter().cloned());
    }
    p
}

/// The RIB's view of one configured peer.
pub fn peer_config(state: &NodeState, peer: &Peer) -> PeerConfig {
    let mut cfg = PeerConfig::new(peer.key.address, Asn(peer.peer_as));
    cfg.local_asn = peer.local_as_override.map(Asn);
    cfg.rr_client = peer.rr_client;
    cfg.next_hop_mode = match peer.next_hop {
        topo::NextHop::Auto => NextHopMode::Auto,
        topo::NextHop::SelfAddr => NextHopMode::SelfAddress,
        topo::NextHop::Keep => NextHopMode::Keep,
    };
    cfg.num_allowed_local_as = peer
        .num_allowed_local_as
        .map(|n| n.min(u8::MAX as u32) as u8)
        .unwrap_or(0);
    let label = peer.key.address.to_string();
    cfg.import = Some(Arc::new(policy(
        &format!("import {label}"),
        &state.import_policy(peer),
    )));
    cfg.export = Some(Arc::new(policy(
        &format!("export {label}"),
        &export_policy(state, peer),
    )));
    cfg.local_v4 = match peer.source_address {
        Some(IpAddr::V4(a)) => Some(a),
        _ => state.ipv4.map(|n| n.addr()),
    };
    cfg.local_v6 = match peer.source_address {
        Some(IpAddr::V6(a)) => Some(a),
        _ => state.ipv6.map(|n| n.addr()),
    };
    cfg
}

/// The RIB's locally originated route for one topology route.
pub fn local_route(r: &OriginatedRoute) -> LocalRoute {
    let mut out = LocalRoute {
        kind: match r.kind {
            OriginKind::Block => LocalKind::PodBlock,
            OriginKind::ServiceClusterIps
            | OriginKind::ServiceExternalIps
            | OriginKind::ServiceLoadBalancerIps
            | OriginKind::ServiceAddress => LocalKind::Service,
        },
        ..LocalRoute::default()
    };
    for c in &r.communities {
        match *c {
            TopoCommunity::Standard(a, v) => out.communities.push(Community::new(a, v)),
            TopoCommunity::Large(g, l1, l2) => out.large_communities.push(LargeCommunity {
                global_admin: g,
                local_data_1: l1,
                local_data_2: l2,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabby_topology::{PolicyRule, PrefixMatch};

    /// node-a is dual-stack; node-b too (a full dual-stack mesh); node-c is
    /// IPv6-only; `tor6` is reached over IPv6 only, `tor6f` too but filtered.
    const DUAL: &str = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 198.18.0.11/24, ipv6Address: 2001:db8::11/64}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b}
spec: {bgp: {ipv4Address: 198.18.0.12/24, ipv6Address: 2001:db8::12/64}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-c}
spec: {bgp: {ipv6Address: 2001:db8::13/64}}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pods}
spec: {cidr: 100.64.0.0/16, blockSize: 26, ipipMode: Never, vxlanMode: Never}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor6}
spec: {peerIP: 2001:db8::1, asNumber: 65000}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor6f}
spec: {peerIP: 2001:db8::2, asNumber: 65000, filters: [edge]}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: edge}
spec:
  exportV6: [{action: Accept, matchOperator: In, cidr: 2001:db8:1000::/36}]
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: a}
spec: {node: node-a, cidr: 100.64.0.0/26, state: confirmed}
";

    fn peer<'a>(state: &'a NodeState, addr: &str) -> &'a Peer {
        let a: IpAddr = addr.parse().unwrap();
        state
            .peers
            .values()
            .find(|p| p.key.address == a)
            .unwrap_or_else(|| panic!("no peer {a} in {:?}", state.peers.keys()))
    }

    #[test]
    fn ipv4_goes_over_ipv6_only_to_peers_reached_over_ipv6_alone() {
        let res = tabby_topology::Resources::from_yaml_str(DUAL, "t.yaml").unwrap();
        let state = tabby_topology::derive(&res, "node-a").unwrap();
        // Dual-stack mesh: IPv4 stays on the IPv4 session.
        assert!(!ipv4_over_ipv6(&state, peer(&state, "198.18.0.12")));
        assert!(!ipv4_over_ipv6(&state, peer(&state, "2001:db8::12")));
        // IPv6-only node and IPv6-only BGPPeer: IPv4 rides the IPv6 session.
        assert!(ipv4_over_ipv6(&state, peer(&state, "2001:db8::13")));
        assert!(ipv4_over_ipv6(&state, peer(&state, "2001:db8::1")));
        // Filters are per family: not without IPv4 rules for this peer.
        assert!(!ipv4_over_ipv6(&state, peer(&state, "2001:db8::2")));
    }

    #[test]
    fn export_over_an_ipv6_only_session_includes_calicos_ipv4_rules() {
        let res = tabby_topology::Resources::from_yaml_str(DUAL, "t.yaml").unwrap();
        let state = tabby_topology::derive(&res, "node-a").unwrap();
        let block = PolicyRule {
            matches: vec![topo::Match::Prefix(PrefixMatch::exact(
                "100.64.0.0/26".parse().unwrap(),
            ))],
            actions: vec![PolicyAction::Accept],
        };
        let tor6 = export_policy(&state, peer(&state, "2001:db8::1"));
        assert!(tor6.rules.contains(&block), "{tor6:?}");
        let mesh6 = export_policy(&state, peer(&state, "2001:db8::12"));
        assert!(!mesh6.rules.contains(&block), "{mesh6:?}");
        assert_eq!(
            mesh6,
            state.export_policy(peer(&state, "2001:db8::12")),
            "dual-stack sessions keep their chain"
        );
    }

    #[test]
    fn policy_rules_keep_order_verdicts_and_communities() {
        let p = topo::Policy {
            rules: vec![
                PolicyRule {
                    matches: vec![topo::Match::Prefix(PrefixMatch::within(
                        "100.64.0.0/16".parse().unwrap(),
                    ))],
                    actions: vec![
                        PolicyAction::AddCommunity(TopoCommunity::Standard(65000, 1)),
                        PolicyAction::Accept,
                    ],
                },
                PolicyRule {
                    matches: vec![topo::Match::Interface("*.cali".into())],
                    actions: vec![PolicyAction::Reject],
                },
                PolicyRule {
                    matches: vec![topo::Match::FromBgp],
                    actions: vec![PolicyAction::Reject],
                },
            ],
            default: topo::Verdict::Reject,
        };
        let r = policy("export x", &p);
        assert_eq!(
            r.rules.len(),
            2,
            "the interface rule cannot apply to BGP routes"
        );
        assert_eq!(r.rules[0].verdict, Some(Verdict::Accept));
        assert_eq!(
            r.rules[0].actions,
            vec![Action::AddCommunity(Community::new(65000, 1))]
        );
        assert_eq!(
            r.rules[0].matches,
            vec![Match::PrefixRange {
                cidr: "100.64.0.0/16".parse().unwrap(),
                ge: Some(16),
                le: Some(32)
            }]
        );
        assert_eq!(r.rules[1].matches, vec![Match::Source(SourceMatch::Remote)]);
        assert_eq!(r.rules[1].verdict, Some(Verdict::Reject));
        assert_eq!(r.default, Verdict::Reject);
    }

    /// One filter, an iBGP and an eBGP peer: each peer's RIB policy holds only the
    /// rules of its type, with the 3.32 matches and operations.
    const TYPED: &str = "
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
kind: BGPPeer
metadata: {name: same-as}
spec: {peerIP: 198.18.0.1, asNumber: 64512, filters: [typed]}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: other-as}
spec: {peerIP: 198.18.0.2, asNumber: 64513, filters: [typed]}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: typed}
spec:
  importV4:
    - peerType: eBGP
      asPathPrefix: [64513]
      communities: {values: [\"64513:1:2\"]}
      action: Accept
      operations:
        - addCommunity: {value: \"64512:10\"}
        - prependASPath: {prefix: [64601, 64602]}
        - setPriority: {value: 256}
    - {peerType: iBGP, priority: 512, action: Accept}
    - {action: Reject}
";

    #[test]
    fn filter_rules_of_the_peer_type_reach_the_rib() {
        use tabby_bgp::PathAttributes;
        use tabby_bgp::attr::{AsPath, LocalPref};
        use tabby_rib::PeerKind;
        use tabby_rib::policy::{RouteCtx, SourceMatchInput, priority_to_local_pref};

        let res = tabby_topology::Resources::from_yaml_str(TYPED, "t.yaml").unwrap();
        assert!(res.problems.is_empty(), "{:?}", res.problems);
        let state = tabby_topology::derive(&res, "node-a").unwrap();
        let import = |addr: &str| peer_config(&state, peer(&state, addr)).import.unwrap();
        let tag = LargeCommunity {
            global_admin: 64513,
            local_data_1: 1,
            local_data_2: 2,
        };
        let tagged = PathAttributes {
            as_path: AsPath::from_sequence([Asn(64513), Asn(64999)]),
            large_communities: vec![tag],
            ..Default::default()
        };
        let prefix: ipnet::IpNet = "203.0.113.0/24".parse().unwrap();
        let ctx = |kind, attrs| RouteCtx {
            prefix: &prefix,
            next_hop: "198.18.0.2".parse().unwrap(),
            source: SourceMatchInput::Remote(kind),
            peer_kind: kind,
            local_asn: Asn(64512),
            default_local_pref: LocalPref::new(100),
            attrs,
        };

        // eBGP peer: the eBGP rule, its three operations in order.
        let ebgp = import("198.18.0.2");
        assert_eq!(ebgp.rules.len(), 2, "{ebgp:?}");
        assert_eq!(
            ebgp.rules[0].matches,
            vec![
                Match::LargeCommunity(tag),
                Match::AsPathPrefix(vec![Asn(64513)]),
            ]
        );
        let r = ebgp.evaluate(&ctx(PeerKind::Ebgp, &tagged));
        assert_eq!(r.verdict, Verdict::Accept);
        let m = r.modified.unwrap();
        assert_eq!(
            m.as_path,
            AsPath::from_sequence([Asn(64601), Asn(64602), Asn(64513), Asn(64999)])
        );
        assert_eq!(m.communities, vec![Community::new(64512, 10)]);
        assert_eq!(m.local_pref, Some(priority_to_local_pref(256)));
        let untagged = PathAttributes {
            as_path: AsPath::from_sequence([Asn(64513)]),
            ..Default::default()
        };
        assert_eq!(
            ebgp.evaluate(&ctx(PeerKind::Ebgp, &untagged)).verdict,
            Verdict::Reject
        );

        // iBGP peer: only the priority rule; the eBGP rule's route is rejected.
        let ibgp = import("198.18.0.1");
        assert_eq!(ibgp.rules.len(), 2, "{ibgp:?}");
        assert_eq!(
            ibgp.evaluate(&ctx(PeerKind::Ibgp, &tagged)).verdict,
            Verdict::Reject
        );
        let prio = PathAttributes {
            local_pref: Some(priority_to_local_pref(512)),
            ..tagged.clone()
        };
        let r = ibgp.evaluate(&ctx(PeerKind::Ibgp, &prio));
        assert_eq!(r.verdict, Verdict::Accept);
        assert_eq!(r.modified, None);
    }
}
