//! The policy pieces Calico 3.32's `BGPFilter` rules need: AS_PATH prefix,
//! community and priority matches; AS_PATH prepend, community and priority
//! operations, in the order written; and the same through a running RIB
//! (import on one peer, export to others).

mod common;

use std::sync::Arc;

use common::*;
use ipnet::IpNet;
use tabby_bgp::attr::{AsPath, Community, LargeCommunity, LocalPref, Origin};
use tabby_bgp::{Asn, PathAttributes};
use tabby_rib::policy::{
    PRIORITY_BASE, RouteCtx, SourceMatchInput, local_pref_to_priority, priority_to_local_pref,
};
use tabby_rib::*;

const LOCAL_AS: u32 = 64512;

fn attrs(path: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence(path.iter().map(|a| Asn(*a))),
        ..Default::default()
    }
}

fn asns(v: &[u32]) -> Vec<Asn> {
    v.iter().copied().map(Asn).collect()
}

fn ctx<'a>(prefix: &'a IpNet, source: SourceMatchInput, a: &'a PathAttributes) -> RouteCtx<'a> {
    RouteCtx {
        prefix,
        next_hop: ip("198.18.0.2"),
        source,
        peer_kind: PeerKind::Ebgp,
        local_asn: Asn(LOCAL_AS),
        default_local_pref: LocalPref::new(100),
        attrs: a,
    }
}

const LEARNED: SourceMatchInput = SourceMatchInput::Remote(PeerKind::Ibgp);
const OWN: SourceMatchInput = SourceMatchInput::Local(LocalKind::PodBlock);

/// Whether a policy with one accepting rule on `m` (default reject) accepts.
fn accepts(m: Match, source: SourceMatchInput, a: &PathAttributes) -> bool {
    let p =
        Policy::new("t", Verdict::Reject).rule(Rule::new("r", Some(Verdict::Accept)).matching(m));
    let prefix = net("198.51.100.0/24");
    p.evaluate(&ctx(&prefix, source, a)).verdict == Verdict::Accept
}

#[test]
fn as_path_prefix_matches_the_leading_asns_only() {
    let m = || Match::AsPathPrefix(asns(&[65001, 65002]));
    assert!(accepts(m(), LEARNED, &attrs(&[65001, 65002])));
    assert!(accepts(m(), LEARNED, &attrs(&[65001, 65002, 65003])));
    assert!(!accepts(m(), LEARNED, &attrs(&[65001])));
    assert!(!accepts(m(), LEARNED, &attrs(&[65003, 65001, 65002])));
    assert!(!accepts(m(), LEARNED, &attrs(&[65002, 65001])));
    assert!(!accepts(m(), OWN, &attrs(&[])));
}

#[test]
fn community_matches_standard_and_large() {
    let mut a = attrs(&[65001]);
    a.communities = vec![Community::new(64512, 100)];
    a.large_communities = vec![LargeCommunity {
        global_admin: 64512,
        local_data_1: 100,
        local_data_2: 999,
    }];
    let plain = attrs(&[65001]);
    let std = || Match::Community(Community::new(64512, 100));
    let large = || {
        Match::LargeCommunity(LargeCommunity {
            global_admin: 64512,
            local_data_1: 100,
            local_data_2: 999,
        })
    };
    assert!(accepts(std(), LEARNED, &a));
    assert!(!accepts(std(), LEARNED, &plain));
    assert!(!accepts(
        Match::Community(Community::new(64512, 101)),
        LEARNED,
        &a
    ));
    assert!(accepts(large(), LEARNED, &a));
    assert!(!accepts(large(), LEARNED, &plain));
}

#[test]
fn priority_is_local_pref_counted_down_from_2_pow_31_minus_1() {
    // Calico: `bgp_local_pref = 2147483647 - priority`.
    assert_eq!(PRIORITY_BASE, 2_147_483_647);
    assert_eq!(priority_to_local_pref(512).get(), 2_147_483_135);
    let prio = |p| Match::Priority {
        priority: p,
        local: 1024,
    };
    let mut a = attrs(&[65001]);
    a.local_pref = Some(LocalPref::new(2_147_483_135));
    assert!(accepts(prio(512), LEARNED, &a));
    assert!(!accepts(prio(511), LEARNED, &a));
    // A learned route without LOCAL_PREF has the default (100): priority 2^31-1 - 100.
    let none = attrs(&[65001]);
    assert!(accepts(prio(2_147_483_547), LEARNED, &none));
    assert!(!accepts(prio(1024), LEARNED, &none));
    // This node's own routes carry the normal route priority.
    assert!(accepts(prio(1024), OWN, &attrs(&[])));
    assert!(!accepts(prio(512), OWN, &attrs(&[])));
    let mut set = attrs(&[]);
    set.local_pref = Some(priority_to_local_pref(512));
    assert!(accepts(prio(512), OWN, &set));
    assert!(!accepts(prio(1024), OWN, &set));
}

/// `prependASPath: {prefix: [a, b]}` as the daemon hands it to the RIB: one
/// ASN at a time, last first.
fn prepend_actions(v: &[u32]) -> Vec<Action> {
    v.iter()
        .rev()
        .map(|a| Action::Prepend {
            asn: Some(Asn(*a)),
            times: 1,
        })
        .collect()
}

fn run(rule: Rule, a: &PathAttributes) -> (Verdict, PathAttributes) {
    let p = Policy::new("t", Verdict::Reject).rule(rule);
    let prefix = net("198.51.100.0/24");
    let r = p.evaluate(&ctx(&prefix, LEARNED, a));
    (r.verdict, r.modified.unwrap_or_else(|| a.clone()))
}

#[test]
fn operations_apply_in_order_to_an_accepted_route() {
    let mut rule = Rule::new("ops", Some(Verdict::Accept))
        .matching(Match::Community(Community::new(64512, 1)))
        .action(Action::SetPriority(256))
        .action(Action::AddCommunity(Community::new(64512, 2)));
    rule.actions.extend(prepend_actions(&[65101, 65102]));
    rule.actions.extend(prepend_actions(&[65200]));
    let mut a = attrs(&[65001, 65002]);
    a.communities = vec![Community::new(64512, 1)];
    let (v, m) = run(rule.clone(), &a);
    assert_eq!(v, Verdict::Accept);
    // The second prepend goes in front of the first.
    assert_eq!(
        m.as_path,
        AsPath::from_sequence(asns(&[65200, 65101, 65102, 65001, 65002]))
    );
    assert_eq!(
        m.communities,
        vec![Community::new(64512, 1), Community::new(64512, 2)]
    );
    assert_eq!(m.local_pref, Some(LocalPref::new(PRIORITY_BASE - 256)));
    assert_eq!(local_pref_to_priority(m.local_pref.unwrap()), 256);
    // A route the rule does not match is left alone (and here rejected).
    let (v, m) = run(rule, &attrs(&[65001, 65002]));
    assert_eq!(v, Verdict::Reject);
    assert_eq!(m, attrs(&[65001, 65002]));
}

#[test]
fn adding_a_community_already_there_keeps_one_copy() {
    let rule = Rule::new("add", Some(Verdict::Accept))
        .action(Action::AddCommunity(Community::new(64512, 2)));
    let mut a = attrs(&[65001]);
    a.communities = vec![Community::new(64512, 2)];
    assert_eq!(run(rule, &a).1.communities, vec![Community::new(64512, 2)]);
}

#[test]
fn a_later_setpriority_wins_and_later_rules_see_earlier_changes() {
    // Two operations on one rule: the last value stays.
    let rule = Rule::new("prio", Some(Verdict::Accept))
        .action(Action::SetPriority(300))
        .action(Action::SetPriority(200));
    let (_, m) = run(rule, &attrs(&[65001]));
    assert_eq!(local_pref_to_priority(m.local_pref.unwrap()), 200);
    // A rule without a verdict changes the route; a later match sees it.
    let p = Policy::new("t", Verdict::Reject)
        .rule(Rule::new("tag", None).action(Action::SetPriority(700)))
        .rule(
            Rule::new("by-priority", Some(Verdict::Accept)).matching(Match::Priority {
                priority: 700,
                local: 1024,
            }),
        );
    let prefix = net("198.51.100.0/24");
    let a = attrs(&[65001]);
    assert_eq!(
        p.evaluate(&ctx(&prefix, LEARNED, &a)).verdict,
        Verdict::Accept
    );
}

fn rib() -> Rib {
    let mut c = RibConfig::new(v4("198.18.0.1"), Asn(LOCAL_AS));
    c.local_addresses = vec![ip("198.18.0.1")];
    Rib::new(c)
}

fn peer(addr: &str, asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(ip(addr), Asn(asn));
    p.local_v4 = Some(v4("198.18.0.1"));
    p
}

fn up(r: &mut Rib, id: u32, cfg: PeerConfig) {
    let std::net::IpAddr::V4(addr) = cfg.address else {
        unreachable!()
    };
    r.add_peer(PeerId(id), cfg).unwrap();
    r.peer_up(PeerId(id), PeerSession::basic(addr), now())
        .unwrap();
}

#[test]
fn import_operations_reach_ibgp_peers_and_export_prepends_go_after_our_as() {
    let mut r = rib();
    // eBGP peer 1: routes starting with 65001 65010 are tagged, prepended and
    // given priority 256; everything else from it is rejected.
    let mut import = Rule::new("calico-rule", Some(Verdict::Accept))
        .matching(Match::AsPathPrefix(asns(&[65001, 65010])))
        .action(Action::SetPriority(256))
        .action(Action::AddCommunity(Community::new(64512, 200)));
    import.actions.extend(prepend_actions(&[64600, 64601]));
    let mut p1 = peer("198.18.0.2", 65001);
    p1.import = Some(Arc::new(
        Policy::new("import", Verdict::Reject).rule(import),
    ));
    up(&mut r, 1, p1);
    // eBGP peer 2: everything, with 64700 prepended.
    let mut export = Rule::new("prepend", Some(Verdict::Accept));
    export.actions.extend(prepend_actions(&[64700]));
    let mut p2 = peer("198.18.0.3", 65002);
    p2.export = Some(Arc::new(
        Policy::new("export", Verdict::Reject).rule(export),
    ));
    up(&mut r, 2, p2);
    // iBGP peer 3.
    up(&mut r, 3, peer("198.18.0.4", LOCAL_AS));
    r.drain_outgoing();

    learn(
        &mut r,
        1,
        &["203.0.113.0/24"],
        "198.18.0.2",
        &[65001, 65010],
    );
    learn(
        &mut r,
        1,
        &["198.51.100.0/24"],
        "198.18.0.2",
        &[65001, 65020],
    );
    let out = r.drain_outgoing();

    let to_ibgp = updates_for(&out, PeerId(3));
    assert_eq!(announced(&to_ibgp), vec![net("203.0.113.0/24")]);
    let a = &to_ibgp[0].attributes;
    assert_eq!(
        a.as_path,
        AsPath::from_sequence(asns(&[64600, 64601, 65001, 65010]))
    );
    assert_eq!(a.local_pref, Some(LocalPref::new(PRIORITY_BASE - 256)));
    assert!(a.communities.contains(&Community::new(64512, 200)));

    let to_ebgp = updates_for(&out, PeerId(2));
    assert_eq!(announced(&to_ebgp), vec![net("203.0.113.0/24")]);
    // BIRD runs the export filter first, then BGP puts our AS in front.
    assert_eq!(
        to_ebgp[0].attributes.as_path,
        AsPath::from_sequence(asns(&[LOCAL_AS, 64700, 64600, 64601, 65001, 65010]))
    );
    assert_eq!(to_ebgp[0].attributes.local_pref, None);
}
