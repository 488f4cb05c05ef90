//! One monitoring station's connection task: connect (with back-off from
//! 1 s to 30 s), send Initiation and a full snapshot, then stream events;
//! reconnect after a failure or a queue overflow; Termination when the
//! station is removed or tabbyd stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tabby_bmp::build;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{BmpEvent, Snapshot, StationShared, StationTask, encode};

pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that lasted this long starts the next back-off afresh.
const STABLE: Duration = Duration::from_secs(30);

/// Takes the core's snapshot for station `id` and makes it live, under
/// the core's lock; `None` when the station is gone.
pub type SnapshotFn = Arc<dyn Fn(u64) -> Option<Snapshot> + Send + Sync>;

/// How a connection ended.
enum End {
    /// The station was removed (or tabbyd stops): Termination was sent.
    Stopped,
    /// The queue overflowed: reconnect for a full resynchronisation.
    Overflow,
    Failed(std::io::Error),
}

/// Runs until the core drops the station's queue.
pub async fn run(task: StationTask, node: String, snapshot: SnapshotFn) {
    let StationTask {
        id,
        shared,
        mut events,
    } = task;
    let addr = shared.addr;
    let mut backoff = MIN_BACKOFF;
    let mut first = true;
    loop {
        if !first && !wait_or_closed(&mut events, backoff).await {
            return;
        }
        first = false;
        let stream = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)) => r,
            _ = until_closed(&mut events) => return,
        };
        let mut stream = match stream {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                info!(station = %addr, error = %e, retry_in = ?backoff, "BMP station unreachable");
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_) => {
                info!(station = %addr, retry_in = ?backoff, "BMP station: connect timed out");
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let started = Instant::now();
        info!(station = %addr, "BMP station connected");
        match session(&mut stream, id, &node, &shared, &mut events, &snapshot).await {
            End::Stopped => {
                let _ = stream.shutdown().await;
                info!(station = %addr, "BMP station: Termination sent");
                return;
            }
            End::Overflow => {
                warn!(station = %addr, "BMP station must resynchronise (its queue overflowed or the configuration changed): reconnecting");
                backoff = MIN_BACKOFF;
            }
            End::Failed(e) => {
                shared.live.store(false, Ordering::Relaxed);
                info!(station = %addr, error = %e, retry_in = ?backoff, "BMP station connection lost");
                if started.elapsed() >= STABLE {
                    backoff = MIN_BACKOFF;
                } else {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        shared.live.store(false, Ordering::Relaxed);
    }
}

/// Sleeps `d`, discarding stale events; false when the queue closed.
async fn wait_or_closed(events: &mut mpsc::Receiver<Arc<BmpEvent>>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = until_closed(events) => false,
    }
}

/// Resolves when the core drops the queue (events meanwhile are stale:
/// the next connection starts from a snapshot).
async fn until_closed(events: &mut mpsc::Receiver<Arc<BmpEvent>>) {
    while events.recv().await.is_some() {}
}

async fn session(
    stream: &mut TcpStream,
    id: u64,
    node: &str,
    shared: &StationShared,
    events: &mut mpsc::Receiver<Arc<BmpEvent>>,
    snapshot: &SnapshotFn,
) -> End {
    let (mut rd, mut wr) = stream.split();
    let mut out = BytesMut::with_capacity(64 * 1024);
    encode::initiation(node).encode(&mut out);
    // Anything queued belongs to an earlier connection.
    while events.try_recv().is_ok() {}
    let Some(snap) = snapshot(id) else {
        build::termination_admin().encode(&mut out);
        let _ = wr.write_all(&out).await;
        return End::Stopped;
    };
    shared.resyncs.inc();
    let mut writer = encode::SnapshotWriter::new(&snap);
    loop {
        let n = writer.fill(&mut out, 64 * 1024);
        if out.is_empty() {
            break;
        }
        if let Err(e) = wr.write_all(&out).await {
            return End::Failed(e);
        }
        out.clear();
        shared.sent.inc_by(n as u64);
    }
    drop(snap);
    let mut scratch = [0u8; 512];
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else {
                    build::termination_admin().encode(&mut out);
                    let _ = wr.write_all(&out).await;
                    return End::Stopped;
                };
                if shared.resync.load(Ordering::Relaxed) {
                    return End::Overflow;
                }
                let mut n = encode::event(&ev, &mut out);
                // What else is queued goes in the same write.
                while out.len() < 64 * 1024 {
                    let Ok(ev) = events.try_recv() else { break };
                    n += encode::event(&ev, &mut out);
                }
                if let Err(e) = wr.write_all(&out).await {
                    return End::Failed(e);
                }
                out.clear();
                shared.sent.inc_by(n as u64);
            }
            _ = shared.wake.notified() => {
                if shared.resync.load(Ordering::Relaxed) {
                    return End::Overflow;
                }
            }
            // A station sends nothing (RFC 7854 §3.3): reading only sees
            // it close.
            r = rd.read(&mut scratch) => match r {
                Ok(0) => return End::Failed(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) => return End::Failed(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::atomic::AtomicBool;

    use tabby_bmp::{Message, PeerType};
    use tokio::net::TcpListener;

    use super::*;
    use crate::bmp::{LocalInfo, RouteChange};

    fn shared(addr: std::net::SocketAddr) -> Arc<StationShared> {
        Arc::new(StationShared {
            addr,
            live: AtomicBool::new(false),
            resync: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            dropped: Default::default(),
            sent: Default::default(),
            resyncs: Default::default(),
        })
    }

    fn local() -> Arc<LocalInfo> {
        Arc::new(LocalInfo {
            asn: 64512,
            router_id: Ipv4Addr::new(198, 18, 0, 11),
            ipv6: None,
        })
    }

    /// Reads one BMP message off the stream.
    async fn next(s: &mut TcpStream) -> Option<Message> {
        let mut head = [0u8; 6];
        s.read_exact(&mut head).await.ok()?;
        let len = tabby_bmp::frame_len(&head).ok()??;
        let mut buf = head.to_vec();
        buf.resize(len, 0);
        s.read_exact(&mut buf[6..]).await.ok()?;
        Some(tabby_bmp::decode(&buf).expect("tabbyd's messages decode"))
    }

    #[tokio::test]
    async fn snapshot_then_events_then_termination_and_a_reconnect_to_resynchronise() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sh = shared(listener.local_addr().unwrap());
        let (tx, events) = mpsc::channel(16);
        let s = sh.clone();
        let snapshot: SnapshotFn = Arc::new(move |_| {
            s.resync.store(false, Ordering::Relaxed);
            s.live.store(true, Ordering::Relaxed);
            Some(Snapshot {
                local: Some(local()),
                peers: vec![],
                loc_rib: vec![],
                at: Default::default(),
            })
        });
        let task = StationTask {
            id: 1,
            shared: sh.clone(),
            events,
        };
        let run = tokio::spawn(run(task, "node-a".into(), snapshot));

        let (mut c, _) = listener.accept().await.unwrap();
        assert!(matches!(next(&mut c).await, Some(Message::Initiation(_))));
        let up = next(&mut c).await;
        assert!(
            matches!(&up, Some(Message::PeerUp(u)) if u.peer.peer_type == PeerType::LocRib),
            "{up:?}"
        );
        for _ in 0..2 {
            // End-of-RIB of the (empty) Loc-RIB, IPv4 and IPv6.
            assert!(matches!(
                next(&mut c).await,
                Some(Message::RouteMonitoring(_))
            ));
        }
        assert!(sh.live.load(Ordering::Relaxed));
        assert_eq!(sh.resyncs.get(), 1);

        // An event after the snapshot.
        let ev = BmpEvent::LocRib {
            local: local(),
            routes: vec![RouteChange {
                prefix: "198.19.0.0/24".parse().unwrap(),
                path_id: 0,
                attrs: None,
            }],
            at: Default::default(),
        };
        tx.send(Arc::new(ev)).await.unwrap();
        let Some(Message::RouteMonitoring(rm)) = next(&mut c).await else {
            panic!("a withdrawal")
        };
        let u = rm.decode_update().unwrap();
        assert_eq!(u.withdrawn.len(), 1);

        // Told to resynchronise: the connection is dropped and a new one
        // starts from a new snapshot.
        sh.live.store(false, Ordering::Relaxed);
        sh.resync.store(true, Ordering::Relaxed);
        sh.wake.notify_one();
        assert!(next(&mut c).await.is_none(), "the old connection closes");
        let (mut c2, _) = listener.accept().await.unwrap();
        assert!(matches!(next(&mut c2).await, Some(Message::Initiation(_))));
        let resynced = tokio::time::timeout(Duration::from_secs(5), async {
            while sh.resyncs.get() < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(resynced.is_ok(), "a second snapshot was taken");

        // The station removed: Termination, then the task ends.
        drop(tx);
        loop {
            match next(&mut c2).await {
                Some(Message::Termination(t)) => {
                    assert_eq!(&t[0].value[..], &[0, 0], "administratively closed");
                    break;
                }
                Some(_) => continue,
                None => panic!("closed without Termination"),
            }
        }
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the task ends")
            .unwrap();
    }
}
