//! Resources → one node's desired state, following what Calico's confd templates
//! (`bird.cfg.template`, `bird_aggr.cfg.template`, `bird_ipam.cfg.template`) and its peer
//! expansion (`updatePeersV1`, `bgp_processor.go`) produce for the same resources.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::bfd::{self, BfdAnnotation};
use crate::error::TopologyError;
use crate::resources::Resources;
use crate::router_id::DeriveOptions;
use crate::services;
use crate::state::*;
use crate::types::*;

mod workload;

/// Graceful-restart time Calico's template writes for mesh sessions.
const MESH_RESTART_TIME: Duration = Duration::from_secs(120);
/// Label that keeps a node from advertising service addresses, as in Calico.
const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Derives `node_name`'s desired state with no [`DeriveOptions`] (no `CALICO_ROUTER_ID`):
/// [`derive_with`] with the defaults.
pub fn derive(resources: &Resources, node_name: &str) -> Result<NodeState, TopologyError> {
    derive_with(resources, node_name, &DeriveOptions::default())
}

/// Derives `node_name`'s desired state. Pure: same resources and options, same state.
///
/// A resource Tabby cannot use never fails derivation: what it would have added is left
/// out and [`NodeState::warnings`] says why. Only a node that cannot run at all is an
/// error: no `Node` resource of that name (or one the datastore skipped as invalid), or no
/// router id (no IPv4 address and no `CALICO_ROUTER_ID`, where calico-node fails too).
pub fn derive_with(
    resources: &Resources,
    node_name: &str,
    options: &DeriveOptions,
) -> Result<NodeState, TopologyError> {
    let Some(node) = resources.nodes.get(node_name) else {
        let mine = format!("Node '{node_name}'");
        return Err(
            match resources.problems.iter().find(|p| p.contains(&mine)) {
                Some(problem) => TopologyError::NodeUnusable {
                    name: node_name.to_string(),
                    problem: problem.clone(),
                },
                None => TopologyError::NodeNotFound(node_name.to_string()),
            },
        );
    };
    // calico-node: CALICO_ROUTER_ID (an address, or `hash` of the node name) wins, else the
    // node's IPv4 address. BGP identifiers are 32 bits, so an IPv6-only node needs one.
    let router_id = options
        .router_id
        .map(|spec| spec.router_id(node_name))
        .or_else(|| node.ipv4_addr())
        .ok_or_else(|| TopologyError::NoRouterId(node_name.to_string()))?;
    let ctx = Ctx::new(resources);
    let node_cfg = resources.node_config(node_name);
    let local_as = node.as_number.unwrap_or(ctx.global_as);
    let listen_port = ctx.listen_port(node_name);

    let bind_mode = node_cfg
        .and_then(|c| c.bind_mode)
        .or(ctx.default.and_then(|c| c.bind_mode))
        .unwrap_or_default();
    let listen_addresses = match bind_mode {
        BindMode::None => Vec::new(),
        BindMode::NodeIp => [
            node.ipv4_addr().map(IpAddr::V4),
            node.ipv6_addr().map(IpAddr::V6),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    let log_severity = node_cfg
        .and_then(|c| c.log_severity_screen.clone())
        .or_else(|| ctx.default.and_then(|c| c.log_severity_screen.clone()));
    let ignored_interfaces = match node_cfg.filter(|c| !c.ignored_interfaces.is_empty()) {
        Some(c) => c.ignored_interfaces.clone(),
        None => ctx
            .default
            .map(|c| c.ignored_interfaces.clone())
            .unwrap_or_default(),
    };
    // Per-node prefix advertisements replace the global ones (template: node key, else global).
    let advertisements: &[PrefixAdvertisement] =
        match node_cfg.filter(|c| !c.prefix_advertisements.is_empty()) {
            Some(c) => &c.prefix_advertisements,
            None => ctx
                .default
                .map(|c| c.prefix_advertisements.as_slice())
                .unwrap_or(&[]),
        };

    let mut state = NodeState {
        node_name: node_name.to_string(),
        router_id,
        local_as,
        listen_port,
        listen_addresses,
        ipv4: node.ipv4,
        ipv6: node.ipv6,
        rr_cluster_id: node.rr_cluster_id,
        mesh_enabled: ctx.mesh_enabled,
        log_severity,
        ignored_interfaces,
        program_cluster_routes: ctx
            .default
            .and_then(|c| c.program_cluster_routes)
            .unwrap_or_default(),
        service_lb_aggregation: ctx
            .default
            .and_then(|c| c.service_load_balancer_aggregation)
            .unwrap_or(true),
        normal_route_priority_v4: ctx
            .default
            .and_then(|c| c.ipv4_normal_route_priority)
            .unwrap_or(DEFAULT_NORMAL_ROUTE_PRIORITY),
        normal_route_priority_v6: ctx
            .default
            .and_then(|c| c.ipv6_normal_route_priority)
            .unwrap_or(DEFAULT_NORMAL_ROUTE_PRIORITY),
        peers: BTreeMap::new(),
        originated: BTreeMap::new(),
        pools: Vec::new(),
        export_base_v4: Vec::new(),
        export_base_v6: Vec::new(),
        static_routes: Vec::new(),
        bmp_stations: Vec::new(),
        warnings: Vec::new(),
    };
    if let Some(cfg) = ctx.default
        && let Some(value) = &cfg.bmp_stations
    {
        let (stations, problems) = match value {
            Ok(text) => crate::bmp::parse_stations(text),
            Err(found) => (
                vec![],
                vec![format!("found {found}, but annotation values are strings")],
            ),
        };
        state.bmp_stations = stations;
        for p in problems {
            state.warnings.push(crate::bmp::warning(&cfg.name, &p));
        }
    }

    // Endpoint status files that could not be read (workload peerings).
    state
        .warnings
        .extend(resources.local_endpoints.problems.iter().cloned());
    derive_mesh(&ctx, node, &mut state);
    derive_explicit(&ctx, node, &mut state);
    derive_pools(resources, node, &mut state);
    derive_originated(resources, &ctx, node, advertisements, &mut state);
    state.export_base_v4 = export_base(&state, resources, advertisements, false);
    state.export_base_v6 = export_base(&state, resources, advertisements, true);
    state.static_routes.sort();
    state.static_routes.dedup();
    Ok(state)
}

/// Cluster-wide settings looked up once.
struct Ctx<'a> {
    res: &'a Resources,
    default: Option<&'a BgpConfiguration>,
    global_as: u32,
    global_port: Option<u16>,
    /// `listenPort` of `node.<name>` configurations, by node name (looked up per mesh peer).
    node_ports: HashMap<&'a str, u16>,
    /// Nodes by address, built on first use (only BGPPeers with `peerIP` need it).
    by_address: std::cell::OnceCell<HashMap<IpAddr, &'a Node>>,
    mesh_enabled: bool,
}

impl<'a> Ctx<'a> {
    fn new(res: &'a Resources) -> Self {
        let default = res.default_config();
        Ctx {
            res,
            default,
            global_as: default
                .and_then(|c| c.as_number)
                .unwrap_or(DEFAULT_AS_NUMBER),
            global_port: default.and_then(|c| c.listen_port),
            node_ports: res
                .bgp_configurations
                .iter()
                .filter_map(|(name, c)| Some((name.strip_prefix("node.")?, c.listen_port?)))
                .collect(),
            by_address: std::cell::OnceCell::new(),
            mesh_enabled: default
                .and_then(|c| c.node_to_node_mesh_enabled)
                .unwrap_or(true),
        }
    }

    /// A node's BGP port: its own `node.<name>` config, else `default`, else 179.
    fn listen_port(&self, node: &str) -> u16 {
        self.configured_port(node).unwrap_or(DEFAULT_BGP_PORT)
    }

    fn configured_port(&self, node: &str) -> Option<u16> {
        self.node_ports.get(node).copied().or(self.global_port)
    }

    /// The Calico node owning this address, if any (first by name if several claim it).
    fn node_at(&self, ip: IpAddr) -> Option<&'a Node> {
        let res = self.res;
        self.by_address
            .get_or_init(|| {
                let mut m = HashMap::new();
                for n in res.nodes.values() {
                    for ip in families(n) {
                        m.entry(ip).or_insert(&**n);
                    }
                }
                m
            })
            .get(&ip)
            .copied()
    }

    fn node_as(&self, n: &Node) -> u32 {
        n.as_number.unwrap_or(self.global_as)
    }

    /// Whether a `peerIP` BGPPeer's AS is that of node `n`, as confd's
    /// `nodesWithIPPortAndAS` decides: an unset `asNumber` stands for the cluster's AS.
    fn matches_as(&self, n: &Node, spec: &BgpPeer) -> bool {
        self.node_as(n) == spec.as_number.unwrap_or(self.global_as)
    }

    fn secret(&self, r: &SecretKeyRef, warnings: &mut Vec<String>, what: &str) -> Option<String> {
        let found = self
            .res
            .secrets
            .iter()
            .filter(|((_, name), _)| *name == r.name)
            .map(|(_, s)| s)
            .min_by_key(|s| s.namespace != crate::model::DEFAULT_SECRET_NAMESPACE)
            .and_then(|s| s.data.get(&r.key).cloned());
        if found.is_none() && !r.optional {
            // Calico configures the session without a password in this case; so do we, loudly.
            warnings.push(format!(
                "{what}: Secret '{}' key '{}' not found; the session runs without a TCP-MD5 password until it exists",
                r.name, r.key
            ));
        }
        found
    }
}

/// Calico orders the two ends of a peering by the textual form of their addresses
/// (`peerIP > nodeIP` on strings, in `bird.cfg.template` and `bgp_processor.go`): the end
/// with the greater string is the one that connects. Comparing text rather than numbers
/// keeps Tabby and BIRD nodes agreeing in a mixed cluster ("198.18.0.9" > "198.18.0.11").
fn peer_is_active_side(peer: IpAddr, me: &str) -> bool {
    peer.to_string().as_str() > me
}

fn families(n: &Node) -> impl Iterator<Item = IpAddr> {
    [n.ipv4_addr().map(IpAddr::V4), n.ipv6_addr().map(IpAddr::V6)]
        .into_iter()
        .flatten()
}

fn derive_mesh(ctx: &Ctx<'_>, me: &Node, state: &mut NodeState) {
    // A route reflector takes no part in the mesh (template: "ignore node-to-node mesh setting").
    if !ctx.mesh_enabled || me.rr_cluster_id.is_some() {
        return;
    }
    let password = ctx
        .default
        .and_then(|c| c.node_mesh_password.as_ref())
        .and_then(|r| ctx.secret(r, &mut state.warnings, "node-to-node mesh"));
    let restart = ctx
        .default
        .and_then(|c| c.node_mesh_max_restart_time)
        .unwrap_or(MESH_RESTART_TIME);
    // BFD: this node's `node.<name>` annotation, else `default`'s (Calico's per-node
    // BGPConfiguration convention), with the configuration it comes from.
    let bfd_from: Option<(&BgpConfiguration, &BfdAnnotation)> =
        [ctx.res.node_config(&me.name), ctx.default]
            .into_iter()
            .flatten()
            .find_map(|c| Some((c, c.bfd.as_ref()?)));
    let bfd = bfd_from.and_then(|(_, a)| a.settings());
    let mut meshed = false;
    let my_text = |ip: IpAddr| ip.to_string();
    let (my_v4, my_v6) = (
        me.ipv4_addr()
            .map(|a| my_text(IpAddr::V4(a)))
            .unwrap_or_default(),
        me.ipv6_addr()
            .map(|a| my_text(IpAddr::V6(a)))
            .unwrap_or_default(),
    );
    for other in ctx.res.nodes.values() {
        if other.name == me.name || other.rr_cluster_id.is_some() {
            continue;
        }
        for peer_ip in families(other) {
            let Some(my_ip) = me.addr_like(peer_ip) else {
                continue;
            };
            if peer_ip == my_ip {
                continue;
            }
            let key = PeerKey {
                address: peer_ip,
                port: ctx.listen_port(&other.name),
            };
            if state.peers.contains_key(&key) {
                state.warnings.push(format!(
                    "nodes share address {peer_ip}; node '{}' gets no mesh session of its own",
                    other.name
                ));
                continue;
            }
            state.peers.insert(
                key,
                Peer {
                    key,
                    kind: PeerKind::Mesh,
                    origin: "node-to-node mesh".to_string(),
                    calico_node: Some(other.name.clone()),
                    peer_as: ctx.node_as(other),
                    local_as: state.local_as,
                    local_as_override: None,
                    // The mesh is unidirectional so a graceful restart is never aborted by a
                    // crossing connection (the race the template's comment describes).
                    passive: peer_is_active_side(
                        peer_ip,
                        if peer_ip.is_ipv4() { &my_v4 } else { &my_v6 },
                    ),
                    rr_client: false,
                    password: password.clone(),
                    ttl_security: None,
                    source_address: Some(my_ip),
                    next_hop: NextHop::Auto,
                    num_allowed_local_as: None,
                    graceful_restart_time: Some(restart),
                    keepalive_time: None,
                    reachable_by: None,
                    internal: ctx.node_as(other) == state.local_as,
                    filters: Vec::new(),
                    import_rules: Vec::new(),
                    export_rules: Vec::new(),
                    bfd,
                },
            );
            meshed = true;
        }
    }
    // Said where it matters: when this node has mesh sessions for it to be off on.
    if meshed && let Some((cfg, BfdAnnotation::Invalid(problem))) = bfd_from {
        state
            .warnings
            .push(bfd::warning(Kind::BgpConfiguration, &cfg.name, problem));
    }
}

/// One peering a `BGPPeer` asks for, before per-peer settings are applied.
struct Candidate<'a> {
    ip: IpAddr,
    port: Option<u16>,
    peer_as: u32,
    rr_cluster_id: Option<std::net::Ipv4Addr>,
    calico_node: Option<String>,
    /// Named by `peerIP`, and that address is a Calico node's: what confd calls
    /// `calico_node` (peers a selector picks never have it).
    calico_peer_ip: bool,
    kind: PeerKind,
    spec: &'a BgpPeer,
    /// A `localWorkloadSelector` peering: the endpoint status file of the workload.
    workload: Option<&'a str>,
}

fn derive_explicit(ctx: &Ctx<'_>, me: &Node, state: &mut NodeState) {
    let peers = &ctx.res.bgp_peers;
    let mut chosen: BTreeMap<PeerKey, Candidate<'_>> = BTreeMap::new();
    let node_peer = |n: &Node, ip: IpAddr, kind: PeerKind, spec| Candidate {
        ip,
        port: ctx.configured_port(&n.name),
        peer_as: ctx.node_as(n),
        rr_cluster_id: n.rr_cluster_id,
        calico_node: Some(n.name.clone()),
        calico_peer_ip: false,
        kind,
        spec,
        workload: None,
    };

    // Pass 1 (global) and 2 (this node): the BGPPeer's "local" side selects us.
    for global_pass in [true, false] {
        for spec in peers.values() {
            let is_global = spec.node.is_none() && spec.node_selector.is_none();
            if is_global != global_pass {
                continue;
            }
            let selects_me = is_global
                || spec.node.as_deref() == Some(me.name.as_str())
                || spec
                    .node_selector
                    .as_ref()
                    .is_some_and(|s| s.matches(&me.labels));
            if !selects_me {
                continue;
            }
            let kind = if is_global {
                PeerKind::Global
            } else {
                PeerKind::Node
            };
            if spec.local_workload_selector.is_some() {
                for c in workload::workload_candidates(ctx, spec, kind, &mut state.warnings) {
                    emit(&mut chosen, c);
                }
            } else if let Some(sel) = &spec.peer_selector {
                for n in ctx.res.nodes.values().filter(|n| sel.matches(&n.labels)) {
                    for ip in families(n) {
                        emit(&mut chosen, node_peer(n, ip, kind, spec));
                    }
                }
            } else if let Some((ip, port)) = spec.peer_ip {
                let calico = ctx.node_at(ip);
                // Without asNumber the AS is that of the Calico node owning the address.
                // (confd matches such a peer to its node as if asNumber were the cluster's
                // AS, see `matches_as`, but renders the session itself with `as 0`, which
                // BIRD does not accept; the node's AS is what that peering means.)
                let Some(asn) = spec.as_number.or(calico.map(|n| ctx.node_as(n))) else {
                    state.warnings.push(format!(
                        "BGPPeer '{}': spec.asNumber is not set and peerIP {ip} is not a Calico node's address, so the peer's AS is unknown; no session to it until one of them is",
                        spec.name
                    ));
                    continue;
                };
                // An address without a port that belongs to a Calico node of that AS peers
                // on that node's listen port.
                let port = port.or_else(|| {
                    calico
                        .filter(|n| ctx.matches_as(n, spec))
                        .and_then(|n| ctx.configured_port(&n.name))
                });
                emit(
                    &mut chosen,
                    Candidate {
                        ip,
                        port,
                        peer_as: asn,
                        // Calico does not carry a cluster id for peers named by address.
                        rr_cluster_id: None,
                        calico_node: calico.map(|n| n.name.clone()),
                        calico_peer_ip: calico.is_some(),
                        kind,
                        spec,
                        workload: None,
                    },
                );
            }
        }
    }

    // Pass 3: reverse peerings. If a BGPPeer's remote side selects us, we peer back with the
    // nodes on its local side, unless reversePeering is Manual. A workload peering has no
    // remote side among the nodes (confd: the workload's own cluster peers back), so it
    // selects nobody here.
    for spec in peers.values() {
        if spec.reverse_peering == ReversePeering::Manual {
            continue;
        }
        let (selected, v4, v6) = if let Some(sel) = &spec.peer_selector {
            (sel.matches(&me.labels), true, true)
        } else if let Some((ip, port)) = spec.peer_ip {
            let mine = me.addr_like(ip) == Some(ip)
                && ctx.matches_as(me, spec)
                && port.is_none_or(|p| p == ctx.listen_port(&me.name));
            (mine, ip.is_ipv4(), ip.is_ipv6())
        } else {
            (false, false, false)
        };
        if !selected {
            continue;
        }
        let local_side: Box<dyn Iterator<Item = &Node>> = match (&spec.node, &spec.node_selector) {
            (Some(name), _) => Box::new(ctx.res.nodes.get(name).map(|n| &**n).into_iter()),
            (None, Some(sel)) => Box::new(
                ctx.res
                    .nodes
                    .values()
                    .map(|n| &**n)
                    .filter(|n| sel.matches(&n.labels)),
            ),
            (None, None) => Box::new(ctx.res.nodes.values().map(|n| &**n)),
        };
        for n in local_side {
            for ip in families(n).filter(|ip| (ip.is_ipv4() && v4) || (ip.is_ipv6() && v6)) {
                emit(&mut chosen, node_peer(n, ip, PeerKind::Node, spec));
            }
        }
    }

    // BGPPeers whose bad BFD annotation was reported: once each, not once per session.
    let mut bfd_reported: BTreeSet<&str> = BTreeSet::new();
    for (key, c) in chosen {
        let Some(my_ip) = me.addr_like(c.ip) else {
            tracing::debug!(peer = %key, "skipping a peer of an address family this node has no address in");
            continue;
        };
        if c.ip == my_ip {
            continue;
        }
        if let Some(BfdAnnotation::Invalid(problem)) = &c.spec.bfd
            && bfd_reported.insert(c.spec.name.as_str())
        {
            state
                .warnings
                .push(bfd::warning(Kind::BgpPeer, &c.spec.name, problem));
        }
        let peer = build_peer(ctx, me, state, key, my_ip, c);
        if let Some(old) = state.peers.insert(key, peer) {
            state.warnings.push(format!(
                "{} replaces the {} session to {key}; disable the mesh or drop one of them",
                state
                    .peers
                    .get(&key)
                    .map(|p| p.origin.as_str())
                    .unwrap_or("?"),
                old.origin
            ));
        }
    }
}

/// First emission wins: global before node-specific before reverse, as in Calico.
fn emit<'a>(chosen: &mut BTreeMap<PeerKey, Candidate<'a>>, c: Candidate<'a>) {
    let key = PeerKey {
        address: c.ip,
        port: c.port.unwrap_or(DEFAULT_BGP_PORT),
    };
    chosen.entry(key).or_insert(c);
}

fn build_peer(
    ctx: &Ctx<'_>,
    me: &Node,
    state: &mut NodeState,
    key: PeerKey,
    my_ip: IpAddr,
    c: Candidate<'_>,
) -> Peer {
    let spec = c.spec;
    if let Some(file) = c.workload {
        return workload::build_workload_peer(ctx, me, state, key, file, c);
    }
    let origin = format!("BGPPeer {}", spec.name);
    let local_as = spec.local_as_number.unwrap_or(state.local_as);
    let internal = c.peer_as == local_as;
    // RFC 4456 §9: a reflector treats iBGP peers outside its cluster as clients.
    let rr_client = internal
        && me
            .rr_cluster_id
            .is_some_and(|mine| c.rr_cluster_id != Some(mine));
    let mut next_hop = match spec.next_hop_mode {
        NextHopMode::Auto => NextHop::Auto,
        NextHopMode::SelfAddr => NextHop::SelfAddr,
        NextHopMode::Keep => NextHop::Keep,
    };
    // The older keepOriginalNextHop only ever applied to eBGP peers.
    if spec.keep_original_next_hop && !internal && next_hop == NextHop::Auto {
        next_hop = NextHop::Keep;
    }
    // Who waits, as confd decides (bird.cfg.template, bgp_processor.go). Besides the mesh
    // (derive_mesh), the only `passive on` is for a global peering whose BGPPeer names the
    // far end by peerIP when that address is a Calico node's (`calico_node`): that node is
    // sure to peer back (its automatic reverse peering), so this end waits if the far
    // address is the greater text. Peers a peerSelector picks (global or not) never carry
    // `calico_node`, and node-specific and reverse peerings are rendered without `passive`
    // at all, so those connect from both ends, route reflector clients included (`rr
    // client` has no bearing on it).
    let passive = c.kind == PeerKind::Global
        && c.calico_peer_ip
        && peer_is_active_side(c.ip, &my_ip.to_string());
    let password = spec
        .password
        .as_ref()
        .and_then(|r| ctx.secret(r, &mut state.warnings, &origin));
    let v6 = c.ip.is_ipv6();
    let normal_priority = state.normal_route_priority(v6);
    let (import_rules, export_rules) = filter_rules(
        ctx,
        spec,
        v6,
        internal,
        normal_priority,
        &origin,
        &mut state.warnings,
    );
    if let Some(gw) = spec.reachable_by
        && gw.is_ipv6() == v6
    {
        state.static_routes.push(StaticRoute {
            prefix: IpNet::from(c.ip),
            via: gw,
        });
    }
    Peer {
        key,
        kind: c.kind,
        origin,
        calico_node: c.calico_node,
        peer_as: c.peer_as,
        local_as,
        local_as_override: spec.local_as_number,
        passive,
        rr_client,
        password,
        ttl_security: spec.ttl_security,
        source_address: match spec.source_address {
            SourceAddress::UseNodeIp => Some(my_ip),
            SourceAddress::None => None,
        },
        next_hop,
        num_allowed_local_as: spec.num_allowed_local_as_numbers,
        graceful_restart_time: spec.max_restart_time,
        keepalive_time: spec.keepalive_time,
        reachable_by: spec.reachable_by.filter(|gw| gw.is_ipv6() == v6),
        internal,
        filters: spec.filters.clone(),
        import_rules,
        export_rules,
        bfd: spec.bfd.as_ref().and_then(BfdAnnotation::settings),
    }
}

/// The import and export rules of a BGPPeer's `filters` for one family and peer, in
/// order (see [`filter_rule`]); a missing BGPFilter is skipped with a warning.
fn filter_rules(
    ctx: &Ctx<'_>,
    spec: &BgpPeer,
    v6: bool,
    internal: bool,
    normal_priority: u32,
    origin: &str,
    warnings: &mut Vec<String>,
) -> (Vec<PolicyRule>, Vec<PolicyRule>) {
    let mut import_rules = Vec::new();
    let mut export_rules = Vec::new();
    for fname in &spec.filters {
        match ctx.res.bgp_filters.get(fname) {
            Some(f) => {
                let (imp, exp) = if v6 {
                    (&f.import_v6, &f.export_v6)
                } else {
                    (&f.import_v4, &f.export_v4)
                };
                let rule = |r| filter_rule(r, internal, normal_priority);
                import_rules.extend(imp.iter().filter_map(rule));
                export_rules.extend(exp.iter().filter_map(rule));
            }
            None => warnings.push(format!(
                "{origin}: BGPFilter '{fname}' does not exist; it is skipped until it does"
            )),
        }
    }
    (import_rules, export_rules)
}

/// A `BGPFilter` rule as a policy rule for one peer (Calico renders the same into BIRD
/// filter functions). `internal`: the peer's AS is the one this node presents to it,
/// Calico's `is_same_as`; a rule whose `peerType` is the other kind does not apply to
/// this peer (`None`). `normal_priority`: the priority of this node's own routes, the
/// normal route priority of the peer's family.
pub fn filter_rule(r: &FilterRule, internal: bool, normal_priority: u32) -> Option<PolicyRule> {
    match r.peer_type {
        Some(PeerType::Ibgp) if !internal => return None,
        Some(PeerType::Ebgp) if internal => return None,
        _ => {}
    }
    let mut matches = Vec::new();
    if let Some((op, net)) = r.cidr {
        let pm = match (op, r.prefix_length) {
            (MatchOperator::Equal | MatchOperator::NotEqual, _) => PrefixMatch::exact(net),
            (_, Some((min_len, max_len))) => PrefixMatch {
                net,
                min_len,
                max_len,
            },
            (_, None) => PrefixMatch::within(net),
        };
        matches.push(match op {
            MatchOperator::Equal | MatchOperator::In => Match::Prefix(pm),
            MatchOperator::NotEqual | MatchOperator::NotIn => Match::NotPrefix(pm),
        });
    }
    if r.source_remote_peers {
        matches.push(Match::FromBgp);
    }
    if let Some(i) = &r.interface {
        matches.push(Match::Interface(i.clone()));
    }
    if let Some(c) = r.community {
        matches.push(Match::Community(c));
    }
    if !r.as_path_prefix.is_empty() {
        matches.push(Match::AsPathPrefix(r.as_path_prefix.clone()));
    }
    if let Some(value) = r.priority {
        matches.push(Match::Priority {
            value,
            local: normal_priority,
        });
    }
    // Operations run in the order written, then the verdict (Calico allows them only
    // with Accept).
    let mut actions: Vec<PolicyAction> = r
        .operations
        .iter()
        .map(|op| match op {
            FilterOperation::AddCommunity(c) => PolicyAction::AddCommunity(*c),
            FilterOperation::PrependAsPath(asns) => PolicyAction::PrependAsPath(asns.clone()),
            FilterOperation::SetPriority(p) => PolicyAction::SetPriority(*p),
        })
        .collect();
    actions.push(match r.action {
        FilterAction::Accept => PolicyAction::Accept,
        FilterAction::Reject => PolicyAction::Reject,
    });
    Some(PolicyRule { matches, actions })
}

fn derive_pools(res: &Resources, me: &Node, state: &mut NodeState) {
    let mut pools: Vec<PoolState> = res
        .ip_pools
        .values()
        .map(|p| {
            let ipip = p.ipip_mode != EncapMode::Never;
            let kernel = if p.vxlan_mode != EncapMode::Never {
                KernelRoute::Skip
            } else if !state.program_cluster_routes.programs(ipip) {
                // programClusterRoutes hands these pools' cluster routes to Felix: still
                // advertised and learned, never programmed here.
                KernelRoute::Skip
            } else {
                match p.ipip_mode {
                    EncapMode::Never => KernelRoute::Direct,
                    EncapMode::Always => KernelRoute::Tunnel,
                    EncapMode::CrossSubnet => match me.ipv4 {
                        Some(subnet) => KernelRoute::TunnelUnlessNextHopIn(subnet.trunc()),
                        None => KernelRoute::Tunnel,
                    },
                }
            };
            PoolState {
                name: p.name.clone(),
                cidr: p.cidr,
                block_size: p.block_size,
                disabled: p.disabled,
                disable_bgp_export: p.disable_bgp_export,
                ipip_mode: p.ipip_mode,
                vxlan_mode: p.vxlan_mode,
                kernel,
            }
        })
        .collect();
    // Most specific pool first so the kernel rule of a nested pool wins; then by address.
    pools.sort_by(|a, b| {
        b.cidr
            .prefix_len()
            .cmp(&a.cidr.prefix_len())
            .then(a.cidr.cmp(&b.cidr))
    });
    state.pools = pools;
}

fn communities_for(prefix: &IpNet, ads: &[PrefixAdvertisement]) -> Vec<Community> {
    let mut out = Vec::new();
    for a in ads.iter().filter(|a| a.cidr.contains(prefix)) {
        for c in &a.communities {
            if !out.contains(c) {
                out.push(*c);
            }
        }
    }
    out
}

fn derive_originated(
    res: &Resources,
    ctx: &Ctx<'_>,
    me: &Node,
    ads: &[PrefixAdvertisement],
    state: &mut NodeState,
) {
    for b in res.block_affinities.values() {
        if b.node != me.name || b.state != AffinityState::Confirmed || b.deleted {
            continue;
        }
        state.originated.insert(
            b.cidr,
            OriginatedRoute {
                prefix: b.cidr,
                kind: OriginKind::Block,
                // A borrowed /32 is a real workload address, never a blackhole.
                blackhole: b.cidr.prefix_len() < b.cidr.max_prefix_len(),
                communities: communities_for(&b.cidr, ads),
            },
        );
    }
    if me.labels.get(EXCLUDE_LB_LABEL).is_some_and(|v| v == "true") {
        return;
    }
    let Some(cfg) = ctx.default else { return };
    // serviceLoadBalancerAggregation: Disabled drops the LoadBalancer ranges; each
    // Service's addresses are then announced as host routes (below).
    let lb_ips: &[IpNet] = if state.service_lb_aggregation {
        &cfg.service_load_balancer_ips
    } else {
        &[]
    };
    for (list, kind) in [
        (&cfg.service_cluster_ips[..], OriginKind::ServiceClusterIps),
        (
            &cfg.service_external_ips[..],
            OriginKind::ServiceExternalIps,
        ),
        (lb_ips, OriginKind::ServiceLoadBalancerIps),
    ] {
        for prefix in list {
            state.originated.entry(*prefix).or_insert(OriginatedRoute {
                prefix: *prefix,
                kind,
                // Service ranges are announced, not routed here: kube-proxy handles the traffic.
                blackhole: false,
                communities: communities_for(prefix, ads),
            });
        }
    }
    // Each Service's own addresses, where confd's route generator announces them.
    let aggregate = state.service_lb_aggregation;
    for (prefix, _service) in services::service_routes(ctx.res, &me.name, cfg, aggregate) {
        state.originated.entry(prefix).or_insert(OriginatedRoute {
            prefix,
            kind: OriginKind::ServiceAddress,
            blackhole: false,
            communities: communities_for(&prefix, ads),
        });
    }
}

/// Calico's `calico_export_to_bgp_peers` for one family, minus the per-peer parts.
fn export_base(
    state: &NodeState,
    res: &Resources,
    ads: &[PrefixAdvertisement],
    v6: bool,
) -> Vec<PolicyRule> {
    let fam = |n: &IpNet| n.addr().is_ipv6() == v6;
    let rule = |m: Match, a: PolicyAction| PolicyRule {
        matches: vec![m],
        actions: vec![a],
    };
    let mut rules = Vec::new();
    // 1. reject_disabled_pools()
    for p in state
        .pools
        .iter()
        .filter(|p| p.disable_bgp_export && fam(&p.cidr))
    {
        rules.push(rule(
            Match::Prefix(PrefixMatch::within(p.cidr)),
            PolicyAction::Reject,
        ));
    }
    // 2. apply_communities(): tag, do not decide.
    for a in ads
        .iter()
        .filter(|a| fam(&a.cidr) && !a.communities.is_empty())
    {
        rules.push(PolicyRule {
            matches: vec![Match::Prefix(PrefixMatch::within(a.cidr))],
            actions: a
                .communities
                .iter()
                .map(|c| PolicyAction::AddCommunity(*c))
                .collect(),
        });
    }
    // 3. calico_aggr(): our blocks exactly; nothing more specific inside them
    // but a route above the normal priority (`krt_metric < normal`).
    let normal = state.normal_route_priority(v6);
    for b in state
        .originated
        .values()
        .filter(|o| o.kind == OriginKind::Block && fam(&o.prefix))
    {
        rules.push(rule(
            Match::Prefix(PrefixMatch::exact(b.prefix)),
            PolicyAction::Accept,
        ));
        rules.push(PolicyRule {
            matches: vec![
                Match::Prefix(PrefixMatch::within(b.prefix)),
                Match::PriorityBelow {
                    value: normal,
                    local: normal,
                },
            ],
            actions: vec![PolicyAction::Accept],
        });
        rules.push(rule(
            Match::Prefix(PrefixMatch::within(b.prefix)),
            PolicyAction::Reject,
        ));
    }
    // 4. Static routes: the service ranges.
    for o in state
        .originated
        .values()
        .filter(|o| o.kind != OriginKind::Block && fam(&o.prefix))
    {
        rules.push(rule(
            Match::Prefix(PrefixMatch::within(o.prefix)),
            PolicyAction::Accept,
        ));
    }
    // 5. Everything inside an exported pool (routes reflected or learned from other nodes).
    let mut pools: Vec<&IpPool> = res.ip_pools.values().map(|p| &**p).collect();
    pools.sort_by_key(|p| p.cidr);
    for p in pools
        .iter()
        .filter(|p| !p.disable_bgp_export && fam(&p.cidr))
    {
        rules.push(rule(
            Match::Prefix(PrefixMatch::within(p.cidr)),
            PolicyAction::Accept,
        ));
    }
    rules
}
