//! Byte vectors for UPDATE and every attribute, checked in both directions,
//! plus RFC 6793 reconciliation, ADD-PATH, RFC 8950 and NLRI packing.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use common::{both_ways, ctx4, decode_update, encode, ibgp, update};
use ipnet::IpNet;
use tabby_bgp::attr::{
    Aggregator, AsPath, Community, ExtCommunity, LargeCommunity, LocalPref, Med, NextHop, Origin,
    RawAttribute, Segment, SegmentType, code,
};
use tabby_bgp::codec::{
    CodecCtx, EncodeError, UpdatePacker, decode_message, encode_announcements, encode_withdrawals,
    frame_len,
};
use tabby_bgp::message::{MpReach, MpUnreach, Update};
use tabby_bgp::notification::{NotificationKind, UpdateMessageError};
use tabby_bgp::{Asn, Family, Message, Nlri, PathAttributes};

fn p(s: &str) -> Nlri {
    Nlri::new(s.parse::<IpNet>().unwrap())
}

const FULL_ATTRS: &str = "40 01 01 00 | 40 02 0a 02 02 0000fde9 0000fdea | 40 03 04 c6120001 \
    | 80 04 04 00000064 | 40 05 04 000000c8 | 40 06 00 | c0 07 08 0000fde9 c6120001 \
    | c0 08 08 fde90064 ffffff01 | 80 09 04 c6120002 | 80 0a 04 c6120003 \
    | c0 10 08 0002fde900000064 | c0 20 0c 0000fde9 00000001 00000002 | c0 23 04 0000fde9 \
    | e0 63 02 abcd";

fn full_attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence([Asn(65001), Asn(65002)]),
        next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
        med: Some(Med::new(100)),
        local_pref: Some(LocalPref::new(200)),
        atomic_aggregate: true,
        aggregator: Some(Aggregator {
            asn: Asn(65001),
            address: Ipv4Addr::new(198, 18, 0, 1),
        }),
        communities: vec![Community::new(65001, 100), Community::NO_EXPORT],
        originator_id: Some(Ipv4Addr::new(198, 18, 0, 2)),
        cluster_list: vec![Ipv4Addr::new(198, 18, 0, 3)],
        ext_communities: vec![ExtCommunity([0, 2, 0xfd, 0xe9, 0, 0, 0, 0x64])],
        large_communities: vec![LargeCommunity {
            global_admin: 65001,
            local_data_1: 1,
            local_data_2: 2,
        }],
        otc: Some(Asn(65001)),
        unknown: vec![RawAttribute {
            flags: 0xe0,
            type_code: 0x63,
            value: vec![0xab, 0xcd],
        }],
    }
}

#[test]
fn update_with_every_attribute() {
    let u = Update {
        withdrawn: vec![p("100.64.9.0/24")],
        attributes: full_attrs(),
        nlri: vec![
            p("100.64.1.0/24"),
            p("100.64.0.0/16"),
            p("0.0.0.0/0"),
            p("198.19.0.7/32"),
        ],
        ..Update::default()
    };
    both_ways(
        &update("18 644009", FULL_ATTRS, "18 644001 10 6440 00 20 c6130007"),
        &Message::Update(u),
        &ibgp(),
    );
}

#[test]
fn unknown_optional_transitive_gets_partial_bit_and_non_transitive_is_not_sent() {
    let mut a = PathAttributes {
        origin: Some(Origin::Incomplete),
        next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
        ..PathAttributes::default()
    };
    a.unknown = vec![
        RawAttribute {
            flags: 0xc0,
            type_code: 0x63,
            value: vec![1, 2, 3],
        },
        RawAttribute {
            flags: 0x80,
            type_code: 0x64,
            value: vec![9],
        },
    ];
    let u = Update {
        attributes: a,
        nlri: vec![p("100.64.1.0/24")],
        ..Update::default()
    };
    let bytes = encode(&Message::Update(u), &ibgp());
    assert_eq!(
        bytes,
        update(
            "",
            "40 01 01 02 | 40 02 00 | 40 03 04 c6120001 | e0 63 03 010203",
            "18 644001"
        )
    );
}

#[test]
fn host_bits_are_cleared() {
    // 100.64.1.255/24 on the wire: only 3 octets are sent.
    let u = decode_update(
        &update(
            "",
            "40 01 01 00 | 40 02 00 | 40 03 04 c6120001",
            "17 6440ff",
        ),
        &ibgp(),
    );
    assert_eq!(u.nlri, vec![p("100.64.254.0/23")]);
}

#[test]
fn ipv6_mp_reach_with_link_local_and_mp_unreach() {
    let nh = NextHop {
        addr: IpAddr::V6("2001:db8::1".parse().unwrap()),
        link_local: Some("fe80::1".parse().unwrap()),
    };
    let reach = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            ..PathAttributes::default()
        },
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: nh,
            nlri: vec![p("2001:db8:1000::/48"), p("2001:db8:1001:8000::/49")],
        }),
        ..Update::default()
    };
    both_ways(
        &update(
            "",
            "80 0e 34 0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00 \
             30 20010db81000 31 20010db8100180 | 40 01 01 00 | 40 02 00",
            "",
        ),
        &Message::Update(reach),
        &ibgp(),
    );
    let unreach = Update {
        mp_unreach: Some(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![p("2001:db8:1000::/48")],
        }),
        ..Update::default()
    };
    both_ways(
        &update("", "80 0f 0a 0002 01 30 20010db81000", ""),
        &Message::Update(unreach),
        &ibgp(),
    );
}

#[test]
fn end_of_rib_markers() {
    // RFC 4724 §2: an empty UPDATE for IPv4, an empty MP_UNREACH otherwise.
    for (bytes, family) in [
        (update("", "", ""), Family::IPV4_UNICAST),
        (update("", "80 0f 03 0002 01", ""), Family::IPV6_UNICAST),
    ] {
        let eor = Message::Update(Update::end_of_rib(family));
        both_ways(&bytes, &eor, &ibgp());
        assert_eq!(decode_update(&bytes, &ibgp()).as_end_of_rib(), Some(family));
    }
}

#[test]
fn rfc8950_ipv4_over_ipv6_next_hop() {
    let ctx = CodecCtx {
        extended_next_hop: true,
        ..ctx4()
    };
    let u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            ..PathAttributes::default()
        },
        mp_reach: Some(MpReach {
            family: Family::IPV4_UNICAST,
            next_hop: NextHop::new(IpAddr::V6("2001:db8::1".parse().unwrap())),
            nlri: vec![p("100.64.1.0/24")],
        }),
        ..Update::default()
    };
    let bytes = update(
        "",
        "80 0e 19 0001 01 10 20010db8000000000000000000000001 00 18 644001 | 40 01 01 00 | 40 02 00",
        "",
    );
    both_ways(&bytes, &Message::Update(u.clone()), &ctx);
    // Without the capability the next-hop length is inconsistent: an
    // optional attribute error naming MP_REACH_NLRI.
    let e = decode_message(&bytes, &ctx4()).unwrap_err();
    assert!(
        matches!(
            &e.kind,
            NotificationKind::Update(u @ UpdateMessageError::OptionalAttributeError(_))
                if u.attribute_type() == Some(code::MP_REACH_NLRI)
        ),
        "{e}"
    );
    let mut out = BytesMut::new();
    assert!(tabby_bgp::codec::encode_message(&Message::Update(u), &ctx4(), &mut out).is_err());
    assert!(out.is_empty(), "nothing appended on error");
}

#[test]
fn add_path_identifiers() {
    let ctx = CodecCtx {
        add_path_rx: BTreeSet::from([Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
        add_path_tx: BTreeSet::from([Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
        ..ctx4()
    };
    let u = Update {
        withdrawn: vec![Nlri::with_path_id("100.64.2.0/24".parse().unwrap(), 7)],
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
            ..PathAttributes::default()
        },
        nlri: vec![Nlri::with_path_id("100.64.1.0/24".parse().unwrap(), 1)],
        mp_unreach: Some(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![Nlri::with_path_id("2001:db8:1000::/48".parse().unwrap(), 2)],
        }),
        ..Update::default()
    };
    both_ways(
        &update(
            "00000007 18 644002",
            "80 0f 0e 0002 01 00000002 30 20010db81000 | 40 01 01 00 | 40 02 00 | 40 03 04 c6120001",
            "00000001 18 644001",
        ),
        &Message::Update(u),
        &ctx,
    );
}

fn two_octet() -> CodecCtx {
    CodecCtx::default()
}

#[test]
fn as4_generation_towards_a_two_octet_peer() {
    let u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: AsPath::from_sequence([Asn(70000), Asn(65001)]),
            next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
            aggregator: Some(Aggregator {
                asn: Asn(70000),
                address: Ipv4Addr::new(198, 18, 0, 1),
            }),
            ..PathAttributes::default()
        },
        nlri: vec![p("100.64.1.0/24")],
        ..Update::default()
    };
    both_ways(
        &update(
            "",
            "40 01 01 00 | 40 02 06 0202 5ba0 fde9 | 40 03 04 c6120001 | c0 07 06 5ba0 c6120001 \
             | c0 11 0a 0202 00011170 0000fde9 | c0 12 08 00011170 c6120001",
            "18 644001",
        ),
        &Message::Update(u),
        &two_octet(),
    );
}

#[test]
fn as4_reconciliation_with_an_old_speaker_prepending() {
    // An OLD speaker (65010) prepended itself to AS_PATH but not AS4_PATH.
    let u = decode_update(
        &update(
            "",
            "40 01 01 00 | 40 02 08 0203 fdf2 5ba0 fde9 | 40 03 04 c6120001 \
             | c0 11 0a 0202 00011170 0000fde9",
            "18 644001",
        ),
        &two_octet(),
    );
    assert!(u.issues.is_empty(), "{:?}", u.issues);
    assert_eq!(
        u.attributes.as_path,
        AsPath::from_sequence([Asn(65010), Asn(70000), Asn(65001)])
    );
}

#[test]
fn as4_ignored_when_longer_or_aggregator_is_not_as_trans() {
    // AS4_PATH longer than AS_PATH: ignored.
    let u = decode_update(
        &update(
            "",
            "40 01 01 00 | 40 02 04 0201 5ba0 | 40 03 04 c6120001 | c0 11 0a 0202 00011170 0000fde9",
            "18 644001",
        ),
        &two_octet(),
    );
    assert_eq!(u.attributes.as_path, AsPath::from_sequence([Asn::TRANS]));
    // AGGREGATOR of a real 2-octet AS: both AS4 attributes ignored.
    let u = decode_update(
        &update(
            "",
            "40 01 01 00 | 40 02 04 0201 5ba0 | 40 03 04 c6120001 | c0 07 06 fde9 c6120001 \
             | c0 11 06 0201 00011170 | c0 12 08 00011170 c6120001",
            "18 644001",
        ),
        &two_octet(),
    );
    assert_eq!(u.attributes.as_path, AsPath::from_sequence([Asn::TRANS]));
    assert_eq!(u.attributes.aggregator.unwrap().asn, Asn(65001));
}

#[test]
fn confederation_segments_round_trip_to_a_two_octet_peer() {
    let path = AsPath {
        segments: vec![
            Segment {
                kind: SegmentType::ConfedSequence,
                asns: vec![Asn(65100)],
            },
            Segment {
                kind: SegmentType::Sequence,
                asns: vec![Asn(70000), Asn(100)],
            },
            Segment {
                kind: SegmentType::Set,
                asns: vec![Asn(200), Asn(80000)],
            },
        ],
    };
    let u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Egp),
            as_path: path,
            next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
            ..PathAttributes::default()
        },
        nlri: vec![p("100.64.1.0/24")],
        ..Update::default()
    };
    let m = Message::Update(u);
    let bytes = encode(&m, &two_octet());
    assert_eq!(decode_message(&bytes, &two_octet()).unwrap(), m);
}

fn v4_prefixes(n: usize) -> Vec<Nlri> {
    (0..n)
        .map(|i| {
            let a = u32::from(Ipv4Addr::new(100, 64, 0, 0)) + ((i as u32) << 8);
            Nlri::new(IpNet::V4(
                ipnet::Ipv4Net::new(Ipv4Addr::from(a), 24).unwrap(),
            ))
        })
        .collect()
}

fn v6_prefixes(n: usize) -> Vec<Nlri> {
    (0..n)
        .map(|i| {
            let a =
                u128::from("2001:db8:1000::".parse::<Ipv6Addr>().unwrap()) + ((i as u128) << 80);
            Nlri::new(IpNet::V6(
                ipnet::Ipv6Net::new(Ipv6Addr::from(a), 48).unwrap(),
            ))
        })
        .collect()
}

/// Splits a buffer of whole messages and decodes each.
fn decode_all(mut buf: &[u8], ctx: &CodecCtx) -> Vec<Update> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = frame_len(buf, ctx.max_message_len).unwrap().unwrap();
        assert!(len <= ctx.max_message_len);
        out.push(decode_update(&buf[..len], ctx));
        buf = &buf[len..];
    }
    out
}

/// Packs announcements of `nlri` with [`typical_attrs`] through
/// `encode_announcements`: the wire bytes, the message count it reported
/// and the messages decoded back.
fn pack_announcements(
    family: Family,
    next_hop: Option<NextHop>,
    nlri: &[Nlri],
    ctx: &CodecCtx,
) -> (BytesMut, usize, Vec<Update>) {
    let mut out = BytesMut::new();
    let n = encode_announcements(family, &typical_attrs(), next_hop, nlri, ctx, &mut out).unwrap();
    let ups = decode_all(&out, ctx);
    (out, n, ups)
}

/// Packs withdrawals of `nlri`: the message count `encode_withdrawals`
/// reported and the messages decoded back.
fn pack_withdrawals(family: Family, nlri: &[Nlri], ctx: &CodecCtx) -> (usize, Vec<Update>) {
    let mut out = BytesMut::new();
    let n = encode_withdrawals(family, nlri, ctx, &mut out).unwrap();
    (n, decode_all(&out, ctx))
}

fn typical_attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence([Asn(65001), Asn(65002), Asn(65003)]),
        next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
        med: Some(Med::new(10)),
        local_pref: Some(LocalPref::new(100)),
        communities: vec![Community::new(65001, 1), Community::new(65001, 2)],
        ..PathAttributes::default()
    }
}

#[test]
fn packing_ipv4_fills_each_message() {
    let nlri = v4_prefixes(5000);
    let ctx = ibgp();
    let (_, n, ups) = pack_announcements(Family::IPV4_UNICAST, None, &nlri, &ctx);
    assert_eq!(ups.len(), n);
    let got: Vec<Nlri> = ups.iter().flat_map(|u| u.nlri.iter().copied()).collect();
    assert_eq!(got, nlri);
    for u in &ups {
        assert!(u.issues.is_empty());
        assert_eq!(u.attributes, typical_attrs());
    }
    // Every message but the last is full to within one prefix.
    let packer = UpdatePacker::new(Family::IPV4_UNICAST, &typical_attrs(), None, &ctx).unwrap();
    let per = (4096 - packer.overhead()) / 4;
    assert_eq!(n, nlri.len().div_ceil(per));
}

#[test]
fn packing_ipv6_in_mp_reach_and_extended_messages() {
    let nlri = v6_prefixes(20000);
    let nh = NextHop::new(IpAddr::V6("2001:db8::1".parse().unwrap()));
    for max in [4096usize, 65535] {
        let ctx = CodecCtx {
            max_message_len: max,
            ..ibgp()
        };
        let (out, n, ups) = pack_announcements(Family::IPV6_UNICAST, Some(nh), &nlri, &ctx);
        assert_eq!(ups.len(), n);
        let got: Vec<Nlri> = ups
            .iter()
            .flat_map(|u| u.mp_reach.as_ref().unwrap().nlri.iter().copied())
            .collect();
        assert_eq!(got, nlri);
        let mut expect = typical_attrs();
        expect.next_hop = None;
        assert!(
            ups.iter()
                .all(|u| u.attributes == expect && u.issues.is_empty())
        );
        // First attribute on the wire is MP_REACH_NLRI.
        assert_eq!(out[19 + 4 + 1], 14);
        let per = (max - 19 - 4 - 4 - 21 - (expect_len(&ctx))) / 7;
        assert!(
            n <= nlri.len().div_ceil(per) + 1,
            "{n} messages for max {max}"
        );
    }
}

fn expect_len(ctx: &CodecCtx) -> usize {
    let mut a = typical_attrs();
    a.next_hop = None;
    let mut b = BytesMut::new();
    tabby_bgp::codec::encode_attributes(&a, ctx, &mut b).unwrap();
    b.len()
}

#[test]
fn packing_withdrawals_both_families() {
    let ctx = ibgp();
    let v4 = v4_prefixes(3000);
    let (n, ups) = pack_withdrawals(Family::IPV4_UNICAST, &v4, &ctx);
    assert_eq!(n, ups.len());
    assert_eq!(n, 3000usize.div_ceil((4096 - 23) / 4));
    assert_eq!(
        ups.iter()
            .flat_map(|u| u.withdrawn.iter().copied())
            .collect::<Vec<_>>(),
        v4
    );

    let v6 = v6_prefixes(3000);
    let (n, ups) = pack_withdrawals(Family::IPV6_UNICAST, &v6, &ctx);
    assert_eq!(n, ups.len());
    let got: Vec<Nlri> = ups
        .iter()
        .flat_map(|u| u.mp_unreach.as_ref().unwrap().withdrawn.iter().copied())
        .collect();
    assert_eq!(got, v6);
}

#[test]
fn packing_with_add_path_and_rfc8950() {
    let ctx = CodecCtx {
        add_path_tx: BTreeSet::from([Family::IPV4_UNICAST]),
        add_path_rx: BTreeSet::from([Family::IPV4_UNICAST]),
        extended_next_hop: true,
        ..ibgp()
    };
    let nlri: Vec<Nlri> = v4_prefixes(2000)
        .into_iter()
        .enumerate()
        .map(|(i, n)| Nlri::with_path_id(n.prefix, i as u32))
        .collect();
    let nh = NextHop::new(IpAddr::V6("2001:db8::1".parse().unwrap()));
    let (_, _, ups) = pack_announcements(Family::IPV4_UNICAST, Some(nh), &nlri, &ctx);
    let got: Vec<Nlri> = ups
        .iter()
        .flat_map(|u| {
            let r = u.mp_reach.as_ref().unwrap();
            assert_eq!(r.family, Family::IPV4_UNICAST);
            assert_eq!(r.next_hop, nh);
            r.nlri.iter().copied()
        })
        .collect();
    assert_eq!(got, nlri);
}

#[test]
fn attributes_that_cannot_fit_are_refused() {
    // CONFORMANCE row 28: thousands of ASNs towards a 2-octet peer.
    let mut a = typical_attrs();
    a.as_path = AsPath::from_sequence((0..3000).map(|i| Asn(100_000 + i)));
    let e = UpdatePacker::new(Family::IPV4_UNICAST, &a, None, &two_octet()).unwrap_err();
    assert!(matches!(e, EncodeError::TooLong { max: 4096, .. }), "{e:?}");
    let u = Update {
        attributes: a,
        nlri: vec![p("100.64.1.0/24")],
        ..Update::default()
    };
    let mut out = BytesMut::new();
    let e =
        tabby_bgp::codec::encode_message(&Message::Update(u), &two_octet(), &mut out).unwrap_err();
    assert!(matches!(e, EncodeError::TooLong { .. }));
    assert!(out.is_empty());
}

#[test]
fn ipv6_next_hop_checks() {
    let attrs = "40 01 01 00 | 40 02 00";
    // Global :: with a link-local address: usable (link-local-only peering).
    let u = decode_update(
        &update(
            "",
            &format!(
                "80 0e 2c 0002 01 20 00000000000000000000000000000000 fe800000000000000000000000000001 00 \
                 30 20010db81000 | {attrs}"
            ),
            "",
        ),
        &ibgp(),
    );
    assert!(u.issues.is_empty(), "{:?}", u.issues);
    // Global :: alone, or multicast: never usable.
    for nh in [
        "00000000000000000000000000000000",
        "ff020000000000000000000000000001",
    ] {
        let u = decode_update(
            &update(
                "",
                &format!("80 0e 1c 0002 01 10 {nh} 00 30 20010db81000 | {attrs}"),
                "",
            ),
            &ibgp(),
        );
        assert!(u.treat_as_withdraw(), "{nh}");
    }
}
