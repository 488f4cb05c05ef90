//! WatchRoutes / WatchPeers: snapshot then changes, resume from a sequence,
//! and a lagging watcher told to resync with bounded memory.

mod common;

use std::time::Duration;

use common::{TestCore, TestServer};
use tabby_api::model::SessionState;
use tabby_proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::Streaming;

const KIND_SNAPSHOT: i32 = pb::RouteEventKind::Snapshot as i32;
const KIND_EOS: i32 = pb::RouteEventKind::EndOfSnapshot as i32;
const KIND_BEST: i32 = pb::RouteEventKind::BestChanged as i32;
const KIND_WITHDRAWN: i32 = pb::RouteEventKind::Withdrawn as i32;
const KIND_RESYNC: i32 = pb::RouteEventKind::Resync as i32;

async fn next(s: &mut Streaming<pb::RouteEvent>) -> pb::RouteEvent {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("event within 10s")
        .expect("stream open")
        .expect("event ok")
}

fn announce(owner: &str, prefixes: &[String]) -> pb::AnnounceRoutesRequest {
    pb::AnnounceRoutesRequest {
        owner: owner.into(),
        routes: prefixes
            .iter()
            .map(|p| pb::LocalRoute {
                prefix: p.clone(),
                ..Default::default()
            })
            .collect(),
    }
}

#[tokio::test]
async fn snapshot_then_changes_then_resume() {
    let core = TestCore::new();
    core.learn("198.19.1.0/24", "198.18.0.2", vec![64513], 100);
    core.learn("2001:db8:1000::/48", "2001:db8::2", vec![64513], 100);
    let srv = TestServer::start(core.clone()).await;
    let mut c = pb::routes_client::RoutesClient::new(srv.channel().await);

    let mut s = c
        .watch_routes(pb::WatchRoutesRequest {
            family: pb::AddressFamily::Ipv4 as i32,
            resume_from_sequence: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let first = next(&mut s).await;
    assert_eq!(
        (first.kind, first.prefix.as_str()),
        (KIND_SNAPSHOT, "198.19.1.0/24")
    );
    let eos = next(&mut s).await;
    assert_eq!(
        eos.kind, KIND_EOS,
        "IPv6 route filtered out of an IPv4 watch"
    );
    let snap_seq = eos.sequence;

    let r = c
        .announce_routes(announce("ipam", &["100.64.1.0/26".into()]))
        .await
        .expect("announce")
        .into_inner();
    let ev = next(&mut s).await;
    assert_eq!((ev.kind, ev.prefix.as_str()), (KIND_BEST, "100.64.1.0/26"));
    assert_eq!(ev.sequence, r.sequence);
    assert_eq!(ev.sequence, snap_seq + 1);
    c.withdraw_routes(pb::WithdrawRoutesRequest {
        owner: "ipam".into(),
        prefixes: vec!["100.64.1.0/26".into()],
    })
    .await
    .expect("withdraw");
    let ev = next(&mut s).await;
    assert_eq!(
        (ev.kind, ev.prefix.as_str()),
        (KIND_WITHDRAWN, "100.64.1.0/26")
    );
    let last_seen = ev.sequence;
    drop(s);

    // While disconnected, two more changes.
    c.announce_routes(announce(
        "ipam",
        &["100.64.2.0/26".into(), "100.64.3.0/26".into()],
    ))
    .await
    .expect("announce");

    // Resume: a replay of exactly the missed events, no snapshot.
    let mut s = c
        .watch_routes(pb::WatchRoutesRequest {
            family: 0,
            resume_from_sequence: last_seen,
        })
        .await
        .expect("resume")
        .into_inner();
    let a = next(&mut s).await;
    let b = next(&mut s).await;
    assert_eq!(
        (a.kind, a.prefix.as_str(), a.sequence),
        (KIND_BEST, "100.64.2.0/26", last_seen + 1)
    );
    assert_eq!(
        (b.kind, b.prefix.as_str(), b.sequence),
        (KIND_BEST, "100.64.3.0/26", last_seen + 2)
    );
    // And then live changes continue without a gap.
    c.announce_routes(announce("ipam", &["100.64.4.0/26".into()]))
        .await
        .expect("announce");
    let d = next(&mut s).await;
    assert_eq!(
        (d.prefix.as_str(), d.sequence),
        ("100.64.4.0/26", last_seen + 3)
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn resume_from_forgotten_sequence_resyncs() {
    // History of 4 events only.
    let core = TestCore::with_buffers(4, 64);
    let srv = TestServer::start(core.clone()).await;
    let mut c = pb::routes_client::RoutesClient::new(srv.channel().await);
    let prefixes: Vec<String> = (0..10).map(|i| format!("100.64.{i}.0/24")).collect();
    c.announce_routes(announce("ipam", &prefixes))
        .await
        .expect("announce");
    let mut s = c
        .watch_routes(pb::WatchRoutesRequest {
            family: 0,
            resume_from_sequence: 2,
        })
        .await
        .expect("resume")
        .into_inner();
    let first = next(&mut s).await;
    assert_eq!(
        first.kind, KIND_RESYNC,
        "sequence 2 is no longer held: client must be told to resync"
    );
    let mut snapshot = 0;
    loop {
        let ev = next(&mut s).await;
        if ev.kind == KIND_EOS {
            assert_eq!(ev.sequence, 10);
            break;
        }
        assert_eq!(ev.kind, KIND_SNAPSHOT);
        snapshot += 1;
    }
    assert_eq!(snapshot, 10);
    srv.shutdown().await;
}

/// A server with a tiny stream buffer and a watcher that reads nothing
/// while `chunks` × 100 routes are announced (in calls of 100), so it lags.
async fn lagging_watch(
    core: std::sync::Arc<TestCore>,
    chunks: u32,
) -> (TestServer, Streaming<pb::RouteEvent>) {
    let srv = TestServer::start_with(core, |c| c.limits.watch_stream_buffer = 4).await;
    let mut c = pb::routes_client::RoutesClient::new(srv.channel().await);
    let mut s = c
        .watch_routes(pb::WatchRoutesRequest::default())
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(next(&mut s).await.kind, KIND_EOS);
    for chunk in 0..chunks {
        let prefixes: Vec<String> = (0..100)
            .map(|i| format!("100.{}.{}.0/24", 64 + chunk / 2, (chunk % 2) * 100 + i))
            .collect();
        c.announce_routes(announce("ipam", &prefixes))
            .await
            .expect("announce");
    }
    (srv, s)
}

#[tokio::test]
async fn lagging_watcher_is_told_to_resync_and_converges() {
    // A tiny live buffer and stream buffer: a watcher that does not read
    // while 5,000 changes happen must lag.
    let core = TestCore::with_buffers(16, 16);
    let (srv, mut s) = lagging_watch(core.clone(), 50).await;

    // Now read everything: state must converge to the 5,000 routes via a
    // RESYNC and a fresh snapshot.
    let mut state = std::collections::BTreeSet::new();
    let mut resyncs = 0;
    let mut in_snapshot = false;
    loop {
        let ev = next(&mut s).await;
        match ev.kind {
            KIND_RESYNC => {
                resyncs += 1;
                state.clear();
                in_snapshot = true;
            }
            KIND_SNAPSHOT => {
                assert!(in_snapshot);
                state.insert(ev.prefix);
            }
            KIND_EOS => in_snapshot = false,
            KIND_BEST => {
                state.insert(ev.prefix);
            }
            other => panic!("unexpected event kind {other}"),
        }
        if !in_snapshot && ev.sequence == 5000 && state.len() == 5000 {
            break;
        }
    }
    assert!(
        resyncs >= 1,
        "the watcher lagged and must have been told to resync"
    );
    srv.shutdown().await;
}

/// A watcher that falls behind the live feed while the history still holds
/// what it missed catches up from the history: no RESYNC, no gap, every
/// sequence number once and in order.
#[tokio::test]
async fn lagging_watcher_catches_up_from_the_history_without_resync() {
    let core = TestCore::with_buffers(10_000, 16);
    let (srv, mut s) = lagging_watch(core.clone(), 20).await;
    let mut expected = 1;
    while expected <= 2000 {
        let ev = next(&mut s).await;
        assert_eq!(
            ev.kind, KIND_BEST,
            "no resync while the history covers the gap"
        );
        assert_eq!(
            ev.sequence, expected,
            "events in order, none lost or repeated"
        );
        expected += 1;
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn watch_peers_snapshot_then_state_changes() {
    let core = TestCore::new();
    core.add_test_peer("198.18.0.2", 64513, SessionState::Active);
    let srv = TestServer::start(core.clone()).await;
    let mut c = pb::peers_client::PeersClient::new(srv.channel().await);
    let mut s = c
        .watch_peers(pb::WatchPeersRequest {})
        .await
        .expect("watch")
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("event")
            .expect("open")
            .expect("ok")
    };
    let a = next().await;
    assert_eq!(a.kind, pb::PeerEventKind::Snapshot as i32);
    assert_eq!(next().await.kind, pb::PeerEventKind::EndOfSnapshot as i32);
    core.set_peer_state("198.18.0.2", SessionState::Established);
    let e = next().await;
    assert_eq!(e.kind, pb::PeerEventKind::StateChanged as i32);
    assert_eq!(e.previous_state, pb::SessionState::Active as i32);
    assert_eq!(
        e.peer.map(|p| p.state),
        Some(pb::SessionState::Established as i32)
    );
    srv.shutdown().await;
}
