//! Interval negotiation, the 1 s floor while not Up, Poll/Final for timer
//! changes, and jitter (RFC 5880 §6.8.2–§6.8.4, §6.8.7).

#[path = "session_util/mod.rs"]
mod util;

use std::time::Duration;

use tabby_bfd::jitter::jittered;
use tabby_bfd::packet::State;
use tabby_bfd::{SessionConfig, Timers};
use util::{Pair, Solo, config};

const MS: Duration = Duration::from_millis(1);

fn within(gaps: &[Duration], lo: Duration, hi: Duration) {
    assert!(!gaps.is_empty());
    for g in gaps {
        assert!(*g >= lo && *g <= hi, "gap {g:?} outside {lo:?}..={hi:?}");
    }
}

#[test]
fn slow_transmission_while_not_up() {
    // Nobody answers: Down for ever, 1 s less jitter between packets.
    let mut p = Pair::default_pair();
    p.cut_b = true;
    p.cut_a = true;
    let start = p.now;
    p.advance(Duration::from_secs(30));
    assert_eq!(p.a.session.tx_interval(), Duration::from_secs(1));
    let gaps = p.a.gaps_since(start);
    assert!(gaps.len() >= 29);
    within(&gaps, 750 * MS, 1000 * MS);
    assert!(
        p.a.sent
            .iter()
            .all(|(_, k)| k.desired_min_tx_us == 1_000_000)
    );
    // AdminDown is not Up either.
    let mut s = Solo::up();
    s.node.session.admin_down(s.now);
    s.drain();
    assert_eq!(s.node.session.tx_interval(), Duration::from_secs(1));
    let from = s.now;
    s.advance(Duration::from_secs(10));
    within(&s.node.gaps_since(from), 750 * MS, 1000 * MS);
}

#[test]
fn fast_transmission_once_up() {
    let mut p = Pair::up();
    let from = p.now;
    p.advance(Duration::from_secs(10));
    assert_eq!(p.a.session.tx_interval(), 300 * MS);
    within(&p.a.gaps_since(from), 225 * MS, 300 * MS);
    let (_, last) = p.a.sent.last().unwrap();
    assert_eq!(last.desired_min_tx_us, 300_000);
}

#[test]
fn tx_interval_is_the_greater_of_our_desired_and_their_required() {
    // A would send every 100 ms, B accepts no more than one per 500 ms.
    let mut p = Pair::new(config(100, 100, 3), config(100, 500, 3));
    p.advance(Duration::from_secs(5));
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
    assert_eq!(p.a.session.tx_interval(), 500 * MS);
    assert_eq!(p.b.session.tx_interval(), 100 * MS);
    let from = p.now;
    p.advance(Duration::from_secs(5));
    within(&p.a.gaps_since(from), 375 * MS, 500 * MS);
    within(&p.b.gaps_since(from), 75 * MS, 100 * MS);
    // Detection: the peer's mult × max(our required, their desired).
    assert_eq!(p.a.session.detection_time(), Some(300 * MS));
    assert_eq!(p.b.session.detection_time(), Some(1500 * MS));
}

#[test]
fn going_up_polls_for_the_fast_rate() {
    let mut p = Pair::default_pair();
    p.advance(Duration::from_secs(3));
    // Entering Up lowered Desired Min TX from 1 s to 300 ms: a change, so
    // a Poll went out and was answered.
    let first_up = p.a.sent.iter().find(|(_, k)| k.state == State::Up).unwrap();
    assert!(first_up.1.poll);
    assert_eq!(first_up.1.desired_min_tx_us, 300_000);
    assert!(p.b.sent.iter().any(|(_, k)| k.fin));
    assert!(!p.a.session.poll_in_progress());
}

fn slower(desired_ms: u32, required_ms: u32) -> Timers {
    Timers {
        desired_min_tx: desired_ms * MS,
        required_min_rx: required_ms * MS,
        detect_mult: 3,
    }
}

#[test]
fn raising_desired_tx_applies_only_after_the_final() {
    let mut p = Pair::up();
    // B's answers are lost for a while: A's Poll goes unanswered.
    p.cut_b = true;
    p.a.session.set_timers(p.now, slower(600, 300)).unwrap();
    p.drain();
    assert!(p.a.session.poll_in_progress());
    let from = p.now;
    // Less than B's Detection Time at A (900 ms), so the session lives.
    p.advance(Duration::from_millis(550));
    // Still the old rate, and every periodic packet carries P with the new
    // value.
    assert_eq!(p.a.session.tx_interval(), 300 * MS);
    within(&p.a.gaps_since(from), 225 * MS, 300 * MS);
    let polls: Vec<_> =
        p.a.sent
            .iter()
            .filter(|(t, _)| *t > from)
            .map(|(_, k)| k)
            .collect();
    assert!(polls.len() >= 2);
    assert!(
        polls
            .iter()
            .all(|k| k.poll && k.desired_min_tx_us == 600_000)
    );
    // B already lengthened its Detection Time on the first P.
    assert_eq!(p.b.session.detection_time(), Some(1800 * MS));
    // B's answers get through again: the next P is answered and the new
    // interval applies from then on.
    p.cut_b = false;
    p.advance(Duration::from_millis(300));
    assert!(!p.a.session.poll_in_progress());
    let final_at = p.a.accepted.iter().rev().find(|(_, k)| k.fin).unwrap().0;
    assert_eq!(p.a.session.tx_interval(), 600 * MS);
    p.advance(Duration::from_secs(5));
    within(&p.a.gaps_since(final_at + 300 * MS), 450 * MS, 600 * MS);
    assert!(p.a.sent.iter().rev().take(3).all(|(_, k)| !k.poll));
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
}

#[test]
fn lowering_desired_tx_applies_at_once() {
    let mut p = Pair::up();
    p.cut_b = true;
    p.a.session.set_timers(p.now, slower(100, 300)).unwrap();
    p.drain();
    assert!(p.a.session.poll_in_progress());
    // B's Required Min RX is 300 ms: that stays the floor.
    assert_eq!(p.a.session.tx_interval(), 300 * MS);
    let mut q = Pair::new(config(300, 300, 3), config(300, 100, 3));
    q.advance(Duration::from_secs(5));
    q.cut_b = true;
    q.a.session.set_timers(q.now, slower(100, 300)).unwrap();
    q.drain();
    assert_eq!(
        q.a.session.tx_interval(),
        100 * MS,
        "faster at once, before the Final"
    );
}

#[test]
fn lowering_required_rx_keeps_the_old_detection_time_until_the_final() {
    let mut p = Pair::up();
    p.cut_b = true;
    p.a.session.set_timers(p.now, slower(300, 100)).unwrap();
    p.drain();
    // B still sends every 300 ms, so A's Detection Time keeps 3 × 300 ms.
    assert_eq!(p.a.session.detection_time(), Some(900 * MS));
    p.cut_b = false;
    p.advance(Duration::from_millis(400));
    assert!(!p.a.session.poll_in_progress());
    // After the Final: 3 × max(100, B's desired 300) — unchanged here, so
    // B's desired bounds it; check with B desiring 100 too.
    assert_eq!(p.a.session.detection_time(), Some(900 * MS));
    let mut q = Pair::new(config(300, 300, 3), config(100, 300, 3));
    q.advance(Duration::from_secs(5));
    assert_eq!(q.a.session.detection_time(), Some(900 * MS));
    q.cut_b = true;
    q.a.session.set_timers(q.now, slower(300, 100)).unwrap();
    q.drain();
    assert_eq!(
        q.a.session.detection_time(),
        Some(900 * MS),
        "old value until the Final"
    );
    q.cut_b = false;
    q.advance(Duration::from_millis(400));
    assert!(!q.a.session.poll_in_progress());
    assert_eq!(q.a.session.detection_time(), Some(300 * MS));
    q.advance(Duration::from_secs(5));
    assert_eq!((q.a.state(), q.b.state()), (State::Up, State::Up));
}

#[test]
fn raising_required_rx_lengthens_detection_at_once() {
    let mut p = Pair::up();
    p.cut_b = true;
    p.a.session.set_timers(p.now, slower(300, 1000)).unwrap();
    p.drain();
    assert_eq!(p.a.session.detection_time(), Some(3000 * MS));
    let last = p.a.accepted.last().unwrap().0;
    assert_eq!(
        p.a.detect_at,
        Some(last + 3000 * MS),
        "the running timer moved"
    );
}

#[test]
fn a_second_change_during_a_poll_needs_another_final() {
    let mut p = Pair::up();
    p.cut_b = true;
    p.a.session.set_timers(p.now, slower(600, 300)).unwrap();
    p.advance(Duration::from_millis(100));
    p.a.session.set_timers(p.now, slower(900, 300)).unwrap();
    p.drain();
    // A Final that may answer the first change is not enough.
    let mut fin = p.b.sent.last().unwrap().1.clone();
    fin.fin = true;
    fin.poll = false;
    p.a.session.handle_packet(p.now, &fin.encode()).unwrap();
    assert!(p.a.session.poll_in_progress());
    assert_eq!(p.a.session.tx_interval(), 300 * MS);
    p.a.session.handle_packet(p.now, &fin.encode()).unwrap();
    assert!(!p.a.session.poll_in_progress());
    assert_eq!(p.a.session.tx_interval(), 900 * MS);
}

#[test]
fn detect_mult_change_needs_no_poll() {
    let mut p = Pair::up();
    let t = Timers {
        detect_mult: 5,
        ..Timers::default()
    };
    p.a.session.set_timers(p.now, t).unwrap();
    p.advance(Duration::from_millis(400));
    assert!(!p.a.session.poll_in_progress());
    assert!(
        p.a.sent
            .iter()
            .rev()
            .take(1)
            .all(|(_, k)| k.detect_mult == 5 && !k.poll)
    );
    assert_eq!(p.b.session.detection_time(), Some(1500 * MS));
}

#[test]
fn jitter_bounds() {
    let i = 300 * MS;
    assert_eq!(jittered(i, 3, 0), 225 * MS);
    assert_eq!(jittered(i, 3, 250), 300 * MS);
    assert_eq!(jittered(i, 1, 0), 225 * MS);
    assert_eq!(jittered(i, 1, 150), 270 * MS);
    for r in (0..100_000u32)
        .map(|k| k.wrapping_mul(2_654_435_761))
        .chain([u32::MAX])
    {
        let j = jittered(i, 3, r);
        assert!(j >= 225 * MS && j <= 300 * MS, "{j:?}");
        let j = jittered(i, 1, r);
        assert!(j >= 225 * MS && j <= 270 * MS, "{j:?} with mult 1");
    }
}

#[test]
fn jitter_in_a_running_session() {
    let cfg = |mult| SessionConfig {
        timers: Timers {
            detect_mult: mult,
            ..Timers::default()
        },
        ..SessionConfig::default()
    };
    let mut p = Pair::new(cfg(1), cfg(3));
    p.advance(Duration::from_secs(5));
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
    let from = p.now;
    p.advance(Duration::from_secs(60));
    let a = p.a.gaps_since(from);
    let b = p.b.gaps_since(from);
    within(&a, 225 * MS, 270 * MS);
    within(&b, 225 * MS, 300 * MS);
    // Spread, not a constant.
    assert!(*a.iter().max().unwrap() - *a.iter().min().unwrap() > 20 * MS);
    assert!(b.iter().max().unwrap() > &(280 * MS) && b.iter().min().unwrap() < &(240 * MS));
}

#[test]
fn bad_timers_are_refused() {
    let mut s = Solo::up();
    let bad = Timers {
        detect_mult: 0,
        ..Timers::default()
    };
    assert!(s.node.session.set_timers(s.now, bad).is_err());
    let bad = Timers {
        desired_min_tx: Duration::ZERO,
        ..Timers::default()
    };
    assert!(s.node.session.set_timers(s.now, bad).is_err());
    let bad = Timers {
        required_min_rx: Duration::from_secs(5000),
        ..Timers::default()
    };
    assert!(s.node.session.set_timers(s.now, bad).is_err());
    assert!(!s.node.session.poll_in_progress());
}
