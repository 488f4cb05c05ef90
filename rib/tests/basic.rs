//! The thin path: routes in, best changes and UPDATEs out.

mod common;

use common::*;
use std::sync::Arc;
use tabby_bgp::Asn;
use tabby_bgp::message::Update;
use tabby_rib::*;

const LOCAL_AS: u32 = 64512;

fn rib() -> Rib {
    let mut c = RibConfig::new(v4("198.18.0.1"), Asn(LOCAL_AS));
    c.max_paths = 4;
    c.local_addresses = vec![ip("198.18.0.1")];
    Rib::new(c)
}

fn peer(addr: &str, asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(ip(addr), Asn(asn));
    p.local_v4 = Some(v4("198.18.0.1"));
    p.local_v6 = Some("2001:db8::1".parse().unwrap());
    p
}

#[test]
fn best_path_and_ecmp_and_withdraw() {
    let mut r = rib();
    let t = now();
    for (i, a) in [(1, "198.18.0.2"), (2, "198.18.0.3")] {
        r.add_peer(PeerId(i), peer(a, 65000 + i)).unwrap();
        r.peer_up(PeerId(i), PeerSession::basic(v4(a)), t).unwrap();
    }
    let o = learn(&mut r, 1, &["100.64.0.0/26"], "198.18.0.2", &[65001, 65010]);
    assert_eq!(o.announced, 1);
    let c = r.drain_best_changes();
    assert_eq!(c.len(), 1);
    let b = c[0].best.as_ref().unwrap();
    assert_eq!(
        b.next_hops,
        vec![EcmpHop {
            addr: ip("198.18.0.2"),
            peer: Some(PeerId(1))
        }]
    );
    assert!(!b.local);

    // Equal up to the IGP step: ECMP of two (different neighbour AS, so MED
    // is not compared; both eBGP).
    learn(&mut r, 2, &["100.64.0.0/26"], "198.18.0.3", &[65002, 65010]);
    let c = r.drain_best_changes();
    assert_eq!(c.len(), 1);
    let hops: Vec<_> = c[0]
        .best
        .as_ref()
        .unwrap()
        .next_hops
        .iter()
        .map(|h| h.addr)
        .collect();
    assert_eq!(hops, vec![ip("198.18.0.2"), ip("198.18.0.3")]);

    // A shorter path wins alone.
    learn(&mut r, 2, &["100.64.0.0/26"], "198.18.0.3", &[65002]);
    let c = r.drain_best_changes();
    assert_eq!(c[0].best.as_ref().unwrap().next_hops.len(), 1);
    assert_eq!(
        c[0].best.as_ref().unwrap().next_hops[0].addr,
        ip("198.18.0.3")
    );

    r.apply_update(PeerId(2), &withdraw(&["100.64.0.0/26"]))
        .unwrap();
    r.apply_update(PeerId(1), &withdraw(&["100.64.0.0/26"]))
        .unwrap();
    let c = r.drain_best_changes();
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].best, None);
    assert!(c[0].seq < c[1].seq);
    assert_eq!(r.stats().prefixes, 0);
}

#[test]
fn rejects_loops_martians_and_first_as() {
    let mut r = rib();
    let t = now();
    r.add_peer(PeerId(1), peer("198.18.0.2", 65001)).unwrap();
    r.peer_up(PeerId(1), PeerSession::basic(v4("198.18.0.2")), t)
        .unwrap();
    let o = learn(
        &mut r,
        1,
        &["100.64.1.0/26"],
        "198.18.0.2",
        &[65001, LOCAL_AS],
    );
    assert_eq!(o.rejected, vec![(RejectReason::AsLoop, 1)]);
    let o = learn(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", &[65009]);
    assert_eq!(o.rejected, vec![(RejectReason::FirstAsMismatch, 1)]);
    // CONFORMANCE row 17: stored but never selected.
    for nh in ["0.0.0.0", "127.0.0.1", "224.0.0.5", "198.18.0.1"] {
        learn(&mut r, 1, &["100.64.2.0/26"], nh, &[65001]);
        assert!(
            r.best(&net("100.64.2.0/26")).is_none(),
            "next hop {nh} must not be used"
        );
    }
    assert!(r.drain_best_changes().is_empty());
}

#[test]
fn originated_route_is_exported_with_next_hop_self_and_prepend() {
    let mut r = rib();
    let t = now();
    r.add_peer(PeerId(1), peer("198.18.0.2", 65001)).unwrap();
    r.peer_up(PeerId(1), PeerSession::basic(v4("198.18.0.2")), t)
        .unwrap();
    let out = r.drain_outgoing();
    assert_eq!(
        render(&updates_for(&out, PeerId(1))),
        vec!["EOR ipv4-unicast", "EOR ipv6-unicast"]
    );

    r.originate(net("100.64.3.0/26"), "ipam", LocalRoute::default());
    r.originate(net("2001:db8:1000::/122"), "ipam", LocalRoute::default());
    let c = r.drain_best_changes();
    assert_eq!(c.len(), 2);
    assert!(c[0].best.as_ref().unwrap().local);
    let out = r.drain_outgoing();
    assert_eq!(
        render(&updates_for(&out, PeerId(1))),
        vec![
            r#"A ["100.64.3.0/26"] nh=198.18.0.1 path=[64512] lp=None med=None orig=None cl=[] comm=[]"#,
            r#"A ["2001:db8:1000::/122"] nh=2001:db8::1 path=[64512] lp=None med=None orig=None cl=[] comm=[]"#,
        ]
    );
    assert!(r.withdraw_local(net("100.64.3.0/26"), "ipam"));
    let out = r.drain_outgoing();
    assert_eq!(
        render(&updates_for(&out, PeerId(1))),
        vec![r#"W ["100.64.3.0/26"]"#]
    );
}

#[test]
fn ibgp_split_horizon_and_no_echo() {
    let mut r = rib();
    let t = now();
    for (i, a) in [(1, "198.18.0.2"), (2, "198.18.0.3")] {
        r.add_peer(PeerId(i), peer(a, LOCAL_AS)).unwrap();
        r.peer_up(PeerId(i), PeerSession::basic(v4(a)), t).unwrap();
    }
    r.drain_outgoing();
    learn(&mut r, 1, &["100.64.4.0/26"], "198.18.0.2", &[]);
    let out = r.drain_outgoing();
    // Not a reflector: iBGP routes do not go to other iBGP peers.
    assert!(updates_for(&out, PeerId(2)).is_empty());
    assert!(updates_for(&out, PeerId(1)).is_empty());
    let e = r.explain(&net("100.64.4.0/26"));
    assert_eq!(e.candidates.len(), 1);
    assert!(e.candidates[0].best);
    assert_eq!(e.exports.len(), 2);
    assert!(e.exports.iter().all(|x| !x.exported));
    assert!(
        e.exports[1].reason.contains("split horizon"),
        "{}",
        e.exports[1].reason
    );
}

#[test]
fn replace_local_is_atomic_set_replacement() {
    let mut r = rib();
    r.replace_local(
        "ipam",
        vec![
            (net("100.64.5.0/26"), LocalRoute::default()),
            (net("100.64.6.0/26"), LocalRoute::default()),
        ],
    );
    assert_eq!(r.drain_best_changes().len(), 2);
    r.replace_local(
        "ipam",
        vec![
            (net("100.64.6.0/26"), LocalRoute::default()),
            (net("100.64.7.0/26"), LocalRoute::default()),
        ],
    );
    let c = r.drain_best_changes();
    let mut got: Vec<(String, bool)> = c
        .iter()
        .map(|c| (c.prefix.to_string(), c.best.is_some()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("100.64.5.0/26".to_string(), false),
            ("100.64.7.0/26".to_string(), true)
        ]
    );
}

#[test]
fn treat_as_withdraw_and_end_of_rib() {
    use tabby_bgp::error::{Rfc7606Action, Rfc7606Issue};
    let mut r = rib();
    let t = now();
    r.add_peer(PeerId(1), peer("198.18.0.2", 65001)).unwrap();
    assert_eq!(
        r.apply_update(PeerId(1), &Update::default()),
        Err(RibError::PeerNotUp(PeerId(1)))
    );
    r.peer_up(PeerId(1), PeerSession::basic(v4("198.18.0.2")), t)
        .unwrap();
    learn(&mut r, 1, &["100.64.8.0/26"], "198.18.0.2", &[65001]);
    assert!(r.best(&net("100.64.8.0/26")).is_some());
    let mut u = announce(&["100.64.8.0/26"], "198.18.0.2", &[65001]);
    u.issues.push(Rfc7606Issue {
        action: Rfc7606Action::TreatAsWithdraw,
        attribute: 8,
        subcode: 5,
        reason: "bad".into(),
    });
    let o = r.apply_update(PeerId(1), &u).unwrap();
    assert_eq!(o.rejected, vec![(RejectReason::TreatAsWithdraw, 1)]);
    assert!(r.best(&net("100.64.8.0/26")).is_none());
    let o = r
        .apply_update(
            PeerId(1),
            &Update::end_of_rib(tabby_bgp::Family::IPV6_UNICAST),
        )
        .unwrap();
    assert_eq!(o.end_of_rib, Some(tabby_bgp::Family::IPV6_UNICAST));
    assert_eq!(
        r.add_peer(PeerId(1), peer("198.18.0.2", 65001)),
        Err(RibError::DuplicatePeer(PeerId(1)))
    );
    let _ = Arc::new(0);
}

#[test]
fn rib_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Rib>();
    assert_send::<BestChange>();
    assert_send::<Outgoing>();
}

#[test]
fn repeated_peer_up_keeps_one_group_membership() {
    let mut r = rib();
    let t = now();
    r.add_peer(PeerId(1), peer("198.18.0.2", 65001)).unwrap();
    r.peer_up(PeerId(1), PeerSession::basic(v4("198.18.0.2")), t)
        .unwrap();
    r.peer_up(PeerId(1), PeerSession::basic(v4("198.18.0.2")), t)
        .unwrap();
    assert_eq!(r.stats().update_groups, 1);
    r.remove_peer(PeerId(1)).unwrap();
    assert_eq!(r.stats().update_groups, 0);
}

#[test]
fn prefix_count_follows_announcements_withdrawals_and_flushes() {
    use tabby_bgp::Family;
    let mut r = rib();
    let t = now();
    r.add_peer(PeerId(1), peer("198.18.0.2", 65001)).unwrap();
    r.peer_up(PeerId(1), PeerSession::basic(v4("198.18.0.2")), t)
        .unwrap();
    learn(
        &mut r,
        1,
        &["100.64.0.0/26", "100.64.0.64/26", "100.64.0.128/26"],
        "198.18.0.2",
        &[65001],
    );
    learn(&mut r, 1, &["2001:db8:1000::/64"], "2001:db8::2", &[65001]);
    // Implicit withdraw does not count twice.
    learn(&mut r, 1, &["100.64.0.0/26"], "198.18.0.2", &[65001, 65005]);
    assert_eq!(r.prefix_count(PeerId(1), Family::IPV4_UNICAST), 3);
    assert_eq!(r.prefix_count(PeerId(1), Family::IPV6_UNICAST), 1);
    r.apply_update(PeerId(1), &withdraw(&["100.64.0.64/26", "100.64.9.0/26"]))
        .unwrap();
    assert_eq!(r.prefix_count(PeerId(1), Family::IPV4_UNICAST), 2);
    r.peer_down(PeerId(1), DownKind::Flush, t).unwrap();
    assert_eq!(r.prefix_count(PeerId(1), Family::IPV4_UNICAST), 0);
    assert_eq!(r.prefix_count(PeerId(1), Family::IPV6_UNICAST), 0);
    assert_eq!(r.prefix_count(PeerId(7), Family::IPV4_UNICAST), 0);
}

#[test]
fn outgoing_encodes_once_and_round_trips() {
    use tabby_bgp::Message;
    use tabby_bgp::codec::{CodecCtx, decode_message, frame_len};
    let mut r = rib();
    r.add_peer(PeerId(1), peer("198.18.0.2", 65001)).unwrap();
    r.peer_up(PeerId(1), PeerSession::basic(v4("198.18.0.2")), now())
        .unwrap();
    r.drain_outgoing();
    r.originate(net("100.64.3.0/26"), "ipam", LocalRoute::default());
    r.originate(net("2001:db8:1000::/122"), "ipam", LocalRoute::default());
    let ctx = CodecCtx {
        four_octet_as: true,
        ebgp: true,
        ..CodecCtx::default()
    };
    let out = r.drain_outgoing();
    let mut decoded = Vec::new();
    for o in &out {
        assert!(o.batch.ctx().encodes_like(&ctx));
        let bytes: Vec<u8> = o.batch.for_member(1).concat();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = frame_len(rest, ctx.max_message_len).unwrap().unwrap();
            let Message::Update(u) = decode_message(&rest[..n], &ctx).unwrap() else {
                panic!("not an UPDATE")
            };
            decoded.push(u);
            rest = &rest[n..];
        }
    }
    assert_eq!(
        announced(&decoded),
        vec![net("100.64.3.0/26"), net("2001:db8:1000::/122")]
    );
}

/// Without change detail, best changes are prefixes only; turning detail
/// back on converts what is pending into full changes.
#[test]
fn change_detail_off_records_prefixes() {
    let mut r = rib();
    let t = now();
    r.add_peer(PeerId(1), peer("198.18.0.2", 65001)).unwrap();
    r.peer_up(PeerId(1), PeerSession::basic(v4("198.18.0.2")), t)
        .unwrap();
    r.set_change_detail(false);
    learn(
        &mut r,
        1,
        &["100.64.0.0/26", "100.64.0.64/26"],
        "198.18.0.2",
        &[65001],
    );
    r.apply_update(PeerId(1), &withdraw(&["100.64.0.0/26"]))
        .unwrap();
    assert!(r.drain_best_changes().is_empty());
    assert_eq!(
        r.drain_changed_prefixes(),
        vec![
            net("100.64.0.0/26"),
            net("100.64.0.64/26"),
            net("100.64.0.0/26")
        ]
    );
    assert!(r.drain_changed_prefixes().is_empty());
    learn(&mut r, 1, &["100.64.1.0/26"], "198.18.0.2", &[65001]);
    r.set_change_detail(true);
    let c = r.drain_best_changes();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].prefix, net("100.64.1.0/26"));
    assert_eq!(
        c[0].best.as_ref().unwrap().next_hops[0].addr,
        ip("198.18.0.2")
    );
    assert!(r.drain_changed_prefixes().is_empty());
}
