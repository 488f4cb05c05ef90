//! Whole-RIB properties under random event sequences.

mod common;

use std::collections::BTreeMap;

use common::*;
use ipnet::IpNet;
use proptest::prelude::*;
use tabby_bgp::Asn;
use tabby_bgp::PathAttributes;
use tabby_bgp::attr::{AsPath, LocalPref, Med, Origin};
use tabby_rib::*;

const LOCAL_AS: u32 = 64512;
const PREFIXES: [&str; 4] = [
    "100.64.0.0/26",
    "100.64.0.64/26",
    "100.64.1.0/24",
    "2001:db8:1000::/64",
];

#[derive(Debug, Clone)]
enum Op {
    Announce {
        peer: u32,
        prefix: usize,
        path_len: u8,
        med: u8,
        lp: u8,
    },
    Withdraw {
        peer: u32,
        prefix: usize,
    },
    Originate {
        prefix: usize,
    },
    WithdrawLocal {
        prefix: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..4, 0usize..4, 1u8..4, 0u8..3, 0u8..2).prop_map(|(peer, prefix, path_len, med, lp)| Op::Announce { peer, prefix, path_len, med, lp }),
        2 => (0u32..4, 0usize..4).prop_map(|(peer, prefix)| Op::Withdraw { peer, prefix }),
        1 => (0usize..4).prop_map(|prefix| Op::Originate { prefix }),
        1 => (0usize..4).prop_map(|prefix| Op::WithdrawLocal { prefix }),
    ]
}

/// Peers 0 and 1 are eBGP (AS 65001/65002), peer 2 iBGP; peer 3 is an RR
/// client whose view is rebuilt from the UPDATEs it receives.
fn build() -> Rib {
    let mut c = RibConfig::new(v4("198.18.0.1"), Asn(LOCAL_AS));
    c.max_paths = 2;
    c.cluster_id = Some(v4("198.18.0.1"));
    let mut r = Rib::new(c);
    for (i, asn) in [(0u32, 65001u32), (1, 65002), (2, LOCAL_AS), (3, LOCAL_AS)] {
        let addr = format!("198.18.0.{}", 10 + i);
        let mut p = PeerConfig::new(ip(&addr), Asn(asn));
        p.local_v4 = Some(v4("198.18.0.1"));
        p.local_v6 = Some("2001:db8::1".parse().unwrap());
        p.rr_client = i == 3;
        r.add_peer(PeerId(i), p).unwrap();
        r.peer_up(PeerId(i), PeerSession::basic(v4(&addr)), now())
            .unwrap();
    }
    r
}

fn update_for(
    peer: u32,
    prefix: usize,
    path_len: u8,
    med: u8,
    lp: u8,
) -> tabby_bgp::message::Update {
    let first = [65001, 65002, 64700, 64700][peer as usize];
    let mut path = vec![Asn(first)];
    path.extend((1..path_len).map(|k| Asn(64800 + k as u32)));
    if peer >= 2 {
        path.clear();
        path.extend((0..path_len.saturating_sub(1)).map(|k| Asn(64800 + k as u32)));
    }
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence(path),
        med: Some(Med::new(med as u32)),
        local_pref: (peer >= 2).then_some(LocalPref::new(100 + lp as u32 * 50)),
        ..Default::default()
    };
    let nh = if PREFIXES[prefix].contains(':') {
        format!("2001:db8::{}", 10 + peer)
    } else {
        format!("198.18.0.{}", 10 + peer)
    };
    with_attrs(&[PREFIXES[prefix]], &nh, attrs)
}

fn apply(r: &mut Rib, op: &Op) {
    match *op {
        Op::Announce {
            peer,
            prefix,
            path_len,
            med,
            lp,
        } => {
            r.apply_update(PeerId(peer), &update_for(peer, prefix, path_len, med, lp))
                .unwrap();
        }
        Op::Withdraw { peer, prefix } => {
            let p = net(PREFIXES[prefix]);
            let u = if p.addr().is_ipv6() {
                tabby_bgp::message::Update {
                    mp_unreach: Some(tabby_bgp::message::MpUnreach {
                        family: tabby_bgp::Family::IPV6_UNICAST,
                        withdrawn: vec![tabby_bgp::Nlri::new(p)],
                    }),
                    ..Default::default()
                }
            } else {
                withdraw(&[PREFIXES[prefix]])
            };
            r.apply_update(PeerId(peer), &u).unwrap();
        }
        Op::Originate { prefix } => {
            r.originate(net(PREFIXES[prefix]), "ipam", LocalRoute::default());
        }
        Op::WithdrawLocal { prefix } => {
            r.withdraw_local(net(PREFIXES[prefix]), "ipam");
        }
    }
}

/// The last announcement per (peer, prefix) still standing after `ops`.
fn final_state(ops: &[Op]) -> Vec<Op> {
    let mut m: BTreeMap<(u32, usize), Option<Op>> = BTreeMap::new();
    for o in ops {
        match o {
            Op::Announce { peer, prefix, .. } => {
                m.insert((*peer, *prefix), Some(o.clone()));
            }
            Op::Withdraw { peer, prefix } => {
                m.insert((*peer, *prefix), None);
            }
            Op::Originate { prefix } => {
                m.insert((99, *prefix), Some(o.clone()));
            }
            Op::WithdrawLocal { prefix } => {
                m.insert((99, *prefix), None);
            }
        }
    }
    m.into_values().flatten().collect()
}

fn summary(r: &Rib) -> Vec<(IpNet, Vec<std::net::IpAddr>, bool)> {
    r.best_routes()
        .into_iter()
        .map(|(p, b)| (p, b.next_hops.iter().map(|h| h.addr).collect(), b.local))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any history ends in the same selection as replaying only its final
    /// routes in reverse order, and the best-change stream agrees with the
    /// table; the listening client's view (built only from UPDATEs) equals
    /// what the RIB says it advertises.
    #[test]
    fn history_independent_selection_and_consistent_outputs(ops in proptest::collection::vec(op(), 1..40)) {
        let mut r = build();
        r.drain_outgoing();
        let mut stream: BTreeMap<IpNet, Option<Vec<std::net::IpAddr>>> = BTreeMap::new();
        let mut client: BTreeMap<IpNet, std::net::IpAddr> = BTreeMap::new();
        for o in &ops {
            apply(&mut r, o);
            for c in r.drain_best_changes() {
                stream.insert(c.prefix, c.best.map(|b| b.next_hops.iter().map(|h| h.addr).collect()));
            }
            for u in updates_for(&r.drain_outgoing(), PeerId(3)) {
                for p in withdrawn(std::slice::from_ref(&u)) {
                    prop_assert!(client.remove(&p).is_some(), "withdrawal of {} never announced", p);
                }
                let nh = u.mp_reach.as_ref().map(|m| m.next_hop.addr).or(u.attributes.next_hop.map(std::net::IpAddr::V4));
                for p in announced(std::slice::from_ref(&u)) {
                    client.insert(p, nh.unwrap());
                }
            }
        }
        let mut fresh = build();
        for o in final_state(&ops).iter().rev() {
            apply(&mut fresh, o);
        }
        prop_assert_eq!(summary(&r), summary(&fresh));
        let from_stream: Vec<(IpNet, Vec<std::net::IpAddr>)> = stream.into_iter().filter_map(|(p, b)| b.map(|b| (p, b))).collect();
        let from_table: Vec<(IpNet, Vec<std::net::IpAddr>)> = summary(&r).into_iter().map(|(p, h, _)| (p, h)).collect();
        prop_assert_eq!(from_stream, from_table);
        // The client receives every best route not learned from itself (it
        // is an RR client: all sources may be reflected to it), with the
        // next hop rules applied.
        let want: BTreeMap<IpNet, std::net::IpAddr> = r
            .best_routes()
            .into_iter()
            .filter(|(_, b)| b.next_hops[0].peer != Some(PeerId(3)))
            .map(|(p, b)| {
                let nh = if b.local { if p.addr().is_ipv6() { ip("2001:db8::1") } else { ip("198.18.0.1") } } else { b.next_hops[0].addr };
                (p, nh)
            })
            .collect();
        prop_assert_eq!(client, want);
    }
}
