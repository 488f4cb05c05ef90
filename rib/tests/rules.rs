//! Export rules, policy, ADD-PATH, LLGR and next-hop tracking through the
//! public API.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use tabby_bgp::attr::{AsPath, Community, LocalPref, Med, Origin};
use tabby_bgp::capability::{LlgrFamily, Role};
use tabby_bgp::{Asn, Family, PathAttributes};
use tabby_rib::*;

const LOCAL_AS: u32 = 64512;

fn rib_with(f: impl Fn(&mut RibConfig)) -> Rib {
    let mut c = RibConfig::new(v4("198.18.0.1"), Asn(LOCAL_AS));
    c.local_addresses = vec![ip("198.18.0.1")];
    f(&mut c);
    Rib::new(c)
}

fn peer(addr: &str, asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(ip(addr), Asn(asn));
    p.local_v4 = Some(v4("198.18.0.1"));
    p.local_v6 = Some("2001:db8::1".parse().unwrap());
    p
}

fn up(r: &mut Rib, id: u32, cfg: PeerConfig) {
    let addr = match cfg.address {
        std::net::IpAddr::V4(a) => a,
        _ => unreachable!(),
    };
    r.add_peer(PeerId(id), cfg).unwrap();
    r.peer_up(PeerId(id), PeerSession::basic(addr), now())
        .unwrap();
}

fn attrs(path: &[u32], communities: &[Community]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence(path.iter().map(|a| Asn(*a))),
        communities: communities.to_vec(),
        ..Default::default()
    }
}

#[test]
fn well_known_communities_limit_export() {
    let mut r = rib_with(|_| {});
    up(&mut r, 1, peer("198.18.0.2", 65001));
    up(&mut r, 2, peer("198.18.0.3", 65002));
    r.drain_outgoing();
    learn_with(
        &mut r,
        1,
        &["100.64.1.0/26"],
        "198.18.0.2",
        attrs(&[65001], &[Community::NO_EXPORT]),
    );
    learn_with(
        &mut r,
        1,
        &["100.64.2.0/26"],
        "198.18.0.2",
        attrs(&[65001], &[Community::NO_ADVERTISE]),
    );
    learn_with(
        &mut r,
        1,
        &["100.64.3.0/26"],
        "198.18.0.2",
        attrs(&[65001], &[]),
    );
    let out = r.drain_outgoing();
    assert_eq!(
        announced(&updates_for(&out, PeerId(2))),
        vec![net("100.64.3.0/26")]
    );
    let e = r.explain(&net("100.64.1.0/26"));
    assert_eq!(e.exports[1].reason, "NO_EXPORT community toward eBGP");
}

#[test]
fn ebgp_export_strips_med_and_local_pref_and_prepends() {
    let mut r = rib_with(|_| {});
    up(&mut r, 1, peer("198.18.0.2", LOCAL_AS));
    up(&mut r, 2, peer("198.18.0.3", 65002));
    r.drain_outgoing();
    let mut a = attrs(&[], &[]);
    a.med = Some(Med::new(50));
    a.local_pref = Some(LocalPref::new(300));
    learn_with(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", a);
    let out = updates_for(&r.drain_outgoing(), PeerId(2));
    assert_eq!(
        render(&out),
        vec![
            r#"A ["100.64.1.0/26"] nh=198.18.0.1 path=[64512] lp=None med=None orig=None cl=[] comm=[]"#
        ]
    );
}

#[test]
fn next_hop_modes() {
    // Auto and SelfAddress toward an iBGP reflector client; Keep even toward eBGP.
    for (to_as, rr_client, mode, want) in [
        (LOCAL_AS, true, NextHopMode::Auto, "198.18.0.2"),
        (LOCAL_AS, true, NextHopMode::SelfAddress, "198.18.0.1"),
        (65003, false, NextHopMode::Keep, "198.18.0.2"),
    ] {
        let mut r = rib_with(|_| {});
        let mut to = peer("198.18.0.3", to_as);
        to.rr_client = rr_client;
        to.next_hop_mode = mode;
        up(&mut r, 1, peer("198.18.0.2", 65001));
        up(&mut r, 2, to);
        r.drain_outgoing();
        learn(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", &[65001]);
        let out = updates_for(&r.drain_outgoing(), PeerId(2));
        assert_eq!(out[0].attributes.next_hop, Some(v4(want)), "{mode:?}");
    }
}

#[test]
fn allow_own_as_n_times() {
    let mut r = rib_with(|_| {});
    let mut p = peer("198.18.0.2", 65001);
    p.num_allowed_local_as = 1;
    up(&mut r, 1, p);
    let o = learn(
        &mut r,
        1,
        &["100.64.1.0/26"],
        "198.18.0.2",
        &[65001, LOCAL_AS],
    );
    assert_eq!(o.announced, 1);
    let o = learn(
        &mut r,
        1,
        &["100.64.2.0/26"],
        "198.18.0.2",
        &[65001, LOCAL_AS, LOCAL_AS],
    );
    assert_eq!(o.rejected, vec![(RejectReason::AsLoop, 1)]);
}

#[test]
fn reflector_loop_detection() {
    let mut r = rib_with(|c| c.cluster_id = Some(v4("198.18.0.100")));
    up(&mut r, 1, peer("198.18.0.2", LOCAL_AS));
    let mut a = attrs(&[], &[]);
    a.originator_id = Some(v4("198.18.0.1"));
    let o = learn_with(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", a);
    assert_eq!(o.rejected, vec![(RejectReason::OriginatorLoop, 1)]);
    let mut a = attrs(&[], &[]);
    a.cluster_list = vec![v4("198.18.0.7"), v4("198.18.0.100")];
    let o = learn_with(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", a);
    assert_eq!(o.rejected, vec![(RejectReason::ClusterLoop, 1)]);
    assert_eq!(r.stats().paths, 0);
}

#[test]
fn rfc8212_blocks_ebgp_without_policy() {
    let mut r = rib_with(|c| c.rfc8212 = true);
    up(&mut r, 1, peer("198.18.0.2", 65001));
    let o = learn(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", &[65001]);
    assert_eq!(o.rejected, vec![(RejectReason::ImportPolicy, 1)]);
    r.originate(net("100.64.9.0/26"), "ipam", LocalRoute::default());
    let out = r.drain_outgoing();
    assert!(announced(&updates_for(&out, PeerId(1))).is_empty());
    let e = r.explain(&net("100.64.9.0/26"));
    assert_eq!(e.exports[0].decided_by, Some(policy::Decider::Rfc8212));
}

#[test]
fn import_policy_sets_priority_and_soft_reconfiguration_reapplies() {
    let mut r = rib_with(|_| {});
    let mut p1 = peer("198.18.0.2", 65001);
    p1.soft_reconfig_inbound = true;
    up(&mut r, 1, p1);
    up(&mut r, 2, peer("198.18.0.3", 65002));
    learn(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", &[65001, 65010]);
    learn(&mut r, 2, &["100.64.1.0/26"], "198.18.0.3", &[65002]);
    assert_eq!(
        r.best(&net("100.64.1.0/26")).unwrap().next_hops[0].addr,
        ip("198.18.0.3")
    );
    r.drain_best_changes();
    // Prefer peer 1 by priority: applied from the pre-policy Adj-RIB-In,
    // no route refresh needed.
    let pol = Policy::new("prefer", Verdict::Accept)
        .rule(Rule::new("prio", Some(Verdict::Accept)).action(Action::SetPriority(10)));
    let o = r
        .update_policy(PeerId(1), Some(Arc::new(pol)), None)
        .unwrap();
    assert!(o.route_refresh.is_empty());
    assert_eq!(
        r.best(&net("100.64.1.0/26")).unwrap().next_hops[0].addr,
        ip("198.18.0.2")
    );
    assert_eq!(r.drain_best_changes().len(), 1);
    let e = r.explain(&net("100.64.1.0/26"));
    assert_eq!(e.candidates[1].lost_at, Some(Step::LocalPref));
    assert_eq!(
        e.candidates[0].import_decided_by,
        Some(policy::Decider::Rule {
            policy: "prefer".into(),
            rule: "prio".into(),
            index: 0
        })
    );
    // A rejecting import policy on the soft-reconfiguration peer shows up
    // as a rejected route with its rule.
    let drop = Policy::new("drop", Verdict::Reject);
    r.update_policy(PeerId(1), Some(Arc::new(drop)), None)
        .unwrap();
    let e = r.explain(&net("100.64.1.0/26"));
    assert_eq!(e.candidates.len(), 1);
    assert_eq!(
        e.import_rejected,
        vec![ImportRejected {
            peer: PeerId(1),
            path_id: 0,
            decided_by: policy::Decider::PolicyDefault {
                policy: "drop".into()
            }
        }]
    );
    // Peer 2 keeps no pre-policy copy: the caller must ask for a refresh.
    assert_eq!(
        r.best(&net("100.64.1.0/26")).unwrap().next_hops[0].addr,
        ip("198.18.0.3")
    );
    let reject = Policy::new("none", Verdict::Reject);
    let o = r
        .update_policy(PeerId(2), Some(Arc::new(reject)), None)
        .unwrap();
    assert_eq!(
        o.route_refresh,
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    // The refreshed routes are now rejected and the old path removed.
    let o = learn(&mut r, 2, &["100.64.1.0/26"], "198.18.0.3", &[65002]);
    assert_eq!(o.rejected, vec![(RejectReason::ImportPolicy, 1)]);
    // Both peers now reject it.
    assert!(r.explain(&net("100.64.1.0/26")).candidates.is_empty());
    assert!(r.best(&net("100.64.1.0/26")).is_none());
}

#[test]
fn export_policy_change_sends_only_the_difference() {
    let mut r = rib_with(|_| {});
    up(&mut r, 1, peer("198.18.0.2", 65001));
    r.originate(net("100.64.1.0/26"), "ipam", LocalRoute::default());
    r.originate(net("100.64.2.0/26"), "ipam", LocalRoute::default());
    let out = r.drain_outgoing();
    assert_eq!(announced(&updates_for(&out, PeerId(1))).len(), 2);
    let pol = Policy::new("only-1", Verdict::Reject).rule(
        Rule::new("block 1", Some(Verdict::Accept))
            .matching(Match::Cidr {
                op: CidrOp::Equal,
                cidr: net("100.64.1.0/26"),
            })
            .action(Action::AddCommunity(Community::new(64512, 7))),
    );
    let g0 = r.group_of(PeerId(1));
    r.update_policy(PeerId(1), None, Some(Arc::new(pol)))
        .unwrap();
    let out = updates_for(&r.drain_outgoing(), PeerId(1));
    assert_eq!(
        render(&out),
        vec![
            r#"W ["100.64.2.0/26"]"#.to_string(),
            r#"A ["100.64.1.0/26"] nh=198.18.0.1 path=[64512] lp=None med=None orig=None cl=[] comm=["64512:7"]"#.to_string(),
        ]
    );
    assert!(r.group_of(PeerId(1)).is_some());
    let _ = g0;
    let e = r.explain(&net("100.64.2.0/26"));
    assert!(!e.exports[0].exported);
    assert!(
        e.exports[0].reason.contains("only-1 default"),
        "{}",
        e.exports[0].reason
    );
}

#[test]
fn a_next_hop_mode_change_re_exports_with_the_new_next_hop() {
    // Calico's nextHopMode edited on a running eBGP session: the routes it
    // was sent go again with the next hop the new mode gives, no reset.
    let mut r = rib_with(|_| {});
    up(&mut r, 1, peer("198.18.0.2", 65001));
    up(&mut r, 2, peer("198.18.0.3", 65002));
    learn_with(
        &mut r,
        1,
        &["100.64.1.0/26"],
        "198.18.0.2",
        attrs(&[65001], &[]),
    );
    let ann = |nh: &str| {
        format!(
            r#"A ["100.64.1.0/26"] nh={nh} path=[64512 65001] lp=None med=None orig=None cl=[] comm=[]"#
        )
    };
    let first = render(&updates_for(&r.drain_outgoing(), PeerId(2)));
    assert!(first.contains(&ann("198.18.0.1")), "{first:?}");
    let mut keep = peer("198.18.0.3", 65002).settings();
    keep.next_hop_mode = NextHopMode::Keep;
    let outcome = r.update_settings(PeerId(2), keep).unwrap();
    assert!(outcome.route_refresh.is_empty(), "no import change");
    let out = updates_for(&r.drain_outgoing(), PeerId(2));
    assert_eq!(render(&out), vec![ann("198.18.0.2")]);
    // The same settings again: nothing to send.
    let mut keep = peer("198.18.0.3", 65002).settings();
    keep.next_hop_mode = NextHopMode::Keep;
    r.update_settings(PeerId(2), keep).unwrap();
    assert!(updates_for(&r.drain_outgoing(), PeerId(2)).is_empty());
}

#[test]
fn update_groups_share_work() {
    let mut r = rib_with(|c| c.cluster_id = Some(v4("198.18.0.100")));
    for i in 0..20u32 {
        let mut p = peer(&format!("198.18.0.{}", 10 + i), LOCAL_AS);
        p.rr_client = true;
        up(&mut r, i, p);
    }
    r.drain_outgoing();
    assert_eq!(r.stats().update_groups, 1);
    let before = r.stats().updates_built;
    r.originate(net("100.64.1.0/26"), "ipam", LocalRoute::default());
    let out = r.drain_outgoing();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to.peers().len(), 20);
    assert_eq!(
        r.stats().updates_built - before,
        1,
        "one UPDATE built for twenty peers"
    );
    // A client's own route goes to the nineteen others, not back to it.
    learn(&mut r, 3, &["100.64.2.0/26"], "198.18.0.13", &[]);
    let out = r.drain_outgoing();
    assert_eq!(out.len(), 1, "one batch for the group");
    assert_eq!(out[0].to.peers().len(), 20);
    assert!(updates_for(&out, PeerId(3)).is_empty());
    assert_eq!(out[0].batch.messages_for(3), 0);
    for i in (0..20).filter(|i| *i != 3) {
        assert_eq!(updates_for(&out, PeerId(i)).len(), 1, "client {i}");
    }
    // A better route from another client replaces it; client 3 now gets
    // the new route (it had nothing from us for this prefix).
    let mut a = attrs(&[], &[]);
    a.local_pref = Some(LocalPref::new(200));
    learn_with(&mut r, 4, &["100.64.2.0/26"], "198.18.0.14", a);
    let out = r.drain_outgoing();
    assert!(
        updates_for(&out, PeerId(3)).len() == 1
            && withdrawn(&updates_for(&out, PeerId(3))).is_empty()
    );
    // Client 4 had client 3's route from us; its own is best now, so the
    // old one is withdrawn (split horizon, per-member correction).
    assert_eq!(
        render(&updates_for(&out, PeerId(4))),
        vec![r#"W ["100.64.2.0/26"]"#]
    );
    // And back: client 3's route is best again; client 3 loses client 4's
    // route, client 4 gets client 3's again.
    r.apply_update(PeerId(4), &withdraw(&["100.64.2.0/26"]))
        .unwrap();
    let out = r.drain_outgoing();
    assert_eq!(
        withdrawn(&updates_for(&out, PeerId(3))),
        vec![net("100.64.2.0/26")]
    );
    assert_eq!(
        announced(&updates_for(&out, PeerId(4))),
        vec![net("100.64.2.0/26")]
    );
}

#[test]
fn add_path_sends_several_paths() {
    let mut r = rib_with(|c| c.cluster_id = Some(v4("198.18.0.100")));
    up(&mut r, 1, peer("198.18.0.2", 65001));
    up(&mut r, 2, peer("198.18.0.3", 65002));
    let mut c = peer("198.18.0.4", LOCAL_AS);
    c.rr_client = true;
    c.add_path_send_max = 4;
    r.add_peer(PeerId(3), c).unwrap();
    let mut s = PeerSession::basic(v4("198.18.0.4"));
    s.add_path_tx = vec![Family::IPV4_UNICAST];
    r.peer_up(PeerId(3), s, now()).unwrap();
    r.drain_outgoing();
    learn(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", &[65001]);
    learn(&mut r, 2, &["100.64.1.0/26"], "198.18.0.3", &[65002, 65003]);
    let out = updates_for(&r.drain_outgoing(), PeerId(3));
    let ids: Vec<Option<u32>> = out
        .iter()
        .flat_map(|u| u.nlri.iter().map(|n| n.path_id))
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|i| i.is_some()) && ids[0] != ids[1]);
    r.apply_update(PeerId(2), &withdraw(&["100.64.1.0/26"]))
        .unwrap();
    let out = updates_for(&r.drain_outgoing(), PeerId(3));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].withdrawn.len(), 1);
    assert_eq!(out[0].withdrawn[0].path_id, ids[1]);
}

#[test]
fn next_hop_reachability_changes_selection() {
    let mut r = rib_with(|c| c.max_paths = 1);
    up(&mut r, 1, peer("198.18.0.2", LOCAL_AS));
    up(&mut r, 2, peer("198.18.0.3", LOCAL_AS));
    learn(&mut r, 1, &["100.64.1.0/26"], "198.18.5.2", &[]);
    learn(&mut r, 2, &["100.64.1.0/26"], "198.18.5.3", &[]);
    assert_eq!(
        r.best(&net("100.64.1.0/26")).unwrap().next_hops[0].addr,
        ip("198.18.5.2")
    );
    r.drain_best_changes();
    r.set_next_hop_resolver(Box::new(|nh: std::net::IpAddr| {
        match nh.to_string().as_str() {
            "198.18.5.2" => Some(20),
            "198.18.5.3" => Some(10),
            _ => None,
        }
    }));
    assert_eq!(
        r.best(&net("100.64.1.0/26")).unwrap().next_hops[0].addr,
        ip("198.18.5.3")
    );
    let e = r.explain(&net("100.64.1.0/26"));
    assert_eq!(e.candidates[1].lost_at, Some(Step::IgpCost));
    r.set_next_hop_resolver(Box::new(|nh: std::net::IpAddr| {
        (nh.to_string() == "198.18.5.2").then_some(5)
    }));
    assert_eq!(
        r.best(&net("100.64.1.0/26")).unwrap().next_hops[0].addr,
        ip("198.18.5.2")
    );
    assert_eq!(
        r.explain(&net("100.64.1.0/26")).candidates[1].ineligible,
        Some("next hop unreachable")
    );
    assert_eq!(r.drain_best_changes().len(), 2);
}

#[test]
fn llgr_stale_is_least_preferred_then_swept() {
    let mut r = rib_with(|c| c.max_paths = 1);
    up(&mut r, 2, peer("198.18.0.3", LOCAL_AS));
    r.add_peer(PeerId(1), peer("198.18.0.2", LOCAL_AS)).unwrap();
    let mut s = PeerSession::basic(v4("198.18.0.2"));
    s.llgr = vec![LlgrFamily {
        family: Family::IPV4_UNICAST,
        forwarding_preserved: true,
        stale_time: 3600,
    }];
    let t0 = now();
    r.peer_up(PeerId(1), s, t0).unwrap();
    let mut hi = attrs(&[], &[]);
    hi.local_pref = Some(LocalPref::new(500));
    learn_with(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", hi.clone());
    learn_with(
        &mut r,
        1,
        &["100.64.2.0/26"],
        "198.18.0.2",
        attrs(&[], &[Community::NO_LLGR]),
    );
    learn(&mut r, 2, &["100.64.1.0/26"], "198.18.0.3", &[]);
    assert_eq!(
        r.best(&net("100.64.1.0/26")).unwrap().next_hops[0].addr,
        ip("198.18.0.2")
    );
    r.peer_down(PeerId(1), DownKind::Graceful, t0).unwrap();
    // LLGR-stale loses to the LOCAL_PREF 100 path; NO_LLGR routes are gone.
    assert_eq!(
        r.best(&net("100.64.1.0/26")).unwrap().next_hops[0].addr,
        ip("198.18.0.3")
    );
    assert!(r.best(&net("100.64.2.0/26")).is_none());
    let e = r.explain(&net("100.64.1.0/26"));
    assert!(e.candidates[1].llgr_stale);
    assert_eq!(e.candidates[1].lost_at, Some(Step::LlgrStale));
    r.on_timer(t0 + Duration::from_secs(3601));
    assert_eq!(r.explain(&net("100.64.1.0/26")).candidates.len(), 1);
}

#[test]
fn otc_route_leak_prevention() {
    let mut r = rib_with(|_| {});
    let mut cust = peer("198.18.0.2", 65001);
    cust.role = Some(Role::Provider); // we are their provider
    let mut prov = peer("198.18.0.3", 65002);
    prov.role = Some(Role::Customer); // we are their customer
    up(&mut r, 1, cust);
    up(&mut r, 2, prov);
    r.drain_outgoing();
    let mut leaked = attrs(&[65001], &[]);
    leaked.otc = Some(Asn(65009));
    let o = learn_with(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", leaked);
    assert_eq!(o.rejected, vec![(RejectReason::RouteLeak, 1)]);
    // From our provider: marked with OTC, then never sent up to another
    // provider (here: none) but fine to our customer, OTC kept.
    learn(&mut r, 2, &["100.64.2.0/26"], "198.18.0.3", &[65002]);
    let out = r.drain_outgoing();
    let to_cust = updates_for(&out, PeerId(1));
    assert_eq!(to_cust[0].attributes.otc, Some(Asn(65002)));
    // A customer route goes up to the provider without OTC.
    learn(&mut r, 1, &["100.64.3.0/26"], "198.18.0.2", &[65001]);
    let out = r.drain_outgoing();
    let to_prov = updates_for(&out, PeerId(2));
    assert_eq!(announced(&to_prov), vec![net("100.64.3.0/26")]);
    assert_eq!(to_prov[0].attributes.otc, None);
}

#[test]
fn route_refresh_resends_adj_rib_out() {
    let mut r = rib_with(|_| {});
    up(&mut r, 1, peer("198.18.0.2", 65001));
    r.originate(net("100.64.1.0/26"), "ipam", LocalRoute::default());
    r.originate(net("2001:db8:1000::/122"), "ipam", LocalRoute::default());
    r.drain_outgoing();
    r.route_refresh(PeerId(1), Family::IPV6_UNICAST).unwrap();
    let out = updates_for(&r.drain_outgoing(), PeerId(1));
    assert_eq!(announced(&out), vec![net("2001:db8:1000::/122")]);
    assert_eq!(
        r.route_refresh(PeerId(9), Family::IPV4_UNICAST),
        Err(RibError::UnknownPeer(PeerId(9)))
    );
}

#[test]
fn oversized_as_path_is_not_exported() {
    // CONFORMANCE row 28: output never exceeds the negotiated size.
    let mut r = rib_with(|_| {});
    up(&mut r, 1, peer("198.18.0.2", 65001));
    let mut p = peer("198.18.0.3", 65002);
    p.local_v4 = Some(v4("198.18.0.1"));
    r.add_peer(PeerId(2), p).unwrap();
    let mut s = PeerSession::basic(v4("198.18.0.3"));
    s.four_octet_as = false;
    r.peer_up(PeerId(2), s, now()).unwrap();
    r.drain_outgoing();
    let long: Vec<u32> = std::iter::once(65001)
        .chain((0..1500).map(|i| 70000 + i))
        .collect();
    learn(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", &long);
    assert!(r.best(&net("100.64.1.0/26")).is_some());
    let out = updates_for(&r.drain_outgoing(), PeerId(2));
    assert!(out.is_empty());
    let e = r.explain(&net("100.64.1.0/26"));
    assert_eq!(
        e.exports[1].reason,
        "attributes exceed the peer's maximum message size"
    );
}

#[test]
fn peers_coming_up_together_share_one_dump() {
    use tabby_bgp::capability::{GrFamily, GracefulRestart};
    let mut r = rib_with(|c| c.cluster_id = Some(v4("198.18.0.100")));
    let session = |i: u32| {
        let mut s = PeerSession::basic(v4(&format!("198.18.0.{}", 10 + i)));
        s.families = vec![Family::IPV4_UNICAST];
        s.graceful_restart = Some(GracefulRestart {
            restart_state: false,
            notification: true,
            restart_time: 120,
            families: vec![GrFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            }],
        });
        s
    };
    for i in 0..20u32 {
        let mut p = peer(&format!("198.18.0.{}", 10 + i), LOCAL_AS);
        p.rr_client = true;
        r.add_peer(PeerId(i), p).unwrap();
        r.peer_up(PeerId(i), session(i), now()).unwrap();
        let pfx = format!("100.64.{i}.0/26");
        learn(
            &mut r,
            i,
            &[pfx.as_str()],
            &format!("198.18.0.{}", 10 + i),
            &[],
        );
    }
    r.drain_outgoing();
    // The reflector's clients all restart; their routes stay as stale.
    for i in 0..20u32 {
        r.peer_down(PeerId(i), DownKind::Graceful, now()).unwrap();
    }
    assert_eq!(r.stats().paths, 20);
    for i in 0..20u32 {
        r.peer_up(PeerId(i), session(i), now()).unwrap();
    }
    let before = r.stats().updates_built;
    let out = r.drain_outgoing();
    // One UPDATE per source, shared by the 19 others; not 20 x 19.
    assert_eq!(r.stats().updates_built - before, 20);
    for i in 0..20u32 {
        let got = updates_for(&out, PeerId(i));
        let prefixes = announced(&got);
        assert_eq!(prefixes.len(), 19, "client {i}");
        assert!(
            !prefixes.contains(&net(&format!("100.64.{i}.0/26"))),
            "own route sent back to client {i}"
        );
        assert_eq!(
            render(&got).last().map(String::as_str),
            Some("EOR ipv4-unicast")
        );
    }
}

/// A peer reached over IPv6 that negotiated IPv4 unicast with the RFC 8950
/// extended next hop capability.
fn up_v6_with_v4(r: &mut Rib, id: u32, cfg: PeerConfig) {
    let mut s = PeerSession::basic(v4("198.18.9.9"));
    s.extended_next_hop = vec![Family::IPV4_UNICAST];
    r.add_peer(PeerId(id), cfg).unwrap();
    r.peer_up(PeerId(id), s, now()).unwrap();
}

fn mp_next_hop(u: &[tabby_bgp::message::Update], p: &str) -> Option<(Family, std::net::IpAddr)> {
    u.iter().find_map(|u| {
        let m = u.mp_reach.as_ref()?;
        m.nlri
            .iter()
            .any(|n| n.prefix == net(p))
            .then_some((m.family, m.next_hop.addr))
    })
}

fn classic_next_hop(u: &[tabby_bgp::message::Update], p: &str) -> Option<std::net::Ipv4Addr> {
    u.iter()
        .find(|u| u.nlri.iter().any(|n| n.prefix == net(p)))
        .and_then(|u| u.attributes.next_hop)
}

#[test]
fn ipv4_over_an_extended_next_hop_session_uses_our_ipv6_address() {
    let mut r = rib_with(|_| {});
    up_v6_with_v4(&mut r, 1, peer("2001:db8::2", 65001));
    up(&mut r, 2, peer("198.18.0.3", 65002));
    // Same peer reached over IPv6, but without the capability: plain IPv4 next hop.
    let mut plain = PeerSession::basic(v4("198.18.9.8"));
    plain.extended_next_hop.clear();
    r.add_peer(PeerId(3), peer("2001:db8::3", 65003)).unwrap();
    r.peer_up(PeerId(3), plain, now()).unwrap();
    r.drain_outgoing();

    r.originate(net("100.64.1.0/26"), "ipam", LocalRoute::default());
    let out = r.drain_outgoing();
    let to1 = updates_for(&out, PeerId(1));
    assert_eq!(
        mp_next_hop(&to1, "100.64.1.0/26"),
        Some((Family::IPV4_UNICAST, ip("2001:db8::1"))),
        "RFC 8950: IPv4 NLRI in MP_REACH with our IPv6 address: {to1:?}"
    );
    assert!(classic_next_hop(&to1, "100.64.1.0/26").is_none());
    let to2 = updates_for(&out, PeerId(2));
    assert_eq!(
        classic_next_hop(&to2, "100.64.1.0/26"),
        Some(v4("198.18.0.1"))
    );
    let to3 = updates_for(&out, PeerId(3));
    assert_eq!(
        classic_next_hop(&to3, "100.64.1.0/26"),
        Some(v4("198.18.0.1")),
        "no extended next hop negotiated: {to3:?}"
    );
    assert_ne!(r.group_of(PeerId(1)), r.group_of(PeerId(3)));
}

#[test]
fn ipv4_route_with_ipv6_next_hop_is_accepted_and_readvertised_sendably() {
    let mut r = rib_with(|_| {});
    up_v6_with_v4(&mut r, 1, peer("2001:db8::2", 65001));
    up(&mut r, 2, peer("198.18.0.3", 65002));
    // An iBGP reflector client keeps next hops (RFC 4456 §10) unless it
    // cannot carry them.
    let mut client = peer("198.18.0.4", LOCAL_AS);
    client.rr_client = true;
    up(&mut r, 4, client);
    r.drain_outgoing();

    // RFC 8950 §3: IPv4 NLRI in MP_REACH with a 16-octet next hop.
    let u = tabby_bgp::message::Update {
        attributes: attrs(&[65001], &[]),
        mp_reach: Some(tabby_bgp::message::MpReach {
            family: Family::IPV4_UNICAST,
            next_hop: tabby_bgp::attr::NextHop::new(ip("2001:db8::2")),
            nlri: vec![tabby_bgp::Nlri::new(net("198.19.9.0/24"))],
        }),
        ..Default::default()
    };
    let o = r.apply_update(PeerId(1), &u).unwrap();
    assert!(o.rejected.is_empty(), "{o:?}");
    let best = r.best(&net("198.19.9.0/24")).expect("accepted");
    assert_eq!(best.next_hops[0].addr, ip("2001:db8::2"));
    assert!(!best.local);

    let out = r.drain_outgoing();
    assert_eq!(
        classic_next_hop(&updates_for(&out, PeerId(2)), "198.19.9.0/24"),
        Some(v4("198.18.0.1")),
        "eBGP: next hop self"
    );
    let to4 = updates_for(&out, PeerId(4));
    assert_eq!(
        classic_next_hop(&to4, "198.19.9.0/24"),
        Some(v4("198.18.0.1")),
        "an IPv6 next hop cannot go to an IPv4 peer without RFC 8950: {to4:?}"
    );
}

#[test]
fn local_routes_carry_calicos_priority_as_local_pref_on_ibgp() {
    // Calico 3.32's export filter: a route of this node without a metric
    // gets krt_metric = normal priority and bgp_local_pref = 2147483647 −
    // krt_metric, so every node programs it at that priority. eBGP never
    // carries LOCAL_PREF.
    let mut r = rib_with(|_| {});
    up(&mut r, 1, peer("198.18.0.2", LOCAL_AS));
    up(&mut r, 2, peer("198.18.0.3", 65002));
    r.drain_outgoing();
    r.originate(net("100.64.1.0/26"), "ipam", LocalRoute::default());
    let elevated = LocalRoute {
        local_pref: Some(policy::priority_to_local_pref(512)),
        ..LocalRoute::default()
    };
    r.originate(net("100.64.2.7/32"), "ipam", elevated);
    let out = r.drain_outgoing();
    let ibgp = render(&updates_for(&out, PeerId(1))).join("\n");
    assert!(
        ibgp.contains(r#"["100.64.1.0/26"] nh=198.18.0.1 path=[] lp=Some(2147482623)"#),
        "{ibgp}"
    );
    assert!(
        ibgp.contains(r#"["100.64.2.7/32"] nh=198.18.0.1 path=[] lp=Some(2147483135)"#),
        "{ibgp}"
    );
    let ebgp = render(&updates_for(&out, PeerId(2))).join("\n");
    assert!(
        ebgp.contains("lp=None") && !ebgp.contains("lp=Some"),
        "{ebgp}"
    );

    // ipv4NormalRoutePriority 1024 → 256: re-sent at the new priority; the
    // route with a priority of its own stays as it was.
    assert_eq!(r.set_normal_priority(256, 1024), 1);
    let again = render(&updates_for(&r.drain_outgoing(), PeerId(1)));
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(
        again[0].contains(r#"["100.64.1.0/26"] nh=198.18.0.1 path=[] lp=Some(2147483391)"#),
        "{again:?}"
    );
    assert_eq!(r.set_normal_priority(256, 1024), 0);
    assert!(r.drain_outgoing().is_empty());
}

#[test]
fn a_learned_route_above_the_normal_priority_overrides_a_local_one() {
    // Live migration: the workload's address is still originated here, and
    // its new node announces it at priority 512. Calico gives that route
    // `preference 200` so the kernel sends the traffic there; a route at
    // the normal priority never overrides a local one.
    let mut r = rib_with(|_| {});
    up(&mut r, 1, peer("198.18.0.2", LOCAL_AS));
    up(&mut r, 2, peer("198.18.0.3", LOCAL_AS));
    let host = "100.64.1.7/32";
    r.originate(net(host), "ipam", LocalRoute::default());
    let mut normal = attrs(&[], &[]);
    normal.local_pref = Some(policy::priority_to_local_pref(1024));
    learn_with(&mut r, 1, &[host], "198.18.0.2", normal);
    assert!(
        r.best(&net(host)).unwrap().local,
        "normal priority: ours wins"
    );
    assert_eq!(
        r.explain(&net(host)).candidates[1].lost_at,
        Some(Step::LocalOrigin)
    );

    let mut moved = attrs(&[], &[]);
    moved.local_pref = Some(policy::priority_to_local_pref(512));
    learn_with(&mut r, 2, &[host], "198.18.0.3", moved);
    let best = r.best(&net(host)).unwrap();
    assert!(!best.local, "the elevated route wins over ours");
    assert_eq!(best.next_hops[0].addr, ip("198.18.0.3"));
    let e = r.explain(&net(host));
    let ours = e
        .candidates
        .iter()
        .find(|c| c.lost_at.is_some() && matches!(c.source, RouteSource::Local { .. }))
        .expect("our path lost");
    assert_eq!(ours.lost_at, Some(Step::LocalPref));

    // Its priority back to normal: ours wins again.
    let mut back = attrs(&[], &[]);
    back.local_pref = Some(policy::priority_to_local_pref(1024));
    learn_with(&mut r, 2, &[host], "198.18.0.3", back);
    assert!(r.best(&net(host)).unwrap().local);
}
