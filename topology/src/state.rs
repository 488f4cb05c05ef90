//! The desired BGP state of one node: what [`crate::derive`] produces and
//! [`crate::diff`] compares. Plain data; the daemon maps it onto the BGP, RIB and FIB crates.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::types::{Community, EncapMode, ProgramClusterRoutes};

/// A session is identified by the peer's address and TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey {
    pub address: IpAddr,
    pub port: u16,
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Where a peering comes from, as Calico's templates classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// The automatic node-to-node mesh.
    Mesh,
    /// A `BGPPeer` that applies to every node (no `node`, no `nodeSelector`).
    Global,
    /// A `BGPPeer` for this node (`node`, `nodeSelector`) or an automatic reverse peering.
    Node,
    /// A workload on this node that a `BGPPeer`'s `localWorkloadSelector` picks
    /// (confd's `Local_Workload_*` protocols): passive, never reversed.
    Workload,
}

/// What to put in NEXT_HOP when sending to this peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// The usual rule: self on eBGP, unchanged on iBGP (RFC 4271 §5.1.3).
    Auto,
    /// Always this node's address.
    SelfAddr,
    /// Never rewrite.
    Keep,
}

/// One desired BGP session. Its `Debug` output never shows the password.
#[derive(Clone, PartialEq)]
pub struct Peer {
    pub key: PeerKey,
    pub kind: PeerKind,
    /// What created this peering: `node-to-node mesh` or `BGPPeer <name>`.
    pub origin: String,
    /// The Calico node at the far end, when it is one.
    pub calico_node: Option<String>,
    pub peer_as: u32,
    /// The AS this node presents on this session (`localASNumber` or the node's AS).
    pub local_as: u32,
    /// Set when `localASNumber` overrides the node's AS.
    pub local_as_override: Option<u32>,
    /// Wait for the peer to connect; never initiate.
    pub passive: bool,
    /// This node reflects routes to the peer (RFC 4456); the cluster id is the node's.
    pub rr_client: bool,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<String>,
    /// GTSM: accept only packets at most this many hops away (RFC 5082).
    pub ttl_security: Option<u8>,
    /// Local address to bind the TCP connection to.
    pub source_address: Option<IpAddr>,
    pub next_hop: NextHop,
    /// Accept routes whose AS_PATH holds our AS up to this many times.
    pub num_allowed_local_as: Option<u32>,
    /// Graceful-restart time to advertise (RFC 4724 §3); `None` = the daemon's default.
    pub graceful_restart_time: Option<Duration>,
    /// Keepalive interval; `None` = the daemon's default.
    pub keepalive_time: Option<Duration>,
    /// Gateway for a host route to the peer, installed so the session never follows BGP routes.
    pub reachable_by: Option<IpAddr>,
    /// `peer_as == local_as`.
    pub internal: bool,
    /// Names of the `BGPFilter`s applied, in order.
    pub filters: Vec<String>,
    /// Rules from those filters for this peer's family; the daemon appends [`Verdict::Accept`].
    pub import_rules: Vec<PolicyRule>,
    /// Rules from those filters; [`NodeState::export_policy`] composes the full chain.
    pub export_rules: Vec<PolicyRule>,
    /// BFD for this session (the `tabby-routing.io/bfd` annotation); `None`: off.
    pub bfd: Option<BfdSettings>,
}

/// BFD for one BGP session (RFC 5880, 5881, 5883), from the
/// `tabby-routing.io/bfd` annotation of its BGPPeer, or of the
/// BGPConfiguration for the node-to-node mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdSettings {
    /// Desired Min TX Interval: how often we send once Up.
    pub min_tx: Duration,
    /// Required Min RX Interval: the fastest we accept the peer sending.
    pub min_rx: Duration,
    /// Detect Mult: packets the peer may miss before it declares us down.
    pub multiplier: u8,
    /// RFC 5883 multihop (UDP 4784) instead of RFC 5881 single-hop.
    pub multihop: bool,
    /// Multihop only: the lowest TTL accepted (RFC 5883 §5).
    pub min_ttl: u8,
    /// Speak only once the peer has been heard (RFC 5880 §6.1).
    pub passive: bool,
    /// Start the BGP session only once BFD is Up.
    pub wait_for_up: bool,
    /// On BFD Down, let graceful restart keep the peer's routes as stale
    /// (BIRD's `bfd graceful`) instead of flushing them at once.
    pub graceful: bool,
}

impl BfdSettings {
    /// The datacenter defaults: 300 ms × 3, single-hop, active.
    pub const DEFAULT: BfdSettings = BfdSettings {
        min_tx: Duration::from_millis(300),
        min_rx: Duration::from_millis(300),
        multiplier: 3,
        multihop: false,
        min_ttl: 254,
        passive: false,
        wait_for_up: false,
        graceful: false,
    };
}

impl Default for BfdSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("origin", &self.origin)
            .field("calico_node", &self.calico_node)
            .field("peer_as", &self.peer_as)
            .field("local_as", &self.local_as)
            .field("local_as_override", &self.local_as_override)
            .field("passive", &self.passive)
            .field("rr_client", &self.rr_client)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ttl_security", &self.ttl_security)
            .field("source_address", &self.source_address)
            .field("next_hop", &self.next_hop)
            .field("num_allowed_local_as", &self.num_allowed_local_as)
            .field("graceful_restart_time", &self.graceful_restart_time)
            .field("keepalive_time", &self.keepalive_time)
            .field("reachable_by", &self.reachable_by)
            .field("internal", &self.internal)
            .field("filters", &self.filters)
            .field("import_rules", &self.import_rules)
            .field("export_rules", &self.export_rules)
            .field("bfd", &self.bfd)
            .finish()
    }
}

/// A prefix condition: the route's prefix lies within `net` and its length is in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrefixMatch {
    pub net: IpNet,
    pub min_len: u8,
    pub max_len: u8,
}

impl PrefixMatch {
    /// Exactly `net` (BIRD's `net = X`).
    pub fn exact(net: IpNet) -> Self {
        PrefixMatch {
            net,
            min_len: net.prefix_len(),
            max_len: net.prefix_len(),
        }
    }
    /// `net` or anything inside it (BIRD's `net ~ X`).
    pub fn within(net: IpNet) -> Self {
        PrefixMatch {
            net,
            min_len: net.prefix_len(),
            max_len: net.max_prefix_len(),
        }
    }
    pub fn matches(&self, prefix: &IpNet) -> bool {
        self.net.contains(prefix)
            && prefix.prefix_len() >= self.min_len
            && prefix.prefix_len() <= self.max_len
    }
}

/// A condition of a policy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Prefix(PrefixMatch),
    NotPrefix(PrefixMatch),
    /// The route was learned from a BGP peer (Calico's `source: RemotePeers`).
    FromBgp,
    /// The route's outgoing interface matches this glob (`*` wildcard).
    Interface(String),
    /// The route carries this community (BIRD: `(aa, nn) ~ bgp_community`, or
    /// `bgp_large_community` for a large one).
    Community(Community),
    /// The route's AS_PATH starts with these ASNs (BIRD: `bgp_path ~ [= a b * =]`).
    AsPathPrefix(Vec<u32>),
    /// The route's Calico priority is `value` (Calico renders
    /// `bgp_local_pref = 2147483647 - value`). A route this node originates has no
    /// LOCAL_PREF of its own and counts as `local`: the family's normal route priority,
    /// as Calico's export filter assumes for a kernel route without a metric.
    Priority {
        value: u32,
        local: u32,
    },
    /// The route's Calico priority is below `value` (preferred over it;
    /// `local` as for [`Match::Priority`]): `calico_aggr`'s
    /// `krt_metric < normal`, which lets a host route above the normal
    /// priority (a live-migrated workload) out of its block's aggregation.
    PriorityBelow {
        value: u32,
        local: u32,
    },
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction {
    AddCommunity(Community),
    /// Put these ASNs, in this order, in front of the AS_PATH.
    PrependAsPath(Vec<u32>),
    /// Set the route's Calico priority (LOCAL_PREF `2147483647 - value`).
    SetPriority(u32),
    /// Stop here: the route passes.
    Accept,
    /// Stop here: the route is dropped.
    Reject,
}

/// Final outcome when no rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject,
}

/// If every match holds, do the actions in order (the first `Accept`/`Reject` ends evaluation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    pub matches: Vec<Match>,
    pub actions: Vec<PolicyAction>,
}

/// An ordered list of rules and the verdict when none decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<PolicyRule>,
    pub default: Verdict,
}

/// Facts about a route a policy looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFacts<'a> {
    pub prefix: IpNet,
    pub from_bgp: bool,
    pub interface: Option<&'a str>,
    /// Communities the route carries.
    pub communities: &'a [Community],
    /// Its AS_PATH, first AS first.
    pub as_path: &'a [u32],
    /// Its Calico priority; `None` for a route this node originates without one.
    pub priority: Option<u32>,
}

/// The outcome of running a policy on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    /// Communities the rules added.
    pub communities: Vec<Community>,
    /// ASNs the rules put in front of the AS_PATH, first AS first.
    pub prepended: Vec<u32>,
    /// The priority the last `SetPriority` set.
    pub priority: Option<u32>,
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.len() >= head.len()
                && s.starts_with(head)
                && (0..=s.len() - head.len())
                    .any(|i| s.get(head.len() + i..).is_some_and(|rest| glob(tail, rest)))
        }
    }
}

impl Match {
    pub fn matches(&self, r: &RouteFacts<'_>) -> bool {
        match self {
            Match::Prefix(p) => p.matches(&r.prefix),
            Match::NotPrefix(p) => !p.matches(&r.prefix),
            Match::FromBgp => r.from_bgp,
            Match::Interface(g) => r.interface.is_some_and(|i| glob(g, i)),
            Match::Community(c) => r.communities.contains(c),
            Match::AsPathPrefix(p) => r.as_path.starts_with(p),
            Match::Priority { value, local } => r.priority.unwrap_or(*local) == *value,
            Match::PriorityBelow { value, local } => r.priority.unwrap_or(*local) < *value,
        }
    }
}

impl Policy {
    /// Reference evaluator: documents the semantics the daemon must reproduce.
    pub fn evaluate(&self, r: &RouteFacts<'_>) -> Evaluation {
        // Later rules see what earlier ones changed, as in a BIRD filter.
        let mut communities: Vec<Community> = r.communities.to_vec();
        let mut as_path: Vec<u32> = r.as_path.to_vec();
        let mut e = Evaluation {
            verdict: self.default,
            communities: Vec::new(),
            prepended: Vec::new(),
            priority: None,
        };
        for rule in &self.rules {
            let view = RouteFacts {
                communities: &communities,
                as_path: &as_path,
                priority: e.priority.or(r.priority),
                ..*r
            };
            if !rule.matches.iter().all(|m| m.matches(&view)) {
                continue;
            }
            for a in &rule.actions {
                match a {
                    PolicyAction::AddCommunity(c) => {
                        if !communities.contains(c) {
                            communities.push(*c);
                            e.communities.push(*c);
                        }
                    }
                    PolicyAction::PrependAsPath(asns) => {
                        as_path.splice(0..0, asns.iter().copied());
                        e.prepended.splice(0..0, asns.iter().copied());
                    }
                    PolicyAction::SetPriority(p) => e.priority = Some(*p),
                    PolicyAction::Accept => {
                        e.verdict = Verdict::Accept;
                        return e;
                    }
                    PolicyAction::Reject => {
                        e.verdict = Verdict::Reject;
                        return e;
                    }
                }
            }
        }
        e
    }
}

/// Why this node originates a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginKind {
    /// A confirmed IPAM block affine to this node.
    Block,
    ServiceClusterIps,
    ServiceExternalIps,
    ServiceLoadBalancerIps,
    /// One Service's address (a /32 or /128), announced by the route generator's rules
    /// (`externalTrafficPolicy: Local` with an endpoint here, a single allowed address, or
    /// any ready endpoint when LoadBalancer aggregation is off).
    ServiceAddress,
}

/// A route this node advertises itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginatedRoute {
    pub prefix: IpNet,
    pub kind: OriginKind,
    /// Install a local blackhole for it (blocks: traffic to unallocated addresses stops here).
    pub blackhole: bool,
    /// Communities the export policy attaches (from `prefixAdvertisements`).
    pub communities: Vec<Community>,
}

/// How routes learned inside a pool are programmed into the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelRoute {
    /// Plain route via the BGP next hop.
    Direct,
    /// Onlink route via the IP-in-IP tunnel device.
    Tunnel,
    /// Tunnel, unless the next hop is inside this node's subnet (`CrossSubnet`).
    TunnelUnlessNextHopIn(Ipv4Net),
    /// Not at all: Felix programs VXLAN routes.
    Skip,
}

/// One `IPPool` as it concerns routing on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolState {
    pub name: String,
    pub cidr: IpNet,
    pub block_size: u8,
    pub disabled: bool,
    pub disable_bgp_export: bool,
    pub ipip_mode: EncapMode,
    pub vxlan_mode: EncapMode,
    pub kernel: KernelRoute,
}

/// A host route toward a peer, from `BGPPeer.reachableBy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaticRoute {
    pub prefix: IpNet,
    pub via: IpAddr,
}

/// Everything this node's BGP speaker should be doing.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    pub node_name: String,
    /// BGP identifier (RFC 6286): the node's IPv4 address, as Calico does.
    pub router_id: Ipv4Addr,
    pub local_as: u32,
    pub listen_port: u16,
    /// Addresses to listen on; empty means all (`bindMode: None`).
    pub listen_addresses: Vec<IpAddr>,
    pub ipv4: Option<Ipv4Net>,
    pub ipv6: Option<Ipv6Net>,
    /// Set when this node is a route reflector (RFC 4456 CLUSTER_ID).
    pub rr_cluster_id: Option<Ipv4Addr>,
    pub mesh_enabled: bool,
    pub log_severity: Option<String>,
    pub ignored_interfaces: Vec<String>,
    /// `programClusterRoutes` of `default` (unset: `Enabled`); already folded into each
    /// pool's [`PoolState::kernel`].
    pub program_cluster_routes: ProgramClusterRoutes,
    /// `serviceLoadBalancerAggregation` of `default` (unset: `Enabled`). When false the
    /// `serviceLoadBalancerIPs` ranges are not originated.
    pub service_lb_aggregation: bool,
    /// `ipv4NormalRoutePriority` / `ipv6NormalRoutePriority` of `default` (unset: 1024).
    pub normal_route_priority_v4: u32,
    pub normal_route_priority_v6: u32,
    pub peers: BTreeMap<PeerKey, Peer>,
    pub originated: BTreeMap<IpNet, OriginatedRoute>,
    pub pools: Vec<PoolState>,
    /// Calico's default export rules (after per-peer filters) for IPv4 and IPv6 peers.
    pub export_base_v4: Vec<PolicyRule>,
    pub export_base_v6: Vec<PolicyRule>,
    pub static_routes: Vec<StaticRoute>,
    /// BMP monitoring stations (the `tabby-routing.io/bmp-stations` annotation of
    /// `default`).
    pub bmp_stations: Vec<SocketAddr>,
    /// Non-fatal problems (missing Secret, unknown filter name…), for logs and status.
    pub warnings: Vec<String>,
}

/// Glob patterns for routes to Felix's own tunnel devices, which must not leak to iBGP peers.
pub const FELIX_TUNNEL_INTERFACES: [&str; 2] = ["*.cali", "*.calico"];

impl NodeState {
    /// The kernel metric of this node's routes of one family (and the priority its
    /// own routes have in BGPFilter `priority` matches).
    pub fn normal_route_priority(&self, v6: bool) -> u32 {
        if v6 {
            self.normal_route_priority_v6
        } else {
            self.normal_route_priority_v4
        }
    }

    /// The complete export policy for one peer: its filters, then Calico's default rules,
    /// then reject. Mirrors `calico_export_to_bgp_peers(internal)` in Calico's BIRD config.
    pub fn export_policy(&self, peer: &Peer) -> Policy {
        let mut rules = peer.export_rules.clone();
        // Calico calls calico_export_to_bgp_peers(true) for every mesh session, even
        // between nodes of different AS numbers.
        if peer.internal || peer.kind == PeerKind::Mesh {
            for g in FELIX_TUNNEL_INTERFACES {
                rules.push(PolicyRule {
                    matches: vec![Match::Interface(g.to_string())],
                    actions: vec![PolicyAction::Reject],
                });
            }
        }
        let base = if peer.key.address.is_ipv4() {
            &self.export_base_v4
        } else {
            &self.export_base_v6
        };
        rules.extend(base.iter().cloned());
        Policy {
            rules,
            default: Verdict::Reject,
        }
    }

    /// The import policy for one peer: its filters, then accept.
    pub fn import_policy(&self, peer: &Peer) -> Policy {
        Policy {
            rules: peer.import_rules.clone(),
            default: Verdict::Accept,
        }
    }

    /// How the kernel route for a learned prefix is programmed: first pool containing it
    /// decides; routes outside every pool are plain.
    pub fn kernel_route_for(&self, prefix: &IpNet) -> KernelRoute {
        self.pools
            .iter()
            .find(|p| p.cidr.contains(prefix))
            .map(|p| p.kernel)
            .unwrap_or(KernelRoute::Direct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*.cali", "tunl0.cali"));
        assert!(!glob("*.cali", "tunl0.calico"));
        assert!(glob("*.calico", "x.calico"));
        assert!(glob("eth*", "eth0"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("eth0", "eth0"));
    }

    #[test]
    fn prefix_matches() {
        let n: IpNet = "100.64.0.0/16".parse().unwrap();
        let w = PrefixMatch::within(n);
        assert!(w.matches(&n));
        assert!(w.matches(&"100.64.1.0/26".parse().unwrap()));
        assert!(!w.matches(&"100.65.0.0/26".parse().unwrap()));
        assert!(!w.matches(&"100.64.0.0/15".parse().unwrap()));
        let e = PrefixMatch::exact(n);
        assert!(e.matches(&n));
        assert!(!e.matches(&"100.64.1.0/26".parse().unwrap()));
    }
}
