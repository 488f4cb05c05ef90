//! The RIB's vocabulary: peer identities, configuration, session parameters
//! and the events it emits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tabby_bgp::attr::{LocalPref, Med};
use tabby_bgp::capability::{GracefulRestart, LlgrFamily, Role};
use tabby_bgp::{Asn, Family};

use crate::attrs::RouteAttrs;
use crate::policy::Policy;

/// A peer, named by the caller (the daemon). Stable across sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u32);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// Node-wide RIB settings.
#[derive(Debug, Clone)]
pub struct RibConfig {
    pub router_id: Ipv4Addr,
    pub local_asn: Asn,
    /// RFC 4456 cluster id; `None` means our router id (when we reflect).
    pub cluster_id: Option<Ipv4Addr>,
    /// Maximum ECMP paths installed (1 = no multipath).
    pub max_paths: usize,
    /// Compare MED across neighbouring ASes (RFC 4271 §9.1.2.2 c option).
    pub always_compare_med: bool,
    /// RFC 8212: no routes to or from eBGP peers without an explicit policy.
    pub rfc8212: bool,
    /// This node's own addresses: a next hop equal to one is not usable
    /// (CONFORMANCE row 17).
    pub local_addresses: Vec<IpAddr>,
    /// How long to wait for End-of-RIB from a restarting peer that came back
    /// before sweeping its remaining stale routes (RFC 4724 §4.2).
    pub stale_path_time: Duration,
    /// LOCAL_PREF given to iBGP routes that arrive without one.
    pub default_local_pref: u32,
    /// Calico's normal route priority per family (`ipv4NormalRoutePriority`,
    /// `ipv6NormalRoutePriority`; 1024 unless set). A locally originated
    /// route without a LOCAL_PREF of its own carries 2147483647 − this, as
    /// Calico 3.32's export filter gives a kernel route without a metric,
    /// so that every node programs it at this priority.
    pub normal_priority_v4: u32,
    pub normal_priority_v6: u32,
}

impl RibConfig {
    pub fn new(router_id: Ipv4Addr, local_asn: Asn) -> Self {
        RibConfig {
            router_id,
            local_asn,
            cluster_id: None,
            max_paths: 1,
            always_compare_med: false,
            rfc8212: false,
            local_addresses: Vec::new(),
            stale_path_time: Duration::from_secs(360),
            default_local_pref: 100,
            normal_priority_v4: 1024,
            normal_priority_v6: 1024,
        }
    }

    /// The normal route priority of `prefix`'s family.
    pub fn normal_priority(&self, prefix: &IpNet) -> u32 {
        match prefix {
            IpNet::V4(_) => self.normal_priority_v4,
            IpNet::V6(_) => self.normal_priority_v6,
        }
    }

    /// The cluster id we put in CLUSTER_LIST and detect loops on.
    pub fn effective_cluster_id(&self) -> Ipv4Addr {
        self.cluster_id.unwrap_or(self.router_id)
    }
}

/// How the next hop is set on routes exported to a peer (Calico
/// `nextHopMode` / `keepOriginalNextHop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NextHopMode {
    /// eBGP: next hop self; iBGP: keep the received next hop (reflection
    /// keeps it, RFC 4456 §10); local routes: self.
    #[default]
    Auto,
    /// Always our own address.
    SelfAddress,
    /// Never change a received next hop, on eBGP too.
    Keep,
}

/// iBGP or eBGP, derived from the ASNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    Ibgp,
    Ebgp,
}

/// Per-peer configuration, known before any session.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub address: IpAddr,
    pub peer_asn: Asn,
    /// Local AS override for this peer (`None`: the node's ASN).
    pub local_asn: Option<Asn>,
    /// RFC 4456 route-reflector client.
    pub rr_client: bool,
    pub next_hop_mode: NextHopMode,
    /// Calico `numAllowedLocalASNumbers`: how many times our ASN may appear
    /// in a received AS_PATH before the route is a loop.
    pub num_allowed_local_as: u8,
    /// `None`: accept everything (except eBGP under RFC 8212).
    pub import: Option<Arc<Policy>>,
    pub export: Option<Arc<Policy>>,
    /// Our address on this session for next-hop-self, per family.
    pub local_v4: Option<Ipv4Addr>,
    pub local_v6: Option<Ipv6Addr>,
    /// Keep received routes before import policy so a policy change can be
    /// applied without a route refresh.
    pub soft_reconfig_inbound: bool,
    /// Our RFC 9234 role on this session, when configured.
    pub role: Option<Role>,
    /// ADD-PATH send: how many paths per prefix (0 = best only). Used only
    /// for families where the session negotiated ADD-PATH send.
    pub add_path_send_max: u8,
}

/// The part of a [`PeerConfig`] that can change on a running session
/// ([`crate::Rib::update_settings`]); the rest needs a new session.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub next_hop_mode: NextHopMode,
    pub num_allowed_local_as: u8,
    pub import: Option<Arc<Policy>>,
    pub export: Option<Arc<Policy>>,
}

impl PeerConfig {
    /// The settings a running session can take without a reset.
    pub fn settings(&self) -> PeerSettings {
        PeerSettings {
            next_hop_mode: self.next_hop_mode,
            num_allowed_local_as: self.num_allowed_local_as,
            import: self.import.clone(),
            export: self.export.clone(),
        }
    }

    pub fn new(address: IpAddr, peer_asn: Asn) -> Self {
        PeerConfig {
            address,
            peer_asn,
            local_asn: None,
            rr_client: false,
            next_hop_mode: NextHopMode::Auto,
            num_allowed_local_as: 0,
            import: None,
            export: None,
            local_v4: None,
            local_v6: None,
            soft_reconfig_inbound: false,
            role: None,
            add_path_send_max: 0,
        }
    }
}

/// What a session negotiated, given at `peer_up`.
#[derive(Debug, Clone)]
pub struct PeerSession {
    /// The peer's BGP identifier (decision-process tie-breaker).
    pub router_id: Ipv4Addr,
    /// Families negotiated (RFC 4760).
    pub families: Vec<Family>,
    /// Families where the peer sends us ADD-PATH identifiers.
    pub add_path_rx: Vec<Family>,
    /// Families where we send ADD-PATH identifiers.
    pub add_path_tx: Vec<Family>,
    pub four_octet_as: bool,
    pub route_refresh: bool,
    /// The peer's graceful-restart capability, if it sent one and we did too.
    pub graceful_restart: Option<GracefulRestart>,
    /// The peer's long-lived GR capability (RFC 9494).
    pub llgr: Vec<LlgrFamily>,
    /// 4096, or 65535 with RFC 8654.
    pub max_message_len: usize,
    /// The peer's role (RFC 9234), if it sent one.
    pub peer_role: Option<Role>,
    /// Families whose NLRI may carry an IPv6 next hop (RFC 8950 extended
    /// next hop, offered by both sides).
    pub extended_next_hop: Vec<Family>,
}

impl PeerSession {
    /// A plain session for IPv4 and IPv6 unicast with no optional features.
    pub fn basic(router_id: Ipv4Addr) -> Self {
        PeerSession {
            router_id,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            add_path_rx: Vec::new(),
            add_path_tx: Vec::new(),
            four_octet_as: true,
            route_refresh: true,
            graceful_restart: None,
            llgr: Vec::new(),
            max_message_len: tabby_bgp::message::MAX_MESSAGE_LEN,
            peer_role: None,
            extended_next_hop: Vec::new(),
        }
    }
}

impl From<&tabby_bgp::negotiated::Negotiated> for PeerSession {
    /// What the session FSM's `Established` action carries.
    fn from(n: &tabby_bgp::negotiated::Negotiated) -> Self {
        PeerSession {
            router_id: n.peer_id,
            families: n.families.iter().copied().collect(),
            add_path_rx: n.add_path_rx.iter().copied().collect(),
            add_path_tx: n.add_path_tx.iter().copied().collect(),
            four_octet_as: n.four_octet_as,
            route_refresh: n.route_refresh,
            graceful_restart: n.peer_gr.clone(),
            llgr: n.peer_llgr.clone(),
            max_message_len: n.codec_ctx().max_message_len,
            peer_role: n.peer_role,
            extended_next_hop: n.extended_next_hop.iter().copied().collect(),
        }
    }
}

/// Why a session went down, as far as the RIB cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownKind {
    /// Keep the peer's routes as stale when graceful restart was negotiated
    /// (RFC 4724 §4.2; RFC 8538 for NOTIFICATION-triggered restarts). The
    /// session layer decides whether the cause qualifies.
    Graceful,
    /// Flush every route at once (administrative shutdown, RFC 8538 Hard
    /// Reset, GR not negotiated).
    Flush,
}

impl From<&tabby_bgp::fsm::Down> for DownKind {
    /// The FSM decided whether graceful restart applies (RFC 4724 §4.2,
    /// RFC 8538 N bit and Hard Reset).
    fn from(d: &tabby_bgp::fsm::Down) -> Self {
        if d.stale.is_some() {
            DownKind::Graceful
        } else {
            DownKind::Flush
        }
    }
}

/// What kind of locally originated route this is (policy can match on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LocalKind {
    /// An IPAM block owned by this node.
    #[default]
    PodBlock,
    /// A /32 or /128 borrowed from another node's block.
    HostRoute,
    /// A service IP (cluster, external or load-balancer).
    Service,
    /// Anything else the operator configured.
    Static,
}

/// What [`crate::Rib::originate`] did to an owner's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalChange {
    Added,
    Updated,
    Unchanged,
}

/// What [`crate::Rib::replace_local`] did to an owner's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalChanges {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub removed: u64,
}

/// A route this node originates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalRoute {
    pub kind: LocalKind,
    pub communities: Vec<tabby_bgp::attr::Community>,
    pub large_communities: Vec<tabby_bgp::attr::LargeCommunity>,
    /// Advertise this next hop instead of our own address.
    pub next_hop: Option<IpAddr>,
    /// LOCAL_PREF for this route (`None`: 2147483647 − the family's
    /// normal priority, see `RibConfig::normal_priority_v4`).
    pub local_pref: Option<LocalPref>,
    pub med: Option<Med>,
}

/// Where a candidate path came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSource {
    Local {
        owner: String,
        kind: LocalKind,
    },
    Peer {
        peer: PeerId,
        address: IpAddr,
        kind: PeerKind,
    },
}

/// One member of the ECMP set of a best route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcmpHop {
    /// The next hop to install (received or, for local routes, as set).
    pub addr: IpAddr,
    /// The peer the path came from (`None` for a local route).
    pub peer: Option<PeerId>,
}

/// The selected route for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestRoute {
    /// The ECMP set, best first; one entry without multipath.
    pub next_hops: Vec<EcmpHop>,
    /// True when the best path is originated by this node: fib-sync must not
    /// install it as a BGP route.
    pub local: bool,
    pub source: RouteSource,
    pub attributes: Arc<RouteAttrs>,
    /// Whether the best path is a graceful-restart stale path.
    pub stale: bool,
}

/// A change of the selected route for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestChange {
    /// Monotonic per RIB, so watchers can detect gaps.
    pub seq: u64,
    pub prefix: IpNet,
    /// `None`: no usable route any more.
    pub best: Option<BestRoute>,
}

/// Who receives a batch of outgoing UPDATEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Every member of an update group (those still waiting for their
    /// initial dump excepted). Each skips the spans of the batch that name
    /// it: the routes it sent (split horizon).
    Group { group: u32, members: Arc<[PeerId]> },
    /// One peer (route refresh, per-peer corrections, a policy change).
    Peer(PeerId),
}

impl Recipients {
    /// The peers this batch is for.
    pub fn peers(&self) -> &[PeerId] {
        match self {
            Recipients::Group { members, .. } => members,
            Recipients::Peer(p) => std::slice::from_ref(p),
        }
    }

    pub fn includes(&self, peer: PeerId) -> bool {
        self.peers().contains(&peer)
    }
}

/// UPDATEs to send, encoded once for all recipients in the wire format of
/// their update group. A recipient sends `batch.for_member(peer.0)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: Recipients,
    pub batch: Arc<tabby_bgp::codec::UpdateBatch>,
}

impl Outgoing {
    /// The UPDATEs `peer` receives from this batch, decoded (tests and
    /// tools; the daemon hands the encoded batch on).
    pub fn updates_for(
        &self,
        peer: PeerId,
    ) -> Result<Vec<tabby_bgp::message::Update>, tabby_bgp::error::DecodeError> {
        if !self.to.includes(peer) {
            return Ok(Vec::new());
        }
        // Decoded as the peer receives it: our ADD-PATH send is its receive.
        let ctx = tabby_bgp::codec::CodecCtx {
            add_path_rx: self.batch.ctx().add_path_tx.clone(),
            ..self.batch.ctx().clone()
        };
        let mut out = Vec::new();
        for chunk in self.batch.for_member(peer.0) {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let len = match tabby_bgp::codec::frame_len(rest, ctx.max_message_len)? {
                    Some(n) => n,
                    None => break,
                };
                let (msg, tail) = rest.split_at(len.min(rest.len()));
                if let tabby_bgp::Message::Update(u) = tabby_bgp::codec::decode_message(msg, &ctx)?
                {
                    out.push(u);
                }
                rest = tail;
            }
        }
        Ok(out)
    }
}

/// What the caller must do after a policy change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyChangeOutcome {
    /// Families for which a ROUTE-REFRESH must be sent to the peer because
    /// no pre-policy Adj-RIB-In is kept (RFC 2918).
    pub route_refresh: Vec<Family>,
}

/// RIB errors: mistakes by the caller, not by peers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    #[error("{0} is not configured in the RIB; add_peer it first")]
    UnknownPeer(PeerId),
    #[error("{0} is already configured; remove_peer it first or use update_policy")]
    DuplicatePeer(PeerId),
    #[error("{0} has no established session")]
    PeerNotUp(PeerId),
    #[error("family {0} is not supported by the RIB (only IPv4/IPv6 unicast)")]
    UnsupportedFamily(Family),
}
