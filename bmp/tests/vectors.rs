//! Byte vectors both ways: each message built by the crate's builders
//! encodes to the octets laid out by hand in `common`, and those octets
//! decode to the same message.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::*;
use tabby_bgp::attr::{AsPath, NextHop, Origin, PathAttributes};
use tabby_bgp::message::{MpReach, Open, Update};
use tabby_bgp::notification::Cease;
use tabby_bgp::{Asn, Family, Nlri, Notification};
use tabby_bmp::build;
use tabby_bmp::message::{StatValue, info, stat, termination};
use tabby_bmp::{
    DecodeError, InfoTlv, Message, PeerDownReason, PeerHeader, Stat, StatsReport, Timestamp,
    decode, frame_len,
};

const TS: Timestamp = Timestamp {
    secs: 100,
    micros: 5,
};
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn both_ways(msg: &Message, vector: &str) {
    let bytes = hex(vector);
    assert_eq!(hex::encode(msg.to_bytes()), hex::encode(&bytes), "encode");
    assert_eq!(&decode(&bytes).expect("decodes"), msg, "decode");
    assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
}

fn open(asn: u16, id: Ipv4Addr) -> Open {
    Open {
        version: 4,
        my_as: asn,
        hold_time: 90,
        bgp_id: id,
        capabilities: vec![],
        unknown_params: vec![],
    }
}

fn peer(post: bool) -> PeerHeader {
    PeerHeader::global(IpAddr::V4(PEER), 65001, PEER, TS, post, false)
}

#[test]
fn initiation() {
    both_ways(&build::initiation("n1", "tabby"), INITIATION);
}

#[test]
fn termination() {
    both_ways(&build::termination_admin(), TERMINATION);
    let Message::Termination(t) = decode(&hex(TERMINATION)).unwrap() else {
        panic!()
    };
    assert_eq!(t[0].kind, termination::REASON);
}

#[test]
fn peer_up_with_both_opens() {
    let m = build::peer_up(
        peer(false),
        SocketAddr::new(IpAddr::V4(US), 179),
        40000,
        &open(65000, US),
        &open(65001, PEER),
    )
    .unwrap();
    both_ways(&m, &peer_up());
    let Message::PeerUp(up) = m else { panic!() };
    assert_eq!(up.local_addr(), IpAddr::V4(US));
    assert_eq!(up.decode_sent_open().unwrap(), open(65000, US));
    assert_eq!(up.decode_received_open().unwrap(), open(65001, PEER));
    assert_eq!(up.peer.peer_address(), Some(IpAddr::V4(PEER)));
}

fn update_v4() -> Update {
    Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: AsPath::from_sequence([Asn(65001)]),
            next_hop: Some(PEER),
            ..Default::default()
        },
        nlri: vec![Nlri::new("100.64.0.0/24".parse().unwrap())],
        ..Default::default()
    }
}

#[test]
fn route_monitoring_post_policy() {
    let ctx = build::update_ctx(true, &Default::default());
    let m = build::route_monitoring(peer(true), &update_v4(), &ctx).unwrap();
    both_ways(&m, &route_monitoring_post());
    let Message::RouteMonitoring(rm) = m else {
        panic!()
    };
    assert!(rm.peer.post_policy() && !rm.peer.two_octet_as());
    assert_eq!(rm.decode_update().unwrap(), update_v4());
}

#[test]
fn route_monitoring_ipv6_sets_v_and_round_trips_mp_reach() {
    let v6: IpAddr = "2001:db8::2".parse().unwrap();
    let h = PeerHeader::global(v6, 65001, PEER, TS, true, false);
    assert_eq!(hex::encode(h.address), "20010db8000000000000000000000002");
    let u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: AsPath::from_sequence([Asn(65001)]),
            ..Default::default()
        },
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: NextHop::new(v6),
            nlri: vec![Nlri::new("2001:db8:1000::/48".parse().unwrap())],
        }),
        ..Default::default()
    };
    let m = build::route_monitoring(h, &u, &build::update_ctx(true, &Default::default())).unwrap();
    let bytes = m.to_bytes();
    let head = format!("03 {:08x} 00 {PEER_V6_POST}", bytes.len());
    assert_eq!(hex::encode(&bytes[..48]), hex::encode(hex(&head)));
    let Message::RouteMonitoring(rm) = decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(rm.peer.peer_address(), Some(v6));
    assert_eq!(rm.decode_update().unwrap(), u);
}

#[test]
fn two_octet_as_flag_changes_the_as_path_width() {
    let ctx = build::update_ctx(false, &Default::default());
    let h = PeerHeader::global(IpAddr::V4(PEER), 65001, PEER, TS, false, true);
    let m = build::route_monitoring(h, &update_v4(), &ctx).unwrap();
    let Message::RouteMonitoring(rm) = decode(&m.to_bytes()).unwrap() else {
        panic!()
    };
    assert!(rm.peer.two_octet_as());
    // AS_PATH 40 02 04 02 01 fde9: two octets per ASN.
    assert!(hex::encode(&rm.update).contains("40020402 01fde9".replace(' ', "").as_str()));
    assert_eq!(rm.decode_update().unwrap(), update_v4());
}

#[test]
fn peer_down_reasons() {
    let n: Notification = Cease::AdministrativeShutdown(None).into();
    let pdu = build::notification_pdu(&n);
    assert_eq!(hex::encode(&pdu), hex::encode(hex(NOTIFICATION_CEASE)));
    both_ways(
        &build::peer_down(peer(false), PeerDownReason::RemoteNotification(pdu)),
        &peer_down_remote_notification(),
    );
    both_ways(
        &build::peer_down(peer(false), PeerDownReason::LocalNoNotification(0)),
        &peer_down_local_fsm(),
    );
    both_ways(
        &build::peer_down(peer(false), PeerDownReason::RemoteNoData),
        &peer_down_remote_no_data(),
    );
}

#[test]
fn stats_report() {
    let m = Message::StatisticsReport(StatsReport {
        peer: peer(false),
        stats: vec![
            Stat {
                kind: stat::REJECTED_BY_POLICY,
                value: StatValue::Counter(5),
            },
            Stat {
                kind: stat::ADJ_RIB_IN_ROUTES,
                value: StatValue::Gauge(2),
            },
            Stat {
                kind: stat::ADJ_RIB_IN_ROUTES_PER_FAMILY,
                value: StatValue::FamilyGauge(Family::IPV6_UNICAST, 1),
            },
        ],
    });
    both_ways(&m, &common::stats_report());
}

#[test]
fn loc_rib_peer_up_has_the_table_name() {
    let m = build::loc_rib_peer_up(65000, US, TS, &open(65000, US), "global").unwrap();
    both_ways(&m, &loc_rib_peer_up());
    let Message::PeerUp(up) = m else { panic!() };
    assert_eq!(up.peer.peer_address(), None);
    assert!(!up.peer.filtered());
    assert_eq!(up.information[0].kind, info::VRF_TABLE_NAME);
    assert_eq!(up.information[0].as_text(), Some("global"));
}

#[test]
fn loc_rib_filtered_flag() {
    let h = PeerHeader::loc_rib(65000, US, TS, true);
    assert_eq!(h.flags, 0x80);
    assert!(h.filtered() && !h.post_policy());
}

#[test]
fn malformed_input_is_an_error() {
    let cases: Vec<(String, DecodeError)> = vec![
        (
            "02 0000000c 05 0001 0002 0000".into(),
            DecodeError::Version(2),
        ),
        ("03 00000005 05".into(), DecodeError::Length(5)),
        (
            "03 0000000d 05 0001 0002 0000".into(),
            DecodeError::Truncated("message shorter than its length"),
        ),
        (
            "03 0000000b 05 0001 0002 0000".into(),
            DecodeError::Malformed("octets after the message's length"),
        ),
        ("03 00000006 07".into(), DecodeError::UnknownType(7)),
        (
            "03 0000000b 04 0001 0005 74".into(),
            DecodeError::Truncated("TLV value"),
        ),
        (
            // the UPDATE's own length says one octet less than follows
            format!(
                "03 0000005f 00 {PEER_V4_POST_ADDR} {}",
                UPDATE_V4.replace("002f", "002e")
            ),
            DecodeError::Malformed("octets after the UPDATE"),
        ),
        (
            // an OPEN where the UPDATE belongs
            format!("03 0000004d 00 {PEER_V4_POST_ADDR} {OPEN_SENT}"),
            DecodeError::Malformed("route monitoring UPDATE"),
        ),
        (
            format!("03 00000034 01 {PEER_V4_PRE_ADDR} 00000001"),
            DecodeError::Truncated("stat type"),
        ),
        (
            "03 00000008 00 0000".into(),
            DecodeError::Truncated("per-peer header"),
        ),
    ];
    for (v, want) in cases {
        assert_eq!(decode(&hex(&v)), Err(want), "{v}");
    }
    assert_eq!(frame_len(&hex("03 0000")), Ok(None));
}

#[test]
fn unknown_stat_types_and_odd_lengths_stay_raw() {
    let v = format!("03 00000039 01 {PEER_V4_PRE_ADDR} 00000001 0007 0001 ff");
    let Message::StatisticsReport(s) = decode(&hex(&v)).unwrap() else {
        panic!()
    };
    assert!(matches!(s.stats[0].value, StatValue::Raw(ref b) if b[..] == [0xff]));
    assert_eq!(
        hex::encode(Message::StatisticsReport(s).to_bytes()),
        hex::encode(hex(&v))
    );
}

#[test]
fn oversized_tlv_is_cut_not_mislabelled() {
    let m = Message::Initiation(vec![InfoTlv {
        kind: info::STRING,
        value: vec![b'x'; 70_000].into(),
    }]);
    let Message::Initiation(t) = decode(&m.to_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(t[0].value.len(), 65_535);
}
