//! The session table's unit tests: demultiplexing and the timer heap
//! without sockets. The sending side has no family enabled, so every send
//! fails (and is counted) and no packet leaves the process.

use super::*;
use crate::transport::MULTIHOP_PORT;

const A: &str = "198.18.0.1";
const B: &str = "198.18.0.2";

fn table() -> (SessionTable, broadcast::Receiver<(SessionId, BfdEvent)>) {
    let (tx, rx) = broadcast::channel(16);
    let send = SendSockets::open(None, None, Some(50_000), || 0).unwrap();
    (SessionTable::new(send, tx), rx)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn packet(my: u32, your: u32, state: State) -> Vec<u8> {
    Packet {
        diag: Diag::NoDiagnostic,
        state,
        poll: false,
        fin: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: my,
        your_discriminator: your,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
        auth: None,
    }
    .encode()
}

fn datagram(from: &str, to: &str, port_src: u16, ttl: u8, ifindex: u32) -> Datagram {
    Datagram {
        len: 24,
        source: SocketAddr::new(ip(from), port_src),
        destination: Some(ip(to)),
        ifindex: Some(ifindex),
        ttl: Some(ttl),
    }
}

fn dropped(t: &SessionTable, r: DropReason) -> u64 {
    t.stats().dropped(r)
}

#[test]
fn first_packets_match_by_address_and_interface() {
    let (mut t, _rx) = table();
    let now = Instant::now();
    let id = t
        .add(
            now,
            SessionSpec::single_hop(ip(B), Some(ip(A)), None),
            Some(7),
        )
        .unwrap();
    let ours = t.info(now, id).unwrap().local_discriminator;
    let down = packet(0x1234, 0, State::Down);
    // Wrong interface, wrong destination, wrong source: nothing.
    t.receive(
        now,
        HopMode::SingleHop,
        &datagram(B, A, 49152, 255, 8),
        &down,
    );
    t.receive(
        now,
        HopMode::SingleHop,
        &datagram(B, "198.18.0.9", 49152, 255, 7),
        &down,
    );
    t.receive(
        now,
        HopMode::SingleHop,
        &datagram("198.18.0.3", A, 49152, 255, 7),
        &down,
    );
    assert_eq!(dropped(&t, DropReason::NoSessionForAddress), 3);
    // On the multihop port: no multihop session.
    t.receive(
        now,
        HopMode::Multihop,
        &datagram(B, A, 49152, 255, 7),
        &down,
    );
    assert_eq!(dropped(&t, DropReason::NoSessionForAddress), 4);
    assert_eq!(t.info(now, id).unwrap().state, State::Down);
    // The right one: Down -> Init (RFC 5880 §6.8.6).
    t.receive(
        now,
        HopMode::SingleHop,
        &datagram(B, A, 49152, 255, 7),
        &down,
    );
    let i = t.info(now, id).unwrap();
    assert_eq!((i.state, i.remote_discriminator), (State::Init, 0x1234));
    assert_eq!(i.counters.packets_in, 1);
    // From now on by discriminator: Init from the peer -> Up.
    let init = packet(0x1234, ours, State::Init);
    t.receive(
        now,
        HopMode::SingleHop,
        &datagram(B, A, 49152, 255, 7),
        &init,
    );
    assert_eq!(t.info(now, id).unwrap().state, State::Up);
    assert_eq!(t.stats().packets_in, 6);
    // Every send fails (no family enabled) and is counted.
    t.fire_timers(now);
    assert!(t.stats().send_errors > 0);
    assert_eq!(t.stats().packets_out, 0);
}

#[test]
fn discriminator_matches_must_come_the_session_s_way() {
    let (mut t, mut rx) = table();
    let now = Instant::now();
    let id = t
        .add(
            now,
            SessionSpec::single_hop(ip(B), Some(ip(A)), None),
            Some(7),
        )
        .unwrap();
    let ours = t.info(now, id).unwrap().local_discriminator;
    let up = |t: &mut SessionTable| {
        t.receive(
            now,
            HopMode::SingleHop,
            &datagram(B, A, 1, 255, 7),
            &packet(9, 0, State::Down),
        );
        t.receive(
            now,
            HopMode::SingleHop,
            &datagram(B, A, 1, 255, 7),
            &packet(9, ours, State::Up),
        );
    };
    up(&mut t);
    assert_eq!(rx.try_recv().unwrap(), (id, BfdEvent::Up));
    let admin = packet(9, ours, State::AdminDown);
    let cases = [
        (
            HopMode::SingleHop,
            datagram(B, A, 1, 254, 7),
            DropReason::BadTtl,
        ),
        (
            HopMode::SingleHop,
            datagram("198.18.0.3", A, 1, 255, 7),
            DropReason::PeerAddressMismatch,
        ),
        (
            HopMode::SingleHop,
            datagram(B, A, 1, 255, 8),
            DropReason::LocalMismatch,
        ),
        (
            HopMode::Multihop,
            datagram(B, A, 1, 255, 7),
            DropReason::HopModeMismatch,
        ),
    ];
    for (hop, d, reason) in cases {
        t.receive(now, hop, &d, &admin);
        assert_eq!(dropped(&t, reason), 1, "{reason}");
    }
    let mut no_ttl = datagram(B, A, 1, 255, 7);
    no_ttl.ttl = None;
    t.receive(now, HopMode::SingleHop, &no_ttl, &admin);
    assert_eq!(dropped(&t, DropReason::MissingControlData), 1);
    t.receive(
        now,
        HopMode::SingleHop,
        &datagram(B, A, 1, 255, 7),
        &packet(9, ours ^ 1, State::Up),
    );
    assert_eq!(dropped(&t, DropReason::UnknownDiscriminator), 1);
    t.receive(
        now,
        HopMode::SingleHop,
        &datagram(B, A, 1, 255, 7),
        &admin[..20],
    );
    assert_eq!(
        dropped(
            &t,
            DropReason::Malformed(MalformedKind::LengthExceedsPayload)
        ),
        1
    );
    // None of it reached the session.
    assert_eq!(t.info(now, id).unwrap().state, State::Up);
    assert!(rx.try_recv().is_err());
    // The real AdminDown does: an event, not a failure.
    t.receive(now, HopMode::SingleHop, &datagram(B, A, 1, 255, 7), &admin);
    assert_eq!(rx.try_recv().unwrap(), (id, BfdEvent::AdminDown));
    assert_eq!(t.info(now, id).unwrap().flaps, 1);
}

#[test]
fn multihop_ttl_is_the_configured_minimum() {
    let (mut t, _rx) = table();
    let now = Instant::now();
    let mut spec = SessionSpec::multihop(ip(B), ip(A));
    spec.min_ttl = 250;
    let id = t.add(now, spec, None).unwrap();
    let down = packet(5, 0, State::Down);
    t.receive(now, HopMode::Multihop, &datagram(B, A, 1, 249, 3), &down);
    assert_eq!(dropped(&t, DropReason::BadTtl), 1);
    assert_eq!(t.info(now, id).unwrap().counters.discarded, 1);
    // Any interface; TTL at the minimum.
    t.receive(now, HopMode::Multihop, &datagram(B, A, 1, 250, 3), &down);
    assert_eq!(t.info(now, id).unwrap().state, State::Init);
    assert_eq!(MULTIHOP_PORT, HopMode::Multihop.port());
}

#[test]
fn duplicates_removal_and_timers() {
    let (mut t, mut rx) = table();
    let now = Instant::now();
    let spec = SessionSpec::single_hop(ip(B), Some(ip(A)), None);
    let id = t.add(now, spec.clone(), None).unwrap();
    assert_eq!(t.add(now, spec.clone(), None), Err(BfdError::Duplicate(id)));
    // The same peer on another interface is another session.
    let other = t.add(now, spec.clone(), Some(4)).unwrap();
    assert_ne!(id, other);
    // The first transmission is due at once; it fails (no sockets) and
    // the next is scheduled about a second later (not Up: §6.8.3).
    assert_eq!(t.next_deadline(), Some(now));
    t.fire_timers(now);
    let next = t.next_deadline().unwrap();
    assert!(
        next > now && next <= now + Duration::from_secs(1),
        "{:?}",
        next - now
    );
    // Nothing was ever sent: removal is immediate.
    t.remove(now, id).unwrap();
    assert_eq!(t.remove(now, id), Err(BfdError::UnknownSession(id)));
    assert!(t.info(now, id).is_err());
    assert_eq!(t.stats().sessions, 1);
    // A session heard from comes Up, then detection expires: diag 1.
    let ours = t.info(now, other).unwrap().local_discriminator;
    let d = datagram(B, A, 1, 255, 4);
    t.receive(now, HopMode::SingleHop, &d, &packet(9, 0, State::Down));
    t.receive(now, HopMode::SingleHop, &d, &packet(9, ours, State::Up));
    assert_eq!(rx.try_recv().unwrap(), (other, BfdEvent::Up));
    let dt = t.info(now, other).unwrap().detection_time.unwrap();
    assert_eq!(dt, Duration::from_millis(900));
    t.fire_timers(now + dt - Duration::from_millis(1));
    assert!(rx.try_recv().is_err());
    t.fire_timers(now + dt);
    assert_eq!(
        rx.try_recv().unwrap(),
        (
            other,
            BfdEvent::Down {
                diag: Diag::ControlDetectionTimeExpired
            }
        )
    );
    // Nothing ever left (every send failed): forgotten at once.
    t.remove_all(now + dt);
    assert!(t.is_empty());
}
