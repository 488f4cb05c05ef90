//! The monitoring view of a peer's Adj-RIB-In: post-policy routes by route
//! and whole, and the pre-policy table kept on request.

mod common;

use std::sync::Arc;

use common::*;
use tabby_bgp::Asn;
use tabby_rib::*;

fn rib_with_peer(import: Option<Policy>) -> Rib {
    let mut r = Rib::new(RibConfig::new(v4("198.18.0.1"), Asn(64512)));
    let mut p = PeerConfig::new(ip("198.18.0.2"), Asn(64512));
    p.import = import.map(Arc::new);
    r.add_peer(PeerId(1), p).unwrap();
    r.peer_up(PeerId(1), PeerSession::basic(v4("198.18.0.2")), now())
        .unwrap();
    r
}

fn reject_second() -> Policy {
    Policy::new("import", Verdict::Accept).rule(
        Rule::new("no-second", Some(Verdict::Reject)).matching(Match::Cidr {
            op: CidrOp::Equal,
            cidr: net("100.64.1.0/24"),
        }),
    )
}

#[test]
fn post_policy_routes_follow_updates_and_policy() {
    let mut r = rib_with_peer(Some(reject_second()));
    r.apply_update(
        PeerId(1),
        &announce(&["100.64.0.0/24", "100.64.1.0/24"], "198.18.0.2", &[]),
    )
    .unwrap();
    let got = r
        .adj_rib_in_route(PeerId(1), &net("100.64.0.0/24"), 0)
        .unwrap();
    assert_eq!(got.next_hop.addr, ip("198.18.0.2"));
    assert!(
        r.adj_rib_in_route(PeerId(1), &net("100.64.1.0/24"), 0)
            .is_none()
    );
    let all: Vec<_> = r.adj_rib_in(PeerId(1)).into_iter().map(|x| x.0).collect();
    assert_eq!(all, vec![net("100.64.0.0/24")]);
    assert_eq!(r.adj_rib_in_pre(PeerId(1)), None, "not kept unless asked");
    r.apply_update(PeerId(1), &withdraw(&["100.64.0.0/24"]))
        .unwrap();
    assert!(r.adj_rib_in(PeerId(1)).is_empty());
    assert!(r.adj_rib_in(PeerId(9)).is_empty());
}

#[test]
fn pre_policy_table_is_kept_from_when_asked() {
    let mut r = rib_with_peer(Some(reject_second()));
    r.apply_update(PeerId(1), &announce(&["100.64.2.0/24"], "198.18.0.2", &[]))
        .unwrap();
    assert_eq!(
        r.set_keep_pre_policy(PeerId(1), true),
        Ok(true),
        "refresh needed"
    );
    assert_eq!(r.adj_rib_in_pre(PeerId(1)), Some(vec![]));
    r.apply_update(
        PeerId(1),
        &announce(&["100.64.0.0/24", "100.64.1.0/24"], "198.18.0.2", &[]),
    )
    .unwrap();
    let pre: Vec<_> = r
        .adj_rib_in_pre(PeerId(1))
        .unwrap()
        .into_iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(pre, vec![net("100.64.0.0/24"), net("100.64.1.0/24")]);
    assert_eq!(r.set_keep_pre_policy(PeerId(1), true), Ok(false));
    assert_eq!(r.set_keep_pre_policy(PeerId(1), false), Ok(false));
    assert_eq!(r.adj_rib_in_pre(PeerId(1)), None);
}
