//! The configuration the daemon runs, as one JSON document for the API's
//! GetConfig and `tabbyctl config`: schema `tabby.effective-config/v1`,
//! every field described in docs/effective-config.md.
//!
//! Built from the derived node state with the builders the daemon starts
//! sessions and RIB peers with ([`Daemon::session_spec`],
//! [`convert::peer_config`]), so it shows the values in force (defaults
//! applied), not the resources as written. A TCP-MD5 password appears only
//! as `password_set`. Field names and the text forms of enums are part of
//! the schema: add fields freely, rename or remove only with a new version.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Serialize, Serializer};
use tabby_api::model as am;
use tabby_bgp::fsm::GrConfig;
use tabby_rib::policy as rp;
use tabby_topology::{self as topo, NodeState};

use super::{Daemon, DatastoreState, PeerOrigin, api_peer};
use crate::convert;
use crate::sessions::SessionSpec;

/// The value of the document's `schema` field.
pub const SCHEMA: &str = "tabby.effective-config/v1";

/// The whole document.
#[derive(Debug, Serialize)]
pub struct EffectiveConfig {
    pub schema: &'static str,
    pub node_name: String,
    pub daemon: DaemonOptions,
    pub datastore: Datastore,
    /// `None` until a configuration has been derived from the datastore.
    pub node: Option<Node>,
    pub peers: Vec<Peer>,
    pub originated: Vec<Originated>,
    pub pools: Vec<Pool>,
    pub static_routes: Vec<StaticRoute>,
    pub policies: Vec<Policy>,
}

/// Options fixed when the daemon started (and the current log filter).
#[derive(Debug, Serialize)]
pub struct DaemonOptions {
    pub tunnel_device: String,
    pub deferral_time_seconds: u64,
    /// Per peer and family; 0 = no limit.
    pub max_prefixes: u32,
    pub log_level: String,
}

#[derive(Debug, Serialize)]
pub struct Datastore {
    pub sync: &'static str,
    pub detail: String,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub last_reconfigured_unix_seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Node {
    pub as_number: u32,
    pub router_id: Ipv4Addr,
    pub ipv4_address: Option<Ipv4Net>,
    pub ipv6_address: Option<Ipv6Net>,
    pub listen_port: u16,
    /// Empty: every address.
    pub listen_addresses: Vec<IpAddr>,
    /// Set when this node is a route reflector.
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    pub node_to_node_mesh: bool,
    pub log_severity: Option<String>,
    pub ignored_interfaces: Vec<String>,
    /// `BGPConfiguration.programClusterRoutes` (Calico's spelling).
    pub program_cluster_routes: &'static str,
    /// `BGPConfiguration.serviceLoadBalancerAggregation`: false is `Disabled`.
    pub service_load_balancer_aggregation: bool,
    /// `BGPConfiguration.ipv4NormalRoutePriority` / `ipv6NormalRoutePriority`.
    pub ipv4_normal_route_priority: u32,
    pub ipv6_normal_route_priority: u32,
    pub decision: Decision,
}

/// The RIB's settings for best-path selection and reflection.
#[derive(Debug, Serialize)]
pub struct Decision {
    pub cluster_id: Ipv4Addr,
    pub max_paths: usize,
    pub always_compare_med: bool,
    pub rfc8212: bool,
    pub default_local_pref: u32,
    pub stale_path_time_seconds: u64,
}

/// One BGP session and everything that decides it.
#[derive(Debug, Serialize)]
pub struct Peer {
    pub address: IpAddr,
    pub port: u16,
    #[serde(rename = "type")]
    pub peer_type: &'static str,
    pub origin: String,
    pub calico_node: Option<String>,
    pub description: Option<String>,
    pub active: bool,
    pub peer_as: u32,
    pub local_as: u32,
    pub internal: bool,
    pub passive: bool,
    pub route_reflector_client: bool,
    pub cluster_id: Option<Ipv4Addr>,
    pub ttl_security_hops: Option<u8>,
    pub multihop_ttl: Option<u8>,
    pub password_set: bool,
    #[serde(serialize_with = "next_hop_text")]
    pub next_hop: tabby_rib::NextHopMode,
    pub source_address: Option<IpAddr>,
    #[serde(serialize_with = "family_texts")]
    pub families: Vec<tabby_bgp::Family>,
    pub extended_next_hop: bool,
    pub hold_time_seconds: u16,
    pub keepalive_seconds: Option<u16>,
    pub graceful_restart: Option<GracefulRestart>,
    pub long_lived_stale_time_seconds: Option<u32>,
    pub allowed_local_as: u8,
    pub reachable_by: Option<IpAddr>,
    pub filters: Vec<String>,
    pub import_policy: Option<String>,
    pub export_policy: Option<String>,
    pub bfd: Option<Bfd>,
}

/// A session's BFD settings (the `tabby-routing.io/bfd` annotation).
#[derive(Debug, Serialize)]
pub struct Bfd {
    pub desired_min_tx_ms: f64,
    pub required_min_rx_ms: f64,
    pub multiplier: u8,
    pub multihop: bool,
    pub min_ttl: Option<u8>,
    pub passive: bool,
    pub wait_for_up: bool,
    pub graceful: bool,
}

#[derive(Debug, Serialize)]
pub struct GracefulRestart {
    pub restart_time_seconds: u16,
    pub notification: bool,
    pub forwarding_preserved: bool,
}

#[derive(Debug, Serialize)]
pub struct Originated {
    pub prefix: IpNet,
    pub kind: &'static str,
    pub blackhole: bool,
    pub communities: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Pool {
    pub name: String,
    pub cidr: IpNet,
    pub block_size: u8,
    pub disabled: bool,
    pub disable_bgp_export: bool,
    pub ipip_mode: &'static str,
    pub vxlan_mode: &'static str,
    pub kernel_route: &'static str,
    /// With `kernel_route: tunnel-unless-next-hop-in-subnet`.
    pub kernel_route_subnet: Option<Ipv4Net>,
}

#[derive(Debug, Serialize)]
pub struct StaticRoute {
    pub prefix: IpNet,
    pub via: IpAddr,
}

#[derive(Debug, Serialize)]
pub struct Policy {
    pub name: String,
    pub default: &'static str,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Serialize)]
pub struct Rule {
    pub name: String,
    pub matches: Vec<String>,
    pub actions: Vec<String>,
    pub verdict: Option<&'static str>,
}

impl EffectiveConfig {
    /// The document of `d`'s current configuration.
    pub fn of(d: &Daemon) -> EffectiveConfig {
        let mut doc = EffectiveConfig {
            schema: SCHEMA,
            node_name: d.opts.node_name.clone(),
            daemon: DaemonOptions {
                tunnel_device: d.opts.tunnel_device.clone(),
                deferral_time_seconds: d.opts.deferral_time.as_secs(),
                max_prefixes: d.opts.max_prefixes,
                log_level: d.opts.log_level.clone(),
            },
            datastore: Datastore {
                sync: datastore_sync(d.datastore),
                detail: d.datastore_detail.clone(),
                problems: d.datastore_problems.clone(),
                warnings: d.config_warnings.clone(),
                last_reconfigured_unix_seconds: d
                    .last_reconfigured
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|t| t.as_secs()),
            },
            node: None,
            peers: Vec::new(),
            originated: Vec::new(),
            pools: Vec::new(),
            static_routes: Vec::new(),
            policies: Vec::new(),
        };
        let Some(state) = d.state.as_ref() else {
            return doc;
        };
        let rib = Daemon::rib_config(state);
        let cluster_id = rib.effective_cluster_id();
        // By name; two peerings with one address (the daemon runs the
        // first) would name the same policies.
        let mut policies = BTreeMap::new();
        doc.node = Some(Node {
            as_number: state.local_as,
            router_id: state.router_id,
            ipv4_address: state.ipv4,
            ipv6_address: state.ipv6,
            listen_port: state.listen_port,
            listen_addresses: state.listen_addresses.clone(),
            route_reflector_cluster_id: state.rr_cluster_id,
            node_to_node_mesh: state.mesh_enabled,
            log_severity: state.log_severity.clone(),
            ignored_interfaces: state.ignored_interfaces.clone(),
            program_cluster_routes: state.program_cluster_routes.as_str(),
            service_load_balancer_aggregation: state.service_lb_aggregation,
            ipv4_normal_route_priority: state.normal_route_priority_v4,
            ipv6_normal_route_priority: state.normal_route_priority_v6,
            decision: Decision {
                cluster_id,
                max_paths: rib.max_paths,
                always_compare_med: rib.always_compare_med,
                rfc8212: rib.rfc8212,
                default_local_pref: rib.default_local_pref,
                stale_path_time_seconds: rib.stale_path_time.as_secs(),
            },
        });
        for p in state.peers.values() {
            let active = d
                .peers
                .get(&p.key)
                .is_some_and(|s| matches!(&s.origin, PeerOrigin::Topology(q) if q.key == p.key));
            let spec = Daemon::session_spec(state, p);
            let mut peer = peer_entry(state, p, &spec, cluster_id, Some(&mut policies));
            peer.active = active;
            doc.peers.push(peer);
        }
        for slot in d.peers.values() {
            if matches!(slot.origin, PeerOrigin::Api(_)) {
                let peer = origin_entry(state, &slot.origin, cluster_id, Some(&mut policies));
                doc.peers.push(peer);
            }
        }
        doc.peers.sort_by_key(|p| (p.address, p.port));
        doc.policies = policies.into_values().collect();
        doc.originated = state
            .originated
            .values()
            .map(|r| Originated {
                prefix: r.prefix,
                kind: origin_kind(r.kind),
                blackhole: r.blackhole,
                communities: r.communities.iter().map(|c| c.to_string()).collect(),
            })
            .collect();
        doc.pools = state.pools.iter().map(pool).collect();
        doc.static_routes = state
            .static_routes
            .iter()
            .map(|r| StaticRoute {
                prefix: r.prefix,
                via: r.via,
            })
            .collect();
        doc
    }

    /// The document as the API returns it. Serialising these types cannot
    /// fail (every map key is a string); should it, the answer is still a
    /// JSON document of this schema, saying why.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            serde_json::json!({
                "schema": SCHEMA,
                "node_name": self.node_name,
                "error": format!("cannot serialise the effective configuration: {e}"),
            })
            .to_string()
        })
    }
}

/// The entry of a session the daemon runs, from where it came from: a
/// peering of the topology, or an API peer (typed `api`, with its
/// description), each built as the daemon started it. Shared by this
/// document and the API's peer settings (`Daemon::status_of`). Not yet
/// `active`; the policies it names are added to `policies` when given.
pub(super) fn origin_entry(
    state: &NodeState,
    origin: &PeerOrigin,
    cluster_id: Ipv4Addr,
    policies: Option<&mut BTreeMap<String, Policy>>,
) -> Peer {
    match origin {
        PeerOrigin::Topology(p) => {
            let spec = Daemon::session_spec(state, p);
            peer_entry(state, p, &spec, cluster_id, policies)
        }
        PeerOrigin::Api(cfg) => {
            let p = api_peer(state, cfg);
            let spec = api_session_spec(state, cfg);
            let mut peer = peer_entry(state, &p, &spec, cluster_id, policies);
            peer.peer_type = "api";
            peer.description = Some(cfg.description.clone()).filter(|s| !s.is_empty());
            peer
        }
    }
}

/// One peer's entry (not yet `active`), its policies added to `policies`
/// when given.
fn peer_entry(
    state: &NodeState,
    p: &topo::Peer,
    spec: &SessionSpec,
    cluster_id: Ipv4Addr,
    mut policies: Option<&mut BTreeMap<String, Policy>>,
) -> Peer {
    let rib = convert::peer_config(state, p);
    let c = &spec.config;
    let mut policy_name = |pol: &Option<Arc<rp::Policy>>| {
        pol.as_ref().map(|pol| {
            if let Some(policies) = policies.as_deref_mut() {
                policies
                    .entry(pol.name.clone())
                    .or_insert_with(|| policy(pol));
            }
            pol.name.clone()
        })
    };
    let import_policy = policy_name(&rib.import);
    let export_policy = policy_name(&rib.export);
    Peer {
        address: p.key.address,
        port: spec.remote.port(),
        peer_type: peer_kind(p.kind),
        origin: p.origin.clone(),
        calico_node: p.calico_node.clone(),
        description: None,
        active: false,
        peer_as: p.peer_as,
        local_as: c.local_as.0,
        internal: p.internal,
        passive: c.passive,
        route_reflector_client: rib.rr_client,
        cluster_id: rib.rr_client.then_some(cluster_id),
        ttl_security_hops: spec.ttl_security,
        multihop_ttl: spec.ttl,
        password_set: spec.md5_password.is_some(),
        next_hop: rib.next_hop_mode,
        source_address: spec.local_address,
        families: c.families.clone(),
        extended_next_hop: c.extended_next_hop,
        hold_time_seconds: c.hold_time,
        keepalive_seconds: c.keepalive,
        graceful_restart: c.graceful_restart.as_ref().map(graceful_restart),
        long_lived_stale_time_seconds: c.llgr_stale_time,
        allowed_local_as: rib.num_allowed_local_as,
        reachable_by: p.reachable_by,
        filters: p.filters.clone(),
        import_policy,
        export_policy,
        bfd: p.bfd.as_ref().map(|b| Bfd {
            desired_min_tx_ms: b.min_tx.as_secs_f64() * 1000.0,
            required_min_rx_ms: b.min_rx.as_secs_f64() * 1000.0,
            multiplier: b.multiplier,
            multihop: b.multihop,
            min_ttl: b.multihop.then_some(b.min_ttl),
            passive: b.passive,
            wait_for_up: b.wait_for_up,
            graceful: b.graceful,
        }),
    }
}

/// The session an API peer runs: the topology's global-peering defaults
/// ([`api_peer`], [`Daemon::session_spec`]), then what the request set, as
/// `Daemon::add_api_peer` builds it (a test checks the two agree).
pub(super) fn api_session_spec(state: &NodeState, cfg: &am::PeerConfig) -> SessionSpec {
    let mut spec = Daemon::session_spec(state, &api_peer(state, cfg));
    spec.config.extended_next_hop = false;
    spec.config.families = if cfg.families.is_empty() {
        vec![super::family_of_addr(&cfg.address)]
    } else {
        cfg.families
            .iter()
            .map(|f| match f {
                am::Family::Ipv4 => tabby_bgp::Family::IPV4_UNICAST,
                am::Family::Ipv6 => tabby_bgp::Family::IPV6_UNICAST,
            })
            .collect()
    };
    if let Some(h) = cfg.hold_time {
        spec.config.hold_time = h;
    }
    spec.config.keepalive = cfg.keepalive;
    // eBGP multihop: the TTL of our segments (GTSM, when set, wins).
    spec.ttl = cfg.ebgp_multihop_ttl;
    spec
}

fn graceful_restart(g: &GrConfig) -> GracefulRestart {
    GracefulRestart {
        restart_time_seconds: g.restart_time,
        notification: g.notification,
        forwarding_preserved: g.forwarding_preserved,
    }
}

fn datastore_sync(s: DatastoreState) -> &'static str {
    match s {
        DatastoreState::Syncing => "syncing",
        DatastoreState::InSync => "in-sync",
        DatastoreState::Disconnected => "disconnected",
    }
}

fn peer_kind(k: topo::PeerKind) -> &'static str {
    match k {
        topo::PeerKind::Mesh => "mesh",
        topo::PeerKind::Global => "global",
        topo::PeerKind::Node => "node",
        topo::PeerKind::Workload => "workload",
    }
}

fn next_hop_mode(m: tabby_rib::NextHopMode) -> &'static str {
    match m {
        tabby_rib::NextHopMode::Auto => "auto",
        tabby_rib::NextHopMode::SelfAddress => "self",
        tabby_rib::NextHopMode::Keep => "keep",
    }
}

/// `Peer::next_hop` in the schema's words.
fn next_hop_text<S: Serializer>(m: &tabby_rib::NextHopMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(next_hop_mode(*m))
}

/// `Peer::families` in the schema's words (`ipv4-unicast`, ...).
fn family_texts<S: Serializer>(f: &[tabby_bgp::Family], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(f.iter().map(|f| f.to_string()))
}

fn origin_kind(k: topo::OriginKind) -> &'static str {
    match k {
        topo::OriginKind::Block => "block",
        topo::OriginKind::ServiceClusterIps => "service-cluster-ip",
        topo::OriginKind::ServiceExternalIps => "service-external-ip",
        topo::OriginKind::ServiceLoadBalancerIps => "service-load-balancer-ip",
        topo::OriginKind::ServiceAddress => "service-address",
    }
}

fn encap(m: topo::EncapMode) -> &'static str {
    match m {
        topo::EncapMode::Never => "never",
        topo::EncapMode::Always => "always",
        topo::EncapMode::CrossSubnet => "cross-subnet",
    }
}

fn pool(p: &topo::PoolState) -> Pool {
    let (kernel_route, kernel_route_subnet) = match p.kernel {
        topo::KernelRoute::Direct => ("direct", None),
        topo::KernelRoute::Tunnel => ("tunnel", None),
        topo::KernelRoute::TunnelUnlessNextHopIn(n) => {
            ("tunnel-unless-next-hop-in-subnet", Some(n))
        }
        topo::KernelRoute::Skip => ("none", None),
    };
    Pool {
        name: p.name.clone(),
        cidr: p.cidr,
        block_size: p.block_size,
        disabled: p.disabled,
        disable_bgp_export: p.disable_bgp_export,
        ipip_mode: encap(p.ipip_mode),
        vxlan_mode: encap(p.vxlan_mode),
        kernel_route,
        kernel_route_subnet,
    }
}

fn verdict(v: rp::Verdict) -> &'static str {
    match v {
        rp::Verdict::Accept => "accept",
        rp::Verdict::Reject => "reject",
    }
}

fn policy(p: &rp::Policy) -> Policy {
    Policy {
        name: p.name.clone(),
        default: verdict(p.default),
        rules: p
            .rules
            .iter()
            .map(|r| Rule {
                name: r.name.clone(),
                matches: r.matches.iter().map(match_text).collect(),
                actions: r.actions.iter().map(action_text).collect(),
                verdict: r.verdict.map(verdict),
            })
            .collect(),
    }
}

fn rib_peer_kind(k: tabby_rib::PeerKind) -> &'static str {
    match k {
        tabby_rib::PeerKind::Ibgp => "ibgp",
        tabby_rib::PeerKind::Ebgp => "ebgp",
    }
}

fn local_kind(k: tabby_rib::LocalKind) -> &'static str {
    match k {
        tabby_rib::LocalKind::PodBlock => "pod-block",
        tabby_rib::LocalKind::HostRoute => "host",
        tabby_rib::LocalKind::Service => "service",
        tabby_rib::LocalKind::Static => "static",
    }
}

/// One condition in the text form the schema documents.
fn match_text(m: &rp::Match) -> String {
    match m {
        rp::Match::Cidr { op, cidr } => {
            let op = match op {
                rp::CidrOp::Equal => "=",
                rp::CidrOp::NotEqual => "!=",
                rp::CidrOp::In => "in",
                rp::CidrOp::NotIn => "not in",
            };
            format!("prefix {op} {cidr}")
        }
        rp::Match::PrefixRange { cidr, ge, le } => {
            let mut s = format!("prefix in {cidr}");
            if let Some(ge) = ge {
                s.push_str(&format!(" ge {ge}"));
            }
            if let Some(le) = le {
                s.push_str(&format!(" le {le}"));
            }
            s
        }
        rp::Match::PrefixLen { min, max } => format!("length {min}..{max}"),
        rp::Match::Family(f) => format!("family {f}"),
        rp::Match::Community(c) => format!("community {c}"),
        rp::Match::LargeCommunity(c) => format!("large-community {c}"),
        rp::Match::AsPathContains(a) => format!("as-path contains {}", a.0),
        rp::Match::AsPathLen { min, max } => format!("as-path length {min}..{max}"),
        rp::Match::AsPathPrefix(asns) => format!(
            "as-path starts {}",
            asns.iter()
                .map(|a| a.0.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        rp::Match::Source(s) => match s {
            rp::SourceMatch::Local => "source local".to_owned(),
            rp::SourceMatch::LocalKind(k) => format!("source local {}", local_kind(*k)),
            rp::SourceMatch::Remote => "source remote".to_owned(),
            rp::SourceMatch::RemoteKind(k) => format!("source remote {}", rib_peer_kind(*k)),
        },
        rp::Match::PeerKind(k) => format!("peer {}", rib_peer_kind(*k)),
        rp::Match::Priority { priority, local } => {
            format!("priority {priority} (own routes {local})")
        }
        rp::Match::PriorityBelow { priority, local } => {
            format!("priority below {priority} (own routes {local})")
        }
        rp::Match::NextHopIn(c) => format!("next-hop in {c}"),
        rp::Match::Not(m) => format!("not ({})", match_text(m)),
    }
}

/// One action in the text form the schema documents.
fn action_text(a: &rp::Action) -> String {
    match a {
        rp::Action::AddCommunity(c) => format!("add community {c}"),
        rp::Action::RemoveCommunity(c) => format!("remove community {c}"),
        rp::Action::AddLargeCommunity(c) => format!("add large-community {c}"),
        rp::Action::RemoveLargeCommunity(c) => format!("remove large-community {c}"),
        rp::Action::Prepend { asn, times } => match asn {
            Some(a) => format!("prepend {} x{times}", a.0),
            None => format!("prepend self x{times}"),
        },
        rp::Action::SetLocalPref(v) => format!("set local-pref {v}"),
        rp::Action::SetMed(v) => format!("set med {v}"),
        rp::Action::SetPriority(v) => format!("set priority {v}"),
    }
}

#[cfg(test)]
#[path = "effective_config_tests.rs"]
pub(super) mod tests;
