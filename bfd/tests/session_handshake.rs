//! The three-way handshake, failure detection, AdminDown and the packets
//! §6.8.6 discards, with two sessions back to back on a virtual clock.

#[path = "session_util/mod.rs"]
mod util;

use std::time::Duration;

use tabby_bfd::packet::{Diag, State};
use tabby_bfd::session::{ClientSignal, TimerKind};
use util::{Pair, Solo};

const MS: Duration = Duration::from_millis(1);

#[test]
fn back_to_back_sessions_reach_up() {
    let mut p = Pair::default_pair();
    let start = p.now;
    p.advance(Duration::from_secs(3));
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
    // A heard B's Init before sending anything but Down: Down → Up; B saw
    // A's Down first: Down → Init → Up.
    let walk = |n: &util::Node| n.changes.iter().map(|c| c.to).collect::<Vec<_>>();
    assert_eq!(walk(&p.a), vec![State::Up]);
    assert_eq!(walk(&p.b), vec![State::Init, State::Up]);
    for n in [&p.a, &p.b] {
        let up = n.last_change();
        assert_eq!(up.signal, ClientSignal::Up);
        assert_eq!(up.diag, Diag::NoDiagnostic);
        assert!(
            up.at - start <= Duration::from_secs(1),
            "Up within one slow interval"
        );
        // The discriminators were learnt.
        assert_ne!(n.session.remote_discriminator(), 0);
        assert!(n.discards.is_empty(), "{:?}", n.discards);
    }
    // The Up packets carry both discriminators.
    let (_, last) = p.a.sent.last().unwrap();
    assert_eq!(last.state, State::Up);
    assert_eq!(last.my_discriminator, 0x0a0a_0001);
    assert_eq!(last.your_discriminator, 0x0b0b_0002);
    assert!(!last.demand, "we never ask for Demand mode");
    assert_eq!(last.required_min_echo_rx_us, 0, "no Echo function");
}

#[test]
fn first_packets_are_down_with_your_discriminator_zero() {
    let mut p = Pair::default_pair();
    p.cut_b = true;
    p.advance(Duration::from_secs(3));
    let first = &p.a.sent[0].1;
    assert_eq!(first.state, State::Down);
    assert_eq!(first.your_discriminator, 0);
    assert_eq!(
        first.desired_min_tx_us, 1_000_000,
        "§6.8.3 floor while not Up"
    );
    assert_eq!(first.required_min_rx_us, 300_000);
    assert_eq!(first.detect_mult, 3);
}

#[test]
fn detection_timeout_goes_down_with_diag_1_at_the_detection_time() {
    let mut p = Pair::up();
    assert_eq!(p.a.session.detection_time(), Some(900 * MS));
    p.cut_b = true;
    p.advance(Duration::from_secs(3));
    let last_heard = p.a.accepted.last().unwrap().0;
    let down = p.a.last_change();
    assert_eq!((down.from, down.to), (State::Up, State::Down));
    assert_eq!(down.diag, Diag::ControlDetectionTimeExpired);
    assert_eq!(down.signal, ClientSignal::Failed);
    assert_eq!(
        down.at,
        last_heard + 900 * MS,
        "exactly 3 × 300 ms after B's last packet"
    );
    assert_eq!(
        p.a.session.remote_discriminator(),
        0,
        "§6.8.1: forgotten after a Detection Time"
    );
    // B hears A's Down (diag 1) and goes Down: neighbor signaled session down.
    let b = p.b.changes[p.b.changes.len() - 2..].to_vec();
    // B leaves Up, then hears A's Down packets (it alone is cut) and
    // goes Init.
    assert_eq!(b[1].to, State::Init);
    let b = b[0];
    assert_eq!((b.from, b.to), (State::Up, State::Down));
    assert_eq!(b.diag, Diag::NeighborSignaledSessionDown);
    assert!(b.signal.is_failure());
    assert!(
        p.b.accepted
            .iter()
            .any(|(_, pk)| pk.diag == Diag::ControlDetectionTimeExpired)
    );
    // The link heals: both come back Up.
    p.cut_b = false;
    p.advance(Duration::from_secs(5));
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
}

#[test]
fn no_detection_before_the_peer_is_heard() {
    let mut p = Pair::default_pair();
    p.cut_b = true;
    p.advance(Duration::from_secs(10));
    assert!(p.a.changes.is_empty());
    assert_eq!(p.a.session.timer(TimerKind::Detect), None);
    assert_eq!(p.a.session.detection_time(), None);
}

#[test]
fn init_times_out_without_signalling_clients() {
    let mut p = Pair::default_pair();
    // B hears A, A never hears B: B goes Init; B stays Init while A's Down
    // packets keep coming (§6.8.6: Init ignores Down), then times out when
    // A falls silent.
    p.cut_b = true;
    p.advance(Duration::from_secs(10));
    assert_eq!(p.b.state(), State::Init);
    p.cut_a = true;
    let silent = p.now;
    p.advance(Duration::from_secs(10));
    assert_eq!(
        p.b.last_change().at,
        p.b.accepted.last().unwrap().0 + 3000 * MS
    );
    assert!(p.b.last_change().at > silent);
    let walk: Vec<_> =
        p.b.changes
            .iter()
            .map(|c| (c.to, c.diag, c.signal))
            .collect();
    assert_eq!(
        walk[0],
        (State::Init, Diag::NoDiagnostic, ClientSignal::Nothing)
    );
    assert_eq!(
        walk[1],
        (
            State::Down,
            Diag::ControlDetectionTimeExpired,
            ClientSignal::Nothing
        )
    );
}

#[test]
fn peer_admin_down_is_down_with_diag_3_and_not_a_failure() {
    let mut p = Pair::up();
    p.b.session.admin_down(p.now);
    p.drain();
    let b = p.b.last_change();
    assert_eq!((b.from, b.to), (State::Up, State::AdminDown));
    assert_eq!(b.diag, Diag::AdministrativelyDown);
    assert_eq!(b.signal, ClientSignal::LocalAdminDown);
    assert!(!b.signal.is_failure());
    // A hears AdminDown with B's next packet.
    p.advance(Duration::from_millis(400));
    let a = p.a.last_change();
    assert_eq!((a.from, a.to), (State::Up, State::Down));
    assert_eq!(a.diag, Diag::NeighborSignaledSessionDown);
    assert_eq!(a.signal, ClientSignal::PeerAdminDown);
    assert!(!a.signal.is_failure(), "RFC 5882 §4.1: BGP stays up");
    // A stays Down while B keeps sending AdminDown (at the slow rate), and
    // B ignores A's packets.
    let changes = p.a.changes.len();
    p.advance(Duration::from_secs(10));
    assert_eq!(p.a.changes.len(), changes);
    assert_eq!(p.a.state(), State::Down);
    assert_eq!(p.b.state(), State::AdminDown);
    let admin_down_sent =
        p.b.sent
            .iter()
            .filter(|(_, k)| k.state == State::AdminDown)
            .count();
    assert!(admin_down_sent >= 10, "AdminDown keeps being signalled");
    assert_eq!(p.b.session.timer(TimerKind::Detect), None);
    // Admin up: the handshake runs again.
    p.b.session.admin_up(p.now);
    p.advance(Duration::from_secs(5));
    assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
    assert_eq!(p.a.last_change().signal, ClientSignal::Up);
}

#[test]
fn peer_signalling_down_while_up_is_a_failure() {
    let mut s = Solo::up();
    s.deliver(&s.peer_packet(State::Down)).unwrap();
    let c = s.node.last_change();
    assert_eq!(
        (c.from, c.to, c.diag),
        (State::Up, State::Down, Diag::NeighborSignaledSessionDown)
    );
    assert_eq!(c.signal, ClientSignal::Failed);
}

#[test]
fn up_in_down_is_ignored() {
    // §6.8.6: Down moves only on Down or Init.
    let mut s = Solo::new(Default::default());
    s.deliver(&s.peer_packet(State::Up)).unwrap();
    assert_eq!(s.node.state(), State::Down);
    assert!(s.node.changes.is_empty());
}

#[test]
fn poll_gets_an_immediate_final() {
    let mut s = Solo::up();
    let sent = s.node.sent.len();
    let mut poll = s.peer_packet(State::Up);
    poll.poll = true;
    poll.desired_min_tx_us = 500_000;
    s.deliver(&poll).unwrap();
    let (at, reply) = s.node.sent.last().unwrap();
    assert_eq!(s.node.sent.len(), sent + 1, "one packet, at once");
    assert_eq!(*at, s.now);
    assert!(reply.fin && !reply.poll);
    // The peer's slower Desired Min TX lengthens our Detection Time at once.
    assert_eq!(s.node.session.detection_time(), Some(1500 * MS));
}

#[test]
fn final_without_a_poll_is_ignored() {
    let mut s = Solo::up();
    let mut fin = s.peer_packet(State::Up);
    fin.fin = true;
    s.deliver(&fin).unwrap();
    assert_eq!(s.node.state(), State::Up);
    assert!(!s.node.session.poll_in_progress());
}
