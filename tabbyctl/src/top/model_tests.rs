//! The model of `tabbyctl top`: rates from counter deltas, folding of the
//! watch streams and polls, session order.

use super::*;
use crate::fixtures::peer;

const SEC: Duration = Duration::from_secs(1);

fn with_updates(mut p: pb::Peer, received: u64, sent: u64) -> pb::Peer {
    p.counters = Some(pb::PeerCounters {
        updates_received: received,
        updates_sent: sent,
        ..Default::default()
    });
    p
}

fn peer_event(kind: pb::PeerEventKind, p: Option<pb::Peer>) -> Msg {
    Msg::Peer(Box::new(pb::PeerEvent {
        sequence: 1,
        kind: kind as i32,
        peer: p,
        previous_state: 0,
    }))
}

fn route_event(kind: pb::RouteEventKind, prefix: &str, next_hop: &str) -> Msg {
    Msg::Route(pb::RouteEvent {
        sequence: 1,
        kind: kind as i32,
        prefix: prefix.into(),
        best: (!next_hop.is_empty()).then(|| pb::Path {
            next_hop: next_hop.into(),
            source: Some(pb::PathSource {
                source: Some(pb::path_source::Source::PeerAddress(next_hop.into())),
            }),
            ..Default::default()
        }),
    })
}

fn polled(peers: Vec<pb::Peer>) -> Msg {
    Msg::Polled {
        status: pb::StatusResponse::default(),
        peers,
        node: None,
    }
}

fn names(top: &Top) -> Vec<String> {
    top.sessions().map(|s| render::peer_name(&s.peer)).collect()
}

#[test]
fn a_rate_is_the_counter_delta_over_the_time_between_samples() {
    let t0 = Instant::now();
    let mut r = Rate::default();
    r.observe(t0, 100, SEC);
    assert_eq!(r.per_second(), None, "one sample gives no rate");
    r.observe(t0 + SEC / 4, 150, SEC);
    assert_eq!(r.per_second(), None, "samples closer than the window wait");
    r.observe(t0 + 2 * SEC, 160, SEC);
    assert_eq!(r.per_second(), Some(30.0), "(160 - 100) / 2 s");
    r.observe(t0 + 6 * SEC, 160, SEC);
    assert_eq!(r.per_second(), Some(0.0));
    // A reset session starts its counters again: no negative rate, and the
    // next delta is measured from the new value.
    r.observe(t0 + 7 * SEC, 4, SEC);
    assert_eq!(r.per_second(), None);
    r.observe(t0 + 9 * SEC, 10, SEC);
    assert_eq!(r.per_second(), Some(3.0));
    // The same instant twice is no division by zero.
    r.observe(t0 + 9 * SEC, 10, Duration::ZERO);
    assert_eq!(r.per_second(), Some(3.0));
}

#[test]
fn update_rates_come_from_successive_polls() {
    let t0 = Instant::now();
    let mut top = Top::new(2 * SEC);
    let p = |r, s| with_updates(peer("198.18.0.2", 179, pb::SessionState::Established), r, s);
    top.apply(t0, polled(vec![p(10, 4)]));
    // A watch event right after the poll carries counters too; too soon to
    // count.
    top.apply(
        t0 + SEC / 10,
        peer_event(pb::PeerEventKind::StateChanged, Some(p(12, 4))),
    );
    let s = top.sessions().next().unwrap();
    assert_eq!(s.updates_in.per_second(), None);
    top.apply(t0 + 2 * SEC, polled(vec![p(30, 10)]));
    let s = top.sessions().next().unwrap();
    assert_eq!(s.updates_in.per_second(), Some(10.0));
    assert_eq!(s.updates_out.per_second(), Some(3.0));
}

#[test]
fn sessions_sort_by_address_numerically_then_port() {
    let mut top = Top::new(SEC);
    let now = Instant::now();
    top.apply(
        now,
        polled(vec![
            peer("2001:db8::2", 179, pb::SessionState::Active),
            peer("198.18.0.10", 179, pb::SessionState::Active),
            peer("198.18.0.2", 1179, pb::SessionState::Active),
            peer("198.18.0.2", 179, pb::SessionState::Active),
            peer("not-an-address", 179, pb::SessionState::Idle),
        ]),
    );
    assert_eq!(
        names(&top),
        [
            "198.18.0.2",
            "198.18.0.2:1179",
            "198.18.0.10",
            "2001:db8::2",
            "not-an-address",
        ]
    );
}

#[test]
fn the_peer_watch_snapshot_replaces_sessions_and_changes_follow() {
    let now = Instant::now();
    let mut top = Top::new(SEC);
    top.apply(
        now,
        polled(vec![peer("198.18.0.9", 179, pb::SessionState::Idle)]),
    );
    top.apply(now, Msg::Connected(Feed::Peers));
    for a in ["198.18.0.2", "198.18.0.3"] {
        top.apply(
            now,
            peer_event(
                pb::PeerEventKind::Snapshot,
                Some(peer(a, 179, pb::SessionState::Active)),
            ),
        );
    }
    top.apply(now, peer_event(pb::PeerEventKind::EndOfSnapshot, None));
    assert_eq!(
        names(&top),
        ["198.18.0.2", "198.18.0.3"],
        "the snapshot wins"
    );

    top.apply(
        now,
        peer_event(
            pb::PeerEventKind::StateChanged,
            Some(peer("198.18.0.2", 179, pb::SessionState::Established)),
        ),
    );
    top.apply(
        now,
        peer_event(
            pb::PeerEventKind::Added,
            Some(peer("198.18.0.4", 179, pb::SessionState::Idle)),
        ),
    );
    top.apply(
        now,
        peer_event(
            pb::PeerEventKind::Removed,
            Some(peer("198.18.0.3", 179, pb::SessionState::Active)),
        ),
    );
    // Events without a peer, or of unknown kinds, change nothing.
    top.apply(now, peer_event(pb::PeerEventKind::StateChanged, None));
    top.apply(
        now,
        Msg::Peer(Box::new(pb::PeerEvent {
            kind: 99,
            peer: Some(peer("198.18.0.7", 179, pb::SessionState::Idle)),
            ..Default::default()
        })),
    );
    assert_eq!(names(&top), ["198.18.0.2", "198.18.0.4"]);
    let states: Vec<i32> = top.sessions().map(|s| s.peer.state).collect();
    assert_eq!(
        states,
        [
            pb::SessionState::Established as i32,
            pb::SessionState::Idle as i32
        ]
    );
}

#[test]
fn uptime_grows_from_the_report() {
    let now = Instant::now();
    let mut top = Top::new(SEC);
    let mut p = peer("198.18.0.2", 179, pb::SessionState::Established);
    p.uptime_seconds = 120;
    let mut idle = peer("198.18.0.3", 179, pb::SessionState::Idle);
    idle.uptime_seconds = 50;
    top.apply(now, polled(vec![p, idle]));
    let up: Vec<u64> = top.sessions().map(|s| s.uptime(now + 5 * SEC)).collect();
    assert_eq!(up, [125, 0]);
}

#[test]
fn route_events_count_best_routes_per_family_and_changes() {
    use pb::RouteEventKind as K;
    let t0 = Instant::now();
    let mut top = Top::new(2 * SEC);
    top.apply(t0, Msg::Connected(Feed::Routes));
    top.apply(t0, route_event(K::Snapshot, "198.19.7.0/24", "198.18.0.2"));
    top.apply(
        t0,
        route_event(K::Snapshot, "2001:db8:1000::/48", "198.18.0.2"),
    );
    assert!(!top.routes_synced());
    top.apply(t0, route_event(K::EndOfSnapshot, "", ""));
    assert!(top.routes_synced());
    assert_eq!(top.best_routes(), (1, 1));
    assert_eq!(top.route_changes(), 0, "a snapshot is no change");
    top.tick(t0);

    // A second withdrawal of a prefix no longer held takes no count below
    // zero; an event without a prefix is ignored.
    for (kind, prefix, next_hop) in [
        (K::BestChanged, "100.64.1.0/26", "198.18.0.1"),
        (K::BestChanged, "198.19.7.0/24", "198.18.0.3"),
        (K::Withdrawn, "2001:db8:1000::/48", ""),
        (K::Withdrawn, "2001:db8:1000::/48", ""),
    ] {
        top.apply(t0 + SEC, route_event(kind, prefix, next_hop));
    }
    top.apply(t0 + SEC, route_event(K::BestChanged, "", ""));
    assert_eq!(top.best_routes(), (2, 0));
    assert_eq!(top.route_changes(), 4);
    top.tick(t0 + 2 * SEC);
    assert_eq!(top.route_change_rate(), Some(2.0), "4 changes in 2 s");

    let recent: Vec<(String, ChangeKind)> = top
        .recent_changes()
        .map(|c| (c.prefix.clone(), c.kind.clone()))
        .collect();
    assert_eq!(
        recent[0],
        ("2001:db8:1000::/48".into(), ChangeKind::Withdrawn)
    );
    assert_eq!(
        recent[2],
        (
            "198.19.7.0/24".into(),
            ChangeKind::Best {
                next_hop: "198.18.0.3".into(),
                source: "198.18.0.3".into()
            }
        )
    );

    // RESYNC (or a reconnect) drops the routes; the snapshot refills them.
    top.apply(t0 + 3 * SEC, route_event(K::Resync, "", ""));
    assert_eq!(top.best_routes(), (0, 0));
    assert!(!top.routes_synced());
    assert_eq!(top.route_changes(), 4, "changes seen stay counted");
}

#[test]
fn recent_changes_are_bounded() {
    let now = Instant::now();
    let mut top = Top::new(SEC);
    for i in 0..RECENT_CHANGES + 50 {
        top.apply(
            now,
            route_event(
                pb::RouteEventKind::BestChanged,
                &format!("100.64.{}.{}/32", i / 256, i % 256),
                "198.18.0.1",
            ),
        );
    }
    assert_eq!(top.recent_changes().count(), RECENT_CHANGES);
    assert_eq!(
        top.recent_changes().next().unwrap().prefix,
        "100.64.0.249/32"
    );
}

#[test]
fn the_link_says_which_feed_is_down() {
    let now = Instant::now();
    let mut top = Top::new(SEC);
    assert_eq!(top.link(), Link::Connecting);
    for f in [Feed::Peers, Feed::Routes, Feed::Poll] {
        top.apply(now, Msg::Connected(f));
    }
    assert_eq!(top.link(), Link::Up);
    top.apply(now, Msg::Down(Feed::Routes, "stream ended".into()));
    assert_eq!(top.link(), Link::Down("route watch: stream ended".into()));
    top.apply(now, Msg::Connected(Feed::Routes));
    assert_eq!(top.link(), Link::Up);
}
