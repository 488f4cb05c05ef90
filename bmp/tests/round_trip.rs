//! Property: every message the builders make decodes back to itself, and
//! the UPDATE inside a Route Monitoring decodes to the UPDATE given.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use tabby_bgp::attr::{AsPath, Community, NextHop, Origin, PathAttributes};
use tabby_bgp::capability::Capability;
use tabby_bgp::message::{MpReach, MpUnreach, Open, Update};
use tabby_bgp::{Asn, Family, Nlri};
use tabby_bmp::build;
use tabby_bmp::message::StatValue;
use tabby_bmp::testing::check_round_trip;
use tabby_bmp::{Message, PeerDownReason, PeerHeader, Stat, StatsReport, Timestamp};

fn v4_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 8u8..=32)
        .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
}

fn v6_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 16u8..=128)
        .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
}

fn header() -> impl Strategy<Value = PeerHeader> {
    (
        any::<bool>(),
        any::<u32>(),
        any::<u128>(),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(|(v6, a4, a6, asn, post, two, secs)| {
            let addr = if v6 {
                IpAddr::V6(Ipv6Addr::from(a6))
            } else {
                IpAddr::V4(Ipv4Addr::from(a4))
            };
            let ts = Timestamp {
                secs,
                micros: secs % 1_000_000,
            };
            PeerHeader::global(addr, asn, Ipv4Addr::from(a4), ts, post, two)
        })
}

fn update() -> impl Strategy<Value = (Update, bool)> {
    (
        prop::collection::vec(v4_prefix(), 0..20),
        prop::collection::vec(v4_prefix(), 0..5),
        prop::collection::vec(v6_prefix(), 0..10),
        prop::collection::vec(1u32..65_535, 1..6),
        any::<Option<u32>>(),
        prop::collection::vec(any::<u32>(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(nlri, withdrawn, v6, path, med, comms, two_octet)| {
            let mut u = Update {
                withdrawn: dedup(withdrawn),
                ..Default::default()
            };
            let nlri = dedup(nlri);
            let v6 = dedup(v6);
            if !nlri.is_empty() || !v6.is_empty() {
                u.attributes = PathAttributes {
                    origin: Some(Origin::Incomplete),
                    as_path: AsPath::from_sequence(path.into_iter().map(Asn)),
                    next_hop: (!nlri.is_empty()).then_some(Ipv4Addr::new(198, 18, 0, 9)),
                    med: med.map(tabby_bgp::attr::Med::new),
                    communities: comms.into_iter().map(Community).collect(),
                    ..Default::default()
                };
            }
            u.nlri = nlri;
            if !v6.is_empty() {
                u.mp_reach = Some(MpReach {
                    family: Family::IPV6_UNICAST,
                    next_hop: NextHop::new("2001:db8::9".parse().unwrap()),
                    nlri: v6,
                });
            } else if u.nlri.is_empty() && u.withdrawn.is_empty() {
                u.mp_unreach = Some(MpUnreach {
                    family: Family::IPV6_UNICAST,
                    withdrawn: vec![Nlri::new("2001:db8:1000::/48".parse().unwrap())],
                });
            }
            (u, two_octet)
        })
}

fn dedup(mut v: Vec<IpNet>) -> Vec<Nlri> {
    v.sort();
    v.dedup();
    v.into_iter().map(Nlri::new).collect()
}

proptest! {
    #[test]
    fn route_monitoring_round_trips(h in header(), (u, two) in update()) {
        let mut h = h;
        // A says how wide the AS_PATH is: it must match the context.
        h.flags &= !tabby_bmp::message::flag::A;
        if two {
            h.flags |= tabby_bmp::message::flag::A;
        }
        let ctx = build::update_ctx(!two, &Default::default());
        let m = build::route_monitoring(h, &u, &ctx).unwrap();
        check_round_trip(&m);
        let Message::RouteMonitoring(rm) = m else { unreachable!() };
        prop_assert_eq!(rm.decode_update().unwrap(), u);
    }

    #[test]
    fn peer_up_down_and_stats_round_trip(
        h in header(),
        ports in any::<(u16, u16)>(),
        asn in 1u32..,
        caps in prop::collection::vec(1u16..=2, 0..3),
        counters in prop::collection::vec((0u16..=13, any::<u64>()), 0..14),
        event in any::<u16>(),
    ) {
        let local = SocketAddr::new(h.peer_address().unwrap(), ports.0);
        let open = Open {
            version: 4,
            my_as: 23456,
            hold_time: 90,
            bgp_id: h.bgp_id,
            capabilities: std::iter::once(Capability::FourOctetAs(Asn(asn)))
                .chain(caps.iter().map(|afi| Capability::Multiprotocol(Family::new(tabby_bgp::Afi(*afi), tabby_bgp::Safi::UNICAST))))
                .collect(),
            unknown_params: vec![],
        };
        let up = build::peer_up(h.clone(), local, ports.1, &open, &open).unwrap();
        check_round_trip(&up);
        let Message::PeerUp(p) = &up else { unreachable!() };
        prop_assert_eq!(p.local_addr(), local.ip());
        prop_assert_eq!(p.decode_received_open().unwrap(), open);
        check_round_trip(&build::peer_down(h.clone(), PeerDownReason::LocalNoNotification(event)));
        let stats = counters.into_iter().map(|(kind, v)| Stat {
            kind,
            value: match kind {
                7 | 8 => StatValue::Gauge(v),
                9 | 10 => StatValue::FamilyGauge(Family::IPV4_UNICAST, v),
                _ => StatValue::Counter(v as u32),
            },
        }).collect();
        check_round_trip(&Message::StatisticsReport(StatsReport { peer: h, stats }));
    }
}
