//! One session against a scripted peer that sends exact bytes: the header
//! and OPEN rows of CONFORMANCE.md (1-9), RFC 6608 unexpected messages
//! (row 30), and NOTIFICATION in each state.

#[path = "fsm_util/mod.rs"]
mod util;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;
use tabby_bgp::attr::{AsPath, NextHop, Origin, PathAttributes};
use tabby_bgp::capability::{Capability, Role};
use tabby_bgp::fsm::{Action, ConnectionId, DownReason, Event, PeerAs, SessionConfig, State};
use tabby_bgp::message::{Message, MpReach, Open, RefreshSubtype, RouteRefresh, Update};
use tabby_bgp::notification::{
    Cease, FsmError, MessageHeaderError as H, Notification, NotificationKind as K,
    OpenMessageError as O, RouteRefreshError, UpdateMessageError,
};
use tabby_bgp::types::{Asn, Family, Nlri};
use util::{Scripted, encode, encode_with};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn cfg() -> SessionConfig {
    let mut c = SessionConfig::new(Asn(65001), PeerAs::Exact(Asn(65002)), LOCAL_ID);
    c.passive = true;
    c
}

fn peer_open() -> Open {
    Open {
        version: 4,
        my_as: 65002,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(198, 18, 0, 2),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(Asn(65002)),
        ],
        unknown_params: Vec::new(),
    }
}

/// Feeds `bytes` to a session in OpenSent; asserts it answered with a
/// NOTIFICATION, closed the connection and went Idle. Returns what it sent.
fn refused_with(cfg: SessionConfig, bytes: &[u8]) -> Notification {
    let mut s = Scripted::new(cfg);
    let id = s.accept();
    s.feed(id, bytes);
    assert!(s.closed(id), "connection must be closed");
    assert_eq!(s.session.state(), State::Idle);
    let n = s.last_notification().expect("a NOTIFICATION was sent");
    let down = s.downs()[0];
    assert_eq!(down.reason, DownReason::NotificationSent(n.clone()));
    assert!(!down.was_established);
    n
}

fn open_refused(cfg: SessionConfig, open: Open) -> K {
    refused_with(cfg, &encode(&Message::Open(open))).kind()
}

fn established(cfg: SessionConfig, open: Open) -> (Scripted, ConnectionId) {
    let mut s = Scripted::new(cfg);
    let id = s.accept();
    s.establish_with(id, &open);
    assert_eq!(s.session.state(), State::Established, "{:?}", s.actions);
    (s, id)
}

fn header(len: u16, ty: u8) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&len.to_be_bytes());
    v.push(ty);
    v
}

#[test]
fn good_open_establishes_even_split_into_single_bytes() {
    let mut s = Scripted::new(cfg());
    let id = s.accept();
    // Our OPEN went out first.
    assert!(matches!(s.sent().first(), Some(Message::Open(o)) if o.bgp_id == LOCAL_ID));
    let mut bytes = encode(&Message::Open(peer_open()));
    bytes.extend(encode(&Message::Keepalive));
    for b in bytes {
        s.feed(id, &[b]);
    }
    assert_eq!(s.session.state(), State::Established);
    assert!(
        s.actions
            .iter()
            .any(|a| matches!(a, Action::Established(n) if n.peer_asn == Asn(65002)))
    );
}

// Row 1.
#[test]
fn bad_marker_is_1_1() {
    let mut bytes = header(19, 4);
    bytes[3] = 0;
    let n = refused_with(cfg(), &bytes);
    assert_eq!(n.kind(), K::MessageHeader(H::ConnectionNotSynchronized));
}

// Row 2.
#[test]
fn bad_length_is_1_2_with_the_length() {
    let n = refused_with(cfg(), &header(18, 4));
    assert_eq!(n.kind(), K::MessageHeader(H::BadMessageLength(18)));
    assert_eq!(n.data, vec![0, 18]);
    let n = refused_with(cfg(), &header(5000, 2));
    assert_eq!(n.kind(), K::MessageHeader(H::BadMessageLength(5000)));
}

// Row 3.
#[test]
fn unknown_type_is_1_3() {
    let n = refused_with(cfg(), &header(19, 7));
    assert_eq!(n.kind(), K::MessageHeader(H::BadMessageType(7)));
}

// Row 4.
#[test]
fn long_keepalive_is_1_2() {
    let mut bytes = header(20, 4);
    bytes.push(0);
    let n = refused_with(cfg(), &bytes);
    assert_eq!(n.kind(), K::MessageHeader(H::BadMessageLength(20)));
}

#[test]
fn bad_route_refresh_length_is_7_1() {
    let (mut s, id) = established(cfg(), peer_open());
    let mut bytes = header(24, 5);
    bytes.extend_from_slice(&[0, 1, 0, 1, 0]);
    s.feed(id, &bytes);
    let n = s.last_notification().expect("NOTIFICATION");
    assert_eq!(
        n.kind(),
        K::RouteRefresh(RouteRefreshError::InvalidMessageLength(bytes))
    );
    assert!(s.closed(id));
    assert!(s.downs()[0].was_established);
}

// Row 5.
#[test]
fn version_3_is_2_1_with_version_4() {
    let mut open = peer_open();
    open.version = 3;
    assert_eq!(open_refused(cfg(), open), K::Open(O::UnsupportedVersion(4)));
}

// Row 6.
#[test]
fn hold_time_1_and_2_are_2_6_and_0_is_fine() {
    for hold in [1, 2] {
        let mut open = peer_open();
        open.hold_time = hold;
        assert_eq!(
            open_refused(cfg(), open),
            K::Open(O::UnacceptableHoldTime),
            "hold time {hold}"
        );
    }
    let mut open = peer_open();
    open.hold_time = 0;
    let (mut s, id) = established(cfg(), open);
    assert_eq!(
        s.session.negotiated().map(|n| n.hold_time),
        Some(Duration::ZERO)
    );
    // Everything written: the send hold timer is off too.
    s.event(Event::SendProgress {
        conn: id,
        pending: false,
    });
    assert_eq!(s.session.poll_timeout(), None, "no hold, no keepalive");
}

// Row 7.
#[test]
fn bgp_identifier_zero_or_ours_on_ibgp_is_2_3() {
    assert_eq!(
        open_refused(cfg(), peer_open_id0()),
        K::Open(O::BadBgpIdentifier(Some(Ipv4Addr::UNSPECIFIED)))
    );

    let mut ibgp = cfg();
    ibgp.peer_as = PeerAs::Internal;
    let mut open = peer_open();
    open.my_as = 65001;
    open.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    open.bgp_id = LOCAL_ID;
    assert_eq!(
        open_refused(ibgp, open),
        K::Open(O::BadBgpIdentifier(Some(LOCAL_ID)))
    );

    // RFC 6286 §2.2: the same identifier is fine between ASes.
    let mut open = peer_open();
    open.bgp_id = LOCAL_ID;
    established(cfg(), open);
}

fn peer_open_id0() -> Open {
    let mut open = peer_open();
    open.bgp_id = Ipv4Addr::UNSPECIFIED;
    open
}

// Row 8.
#[test]
fn wrong_peer_as_is_2_2() {
    let mut open = peer_open();
    open.my_as = 65003;
    open.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    assert_eq!(
        open_refused(cfg(), open),
        K::Open(O::BadPeerAs(Some(65003)))
    );

    // AS_TRANS without the 4-octet capability.
    let mut open = peer_open();
    open.my_as = 23456;
    open.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    let mut c = cfg();
    c.peer_as = PeerAs::Exact(Asn(23456));
    assert_eq!(open_refused(c, open), K::Open(O::BadPeerAs(Some(23456))));

    // The capability's AS is not the configured one.
    let mut open = peer_open();
    open.my_as = 23456;
    open.capabilities = vec![Capability::FourOctetAs(Asn(4_200_000_000))];
    assert_eq!(
        open_refused(cfg(), open.clone()),
        K::Open(O::BadPeerAs(Some(23456)))
    );

    // The same OPEN is right for a peer configured with that 4-octet AS.
    let mut c = cfg();
    c.peer_as = PeerAs::Exact(Asn(4_200_000_000));
    let (s, _) = established(c, open);
    assert_eq!(
        s.session.negotiated().map(|n| n.peer_asn),
        Some(Asn(4_200_000_000))
    );
}

#[test]
fn as_ranges_and_external() {
    let mut c = cfg();
    c.peer_as = PeerAs::Range {
        min: Asn(65000),
        max: Asn(65010),
    };
    established(c.clone(), peer_open());
    c.peer_as = PeerAs::Range {
        min: Asn(64512),
        max: Asn(64999),
    };
    assert!(matches!(
        open_refused(c.clone(), peer_open()),
        K::Open(O::BadPeerAs(_))
    ));
    c.peer_as = PeerAs::External;
    established(c.clone(), peer_open());
    c.peer_as = PeerAs::Internal;
    assert!(matches!(
        open_refused(c, peer_open()),
        K::Open(O::BadPeerAs(_))
    ));
}

#[test]
fn role_mismatch_is_2_11() {
    let mut c = cfg();
    c.role = Some(Role::Provider);
    let mut open = peer_open();
    open.capabilities.push(Capability::Role(Role::Provider));
    assert_eq!(
        open_refused(c.clone(), open),
        K::Open(O::RoleMismatch(Some(Role::Provider as u8)))
    );

    let mut open = peer_open();
    open.capabilities.push(Capability::Role(Role::Customer));
    let (s, _) = established(c.clone(), open);
    assert_eq!(
        s.session.negotiated().and_then(|n| n.peer_role),
        Some(Role::Customer)
    );

    // No role from the peer: fine unless strict.
    established(c.clone(), peer_open());
    c.role_strict = true;
    assert_eq!(open_refused(c, peer_open()), K::Open(O::RoleMismatch(None)));
}

#[test]
fn unknown_optional_parameter_is_2_4() {
    let mut open = peer_open();
    open.unknown_params = vec![(7, vec![1, 2])];
    assert_eq!(
        open_refused(cfg(), open),
        K::Open(O::UnsupportedOptionalParameter(Some(7)))
    );
}

// Row 9: lengths that overrun never read out of bounds; the answer is an
// OPEN error.
#[test]
fn overrunning_parameters_are_open_errors() {
    let body_prefix = |opt_len: u8| vec![4, 0xfd, 0xea, 0, 90, 198, 18, 0, 2, opt_len];
    let cases: Vec<Vec<u8>> = vec![
        // Optional parameter length beyond the message.
        [body_prefix(10), vec![2, 8, 1, 4]].concat(),
        // Capability TLV longer than its parameter.
        [body_prefix(4), vec![2, 2, 65, 4]].concat(),
        // RFC 9072 extended form, truncated.
        [body_prefix(255), vec![255, 0]].concat(),
    ];
    for body in cases {
        let mut msg = header((19 + body.len()) as u16, 1);
        msg.extend_from_slice(&body);
        let n = refused_with(cfg(), &msg);
        assert_eq!(n.kind(), K::Open(O::Unspecific), "{body:?} → {n}");
    }
}

// Row 30 (RFC 6608).
#[test]
fn unexpected_in_open_sent_is_5_1() {
    let rr = Message::RouteRefresh(RouteRefresh {
        family: Family::IPV4_UNICAST,
        subtype: RefreshSubtype::Request,
    });
    for msg in [Message::Keepalive, Message::Update(Update::default()), rr] {
        let n = refused_with(cfg(), &encode(&msg));
        assert_eq!(
            n.kind(),
            K::Fsm(FsmError::UnexpectedMessageInOpenSent(Some(msg.kind()))),
            "{msg:?}"
        );
    }
}

#[test]
fn unexpected_in_open_confirm_is_5_2() {
    for msg in [
        Message::Open(peer_open()),
        Message::Update(Update::default()),
    ] {
        let mut s = Scripted::new(cfg());
        let id = s.accept();
        s.feed(id, &encode(&Message::Open(peer_open())));
        assert_eq!(s.session.state(), State::OpenConfirm);
        s.feed(id, &encode(&msg));
        let n = s.last_notification().expect("NOTIFICATION");
        assert_eq!(
            n.kind(),
            K::Fsm(FsmError::UnexpectedMessageInOpenConfirm(Some(msg.kind())))
        );
        assert!(s.closed(id));
    }
}

#[test]
fn open_in_established_is_5_3() {
    let (mut s, id) = established(cfg(), peer_open());
    s.feed(id, &encode(&Message::Open(peer_open())));
    let n = s.last_notification().expect("NOTIFICATION");
    assert_eq!(
        n.kind(),
        K::Fsm(FsmError::UnexpectedMessageInEstablished(Some(1)))
    );
    assert!(s.closed(id));
}

#[test]
fn unexpected_during_delay_open_is_5_0() {
    let mut c = cfg();
    c.delay_open = Some(Duration::from_secs(10));
    let mut s = Scripted::new(c);
    let id = s.accept();
    assert_eq!(s.session.state(), State::Active);
    assert!(s.sent().is_empty(), "OPEN delayed");
    s.feed(id, &encode(&Message::Keepalive));
    let n = s.last_notification().expect("NOTIFICATION");
    assert_eq!(n.kind(), K::Fsm(FsmError::Unspecified));
}

#[test]
fn notification_in_each_state_closes_without_reply() {
    let cease = Notification::from(Cease::PeerDeconfigured);
    let bytes = encode(&Message::Notification(cease.clone()));
    // OpenSent, OpenConfirm, Established.
    for stage in 0..3 {
        let mut s = Scripted::new(cfg());
        let id = s.accept();
        if stage >= 1 {
            s.feed(id, &encode(&Message::Open(peer_open())));
        }
        if stage >= 2 {
            s.feed(id, &encode(&Message::Keepalive));
        }
        let before = s.sent().len();
        s.feed(id, &bytes);
        assert_eq!(s.sent().len(), before, "no answer to a NOTIFICATION");
        assert!(s.closed(id));
        assert_eq!(s.session.state(), State::Idle);
        let down = s.downs()[0];
        assert_eq!(down.reason, DownReason::NotificationReceived(cease.clone()));
        assert_eq!(down.was_established, stage == 2);
    }
    // DelayOpen (in Active).
    let mut c = cfg();
    c.delay_open = Some(Duration::from_secs(10));
    let mut s = Scripted::new(c);
    let id = s.accept();
    s.feed(id, &bytes);
    assert!(s.closed(id) && s.sent().is_empty());
}

#[test]
fn open_hold_timer_expires_in_open_sent() {
    let mut s = Scripted::new(cfg());
    let id = s.accept();
    s.advance(Duration::from_secs(239));
    assert_eq!(s.session.state(), State::OpenSent);
    s.advance(Duration::from_secs(2));
    let n = s.last_notification().expect("NOTIFICATION");
    assert_eq!(n.kind(), K::HoldTimerExpired);
    assert!(s.closed(id));
}

#[test]
fn idle_refuses_connections() {
    let mut s = Scripted::new(cfg());
    let id = s.session.next_connection_id();
    s.event(Event::Accepted(id));
    assert!(s.closed(id));
    assert!(s.sent().is_empty());
}

#[test]
fn updates_are_delivered_once_established() {
    let (mut s, id) = established(cfg(), peer_open());
    let neg = s.session.negotiated().expect("negotiated").clone();
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence([Asn(65002)]),
        next_hop: Some(Ipv4Addr::new(198, 18, 0, 2)),
        ..PathAttributes::default()
    };
    let v4: IpNet = "100.64.1.0/24".parse().expect("prefix");
    let v6: IpNet = "2001:db8:1000::/48".parse().expect("prefix");
    let u4 = Update {
        attributes: attrs.clone(),
        nlri: vec![Nlri::new(v4)],
        ..Update::default()
    };
    let u6 = Update {
        attributes: PathAttributes {
            next_hop: None,
            ..attrs
        },
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: NextHop::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into()),
            nlri: vec![Nlri::new(v6)],
        }),
        ..Update::default()
    };
    let ctx = neg.codec_ctx();
    let mut bytes = encode_with(&Message::Update(u4), &ctx);
    bytes.extend(encode_with(&Message::Update(u6), &ctx));
    bytes.extend(encode_with(
        &Message::Update(Update::end_of_rib(Family::IPV4_UNICAST)),
        &ctx,
    ));
    s.feed(id, &bytes);
    let got: Vec<&Action> = s
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Update(_) | Action::EndOfRib(_)))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(matches!(got[0], Action::Update(u) if u.nlri == vec![Nlri::new(v4)]));
    assert!(
        matches!(got[1], Action::Update(u) if u.mp_reach.as_ref().is_some_and(|m| m.nlri == vec![Nlri::new(v6)]))
    );
    assert_eq!(*got[2], Action::EndOfRib(Family::IPV4_UNICAST));
    assert_eq!(s.session.state(), State::Established);
}

#[test]
fn malformed_update_resets_with_its_notification() {
    let (mut s, id) = established(cfg(), peer_open());
    // Withdrawn-routes length beyond the message (row 10): 3/1.
    let mut bytes = header(23, 2);
    bytes.extend_from_slice(&[0, 9, 0, 0]);
    s.feed(id, &bytes);
    let n = s.last_notification().expect("NOTIFICATION");
    assert_eq!(
        n.kind(),
        K::Update(UpdateMessageError::MalformedAttributeList)
    );
    let down = s.downs()[0];
    assert!(down.was_established);
    assert_eq!(down.reason, DownReason::NotificationSent(n));
}

#[test]
fn updates_in_families_not_negotiated_are_ignored() {
    let mut open = peer_open();
    open.capabilities
        .retain(|c| *c != Capability::Multiprotocol(Family::IPV6_UNICAST));
    let (mut s, id) = established(cfg(), open);
    let ctx = s.session.negotiated().expect("negotiated").codec_ctx();
    let v6: IpNet = "2001:db8:1000::/48".parse().expect("prefix");
    let u6 = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: AsPath::from_sequence([Asn(65002)]),
            ..PathAttributes::default()
        },
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: NextHop::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into()),
            nlri: vec![Nlri::new(v6)],
        }),
        ..Update::default()
    };
    let mut bytes = encode_with(&Message::Update(u6), &ctx);
    bytes.extend(encode_with(
        &Message::Update(Update::end_of_rib(Family::IPV6_UNICAST)),
        &ctx,
    ));
    s.feed(id, &bytes);
    assert!(
        !s.actions
            .iter()
            .any(|a| matches!(a, Action::Update(_) | Action::EndOfRib(_)))
    );
    assert_eq!(s.session.state(), State::Established);
}
