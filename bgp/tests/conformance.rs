//! CONFORMANCE.md wire table, one test per codec-level row: each feeds the
//! exact bytes and checks the outcome. Rows (or parts of rows) that need
//! session state — our own identifier or address, the configured peer AS,
//! the eBGP first-AS check, cluster-id loops, row 30's FSM errors — belong
//! to the FSM and the RIB and are tested there.

mod common;

use std::net::Ipv4Addr;

use bytes::BytesMut;
use common::{MARKER, decode_update, ebgp, encode, hex, ibgp, msg, update};
use tabby_bgp::attr::{AsPath, RawAttribute, code};
use tabby_bgp::codec::{CodecCtx, EncodeError, UpdatePacker, decode_message, encode_message};
use tabby_bgp::error::{Rfc7606Action, Rfc7606Issue};
use tabby_bgp::message::Update;
use tabby_bgp::notification::{
    MessageHeaderError as H, NotificationKind as K, OpenMessageError as O, RouteRefreshError,
    UpdateMessageError as U, update as update_sub,
};
use tabby_bgp::{Asn, Family, Message};

/// ORIGIN IGP, empty AS_PATH, NEXT_HOP 198.18.0.1.
const BASE: &str = "40 01 01 00 | 40 02 00 | 40 03 04 c6120001";
const NLRI: &str = "18 644001";

fn reset(bytes: &[u8], ctx: &CodecCtx) -> K {
    decode_message(bytes, ctx)
        .expect_err("must reset the session")
        .kind
}

fn action_for(u: &Update, attr: u8) -> Option<Rfc7606Action> {
    u.issues
        .iter()
        .find(|i| i.attribute == attr)
        .map(|i| i.action)
}

fn assert_withdraw(u: &Update, attr: u8) {
    assert!(
        u.treat_as_withdraw(),
        "expected treat-as-withdraw: {:?}",
        u.issues
    );
    assert_eq!(
        action_for(u, attr),
        Some(Rfc7606Action::TreatAsWithdraw),
        "{:?}",
        u.issues
    );
}

fn assert_discard(u: &Update, attr: u8) {
    assert!(!u.treat_as_withdraw(), "route must be kept: {:?}", u.issues);
    assert_eq!(
        action_for(u, attr),
        Some(Rfc7606Action::AttributeDiscard),
        "{:?}",
        u.issues
    );
    assert_eq!(u.nlri.len(), 1, "route kept");
}

fn with(extra: &str) -> Vec<u8> {
    update("", &format!("{BASE} | {extra}"), NLRI)
}

#[test]
fn row01_marker_not_all_ones() {
    let mut b = hex(&format!("{MARKER} 0013 04"));
    b[15] = 0xfe;
    assert_eq!(
        reset(&b, &ibgp()),
        K::MessageHeader(H::ConnectionNotSynchronized)
    );
}

#[test]
fn row02_bad_length() {
    assert_eq!(
        reset(&hex(&format!("{MARKER} 0010 04")), &ibgp()),
        K::MessageHeader(H::BadMessageLength(0x10))
    );
    let mut big = msg(2, &common::update_body("", BASE, NLRI));
    big.resize(4097, 0);
    big[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(
        reset(&big, &ibgp()),
        K::MessageHeader(H::BadMessageLength(4097))
    );
    // RFC 8654: accepted once extended messages are negotiated (the zero
    // padding then reads as NLRI 0.0.0.0/0 entries, valid).
    let ext = CodecCtx {
        max_message_len: 65535,
        ..ibgp()
    };
    assert!(decode_message(&big, &ext).is_ok());
}

#[test]
fn row03_unknown_message_type() {
    assert_eq!(
        reset(&msg(9, "00"), &ibgp()),
        K::MessageHeader(H::BadMessageType(9))
    );
}

#[test]
fn row04_keepalive_and_route_refresh_lengths() {
    assert_eq!(
        reset(&msg(4, "0000"), &ibgp()),
        K::MessageHeader(H::BadMessageLength(21))
    );
    for rr in [msg(5, "0001 00"), msg(5, "0001 01 01 ff")] {
        assert_eq!(
            reset(&rr, &ibgp()),
            K::RouteRefresh(RouteRefreshError::InvalidMessageLength(rr.clone()))
        );
    }
}

#[test]
fn row05_open_version() {
    assert_eq!(
        reset(&msg(1, "05 fde9 005a c6120001 00"), &ibgp()),
        K::Open(O::UnsupportedVersion(4))
    );
}

#[test]
fn row06_hold_time() {
    for h in ["0001", "0002"] {
        assert_eq!(
            reset(&msg(1, &format!("04 fde9 {h} c6120001 00")), &ibgp()),
            K::Open(O::UnacceptableHoldTime)
        );
    }
    for h in ["0000", "0003"] {
        assert!(decode_message(&msg(1, &format!("04 fde9 {h} c6120001 00")), &ibgp()).is_ok());
    }
}

#[test]
fn row07_bgp_identifier_zero() {
    // "Equal to ours on iBGP" needs our identifier: the FSM's check.
    assert_eq!(
        reset(&msg(1, "04 fde9 005a 00000000 00"), &ibgp()),
        K::Open(O::BadBgpIdentifier(Some(Ipv4Addr::UNSPECIFIED)))
    );
}

#[test]
fn row08_as_trans_without_four_octet_capability() {
    // Wrong peer AS and capability AS ≠ configured need the configuration:
    // the FSM's checks.
    assert_eq!(
        reset(&msg(1, "04 5ba0 005a c6120001 00"), &ibgp()),
        K::Open(O::BadPeerAs(Some(23456)))
    );
}

#[test]
fn row09_parameter_and_capability_overruns() {
    for body in [
        "04 fde9 005a c6120001 08 02 06 010400010001 00", // params shorter than said
        "04 fde9 005a c6120001 08 02 07 010400010001",    // parameter overrun
        "04 fde9 005a c6120001 08 02 06 010500010001",    // capability overrun
        "04 fde9 005a c6120001 03 02 01 01",              // capability header cut
        "04 fde9 005a c6120001 ff ff",                    // RFC 9072 length missing
        "04 fde9 005a c6120001 ff ff 00",                 // RFC 9072 length cut
        "04 fde9 005a c6120001 ff ff 0004 02 0006 0104",  // RFC 9072 parameter overrun
        "04 fde9 005a c6120001 ff ff 0002 02 00",         // RFC 9072 parameter header cut
    ] {
        assert_eq!(
            reset(&msg(1, body), &ibgp()),
            K::Open(O::Unspecific),
            "{body}"
        );
    }
}

#[test]
fn row10_section_lengths_beyond_the_message() {
    // Withdrawn-routes length beyond the message.
    assert_eq!(
        reset(&msg(2, "0010 18644001 0000"), &ibgp()),
        K::Update(U::MalformedAttributeList)
    );
    // Total attribute length beyond the message.
    assert_eq!(
        reset(&msg(2, "0000 0020 40010100"), &ibgp()),
        K::Update(U::MalformedAttributeList)
    );
}

#[test]
fn row11_attribute_overruns_total_length() {
    // The last attribute (NEXT_HOP) claims 8 octets, 4 remain: the NLRI is
    // still found from the total length, and treated as withdrawn.
    let u = decode_update(
        &update("", "40 01 01 00 | 40 02 00 | 40 03 08 c6120001", NLRI),
        &ibgp(),
    );
    assert!(u.treat_as_withdraw());
    assert_eq!(u.nlri.len(), 1);
    // Two trailing octets: too short for an attribute header.
    let u = decode_update(&update("", &format!("{BASE} | 40 01"), NLRI), &ibgp());
    assert!(u.treat_as_withdraw());
    assert_eq!(u.nlri.len(), 1);
    // An extended-length header cut after its first length octet.
    let u = decode_update(&update("", &format!("{BASE} | 50 08 00"), NLRI), &ibgp());
    assert!(u.treat_as_withdraw());
}

#[test]
fn row12_prefix_length_and_truncation() {
    for nlri in ["21 64400100", "18 6440"] {
        assert_eq!(
            reset(&update("", BASE, nlri), &ibgp()),
            K::Update(U::InvalidNetworkField),
            "{nlri}"
        );
    }
    assert_eq!(
        reset(&update("21 64400100", "", ""), &ibgp()),
        K::Update(U::InvalidNetworkField)
    );
    // IPv6 /129 inside MP_REACH.
    let mp = "80 0e 26 0002 01 10 20010db8000000000000000000000001 00 \
              81 20010db8100000000000000000000000 00";
    assert_eq!(
        reset(
            &update("", &format!("{mp} | 40 01 01 00 | 40 02 00"), ""),
            &ibgp()
        ),
        K::Update(U::InvalidNetworkField)
    );
}

#[test]
fn row13_origin() {
    let u = decode_update(
        &update("", "40 01 02 0000 | 40 02 00 | 40 03 04 c6120001", NLRI),
        &ibgp(),
    );
    assert_withdraw(&u, code::ORIGIN);
    let u = decode_update(
        &update("", "40 01 01 03 | 40 02 00 | 40 03 04 c6120001", NLRI),
        &ibgp(),
    );
    assert_withdraw(&u, code::ORIGIN);
    assert_eq!(u.issues[0].subcode, update_sub::INVALID_ORIGIN_ATTRIBUTE);
}

#[test]
fn row14_as_path() {
    for path in [
        "40 02 02 0200",             // zero-length segment
        "40 02 06 0202 0000fde9",    // overrun (2 ASNs, 1 present)
        "40 02 06 0501 0000fde9",    // unknown segment type
        "40 02 07 0201 0000fde9 02", // trailing partial header
        "40 02 06 0201 00000000",    // AS 0 (RFC 7607)
    ] {
        let u = decode_update(
            &update(
                "",
                &format!("40 01 01 00 | {path} | 40 03 04 c6120001"),
                NLRI,
            ),
            &ibgp(),
        );
        assert_withdraw(&u, code::AS_PATH);
    }
    // The eBGP first-AS check needs the peer AS: the RIB's job.
}

#[test]
fn row15_as4_path_and_as4_aggregator() {
    let two = CodecCtx::default();
    let attrs = "40 01 01 00 | 40 02 04 0201 5ba0 | 40 03 04 c6120001";
    // Malformed AS4_PATH: discarded, AS_PATH used as is.
    let u = decode_update(
        &update("", &format!("{attrs} | c0 11 06 0202 00011170"), NLRI),
        &two,
    );
    assert_discard(&u, code::AS4_PATH);
    assert_eq!(u.attributes.as_path, AsPath::from_sequence([Asn::TRANS]));
    // Malformed AS4_AGGREGATOR: discarded.
    let u = decode_update(
        &update(
            "",
            &format!("{attrs} | c0 07 06 5ba0 c6120001 | c0 12 07 00011170 c61200"),
            NLRI,
        ),
        &two,
    );
    assert_discard(&u, code::AS4_AGGREGATOR);
    assert_eq!(u.attributes.aggregator.unwrap().asn, Asn::TRANS);
    // AS4_PATH placed before AS_PATH: discarded.
    let u = decode_update(
        &update(
            "",
            "40 01 01 00 | c0 11 06 0201 00011170 | 40 02 04 0201 5ba0 | 40 03 04 c6120001",
            NLRI,
        ),
        &two,
    );
    assert_discard(&u, code::AS4_PATH);
    assert_eq!(u.attributes.as_path, AsPath::from_sequence([Asn::TRANS]));
}

#[test]
fn row16_next_hop_length() {
    let u = decode_update(
        &update("", "40 01 01 00 | 40 02 00 | 40 03 05 c612000100", NLRI),
        &ibgp(),
    );
    assert_withdraw(&u, code::NEXT_HOP);
}

#[test]
fn row17_unusable_next_hop_keeps_the_session() {
    for nh in ["00000000", "7f000001", "e0000001"] {
        let u = decode_update(
            &update("", &format!("40 01 01 00 | 40 02 00 | 40 03 04 {nh}"), NLRI),
            &ibgp(),
        );
        assert_withdraw(&u, code::NEXT_HOP);
        assert_eq!(u.issues[0].subcode, update_sub::INVALID_NEXT_HOP_ATTRIBUTE);
    }
    // "Our own address" needs the session's address: the RIB's check.
}

#[test]
fn row18_med_and_local_pref() {
    let u = decode_update(&with("80 04 03 000001"), &ibgp());
    assert_withdraw(&u, code::MULTI_EXIT_DISC);
    let u = decode_update(&with("40 05 03 000064"), &ibgp());
    assert_withdraw(&u, code::LOCAL_PREF);
    // From eBGP, LOCAL_PREF is discarded whatever its length (RFC 7606 §7.5).
    for lp in ["40 05 04 00000064", "40 05 03 000064"] {
        let u = decode_update(&with(lp), &ebgp());
        assert_discard(&u, code::LOCAL_PREF);
        assert_eq!(u.attributes.local_pref, None);
    }
}

#[test]
fn row19_atomic_aggregate_and_aggregator() {
    let u = decode_update(&with("40 06 01 00"), &ibgp());
    assert_discard(&u, code::ATOMIC_AGGREGATE);
    assert!(!u.attributes.atomic_aggregate);
    // 4-octet session: 8 octets expected.
    let u = decode_update(&with("c0 07 06 fde9 c6120001"), &ibgp());
    assert_discard(&u, code::AGGREGATOR);
    assert_eq!(u.attributes.aggregator, None);
    // 2-octet session: 6 octets expected.
    let u = decode_update(&with("c0 07 08 0000fde9 c6120001"), &CodecCtx::default());
    assert_discard(&u, code::AGGREGATOR);
}

#[test]
fn row20_community_lengths() {
    for (c, v) in [
        (code::COMMUNITIES, "c0 08 00"),
        (code::COMMUNITIES, "c0 08 05 0000000000"),
        (code::EXTENDED_COMMUNITIES, "c0 10 00"),
        (code::EXTENDED_COMMUNITIES, "c0 10 04 00000000"),
        (code::LARGE_COMMUNITIES, "c0 20 00"),
        (code::LARGE_COMMUNITIES, "c0 20 08 0000000000000000"),
    ] {
        let u = decode_update(&with(v), &ibgp());
        assert_withdraw(&u, c);
    }
}

#[test]
fn row21_originator_id_and_cluster_list() {
    // From eBGP: discarded.
    let u = decode_update(&with("80 09 04 c6120009"), &ebgp());
    assert_discard(&u, code::ORIGINATOR_ID);
    assert_eq!(u.attributes.originator_id, None);
    let u = decode_update(&with("80 0a 04 c6120009"), &ebgp());
    assert_discard(&u, code::CLUSTER_LIST);
    assert!(u.attributes.cluster_list.is_empty());
    // Malformed from iBGP: withdraw.
    let u = decode_update(&with("80 09 03 c61200"), &ibgp());
    assert_withdraw(&u, code::ORIGINATOR_ID);
    for cl in ["80 0a 00", "80 0a 06 c6120009 0000"] {
        let u = decode_update(&with(cl), &ibgp());
        assert_withdraw(&u, code::CLUSTER_LIST);
    }
    // Well-formed from iBGP: kept for the RIB's loop checks.
    let u = decode_update(
        &with("80 09 04 c6120009 | 80 0a 08 c6120009 c612000a"),
        &ibgp(),
    );
    assert!(u.issues.is_empty());
    assert_eq!(
        u.attributes.originator_id,
        Some(Ipv4Addr::new(198, 18, 0, 9))
    );
    assert_eq!(u.attributes.cluster_list.len(), 2);
}

#[test]
fn row22_attribute_flags() {
    // ORIGIN marked optional: treat-as-withdraw.
    let u = decode_update(
        &update("", "c0 01 01 00 | 40 02 00 | 40 03 04 c6120001", NLRI),
        &ibgp(),
    );
    assert_withdraw(&u, code::ORIGIN);
    // MED marked transitive.
    let u = decode_update(&with("c0 04 04 00000001"), &ibgp());
    assert_withdraw(&u, code::MULTI_EXIT_DISC);
    // Low four bits set: ignored.
    let u = decode_update(
        &update("", "4f 01 01 00 | 47 02 00 | 41 03 04 c6120001", NLRI),
        &ibgp(),
    );
    assert!(u.issues.is_empty(), "{:?}", u.issues);
}

#[test]
fn row23_duplicates() {
    let u = decode_update(
        &update(
            "",
            "40 01 01 00 | 40 01 01 02 | 40 02 00 | 40 03 04 c6120001",
            NLRI,
        ),
        &ibgp(),
    );
    assert_eq!(
        u.attributes.origin,
        Some(tabby_bgp::attr::Origin::Igp),
        "first kept"
    );
    assert!(!u.treat_as_withdraw());
    let mp = "80 0f 03 0002 01";
    assert_eq!(
        reset(&update("", &format!("{mp} | {mp}"), ""), &ibgp()),
        K::Update(U::MalformedAttributeList)
    );
    let mp = "80 0e 16 0002 01 10 20010db8000000000000000000000001 00 00";
    assert_eq!(
        reset(
            &update("", &format!("{mp} | {mp} | 40 01 01 00 | 40 02 00"), ""),
            &ibgp()
        ),
        K::Update(U::MalformedAttributeList)
    );
}

#[test]
fn row24_unknown_optional_transitive_forwarded_with_partial() {
    let u = decode_update(&with("c0 63 03 010203"), &ibgp());
    assert!(u.issues.is_empty());
    assert_eq!(
        u.attributes.unknown,
        vec![RawAttribute {
            flags: 0xc0,
            type_code: 0x63,
            value: vec![1, 2, 3]
        }]
    );
    let bytes = encode(&Message::Update(u), &ibgp());
    assert_eq!(bytes, with("e0 63 03 010203"));
}

#[test]
fn row25_unknown_well_known() {
    assert_eq!(
        reset(&with("40 63 02 abcd"), &ibgp()),
        K::Update(U::UnrecognizedWellKnownAttribute(hex("40 63 02 abcd")))
    );
}

#[test]
fn row26_odd_shapes() {
    // NLRI with no attributes.
    let u = decode_update(&update("", "", NLRI), &ibgp());
    assert!(u.treat_as_withdraw());
    assert_eq!(u.nlri.len(), 1);
    // Only an unknown attribute, no NLRI.
    let u = decode_update(&update("", "c0 63 01 00", ""), &ibgp());
    assert!(!u.treat_as_withdraw());
    assert_eq!(u.as_end_of_rib(), None);
    // MP_UNREACH plus bare NLRI: the withdrawal is there, the NLRI withdrawn.
    let u = decode_update(
        &update("", "80 0f 0a 0002 01 30 20010db81000", NLRI),
        &ibgp(),
    );
    assert_eq!(u.mp_unreach.as_ref().unwrap().withdrawn.len(), 1);
    assert!(u.treat_as_withdraw());
    // End-of-RIB look-alikes: an empty MP_UNREACH with an ORIGIN, and one for
    // a family we do not speak, are not End-of-RIB.
    let u = decode_update(&update("", "80 0f 03 0002 01 | 40 01 01 00", ""), &ibgp());
    assert_eq!(u.as_end_of_rib(), None);
    let u = decode_update(&update("", "80 0f 03 0019 46", ""), &ibgp());
    assert_eq!(u.as_end_of_rib(), None);
    // A truncated MP_UNREACH: reset, not a crash.
    assert_eq!(
        reset(&update("", "80 0f 02 0002", ""), &ibgp()),
        K::Update(U::OptionalAttributeError(hex("80 0f 02 0002")))
    );
}

#[test]
fn row27_mp_reach_next_hop_length() {
    for nh in ["0c 20010db80000000000000000", "04 c6120001", "00"] {
        let mp_len = 5 + hex(nh).len() - 1;
        let mp = format!("80 0e {mp_len:02x} 0002 01 {nh} 00");
        let b = update("", &format!("{mp} | 40 01 01 00 | 40 02 00"), "");
        // RFC 4271 §6.3: the data is the erroneous attribute.
        assert_eq!(
            reset(&b, &ibgp()),
            K::Update(U::OptionalAttributeError(hex(&mp))),
            "{nh}"
        );
    }
}

#[test]
fn row28_long_as_path_to_a_two_octet_peer_is_bounded() {
    // 3000 ASNs arrive over extended messages from a 4-octet peer...
    let ext = CodecCtx {
        max_message_len: 65535,
        ..ibgp()
    };
    let mut path = String::new();
    for _ in 0..12 {
        path.push_str(&format!("02 fa {}", "00011170".repeat(250)));
    }
    let attr = format!(
        "40 01 01 00 | 50 02 {:04x} {path} | 40 03 04 c6120001",
        12 * (2 + 1000)
    );
    let u = decode_update(&update("", &attr, NLRI), &ext);
    assert!(u.issues.is_empty());
    assert_eq!(u.attributes.as_path.path_len(), 3000);
    // ...and cannot be re-advertised within 4096 octets: refused, nothing
    // written, never an oversized message.
    let two = CodecCtx::default();
    let mut out = BytesMut::new();
    let e = encode_message(&Message::Update(u.clone()), &two, &mut out).unwrap_err();
    assert!(matches!(e, EncodeError::TooLong { max: 4096, .. }), "{e:?}");
    assert!(out.is_empty());
    assert!(UpdatePacker::new(Family::IPV4_UNICAST, &u.attributes, None, &two).is_err());
    // With extended messages on both sides it still fits.
    assert!(encode_message(&Message::Update(u), &ext, &mut out).is_ok());
    assert!(out.len() <= 65535);
}

#[test]
fn row29_shutdown_communication_sanitised() {
    // Length 200 with 3 octets present, and invalid UTF-8 with a control
    // character.
    for data in ["c8 616263", "05 ff fe 0a 41 42"] {
        let Message::Notification(n) =
            decode_message(&msg(3, &format!("06 02 {data}")), &ibgp()).unwrap()
        else {
            panic!()
        };
        let text = n.shutdown_message().unwrap();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        let _line = n.to_string();
    }
}

#[test]
fn issues_carry_the_would_be_subcode() {
    let u = decode_update(&with("40 06 01 00"), &ibgp());
    let i: &Rfc7606Issue = &u.issues[0];
    assert_eq!(
        (i.attribute, i.subcode),
        (code::ATOMIC_AGGREGATE, update_sub::ATTRIBUTE_LENGTH_ERROR)
    );
    assert!(!i.reason.is_empty());
}
