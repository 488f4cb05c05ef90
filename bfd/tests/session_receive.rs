//! What §6.8.6 discards leaves the session untouched; a peer asking for
//! Demand mode (which our session never does) is served as §6.8.7 says.

#[path = "session_util/mod.rs"]
mod util;

use std::time::Duration;

use tabby_bfd::auth::AuthError;
use tabby_bfd::packet::{Auth, DecodeError, Password, State};
use tabby_bfd::session::{Discard, TimerKind};
use util::Solo;

/// Feeds `bytes` to an Up session and checks that nothing at all happened.
fn discarded(s: &mut Solo, bytes: &[u8]) -> Discard {
    let before = (
        s.node.sent.len(),
        s.node.changes.len(),
        s.node.tx_at,
        s.node.detect_at,
    );
    let remote = s.node.session.remote_discriminator();
    let e = s.deliver_bytes(bytes).expect_err("discarded");
    assert_eq!(s.node.state(), State::Up);
    assert_eq!(
        (
            s.node.sent.len(),
            s.node.changes.len(),
            s.node.tx_at,
            s.node.detect_at
        ),
        before,
        "{e}: no action"
    );
    assert_eq!(s.node.session.remote_discriminator(), remote);
    e
}

#[test]
fn malformed_packets_change_nothing() {
    let mut s = Solo::up();
    s.now += Duration::from_millis(100);
    // A Down packet would take the session down if it were accepted.
    let good = s.peer_packet(State::Down);
    let mut down = good.clone();
    down.your_discriminator = s.node.session.local_discriminator();
    let bytes = down.encode();
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (
            mutate(&|b| b[0] = (2 << 5) | (b[0] & 0x1f)),
            DecodeError::BadVersion(2),
        ),
        (mutate(&|b| b[0] &= 0x1f), DecodeError::BadVersion(0)),
        (
            mutate(&|b| b[3] = 23),
            DecodeError::LengthTooSmall {
                length: 23,
                auth: false,
                min: 24,
            },
        ),
        (
            mutate(&|b| {
                b[1] |= 0x04;
                b[3] = 25;
                b.push(0);
            }),
            DecodeError::LengthTooSmall {
                length: 25,
                auth: true,
                min: 26,
            },
        ),
        (
            mutate(&|b| b[3] = 28),
            DecodeError::LengthExceedsPayload {
                length: 28,
                payload: 24,
            },
        ),
        (
            mutate(&|b| b.truncate(20)),
            DecodeError::LengthExceedsPayload {
                length: 24,
                payload: 20,
            },
        ),
        (
            mutate(&|b| b.truncate(2)),
            DecodeError::Truncated { len: 2 },
        ),
        (mutate(&|b| b[2] = 0), DecodeError::ZeroDetectMult),
        (mutate(&|b| b[1] |= 0x01), DecodeError::MultipointSet),
        (
            mutate(&|b| b[4..8].fill(0)),
            DecodeError::ZeroMyDiscriminator,
        ),
        (
            mutate(&|b| {
                b[1] = (3 << 6) | (b[1] & 0x3f);
                b[8..12].fill(0);
            }),
            DecodeError::ZeroYourDiscriminator(State::Up),
        ),
        (
            mutate(&|b| {
                b[1] |= 0x04;
                b[3] = 26;
                b.extend_from_slice(&[4, 28]);
            }),
            DecodeError::AuthLengthMismatch {
                auth_len: 28,
                available: 2,
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(discarded(&mut s, &bytes), Discard::Malformed(want));
    }
    // The unmutated packet does take it down: the cases were real threats.
    s.deliver_bytes(&bytes).unwrap();
    assert_eq!(s.node.state(), State::Down);
}

#[test]
fn wrong_discriminator_is_discarded() {
    let mut s = Solo::up();
    let mut p = s.peer_packet(State::Down);
    p.your_discriminator = 0xdead_beef;
    assert_eq!(
        discarded(&mut s, &p.encode()),
        Discard::WrongDiscriminator(0xdead_beef)
    );
}

#[test]
fn authentication_when_none_is_configured_is_discarded() {
    let mut s = Solo::up();
    let mut p = s.peer_packet(State::Down);
    p.auth = Some(Auth::SimplePassword {
        key_id: 1,
        password: Password::new(b"secret").unwrap(),
    });
    assert_eq!(
        discarded(&mut s, &p.encode()),
        Discard::Auth(AuthError::Unexpected)
    );
}

#[test]
fn admin_down_discards_everything_but_learns_the_peer() {
    let mut s = Solo::up();
    s.node.session.admin_down(s.now);
    s.drain();
    let mut poll = s.peer_packet(State::Up);
    poll.poll = true;
    let sent = s.node.sent.len();
    s.deliver(&poll).unwrap();
    assert_eq!(s.node.state(), State::AdminDown);
    assert_eq!(
        s.node.sent.len(),
        sent,
        "no Final while AdminDown (§6.8.6 order)"
    );
    assert_eq!(s.node.detect_at, None);
}

#[test]
fn peer_in_demand_mode_silences_periodic_transmission() {
    let mut s = Solo::up();
    let mut demand = s.peer_packet(State::Up);
    demand.demand = true;
    s.deliver(&demand).unwrap();
    assert!(s.node.session.remote_demand_active());
    assert_eq!(s.node.tx_at, None, "periodic transmission ceased");
    let sent = s.node.sent.len();
    // The peer still sends to us (we did not ask for Demand): detection
    // keeps running on its packets.
    for _ in 0..10 {
        s.now += Duration::from_millis(300);
        s.deliver(&demand).unwrap();
        s.advance(Duration::ZERO);
    }
    assert_eq!(s.node.sent.len(), sent, "nothing sent without a Poll");
    assert!(s.node.detect_at.is_some());
    // The peer verifies the path with a Poll: answered at once.
    let mut poll = demand.clone();
    poll.poll = true;
    s.deliver(&poll).unwrap();
    let (_, reply) = s.node.sent.last().unwrap();
    assert!(reply.fin && !reply.demand);
    assert_eq!(s.node.sent.len(), sent + 1);
    // A Poll of ours goes out periodically even so, until its Final.
    let t = tabby_bfd::Timers {
        desired_min_tx: Duration::from_millis(200),
        ..Default::default()
    };
    s.node.session.set_timers(s.now, t).unwrap();
    s.drain();
    assert!(s.node.tx_at.is_some());
    s.advance(Duration::from_millis(250));
    assert!(s.node.sent.last().unwrap().1.poll);
    let mut fin = demand.clone();
    fin.fin = true;
    s.deliver(&fin).unwrap();
    assert_eq!(s.node.tx_at, None, "silent again after our Final");
    // The peer leaves Demand mode: periodic transmission resumes.
    s.deliver(&s.peer_packet(State::Up)).unwrap();
    assert!(s.node.tx_at.is_some());
    let before = s.node.sent.len();
    s.advance(Duration::from_millis(300));
    assert!(s.node.sent.len() > before);
    // And silence from a peer in Demand mode is still a failure for us.
    s.deliver(&demand).unwrap();
    s.advance(Duration::from_secs(1));
    assert_eq!(s.node.state(), State::Down);
    assert!(s.node.sent.iter().all(|(_, k)| !k.demand));
    assert_eq!(s.node.session.timer(TimerKind::Tx), s.node.tx_at);
}

#[test]
fn passive_session_waits_for_the_peer() {
    let mut s = Solo::new(tabby_bfd::SessionConfig {
        passive: true,
        ..Default::default()
    });
    s.advance(Duration::from_secs(5));
    assert!(s.node.sent.is_empty());
    s.deliver(&s.peer_packet(State::Down)).unwrap();
    assert_eq!(s.node.state(), State::Init);
    s.advance(Duration::from_millis(1));
    assert_eq!(s.node.sent[0].1.state, State::Init);
    // Silence again: a Detection Time later the peer is forgotten and the
    // passive session falls quiet.
    s.advance(Duration::from_secs(2));
    assert_eq!(s.node.state(), State::Down);
    assert_eq!(s.node.session.remote_discriminator(), 0);
    let n = s.node.sent.len();
    s.advance(Duration::from_secs(5));
    assert_eq!(s.node.sent.len(), n);
}
