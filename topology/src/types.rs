//! Validated Calico resources: what remains of a `projectcalico.org/v3` object once
//! every field has been checked and parsed. Derivation works only on these.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::bfd::BfdAnnotation;
use crate::selector::Selector;

/// Calico's default AS number when neither the node nor `BGPConfiguration default` sets one.
pub const DEFAULT_AS_NUMBER: u32 = 64512;
/// The BGP port (RFC 4271 §8.2.1) used when no `listenPort` is configured.
pub const DEFAULT_BGP_PORT: u16 = 179;
/// Annotation that marks a node as a route reflector when `routeReflectorClusterID` is unset.
pub const RR_CLUSTER_ID_ANNOTATION: &str = "projectcalico.org/RouteReflectorClusterID";

/// The resource kinds Tabby understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Node,
    BgpConfiguration,
    BgpPeer,
    IpPool,
    BgpFilter,
    BlockAffinity,
    Secret,
    /// A Kubernetes Service (per-Service routes), held as `namespace/name`.
    Service,
    /// A Kubernetes EndpointSlice, held as `namespace/name`.
    EndpointSlice,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Node,
        Kind::BgpConfiguration,
        Kind::BgpPeer,
        Kind::IpPool,
        Kind::BgpFilter,
        Kind::BlockAffinity,
        Kind::Secret,
        Kind::Service,
        Kind::EndpointSlice,
    ];

    /// The `kind:` string as Calico (or Kubernetes, for `Secret`) spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::BgpConfiguration => "BGPConfiguration",
            Kind::BgpPeer => "BGPPeer",
            Kind::IpPool => "IPPool",
            Kind::BgpFilter => "BGPFilter",
            Kind::BlockAffinity => "BlockAffinity",
            Kind::Secret => "Secret",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
        }
    }

    /// The lower-case plural used in Calico's etcdv3 keys.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::BgpConfiguration => "bgpconfigurations",
            Kind::BgpPeer => "bgppeers",
            Kind::IpPool => "ippools",
            Kind::BgpFilter => "bgpfilters",
            Kind::BlockAffinity => "blockaffinities",
            Kind::Secret => "secrets",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
        }
    }

    pub fn from_kind_str(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn from_plural(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == s)
    }

    /// Namespaced kinds live at `<plural>/<namespace>/<name>` in etcd.
    pub fn is_namespaced(self) -> bool {
        matches!(self, Kind::Secret)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Node`: a host running a BGP speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.bgp.ipv4Address`: the address, with the subnet it sits in when given as a CIDR.
    pub ipv4: Option<Ipv4Net>,
    /// `spec.bgp.ipv6Address`.
    pub ipv6: Option<Ipv6Net>,
    /// `spec.bgp.asNumber`.
    pub as_number: Option<u32>,
    /// `spec.bgp.routeReflectorClusterID`, else the annotation of the same meaning.
    pub rr_cluster_id: Option<Ipv4Addr>,
}

impl Node {
    pub fn ipv4_addr(&self) -> Option<Ipv4Addr> {
        self.ipv4.map(|n| n.addr())
    }
    pub fn ipv6_addr(&self) -> Option<Ipv6Addr> {
        self.ipv6.map(|n| n.addr())
    }
    /// The node's address of the same family as `like`.
    pub fn addr_like(&self, like: IpAddr) -> Option<IpAddr> {
        match like {
            IpAddr::V4(_) => self.ipv4_addr().map(IpAddr::V4),
            IpAddr::V6(_) => self.ipv6_addr().map(IpAddr::V6),
        }
    }
}

/// `BGPConfiguration.spec.bindMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Listen on every address.
    #[default]
    None,
    /// Listen on the node's own address only.
    NodeIp,
}

/// A BGP community (RFC 1997) or large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Community {
    Standard(u16, u16),
    Large(u32, u32, u32),
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(a, b) => write!(f, "{a}:{b}"),
            Community::Large(a, b, c) => write!(f, "{a}:{b}:{c}"),
        }
    }
}

/// `BGPConfiguration.spec.prefixAdvertisements[]`, with community names resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixAdvertisement {
    pub cidr: IpNet,
    pub communities: Vec<Community>,
}

/// `secretKeyRef`: where an MD5 password lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
    pub optional: bool,
}

/// `BGPConfiguration`: `default` (cluster-wide) or `node.<name>` (per node).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BgpConfiguration {
    pub name: String,
    pub log_severity_screen: Option<String>,
    pub node_to_node_mesh_enabled: Option<bool>,
    pub as_number: Option<u32>,
    pub listen_port: Option<u16>,
    pub bind_mode: Option<BindMode>,
    pub service_cluster_ips: Vec<IpNet>,
    pub service_external_ips: Vec<IpNet>,
    pub service_load_balancer_ips: Vec<IpNet>,
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    pub node_mesh_password: Option<SecretKeyRef>,
    pub node_mesh_max_restart_time: Option<Duration>,
    pub ignored_interfaces: Vec<String>,
    /// `serviceLoadBalancerAggregation` (Calico 3.31+): `Some(false)` is `Disabled`.
    /// Read from `default` only, as confd does.
    pub service_load_balancer_aggregation: Option<bool>,
    /// `programClusterRoutes` (Calico 3.32+). Read from `default` only.
    pub program_cluster_routes: Option<ProgramClusterRoutes>,
    /// `ipv4NormalRoutePriority` / `ipv6NormalRoutePriority` (Calico 3.32+), 1..=2147483646.
    /// Read from `default` only.
    pub ipv4_normal_route_priority: Option<u32>,
    pub ipv6_normal_route_priority: Option<u32>,
    /// The `tabby-routing.io/bfd` annotation, for the node-to-node mesh sessions (`default`:
    /// every node's; `node.<name>`: that node's, over `default`'s). `None`: not annotated.
    pub bfd: Option<BfdAnnotation>,
    /// The `tabby-routing.io/bmp-stations` annotation (read from `default`): its text, or
    /// what it is instead of a string. `None`: not annotated.
    pub bmp_stations: Option<Result<String, String>>,
}

/// `BGPConfiguration.spec.programClusterRoutes`: which pools' cluster routes (routes to
/// other nodes' blocks) the BGP stack programs; Felix programs the rest. Only pools with
/// `vxlanMode: Never` are concerned (Felix always programs VXLAN routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgramClusterRoutes {
    /// IPIP and unencapsulated pools (Calico 3.32's default).
    #[default]
    Enabled,
    /// Neither: Felix programs every cluster route.
    Disabled,
    /// IPIP pools only (Calico 3.34's split of the field).
    EnabledIpipOnly,
    /// Unencapsulated pools only (Calico 3.34's split of the field).
    EnabledNoEncapOnly,
}

impl ProgramClusterRoutes {
    /// Calico's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgramClusterRoutes::Enabled => "Enabled",
            ProgramClusterRoutes::Disabled => "Disabled",
            ProgramClusterRoutes::EnabledIpipOnly => "EnabledIPIPOnly",
            ProgramClusterRoutes::EnabledNoEncapOnly => "EnabledNoEncapOnly",
        }
    }

    /// Does the BGP stack program routes for pools with this IPIP mode (`vxlanMode: Never`)?
    pub fn programs(self, ipip: bool) -> bool {
        match self {
            ProgramClusterRoutes::Enabled => true,
            ProgramClusterRoutes::Disabled => false,
            ProgramClusterRoutes::EnabledIpipOnly => ipip,
            ProgramClusterRoutes::EnabledNoEncapOnly => !ipip,
        }
    }
}

/// Calico's default `ipv4NormalRoutePriority` / `ipv6NormalRoutePriority` (Felix's normal
/// workload route metric).
pub const DEFAULT_NORMAL_ROUTE_PRIORITY: u32 = 1024;

/// `BGPPeer.spec.sourceAddress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceAddress {
    #[default]
    UseNodeIp,
    None,
}

/// `BGPPeer.spec.nextHopMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NextHopMode {
    /// BIRD's default: self for eBGP, unchanged for iBGP.
    #[default]
    Auto,
    SelfAddr,
    Keep,
}

/// `BGPPeer.spec.reversePeering`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReversePeering {
    #[default]
    Auto,
    Manual,
}

/// `BGPPeer`: explicit peerings, to an address or to selected Calico nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct BgpPeer {
    pub name: String,
    pub node: Option<String>,
    pub node_selector: Option<Selector>,
    /// `peerIP`, with its optional `:port`.
    pub peer_ip: Option<(IpAddr, Option<u16>)>,
    pub as_number: Option<u32>,
    pub peer_selector: Option<Selector>,
    pub keep_original_next_hop: bool,
    pub next_hop_mode: NextHopMode,
    pub password: Option<SecretKeyRef>,
    pub source_address: SourceAddress,
    pub max_restart_time: Option<Duration>,
    pub keepalive_time: Option<Duration>,
    pub num_allowed_local_as_numbers: Option<u32>,
    pub ttl_security: Option<u8>,
    pub reachable_by: Option<IpAddr>,
    pub filters: Vec<String>,
    pub local_as_number: Option<u32>,
    pub reverse_peering: ReversePeering,
    /// `localWorkloadSelector` (Calico 3.31+): peer with this node's workloads instead of a
    /// remote address. Which workloads is Felix's choice, read from its endpoint status
    /// files ([`crate::LocalEndpoints`]); the selector is kept for display only.
    pub local_workload_selector: Option<Selector>,
    /// The `tabby-routing.io/bfd` annotation, for every session this BGPPeer derives.
    /// `None`: not annotated.
    pub bfd: Option<BfdAnnotation>,
}

/// An IPPool encapsulation mode (`ipipMode`, `vxlanMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncapMode {
    #[default]
    Never,
    Always,
    CrossSubnet,
}

/// `IPPool`.
#[derive(Debug, Clone, PartialEq)]
pub struct IpPool {
    pub name: String,
    pub cidr: IpNet,
    pub block_size: u8,
    pub ipip_mode: EncapMode,
    pub vxlan_mode: EncapMode,
    pub disabled: bool,
    pub disable_bgp_export: bool,
    pub nat_outgoing: bool,
}

/// `BGPFilter` rule action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterAction {
    Accept,
    Reject,
}

/// `BGPFilter` rule `matchOperator`, applied to `cidr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOperator {
    /// The route's prefix is exactly `cidr`.
    Equal,
    NotEqual,
    /// The route's prefix is `cidr` or inside it.
    In,
    NotIn,
}

/// One `BGPFilter` rule (`exportV4[]`, `importV6[]`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterRule {
    pub action: FilterAction,
    pub cidr: Option<(MatchOperator, IpNet)>,
    /// `prefixLength.min`/`.max`; a missing bound defaults to the CIDR's length / the family maximum.
    pub prefix_length: Option<(u8, u8)>,
    /// `source: RemotePeers`: only routes learned from BGP.
    pub source_remote_peers: bool,
    /// `interface`: a BIRD-style glob on the route's interface.
    pub interface: Option<String>,
    /// `peerType`: the rule applies only to sessions of this type.
    pub peer_type: Option<PeerType>,
    /// `communities.values[0]`: the route carries this community.
    pub community: Option<Community>,
    /// `asPathPrefix`: the route's AS_PATH starts with these ASNs (empty: no condition).
    pub as_path_prefix: Vec<u32>,
    /// `priority`: the route's Calico priority (lower is preferred) is this.
    pub priority: Option<u32>,
    /// `operations`, in order, before the route is accepted (only with `Accept`).
    pub operations: Vec<FilterOperation>,
}

/// `BGPFilter` rule `peerType`: eBGP (the peer's AS differs from the AS this node
/// presents to it) or iBGP (the same AS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerType {
    Ebgp,
    Ibgp,
}

/// One entry of a `BGPFilter` rule's `operations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterOperation {
    /// `addCommunity.value`.
    AddCommunity(Community),
    /// `prependASPath.prefix`: the path becomes these ASNs, in this order, then the old path.
    PrependAsPath(Vec<u32>),
    /// `setPriority.value`: the route's Calico priority.
    SetPriority(u32),
}

/// `BGPFilter`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BgpFilter {
    pub name: String,
    pub export_v4: Vec<FilterRule>,
    pub import_v4: Vec<FilterRule>,
    pub export_v6: Vec<FilterRule>,
    pub import_v6: Vec<FilterRule>,
}

/// `BlockAffinity.spec.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityState {
    Confirmed,
    Pending,
    PendingDeletion,
}

/// `BlockAffinity`: an IPAM block bound to a node.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockAffinity {
    pub name: String,
    pub node: String,
    pub cidr: IpNet,
    pub state: AffinityState,
    pub deleted: bool,
}

/// `Secret` (core/v1): only its decoded data matters.
#[derive(Clone, PartialEq)]
pub struct Secret {
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, String>,
}

impl fmt::Debug for Secret {
    // Never print secret values, even at debug level.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Any one validated resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Node(Node),
    BgpConfiguration(BgpConfiguration),
    BgpPeer(BgpPeer),
    IpPool(IpPool),
    BgpFilter(BgpFilter),
    BlockAffinity(BlockAffinity),
    Secret(Secret),
    Service(crate::services::Service),
    EndpointSlice(crate::services::EndpointSlice),
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Node(_) => Kind::Node,
            Resource::BgpConfiguration(_) => Kind::BgpConfiguration,
            Resource::BgpPeer(_) => Kind::BgpPeer,
            Resource::IpPool(_) => Kind::IpPool,
            Resource::BgpFilter(_) => Kind::BgpFilter,
            Resource::BlockAffinity(_) => Kind::BlockAffinity,
            Resource::Secret(_) => Kind::Secret,
            Resource::Service(_) => Kind::Service,
            Resource::EndpointSlice(_) => Kind::EndpointSlice,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Resource::Node(r) => &r.name,
            Resource::BgpConfiguration(r) => &r.name,
            Resource::BgpPeer(r) => &r.name,
            Resource::IpPool(r) => &r.name,
            Resource::BgpFilter(r) => &r.name,
            Resource::BlockAffinity(r) => &r.name,
            Resource::Secret(r) => &r.name,
            Resource::Service(r) => &r.name,
            Resource::EndpointSlice(r) => &r.name,
        }
    }
}
