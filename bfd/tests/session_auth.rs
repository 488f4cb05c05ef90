//! Keyed SHA1 and Meticulous Keyed SHA1 between two sessions (RFC 5880
//! §6.7.4), and the packets an authenticating session discards.

#[path = "session_util/mod.rs"]
mod util;

use std::time::Duration;

use tabby_bfd::auth::AuthError;
use tabby_bfd::packet::{Auth, AuthType, State};
use tabby_bfd::session::Discard;
use tabby_bfd::{AuthConfig, SessionConfig};
use util::Pair;

fn cfg(key: &[u8], key_id: u8, meticulous: bool) -> SessionConfig {
    SessionConfig {
        auth: Some(AuthConfig::keyed_sha1(key_id, key, meticulous).unwrap()),
        ..SessionConfig::default()
    }
}

fn seq(p: &tabby_bfd::Packet) -> u32 {
    match &p.auth {
        Some(Auth::KeyedSha1 { seq, .. }) => *seq,
        other => panic!("not SHA1: {other:?}"),
    }
}

#[test]
fn keyed_sha1_sessions_come_up() {
    for meticulous in [false, true] {
        let mut p = Pair::new(
            cfg(b"tabby-bfd", 7, meticulous),
            cfg(b"tabby-bfd", 7, meticulous),
        );
        p.advance(Duration::from_secs(5));
        assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
        assert!(p.a.discards.is_empty() && p.b.discards.is_empty());
        let sent: Vec<_> = p.a.sent.iter().map(|(_, k)| k).collect();
        let ty = if meticulous {
            AuthType::MeticulousKeyedSha1
        } else {
            AuthType::KeyedSha1
        };
        assert!(
            sent.iter()
                .all(|k| k.auth.as_ref().map(Auth::auth_type) == Some(ty))
        );
        // One new sequence number per packet.
        for w in sent.windows(2) {
            assert_eq!(seq(w[1]), seq(w[0]).wrapping_add(1));
        }
    }
}

#[test]
fn wrong_key_or_key_id_never_comes_up() {
    let mut p = Pair::new(cfg(b"one", 1, true), cfg(b"two", 1, true));
    p.advance(Duration::from_secs(5));
    assert_eq!((p.a.state(), p.b.state()), (State::Down, State::Down));
    assert!(
        p.a.discards
            .iter()
            .all(|d| *d == Discard::Auth(AuthError::Digest))
    );
    let mut p = Pair::new(cfg(b"one", 1, true), cfg(b"one", 2, true));
    p.advance(Duration::from_secs(5));
    assert_eq!(p.a.state(), State::Down);
    assert_eq!(p.a.discards[0], Discard::Auth(AuthError::UnknownKeyId(2)));
    let mut p = Pair::new(cfg(b"one", 1, true), cfg(b"one", 1, false));
    p.advance(Duration::from_secs(5));
    assert_eq!(p.a.state(), State::Down);
    assert_eq!(
        p.a.discards[0],
        Discard::Auth(AuthError::WrongType {
            expected: AuthType::MeticulousKeyedSha1,
            got: AuthType::KeyedSha1
        })
    );
    let mut p = Pair::new(cfg(b"one", 1, false), SessionConfig::default());
    p.advance(Duration::from_secs(5));
    assert_eq!(p.a.discards[0], Discard::Auth(AuthError::Missing));
    assert_eq!(p.b.discards[0], Discard::Auth(AuthError::Unexpected));
}

/// Up under Meticulous Keyed SHA1, with B's raw packets kept for replays.
fn up_with_captures(meticulous: bool) -> (Pair, Vec<Vec<u8>>) {
    let mut p = Pair::new(cfg(b"k", 1, meticulous), cfg(b"k", 1, meticulous));
    p.advance(Duration::from_secs(5));
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
    // The harness keeps B's packets decoded; encoding and signing them
    // with B's key gives back the bytes B sent.
    let key = AuthConfig::keyed_sha1(1, b"k", meticulous).unwrap();
    let caps =
        p.b.sent
            .iter()
            .map(|(_, k)| {
                let mut b = k.encode();
                key.sign(&mut b);
                b
            })
            .collect();
    (p, caps)
}

#[test]
fn tampering_and_replays_are_discarded() {
    let (mut p, caps) = up_with_captures(true);
    let last = caps.last().unwrap().clone();
    // The very last packet again: Meticulous forbids a repeat.
    let e = p.a.session.handle_packet(p.now, &last).unwrap_err();
    assert!(
        matches!(e, Discard::Auth(AuthError::Sequence { .. })),
        "{e}"
    );
    // An old packet from the handshake: far behind the window.
    let e = p.a.session.handle_packet(p.now, &caps[0]).unwrap_err();
    assert!(
        matches!(e, Discard::Auth(AuthError::Sequence { .. })),
        "{e}"
    );
    // One bit flipped (Detect Mult), sequence number fine: hash fails.
    let mut next = p.b.sent.last().unwrap().1.clone();
    if let Some(Auth::KeyedSha1 { seq, .. }) = &mut next.auth {
        *seq = seq.wrapping_add(1);
    }
    let key = AuthConfig::keyed_sha1(1, b"k", true).unwrap();
    let mut good = next.encode();
    key.sign(&mut good);
    let mut bad = good.clone();
    bad[2] ^= 0x02;
    assert_eq!(
        p.a.session.handle_packet(p.now, &bad).unwrap_err(),
        Discard::Auth(AuthError::Digest)
    );
    // The genuine next packet still passes: failures did not move the window.
    p.a.session.handle_packet(p.now, &good).unwrap();
    assert_eq!(p.a.state(), State::Up);
}

#[test]
fn keyed_sha1_accepts_a_repeat_within_the_window() {
    let (mut p, caps) = up_with_captures(false);
    let last = caps.last().unwrap().clone();
    p.a.session.handle_packet(p.now, &last).unwrap();
    // 3 × Detect Mult (9) ahead of the last accepted number is the edge of
    // the window; after accepting that, 19 ahead of the base is 10 past it.
    let mut pk = p.b.sent.last().unwrap().1.clone();
    let key = AuthConfig::keyed_sha1(1, b"k", false).unwrap();
    let base = seq(&pk);
    for (ahead, ok) in [(9u32, true), (19, false)] {
        if let Some(Auth::KeyedSha1 { seq, .. }) = &mut pk.auth {
            *seq = base.wrapping_add(ahead);
        }
        let mut b = pk.encode();
        key.sign(&mut b);
        assert_eq!(
            p.a.session.handle_packet(p.now, &b).is_ok(),
            ok,
            "{ahead} ahead"
        );
    }
}

#[test]
fn sequence_is_forgotten_after_twice_the_detection_time() {
    let (mut p, caps) = up_with_captures(true);
    p.cut_b = true;
    p.advance(Duration::from_secs(2));
    assert_eq!(p.a.state(), State::Down);
    // An old packet is acceptable again once bfd.AuthSeqKnown fell to 0
    // (§6.8.1); a replay this late is what the RFC accepts.
    let old = caps[0].clone();
    p.a.session.handle_packet(p.now, &old).unwrap();
}
