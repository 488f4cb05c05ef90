//! Byte vectors for OPEN, KEEPALIVE, NOTIFICATION and ROUTE-REFRESH, checked
//! in both directions, plus the header and OPEN errors.

mod common;

use std::net::Ipv4Addr;

use common::{MARKER, both_ways, encode, hex, msg};
use tabby_bgp::capability::{
    AddPathFamily, AddPathMode, Capability, ExtendedNextHop, GrFamily, GracefulRestart, LlgrFamily,
    Role,
};
use tabby_bgp::codec::{CodecCtx, decode_message, frame_len};
use tabby_bgp::message::{Open, RefreshSubtype, RouteRefresh};
use tabby_bgp::notification::{
    Cease, MessageHeaderError as H, NotificationKind as K, OpenMessageError as O, RouteRefreshError,
};
use tabby_bgp::{Afi, Asn, Family, Message, Notification};

fn ctx() -> CodecCtx {
    CodecCtx::default()
}

fn err(bytes: &[u8]) -> K {
    decode_message(bytes, &ctx()).expect_err("must fail").kind
}

#[test]
fn keepalive() {
    both_ways(
        &hex(&format!("{MARKER} 0013 04")),
        &Message::Keepalive,
        &ctx(),
    );
}

fn full_open() -> Open {
    Open {
        version: 4,
        my_as: 65001,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(198, 18, 0, 1),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(Asn(65001)),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: true,
                notification: false,
                restart_time: 120,
                families: vec![
                    GrFamily {
                        family: Family::IPV4_UNICAST,
                        forwarding_preserved: true,
                    },
                    GrFamily {
                        family: Family::IPV6_UNICAST,
                        forwarding_preserved: false,
                    },
                ],
            }),
            Capability::LongLivedGracefulRestart(vec![LlgrFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
                stale_time: 3600,
            }]),
            Capability::AddPath(vec![
                AddPathFamily {
                    family: Family::IPV4_UNICAST,
                    mode: AddPathMode::Both,
                },
                AddPathFamily {
                    family: Family::IPV6_UNICAST,
                    mode: AddPathMode::Receive,
                },
            ]),
            Capability::ExtendedNextHop(vec![ExtendedNextHop {
                family: Family::IPV4_UNICAST,
                next_hop_afi: Afi::IPV6,
            }]),
            Capability::ExtendedMessage,
            Capability::Role(Role::Customer),
            Capability::Unknown {
                code: 128,
                value: vec![],
            },
        ],
        unknown_params: vec![],
    }
}

const FULL_OPEN_BODY: &str = "04 fde9 005a c6120001 46 | 02 44 \
    010400010001 010400020001 0200 4600 4104 0000fde9 \
    400a 8078 00010180 00020100 \
    4707 00010180 000e10 \
    4508 00010103 00020101 \
    0506 000100010002 \
    0600 090103 8000";

#[test]
fn open_with_every_capability() {
    both_ways(&msg(1, FULL_OPEN_BODY), &Message::Open(full_open()), &ctx());
}

#[test]
fn open_gr_notification_bit_and_flags() {
    // RFC 8538 N bit, restart time 4095.
    let body = "04 fde9 0000 c6120001 06 | 02 04 | 4002 4fff"; // no families
    let m = decode_message(&msg(1, body), &ctx()).unwrap();
    let Message::Open(o) = &m else { panic!() };
    assert_eq!(
        o.capabilities,
        vec![Capability::GracefulRestart(GracefulRestart {
            restart_state: false,
            notification: true,
            restart_time: 4095,
            families: vec![],
        })]
    );
    assert_eq!(o.hold_time, 0, "hold time 0 is valid");
    assert_eq!(encode(&m, &ctx()), msg(1, body));
}

#[test]
fn open_rfc9072_extended_parameters_decode() {
    // Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length 9,
    // one capabilities parameter with a 2-octet length.
    let body = "04 fde9 005a c6120001 ff ff 0009 | 02 0006 010400010001";
    let m = decode_message(&msg(1, body), &ctx()).unwrap();
    let Message::Open(o) = m else { panic!() };
    assert_eq!(
        o.capabilities,
        vec![Capability::Multiprotocol(Family::IPV4_UNICAST)]
    );
}

#[test]
fn open_rfc9072_extended_parameters_encode_when_large() {
    let mut o = full_open();
    for code in 200..240u8 {
        o.capabilities.push(Capability::Unknown {
            code,
            value: vec![code; 10],
        });
    }
    let bytes = encode(&Message::Open(o.clone()), &ctx());
    // Fixed part ends at 19 + 9; then 255, 255, 2-octet length.
    assert_eq!(&bytes[28..30], &[0xff, 0xff]);
    let ext_len = u16::from_be_bytes([bytes[30], bytes[31]]) as usize;
    assert_eq!(ext_len, bytes.len() - 32);
    assert_eq!(bytes[32], 2, "capabilities parameter");
    assert_eq!(decode_message(&bytes, &ctx()).unwrap(), Message::Open(o));
}

#[test]
fn open_unknown_parameter_is_kept() {
    let body = "04 fde9 005a c6120001 05 | 01 03 aabbcc";
    let m = decode_message(&msg(1, body), &ctx()).unwrap();
    let Message::Open(o) = &m else { panic!() };
    assert_eq!(o.unknown_params, vec![(1, vec![0xaa, 0xbb, 0xcc])]);
    assert_eq!(encode(&m, &ctx()), msg(1, body));
}

#[test]
fn open_unassigned_role_and_bad_add_path_mode_are_unknown() {
    let body = "04 fde9 005a c6120001 0b | 02 09 | 090107 | 4504 00010109";
    let Message::Open(o) = decode_message(&msg(1, body), &ctx()).unwrap() else {
        panic!()
    };
    assert_eq!(
        o.capabilities,
        vec![
            Capability::Unknown {
                code: 9,
                value: vec![7]
            },
            Capability::Unknown {
                code: 69,
                value: vec![0, 1, 1, 9]
            },
        ]
    );
}

#[test]
fn open_errors() {
    // RFC 4271 §6.2: version, data = 2-octet largest supported version.
    assert_eq!(
        err(&msg(1, "03 fde9 005a c6120001 00")),
        K::Open(O::UnsupportedVersion(4))
    );
    // Hold time 1 and 2.
    assert_eq!(
        err(&msg(1, "04 fde9 0001 c6120001 00")),
        K::Open(O::UnacceptableHoldTime)
    );
    assert_eq!(
        err(&msg(1, "04 fde9 0002 c6120001 00")),
        K::Open(O::UnacceptableHoldTime)
    );
    // BGP identifier 0.
    assert_eq!(
        err(&msg(1, "04 fde9 005a 00000000 00")),
        K::Open(O::BadBgpIdentifier(Some(Ipv4Addr::UNSPECIFIED)))
    );
    // AS_TRANS without the 4-octet AS capability.
    assert_eq!(
        err(&msg(1, "04 5ba0 005a c6120001 00")),
        K::Open(O::BadPeerAs(Some(23456)))
    );
    // ...but fine with it.
    assert!(
        decode_message(
            &msg(1, "04 5ba0 005a c6120001 08 0206 4104 00011170"),
            &ctx()
        )
        .is_ok()
    );
}

#[test]
fn open_parameter_and_capability_overruns() {
    // Optional parameters length beyond the message.
    assert_eq!(
        err(&msg(1, "04 fde9 005a c6120001 09 02 06 0104")),
        K::Open(O::Unspecific)
    );
    // Parameter length beyond the parameters.
    assert_eq!(
        err(&msg(1, "04 fde9 005a c6120001 04 02 06 0104")),
        K::Open(O::Unspecific)
    );
    // Capability length beyond its parameter.
    assert_eq!(
        err(&msg(1, "04 fde9 005a c6120001 06 02 04 0108 0001")),
        K::Open(O::Unspecific)
    );
    // Malformed multiprotocol capability (length 3).
    assert_eq!(
        err(&msg(1, "04 fde9 005a c6120001 07 02 05 0103 000100")),
        K::Open(O::Unspecific)
    );
    // Truncated RFC 9072 form: no room for the extended length.
    assert_eq!(
        err(&msg(1, "04 fde9 005a c6120001 ff ff 00")),
        K::Open(O::Unspecific)
    );
    // Extended length disagrees with the message.
    assert_eq!(
        err(&msg(
            1,
            "04 fde9 005a c6120001 ff ff 0010 02 0006 010400010001"
        )),
        K::Open(O::Unspecific)
    );
    // Extended parameter overrun.
    assert_eq!(
        err(&msg(
            1,
            "04 fde9 005a c6120001 ff ff 0006 02 0009 010400010001"
        )),
        K::Open(O::Unspecific)
    );
    // Fixed part truncated (declared length is the OPEN minimum, 29, but
    // the body is cut): still a clean error, never a panic.
    let mut short = msg(1, "04 fde9 005a c6120001 00");
    short.truncate(25);
    assert!(decode_message(&short, &ctx()).is_err());
}

#[test]
fn notification_with_shutdown_communication() {
    let n = Notification::from(Cease::AdministrativeShutdown(Some("bye".into())));
    both_ways(
        &msg(3, "06 02 03 627965"),
        &Message::Notification(n.clone()),
        &ctx(),
    );
    assert_eq!(n.shutdown_message().as_deref(), Some("bye"));
    assert_eq!(
        n.kind(),
        K::Cease(Cease::AdministrativeShutdown(Some("bye".into())))
    );
}

#[test]
fn notification_every_code_is_accepted() {
    use tabby_bgp::notification::UpdateMessageError;
    for (code, kind) in [
        (
            1u8,
            K::Unknown {
                code: 1,
                subcode: 9,
            },
        ),
        (
            2,
            K::Unknown {
                code: 2,
                subcode: 9,
            },
        ),
        (
            3,
            K::Update(UpdateMessageError::OptionalAttributeError(vec![])),
        ),
        (
            4,
            K::Unknown {
                code: 4,
                subcode: 9,
            },
        ),
        (
            5,
            K::Unknown {
                code: 5,
                subcode: 9,
            },
        ),
        (6, K::Cease(Cease::HardReset(None))),
        (
            7,
            K::Unknown {
                code: 7,
                subcode: 9,
            },
        ),
        (
            8,
            K::Unknown {
                code: 8,
                subcode: 9,
            },
        ),
        (
            42,
            K::Unknown {
                code: 42,
                subcode: 9,
            },
        ),
    ] {
        let bytes = msg(3, &format!("{code:02x} 09"));
        let Message::Notification(n) = decode_message(&bytes, &ctx()).unwrap() else {
            panic!()
        };
        assert_eq!(n.kind(), kind, "{code}/9");
        assert_eq!(encode(&Message::Notification(n), &ctx()), bytes);
    }
}

#[test]
fn route_refresh_subtypes() {
    for (sub, st) in [
        (0u8, RefreshSubtype::Request),
        (1, RefreshSubtype::BeginningOfRouteRefresh),
        (2, RefreshSubtype::EndOfRouteRefresh),
    ] {
        let rr = RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype: st,
        };
        both_ways(
            &msg(5, &format!("0002 {sub:02x} 01")),
            &Message::RouteRefresh(rr),
            &ctx(),
        );
    }
    // RFC 7313 §5: a reserved subtype decodes (to be ignored).
    let Message::RouteRefresh(rr) = decode_message(&msg(5, "0001 07 01"), &ctx()).unwrap() else {
        panic!()
    };
    assert_eq!(rr.subtype, RefreshSubtype::Reserved);
}

#[test]
fn header_errors() {
    let mut bad_marker = hex(&format!("{MARKER} 0013 04"));
    bad_marker[3] = 0;
    assert_eq!(
        err(&bad_marker),
        K::MessageHeader(H::ConnectionNotSynchronized)
    );
    assert_eq!(
        err(&hex(&format!("{MARKER} 0012 04"))),
        K::MessageHeader(H::BadMessageLength(0x12))
    );
    let mut big = hex(&format!("{MARKER} 1001 02"));
    big.resize(4097, 0);
    assert_eq!(err(&big), K::MessageHeader(H::BadMessageLength(4097)));
    assert_eq!(err(&msg(6, "")), K::MessageHeader(H::BadMessageType(6)));
    assert_eq!(
        err(&msg(4, "00")),
        K::MessageHeader(H::BadMessageLength(20))
    );
    // ROUTE-REFRESH with a bad length: 7/1 with the whole message (RFC 7313 §5).
    let rr = msg(5, "0001 00 01 00");
    assert_eq!(
        err(&rr),
        K::RouteRefresh(RouteRefreshError::InvalidMessageLength(rr.clone()))
    );
    // Below the OPEN and NOTIFICATION minimums.
    assert_eq!(
        err(&msg(1, "04")),
        K::MessageHeader(H::BadMessageLength(20))
    );
    assert_eq!(
        err(&msg(3, "06")),
        K::MessageHeader(H::BadMessageLength(20))
    );
}

#[test]
fn frame_len_on_partial_input() {
    let ka = hex(&format!("{MARKER} 0013 04"));
    for cut in 0..ka.len() {
        assert_eq!(frame_len(&ka[..cut], 4096), Ok(None), "cut at {cut}");
    }
    assert_eq!(frame_len(&ka, 4096), Ok(Some(19)));
    let mut two = ka.clone();
    two.extend_from_slice(&ka);
    assert_eq!(frame_len(&two, 4096), Ok(Some(19)));
    // A wrong marker octet is reported before the header is complete.
    assert_eq!(
        frame_len(&[0xff, 0xfe], 4096).unwrap_err().kind,
        K::MessageHeader(H::ConnectionNotSynchronized)
    );
    // RFC 8654: 4097 is fine once extended messages are negotiated.
    let big = hex(&format!("{MARKER} 1001 02"));
    assert_eq!(frame_len(&big, 65535), Ok(None));
    assert!(frame_len(&big, 4096).is_err());
}
