//! Two speakers, each a `tabby-bgp` session FSM plus a RIB, wired in memory
//! with a virtual clock: the daemon's glue in miniature. A node restarts its
//! TCP session; the route reflector keeps the routes as stale (RFC 4724),
//! the session comes back, and End-of-RIB sweeps what was not re-announced.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tabby_bgp::Asn;
use tabby_bgp::fsm::{Action, ConnectionId, Event, PeerAs, Session, SessionConfig};
use tabby_bgp::message::Update;
use tabby_rib::*;

const AS: u32 = 64512;

struct Node {
    rib: Rib,
    sess: Session,
    peer: PeerId,
    conn: Option<ConnectionId>,
    log: Vec<String>,
}

fn node(addr: &str, peer_addr: &str, passive: bool, rr_client: bool) -> Node {
    let mut c = RibConfig::new(v4(addr), Asn(AS));
    c.cluster_id = Some(v4("198.18.0.100"));
    let mut rib = Rib::new(c);
    let mut p = PeerConfig::new(ip(peer_addr), Asn(AS));
    p.rr_client = rr_client;
    p.local_v4 = Some(v4(addr));
    rib.add_peer(PeerId(1), p).unwrap();
    let mut sc = SessionConfig::new(Asn(AS), PeerAs::Internal, v4(addr));
    sc.passive = passive;
    Node {
        rib,
        sess: Session::new(sc),
        peer: PeerId(1),
        conn: None,
        log: Vec::new(),
    }
}

/// Runs both nodes until nothing moves. Returns whether anything happened.
fn step(a: &mut Node, b: &mut Node, now: Instant) -> bool {
    let mut moved = false;
    for _ in 0..200 {
        let mut any = false;
        for dir in 0..2 {
            let (x, y) = if dir == 0 {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            // RIB output to the session.
            for o in x.rib.drain_outgoing() {
                if o.to.includes(x.peer) {
                    let _ = x.sess.send_batch(now, &o.batch, x.peer.0);
                }
            }
            while let Some(act) = x.sess.poll_action() {
                any = true;
                match act {
                    Action::Connect(c) => {
                        x.conn = Some(c);
                        let yc = y.sess.next_connection_id();
                        y.conn = Some(yc);
                        y.sess.handle_event(now, Event::Accepted(yc));
                        x.sess.handle_event(now, Event::Connected(c));
                    }
                    Action::Send { data, .. } => {
                        if let Some(yc) = y.conn {
                            y.sess.handle_event(now, Event::Received(yc, data));
                        }
                    }
                    Action::Close(_) => {
                        if let Some(yc) = y.conn.take() {
                            y.sess.handle_event(now, Event::Closed(yc));
                        }
                        x.conn = None;
                    }
                    Action::Established(n) => {
                        x.log.push("established".into());
                        x.rib.peer_up(x.peer, PeerSession::from(&*n), now).unwrap();
                    }
                    Action::Down(d) => {
                        x.log.push(format!(
                            "down: {} (stale kept: {})",
                            d.reason,
                            d.stale.is_some()
                        ));
                        if d.was_established {
                            x.rib.peer_down(x.peer, DownKind::from(&d), now).unwrap();
                        }
                    }
                    Action::Update(u) => {
                        x.rib.apply_update(x.peer, &u).unwrap();
                    }
                    Action::EndOfRib(f) => {
                        x.log.push(format!("End-of-RIB {f}"));
                        x.rib.apply_update(x.peer, &Update::end_of_rib(f)).unwrap();
                    }
                    Action::StateChanged { .. } | Action::RouteRefresh(_) => {}
                }
            }
        }
        if !any {
            return moved;
        }
        moved = true;
    }
    panic!("sessions did not settle");
}

/// Advances the virtual clock to the next FSM or RIB deadline, at most `by`.
fn advance(a: &mut Node, b: &mut Node, now: &mut Instant, by: Duration) {
    let end = *now + by;
    loop {
        let next = [
            a.sess.poll_timeout(),
            b.sess.poll_timeout(),
            a.rib.next_deadline(),
            b.rib.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t <= end)
        .min();
        let Some(t) = next else { break };
        *now = t.max(*now);
        for x in [&mut *a, &mut *b] {
            if x.sess.poll_timeout().is_some_and(|d| d <= *now) {
                x.sess.handle_event(*now, Event::Timer);
            }
            if x.rib.next_deadline().is_some_and(|d| d <= *now) {
                x.rib.on_timer(*now);
            }
        }
        step(a, b, *now);
    }
    *now = end;
}

#[test]
fn session_restart_through_the_fsm_keeps_stale_routes_until_end_of_rib() {
    let mut now = Instant::now();
    let mut rr = node("198.18.0.1", "198.18.0.2", true, true);
    let mut n = node("198.18.0.2", "198.18.0.1", false, false);
    for p in ["100.64.1.0/26", "100.64.2.0/26"] {
        n.rib.originate(net(p), "ipam", LocalRoute::default());
    }
    rr.sess.handle_event(now, Event::Start);
    n.sess.handle_event(now, Event::Start);
    step(&mut rr, &mut n, now);
    advance(&mut rr, &mut n, &mut now, Duration::from_secs(5));
    assert!(
        rr.rib.best(&net("100.64.1.0/26")).is_some(),
        "rr log: {:?}",
        rr.log
    );
    assert!(rr.rib.best(&net("100.64.2.0/26")).is_some());

    // The node's TCP connection dies (no NOTIFICATION): GR applies.
    let (rc, nc) = (rr.conn.take().unwrap(), n.conn.take().unwrap());
    rr.sess.handle_event(now, Event::Closed(rc));
    n.sess.handle_event(now, Event::Closed(nc));
    n.rib.withdraw_local(net("100.64.2.0/26"), "ipam");
    step(&mut rr, &mut n, now);
    let b = rr.rib.best(&net("100.64.2.0/26")).expect("kept as stale");
    assert!(b.stale);

    // Reconnection after the idle hold; the node re-announces one route.
    advance(&mut rr, &mut n, &mut now, Duration::from_secs(30));
    assert!(
        rr.log.iter().filter(|l| *l == "established").count() >= 2,
        "{:?}",
        rr.log
    );
    assert!(
        rr.log.iter().any(|l| l.starts_with("End-of-RIB")),
        "{:?}",
        rr.log
    );
    assert!(!rr.rib.best(&net("100.64.1.0/26")).unwrap().stale);
    assert!(
        rr.rib.best(&net("100.64.2.0/26")).is_none(),
        "swept at End-of-RIB"
    );
    assert!(
        rr.log
            .iter()
            .any(|l| l == "down: TCP connection lost (stale kept: true)"),
        "{:?}",
        rr.log
    );
}
