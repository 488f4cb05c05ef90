//! Plain Rust types exchanged between the API server and the daemon core.
//!
//! The daemon implements [`crate::Core`] in these terms and never touches
//! protobuf; `crate::convert` maps them to and from `tabby.v1` and validates
//! what clients send.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// An address family Tabby carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

impl Family {
    /// The family of a prefix.
    pub fn of_prefix(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::Ipv4,
            IpNet::V6(_) => Family::Ipv6,
        }
    }

    /// The family of an address.
    pub fn of_addr(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// "ipv4" or "ipv6".
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// A BGP large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator.
    pub global_admin: u32,
    /// First local data part.
    pub local_data1: u32,
    /// Second local data part.
    pub local_data2: u32,
}

/// ORIGIN (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Origin {
    /// IGP.
    #[default]
    Igp,
    /// EGP.
    Egp,
    /// INCOMPLETE.
    Incomplete,
}

/// What a locally originated route stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RouteKind {
    /// Not given.
    #[default]
    Unspecified,
    /// An IPAM block of pod addresses.
    PodBlock,
    /// A single /32 or /128.
    Host,
    /// A service IP.
    ServiceIp,
}

/// A route this node originates on behalf of an owner. Validated: the prefix
/// has no host bits, the next hop (if any) is of the prefix's family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalRoute {
    /// The prefix (host bits zero).
    pub prefix: IpNet,
    /// What the route stands for.
    pub kind: RouteKind,
    /// Standard communities, (ASN << 16) | value.
    pub communities: Vec<u32>,
    /// Large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// Explicit next hop; `None` means the session's local address.
    pub next_hop: Option<IpAddr>,
    /// Calico route priority, 1..=2147483646 (lower is preferred); `None`:
    /// the family's normal priority.
    pub priority: Option<u32>,
    /// LOCAL_PREF to originate with; `None` means the configured default.
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC to originate with; `None` sends none.
    pub med: Option<u32>,
}

/// An owner of locally originated routes, e.g. "calico-ipam". Validated:
/// 1..=64 characters of `[A-Za-z0-9._:/-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(String);

impl Owner {
    /// Longest owner name accepted.
    pub const MAX_LEN: usize = 64;

    /// Checks and wraps an owner name; the error says what is wrong.
    pub fn new(name: &str) -> Result<Owner, String> {
        if name.is_empty() {
            return Err(
                "owner is empty: name who originates these routes, e.g. \"calico-ipam\"".into(),
            );
        }
        if name.len() > Self::MAX_LEN {
            return Err(format!(
                "owner is {} bytes long; at most {} allowed",
                name.len(),
                Self::MAX_LEN
            ));
        }
        if let Some(c) = name.chars().find(|c| !Self::allowed(*c)) {
            return Err(format!(
                "owner {name:?} contains {c:?}; use only A-Z a-z 0-9 . _ : / -"
            ));
        }
        Ok(Owner(name.to_string()))
    }

    /// An owner for a name already held elsewhere that may break the rules
    /// (to report it rather than refuse it): each character not allowed
    /// becomes `_`, the name is cut to [`Owner::MAX_LEN`] characters and an
    /// empty one becomes `_`. A valid name comes back unchanged.
    pub fn lossy(name: &str) -> Owner {
        let mut s: String = name
            .chars()
            .take(Self::MAX_LEN)
            .map(|c| if Self::allowed(c) { c } else { '_' })
            .collect();
        if s.is_empty() {
            s.push('_');
        }
        Owner(s)
    }

    fn allowed(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an announce, withdraw or replace changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteChange {
    /// Routes newly added.
    pub added: u64,
    /// Routes whose attributes changed.
    pub updated: u64,
    /// Routes removed.
    pub removed: u64,
    /// Routes already exactly in place.
    pub unchanged: u64,
    /// The route-event sequence after the change.
    pub sequence: u64,
}

/// Where a path came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSource {
    /// Originated by this node for this owner.
    Local(Owner),
    /// Learned from this peer.
    Peer(IpAddr),
}

/// One path to a prefix, as held in the Loc-RIB or an Adj-RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Next hop.
    pub next_hop: IpAddr,
    /// AS_PATH flattened, nearest AS first.
    pub as_path: Vec<u32>,
    /// ORIGIN.
    pub origin: Origin,
    /// LOCAL_PREF.
    pub local_pref: u32,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// Standard communities.
    pub communities: Vec<u32>,
    /// Large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// Where it came from.
    pub source: PathSource,
    /// Whether it is the best path of its prefix.
    pub best: bool,
    /// Seconds since learned or originated.
    pub age_seconds: u64,
    /// Kind, for local routes.
    pub kind: RouteKind,
    /// Kept stale for a restarting peer (RFC 4724).
    pub stale: bool,
}

/// A prefix with its paths (best first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The prefix.
    pub prefix: IpNet,
    /// Paths, best first.
    pub paths: Vec<Path>,
}

/// How a prefix filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixMatch {
    /// Exactly this prefix.
    Exact,
    /// This prefix and every more specific one inside it.
    Longer,
}

/// A Loc-RIB query. Results are sorted by prefix (IPv4 before IPv6, then by
/// address, then by length) and start strictly after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteQuery {
    /// Only this family.
    pub family: Option<Family>,
    /// Only prefixes matching.
    pub prefix: Option<(IpNet, PrefixMatch)>,
    /// Only the best path of each prefix.
    pub best_only: bool,
    /// Resume after this prefix (paging).
    pub after: Option<IpNet>,
    /// The most prefixes to return.
    pub limit: usize,
}

/// One page of a Loc-RIB query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutePage {
    /// The routes, sorted.
    pub routes: Vec<Route>,
    /// Whether more routes match after the last one.
    pub more: bool,
}

/// A change to the best route of one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteUpdate {
    /// New or changed best path.
    BestChanged {
        /// The prefix.
        prefix: IpNet,
        /// The new best path.
        best: Path,
    },
    /// No path left.
    Withdrawn {
        /// The prefix.
        prefix: IpNet,
    },
}

impl RouteUpdate {
    /// The prefix concerned.
    pub fn prefix(&self) -> &IpNet {
        match self {
            RouteUpdate::BestChanged { prefix, .. } | RouteUpdate::Withdrawn { prefix } => prefix,
        }
    }
}

/// A numbered Loc-RIB change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEvent {
    /// Sequence number, +1 per change.
    pub sequence: u64,
    /// The change.
    pub update: RouteUpdate,
}

/// How a route watch starts.
#[derive(Debug)]
pub enum RouteWatchStart {
    /// A snapshot of every best route taken at `sequence`; only events with
    /// a higher sequence follow.
    Snapshot {
        /// The sequence the snapshot is consistent with.
        sequence: u64,
        /// Every best route (prefix and its best path).
        routes: Vec<(IpNet, Path)>,
    },
    /// Every event after the requested sequence, in order; no snapshot is
    /// needed.
    Replay(Vec<RouteEvent>),
}

/// A route watch: how it starts and the live feed after that. Events on
/// `updates` at or below the start sequence are skipped by the API.
#[derive(Debug)]
pub struct RouteWatch {
    /// Snapshot or replay.
    pub start: RouteWatchStart,
    /// Live feed. Bounded: when a receiver lags, the API tells the client to
    /// resync and asks the core for a fresh snapshot.
    pub updates: tokio::sync::broadcast::Receiver<RouteEvent>,
}

/// One candidate path and why it won or lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidatePath {
    /// The path.
    pub path: Path,
    /// Why it won, or the first decision step it lost at.
    pub reason: String,
}

/// Whether the best path went to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerExport {
    /// The peer.
    pub peer: IpAddr,
    /// Whether it was sent.
    pub exported: bool,
    /// Why or why not.
    pub reason: String,
}

/// The decision for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteExplanation {
    /// The prefix.
    pub prefix: IpNet,
    /// Candidates, best first.
    pub candidates: Vec<CandidatePath>,
    /// Export decisions per peer.
    pub exports: Vec<PeerExport>,
    /// The last time paths of this prefix left because BFD went down.
    pub departed: Option<RouteDeparture>,
}

/// BGP FSM state (RFC 4271 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SessionState {
    /// Idle.
    #[default]
    Idle,
    /// Connect.
    Connect,
    /// Active.
    Active,
    /// OpenSent.
    OpenSent,
    /// OpenConfirm.
    OpenConfirm,
    /// Established.
    Established,
}

impl SessionState {
    /// The RFC 4271 name.
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Idle => "Idle",
            SessionState::Connect => "Connect",
            SessionState::Active => "Active",
            SessionState::OpenSent => "OpenSent",
            SessionState::OpenConfirm => "OpenConfirm",
            SessionState::Established => "Established",
        }
    }
}

/// How a peer came to be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PeerType {
    /// Unknown.
    #[default]
    Unspecified,
    /// Node-to-node mesh.
    NodeMesh,
    /// Global BGPPeer.
    Global,
    /// Node-specific BGPPeer.
    NodeSpecific,
    /// Added through the API.
    Api,
    /// A workload on this node (`localWorkloadSelector`).
    Workload,
}

/// Names one peer's session: its address, and the peer's port when it runs
/// speakers on several (one session per port); without a port, the one
/// session to the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerRef {
    pub address: IpAddr,
    pub port: Option<u16>,
}

impl From<IpAddr> for PeerRef {
    fn from(address: IpAddr) -> Self {
        PeerRef {
            address,
            port: None,
        }
    }
}

impl std::fmt::Display for PeerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.address, self.port) {
            (a, None) => write!(f, "{a}"),
            (IpAddr::V4(a), Some(p)) => write!(f, "{a}:{p}"),
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
        }
    }
}

/// Peer configuration. Validated by the API: AS 1..=4294967295 (not 0,
/// RFC 7607), hold time 0 or 3..=65535, keepalive below hold time, TTL
/// 0..=255.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Peer address.
    pub address: IpAddr,
    /// Peer AS.
    pub remote_as: u32,
    /// Local AS toward the peer; `None` = the daemon's AS.
    pub local_as: Option<u32>,
    /// Hold time to propose; `None` = daemon default.
    pub hold_time: Option<u16>,
    /// Keepalive interval; `None` = hold time / 3.
    pub keepalive: Option<u16>,
    /// Free text.
    pub description: String,
    /// Only accept connections.
    pub passive: bool,
    /// eBGP multihop TTL; `None` = directly connected.
    pub ebgp_multihop_ttl: Option<u8>,
    /// Route-reflector client (RFC 4456).
    pub route_reflector_client: bool,
    /// Families to negotiate; empty = the family of `address`.
    pub families: Vec<Family>,
    /// How the peer was configured.
    pub peer_type: PeerType,
}

impl PeerConfig {
    /// A configuration with defaults for everything but address and AS.
    pub fn new(address: IpAddr, remote_as: u32) -> PeerConfig {
        PeerConfig {
            address,
            remote_as,
            local_as: None,
            hold_time: None,
            keepalive: None,
            description: String::new(),
            passive: false,
            ebgp_multihop_ttl: None,
            route_reflector_client: false,
            families: Vec::new(),
            peer_type: PeerType::Api,
        }
    }
}

/// How the next hop is set on routes sent to a peer (Calico `nextHopMode`
/// and `keepOriginalNextHop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NextHopMode {
    /// eBGP: this node's address; iBGP: the received next hop kept (and
    /// this node's address on its own routes).
    #[default]
    Auto,
    /// Always this node's address.
    SelfAddress,
    /// Never change a received next hop, on eBGP too.
    Keep,
}

impl NextHopMode {
    /// "auto", "self" or "keep" (the words of `tabbyctl config`).
    pub fn name(self) -> &'static str {
        match self {
            NextHopMode::Auto => "auto",
            NextHopMode::SelfAddress => "self",
            NextHopMode::Keep => "keep",
        }
    }
}

/// The Graceful Restart capability offered to a peer (RFC 4724, RFC 8538).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GracefulRestartSettings {
    /// Restart Time advertised: seconds the peer keeps this node's routes
    /// after the session goes (0..=4095).
    pub restart_time_seconds: u16,
    /// The N bit (RFC 8538): graceful restart also after a NOTIFICATION.
    pub notification: bool,
    /// The F bit: forwarding survives a restart of this daemon.
    pub forwarding_preserved: bool,
}

/// Every setting that decides one session, as the daemon runs it (defaults
/// applied): the per-peer entry of `tabbyctl config`. Read-only status:
/// AddPeer takes a [`PeerConfig`], never these. Holds no secret: a TCP-MD5
/// password shows only as `password_set`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerSettings {
    /// What created the peering: "node-to-node mesh", "BGPPeer tor-a"
    /// (as the datastore names it), or "API".
    pub origin: String,
    /// The Calico node at the far end, when it is one.
    pub calico_node: Option<String>,
    /// TCP port the session connects to.
    pub port: u16,
    /// The AS this node presents on the session.
    pub local_as: u32,
    /// iBGP: the peer's AS is the local AS.
    pub internal: bool,
    /// Only accept connections, never connect out.
    pub passive: bool,
    /// This node reflects routes to the peer (RFC 4456).
    pub route_reflector_client: bool,
    /// The cluster id reflected routes carry, for a route-reflector client.
    pub cluster_id: Option<Ipv4Addr>,
    /// GTSM (RFC 5082): the peer is at most this many hops away; `None` =
    /// no TTL check (the session may cross routers).
    pub ttl_security_hops: Option<u8>,
    /// A TCP-MD5 password (RFC 2385) protects the session. Never the value.
    pub password_set: bool,
    /// How the next hop of routes sent to the peer is set.
    pub next_hop: NextHopMode,
    /// Local address the session binds to; `None` = chosen by the kernel.
    pub source_address: Option<IpAddr>,
    /// Address families offered in OPEN.
    pub families: Vec<Family>,
    /// IPv4 routes offered over this IPv6 session (RFC 8950).
    pub extended_next_hop: bool,
    /// Hold time proposed in OPEN, seconds.
    pub hold_time_seconds: u16,
    /// KEEPALIVE interval; `None` = a third of the negotiated hold time.
    pub keepalive_seconds: Option<u16>,
    /// Graceful restart offered; `None` = not offered.
    pub graceful_restart: Option<GracefulRestartSettings>,
    /// Long-lived graceful restart (RFC 9494) stale time offered, seconds;
    /// `None` = not offered.
    pub long_lived_stale_time_seconds: Option<u32>,
    /// Routes whose AS_PATH holds the local AS up to this many times are
    /// accepted (Calico `numAllowedLocalASNumbers`); 0 = none.
    pub allowed_local_as: u8,
    /// Gateway of the host route to the peer (Calico `reachableBy`).
    pub reachable_by: Option<IpAddr>,
    /// Names of the BGPFilters applied, in order.
    pub filters: Vec<String>,
    /// Name of the import policy (its rules: `tabbyctl config`).
    pub import_policy: Option<String>,
    /// Name of the export policy (its rules: `tabbyctl config`).
    pub export_policy: Option<String>,
}

/// Per-session counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerCounters {
    /// Prefixes received (Adj-RIB-In).
    pub prefixes_received: u64,
    /// Prefixes accepted by import policy.
    pub prefixes_accepted: u64,
    /// Prefixes advertised (Adj-RIB-Out).
    pub prefixes_advertised: u64,
    /// UPDATEs received.
    pub updates_received: u64,
    /// UPDATEs sent.
    pub updates_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// NOTIFICATIONs received.
    pub notifications_received: u64,
    /// NOTIFICATIONs sent.
    pub notifications_sent: u64,
    /// KEEPALIVEs received.
    pub keepalives_received: u64,
    /// KEEPALIVEs sent.
    pub keepalives_sent: u64,
    /// Times the session left Established.
    pub flaps: u64,
}

/// The last error that closed a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError {
    /// NOTIFICATION code (0 = none, e.g. TCP reset).
    pub code: u8,
    /// NOTIFICATION subcode.
    pub subcode: u8,
    /// Human-readable text.
    pub text: String,
    /// Whether this node sent it.
    pub sent_by_local: bool,
    /// When, in seconds since the Unix epoch.
    pub at_unix_seconds: u64,
}

/// A peer's configuration, state and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Configuration in force.
    pub config: PeerConfig,
    /// FSM state.
    pub state: SessionState,
    /// Administratively enabled.
    pub enabled: bool,
    /// When the current state was entered (Unix seconds).
    pub state_since_unix_seconds: u64,
    /// Seconds Established (0 when not).
    pub uptime_seconds: u64,
    /// Peer's BGP identifier.
    pub remote_router_id: Option<Ipv4Addr>,
    /// Negotiated hold time.
    pub negotiated_hold_time: u16,
    /// Negotiated families.
    pub negotiated_families: Vec<Family>,
    /// Counters.
    pub counters: PeerCounters,
    /// Last error.
    pub last_error: Option<PeerError>,
    /// Short note for the info column.
    pub info: String,
    /// Local address of the session.
    pub local_address: Option<IpAddr>,
    /// The peer is restarting and its routes are stale (RFC 4724).
    pub graceful_restart_pending: bool,
    /// The BFD session guarding this peer, when configured.
    pub bfd: Option<BfdStatus>,
    /// Every setting that decides the session, as the daemon runs it;
    /// `None` when the daemon cannot say (no configuration yet).
    pub settings: Option<PeerSettings>,
}

/// Where a peer's BFD session stands, as the BGP side sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BfdPhase {
    /// Configured, not Up yet.
    #[default]
    Starting,
    Up,
    /// Down after a failure.
    Down,
    /// The peer turned BFD AdminDown: not a failure (RFC 5882 §3.2).
    AdminDown,
    /// Cannot run (see `detail`); the BGP session runs without it.
    Unavailable,
}

impl BfdPhase {
    pub fn name(self) -> &'static str {
        match self {
            BfdPhase::Starting => "Starting",
            BfdPhase::Up => "Up",
            BfdPhase::Down => "Down",
            BfdPhase::AdminDown => "AdminDown",
            BfdPhase::Unavailable => "Unavailable",
        }
    }
}

/// One peer's BFD session (RFC 5880): its settings, what was negotiated and
/// its history. Intervals in microseconds, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BfdStatus {
    pub phase: BfdPhase,
    /// Why it cannot run, when `Unavailable`.
    pub detail: String,
    /// When `phase` was entered (Unix seconds).
    pub since_unix_seconds: u64,
    /// RFC 5883 multihop rather than RFC 5881 single-hop.
    pub multihop: bool,
    /// Configured Desired Min TX and Required Min RX, and Detect Mult.
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub multiplier: u32,
    /// Negotiated transmit interval (ours) and the interval the peer's
    /// packets are expected at; 0 until the peer is heard.
    pub negotiated_tx_us: u32,
    pub negotiated_rx_us: u32,
    /// The peer's Detect Mult; 0 until heard.
    pub remote_multiplier: u32,
    /// Detection Time; 0 until the peer is heard.
    pub detection_time_us: u32,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// The diagnostic of the last failure (RFC 5880 §4.1), empty if none.
    pub last_diagnostic: String,
    /// Seconds Up (0 when not).
    pub uptime_seconds: u64,
    /// Failures (Up to Down) seen.
    pub flaps: u64,
    /// Flapping: the BGP session is held down until the penalty decays.
    pub damped: bool,
    /// The BGP session is held down (waiting for BFD Up, or damped).
    pub bgp_held: bool,
    /// The BGP session starts only once BFD is Up.
    pub wait_for_up: bool,
    /// On BFD Down graceful restart keeps the peer's routes as stale.
    pub graceful: bool,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// Why a prefix lost a path: recorded when BFD closed a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDeparture {
    /// The peer whose paths left.
    pub peer: IpAddr,
    pub at_unix_seconds: u64,
    /// What happened, for an operator.
    pub reason: String,
    /// The paths were withdrawn (`false`: kept as stale by graceful restart).
    pub withdrawn: bool,
}

impl PeerStatus {
    /// A status for a peer that has never connected.
    pub fn idle(config: PeerConfig) -> PeerStatus {
        PeerStatus {
            config,
            state: SessionState::Idle,
            enabled: true,
            state_since_unix_seconds: 0,
            uptime_seconds: 0,
            remote_router_id: None,
            negotiated_hold_time: 0,
            negotiated_families: Vec::new(),
            counters: PeerCounters::default(),
            last_error: None,
            info: String::new(),
            local_address: None,
            graceful_restart_pending: false,
            bfd: None,
            settings: None,
        }
    }
}

/// How to reset a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// Cease (Administrative Reset) and reconnect.
    Hard,
    /// ROUTE-REFRESH inbound (RFC 2918).
    SoftIn,
    /// Resend outbound.
    SoftOut,
    /// Both soft directions.
    SoftBoth,
}

/// Which Adj-RIB of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjRib {
    /// Routes received from the peer.
    In,
    /// Routes advertised to the peer.
    Out,
}

/// What happened to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    /// Added.
    Added,
    /// Session or admin state changed from `previous`.
    StateChanged {
        /// The state before.
        previous: SessionState,
    },
    /// Deleted.
    Removed,
}

/// A numbered peer event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEvent {
    /// Sequence, +1 per peer event.
    pub sequence: u64,
    /// What happened.
    pub change: PeerChange,
    /// The peer after the event.
    pub peer: PeerStatus,
}

/// A peer watch: the current peers, then live events.
#[derive(Debug)]
pub struct PeerWatch {
    /// Sequence the snapshot is consistent with.
    pub sequence: u64,
    /// Every peer now.
    pub peers: Vec<PeerStatus>,
    /// Live feed (bounded; lag → resync).
    pub updates: tokio::sync::broadcast::Receiver<PeerEvent>,
}

/// Datastore sync state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DatastoreSync {
    /// Unknown.
    #[default]
    Unspecified,
    /// No datastore.
    Disabled,
    /// Reading.
    Syncing,
    /// In sync.
    InSync,
    /// Unreachable.
    Disconnected,
}

/// Kernel FIB sync state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FibSync {
    /// Unknown.
    #[default]
    Unspecified,
    /// Off.
    Disabled,
    /// Catching up.
    Syncing,
    /// In sync.
    InSync,
    /// Failing.
    Error,
}

/// Graceful-restart state of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GracefulRestart {
    /// Unknown.
    #[default]
    Unspecified,
    /// Not configured.
    Disabled,
    /// Nothing pending.
    Idle,
    /// This node is restarting.
    Restarting,
    /// A peer is restarting.
    Helping,
}

/// The daemon's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonStatus {
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Local AS.
    pub local_as: u32,
    /// Version string.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Datastore sync.
    pub datastore: DatastoreSync,
    /// Detail.
    pub datastore_detail: String,
    /// FIB sync.
    pub fib: FibSync,
    /// Detail.
    pub fib_detail: String,
    /// GR state.
    pub graceful_restart: GracefulRestart,
    /// Detail.
    pub graceful_restart_detail: String,
    /// Peers configured.
    pub peers_configured: u32,
    /// Peers Established.
    pub peers_established: u32,
    /// Best routes.
    pub routes: u64,
    /// BGP TCP port.
    pub bgp_listen_port: u16,
    /// BGP listen addresses.
    pub bgp_listen_addresses: Vec<IpAddr>,
    /// Log filter in force.
    pub log_level: String,
}

/// Liveness and readiness, as the health service reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The event loop answers.
    pub live: bool,
    /// Every configured peer is Established and no graceful restart is
    /// pending (like calico-node's `-bird-ready`).
    pub ready: bool,
    /// Why not ready or not live, one line per reason.
    pub reasons: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::Owner;

    #[test]
    fn lossy_owner_keeps_valid_names_and_mends_others() {
        for ok in [
            "calico-ipam",
            "a",
            "x.y_z:1/2-3",
            &"o".repeat(Owner::MAX_LEN),
        ] {
            assert_eq!(Owner::lossy(ok), Owner::new(ok).unwrap(), "{ok}");
        }
        let mended = |n: &str| Owner::lossy(n).as_str().to_owned();
        assert_eq!(mended("bad owner!"), "bad_owner_");
        assert_eq!(mended("é"), "_");
        assert_eq!(mended(""), "_");
        let long = mended(&"ü".repeat(100));
        assert_eq!(long, "_".repeat(Owner::MAX_LEN));
        for n in ["bad owner!", "é", "", &"ü".repeat(100), "\0\n"] {
            let o = Owner::lossy(n);
            assert_eq!(Owner::new(o.as_str()), Ok(o.clone()), "{n:?} -> {o}");
        }
    }
}
