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
            };
            rule.matches.push(m);
        }
        for a in &r.actions {
            match a {
                PolicyAction::AddCommunity(c) => rule.actions.push(match *c {
                    TopoCommunity::Standard(asn, v) => Action::AddCommunity(Community::new(asn, v)),
                    TopoCommunity::Large(g, l1, l2) => Action::AddLargeCommunity(LargeCommunity {
                        global_admin: g,
                        local_data_1: l1,
                        local_data_2: l2,
                    }),
                }),
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
        &state.export_policy(peer),
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
            | OriginKind::ServiceLoadBalancerIps => LocalKind::Service,
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
}
