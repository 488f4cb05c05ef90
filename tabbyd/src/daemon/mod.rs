//! The daemon core: one owner of the RIB, the peers and the desired state.
//!
//! Everything that changes routing state goes through [`Daemon`]: session
//! events, datastore updates and API calls, each with the `now` of its
//! caller (the core reads no clock; wall time derives from the start). Each
//! entry point mutates the state and then [`Daemon::pump`]s the RIB's
//! outputs one way: best changes to the kernel view and the API watchers,
//! encoded UPDATE batches to the sessions. Three parts:
//!
//! - [`peer_table`]: the node state turned into peers (the topology diff),
//!   each peer's lifecycle, and what the sessions report back;
//! - [`kernel`]: best routes turned into kernel routes, and the restart
//!   rule's convergence, as one ordered op stream into fib-sync;
//! - [`api`]: the façade `core_api.rs` calls, and the conversions to and
//!   from the API's model (no API type is the core's state but the
//!   settings an API client gave a peer).
//!
//! The RIB and the FSMs are sans-IO; the I/O lives in the session tasks
//! and the FIB task, reached through channels.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use tabby_api::model::{self as am};
use tabby_api::{CoreError, RouteJournal};
use tabby_bgp::fsm::{DownReason, GrConfig, PeerAs, SessionConfig, State};
use tabby_bgp::message::{RefreshSubtype, Update};
use tabby_bgp::{Asn, Family};
use tabby_fib_sync::{FibRoute, NextHopSpec};
use tabby_rib::{
    BestRoute, DownKind, LocalKind, LocalRoute, PeerId, PeerSession, Rib, RibConfig, RouteSource,
};
use tabby_topology::{self as topo, Change, KernelRoute, NodeState};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::convert;
use crate::logging::LogControl;
use crate::metrics::{
    KindLabel, Metrics, PeerFamilyLabel, PeerLabel, SessionTransitionLabel, StateLabel,
};
use crate::sessions::{SessionHandle, SessionSpec, Sessions};
use prometheus_client::metrics::{family::Family as MetricFamily, gauge::Gauge};
use tabby_bgp_driver::{PeerCommand, PeerEvent};

mod api;
mod bfd;
mod bmp;
mod damping;
mod departures;
mod effective_config;
mod kernel;
mod peer_table;
mod route_listing;
#[cfg(test)]
mod tests;

pub use api::merge_bfd_info;
use api::*;
pub use bfd::{BfdNotice, BfdSessions, NoBfd};
use peer_table::*;

/// Owner name of the routes the cluster's resources originate (blocks,
/// service IPs). API clients may not use it.
pub const TOPOLOGY_OWNER: &str = "topology";

/// What the FIB task is asked to do.
pub use tabby_fib_sync::FibOp;

/// Options fixed at start.
#[derive(Debug, Clone)]
pub struct Options {
    pub node_name: String,
    pub tunnel_device: String,
    pub deferral_time: Duration,
    pub log_level: String,
    /// Per peer and family; 0 = no limit.
    pub max_prefixes: u32,
}

/// Why a peer exists.
#[derive(Debug, Clone)]
enum PeerOrigin {
    Topology(Box<topo::Peer>),
    /// Added through the API, with these settings.
    Api(Box<am::PeerConfig>),
}

/// Where the datastore stands, as the core knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatastoreState {
    /// No configuration read yet.
    Syncing,
    /// The last read was applied.
    InSync,
    /// Reading failed before any configuration was applied.
    Disconnected,
}

/// A peer's session as the daemon tracks it; `api.rs` builds the API's
/// view from it (and from the peer's origin) on request.
#[derive(Debug, Clone)]
struct SessionTrack {
    state: State,
    /// When `state` was entered.
    since: Instant,
    /// Administratively enabled (the API can stop a session).
    enabled: bool,
    remote_router_id: Option<std::net::Ipv4Addr>,
    hold_time: Option<Duration>,
    updates_sent: u64,
    updates_received: u64,
    prefixes_received: u64,
    notifications_sent: u64,
    notifications_received: u64,
    /// Times the session left Established.
    flaps: u64,
    /// The last NOTIFICATION, sent (`true`) or received, and when.
    last_error: Option<(tabby_bgp::Notification, bool, Instant)>,
    /// Why the session is where it is, for the info column.
    info: String,
}

impl SessionTrack {
    fn new(now: Instant) -> Self {
        SessionTrack {
            state: State::Idle,
            since: now,
            enabled: true,
            remote_router_id: None,
            hold_time: None,
            updates_sent: 0,
            updates_received: 0,
            prefixes_received: 0,
            notifications_sent: 0,
            notifications_received: 0,
            flaps: 0,
            last_error: None,
            info: String::new(),
        }
    }
}

#[derive(Debug)]
struct PeerSlot {
    id: PeerId,
    origin: PeerOrigin,
    session: SessionHandle,
    track: SessionTrack,
    families: BTreeSet<Family>,
    eor: BTreeSet<Family>,
    /// IPv4 offered over this IPv6 session (RFC 8950); re-checked when the
    /// peer's other sessions come and go.
    ipv4_over_ipv6: bool,
    established_at: Option<Instant>,
    /// This peer's `updates_sent` metric, looked up once.
    updates_out: prometheus_client::metrics::counter::Counter,
    /// The N bit of RFC 8538 was negotiated on the current session.
    gr_notification: bool,
    /// BFD, when the peer's settings ask for it.
    bfd: Option<bfd::BfdTrack>,
    /// BFD closed the session (diagnostic, when): its Down event is
    /// attributed to BFD in `route explain`.
    bfd_teardown: Option<(tabby_bfd_driver::Diag, Instant)>,
    /// The established session as BMP stations see it (Peer Up content).
    bmp_peer: Option<Arc<crate::bmp::PeerInfo>>,
    /// What the RIB refused of this session's UPDATEs, for BMP statistics.
    bmp_counts: bmp::SessionCounts,
}

/// The daemon core.
pub struct Daemon {
    opts: Options,
    /// How derivation reads what calico-node takes from its environment
    /// (`CALICO_ROUTER_ID`).
    derive: topo::DeriveOptions,
    clock: WallClock,
    state: Option<NodeState>,
    rib: Option<Rib>,
    /// By address and port: a peer may run speakers on several ports.
    /// Boxed: a slot is large, and the map's nodes would otherwise keep
    /// room for eleven of them each.
    peers: BTreeMap<topo::PeerKey, Box<PeerSlot>>,
    by_id: HashMap<PeerId, topo::PeerKey>,
    next_id: u32,
    sessions: Box<dyn Sessions>,
    bfd: Box<dyn BfdSessions>,
    /// Why prefixes lost paths to BFD, for `route explain`.
    departures: departures::Departures,
    kernel: kernel::KernelView,
    journal: RouteJournal,
    peer_events: tabby_api::Feed<am::PeerEvent>,
    peer_seq: u64,
    datastore: DatastoreState,
    datastore_detail: String,
    /// What the datastore skipped or cannot read; each is a readiness reason.
    datastore_problems: Vec<String>,
    /// What derivation skipped or could not honour (a missing Secret or BGPFilter…).
    config_warnings: Vec<String>,
    /// Why the BGP listener is not as configured (a failed bind), a readiness reason.
    listen_problem: Option<String>,
    /// When the datastore last changed this node's configuration (CalicoNodeStatus).
    last_reconfigured: Option<std::time::SystemTime>,
    log: Option<LogControl>,
    metrics: Arc<Metrics>,
    /// BMP monitoring stations and their queues.
    bmp: crate::bmp::BmpExport,
    bmp_flag_stations: BTreeSet<SocketAddr>,
    bmp_datastore_stations: BTreeSet<SocketAddr>,
    /// When BMP Statistics Reports are next due, and how often.
    bmp_stats_due: Option<Instant>,
    bmp_stats_interval: Duration,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("node", &self.opts.node_name)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

/// Wall-clock time derived from the monotonic `now` every entry point is
/// given: the clock is read once, when the core starts.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    started: Instant,
    started_wall: SystemTime,
}

impl WallClock {
    fn at(&self, now: Instant) -> SystemTime {
        self.started_wall + now.saturating_duration_since(self.started)
    }

    fn unix(&self, now: Instant) -> u64 {
        self.at(now)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

fn family_of_addr(a: &IpAddr) -> Family {
    match a {
        IpAddr::V4(_) => Family::IPV4_UNICAST,
        IpAddr::V6(_) => Family::IPV6_UNICAST,
    }
}

impl Daemon {
    pub fn new(
        opts: Options,
        sessions: Box<dyn Sessions>,
        fib: Option<mpsc::UnboundedSender<FibOp>>,
        log: Option<LogControl>,
        metrics: Arc<Metrics>,
        now: Instant,
    ) -> Daemon {
        let peer_events = tabby_api::Feed::new(1024);
        Daemon {
            kernel: kernel::KernelView::new(
                fib,
                opts.tunnel_device.clone(),
                now + opts.deferral_time,
            ),
            opts,
            derive: topo::DeriveOptions::default(),
            clock: WallClock {
                started: now,
                started_wall: SystemTime::now(),
            },
            state: None,
            rib: None,
            peers: BTreeMap::new(),
            by_id: HashMap::new(),
            next_id: 1,
            sessions,
            bfd: Box::new(NoBfd),
            departures: departures::Departures::default(),
            journal: RouteJournal::new(65_536, 4096),
            peer_events,
            peer_seq: 0,
            datastore: DatastoreState::Syncing,
            datastore_detail: "waiting for the first read".into(),
            datastore_problems: Vec::new(),
            config_warnings: Vec::new(),
            listen_problem: None,
            last_reconfigured: None,
            log,
            bmp: crate::bmp::BmpExport::new(metrics.clone()),
            bmp_flag_stations: BTreeSet::new(),
            bmp_datastore_stations: BTreeSet::new(),
            bmp_stats_due: None,
            bmp_stats_interval: Duration::from_secs(60),
            metrics,
        }
    }

    /// Derivation settings from the environment (the default: none).
    pub fn set_derive_options(&mut self, derive: topo::DeriveOptions) {
        self.derive = derive;
    }

    /// BFD sessions go to `bfd` (the daemon starts with [`NoBfd`]).
    pub fn set_bfd(&mut self, bfd: Box<dyn BfdSessions>) {
        self.bfd = bfd;
    }

    /// When the core next needs [`Daemon::on_timer`].
    pub fn next_deadline(&self) -> Option<Instant> {
        let rib = self.rib.as_ref().and_then(|r| r.next_deadline());
        [
            rib,
            self.kernel.next_deadline(),
            self.bfd_deadline(),
            self.bmp_stats_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn on_timer(&mut self, now: Instant) {
        if let Some(rib) = self.rib.as_mut() {
            rib.on_timer(now);
        }
        self.bfd_timer(now);
        self.bmp_timer(now);
        self.pump(now);
    }

    /// Moves the RIB's outputs to the kernel, the watchers and the sessions.
    pub fn pump(&mut self, now: Instant) {
        let Some(rib) = self.rib.as_mut() else {
            return;
        };
        let changes = rib.drain_best_changes();
        let changed = rib.drain_changed_prefixes();
        let outgoing = rib.drain_outgoing();
        self.deliver_best(changes, changed, now);
        for out in outgoing {
            self.send_outgoing(out);
        }
        self.check_converged(now);
    }

    /// Best-route changes to the kernel view and the route watchers: with
    /// a FIB each change says what the best became; without one (a
    /// reflector) only which prefixes changed.
    pub(super) fn deliver_best(
        &mut self,
        changes: Vec<tabby_rib::BestChange>,
        changed: Vec<IpNet>,
        now: Instant,
    ) {
        self.bmp_loc_rib(&changes, &changed, now);
        for c in changes {
            // Built only for live watchers: a reflector's million changes
            // would otherwise each be converted for nobody.
            self.journal
                .publish_with(c.prefix, || route_update(c.prefix, c.best.as_ref()));
            self.kernel.best_changed(
                self.state.as_ref(),
                c.prefix,
                c.best.as_ref(),
                &self.metrics,
            );
        }
        // Without change detail: the route as it is now, built only for
        // live watchers.
        if let Some(rib) = self.rib.as_ref() {
            for p in changed {
                self.journal
                    .publish_with(p, || route_update(p, rib.best(&p).as_ref()));
            }
        }
    }

    /// Hands one RIB batch to its recipients. The batch was encoded once
    /// by the update group: every member gets the same `Arc` and, in its
    /// session task, skips what came from itself, so a reflector's fan-out
    /// costs one pointer per member, not a copy.
    pub(super) fn send_outgoing(&mut self, out: tabby_rib::Outgoing) {
        for &peer in out.to.peers() {
            let Some(slot) = self.by_id.get(&peer).and_then(|a| self.peers.get_mut(a)) else {
                continue;
            };
            let n = out.batch.messages_for(peer.0);
            if n == 0 {
                continue;
            }
            slot.track.updates_sent += n;
            slot.updates_out.inc_by(n);
            slot.session.command(PeerCommand::SendShared {
                batch: out.batch.clone(),
                member: peer.0,
            });
        }
    }
}
