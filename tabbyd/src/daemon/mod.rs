//! The daemon core: one owner of the RIB, the peers and the desired state.
//!
//! Everything that changes routing state goes through [`Daemon`]: session
//! events, datastore updates and API calls. Each entry point mutates the
//! state and then [`Daemon::pump`]s the RIB's outputs to the kernel, the
//! API watchers and the sessions. The RIB and the FSMs are sans-IO; the I/O
//! lives in the session tasks and the FIB task, reached through channels.

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
    BestChange, BestRoute, DownKind, LocalKind, LocalRoute, PeerId, PeerSession, Rib, RibConfig,
    RouteSource,
};
use tabby_topology::{self as topo, Change, KernelRoute, NodeState};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::convert;
use crate::logging::LogControl;
use crate::metrics::{KindLabel, Metrics, PeerFamilyLabel, PeerLabel, StateLabel};
use crate::sessions::{SessionHandle, SessionSpec, Sessions};
use prometheus_client::metrics::{family::Family as MetricFamily, gauge::Gauge};
use tabby_bgp_driver::{PeerCommand, PeerEvent};

mod api;
mod effective_config;
mod kernel;
mod peer_table;
mod route_listing;
#[cfg(test)]
mod tests;

use api::*;
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
    Api,
}

#[derive(Debug)]
struct PeerSlot {
    id: PeerId,
    origin: PeerOrigin,
    session: SessionHandle,
    status: am::PeerStatus,
    families: BTreeSet<Family>,
    eor: BTreeSet<Family>,
    /// IPv4 offered over this IPv6 session (RFC 8950); re-checked when the
    /// peer's other sessions come and go.
    ipv4_over_ipv6: bool,
    established_at: Option<Instant>,
    /// This peer's `updates_sent` metric, looked up once.
    updates_out: prometheus_client::metrics::counter::Counter,
}

/// The daemon core.
pub struct Daemon {
    opts: Options,
    started: Instant,
    state: Option<NodeState>,
    rib: Option<Rib>,
    peers: BTreeMap<IpAddr, PeerSlot>,
    by_id: HashMap<PeerId, IpAddr>,
    next_id: u32,
    sessions: Box<dyn Sessions>,
    fib: Option<mpsc::UnboundedSender<FibOp>>,
    fib_converged: bool,
    deferral_deadline: Instant,
    journal: RouteJournal,
    peer_events: tabby_api::Feed<am::PeerEvent>,
    peer_seq: u64,
    local_routes: BTreeMap<String, BTreeMap<IpNet, am::LocalRoute>>,
    /// Prefixes currently programmed into the kernel by us.
    in_fib: BTreeSet<IpNet>,
    datastore: am::DatastoreSync,
    datastore_detail: String,
    /// What the datastore skipped or cannot read; each is a readiness reason.
    datastore_problems: Vec<String>,
    /// What derivation skipped or could not honour (a missing Secret or BGPFilter…).
    config_warnings: Vec<String>,
    /// When the datastore last changed this node's configuration (CalicoNodeStatus).
    last_reconfigured: Option<std::time::SystemTime>,
    log: Option<LogControl>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("node", &self.opts.node_name)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    ) -> Daemon {
        let now = Instant::now();
        let peer_events = tabby_api::Feed::new(1024);
        Daemon {
            deferral_deadline: now + opts.deferral_time,
            opts,
            started: now,
            state: None,
            rib: None,
            peers: BTreeMap::new(),
            by_id: HashMap::new(),
            next_id: 1,
            sessions,
            fib,
            fib_converged: false,
            journal: RouteJournal::new(65_536, 4096),
            peer_events,
            peer_seq: 0,
            local_routes: BTreeMap::new(),
            in_fib: BTreeSet::new(),
            datastore: am::DatastoreSync::Syncing,
            datastore_detail: "waiting for the first read".into(),
            datastore_problems: Vec::new(),
            config_warnings: Vec::new(),
            last_reconfigured: None,
            log,
            metrics,
        }
    }
    /// When the core next needs [`Daemon::on_timer`].
    pub fn next_deadline(&self) -> Option<Instant> {
        let rib = self.rib.as_ref().and_then(|r| r.next_deadline());
        let deferral =
            (!self.fib_converged && self.fib.is_some()).then_some(self.deferral_deadline);
        match (rib, deferral) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    pub fn on_timer(&mut self, now: Instant) {
        if let Some(rib) = self.rib.as_mut() {
            rib.on_timer(now);
        }
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
        for c in changes {
            self.best_changed(c);
        }
        // Without change detail (no FIB): the route as it is now, built
        // only for live watchers.
        if let Some(rib) = self.rib.as_ref() {
            for p in changed {
                self.journal
                    .publish_with(p, || route_update(p, rib.best(&p).as_ref()));
            }
        }
        for out in outgoing {
            self.send_outgoing(out);
        }
        self.check_converged(now);
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
            slot.status.counters.updates_sent += n;
            slot.updates_out.inc_by(n);
            slot.session.command(PeerCommand::SendShared {
                batch: out.batch.clone(),
                member: peer.0,
            });
        }
    }
}
