//! BMP export (RFC 7854, RFC 9069): what the daemon core hands to each
//! monitoring station, and the stations' connection tasks.
//!
//! The core never waits on a station. Each station has a bounded queue of
//! [`BmpEvent`]s (shared by `Arc` between stations); when a queue is full
//! the event is dropped and counted, the station stops taking events and
//! its task reconnects, and the new connection starts with a full
//! [`Snapshot`] taken under the core's lock, so that nothing is silently
//! lost. While no station is connected the core builds no event at all.
//! Encoding happens in the station tasks ([`encode`]), not in the core.

pub mod encode;
pub mod station;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use tabby_bgp::Family;
use tabby_bgp::message::{Open, Update};
use tabby_bmp::{PeerDownReason, Stat, Timestamp};
use tabby_rib::{AdjRibInRoute, RouteAttrs};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::metrics::{Metrics, StationLabel};

/// Events a station may fall behind by before it is resynchronised.
pub const STATION_QUEUE: usize = 4096;

/// One established session as a station sees it (the Peer Up's content,
/// and the per-peer header of every message about it).
#[derive(Debug)]
pub struct PeerInfo {
    pub address: IpAddr,
    pub asn: u32,
    pub bgp_id: Ipv4Addr,
    /// The session negotiated 4-octet ASNs (else the A flag is set).
    pub four_octet_as: bool,
    /// Families the peer sends ADD-PATH identifiers in.
    pub add_path: BTreeSet<Family>,
    pub local: SocketAddr,
    pub remote_port: u16,
    pub sent_open: Arc<Open>,
    pub received_open: Arc<Open>,
    pub up_at: Timestamp,
}

/// This speaker, for the Loc-RIB instance (RFC 9069).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInfo {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Our own IPv6 address, the next hop of our own IPv6 routes.
    pub ipv6: Option<std::net::Ipv6Addr>,
}

/// A route's new state: its attributes, or `None` when it is gone.
#[derive(Debug, Clone)]
pub struct RouteChange {
    pub prefix: IpNet,
    pub path_id: u32,
    pub attrs: Option<Arc<RouteAttrs>>,
}

/// What the core tells every connected station, in order.
#[derive(Debug)]
pub enum BmpEvent {
    PeerUp(Arc<PeerInfo>),
    PeerDown {
        peer: Arc<PeerInfo>,
        reason: PeerDownReason,
        at: Timestamp,
    },
    /// An UPDATE as the peer sent it (pre-policy Adj-RIB-In).
    Received {
        peer: Arc<PeerInfo>,
        update: Arc<Update>,
        at: Timestamp,
    },
    /// The peer's routes after import policy (post-policy Adj-RIB-In).
    PostPolicy {
        peer: Arc<PeerInfo>,
        routes: Vec<RouteChange>,
        at: Timestamp,
    },
    /// End-of-RIB of a peer, in both of its Adj-RIBs-In.
    EndOfRib {
        peer: Arc<PeerInfo>,
        family: Family,
        at: Timestamp,
    },
    /// Best routes changed (Loc-RIB).
    LocRib {
        local: Arc<LocalInfo>,
        routes: Vec<RouteChange>,
        at: Timestamp,
    },
    /// A Statistics Report of one peer.
    Stats {
        peer: Arc<PeerInfo>,
        stats: Vec<Stat>,
        at: Timestamp,
    },
}

/// The whole state a newly connected station starts from.
#[derive(Debug)]
pub struct Snapshot {
    pub local: Option<Arc<LocalInfo>>,
    pub peers: Vec<PeerSnapshot>,
    pub loc_rib: Vec<(IpNet, Arc<RouteAttrs>)>,
    pub at: Timestamp,
}

#[derive(Debug)]
pub struct PeerSnapshot {
    pub info: Arc<PeerInfo>,
    /// `None` when the pre-policy table is not kept for this peer.
    pub pre: Option<Vec<AdjRibInRoute>>,
    pub post: Vec<AdjRibInRoute>,
    pub families: Vec<Family>,
}

/// What the core and a station's task share.
#[derive(Debug)]
pub struct StationShared {
    pub addr: SocketAddr,
    /// The task is connected and has its snapshot: events go to it.
    pub live: AtomicBool,
    /// Its queue overflowed (or the speaker changed): the task must
    /// reconnect and resynchronise.
    pub resync: AtomicBool,
    /// Wakes the task when `resync` is set (no event will).
    pub wake: tokio::sync::Notify,
    pub dropped: Counter,
    pub sent: Counter,
    pub resyncs: Counter,
}

/// One station's connection task, as the core starts it.
#[derive(Debug)]
pub struct StationTask {
    pub id: u64,
    pub shared: Arc<StationShared>,
    pub events: mpsc::Receiver<Arc<BmpEvent>>,
}

/// Starts a station's connection task (tokio in the daemon, a recorder in
/// tests).
pub type StationRunner = Box<dyn Fn(StationTask) + Send>;

#[derive(Debug)]
struct StationLink {
    id: u64,
    shared: Arc<StationShared>,
    tx: mpsc::Sender<Arc<BmpEvent>>,
}

/// The core's side of BMP export: the configured stations and their queues.
pub struct BmpExport {
    /// By address: from `--bmp-station` and from the datastore.
    stations: BTreeMap<SocketAddr, StationLink>,
    next_id: u64,
    runner: Option<StationRunner>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for BmpExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmpExport")
            .field("stations", &self.stations.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl BmpExport {
    pub fn new(metrics: Arc<Metrics>) -> BmpExport {
        BmpExport {
            stations: BTreeMap::new(),
            next_id: 1,
            runner: None,
            metrics,
        }
    }

    /// Station tasks are started by `runner`; without one, none start.
    pub fn set_runner(&mut self, runner: StationRunner) {
        self.runner = Some(runner);
    }

    /// Any station configured (then pre-policy tables are kept).
    pub fn configured(&self) -> bool {
        !self.stations.is_empty()
    }

    /// Makes `want` the set of stations: new ones start, missing ones stop
    /// (their tasks send Termination).
    pub fn set_stations(&mut self, want: &BTreeSet<SocketAddr>) {
        self.stations.retain(|addr, _| {
            let keep = want.contains(addr);
            if !keep {
                info!(station = %addr, "BMP station removed");
            }
            keep
        });
        for addr in want {
            if self.stations.contains_key(addr) {
                continue;
            }
            let label = StationLabel {
                station: addr.to_string(),
            };
            let shared = Arc::new(StationShared {
                addr: *addr,
                live: AtomicBool::new(false),
                resync: AtomicBool::new(false),
                wake: tokio::sync::Notify::new(),
                dropped: self.metrics.bmp_dropped.get_or_create(&label).clone(),
                sent: self.metrics.bmp_sent.get_or_create(&label).clone(),
                resyncs: self.metrics.bmp_resyncs.get_or_create(&label).clone(),
            });
            let (tx, events) = mpsc::channel(STATION_QUEUE);
            let id = self.next_id;
            self.next_id += 1;
            info!(station = %addr, "BMP station added");
            if let Some(run) = &self.runner {
                run(StationTask {
                    id,
                    shared: shared.clone(),
                    events,
                });
            }
            self.stations.insert(*addr, StationLink { id, shared, tx });
        }
    }

    /// A station is taking events: worth building them.
    pub fn any_live(&self) -> bool {
        self.stations
            .values()
            .any(|s| s.shared.live.load(Ordering::Relaxed))
    }

    /// Whether an event is worth building (a station takes events). When
    /// not, each station waiting to resynchronise counts it as dropped.
    pub fn wants_event(&self) -> bool {
        if self.any_live() {
            return true;
        }
        for s in self.stations.values() {
            if s.shared.resync.load(Ordering::Relaxed) {
                s.shared.dropped.inc();
            }
        }
        false
    }

    /// Hands an event to every live station without waiting; a full queue
    /// drops it, counts it and sends that station to resynchronise.
    pub fn emit(&self, event: impl FnOnce() -> BmpEvent) {
        if !self.wants_event() {
            return;
        }
        let event = Arc::new(event());
        for s in self.stations.values() {
            if !s.shared.live.load(Ordering::Relaxed) {
                if s.shared.resync.load(Ordering::Relaxed) {
                    s.shared.dropped.inc();
                }
                continue;
            }
            match s.tx.try_send(event.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(station = %s.shared.addr, queue = STATION_QUEUE,
                        "BMP station is not keeping up: dropping events until it resynchronises");
                    s.shared.live.store(false, Ordering::Relaxed);
                    s.shared.resync.store(true, Ordering::Relaxed);
                    s.shared.wake.notify_one();
                    s.shared.dropped.inc();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    s.shared.live.store(false, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sends every connected station to resynchronise (what it has seen no
    /// longer describes this speaker, e.g. its AS changed).
    pub fn resync_all(&self) {
        for s in self.stations.values() {
            if s.shared.live.swap(false, Ordering::Relaxed) {
                s.shared.resync.store(true, Ordering::Relaxed);
                s.shared.wake.notify_one();
            }
        }
    }

    /// Station `id` takes events from now on; `None` if it was removed.
    pub fn start_live(&self, id: u64) -> Option<()> {
        let s = self.stations.values().find(|s| s.id == id)?;
        s.shared.resync.store(false, Ordering::Relaxed);
        s.shared.live.store(true, Ordering::Relaxed);
        Some(())
    }

    /// Stops every station (each task sends Termination and closes).
    pub fn stop_all(&mut self) {
        self.stations.clear();
    }
}
