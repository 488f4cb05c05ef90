//! Two sessions back to back with a virtual clock: establishment,
//! collisions, timers, back-off, graceful restart.

#[path = "fsm_util/mod.rs"]
mod util;

use std::time::Duration;

use tabby_bgp::fsm::{Action, DownReason, Event, GrConfig, State};
use tabby_bgp::message::{RefreshSubtype, Update};
use tabby_bgp::notification::{
    Cease, Notification, NotificationKind as K, OpenMessageError, PrefixLimit,
};
use tabby_bgp::types::Family;
use util::{Pair, Side, config};

#[test]
fn establishes_and_negotiates() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    assert!(p.both_established());
    assert_eq!(p.links(), 1, "a collision leaves exactly one connection");
    assert_eq!(p.a.established_count(), 1);
    assert_eq!(p.b.established_count(), 1);
    let neg = p.a.session.negotiated().expect("negotiated");
    assert!(neg.families.contains(&Family::IPV4_UNICAST));
    assert!(neg.families.contains(&Family::IPV6_UNICAST));
    assert!(neg.four_octet_as && neg.ebgp && neg.route_refresh);
    assert_eq!(neg.hold_time, Duration::from_secs(90));
    assert_eq!(neg.keepalive, Duration::from_secs(30));
    assert!(neg.gr_notification);
    // The state walk of one side ends in Established.
    assert_eq!(p.a.states().last(), Some(&State::Established));
}

#[test]
fn passive_side_never_connects() {
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.hold_time = 30;
    let mut b = config(65002, 65001, [198, 18, 0, 2]);
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.event(Side::B, Event::Start);
    p.drive();
    assert_eq!(p.b.session.state(), State::Active);
    p.event(Side::A, Event::Start);
    p.drive();
    assert!(p.both_established());
    assert!(p.b.connects.is_empty());
    assert_eq!(p.a.connects.len(), 1);
    assert_eq!(p.initiators(), vec![Side::A]);
    // Hold time is the smaller of both.
    assert_eq!(
        p.b.session.negotiated().map(|n| n.hold_time),
        Some(Duration::from_secs(30))
    );
}

fn collision(a_id: [u8; 4], b_id: [u8; 4]) -> Pair {
    let mut p = Pair::new(config(65001, 65002, a_id), config(65002, 65001, b_id));
    // Both start in the same instant: two connections cross.
    p.start_both();
    assert_eq!(p.a.connects.len(), 1);
    assert_eq!(p.b.connects.len(), 1);
    assert!(p.both_established());
    assert_eq!(p.links(), 1);
    assert_eq!(p.a.established_count(), 1);
    assert_eq!(p.b.established_count(), 1);
    assert!(p.a.downs().iter().all(|d| !d.was_established));
    let ceased =
        p.a.notifications_sent()
            .into_iter()
            .chain(p.b.notifications_sent())
            .filter(|n| n.kind() == K::Cease(Cease::ConnectionCollisionResolution))
            .count();
    assert!(ceased >= 1, "the losing connection gets Cease/7");
    p
}

#[test]
fn collision_keeps_connection_of_higher_router_id() {
    // RFC 4271 §6.8: B has the higher identifier, B's connection survives.
    let p = collision([198, 18, 0, 1], [198, 18, 0, 2]);
    assert_eq!(p.initiators(), vec![Side::B]);
    let p = collision([198, 18, 0, 9], [198, 18, 0, 2]);
    assert_eq!(p.initiators(), vec![Side::A]);
}

#[test]
fn hold_timer_expiry_sends_4_and_keeps_stale_with_n_bit() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    assert!(p.both_established());
    // A's packets vanish: B hears nothing for the hold time.
    p.blackhole = Some(Side::A);
    p.advance(Duration::from_secs(89));
    assert_eq!(p.b.session.state(), State::Established);
    p.advance(Duration::from_secs(2));
    assert_ne!(p.b.session.state(), State::Established);
    let sent = p.b.notifications_sent();
    assert_eq!(
        sent.last().map(Notification::kind),
        Some(K::HoldTimerExpired)
    );
    let down = p.b.downs()[0];
    assert!(down.was_established);
    assert!(
        matches!(&down.reason, DownReason::NotificationSent(n) if n.kind() == K::HoldTimerExpired)
    );
    // RFC 8538: N bit negotiated, so the routes stay as stale.
    let stale = down.stale.as_ref().expect("graceful restart applies");
    assert_eq!(stale.restart_time, Duration::from_secs(120));
    assert_eq!(stale.families.len(), 2);
    // A received the NOTIFICATION: it keeps B's routes too.
    let down = p.a.downs()[0];
    assert!(
        matches!(&down.reason, DownReason::NotificationReceived(n) if n.kind() == K::HoldTimerExpired)
    );
    assert!(down.stale.is_some());
}

#[test]
fn keepalive_every_third_of_hold_time() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    let before = p.a.keepalives_sent();
    p.advance(Duration::from_secs(300));
    let sent = p.a.keepalives_sent() - before;
    assert_eq!(sent, 10, "one KEEPALIVE per 30 s over 300 s");
    assert!(p.both_established());
    assert!(p.a.downs().is_empty() && p.b.downs().is_empty());
}

#[test]
fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.hold_time = 0;
    let mut p = Pair::new(a, config(65002, 65001, [198, 18, 0, 2]));
    p.start_both();
    assert!(p.both_established());
    let before = p.a.keepalives_sent() + p.b.keepalives_sent();
    p.blackhole = Some(Side::A);
    p.advance(Duration::from_secs(3600));
    assert!(p.both_established());
    assert_eq!(p.a.keepalives_sent() + p.b.keepalives_sent(), before);
}

#[test]
fn updates_wait_for_established_and_are_delivered() {
    let mut p = Pair::default_ebgp();
    let now = p.now;
    assert!(p.a.session.send_update(now, &Update::default()).is_err());
    p.start_both();
    p.a.session
        .send_update(now, &Update::end_of_rib(Family::IPV6_UNICAST))
        .expect("send");
    p.a.session
        .send_update(now, &Update::end_of_rib(Family::IPV4_UNICAST))
        .expect("send");
    p.drive();
    let eors: Vec<Family> =
        p.b.log
            .iter()
            .filter_map(|a| match a {
                Action::EndOfRib(f) => Some(*f),
                _ => None,
            })
            .collect();
    assert_eq!(eors, vec![Family::IPV6_UNICAST, Family::IPV4_UNICAST]);
}

#[test]
fn route_refresh_request_is_delivered() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    let now = p.now;
    p.a.session
        .request_route_refresh(now, Family::IPV4_UNICAST)
        .expect("refresh");
    p.drive();
    assert!(p.b.log.iter().any(|a| matches!(
        a,
        Action::RouteRefresh(rr) if rr.family == Family::IPV4_UNICAST && rr.subtype == RefreshSubtype::Request
    )));
    // A family that was not negotiated is refused locally.
    let other = Family::new(tabby_bgp::Afi(1), tabby_bgp::Safi(2));
    assert!(p.a.session.request_route_refresh(now, other).is_err());
}

#[test]
fn connect_retry_while_peer_unreachable() {
    let mut p = Pair::default_ebgp();
    p.b.listening = false;
    p.event(Side::A, Event::Start);
    p.drive();
    assert_eq!(p.a.session.state(), State::Active);
    p.advance(Duration::from_secs(20));
    // Attempts at 0, 5, 10, 15 and 20 s.
    assert_eq!(p.a.connects.len(), 5);
    p.b.listening = true;
    p.event(Side::B, Event::Start);
    p.advance(Duration::from_secs(5));
    assert!(p.both_established());
}

#[test]
fn idle_hold_backs_off_for_a_flapping_peer() {
    let a = config(65001, 65002, [198, 18, 0, 1]);
    // B expects another AS: every OPEN from A is refused with 2/2.
    let mut b = config(65002, 65009, [198, 18, 0, 2]);
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    p.advance(Duration::from_secs(200));
    let t = &p.a.connects;
    assert!(t.len() >= 6, "attempts: {}", t.len());
    let gaps: Vec<u64> = t.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    // 1, 2, 4, 8, 16, 32, 64, then the 120 s ceiling.
    assert_eq!(&gaps[..6], &[1, 2, 4, 8, 16, 32]);
    assert!(gaps.iter().all(|g| *g <= 120));
    let down = p.a.downs()[0];
    assert!(matches!(&down.reason, DownReason::NotificationReceived(n)
            if matches!(n.kind(), K::Open(OpenMessageError::BadPeerAs(_)))));
    assert!(!down.was_established);
    assert_eq!(p.a.session.state(), State::Idle);
}

#[test]
fn send_hold_timer_expires_when_peer_stops_reading() {
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.send_hold = Some(Duration::from_secs(20));
    let mut p = Pair::new(a, config(65002, 65001, [198, 18, 0, 2]));
    p.start_both();
    // A's writes make no progress from now on (TCP zero window).
    p.stalled = Some(Side::A);
    // First KEEPALIVE waits at 30 s, nothing moves for 20 s: expiry at 50 s.
    p.advance(Duration::from_secs(49));
    assert_eq!(p.a.session.state(), State::Established);
    p.advance(Duration::from_secs(2));
    let down = p.a.downs()[0];
    assert!(
        matches!(&down.reason, DownReason::NotificationSent(n) if n.kind() == K::SendHoldTimerExpired)
    );
    assert!(down.was_established);
}

#[test]
fn admin_stop_sends_shutdown_communication() {
    // Without graceful restart: a plain Cease/2 with the RFC 9003 text.
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.graceful_restart = None;
    let mut p = Pair::new(a, config(65002, 65001, [198, 18, 0, 2]));
    p.start_both();
    p.event(
        Side::A,
        Event::Stop {
            reason: Some("planned maintenance, back at 10:00".into()),
        },
    );
    p.drive();
    assert_eq!(p.a.session.state(), State::Idle);
    let down = p.b.downs()[0];
    let DownReason::NotificationReceived(n) = &down.reason else {
        panic!("expected a NOTIFICATION, got {:?}", down.reason);
    };
    assert_eq!(
        n.kind(),
        K::Cease(Cease::AdministrativeShutdown(Some(
            "planned maintenance, back at 10:00".into()
        )))
    );
    assert_eq!(
        n.shutdown_message().as_deref(),
        Some("planned maintenance, back at 10:00")
    );
    assert!(down.stale.is_none());
    assert!(matches!(
        p.a.downs()[0].reason,
        DownReason::AdminStop(Some(_))
    ));
    // A stays down: no new attempt however long we wait.
    let attempts = p.a.connects.len();
    p.advance(Duration::from_secs(600));
    assert_eq!(p.a.connects.len(), attempts);
    assert_eq!(p.a.session.state(), State::Idle);
}

#[test]
fn admin_stop_with_n_bit_is_a_hard_reset_and_flushes() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    p.event(
        Side::A,
        Event::Stop {
            reason: Some("bye".into()),
        },
    );
    p.drive();
    let down = p.b.downs()[0];
    let DownReason::NotificationReceived(n) = &down.reason else {
        panic!("expected a NOTIFICATION");
    };
    // RFC 8538 §3: Hard Reset carrying Cease/2 and its data.
    assert_eq!(
        n.kind(),
        K::Cease(Cease::AdministrativeShutdown(Some("bye".into())).hard_reset())
    );
    assert_eq!(n.data, b"\x02\x03bye");
    assert!(down.stale.is_none(), "Hard Reset flushes routes");
}

#[test]
fn soft_reset_keeps_routes_hard_reset_flushes() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    p.event(Side::A, Event::Reset { hard: false });
    p.drive();
    let down = p.b.downs()[0];
    assert!(matches!(&down.reason, DownReason::NotificationReceived(n)
            if n.kind() == K::Cease(Cease::AdministrativeReset(None))));
    assert!(down.stale.is_some());
    assert!(p.a.downs()[0].stale.is_some());
    // A starts again by itself; B comes back after its idle hold.
    p.advance(Duration::from_secs(10));
    assert!(p.both_established());

    p.event(Side::A, Event::Reset { hard: true });
    p.drive();
    let down = p.b.downs()[1];
    assert!(matches!(&down.reason, DownReason::NotificationReceived(n)
            if n.kind() == K::Cease(Cease::AdministrativeReset(None).hard_reset())));
    assert!(down.stale.is_none());
    assert!(p.a.downs()[1].stale.is_none());
}

#[test]
fn tcp_loss_keeps_stale_routes_with_graceful_restart() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    p.cut();
    for node in [&p.a, &p.b] {
        let down = node.downs()[0];
        assert_eq!(down.reason, DownReason::ConnectionLost);
        assert!(down.was_established);
        assert!(down.stale.is_some());
    }
    // Both come back after the idle hold.
    p.advance(Duration::from_secs(10));
    assert!(p.both_established());
}

#[test]
fn notification_without_n_bit_flushes_but_tcp_loss_keeps() {
    let gr = GrConfig {
        notification: false,
        ..GrConfig::default()
    };
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.graceful_restart = Some(gr);
    let mut p = Pair::new(a, config(65002, 65001, [198, 18, 0, 2]));
    p.start_both();
    assert!(!p.a.session.negotiated().is_some_and(|n| n.gr_notification));
    p.event(Side::B, Event::Reset { hard: false });
    p.drive();
    assert!(p.a.downs()[0].stale.is_none());
    p.advance(Duration::from_secs(10));
    assert!(p.both_established());
    p.cut();
    assert!(p.a.downs()[1].stale.is_some());
}

#[test]
fn no_graceful_restart_means_no_stale_routes() {
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.graceful_restart = None;
    let mut p = Pair::new(a, config(65002, 65001, [198, 18, 0, 2]));
    p.start_both();
    p.cut();
    assert!(p.a.downs()[0].stale.is_none());
    assert!(p.b.downs()[0].stale.is_none());
}

#[test]
fn restarting_peer_replaces_the_established_session() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    // B dies silently and comes back with the R bit set (RFC 4724 §4.2):
    // A still believes the old session is up.
    let mut b = config(65002, 65001, [198, 18, 0, 2]);
    b.graceful_restart = Some(GrConfig {
        restarting: true,
        ..GrConfig::default()
    });
    p.restart(Side::B, b);
    p.event(Side::B, Event::Start);
    p.drive();
    let down = p.a.downs()[0];
    assert_eq!(down.reason, DownReason::PeerReconnected);
    assert!(down.stale.is_some());
    assert_eq!(p.a.established_count(), 2);
    assert!(p.both_established());
    assert!(
        p.a.session
            .negotiated()
            .and_then(|n| n.peer_gr.as_ref())
            .is_some_and(|g| g.restart_state)
    );
}

#[test]
fn delay_open_waits_for_the_peer() {
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.delay_open = Some(Duration::from_secs(5));
    let mut b = config(65002, 65001, [198, 18, 0, 2]);
    b.passive = true;
    b.delay_open = Some(Duration::from_secs(5));
    let mut p = Pair::new(a, b);
    p.start_both();
    // Both wait: no OPEN yet.
    assert_eq!(p.a.session.state(), State::Connect);
    assert_eq!(p.b.session.state(), State::Active);
    assert!(p.a.sent.is_empty() && p.b.sent.is_empty());
    p.advance(Duration::from_secs(5));
    assert!(p.both_established());
}

#[test]
fn delay_open_answers_an_early_open() {
    let mut b = config(65002, 65001, [198, 18, 0, 2]);
    b.passive = true;
    b.delay_open = Some(Duration::from_secs(30));
    let mut p = Pair::new(config(65001, 65002, [198, 18, 0, 1]), b);
    p.start_both();
    // A sent its OPEN at once; B answered it without waiting 30 s.
    assert!(p.both_established());
}

#[test]
fn ibgp_any_internal_peer() {
    let mut a = config(65001, 65001, [198, 18, 0, 1]);
    a.peer_as = tabby_bgp::fsm::PeerAs::Internal;
    let b = config(65001, 65001, [198, 18, 0, 2]);
    let mut p = Pair::new(a, b);
    p.start_both();
    assert!(p.both_established());
    assert!(!p.a.session.negotiated().is_some_and(|n| n.ebgp));
}

#[test]
fn max_prefix_cease_is_a_hard_reset_with_n_bit() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    // AFI 1, SAFI 1, limit 100 (RFC 4486 §4).
    let max = Cease::MaxPrefixesReached(Some(PrefixLimit {
        family: Family::IPV4_UNICAST,
        limit: 100,
    }));
    p.event(Side::B, Event::Cease(max.clone().into()));
    p.drive();
    let down = p.a.downs()[0];
    let DownReason::NotificationReceived(got) = &down.reason else {
        panic!("expected a NOTIFICATION");
    };
    assert_eq!(got.kind(), K::Cease(max.hard_reset()));
    assert_eq!(got.data, vec![1, 0, 1, 1, 0, 0, 0, 100]);
    assert!(down.stale.is_none());
    assert!(p.b.downs()[0].stale.is_none());
    // Both come back after the idle hold.
    p.advance(Duration::from_secs(5));
    assert!(p.both_established());
}

#[test]
fn max_prefix_cease_is_plain_without_n_bit() {
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.graceful_restart = None;
    let mut p = Pair::new(a, config(65002, 65001, [198, 18, 0, 2]));
    p.start_both();
    let n = Notification::from(Cease::MaxPrefixesReached(None));
    p.event(Side::B, Event::Cease(n.clone()));
    p.drive();
    assert_eq!(p.a.downs()[0].reason, DownReason::NotificationReceived(n));
}

#[test]
fn peer_reconnecting_without_restart_bit_replaces_when_its_side_wins() {
    // B has the higher id: its new connection wins the collision against
    // the established one that A opened.
    let a = config(65001, 65002, [198, 18, 0, 1]);
    let mut b = config(65002, 65001, [198, 18, 0, 2]);
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    assert_eq!(p.initiators(), vec![Side::A]);
    p.restart(Side::B, config(65002, 65001, [198, 18, 0, 2]));
    p.event(Side::B, Event::Start);
    p.drive();
    assert_eq!(p.a.downs()[0].reason, DownReason::PeerReconnected);
    assert!(p.both_established());
    assert_eq!(p.initiators(), vec![Side::B]);
}

#[test]
fn peer_reconnecting_without_restart_bit_loses_until_hold_expiry() {
    // A has the higher id and keeps the established connection it opened;
    // B's new attempts get Cease/7 until A's hold timer notices the old
    // connection is dead.
    let a = config(65001, 65002, [198, 18, 0, 9]);
    let mut b = config(65002, 65001, [198, 18, 0, 2]);
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    p.restart(Side::B, config(65002, 65001, [198, 18, 0, 2]));
    p.event(Side::B, Event::Start);
    p.drive();
    assert_eq!(p.a.session.state(), State::Established);
    assert_ne!(p.b.session.state(), State::Established);
    assert!(p.b.downs().iter().all(|d| matches!(
        &d.reason,
        DownReason::NotificationReceived(n) if n.kind() == K::Cease(Cease::ConnectionCollisionResolution)
    )));
    p.advance(Duration::from_secs(300));
    assert!(p.both_established());
    assert!(matches!(
        &p.a.downs()[0].reason,
        DownReason::NotificationSent(n) if n.kind() == K::HoldTimerExpired
    ));
}

#[test]
fn back_off_resets_after_a_stable_session() {
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.idle_hold_max = Duration::from_secs(60);
    let mut b = config(65002, 65001, [198, 18, 0, 2]);
    b.passive = true;
    b.idle_hold_max = Duration::from_secs(60);
    let mut p = Pair::new(a, b);
    p.start_both();
    // The wait between a cut and A's next attempt.
    let flap = |p: &mut Pair| {
        let cut_at = p.now;
        p.cut();
        p.advance(Duration::from_secs(10));
        assert!(p.both_established());
        let next = p.a.connects.iter().find(|t| **t > cut_at).copied();
        next.map(|t| (t - cut_at).as_secs())
    };
    // Quick flaps: idle hold 1, 2, 4 s.
    assert_eq!(flap(&mut p), Some(1));
    assert_eq!(flap(&mut p), Some(2));
    assert_eq!(flap(&mut p), Some(4));
    // Up for longer than idle_hold_max: back to 1 s.
    p.advance(Duration::from_secs(61));
    assert_eq!(flap(&mut p), Some(1));
}

#[test]
fn reset_of_a_stopped_session_does_nothing() {
    let mut p = Pair::default_ebgp();
    p.event(Side::A, Event::Reset { hard: false });
    p.drive();
    assert_eq!(p.a.session.state(), State::Idle);
    assert!(p.a.connects.is_empty());
}

#[test]
fn updates_only_for_negotiated_families() {
    let mut a = config(65001, 65002, [198, 18, 0, 1]);
    a.families = vec![Family::IPV4_UNICAST];
    let mut p = Pair::new(a, config(65002, 65001, [198, 18, 0, 2]));
    p.start_both();
    let now = p.now;
    assert!(
        p.b.session
            .send_update(now, &Update::end_of_rib(Family::IPV6_UNICAST))
            .is_err()
    );
    p.b.session
        .send_update(now, &Update::end_of_rib(Family::IPV4_UNICAST))
        .expect("IPv4 is negotiated");
}

#[test]
fn stats_count_messages_and_flaps() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    p.advance(Duration::from_secs(65));
    let s = p.a.session.stats();
    assert_eq!(s.established, 1);
    assert!(s.established_since.is_some());
    // One OPEN each way on the surviving connection at least, and the
    // handshake KEEPALIVE plus two timed ones.
    assert!(s.sent.open >= 1 && s.received.open >= 1);
    assert!(s.sent.keepalive >= 3, "{s:?}");
    assert!(s.received.keepalive >= 3, "{s:?}");
    assert!(s.received.keepalive <= p.b.keepalives_sent() as u64);
    assert!(s.octets_sent > 0 && s.octets_received > 0);
    p.cut();
    let s = p.a.session.stats();
    assert_eq!(s.last_down, Some(DownReason::ConnectionLost));
    assert!(s.established_since.is_none());
}

#[test]
fn detach_closes_silently_and_the_peer_keeps_routes() {
    let mut p = Pair::default_ebgp();
    p.start_both();
    let notifications = p.a.notifications_sent().len();
    p.event(Side::A, Event::Detach);
    p.drive();
    assert_eq!(
        p.a.notifications_sent().len(),
        notifications,
        "no NOTIFICATION"
    );
    assert_eq!(p.a.downs()[0].reason, DownReason::Detached);
    assert_eq!(p.a.session.state(), State::Idle);
    let down = p.b.downs()[0];
    assert_eq!(down.reason, DownReason::ConnectionLost);
    assert!(
        down.stale.is_some(),
        "RFC 4724: the helper keeps our routes"
    );
    // A stays down until started again.
    p.advance(Duration::from_secs(30));
    assert_eq!(p.a.session.state(), State::Idle);
}
