//! Random event sequences and random bytes never make a session panic, and
//! a few invariants hold after any sequence.

#[path = "fsm_util/mod.rs"]
mod util;

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use tabby_bgp::capability::Capability;
use tabby_bgp::fsm::{Action, ConnectionId, Event, PeerAs, SessionConfig, State};
use tabby_bgp::message::{Message, Open};
use tabby_bgp::types::{Asn, Family};
use util::{Scripted, encode};

fn cfg() -> SessionConfig {
    let mut c = SessionConfig::new(
        Asn(65001),
        PeerAs::Exact(Asn(65002)),
        Ipv4Addr::new(198, 18, 0, 1),
    );
    c.delay_open = None;
    c
}

fn peer_open_bytes() -> Vec<u8> {
    let mut v = encode(&Message::Open(Open {
        version: 4,
        my_as: 65002,
        hold_time: 30,
        bgp_id: Ipv4Addr::new(198, 18, 0, 2),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(Asn(65002)),
        ],
        unknown_params: Vec::new(),
    }));
    v.extend(encode(&Message::Keepalive));
    v
}

#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop,
    Reset(bool),
    Detach,
    Accept,
    /// Report the newest Connect as connected.
    Connected,
    Close(usize),
    /// A valid OPEN + KEEPALIVE on a connection.
    Handshake(usize),
    Garbage(usize, Vec<u8>),
    /// Bytes that start like a BGP header.
    Framed(usize, u8, Vec<u8>),
    Progress(usize, bool),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Start),
        Just(Op::Stop),
        any::<bool>().prop_map(Op::Reset),
        Just(Op::Detach),
        Just(Op::Accept),
        Just(Op::Connected),
        (0..4usize).prop_map(Op::Close),
        (0..4usize).prop_map(Op::Handshake),
        (0..4usize, proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(i, b)| Op::Garbage(i, b)),
        (
            0..4usize,
            0..8u8,
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(i, t, b)| Op::Framed(i, t, b)),
        (0..4usize, any::<bool>()).prop_map(|(i, p)| Op::Progress(i, p)),
        (0..400u16).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_event_sequence_is_handled(ops in proptest::collection::vec(op(), 1..60)) {
        let mut s = Scripted::new(cfg());
        let mut conns: Vec<ConnectionId> = Vec::new();
        let pick = |conns: &Vec<ConnectionId>, i: usize| conns.get(i % conns.len().max(1)).copied();
        for op in ops {
            match op {
                Op::Start => s.event(Event::Start),
                Op::Stop => {
                    s.event(Event::Stop { reason: Some("x".into()) });
                    prop_assert_eq!(s.session.state(), State::Idle);
                    prop_assert_eq!(s.session.poll_timeout(), None);
                }
                Op::Reset(hard) => s.event(Event::Reset { hard }),
                Op::Detach => {
                    s.event(Event::Detach);
                    prop_assert_eq!(s.session.state(), State::Idle);
                }
                Op::Accept => {
                    let id = s.session.next_connection_id();
                    conns.push(id);
                    s.event(Event::Accepted(id));
                }
                Op::Connected => {
                    let last = s.actions.iter().rev().find_map(|a| match a {
                        Action::Connect(c) => Some(*c),
                        _ => None,
                    });
                    if let Some(id) = last {
                        conns.push(id);
                        s.event(Event::Connected(id));
                    }
                }
                Op::Close(i) => {
                    if let Some(id) = pick(&conns, i) {
                        s.event(Event::Closed(id));
                    }
                }
                Op::Handshake(i) => {
                    if let Some(id) = pick(&conns, i) {
                        s.feed(id, &peer_open_bytes());
                    }
                }
                Op::Garbage(i, b) => {
                    if let Some(id) = pick(&conns, i) {
                        s.event(Event::Received(id, Bytes::from(b)));
                    }
                }
                Op::Framed(i, t, body) => {
                    if let Some(id) = pick(&conns, i) {
                        let mut m = vec![0xff; 16];
                        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
                        m.push(t);
                        m.extend(body);
                        s.feed(id, &m);
                    }
                }
                Op::Progress(i, pending) => {
                    if let Some(id) = pick(&conns, i) {
                        s.event(Event::SendProgress { conn: id, pending });
                    }
                }
                Op::Advance(secs) => {
                    s.advance(Duration::from_secs(secs.into()));
                    // Every timer that was due has been handled.
                    if let Some(t) = s.session.poll_timeout() {
                        prop_assert!(t > s.now);
                    }
                }
            }
        }
        // Established always comes with a negotiated value.
        prop_assert_eq!(
            s.session.state() == State::Established,
            s.session.negotiated().is_some()
        );
    }
}
