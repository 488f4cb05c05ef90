//! BFD as the peer table uses it: sessions asked of the driver, BGP closed
//! with Cease / BFD Down (inside a Hard Reset under RFC 8538 unless
//! graceful), routes gone from the kernel, held sessions, damping.

use tabby_bfd_driver::{BfdEvent, Diag};
use tabby_bgp::notification::{Cease, NotificationKind};

use super::super::damping;
use super::*;

const TOR: &str = "198.18.0.1";

/// The test cluster with BFD on the top-of-rack BGPPeer (`value` is the
/// annotation).
fn cluster(value: &str) -> String {
    CLUSTER.replace(
        "metadata: {name: tor}",
        &format!("metadata: {{name: tor, annotations: {{tabby-routing.io/bfd: '{value}'}}}}"),
    )
}

fn tor() -> IpAddr {
    TOR.parse().unwrap()
}

impl Harness {
    fn bfd_wishes(&self) -> Vec<(IpAddr, Option<tabby_bfd_driver::SessionSpec>)> {
        std::mem::take(&mut *self.bfd.lock().unwrap())
    }

    fn bfd(&mut self, ev: BfdEvent, now: Instant) {
        self.daemon.bfd_event(tor(), BfdNotice::Event(ev), now);
        self.daemon.pump(now);
    }

    /// The peer falls silent: Down, Control Detection Time Expired.
    fn bfd_failed(&mut self, now: Instant) {
        self.bfd(
            BfdEvent::Down {
                diag: Diag::ControlDetectionTimeExpired,
            },
            now,
        );
    }

    /// The TOR's session with one route learned, and the FIB drained.
    fn tor_with_a_route(&mut self, n_bit: bool) {
        self.establish_with(TOR, 65000, Ipv4Addr::new(198, 18, 0, 1), n_bit);
        self.announce(
            TOR,
            &[65000],
            &["198.19.7.0/24"],
            Ipv4Addr::new(198, 18, 0, 1),
        );
        self.fib_ops();
        self.commands(TOR);
    }

    fn cease_sent(&self) -> Option<NotificationKind> {
        self.commands(TOR).into_iter().find_map(|c| match c {
            PeerCommand::Cease(n) => Some(n.kind()),
            _ => None,
        })
    }

    /// The session reports what a Cease leads to.
    fn session_closed(&mut self, stale: bool) {
        let id = self.id_of(TOR);
        let stale = stale.then(|| tabby_bgp::fsm::StaleRoutes {
            restart_time: Duration::from_secs(120),
            families: vec![Family::IPV4_UNICAST],
            llgr: Vec::new(),
        });
        self.daemon.session_event(
            id,
            PeerEvent::Down(Down {
                reason: DownReason::NotificationSent(Cease::BfdDown.into()),
                was_established: true,
                stale,
            }),
            Instant::now(),
        );
    }
}

/// The TOR with BFD (`value`: the annotation) and BGP up, one route
/// learned (graceful restart's N bit negotiated when `n_bit`).
fn tor_bfd_up(value: &str, n_bit: bool) -> (Harness, Instant) {
    let mut h = harness(0);
    h.load(&cluster(value));
    h.tor_with_a_route(n_bit);
    let t = Instant::now();
    h.bfd(BfdEvent::Up, t);
    (h, t)
}

fn route_removed(ops: &[FibOp]) -> bool {
    ops.iter()
        .any(|op| matches!(op, FibOp::Remove(p) if *p == "198.19.7.0/24".parse().unwrap()))
}

#[test]
fn a_peer_with_the_annotation_gets_a_bfd_session_from_the_node_address() {
    let mut h = harness(0);
    h.load(&cluster(r#"{"interval":"100ms","multiplier":4}"#));
    let wishes = h.bfd_wishes();
    assert_eq!(wishes.len(), 1, "only the TOR asks for BFD: {wishes:?}");
    let (peer, spec) = &wishes[0];
    assert_eq!(*peer, tor());
    let spec = spec.as_ref().expect("a session");
    assert!(!spec.multihop);
    assert_eq!(spec.local, Some("198.18.0.11".parse().unwrap()));
    assert_eq!(spec.timers.desired_min_tx, Duration::from_millis(100));
    assert_eq!(spec.timers.required_min_rx, Duration::from_millis(100));
    assert_eq!(spec.timers.detect_mult, 4);
    // Not asked to wait: BGP starts at once.
    assert!(matches!(h.commands(TOR).first(), Some(PeerCommand::Start)));
    let st = h.daemon.get_peer(tor(), Instant::now()).unwrap();
    let bfd = st.bfd.expect("BFD in the peer's status");
    assert_eq!(bfd.phase, am::BfdPhase::Starting);
    assert_eq!(bfd.multiplier, 4);
    assert_eq!(bfd.desired_min_tx_us, 100_000);
    // The mesh peer has none.
    let mesh = h
        .daemon
        .get_peer("198.18.0.12".parse::<IpAddr>().unwrap(), Instant::now())
        .unwrap();
    assert!(mesh.bfd.is_none());
}

#[test]
fn bfd_down_closes_bgp_with_cease_bfd_down_and_the_route_leaves_the_kernel() {
    let (mut h, t) = tor_bfd_up("true", false);
    assert!(h.cease_sent().is_none(), "Up closes nothing");
    h.bfd_failed(t);
    // No N bit: plain Cease / BFD Down (RFC 9384).
    assert_eq!(
        h.cease_sent(),
        Some(NotificationKind::Cease(Cease::BfdDown))
    );
    h.session_closed(false);
    assert!(
        route_removed(&h.fib_ops()),
        "the peer's route left the kernel"
    );
    let e = h
        .daemon
        .explain("198.19.7.0/24".parse().unwrap())
        .expect("route explain knows why the route left");
    assert!(e.candidates.is_empty());
    let d = e.departed.expect("departure recorded");
    assert_eq!(d.peer, tor());
    assert!(d.withdrawn);
    assert!(d.reason.contains("BFD went down"), "{}", d.reason);
    let st = h.daemon.get_peer(tor(), Instant::now()).unwrap();
    let bfd = st.bfd.unwrap();
    assert_eq!(bfd.phase, am::BfdPhase::Down);
    assert_eq!(bfd.flaps, 1);
    assert!(!bfd.last_diagnostic.is_empty());
}

#[test]
fn with_the_n_bit_bfd_down_goes_out_as_a_hard_reset_so_nothing_is_kept_stale() {
    let (mut h, t) = tor_bfd_up("true", true);
    h.bfd_failed(t);
    // RFC 8538 §3: the Hard Reset carries BFD Down as its inner subcode.
    assert_eq!(
        h.cease_sent(),
        Some(NotificationKind::Cease(Cease::BfdDown.hard_reset()))
    );
}

#[test]
fn graceful_bfd_lets_graceful_restart_keep_the_routes() {
    let (mut h, t) = tor_bfd_up(r#"{"graceful":true}"#, true);
    h.bfd_failed(t);
    // Plain BFD Down: with the N bit both sides keep the routes as stale.
    assert_eq!(
        h.cease_sent(),
        Some(NotificationKind::Cease(Cease::BfdDown))
    );
    h.session_closed(true);
    assert!(
        !route_removed(&h.fib_ops()),
        "kept as stale for the restart time"
    );
    let e = h.daemon.explain("198.19.7.0/24".parse().unwrap()).unwrap();
    assert!(!e.candidates.is_empty(), "the stale path is still there");
}

#[test]
fn the_peers_admin_down_is_not_a_failure() {
    let (mut h, t) = tor_bfd_up("true", false);
    h.bfd(BfdEvent::AdminDown, t);
    assert!(h.cease_sent().is_none(), "RFC 5882 §3.2: BGP keeps running");
    assert!(!route_removed(&h.fib_ops()));
    let st = h.daemon.get_peer(tor(), t).unwrap().bfd.unwrap();
    assert_eq!(st.phase, am::BfdPhase::AdminDown);
    assert_eq!(st.flaps, 0);
}

#[test]
fn wait_for_up_holds_the_bgp_session_until_bfd_is_up() {
    let mut h = harness(0);
    h.load(&cluster(r#"{"waitForUp":true}"#));
    let cmds = h.commands(TOR);
    assert!(
        !cmds.iter().any(|c| matches!(c, PeerCommand::Start)),
        "held: {cmds:?}"
    );
    let st = h.daemon.get_peer(tor(), Instant::now()).unwrap();
    assert!(st.bfd.as_ref().unwrap().bgp_held);
    assert!(st.info.contains("waiting for BFD"), "{}", st.info);
    let t = Instant::now();
    h.bfd(BfdEvent::Up, t);
    assert!(matches!(h.commands(TOR).as_slice(), [PeerCommand::Start]));
    h.establish(TOR, 65000, Ipv4Addr::new(198, 18, 0, 1));
    h.commands(TOR);
    // Down: closed, and held again until BFD is back.
    h.bfd_failed(t);
    let cmds = h.commands(TOR);
    assert!(
        matches!(cmds.first(), Some(PeerCommand::Cease(_))),
        "{cmds:?}"
    );
    assert!(
        matches!(cmds.get(1), Some(PeerCommand::Stop(_))),
        "{cmds:?}"
    );
    h.bfd(BfdEvent::Up, t);
    assert!(matches!(h.commands(TOR).as_slice(), [PeerCommand::Start]));
}

#[test]
fn a_flapping_session_is_damped_then_released() {
    let mut h = harness(0);
    h.load(&cluster("true"));
    let t = Instant::now();
    let mut at = t;
    let mut held_after = None;
    for i in 0..3 {
        h.establish(TOR, 65000, Ipv4Addr::new(198, 18, 0, 1));
        h.bfd(BfdEvent::Up, at);
        h.commands(TOR);
        h.bfd_failed(at);
        let cmds = h.commands(TOR);
        if cmds.iter().any(|c| matches!(c, PeerCommand::Stop(_))) {
            held_after.get_or_insert(i + 1);
        }
        at += Duration::from_secs(1);
    }
    assert_eq!(
        held_after,
        Some(3),
        "the third quick failure damps, not before"
    );
    let st = h.daemon.get_peer(tor(), at).unwrap().bfd.unwrap();
    assert!(st.damped && st.bgp_held);
    // BFD coming Up does not release a damped session…
    h.bfd(BfdEvent::Up, at);
    assert!(h.commands(TOR).is_empty());
    // …the decayed penalty does, at the deadline the core asks to be woken at.
    let wake = h.daemon.next_deadline().expect("a release deadline");
    assert!(wake > at && wake < at + damping::MAX_SUPPRESS);
    h.daemon.on_timer(wake);
    assert!(matches!(h.commands(TOR).as_slice(), [PeerCommand::Start]));
    assert!(!h.daemon.get_peer(tor(), wake).unwrap().bfd.unwrap().damped);
}

#[test]
fn new_bfd_settings_reach_the_driver_without_resetting_bgp() {
    let mut h = harness(0);
    h.load(&cluster("true"));
    h.tor_with_a_route(false);
    h.bfd_wishes();
    h.load(&cluster(r#"{"interval":"50ms"}"#));
    let wishes = h.bfd_wishes();
    assert_eq!(wishes.len(), 1, "{wishes:?}");
    let spec = wishes[0].1.as_ref().unwrap();
    assert_eq!(spec.timers.desired_min_tx, Duration::from_millis(50));
    let cmds = h.commands(TOR);
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, PeerCommand::Stop(_) | PeerCommand::Cease(_))),
        "BGP untouched: {cmds:?}"
    );
    // Turned off: the session ends.
    h.load(CLUSTER);
    assert_eq!(h.bfd_wishes(), vec![(tor(), None)]);
    assert!(
        h.daemon
            .get_peer(tor(), Instant::now())
            .unwrap()
            .bfd
            .is_none()
    );
}

#[test]
fn a_bad_annotation_is_reported_and_the_peer_runs_without_bfd() {
    let mut h = harness(0);
    h.load(&cluster(r#"{"interval":"1ms"}"#));
    assert!(h.bfd_wishes().is_empty());
    assert!(matches!(h.commands(TOR).first(), Some(PeerCommand::Start)));
    let health = h.daemon.health();
    assert!(
        health
            .reasons
            .iter()
            .any(|r| r.contains("tabby-routing.io/bfd")),
        "{:?}",
        health.reasons
    );
}

#[test]
fn a_removed_peer_ends_its_bfd_session() {
    let mut h = harness(0);
    h.load(&cluster("true"));
    h.bfd_wishes();
    let without_tor = CLUSTER.replace(
        "kind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 198.18.0.1, asNumber: 65000}",
        "kind: IPPool\nmetadata: {name: spare}\nspec: {cidr: 100.65.0.0/16, disabled: true}",
    );
    assert_ne!(without_tor, CLUSTER);
    h.load(&without_tor);
    assert_eq!(h.bfd_wishes(), vec![(tor(), None)]);
}

#[test]
fn bfd_that_cannot_run_releases_a_held_session() {
    let mut h = harness(0);
    h.load(&cluster(r#"{"waitForUp":true}"#));
    h.commands(TOR);
    h.daemon.bfd_event(
        tor(),
        BfdNotice::Unavailable("port 3784 in use".into()),
        Instant::now(),
    );
    assert!(matches!(h.commands(TOR).as_slice(), [PeerCommand::Start]));
    let st = h
        .daemon
        .get_peer(tor(), Instant::now())
        .unwrap()
        .bfd
        .unwrap();
    assert_eq!(st.phase, am::BfdPhase::Unavailable);
    assert_eq!(st.detail, "port 3784 in use");
}
