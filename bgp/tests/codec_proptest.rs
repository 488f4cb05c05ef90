//! Property: every message encodes and decodes back to itself.
//!
//! Normalisation (what the generators respect, because the wire cannot say
//! otherwise): prefixes have no host bits; ADD-PATH identifiers are present
//! exactly when the context negotiated them; AS_PATH segments hold 1-255
//! ASNs other than 0, confederation segments come first and, towards a
//! 2-octet peer, hold only 2-octet ASNs (RFC 6793 keeps them out of
//! AS4_PATH); unknown attributes are optional transitive with the Partial
//! bit already set (the encoder sets it) and distinct type codes; UPDATEs
//! that announce carry ORIGIN, and NEXT_HOP when they use the classic NLRI
//! field, with usable next hops; the peer is internal (eBGP discards
//! LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST by design). Messages larger
//! than the maximum size are skipped.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::prelude::*;
use tabby_bgp::attr::{
    Aggregator, AsPath, Community, ExtCommunity, LargeCommunity, LocalPref, Med, NextHop, Origin,
    RawAttribute, Segment, SegmentType,
};
use tabby_bgp::capability::{
    AddPathFamily, AddPathMode, Capability, ExtendedNextHop, GrFamily, GracefulRestart, LlgrFamily,
    Role,
};
use tabby_bgp::codec::{CodecCtx, EncodeError, decode_message, encode_message};
use tabby_bgp::message::{MpReach, MpUnreach, Open, RefreshSubtype, RouteRefresh, Update};
use tabby_bgp::{Afi, Asn, Family, Message, Nlri, Notification, PathAttributes, Safi};

fn ctx_strategy() -> impl Strategy<Value = CodecCtx> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(four, add_path, ext_nh, ext_msg)| {
            let fams = if add_path {
                BTreeSet::from([Family::IPV4_UNICAST, Family::IPV6_UNICAST])
            } else {
                BTreeSet::new()
            };
            CodecCtx {
                four_octet_as: four,
                max_message_len: if ext_msg { 65535 } else { 4096 },
                add_path_rx: fams.clone(),
                add_path_tx: fams,
                extended_next_hop: ext_nh,
                ebgp: false,
            }
        },
    )
}

fn v4_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
}

fn v6_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
}

fn nlri(
    p: impl Strategy<Value = IpNet>,
    add_path: bool,
    max: usize,
) -> impl Strategy<Value = Vec<Nlri>> {
    vec((p, any::<u32>()), 0..max).prop_map(move |v| {
        v.into_iter()
            .map(|(prefix, id)| Nlri {
                prefix,
                path_id: add_path.then_some(id),
            })
            .collect()
    })
}

fn asn() -> impl Strategy<Value = Asn> {
    prop_oneof![1u32..=65535, 1u32..=u32::MAX, Just(23456)].prop_map(Asn)
}

fn as_path(four: bool) -> impl Strategy<Value = AsPath> {
    let confed_asn = if four {
        (1u32..=u32::MAX).boxed()
    } else {
        (1u32..=65535).boxed()
    };
    let confed = vec(
        (
            prop_oneof![
                Just(SegmentType::ConfedSequence),
                Just(SegmentType::ConfedSet)
            ],
            vec(confed_asn.prop_map(Asn), 1..6),
        ),
        0..2,
    );
    let plain = vec(
        (
            prop_oneof![Just(SegmentType::Sequence), Just(SegmentType::Set)],
            vec(asn(), 1..40),
        ),
        0..4,
    );
    (confed, plain).prop_map(|(c, p)| AsPath {
        segments: c
            .into_iter()
            .chain(p)
            .map(|(kind, asns)| Segment { kind, asns })
            .collect(),
    })
}

fn usable_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u16>().prop_map(|x| Ipv4Addr::new(198, 18, (x >> 8) as u8, x as u8))
}

fn usable_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u64>().prop_map(|x| Ipv6Addr::from((0x2001_0db8u128 << 96) | x as u128))
}

fn attributes(four: bool) -> impl Strategy<Value = PathAttributes> {
    (
        (
            proptest::option::of(prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ]),
            as_path(four),
            proptest::option::of(usable_v4()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
            proptest::option::of((asn(), any::<u32>())),
        ),
        (
            vec(any::<u32>(), 0..5),
            proptest::option::of(any::<u32>()),
            vec(any::<u32>(), 0..4),
            vec(any::<[u8; 8]>(), 0..4),
            vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..4),
            proptest::option::of(any::<u32>()),
            proptest::collection::btree_map(100u8..=200, vec(any::<u8>(), 0..300), 0..3),
        ),
    )
        .prop_map(
            |(
                (origin, as_path, next_hop, med, local_pref, atomic_aggregate, agg),
                (comms, orig, cl, ext, large, otc, unknown),
            )| {
                PathAttributes {
                    origin,
                    as_path,
                    next_hop,
                    med: med.map(Med::new),
                    local_pref: local_pref.map(LocalPref::new),
                    atomic_aggregate,
                    aggregator: agg.map(|(asn, a)| Aggregator {
                        asn,
                        address: Ipv4Addr::from(a),
                    }),
                    communities: comms.into_iter().map(Community).collect(),
                    originator_id: orig.map(Ipv4Addr::from),
                    cluster_list: cl.into_iter().map(Ipv4Addr::from).collect(),
                    ext_communities: ext.into_iter().map(ExtCommunity).collect(),
                    large_communities: large
                        .into_iter()
                        .map(|(g, l1, l2)| LargeCommunity {
                            global_admin: g,
                            local_data_1: l1,
                            local_data_2: l2,
                        })
                        .collect(),
                    otc: otc.map(Asn),
                    unknown: unknown
                        .into_iter()
                        .map(|(type_code, value): (u8, Vec<u8>)| RawAttribute {
                            flags: 0xe0,
                            type_code,
                            value,
                        })
                        .collect(),
                }
            },
        )
}

fn update(ctx: CodecCtx) -> impl Strategy<Value = (CodecCtx, Update)> {
    let ap = !ctx.add_path_tx.is_empty();
    let ext_nh = ctx.extended_next_hop;
    let mp_reach = proptest::option::of(prop_oneof![
        (
            usable_v6(),
            proptest::option::of(any::<u128>()),
            nlri(v6_prefix(), ap, 40)
        )
            .prop_map(|(g, ll, n)| MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop {
                    addr: IpAddr::V6(g),
                    link_local: ll.map(Ipv6Addr::from),
                },
                nlri: n,
            }),
        (usable_v4(), usable_v6(), nlri(v4_prefix(), ap, 40)).prop_map(move |(a4, a6, n)| {
            MpReach {
                family: Family::IPV4_UNICAST,
                next_hop: NextHop::new(if ext_nh {
                    IpAddr::V6(a6)
                } else {
                    IpAddr::V4(a4)
                }),
                nlri: n,
            }
        }),
    ]);
    let mp_unreach = proptest::option::of(prop_oneof![
        nlri(v6_prefix(), ap, 40).prop_map(|w| MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: w
        }),
        nlri(v4_prefix(), ap, 40).prop_map(|w| MpUnreach {
            family: Family::IPV4_UNICAST,
            withdrawn: w
        }),
    ]);
    (
        Just(ctx.clone()),
        nlri(v4_prefix(), ap, 40),
        attributes(ctx.four_octet_as),
        nlri(v4_prefix(), ap, 40),
        mp_reach,
        mp_unreach,
        usable_v4(),
    )
        .prop_map(
            |(ctx, withdrawn, mut attributes, nlri, mp_reach, mp_unreach, nh)| {
                let announces =
                    !nlri.is_empty() || mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
                if announces && attributes.origin.is_none() {
                    attributes.origin = Some(Origin::Igp);
                }
                if !nlri.is_empty() && attributes.next_hop.is_none() {
                    attributes.next_hop = Some(nh);
                }
                (
                    ctx,
                    Update {
                        withdrawn,
                        attributes,
                        nlri,
                        mp_reach,
                        mp_unreach,
                        issues: vec![],
                    },
                )
            },
        )
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![
        Just(Family::IPV4_UNICAST),
        Just(Family::IPV6_UNICAST),
        (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Family::new(Afi(a), Safi(s)))
    ]
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        any::<u32>().prop_map(|a| Capability::FourOctetAs(Asn(a))),
        (0u8..=4).prop_map(|r| Capability::Role(Role::from_u8(r).unwrap())),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            vec((family(), any::<bool>()), 0..6)
        )
            .prop_map(|(r, n, t, f)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: r,
                    notification: n,
                    restart_time: t,
                    families: f
                        .into_iter()
                        .map(|(family, forwarding_preserved)| GrFamily {
                            family,
                            forwarding_preserved,
                        })
                        .collect(),
                })
            }),
        vec((family(), any::<bool>(), 0u32..=0xFF_FFFF), 0..6).prop_map(|f| {
            Capability::LongLivedGracefulRestart(
                f.into_iter()
                    .map(|(family, forwarding_preserved, stale_time)| LlgrFamily {
                        family,
                        forwarding_preserved,
                        stale_time,
                    })
                    .collect(),
            )
        }),
        vec(
            (
                family(),
                prop_oneof![
                    Just(AddPathMode::Receive),
                    Just(AddPathMode::Send),
                    Just(AddPathMode::Both)
                ]
            ),
            0..6
        )
        .prop_map(|f| Capability::AddPath(
            f.into_iter()
                .map(|(family, mode)| AddPathFamily { family, mode })
                .collect()
        )),
        vec((family(), any::<u16>()), 0..6).prop_map(|f| Capability::ExtendedNextHop(
            f.into_iter()
                .map(|(family, nh)| ExtendedNextHop {
                    family,
                    next_hop_afi: Afi(nh),
                })
                .collect()
        )),
        (
            prop_oneof![Just(3u8), Just(7), Just(8), 128u8..=200],
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        any::<u16>().prop_filter("hold 1 and 2 are invalid", |h| *h != 1 && *h != 2),
        1u32..,
        vec(capability(), 0..30),
        vec(
            (
                prop_oneof![Just(1u8), 3u8..=254, Just(255)],
                vec(any::<u8>(), 0..20),
            ),
            0..3,
        ),
    )
        .prop_map(|(my_as, hold_time, id, mut capabilities, unknown_params)| {
            if my_as == 23456 {
                capabilities.push(Capability::FourOctetAs(Asn(70000)));
            }
            Open {
                version: 4,
                my_as,
                hold_time,
                bgp_id: Ipv4Addr::from(id),
                capabilities,
                unknown_params,
            }
        })
}

fn message() -> impl Strategy<Value = (CodecCtx, Message)> {
    prop_oneof![
        1 => Just((CodecCtx::default(), Message::Keepalive)),
        2 => open().prop_map(|o| (CodecCtx::default(), Message::Open(o))),
        1 => (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..100))
            .prop_map(|(c, s, d)| (CodecCtx::default(), Message::Notification(Notification::new(c, s, d)))),
        1 => (family(), prop_oneof![
                Just(RefreshSubtype::Request),
                Just(RefreshSubtype::BeginningOfRouteRefresh),
                Just(RefreshSubtype::EndOfRouteRefresh),
                Just(RefreshSubtype::Reserved)
            ])
            .prop_map(|(family, subtype)| (CodecCtx::default(), Message::RouteRefresh(RouteRefresh { family, subtype }))),
        6 => ctx_strategy().prop_flat_map(update).prop_map(|(c, u)| (c, Message::Update(u))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity((ctx, msg) in message()) {
        let mut out = BytesMut::new();
        match encode_message(&msg, &ctx, &mut out) {
            Err(EncodeError::TooLong { .. }) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("encode: {e}"))),
            Ok(()) => {}
        }
        prop_assert!(out.len() <= ctx.max_message_len);
        let back = decode_message(&out, &ctx).map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn decode_never_panics(bytes in vec(any::<u8>(), 0..600), ctx in ctx_strategy()) {
        let mut framed = vec![0xff; 16];
        framed.extend_from_slice(&((19 + bytes.len()) as u16).to_be_bytes());
        framed.push(2);
        framed.extend_from_slice(&bytes);
        let _ = decode_message(&framed, &ctx);
        let _ = decode_message(&bytes, &ctx);
    }
}
