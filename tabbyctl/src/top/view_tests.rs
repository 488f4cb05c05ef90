//! The screen of `tabbyctl top`, drawn on ratatui's TestBackend and read
//! back cell by cell.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::super::model::{Feed, Msg};
use super::*;
use crate::fixtures;

const SEC: Duration = Duration::from_secs(1);

/// The screen's lines, trailing blanks cut.
fn screen(top: &Top, now: Instant, width: u16, height: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    t.draw(|f| draw(f, top, now)).expect("draw");
    let buf = t.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

fn peer(address: &str, state: pb::SessionState, received: u64, sent: u64) -> pb::Peer {
    let mut p = fixtures::peer(address, 179, state);
    if state == pb::SessionState::Established {
        p.uptime_seconds = 125;
    }
    p.counters = Some(pb::PeerCounters {
        prefixes_received: 3,
        prefixes_accepted: 2,
        prefixes_advertised: 4,
        updates_received: received,
        updates_sent: sent,
        ..Default::default()
    });
    p
}

fn status() -> pb::StatusResponse {
    pb::StatusResponse {
        router_id: "198.18.0.1".into(),
        local_as: 64512,
        version: "0.1.0".into(),
        uptime_seconds: 3725,
        datastore_sync: pb::DatastoreSyncState::InSync as i32,
        fib_sync: pb::FibSyncState::InSync as i32,
        graceful_restart: pb::GracefulRestartState::Idle as i32,
        peers_configured: 2,
        peers_established: 1,
        ..Default::default()
    }
}

fn route(kind: pb::RouteEventKind, prefix: &str) -> Msg {
    Msg::Route(pb::RouteEvent {
        sequence: 1,
        kind: kind as i32,
        prefix: prefix.into(),
        best: Some(pb::Path {
            next_hop: "198.18.0.2".into(),
            source: Some(pb::PathSource {
                source: Some(pb::path_source::Source::PeerAddress("198.18.0.2".into())),
            }),
            ..Default::default()
        }),
    })
}

/// Two polls two seconds apart (so update rates are known), a BFD session,
/// a route snapshot and two changes.
fn busy(t0: Instant) -> Top {
    let mut top = Top::new(2 * SEC);
    for f in [Feed::Peers, Feed::Routes] {
        top.apply(t0, Msg::Connected(f));
    }
    let polled = |a: u64, b: u64| {
        let mut up = peer("198.18.0.2", pb::SessionState::Established, a, b);
        up.bfd = Some(pb::BfdStatus {
            phase: pb::BfdPhase::Up as i32,
            ..Default::default()
        });
        Msg::Polled {
            status: status(),
            peers: vec![peer("198.18.0.10", pb::SessionState::Active, 0, 0), up],
            node: Some("node-a".into()),
        }
    };
    top.apply(t0, polled(100, 10));
    top.apply(t0 + 2 * SEC, polled(130, 15));
    top.apply(t0, route(pb::RouteEventKind::Snapshot, "198.19.7.0/24"));
    top.apply(
        t0,
        route(pb::RouteEventKind::Snapshot, "2001:db8:1000::/48"),
    );
    top.apply(t0, route(pb::RouteEventKind::EndOfSnapshot, ""));
    top.tick(t0);
    top.apply(
        t0 + SEC,
        route(pb::RouteEventKind::BestChanged, "100.64.1.0/26"),
    );
    top.apply(
        t0 + 2 * SEC,
        Msg::Route(pb::RouteEvent {
            kind: pb::RouteEventKind::Withdrawn as i32,
            prefix: "198.19.7.0/24".into(),
            ..Default::default()
        }),
    );
    top.tick(t0 + 2 * SEC);
    top
}

#[test]
fn the_whole_screen() {
    let t0 = Instant::now();
    let top = busy(t0);
    let expected = [
        "┌ tabbyctl top · node node-a ──────────────────────────────────────────────────────────────────────┐",
        "│ connected · tabbyd 0.1.0 · router id 198.18.0.1 · AS 64512 · up 1h2m                             │",
        "│ peers 2 configured, 1 established · datastore in sync · fib in sync · graceful restart idle      │",
        "└──────────────────────────────────────────────────────────────────────────────────────────────────┘",
        "┌ Sessions: 2 configured, 1 established ───────────────────────────────────────────────────────────┐",
        "│ PEER            AS  TYPE       STATE        UPTIME  RCVD  ACPT  ADV  UPD IN/s  UPD OUT/s  BFD    │",
        "│ 198.18.0.2   64513  node-mesh  Established    2m8s     3     2    4        15        2.5  Up     │",
        "│ 198.18.0.10  64513  node-mesh  Active            -     3     2    4       0.0        0.0  -      │",
        "└──────────────────────────────────────────────────────────────────────────────────────────────────┘",
        "┌ Routes ──────────────────────┐┌ Last route changes ──────────────────────────────────────────────┐",
        "│ IPv4 best routes           1 ││     3s ago  - 198.19.7.0/24 withdrawn                            │",
        "│ IPv6 best routes           1 ││     4s ago  + 100.64.1.0/26 via 198.18.0.2 from 198.18.0.2       │",
        "│ changes/s                1.0 ││                                                                  │",
        "│ changes seen               2 ││                                                                  │",
        "│                              ││                                                                  │",
        "└──────────────────────────────┘└──────────────────────────────────────────────────────────────────┘",
        " q quit · polled every 2s",
    ];
    let lines = screen(&top, t0 + 5 * SEC, 100, expected.len() as u16);
    for (i, (got, want)) in lines.iter().zip(expected).enumerate() {
        assert_eq!(got, want, "line {i} of\n{}", lines.join("\n"));
    }
}

#[test]
fn a_lost_feed_is_said_first_and_the_last_state_stays() {
    let t0 = Instant::now();
    let mut top = busy(t0);
    top.apply(t0, Msg::Down(Feed::Peers, "tabbyd ended the stream".into()));
    let lines = screen(&top, t0 + 5 * SEC, 100, 20);
    assert_eq!(
        lines[1],
        "│ DISCONNECTED (peer watch: tabbyd ended the stream); retrying · tabbyd 0.1.0 · router id 198.18.0 │"
    );
    assert!(
        lines[6].starts_with("│ 198.18.0.2   64513"),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn before_the_first_poll_it_says_so() {
    let top = Top::new(SEC / 2);
    let lines = screen(&top, Instant::now(), 60, 16);
    assert_eq!(
        lines[1],
        "│ connecting · waiting for tabbyd's status                 │"
    );
    assert_eq!(
        lines[12],
        "│ (reading the Loc-RIB)        ││                          │"
    );
    assert_eq!(lines[15], " q quit · polled every 0.5s");
}

#[test]
fn a_narrow_screen_closes_the_columns_up_before_cutting_cells() {
    let now = Instant::now();
    let mut top = Top::new(SEC);
    let mut p = peer("198.51.100.1", pb::SessionState::Established, 0, 0);
    p.settings = Some(pb::PeerSettings {
        port: 1179,
        ..Default::default()
    });
    top.apply(
        now,
        Msg::Polled {
            status: status(),
            peers: vec![p],
            node: None,
        },
    );
    // 96 columns: the cells fit one space apart, not two.
    let lines = screen(&top, now, 96, 16);
    assert_eq!(
        lines[5],
        "│ PEER                 AS TYPE      STATE       UPTIME RCVD ACPT ADV UPD IN/s UPD OUT/s BFD    │"
    );
    assert!(lines[5].contains(" STATE "), "{}", lines.join("\n"));
    assert!(lines[5].contains(" UPD OUT/s "), "{}", lines.join("\n"));
    assert!(lines[6].contains(" Established "), "{}", lines.join("\n"));
}

#[test]
fn any_terminal_size_draws_without_panicking() {
    let t0 = Instant::now();
    let top = busy(t0);
    for (w, h) in [
        (0, 0),
        (1, 1),
        (10, 3),
        (20, 7),
        (200, 4),
        (3, 200),
        (500, 150),
    ] {
        screen(&top, t0, w, h);
    }
}

#[test]
fn rates_read_as_numbers_of_a_sensible_width() {
    assert_eq!(rate(None), "-");
    assert_eq!(rate(Some(0.0)), "0.0");
    assert_eq!(rate(Some(2.54)), "2.5");
    assert_eq!(rate(Some(9.96)), "10.0");
    assert_eq!(rate(Some(15.4)), "15");
    assert_eq!(rate(Some(123_456.7)), "123457");
}
