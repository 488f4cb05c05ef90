//! BMP export as the core drives it: stations from the flag and the
//! datastore, no event until a station took its snapshot, events in order,
//! and a full queue that drops, counts and resynchronises instead of
//! making the core wait.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tabby_bgp::notification::Cease;
use tabby_bmp::{Message, PeerDownReason};

use super::*;
use crate::bmp::{BmpEvent, STATION_QUEUE, StationTask, encode};

const TOR: &str = "198.18.0.1";
const FLAG_STATION: &str = "192.0.2.10:1790";

type Tasks = Arc<Mutex<Vec<StationTask>>>;

fn with_stations(h: &mut Harness, flag: &[&str]) -> Tasks {
    let tasks: Tasks = Arc::default();
    let t = tasks.clone();
    h.daemon
        .set_bmp_runner(Box::new(move |task| t.lock().unwrap().push(task)));
    h.daemon
        .set_bmp_flag_stations(flag.iter().map(|s| s.parse().unwrap()).collect());
    tasks
}

/// The test cluster with the stations annotation on `default`.
fn annotated(value: &str) -> String {
    CLUSTER.replace(
        "metadata: {name: default}",
        &format!(
            "metadata: {{name: default, annotations: {{tabby-routing.io/bmp-stations: '{value}'}}}}"
        ),
    )
}

/// The latest task of station `addr`.
fn find<'a>(t: &'a mut [StationTask], addr: &str) -> &'a mut StationTask {
    let addr: SocketAddr = addr.parse().unwrap();
    t.iter_mut().rev().find(|t| t.shared.addr == addr).unwrap()
}

fn task_of(tasks: &Tasks, addr: &str) -> (u64, Arc<crate::bmp::StationShared>) {
    let mut t = tasks.lock().unwrap();
    let task = find(&mut t, addr);
    (task.id, task.shared.clone())
}

fn drain(tasks: &Tasks, addr: &str) -> Vec<Arc<BmpEvent>> {
    let mut t = tasks.lock().unwrap();
    let task = find(&mut t, addr);
    let mut out = Vec::new();
    while let Ok(e) = task.events.try_recv() {
        out.push(e);
    }
    out
}

fn tor_ip() -> Ipv4Addr {
    TOR.parse().unwrap()
}

#[test]
fn stations_come_from_the_flag_and_the_annotation_and_bad_entries_are_reported() {
    let mut h = harness(0);
    let tasks = with_stations(&mut h, &[FLAG_STATION]);
    h.load(&annotated("198.51.100.7:11019, not-a-station"));
    let addrs: BTreeSet<String> = tasks
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.shared.addr.to_string())
        .collect();
    assert_eq!(
        addrs,
        [FLAG_STATION, "198.51.100.7:11019"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let health = h.daemon.health();
    assert!(
        health
            .reasons
            .iter()
            .any(|r| r.contains("bmp-stations") && r.contains("'not-a-station'")),
        "{:?}",
        health.reasons
    );
    // The rest of the configuration applied.
    assert_eq!(h.daemon.list_peers(Instant::now()).len(), 2);

    // The annotation removed: its station's task is told to stop (its queue
    // closes); the flag's stays.
    h.load(CLUSTER);
    let mut t = tasks.lock().unwrap();
    for task in t.iter_mut() {
        let closed = matches!(
            task.events.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
        );
        assert_eq!(
            closed,
            task.shared.addr.to_string() != FLAG_STATION,
            "{task:?}"
        );
    }
}

#[test]
fn events_start_with_the_snapshot_and_follow_in_order() {
    let mut h = harness(0);
    let tasks = with_stations(&mut h, &[FLAG_STATION]);
    h.load(CLUSTER);
    h.establish(TOR, 65000, tor_ip());
    h.announce(TOR, &[65000], &["198.19.7.0/24"], tor_ip());
    assert!(
        drain(&tasks, FLAG_STATION).is_empty(),
        "nothing before the snapshot"
    );
    let (id, shared) = task_of(&tasks, FLAG_STATION);
    assert_eq!(shared.dropped.get(), 0, "not connected yet is not a drop");

    let snap = h.daemon.bmp_snapshot(id, Instant::now()).unwrap();
    assert!(shared.live.load(Ordering::Relaxed));
    let tor = snap
        .peers
        .iter()
        .find(|p| p.info.address.to_string() == TOR)
        .expect("the established peer");
    assert_eq!(tor.info.asn, 65000);
    let prefixes =
        |t: &[tabby_rib::AdjRibInRoute]| t.iter().map(|r| r.0.to_string()).collect::<Vec<_>>();
    assert_eq!(prefixes(&tor.post), ["198.19.7.0/24"]);
    assert_eq!(
        prefixes(
            tor.pre
                .as_deref()
                .expect("kept while a station is configured")
        ),
        ["198.19.7.0/24"]
    );
    let loc: Vec<String> = snap.loc_rib.iter().map(|r| r.0.to_string()).collect();
    assert!(
        loc.contains(&"198.19.7.0/24".to_string()) && loc.contains(&"100.64.0.0/26".to_string()),
        "{loc:?}"
    );

    // The snapshot as bytes: every message decodes; the Loc-RIB's Peer Up
    // comes first, the peer's post-policy routes carry L.
    let mut out = BytesMut::new();
    let mut w = encode::SnapshotWriter::new(&snap);
    while w.fill(&mut out, 1 << 20) > 0 {}
    let msgs = split(&out);
    assert!(
        matches!(&msgs[0], Message::PeerUp(u) if u.peer.peer_type == tabby_bmp::PeerType::LocRib)
    );
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Message::RouteMonitoring(r) if r.peer.post_policy()))
    );
    assert!(msgs.iter().any(|m| matches!(m, Message::RouteMonitoring(r) if r.peer.peer_type == tabby_bmp::PeerType::Global && !r.peer.post_policy())));

    h.announce(TOR, &[65000], &["198.19.8.0/24"], tor_ip());
    let kinds: Vec<&str> = drain(&tasks, FLAG_STATION)
        .iter()
        .map(|e| match e.as_ref() {
            BmpEvent::Received { .. } => "pre",
            BmpEvent::PostPolicy { .. } => "post",
            BmpEvent::LocRib { .. } => "loc",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["pre", "post", "loc"]);

    // A session lost after a NOTIFICATION from the peer: Peer Down, reason 3.
    let id = h.id_of(TOR);
    let n: tabby_bgp::Notification = Cease::AdministrativeShutdown(None).into();
    h.daemon.session_event(
        id,
        PeerEvent::Down(Down {
            reason: DownReason::NotificationReceived(n.clone()),
            was_established: true,
            stale: None,
        }),
        Instant::now(),
    );
    let events = drain(&tasks, FLAG_STATION);
    let down = events
        .iter()
        .find_map(|e| match e.as_ref() {
            BmpEvent::PeerDown { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("a Peer Down");
    let PeerDownReason::RemoteNotification(pdu) = down else {
        panic!("{down:?}")
    };
    assert_eq!(&pdu[..], &tabby_bmp::build::notification_pdu(&n)[..]);
}

#[test]
fn a_full_queue_drops_counts_and_resynchronises_without_waiting() {
    let mut h = harness(0);
    let tasks = with_stations(&mut h, &[FLAG_STATION]);
    h.load(CLUSTER);
    h.establish(TOR, 65000, tor_ip());
    let (id, shared) = task_of(&tasks, FLAG_STATION);
    h.daemon.bmp_snapshot(id, Instant::now()).unwrap();
    // Nobody reads the queue: each UPDATE is two events (pre and post).
    for i in 0..(STATION_QUEUE / 2 + 10) {
        let p = format!("100.{}.{}.0/24", 100 + i / 256, i % 256);
        h.announce(TOR, &[65000], &[p.as_str()], tor_ip());
    }
    assert!(
        !shared.live.load(Ordering::Relaxed),
        "stopped taking events"
    );
    assert!(
        shared.resync.load(Ordering::Relaxed),
        "told to resynchronise"
    );
    let dropped = shared.dropped.get();
    assert!(dropped >= 10, "dropped {dropped}");
    // The reconnection's snapshot holds what was dropped.
    drain(&tasks, FLAG_STATION);
    let snap = h.daemon.bmp_snapshot(id, Instant::now()).unwrap();
    assert!(shared.live.load(Ordering::Relaxed) && !shared.resync.load(Ordering::Relaxed));
    let tor = snap
        .peers
        .iter()
        .find(|p| p.info.address.to_string() == TOR)
        .unwrap();
    assert_eq!(tor.post.len(), STATION_QUEUE / 2 + 10);
}

/// Splits a buffer of BMP messages.
fn split(mut b: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while let Ok(Some(len)) = tabby_bmp::frame_len(b) {
        out.push(tabby_bmp::decode(&b[..len]).expect("our own encoding decodes"));
        b = &b[len..];
    }
    assert!(b.is_empty());
    out
}
