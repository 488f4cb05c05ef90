//! The typed NOTIFICATIONs: every variant survives the wire form, pairs not
//! known stay `Unknown`, a few byte vectors both ways, and the operator
//! text.

mod common;

use std::net::Ipv4Addr;

use common::{both_ways, msg};
use tabby_bgp::codec::CodecCtx;
use tabby_bgp::notification::{
    Cease, FsmError, MessageHeaderError, NotificationKind as K, OpenMessageError, PrefixLimit,
    RouteRefreshError, UpdateMessageError,
};
use tabby_bgp::{Afi, Family, Message, Notification, Safi};

/// One of each variant, with data where the variant carries some.
fn every_variant() -> Vec<K> {
    use Cease as C;
    use MessageHeaderError as H;
    use OpenMessageError as O;
    use UpdateMessageError as U;
    let attr = vec![0x40, 0x01, 0x01, 0x05];
    let mut all = vec![
        K::MessageHeader(H::Unspecific),
        K::MessageHeader(H::ConnectionNotSynchronized),
        K::MessageHeader(H::BadMessageLength(18)),
        K::MessageHeader(H::BadMessageType(9)),
        K::Open(O::Unspecific),
        K::Open(O::UnsupportedVersion(4)),
        K::Open(O::BadPeerAs(None)),
        K::Open(O::BadPeerAs(Some(65003))),
        K::Open(O::BadBgpIdentifier(None)),
        K::Open(O::BadBgpIdentifier(Some(Ipv4Addr::new(198, 18, 0, 1)))),
        K::Open(O::UnsupportedOptionalParameter(None)),
        K::Open(O::UnsupportedOptionalParameter(Some(7))),
        K::Open(O::UnacceptableHoldTime),
        K::Open(O::UnsupportedCapability(vec![])),
        K::Open(O::UnsupportedCapability(vec![
            65, 4, 0, 0, 0xfd, 0xe9, 2, 0,
        ])),
        K::Open(O::RoleMismatch(None)),
        K::Open(O::RoleMismatch(Some(3))),
        K::Update(U::Unspecific),
        K::Update(U::MalformedAttributeList),
        K::Update(U::UnrecognizedWellKnownAttribute(vec![
            0x40, 0x63, 0x02, 0xab, 0xcd,
        ])),
        K::Update(U::MissingWellKnownAttribute(1)),
        K::Update(U::AttributeFlagsError(vec![0xc0, 0x02, 0x00])),
        K::Update(U::AttributeLengthError(vec![0x40, 0x03, 0x01, 0x00])),
        K::Update(U::InvalidOrigin(attr)),
        K::Update(U::InvalidNextHop(vec![0x40, 0x03, 0x04, 127, 0, 0, 1])),
        K::Update(U::OptionalAttributeError(vec![
            0x80, 0x0f, 0x02, 0x00, 0x02,
        ])),
        K::Update(U::OptionalAttributeError(vec![])),
        K::Update(U::InvalidNetworkField),
        K::Update(U::MalformedAsPath),
        K::HoldTimerExpired,
        K::Fsm(FsmError::Unspecified),
        K::Fsm(FsmError::UnexpectedMessageInOpenSent(None)),
        K::Fsm(FsmError::UnexpectedMessageInOpenSent(Some(2))),
        K::Fsm(FsmError::UnexpectedMessageInOpenConfirm(Some(1))),
        K::Fsm(FsmError::UnexpectedMessageInEstablished(Some(1))),
        K::SendHoldTimerExpired,
        K::RouteRefresh(RouteRefreshError::InvalidMessageLength(msg(5, "0001 00"))),
        K::Unknown {
            code: 42,
            subcode: 1,
        },
    ];
    let ceases = [
        C::MaxPrefixesReached(None),
        C::MaxPrefixesReached(Some(PrefixLimit {
            family: Family::IPV6_UNICAST,
            limit: 1000,
        })),
        C::AdministrativeShutdown(None),
        C::AdministrativeShutdown(Some(String::new())),
        C::AdministrativeShutdown(Some("maintenance, back at 10:00 ✓".into())),
        C::PeerDeconfigured,
        C::AdministrativeReset(None),
        C::AdministrativeReset(Some("soft".into())),
        C::ConnectionRejected,
        C::OtherConfigurationChange,
        C::ConnectionCollisionResolution,
        C::OutOfResources,
        C::HardReset(None),
        C::BfdDown,
    ];
    for c in ceases {
        all.push(K::Cease(c.clone()));
        if !matches!(c, C::HardReset(_)) {
            all.push(K::Cease(c.hard_reset()));
        }
    }
    all.push(K::Cease(C::HardReset(None).hard_reset()));
    all
}

#[test]
fn every_variant_survives_the_wire() {
    let ctx = CodecCtx::default();
    for k in every_variant() {
        let n = Notification::from(k.clone());
        assert_eq!((n.code, n.subcode), (k.code(), k.subcode()), "{k:?}");
        assert_eq!(n.kind(), k, "via {n:?}");
        // And through the codec.
        let mut out = bytes::BytesMut::new();
        tabby_bgp::codec::encode_message(&Message::Notification(n.clone()), &ctx, &mut out)
            .expect("encodes");
        let Ok(Message::Notification(back)) = tabby_bgp::codec::decode_message(&out, &ctx) else {
            panic!("{k:?} does not decode");
        };
        assert_eq!(back.kind(), k);
    }
}

#[test]
fn per_code_enums_convert_like_the_kind() {
    let c = Cease::BfdDown;
    assert_eq!(
        Notification::from(c.clone()),
        Notification::from(K::from(c))
    );
    let e = UpdateMessageError::MalformedAsPath;
    assert_eq!(
        Notification::from(e.clone()),
        Notification::from(K::Update(e))
    );
    assert_eq!(Cease::CODE, 6);
    assert_eq!(MessageHeaderError::CODE, 1);
}

#[test]
fn unknown_pairs_stay_unknown() {
    for (code, subcode) in [
        (0u8, 0u8),
        (9, 0),
        (42, 7),
        (255, 255),
        // Unassigned or deprecated subcodes of known codes.
        (1, 4),
        (2, 5),
        (2, 8),
        (3, 7),
        (3, 12),
        (4, 1),
        (5, 4),
        (6, 0),
        (6, 11),
        (7, 0),
        (7, 2),
        (8, 1),
    ] {
        let n = Notification::new(code, subcode, vec![1, 2, 3]);
        let k = n.kind();
        assert_eq!(k, K::Unknown { code, subcode }, "{code}/{subcode}");
        let back = Notification::from(k.clone());
        assert_eq!((back.code, back.subcode), (code, subcode));
        assert_eq!(back.kind(), k);
    }
}

#[test]
fn data_of_the_wrong_shape_is_read_leniently() {
    // Required data cut short: read as far as it goes.
    let k = Notification::new(1, 2, vec![0x10]).kind();
    assert_eq!(
        k,
        K::MessageHeader(MessageHeaderError::BadMessageLength(0x1000))
    );
    assert_eq!(
        Notification::new(1, 3, vec![]).kind(),
        K::MessageHeader(MessageHeaderError::BadMessageType(0))
    );
    // Optional data of the wrong length: None.
    assert_eq!(
        Notification::new(2, 2, vec![1, 2, 3]).kind(),
        K::Open(OpenMessageError::BadPeerAs(None))
    );
    assert_eq!(
        Notification::new(6, 1, vec![0, 1, 1]).kind(),
        K::Cease(Cease::MaxPrefixesReached(None))
    );
    // A Hard Reset around a subcode not known, or around a Hard Reset.
    assert_eq!(
        Notification::new(6, 9, vec![42, 1]).kind(),
        K::Cease(Cease::HardReset(None))
    );
    assert_eq!(
        Notification::new(6, 9, vec![9, 9, 9, 2, 0]).kind(),
        K::Cease(Cease::HardReset(None).hard_reset())
    );
    // An RFC 9003 length beyond the data, invalid UTF-8, a control
    // character: clamped and replaced.
    assert_eq!(
        Notification::new(6, 2, vec![200, b'o', 0xff, b'\n', b'k']).kind(),
        K::Cease(Cease::AdministrativeShutdown(Some(
            "o\u{FFFD}\u{FFFD}k".into()
        )))
    );
}

#[test]
fn shutdown_communication_is_cut_at_255_octets_on_a_char_boundary() {
    let long = "é".repeat(200); // 400 octets
    let n = Notification::from(Cease::AdministrativeShutdown(Some(long)));
    assert_eq!(n.data.first(), Some(&254));
    assert_eq!(n.data.len(), 255);
    assert_eq!(n.shutdown_message(), Some("é".repeat(127)));
}

/// Byte vectors, decoded and encoded, with the variant each reads as.
#[test]
fn byte_vectors_both_ways() {
    let ctx = CodecCtx::default();
    for (body, kind) in [
        // Cease / BFD Down (RFC 9384).
        ("06 0a", K::Cease(Cease::BfdDown)),
        // Cease / Maximum Number of Prefixes Reached: AFI 1, SAFI 1, 100.
        (
            "06 01 0001 01 00000064",
            K::Cease(Cease::MaxPrefixesReached(Some(PrefixLimit {
                family: Family::new(Afi::IPV4, Safi::UNICAST),
                limit: 100,
            }))),
        ),
        // Hard Reset around Administrative Shutdown "bye" (RFC 8538 §3).
        (
            "06 09 02 03 627965",
            K::Cease(Cease::AdministrativeShutdown(Some("bye".into())).hard_reset()),
        ),
        // Bad Message Length 18.
        (
            "01 02 0012",
            K::MessageHeader(MessageHeaderError::BadMessageLength(18)),
        ),
        // Unsupported Version: we speak up to 4.
        (
            "02 01 0004",
            K::Open(OpenMessageError::UnsupportedVersion(4)),
        ),
        // Attribute Flags Error on AS_PATH marked optional.
        (
            "03 04 c0 02 00",
            K::Update(UpdateMessageError::AttributeFlagsError(vec![
                0xc0, 0x02, 0x00,
            ])),
        ),
        // Missing well-known attribute ORIGIN.
        (
            "03 03 01",
            K::Update(UpdateMessageError::MissingWellKnownAttribute(1)),
        ),
        // Unexpected UPDATE in OpenSent (RFC 6608).
        (
            "05 01 02",
            K::Fsm(FsmError::UnexpectedMessageInOpenSent(Some(2))),
        ),
        ("04 00", K::HoldTimerExpired),
        ("08 00", K::SendHoldTimerExpired),
        (
            "2a 07 ff",
            K::Unknown {
                code: 42,
                subcode: 7,
            },
        ),
    ] {
        let bytes = msg(3, body);
        let Ok(Message::Notification(n)) = tabby_bgp::codec::decode_message(&bytes, &ctx) else {
            panic!("{body} does not decode");
        };
        assert_eq!(n.kind(), kind, "{body}");
        both_ways(&bytes, &Message::Notification(n), &ctx);
        if !matches!(kind, K::Unknown { .. }) {
            // Built from the variant, the same octets.
            both_ways(&bytes, &Message::Notification(kind.into()), &ctx);
        }
    }
}

#[test]
fn operator_text() {
    for (kind, text) in [
        (K::Cease(Cease::BfdDown), "Cease: BFD down"),
        (
            K::Update(UpdateMessageError::AttributeFlagsError(vec![
                0xc0, 0x02, 0x00,
            ])),
            "UPDATE message error: attribute flags error (type 2)",
        ),
        (
            K::Update(UpdateMessageError::MissingWellKnownAttribute(3)),
            "UPDATE message error: missing well-known attribute (type 3)",
        ),
        (
            K::MessageHeader(MessageHeaderError::BadMessageLength(5000)),
            "Message header error: bad message length 5000",
        ),
        (
            K::Open(OpenMessageError::UnsupportedCapability(vec![
                65, 4, 0, 0, 0xfd, 0xe9,
            ])),
            "OPEN message error: unsupported capability (code 65)",
        ),
        (
            K::Open(OpenMessageError::RoleMismatch(Some(0))),
            "OPEN message error: role mismatch (role provider)",
        ),
        (
            K::Fsm(FsmError::UnexpectedMessageInOpenConfirm(Some(2))),
            "Finite state machine error: unexpected UPDATE in OpenConfirm",
        ),
        (
            K::Cease(Cease::MaxPrefixesReached(Some(PrefixLimit {
                family: Family::IPV4_UNICAST,
                limit: 3,
            }))),
            "Cease: maximum number of prefixes reached (ipv4-unicast, limit 3)",
        ),
        (
            K::Cease(Cease::AdministrativeShutdown(Some("bye\n".into())).hard_reset()),
            "Cease: hard reset (administrative shutdown: \"bye\u{FFFD}\")",
        ),
        (K::HoldTimerExpired, "Hold timer expired"),
        (
            K::Unknown {
                code: 6,
                subcode: 42,
            },
            "Cease: unknown subcode 42",
        ),
        (
            K::Unknown {
                code: 42,
                subcode: 1,
            },
            "unknown error code 42 (subcode 1)",
        ),
    ] {
        assert_eq!(kind.to_string(), text);
    }
    let n = Notification::from(Cease::AdministrativeShutdown(Some("bye".into())));
    assert_eq!(
        n.to_string(),
        "6/2 (Cease: administrative shutdown: \"bye\")"
    );
}

proptest::proptest! {
    /// Any NOTIFICATION body: the typed view keeps code and subcode and is
    /// stable after one pass (the fuzz target's check).
    #[test]
    fn any_notification_reads_stably(
        code in 0u8..10,
        subcode in 0u8..13,
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
    ) {
        let mut body = vec![code, subcode];
        body.extend(data);
        tabby_bgp::testing::check_fuzz_input(tabby_bgp::testing::FuzzTarget::Notification, &body);
    }
}
