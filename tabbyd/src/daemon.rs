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

fn api_family(f: Family) -> Option<am::Family> {
    match f {
        Family::IPV4_UNICAST => Some(am::Family::Ipv4),
        Family::IPV6_UNICAST => Some(am::Family::Ipv6),
        _ => None,
    }
}

fn api_state(s: State) -> am::SessionState {
    match s {
        State::Idle => am::SessionState::Idle,
        State::Connect => am::SessionState::Connect,
        State::Active => am::SessionState::Active,
        State::OpenSent => am::SessionState::OpenSent,
        State::OpenConfirm => am::SessionState::OpenConfirm,
        State::Established => am::SessionState::Established,
    }
}

fn local_kind(k: am::RouteKind) -> LocalKind {
    match k {
        am::RouteKind::PodBlock => LocalKind::PodBlock,
        // A route announced without a kind (e.g. `gobgp global rib add`) is
        // advertised only; the kernel gets no blackhole for it.
        am::RouteKind::Unspecified => LocalKind::Static,
        am::RouteKind::Host => LocalKind::HostRoute,
        am::RouteKind::ServiceIp => LocalKind::Service,
    }
}

fn api_kind(k: LocalKind) -> am::RouteKind {
    match k {
        LocalKind::PodBlock => am::RouteKind::PodBlock,
        LocalKind::HostRoute => am::RouteKind::Host,
        LocalKind::Service => am::RouteKind::ServiceIp,
        LocalKind::Static => am::RouteKind::Unspecified,
    }
}

fn rib_local_route(r: &am::LocalRoute) -> LocalRoute {
    LocalRoute {
        kind: local_kind(r.kind),
        communities: r
            .communities
            .iter()
            .map(|c| tabby_bgp::attr::Community(*c))
            .collect(),
        large_communities: r
            .large_communities
            .iter()
            .map(|l| tabby_bgp::attr::LargeCommunity {
                global_admin: l.global_admin,
                local_data_1: l.local_data1,
                local_data_2: l.local_data2,
            })
            .collect(),
        next_hop: r.next_hop,
        local_pref: None,
        med: None,
    }
}

/// The API's view of one candidate path of an explanation.
fn candidate_path(c: &tabby_rib::CandidateExplain) -> am::Path {
    let b = BestRoute {
        next_hops: Vec::new(),
        local: matches!(c.source, RouteSource::Local { .. }),
        source: c.source.clone(),
        attributes: c.attributes.clone(),
        stale: c.stale,
    };
    api_path(&b, c.best)
}

/// A best-route change as the API reports it.
fn route_update(prefix: IpNet, best: Option<&BestRoute>) -> am::RouteUpdate {
    match best {
        Some(b) => am::RouteUpdate::BestChanged {
            prefix,
            best: api_path(b, true),
        },
        None => am::RouteUpdate::Withdrawn { prefix },
    }
}

#[path = "effective_config.rs"]
mod effective_config;
#[path = "route_listing.rs"]
mod route_listing;

/// The API's view of one path.
fn api_path(best: &BestRoute, is_best: bool) -> am::Path {
    let a = &best.attributes.attrs;
    let next_hop = best
        .next_hops
        .first()
        .map(|h| h.addr)
        .unwrap_or(best.attributes.next_hop.addr);
    let (source, kind) = match &best.source {
        // Owners in the RIB are TOPOLOGY_OWNER or names the API validated;
        // any other is still a local route's, shown under a mended name.
        RouteSource::Local { owner, kind } => (
            am::PathSource::Local(am::Owner::lossy(owner)),
            api_kind(*kind),
        ),
        RouteSource::Peer { address, .. } => {
            (am::PathSource::Peer(*address), am::RouteKind::Unspecified)
        }
    };
    am::Path {
        next_hop,
        as_path: a.as_path.iter().map(|x| x.0).collect(),
        origin: match a.origin {
            Some(tabby_bgp::attr::Origin::Egp) => am::Origin::Egp,
            Some(tabby_bgp::attr::Origin::Incomplete) => am::Origin::Incomplete,
            _ => am::Origin::Igp,
        },
        local_pref: a.local_pref.unwrap_or(100),
        med: a.med,
        communities: a.communities.iter().map(|c| c.0).collect(),
        large_communities: a
            .large_communities
            .iter()
            .map(|l| am::LargeCommunity {
                global_admin: l.global_admin,
                local_data1: l.local_data_1,
                local_data2: l.local_data_2,
            })
            .collect(),
        source,
        best: is_best,
        age_seconds: 0,
        kind,
        stale: best.stale,
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

    // ------------------------------------------------------------ datastore

    /// A datastore read failed: keep running on the last good state.
    pub fn datastore_error(&mut self, err: &str) {
        warn!(error = %err, "datastore update rejected; the last good configuration keeps running");
        self.metrics
            .datastore_events
            .get_or_create(&KindLabel {
                kind: "error".into(),
            })
            .inc();
        self.datastore = if self.state.is_some() {
            am::DatastoreSync::InSync
        } else {
            am::DatastoreSync::Disconnected
        };
        self.datastore_detail = err.to_owned();
    }

    /// New resources arrived: derive this node's state and apply the delta.
    pub fn apply_resources(&mut self, res: &topo::Resources, now: Instant) {
        let new = match topo::derive(res, &self.opts.node_name) {
            Ok(s) => s,
            Err(e) => {
                self.datastore_error(&format!("cannot derive node {}: {e}", self.opts.node_name));
                return;
            }
        };
        // Each warning is said once, when it appears, and stays a readiness reason
        // while it holds.
        for w in new
            .warnings
            .iter()
            .filter(|w| !self.config_warnings.contains(w))
        {
            warn!(warning = %w, "configuration");
        }
        self.config_warnings = new.warnings.clone();
        self.metrics
            .datastore_events
            .get_or_create(&KindLabel {
                kind: "applied".into(),
            })
            .inc();
        self.datastore = am::DatastoreSync::InSync;
        self.datastore_problems = res.problems.clone();
        let mut problems = res.problems.clone();
        problems.extend(new.warnings.iter().cloned());
        self.datastore_detail = match problems.as_slice() {
            [] => format!("{} resources", res.len()),
            [one] => format!("{} resources; 1 problem: {one}", res.len()),
            [first, rest @ ..] => format!(
                "{} resources; {} problems: {first} (and {} more, see /readyz)",
                res.len(),
                problems.len(),
                rest.len()
            ),
        };
        match self.state.take() {
            None => self.first_state(new, now),
            Some(old) => self.apply_diff(old, new, now),
        }
        self.pump(now);
    }

    fn rib_config(state: &NodeState) -> RibConfig {
        let mut cfg = RibConfig::new(state.router_id, Asn(state.local_as));
        cfg.cluster_id = state.rr_cluster_id;
        cfg.max_paths = 8;
        cfg.local_addresses = state
            .ipv4
            .map(|n| IpAddr::V4(n.addr()))
            .into_iter()
            .chain(state.ipv6.map(|n| IpAddr::V6(n.addr())))
            .collect();
        cfg
    }

    fn first_state(&mut self, state: NodeState, now: Instant) {
        self.last_reconfigured = Some(std::time::SystemTime::now());
        info!(
            node = %state.node_name,
            router_id = %state.router_id,
            asn = state.local_as,
            peers = state.peers.len(),
            originated = state.originated.len(),
            "configuration loaded"
        );
        let mut rib = Rib::new(Self::rib_config(&state));
        // A reflector without a FIB needs no route per change; the journal
        // asks for the current one when somebody watches live.
        rib.set_change_detail(self.fib.is_some());
        self.rib = Some(rib);
        let listen: Vec<SocketAddr> = if state.listen_addresses.is_empty() {
            vec![SocketAddr::new(
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                state.listen_port,
            )]
        } else {
            state
                .listen_addresses
                .iter()
                .map(|a| SocketAddr::new(*a, state.listen_port))
                .collect()
        };
        if let Err(e) = self.sessions.listen(listen) {
            error!(error = %e, "cannot accept BGP connections; only outgoing sessions will work");
        }
        self.state = Some(state);
        self.originate_all();
        let peers: Vec<topo::Peer> = self
            .state
            .as_ref()
            .map(|s| s.peers.values().cloned().collect())
            .unwrap_or_default();
        for p in peers {
            self.add_topology_peer(p, now);
        }
    }

    fn originate_all(&mut self) {
        let (Some(state), Some(rib)) = (self.state.as_ref(), self.rib.as_mut()) else {
            return;
        };
        let routes = state
            .originated
            .values()
            .map(|r| (r.prefix, convert::local_route(r)))
            .collect();
        rib.replace_local(TOPOLOGY_OWNER, routes);
    }

    fn apply_diff(&mut self, old: NodeState, new: NodeState, now: Instant) {
        let changes = topo::diff(&old, &new);
        if changes.is_empty() {
            debug!("datastore update changes nothing for this node");
            self.state = Some(new);
            return;
        }
        info!(changes = changes.len(), "applying configuration changes");
        self.last_reconfigured = Some(std::time::SystemTime::now());
        let restart_needed = changes
            .iter()
            .any(|c| matches!(c, Change::GlobalChanged(f) if f.iter().any(|f| f.needs_restart())));
        if restart_needed {
            // Router id, AS, cluster id or listen address changed: every
            // session and the RIB depend on them. Rebuild from scratch.
            warn!(
                "router id, AS number, cluster id or listen settings changed: re-establishing every session"
            );
            let ids: Vec<IpAddr> = self.peers.keys().copied().collect();
            for a in ids {
                self.remove_peer_slot(a, now);
            }
            self.rib = None;
            self.first_state(new, now);
            return;
        }
        self.state = Some(new);
        let mut policy_all = false;
        let mut originated = false;
        for c in changes {
            match c {
                Change::PeerAdded(key) => {
                    if let Some(p) = self.state.as_ref().and_then(|s| s.peers.get(&key)).cloned() {
                        info!(peer = %key, "peer added");
                        self.add_topology_peer(p, now);
                    }
                }
                Change::PeerRemoved(key) => {
                    info!(peer = %key, "peer removed");
                    self.remove_peer_slot(key.address, now);
                }
                Change::PeerChanged { key, fields } => {
                    let Some(p) = self.state.as_ref().and_then(|s| s.peers.get(&key)).cloned()
                    else {
                        continue;
                    };
                    if fields.iter().any(|f| f.needs_reset()) {
                        info!(peer = %key, ?fields, "session settings changed: re-establishing this session only");
                        self.remove_peer_slot(key.address, now);
                        self.add_topology_peer(p, now);
                    } else if fields.iter().any(|f| f.is_policy()) {
                        info!(peer = %key, ?fields, "policy changed: soft reconfiguration");
                        if let Some(slot) = self.peers.get_mut(&key.address) {
                            slot.origin = PeerOrigin::Topology(Box::new(p));
                        }
                        self.refresh_policy(key.address);
                    } else if let Some(slot) = self.peers.get_mut(&key.address) {
                        slot.origin = PeerOrigin::Topology(Box::new(p));
                    }
                }
                Change::OriginatedAdded(_)
                | Change::OriginatedRemoved(_)
                | Change::OriginatedChanged(_) => {
                    originated = true;
                }
                Change::ExportBaseChanged { .. } => policy_all = true,
                Change::PoolsChanged => {
                    policy_all = true;
                    self.reprogram_all();
                }
                Change::GlobalChanged(fields) => {
                    info!(?fields, "global settings changed (no session affected)");
                }
                Change::StaticRoutesChanged => {
                    debug!("static routes changed");
                }
            }
        }
        self.recheck_ipv4_over_ipv6(now);
        if originated {
            self.originate_all();
        }
        if policy_all {
            let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
            for a in addrs {
                self.refresh_policy(a);
            }
        }
    }

    /// Re-applies a topology peer's import/export policy without a reset.
    fn refresh_policy(&mut self, address: IpAddr) {
        let (Some(state), Some(rib)) = (self.state.as_ref(), self.rib.as_mut()) else {
            return;
        };
        let Some(slot) = self.peers.get(&address) else {
            return;
        };
        let PeerOrigin::Topology(p) = &slot.origin else {
            return;
        };
        let cfg = convert::peer_config(state, p);
        match rib.update_policy(slot.id, cfg.import, cfg.export) {
            Ok(outcome) => {
                for f in outcome.route_refresh {
                    slot.session.command(PeerCommand::RouteRefresh(f));
                }
            }
            Err(e) => warn!(peer = %address, error = %e, "policy update failed"),
        }
    }

    /// The families offered to a topology peer: its address's, plus IPv4
    /// with RFC 8950 extended next hop on an IPv6-only peering.
    fn topology_families(state: &NodeState, p: &topo::Peer) -> Vec<Family> {
        let mut f = vec![family_of_addr(&p.key.address)];
        if convert::ipv4_over_ipv6(state, p) {
            f.push(Family::IPV4_UNICAST);
        }
        f
    }

    /// The session and RIB settings of every peer, from the cluster or the API, come from
    /// one [`topo::Peer`].
    fn session_spec(state: &NodeState, p: &topo::Peer) -> SessionSpec {
        let local_as = Asn(p.local_as_override.unwrap_or(state.local_as));
        let mut cfg = SessionConfig::new(local_as, PeerAs::Exact(Asn(p.peer_as)), state.router_id);
        cfg.passive = p.passive;
        // IPv4 rides an IPv6 session only toward a peer this node reaches
        // over IPv6 alone (see `convert::ipv4_over_ipv6`).
        cfg.extended_next_hop = convert::ipv4_over_ipv6(state, p);
        cfg.families = Self::topology_families(state, p);
        if let Some(k) = p.keepalive_time {
            let k = k.as_secs().clamp(1, 21_845) as u16;
            cfg.keepalive = Some(k);
            cfg.hold_time = k.saturating_mul(3);
        }
        cfg.graceful_restart = Some(GrConfig {
            restart_time: p
                .graceful_restart_time
                .map(|d| d.as_secs().min(4095) as u16)
                .unwrap_or(120),
            ..GrConfig::default()
        });
        SessionSpec {
            config: cfg,
            remote: SocketAddr::new(p.key.address, p.key.port),
            local_address: p.source_address.or(match p.key.address {
                IpAddr::V4(_) => state.ipv4.map(|n| IpAddr::V4(n.addr())),
                IpAddr::V6(_) => state.ipv6.map(|n| IpAddr::V6(n.addr())),
            }),
            md5_password: p.password.clone(),
            ttl_security: p.ttl_security,
        }
    }

    /// An IPv4 session to a peer appeared or went away: its IPv6 session
    /// must start or stop carrying IPv4, which only a new OPEN can say.
    fn recheck_ipv4_over_ipv6(&mut self, now: Instant) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        let flipped: Vec<topo::Peer> = self
            .peers
            .values()
            .filter_map(|slot| {
                let PeerOrigin::Topology(p) = &slot.origin else {
                    return None;
                };
                let p = state.peers.get(&p.key)?;
                (convert::ipv4_over_ipv6(state, p) != slot.ipv4_over_ipv6).then(|| p.clone())
            })
            .collect();
        for p in flipped {
            info!(peer = %p.key, "IPv4 over this IPv6 session changes: re-establishing it");
            self.remove_peer_slot(p.key.address, now);
            self.add_topology_peer(p, now);
        }
    }

    fn alloc_id(&mut self) -> PeerId {
        let id = PeerId(self.next_id);
        self.next_id += 1;
        id
    }

    fn add_topology_peer(&mut self, p: topo::Peer, _now: Instant) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        if self.peers.contains_key(&p.key.address) {
            warn!(peer = %p.key, "two peerings with the same address; keeping the first");
            return;
        }
        let spec = Self::session_spec(state, &p);
        let rib_cfg = convert::peer_config(state, &p);
        let peer_type = match p.kind {
            topo::PeerKind::Mesh => am::PeerType::NodeMesh,
            topo::PeerKind::Global => am::PeerType::Global,
            topo::PeerKind::Node => am::PeerType::NodeSpecific,
        };
        let mut cfg = am::PeerConfig::new(p.key.address, p.peer_as);
        cfg.local_as = p.local_as_override;
        cfg.passive = p.passive;
        cfg.route_reflector_client = p.rr_client;
        cfg.peer_type = peer_type;
        cfg.description = p.calico_node.clone().unwrap_or_else(|| p.origin.clone());
        cfg.families = Self::topology_families(state, &p)
            .into_iter()
            .filter_map(api_family)
            .collect();
        cfg.keepalive = spec.config.keepalive;
        cfg.hold_time = Some(spec.config.hold_time);
        self.install_peer(PeerOrigin::Topology(Box::new(p)), spec, rib_cfg, cfg);
    }

    fn install_peer(
        &mut self,
        origin: PeerOrigin,
        spec: SessionSpec,
        rib_cfg: tabby_rib::PeerConfig,
        api_cfg: am::PeerConfig,
    ) {
        let id = self.alloc_id();
        let address = api_cfg.address;
        let ipv4_over_ipv6 = spec.config.extended_next_hop;
        if let Some(rib) = self.rib.as_mut()
            && let Err(e) = rib.add_peer(id, rib_cfg)
        {
            warn!(peer = %address, error = %e, "RIB refused the peer");
            return;
        }
        let session = match self.sessions.spawn(id, spec) {
            Ok(s) => s,
            Err(e) => {
                warn!(peer = %address, error = %e, "cannot start the session");
                if let Some(rib) = self.rib.as_mut() {
                    let _ = rib.remove_peer(id);
                }
                return;
            }
        };
        session.command(PeerCommand::Start);
        let mut status = am::PeerStatus::idle(api_cfg);
        status.state_since_unix_seconds = unix_now();
        self.by_id.insert(id, address);
        self.peers.insert(
            address,
            PeerSlot {
                id,
                origin,
                session,
                status,
                families: BTreeSet::new(),
                eor: BTreeSet::new(),
                ipv4_over_ipv6,
                established_at: None,
                updates_out: self
                    .metrics
                    .updates_out
                    .get_or_create(&PeerLabel {
                        peer: address.to_string(),
                    })
                    .clone(),
            },
        );
        self.metrics
            .sessions
            .get_or_create(&StateLabel {
                state: "Idle".into(),
            })
            .inc();
        self.publish_peer(address, am::PeerChange::Added);
    }

    fn remove_peer_slot(&mut self, address: IpAddr, now: Instant) {
        let Some(slot) = self.peers.remove(&address) else {
            return;
        };
        slot.session
            .command(PeerCommand::Stop(Some("peer de-configured".into())));
        self.by_id.remove(&slot.id);
        if let Some(rib) = self.rib.as_mut() {
            let _ = rib.peer_down(slot.id, DownKind::Flush, now);
            if let Err(e) = rib.remove_peer(slot.id) {
                debug!(peer = %address, error = %e, "RIB peer removal");
            }
        }
        self.metrics
            .sessions
            .get_or_create(&StateLabel {
                state: slot.status.state.name().into(),
            })
            .dec();
        self.peer_seq += 1;
        let sequence = self.peer_seq;
        self.peer_events.send_with(|| am::PeerEvent {
            sequence,
            change: am::PeerChange::Removed,
            peer: slot.status,
        });
        self.pump(now);
    }

    fn publish_peer(&mut self, address: IpAddr, change: am::PeerChange) {
        let Some(slot) = self.peers.get(&address) else {
            return;
        };
        self.peer_seq += 1;
        let sequence = self.peer_seq;
        self.peer_events.send_with(|| am::PeerEvent {
            sequence,
            change,
            peer: self.status_of(slot),
        });
    }

    fn status_of(&self, slot: &PeerSlot) -> am::PeerStatus {
        let mut s = slot.status.clone();
        if let Some(t) = slot.established_at {
            s.uptime_seconds = t.elapsed().as_secs();
        }
        if let Some(rib) = self.rib.as_ref() {
            let accepted: usize = slot
                .families
                .iter()
                .map(|f| rib.prefix_count(slot.id, *f))
                .sum();
            s.counters.prefixes_accepted = accepted as u64;
            let advertised: usize = slot
                .families
                .iter()
                .map(|f| rib.advertised_count(slot.id, *f))
                .sum();
            s.counters.prefixes_advertised = advertised as u64;
        }
        s.graceful_restart_pending = s.state != am::SessionState::Established
            && slot.status.counters.flaps > 0
            && self.rib.as_ref().is_some_and(|r| {
                slot.families
                    .iter()
                    .any(|f| r.prefix_count(slot.id, *f) > 0)
            });
        s
    }

    /// Sets the per-peer, per-family prefix gauges from the RIB; called
    /// before each `/metrics` scrape so the gauges cost nothing otherwise.
    pub fn refresh_prefix_gauges(&self) {
        let Some(rib) = self.rib.as_ref() else {
            return;
        };
        self.metrics.prefixes_received.clear();
        self.metrics.prefixes_advertised.clear();
        for (addr, slot) in &self.peers {
            for f in &slot.families {
                let label = PeerFamilyLabel {
                    peer: addr.to_string(),
                    family: f.to_string(),
                };
                let set = |g: &MetricFamily<PeerFamilyLabel, Gauge>, n: usize| {
                    g.get_or_create(&label)
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                };
                set(
                    &self.metrics.prefixes_received,
                    rib.prefix_count(slot.id, *f),
                );
                set(
                    &self.metrics.prefixes_advertised,
                    rib.advertised_count(slot.id, *f),
                );
            }
        }
    }

    // ------------------------------------------------------------ sessions

    /// One session event, then the RIB's outputs pumped.
    #[cfg(test)]
    pub fn session_event(&mut self, id: PeerId, ev: PeerEvent, now: Instant) {
        self.absorb_session_event(id, ev, now);
        self.pump(now);
    }

    /// One session event into the RIB without pumping: the event loop
    /// absorbs every queued event first and pumps once, so UPDATEs that
    /// arrived together leave in shared batches.
    pub fn absorb_session_event(&mut self, id: PeerId, ev: PeerEvent, now: Instant) {
        let Some(&address) = self.by_id.get(&id) else {
            return; // a late event from a removed peer
        };
        match ev {
            PeerEvent::StateChanged { from, to } => {
                if let Some(slot) = self.peers.get_mut(&address) {
                    slot.status.state = api_state(to);
                    slot.status.state_since_unix_seconds = unix_now();
                    if to == State::Established {
                        slot.established_at = Some(now);
                    } else if from == State::Established {
                        slot.established_at = None;
                        slot.status.counters.flaps += 1;
                    }
                }
                self.metrics
                    .sessions
                    .get_or_create(&StateLabel {
                        state: from.to_string(),
                    })
                    .dec();
                self.metrics
                    .sessions
                    .get_or_create(&StateLabel {
                        state: to.to_string(),
                    })
                    .inc();
                info!(peer = %address, %from, %to, "session state");
                self.publish_peer(
                    address,
                    am::PeerChange::StateChanged {
                        previous: api_state(from),
                    },
                );
            }
            PeerEvent::Established(neg) => {
                let session = PeerSession::from(neg.as_ref());
                if let Some(slot) = self.peers.get_mut(&address) {
                    slot.families = neg.families.clone();
                    slot.eor.clear();
                    slot.status.remote_router_id = Some(neg.peer_id);
                    slot.status.negotiated_hold_time = neg.hold_time.as_secs() as u16;
                    slot.status.negotiated_families =
                        neg.families.iter().filter_map(|f| api_family(*f)).collect();
                    slot.status.info = "Established".into();
                }
                if let Some(rib) = self.rib.as_mut()
                    && let Err(e) = rib.peer_up(id, session, now)
                {
                    warn!(peer = %address, error = %e, "RIB refused the session");
                }
            }
            PeerEvent::Update(u) => {
                if let Some(slot) = self.peers.get_mut(&address) {
                    slot.status.counters.updates_received += 1;
                    slot.status.counters.prefixes_received +=
                        (u.nlri.len() + u.mp_reach.as_ref().map_or(0, |m| m.nlri.len())) as u64;
                }
                self.metrics
                    .updates_in
                    .get_or_create(&PeerLabel {
                        peer: address.to_string(),
                    })
                    .inc();
                if let Some(rib) = self.rib.as_mut() {
                    match rib.apply_update(id, &u) {
                        Ok(out) => {
                            for (reason, n) in out.rejected {
                                debug!(peer = %address, ?reason, n, "routes rejected");
                            }
                        }
                        Err(e) => warn!(peer = %address, error = %e, "UPDATE not applied"),
                    }
                }
                self.check_max_prefixes(address, id);
            }
            PeerEvent::EndOfRib(f) => {
                debug!(peer = %address, family = %f, "End-of-RIB received");
                if let Some(slot) = self.peers.get_mut(&address) {
                    slot.eor.insert(f);
                }
                if let Some(rib) = self.rib.as_mut()
                    && let Err(e) = rib.apply_update(id, &Update::end_of_rib(f))
                {
                    warn!(peer = %address, error = %e, "End-of-RIB not applied");
                }
            }
            PeerEvent::RouteRefresh(rr) => {
                if rr.subtype == RefreshSubtype::Request
                    && let Some(rib) = self.rib.as_mut()
                    && let Err(e) = rib.route_refresh(id, rr.family)
                {
                    warn!(peer = %address, error = %e, "route refresh not served");
                }
            }
            PeerEvent::Down(d) => {
                let kind = DownKind::from(&d);
                info!(peer = %address, reason = %d.reason, graceful = d.stale.is_some(), "session down");
                if let Some(slot) = self.peers.get_mut(&address) {
                    slot.status.info = d.reason.to_string();
                    let note = |n: &tabby_bgp::Notification, local: bool| am::PeerError {
                        code: n.code,
                        subcode: n.subcode,
                        text: n.to_string(),
                        sent_by_local: local,
                        at_unix_seconds: unix_now(),
                    };
                    match &d.reason {
                        DownReason::NotificationSent(n) => {
                            slot.status.counters.notifications_sent += 1;
                            slot.status.last_error = Some(note(n, true));
                        }
                        DownReason::NotificationReceived(n) => {
                            slot.status.counters.notifications_received += 1;
                            slot.status.last_error = Some(note(n, false));
                        }
                        _ => {}
                    }
                }
                if d.was_established
                    && let Some(rib) = self.rib.as_mut()
                    && let Err(e) = rib.peer_down(id, kind, now)
                {
                    debug!(peer = %address, error = %e, "RIB peer down");
                }
            }
            PeerEvent::CommandFailed(why) => {
                debug!(peer = %address, %why, "session command not carried out");
            }
        }
    }

    /// RFC 4486 §4: past the limit, Cease / Maximum Number of Prefixes
    /// Reached with AFI, SAFI and the limit as data.
    fn check_max_prefixes(&mut self, address: IpAddr, id: PeerId) {
        let limit = self.opts.max_prefixes;
        let (Some(rib), Some(slot)) = (self.rib.as_ref(), self.peers.get(&address)) else {
            return;
        };
        if limit == 0 {
            return;
        }
        for f in &slot.families {
            let n = rib.prefix_count(id, *f);
            if n > limit as usize {
                warn!(peer = %address, family = %f, prefixes = n, limit, "maximum number of prefixes exceeded: closing the session");
                let mut data = Vec::with_capacity(7);
                data.extend_from_slice(&f.afi.0.to_be_bytes());
                data.push(f.safi.0);
                data.extend_from_slice(&limit.to_be_bytes());
                slot.session
                    .command(PeerCommand::Cease(tabby_bgp::Notification::new(
                        tabby_bgp::notification::code::CEASE,
                        tabby_bgp::notification::cease::MAX_PREFIXES_REACHED,
                        data,
                    )));
                return;
            }
        }
    }

    // ---------------------------------------------------------------- output

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
    fn send_outgoing(&mut self, out: tabby_rib::Outgoing) {
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

    fn best_changed(&mut self, c: BestChange) {
        // Built only for live watchers: a reflector's million changes
        // would otherwise each be converted for nobody.
        self.journal
            .publish_with(c.prefix, || route_update(c.prefix, c.best.as_ref()));
        // A reflector without a FIB has no kernel route to work out.
        if self.fib.is_some() {
            let op = self.fib_route(&c.prefix, c.best.as_ref());
            self.program(c.prefix, op);
        }
    }

    fn program(&mut self, prefix: IpNet, route: Option<FibRoute>) {
        let Some(fib) = self.fib.as_ref() else {
            return;
        };
        let op = match route {
            Some(r) => {
                self.in_fib.insert(prefix);
                FibOp::Set(r)
            }
            None => {
                if !self.in_fib.remove(&prefix) {
                    return;
                }
                FibOp::Remove(prefix)
            }
        };
        let kind = match op {
            FibOp::Set(_) => "set",
            FibOp::Remove(_) => "remove",
            FibOp::Converged => "converged",
        };
        self.metrics
            .fib_operations
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
        let _ = fib.send(op);
    }

    /// The kernel route for a best path (Calico semantics), if any.
    fn fib_route(&self, prefix: &IpNet, best: Option<&BestRoute>) -> Option<FibRoute> {
        let best = best?;
        if best.local {
            // Own pod blocks are blackholed: more specific per-pod routes win.
            let blackhole = match &best.source {
                RouteSource::Local { owner, kind } if owner == TOPOLOGY_OWNER => self
                    .state
                    .as_ref()
                    .and_then(|s| s.originated.get(prefix))
                    .is_some_and(|r| r.blackhole),
                RouteSource::Local { kind, .. } => *kind == LocalKind::PodBlock,
                RouteSource::Peer { .. } => false,
            };
            return blackhole.then(|| FibRoute::blackhole(*prefix));
        }
        let gateways: Vec<IpAddr> = best
            .next_hops
            .iter()
            .map(|h| h.addr)
            .filter(|a| !a.is_unspecified())
            .collect();
        if gateways.is_empty() {
            return None;
        }
        let mode = self
            .state
            .as_ref()
            .map(|s| s.kernel_route_for(prefix))
            .unwrap_or(KernelRoute::Direct);
        let hop = |gw: IpAddr| -> Option<NextHopSpec> {
            match mode {
                KernelRoute::Skip => None,
                KernelRoute::Direct => Some(NextHopSpec::gateway(gw)),
                KernelRoute::Tunnel => {
                    Some(NextHopSpec::onlink(gw, self.opts.tunnel_device.clone()))
                }
                KernelRoute::TunnelUnlessNextHopIn(net) => match gw {
                    IpAddr::V4(v4) if net.contains(&v4) => Some(NextHopSpec::gateway(gw)),
                    _ => Some(NextHopSpec::onlink(gw, self.opts.tunnel_device.clone())),
                },
            }
        };
        let hops: Vec<NextHopSpec> = gateways.into_iter().filter_map(hop).collect();
        if hops.is_empty() {
            return None;
        }
        Some(FibRoute {
            prefix: *prefix,
            kind: tabby_fib_sync::RouteKind::Unicast(hops),
            pref_src: None,
        })
    }

    fn reprogram_all(&mut self) {
        let Some(rib) = self.rib.as_ref() else {
            return;
        };
        let routes = rib.best_routes();
        for (prefix, best) in routes {
            let r = self.fib_route(&prefix, Some(&best));
            self.program(prefix, r);
        }
    }

    fn check_converged(&mut self, now: Instant) {
        if self.fib_converged || self.fib.is_none() || self.rib.is_none() {
            return;
        }
        let all_in = !self.peers.is_empty()
            && self.peers.values().all(|s| {
                s.status.state == am::SessionState::Established
                    && !s.families.is_empty()
                    && s.families.is_subset(&s.eor)
            });
        let no_peers = self.peers.is_empty() && self.state.is_some();
        if all_in || no_peers || now >= self.deferral_deadline {
            info!(
                by_timer = !(all_in || no_peers),
                "routing converged: removing stale kernel routes of a previous run"
            );
            self.fib_converged = true;
            if let Some(fib) = self.fib.as_ref() {
                let _ = fib.send(FibOp::Converged);
            }
        }
    }

    // ------------------------------------------------------------------ API

    fn rib(&self) -> Result<&Rib, CoreError> {
        self.rib.as_ref().ok_or_else(|| {
            CoreError::Unavailable(
                "the daemon has no configuration yet; check the datastore".into(),
            )
        })
    }

    fn rib_mut(&mut self) -> Result<&mut Rib, CoreError> {
        self.rib.as_mut().ok_or_else(|| {
            CoreError::Unavailable(
                "the daemon has no configuration yet; check the datastore".into(),
            )
        })
    }

    fn check_owner(owner: &am::Owner) -> Result<(), CoreError> {
        if owner.as_str() == TOPOLOGY_OWNER {
            return Err(CoreError::InvalidArgument(format!(
                "owner {TOPOLOGY_OWNER:?} is reserved for routes from the cluster's resources; choose another owner name"
            )));
        }
        Ok(())
    }

    pub fn announce(
        &mut self,
        owner: &am::Owner,
        routes: Vec<am::LocalRoute>,
    ) -> Result<am::RouteChange, CoreError> {
        Self::check_owner(owner)?;
        let mut change = am::RouteChange::default();
        let rib = self.rib_mut()?;
        for r in &routes {
            rib.originate(r.prefix, owner.as_str(), rib_local_route(r));
        }
        let set = self
            .local_routes
            .entry(owner.as_str().to_owned())
            .or_default();
        for r in routes {
            match set.insert(r.prefix, r.clone()) {
                None => change.added += 1,
                Some(old) if old == r => change.unchanged += 1,
                Some(_) => change.updated += 1,
            }
        }
        self.pump(Instant::now());
        change.sequence = self.journal.sequence();
        Ok(change)
    }

    pub fn withdraw(
        &mut self,
        owner: &am::Owner,
        prefixes: Vec<IpNet>,
    ) -> Result<am::RouteChange, CoreError> {
        Self::check_owner(owner)?;
        let mut change = am::RouteChange::default();
        let rib = self.rib_mut()?;
        for p in &prefixes {
            if rib.withdraw_local(*p, owner.as_str()) {
                change.removed += 1;
            } else {
                change.unchanged += 1;
            }
        }
        if let Some(set) = self.local_routes.get_mut(owner.as_str()) {
            for p in &prefixes {
                set.remove(p);
            }
        }
        self.pump(Instant::now());
        change.sequence = self.journal.sequence();
        Ok(change)
    }

    pub fn replace(
        &mut self,
        owner: &am::Owner,
        routes: Vec<am::LocalRoute>,
    ) -> Result<am::RouteChange, CoreError> {
        Self::check_owner(owner)?;
        let mut change = am::RouteChange::default();
        let old = self.local_routes.remove(owner.as_str()).unwrap_or_default();
        let new: BTreeMap<IpNet, am::LocalRoute> =
            routes.into_iter().map(|r| (r.prefix, r)).collect();
        for (p, r) in &new {
            match old.get(p) {
                None => change.added += 1,
                Some(o) if o == r => change.unchanged += 1,
                Some(_) => change.updated += 1,
            }
        }
        change.removed = old.keys().filter(|p| !new.contains_key(p)).count() as u64;
        let rib = self.rib_mut()?;
        rib.replace_local(
            owner.as_str(),
            new.values()
                .map(|r| (r.prefix, rib_local_route(r)))
                .collect(),
        );
        self.local_routes.insert(owner.as_str().to_owned(), new);
        self.pump(Instant::now());
        change.sequence = self.journal.sequence();
        Ok(change)
    }

    pub fn list_routes(&self, q: &am::RouteQuery) -> Result<am::RoutePage, CoreError> {
        let rib = self.rib()?;
        let mut routes = Vec::new();
        let mut more = false;
        // In prefix order from where the query can first match to where it
        // can match no more: a page costs its own routes.
        for (prefix, best) in rib.best_routes_from(route_listing::start(q)) {
            if route_listing::past_end(q, &prefix) {
                break;
            }
            if let Some(f) = q.family
                && am::Family::of_prefix(&prefix) != f
            {
                continue;
            }
            if let Some((p, m)) = &q.prefix {
                let ok = match m {
                    am::PrefixMatch::Exact => prefix == *p,
                    am::PrefixMatch::Longer => p.contains(&prefix),
                };
                if !ok {
                    continue;
                }
            }
            if let Some(after) = &q.after
                && prefix <= *after
            {
                continue;
            }
            if routes.len() >= q.limit {
                more = true;
                break;
            }
            let paths = if q.best_only {
                vec![api_path(&best, true)]
            } else {
                self.candidate_paths(rib, &prefix)
            };
            routes.push(am::Route { prefix, paths });
        }
        Ok(am::RoutePage { routes, more })
    }

    fn candidate_paths(&self, rib: &Rib, prefix: &IpNet) -> Vec<am::Path> {
        rib.explain(prefix)
            .candidates
            .iter()
            .map(candidate_path)
            .collect()
    }

    pub fn watch_routes(&self, resume: Option<u64>) -> Result<am::RouteWatch, CoreError> {
        let rib = self.rib()?;
        Ok(self.journal.watch(
            resume,
            || {
                rib.best_routes()
                    .into_iter()
                    .map(|(p, b)| (p, api_path(&b, true)))
                    .collect()
            },
            |p| route_update(p, rib.best(&p).as_ref()),
        ))
    }

    pub fn explain(&self, prefix: IpNet) -> Result<am::RouteExplanation, CoreError> {
        let rib = self.rib()?;
        let e = rib.explain(&prefix);
        if e.candidates.is_empty() {
            return Err(CoreError::NotFound(format!(
                "no path for {prefix} in the Loc-RIB; `tabbyctl routes` lists what is known"
            )));
        }
        Ok(am::RouteExplanation {
            prefix,
            candidates: e
                .candidates
                .iter()
                .map(|c| {
                    let reason = if c.best {
                        "best path".to_owned()
                    } else if let Some(why) = c.ineligible {
                        format!("not eligible: {why}")
                    } else if let Some(step) = c.lost_at {
                        format!("lost to the best path at: {step:?}")
                    } else if c.multipath {
                        "equal-cost multipath member".to_owned()
                    } else {
                        "not best".to_owned()
                    };
                    am::CandidatePath {
                        path: candidate_path(c),
                        reason,
                    }
                })
                .collect(),
            exports: e
                .exports
                .iter()
                .map(|x| am::PeerExport {
                    peer: x.address,
                    exported: x.exported,
                    reason: x.reason.clone(),
                })
                .collect(),
        })
    }

    pub fn adj_rib(
        &self,
        peer: IpAddr,
        which: am::AdjRib,
        family: am::Family,
    ) -> Result<Vec<am::Route>, CoreError> {
        let rib = self.rib()?;
        let slot = self.peer_slot(peer)?;
        let mut out = Vec::new();
        for (prefix, _) in rib.best_routes() {
            if am::Family::of_prefix(&prefix) != family {
                continue;
            }
            let e = rib.explain(&prefix);
            match which {
                am::AdjRib::In => {
                    let paths: Vec<am::Path> = e
                        .candidates
                        .iter()
                        .filter(|c| matches!(&c.source, RouteSource::Peer { peer: p, .. } if *p == slot.id))
                        .map(candidate_path)
                        .collect();
                    if !paths.is_empty() {
                        out.push(am::Route { prefix, paths });
                    }
                }
                am::AdjRib::Out => {
                    if e.exports.iter().any(|x| x.peer == slot.id && x.exported)
                        && let Some(best) = rib.best(&prefix)
                    {
                        out.push(am::Route {
                            prefix,
                            paths: vec![api_path(&best, true)],
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    fn peer_slot(&self, address: IpAddr) -> Result<&PeerSlot, CoreError> {
        self.peers.get(&address).ok_or_else(|| {
            CoreError::NotFound(format!(
                "no peer {address}; `tabbyctl peers` lists the configured peers"
            ))
        })
    }

    pub fn list_peers(&self) -> Vec<am::PeerStatus> {
        self.peers.values().map(|s| self.status_of(s)).collect()
    }

    pub fn get_peer(&self, address: IpAddr) -> Result<am::PeerStatus, CoreError> {
        Ok(self.status_of(self.peer_slot(address)?))
    }

    pub fn add_api_peer(&mut self, cfg: am::PeerConfig) -> Result<am::PeerStatus, CoreError> {
        if self.peers.contains_key(&cfg.address) {
            return Err(CoreError::AlreadyExists(format!(
                "peer {} exists already; delete it first to change its AS or session settings",
                cfg.address
            )));
        }
        let Some(state) = self.state.as_ref() else {
            return Err(CoreError::Unavailable(
                "the daemon has no configuration yet; check the datastore".into(),
            ));
        };
        // One builder for both paths: an API peer is a global peering with the
        // topology's defaults (graceful restart, port, policies), then what the
        // request sets.
        let p = api_peer(state, &cfg);
        let mut spec = Self::session_spec(state, &p);
        spec.config.extended_next_hop = false;
        spec.config.families = if cfg.families.is_empty() {
            vec![family_of_addr(&cfg.address)]
        } else {
            cfg.families
                .iter()
                .map(|f| match f {
                    am::Family::Ipv4 => Family::IPV4_UNICAST,
                    am::Family::Ipv6 => Family::IPV6_UNICAST,
                })
                .collect()
        };
        if let Some(h) = cfg.hold_time {
            spec.config.hold_time = h;
        }
        spec.config.keepalive = cfg.keepalive;
        let rib_cfg = convert::peer_config(state, &p);
        let address = cfg.address;
        self.install_peer(PeerOrigin::Api, spec, rib_cfg, cfg);
        self.pump(Instant::now());
        self.get_peer(address)
    }

    pub fn delete_peer(&mut self, address: IpAddr) -> Result<(), CoreError> {
        self.peer_slot(address)?;
        self.remove_peer_slot(address, Instant::now());
        Ok(())
    }

    pub fn enable_peer(
        &mut self,
        address: IpAddr,
        enable: bool,
        reason: Option<String>,
    ) -> Result<am::PeerStatus, CoreError> {
        let slot = self.peers.get_mut(&address).ok_or_else(|| {
            CoreError::NotFound(format!(
                "no peer {address}; `tabbyctl peers` lists the configured peers"
            ))
        })?;
        slot.status.enabled = enable;
        slot.session.command(if enable {
            PeerCommand::Start
        } else {
            PeerCommand::Stop(reason)
        });
        self.get_peer(address)
    }

    pub fn reset_peer(
        &mut self,
        address: IpAddr,
        kind: am::ResetKind,
    ) -> Result<am::PeerStatus, CoreError> {
        let slot = self.peer_slot(address)?;
        let id = slot.id;
        let families: Vec<Family> = slot.families.iter().copied().collect();
        match kind {
            am::ResetKind::Hard => slot.session.command(PeerCommand::Reset { hard: true }),
            am::ResetKind::SoftIn => {
                for f in &families {
                    slot.session.command(PeerCommand::RouteRefresh(*f));
                }
            }
            am::ResetKind::SoftOut | am::ResetKind::SoftBoth => {
                if kind == am::ResetKind::SoftBoth {
                    for f in &families {
                        slot.session.command(PeerCommand::RouteRefresh(*f));
                    }
                }
                let rib = self.rib_mut()?;
                for f in families {
                    rib.route_refresh(id, f)
                        .map_err(|e| CoreError::FailedPrecondition(e.to_string()))?;
                }
                self.pump(Instant::now());
            }
        }
        self.get_peer(address)
    }

    pub fn watch_peers(&self) -> am::PeerWatch {
        am::PeerWatch {
            sequence: self.peer_seq,
            peers: self.list_peers(),
            updates: self.peer_events.subscribe(),
        }
    }

    pub fn status(&self) -> am::DaemonStatus {
        let state = self.state.as_ref();
        let established = self
            .peers
            .values()
            .filter(|s| s.status.state == am::SessionState::Established)
            .count() as u32;
        am::DaemonStatus {
            router_id: state
                .map(|s| s.router_id)
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            local_as: state.map(|s| s.local_as).unwrap_or(0),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: self.started.elapsed().as_secs(),
            datastore: self.datastore,
            datastore_detail: self.datastore_detail.clone(),
            fib: match (self.fib.is_some(), self.fib_converged) {
                (false, _) => am::FibSync::Disabled,
                (true, false) => am::FibSync::Syncing,
                (true, true) => am::FibSync::InSync,
            },
            fib_detail: format!("{} routes programmed", self.in_fib.len()),
            graceful_restart: if self.fib.is_some() && !self.fib_converged {
                am::GracefulRestart::Restarting
            } else {
                am::GracefulRestart::Idle
            },
            graceful_restart_detail: String::new(),
            peers_configured: self.peers.len() as u32,
            peers_established: established,
            routes: self
                .rib
                .as_ref()
                .map(|r| r.stats().prefixes as u64)
                .unwrap_or(0),
            bgp_listen_port: state.map(|s| s.listen_port).unwrap_or(179),
            bgp_listen_addresses: state
                .map(|s| s.listen_addresses.clone())
                .unwrap_or_default(),
            log_level: self.opts.log_level.clone(),
        }
    }

    pub fn set_log_level(&mut self, filter: String) -> Result<String, CoreError> {
        let Some(log) = self.log.as_ref() else {
            return Err(CoreError::FailedPrecondition(
                "logging is not reloadable in this process".into(),
            ));
        };
        log.set(&filter).map_err(CoreError::InvalidArgument)?;
        let old = std::mem::replace(&mut self.opts.log_level, filter);
        Ok(old)
    }

    /// The configuration in force as JSON (schema
    /// `tabby.effective-config/v1`, see docs/effective-config.md).
    pub fn effective_config(&self) -> String {
        effective_config::EffectiveConfig::of(self).to_json()
    }

    /// A planned stop: every session closes without a NOTIFICATION so peers
    /// keep our routes for the restart time; kernel routes stay.
    pub fn detach_all(&mut self) {
        for slot in self.peers.values() {
            slot.session.command(PeerCommand::Detach);
        }
    }

    /// Whether `prefix` is programmed in the kernel.
    pub fn in_fib(&self, prefix: &IpNet) -> bool {
        self.in_fib.contains(prefix)
    }

    /// When the datastore last changed this node's configuration.
    pub fn last_reconfigured(&self) -> Option<std::time::SystemTime> {
        self.last_reconfigured
    }

    pub fn health(&self) -> am::Health {
        let mut reasons = Vec::new();
        if self.state.is_none() {
            reasons.push(format!(
                "no configuration loaded from the datastore ({})",
                self.datastore_detail
            ));
        }
        for p in &self.datastore_problems {
            reasons.push(format!("datastore: {p}"));
        }
        for w in &self.config_warnings {
            reasons.push(format!("configuration: {w}"));
        }
        for (a, s) in &self.peers {
            if s.status.enabled && s.status.state != am::SessionState::Established {
                reasons.push(format!("peer {a} is {}", s.status.state.name()));
            }
        }
        if self.fib.is_some() && !self.fib_converged {
            reasons.push("waiting for End-of-RIB before removing stale kernel routes".to_owned());
        }
        am::Health {
            live: true,
            ready: reasons.is_empty(),
            reasons,
        }
    }
}

/// A peer added through the API as the topology would describe a global peering to it.
fn api_peer(state: &NodeState, cfg: &am::PeerConfig) -> topo::Peer {
    let local_as = cfg.local_as.unwrap_or(state.local_as);
    topo::Peer {
        key: topo::PeerKey {
            address: cfg.address,
            port: 179,
        },
        kind: topo::PeerKind::Global,
        origin: "API".into(),
        calico_node: None,
        peer_as: cfg.remote_as,
        local_as,
        local_as_override: cfg.local_as,
        passive: cfg.passive,
        rr_client: cfg.route_reflector_client,
        password: None,
        ttl_security: None,
        source_address: None,
        next_hop: topo::NextHop::Auto,
        num_allowed_local_as: None,
        graceful_restart_time: None,
        keepalive_time: cfg.keepalive.map(|k| Duration::from_secs(k.into())),
        reachable_by: None,
        internal: cfg.remote_as == local_as,
        filters: Vec::new(),
        import_rules: Vec::new(),
        export_rules: Vec::new(),
    }
}

#[cfg(test)]
#[path = "daemon_tests.rs"]
mod tests;
