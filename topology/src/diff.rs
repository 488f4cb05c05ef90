//! Running state vs desired state → the smallest set of changes, so the daemon touches
//! only what changed: one session reset, one soft re-export, nothing else.

use ipnet::IpNet;

use crate::state::{NodeState, OriginatedRoute, Peer, PeerKey};

/// A speaker-wide setting that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalField {
    /// Router id, AS, cluster id: every session restarts.
    RouterId,
    LocalAs,
    /// The listener's port or addresses: the listener is swapped, sessions stay
    /// (the mesh peers' port change comes as their own changes).
    ListenPort,
    ListenAddresses,
    RrClusterId,
    /// Logging and interface lists: nothing BGP-visible.
    LogSeverity,
    IgnoredInterfaces,
    /// Mesh on/off (the peers it adds or removes come as their own changes).
    MeshEnabled,
    /// `ipv4NormalRoutePriority` / `ipv6NormalRoutePriority`: kernel-side only, sessions stay.
    NormalRoutePriority,
    /// `programClusterRoutes` (its kernel effect comes as [`Change::PoolsChanged`]).
    ProgramClusterRoutes,
    /// `serviceLoadBalancerAggregation` (its routes come as originated changes).
    ServiceLbAggregation,
}

impl GlobalField {
    /// Whether the speaker must restart its sessions for this change to take effect.
    pub fn needs_restart(self) -> bool {
        matches!(
            self,
            GlobalField::RouterId | GlobalField::LocalAs | GlobalField::RrClusterId
        )
    }
}

/// A peer setting that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerField {
    // Session-affecting: carried in OPEN or in the TCP connection itself.
    PeerAs,
    LocalAs,
    Password,
    TtlSecurity,
    SourceAddress,
    GracefulRestartTime,
    KeepaliveTime,
    // Policy: applied to routes, so a re-export / route refresh suffices.
    Filters,
    NextHop,
    RrClient,
    NumAllowedLocalAs,
    // Neither: no effect on an established session.
    Passive,
    ReachableBy,
    Origin,
    /// BFD settings (on, off, timers, flags): the daemon reconfigures or starts/stops the
    /// BFD session beside the running BGP session (RFC 5880 §6.8.3), never resetting it.
    Bfd,
}

impl PeerField {
    /// Must the session be reset for this to take effect?
    pub fn needs_reset(self) -> bool {
        matches!(
            self,
            PeerField::PeerAs
                | PeerField::LocalAs
                | PeerField::Password
                | PeerField::TtlSecurity
                | PeerField::SourceAddress
                | PeerField::GracefulRestartTime
                | PeerField::KeepaliveTime
                // Whether routes from this peer are reflected to the others,
                // and how: everything it sent is judged again on a new session.
                | PeerField::RrClient
        )
    }

    /// Is this a routing-policy change (soft reconfiguration: re-export out, route refresh in)?
    pub fn is_policy(self) -> bool {
        matches!(
            self,
            PeerField::Filters | PeerField::NextHop | PeerField::NumAllowedLocalAs
        )
    }
}

/// One difference between two node states.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    GlobalChanged(Vec<GlobalField>),
    PeerAdded(PeerKey),
    PeerRemoved(PeerKey),
    /// The session stays; `fields` says what changed. Check [`Change::needs_reset`].
    PeerChanged {
        key: PeerKey,
        fields: Vec<PeerField>,
    },
    OriginatedAdded(IpNet),
    OriginatedRemoved(IpNet),
    /// Same prefix, other communities or blackhole flag.
    OriginatedChanged(IpNet),
    /// Calico's default export rules changed (pools, blocks, communities): re-export to every
    /// peer of that family, without resets.
    ExportBaseChanged {
        ipv6: bool,
    },
    /// Pool encapsulation or export flags changed: reprogram kernel routes in those pools.
    PoolsChanged,
    /// `reachableBy` host routes changed.
    StaticRoutesChanged,
}

impl Change {
    /// Does applying this change drop a running session?
    pub fn needs_reset(&self) -> bool {
        match self {
            Change::GlobalChanged(f) => f.iter().any(|f| f.needs_restart()),
            Change::PeerChanged { fields, .. } => fields.iter().any(|f| f.needs_reset()),
            Change::PeerRemoved(_) => true,
            _ => false,
        }
    }
}

fn peer_fields(a: &Peer, b: &Peer) -> Vec<PeerField> {
    let mut out = Vec::new();
    let mut check = |changed: bool, f: PeerField| {
        if changed {
            out.push(f);
        }
    };
    check(a.peer_as != b.peer_as, PeerField::PeerAs);
    check(a.local_as != b.local_as, PeerField::LocalAs);
    check(a.password != b.password, PeerField::Password);
    check(a.ttl_security != b.ttl_security, PeerField::TtlSecurity);
    check(
        a.source_address != b.source_address,
        PeerField::SourceAddress,
    );
    check(
        a.graceful_restart_time != b.graceful_restart_time,
        PeerField::GracefulRestartTime,
    );
    check(
        a.keepalive_time != b.keepalive_time,
        PeerField::KeepaliveTime,
    );
    check(
        a.filters != b.filters
            || a.import_rules != b.import_rules
            || a.export_rules != b.export_rules,
        PeerField::Filters,
    );
    check(a.next_hop != b.next_hop, PeerField::NextHop);
    check(a.rr_client != b.rr_client, PeerField::RrClient);
    check(
        a.num_allowed_local_as != b.num_allowed_local_as,
        PeerField::NumAllowedLocalAs,
    );
    check(a.passive != b.passive, PeerField::Passive);
    check(a.reachable_by != b.reachable_by, PeerField::ReachableBy);
    check(
        a.origin != b.origin
            || a.kind != b.kind
            || a.calico_node != b.calico_node
            || a.local_as_override != b.local_as_override,
        PeerField::Origin,
    );
    check(a.bfd != b.bfd, PeerField::Bfd);
    out
}

fn originated_equal(a: &OriginatedRoute, b: &OriginatedRoute) -> bool {
    a == b
}

/// What it takes to go from `old` to `new`. Order: global, peers (by key), originated
/// routes, export base, pools, static routes.
pub fn diff(old: &NodeState, new: &NodeState) -> Vec<Change> {
    let mut out = Vec::new();

    let mut g = Vec::new();
    if old.router_id != new.router_id {
        g.push(GlobalField::RouterId);
    }
    if old.local_as != new.local_as {
        g.push(GlobalField::LocalAs);
    }
    if old.listen_port != new.listen_port {
        g.push(GlobalField::ListenPort);
    }
    if old.listen_addresses != new.listen_addresses {
        g.push(GlobalField::ListenAddresses);
    }
    if old.rr_cluster_id != new.rr_cluster_id {
        g.push(GlobalField::RrClusterId);
    }
    if old.log_severity != new.log_severity {
        g.push(GlobalField::LogSeverity);
    }
    if old.ignored_interfaces != new.ignored_interfaces {
        g.push(GlobalField::IgnoredInterfaces);
    }
    if old.mesh_enabled != new.mesh_enabled {
        g.push(GlobalField::MeshEnabled);
    }
    if old.normal_route_priority_v4 != new.normal_route_priority_v4
        || old.normal_route_priority_v6 != new.normal_route_priority_v6
    {
        g.push(GlobalField::NormalRoutePriority);
    }
    if old.program_cluster_routes != new.program_cluster_routes {
        g.push(GlobalField::ProgramClusterRoutes);
    }
    if old.service_lb_aggregation != new.service_lb_aggregation {
        g.push(GlobalField::ServiceLbAggregation);
    }
    if !g.is_empty() {
        out.push(Change::GlobalChanged(g));
    }

    for (k, a) in &old.peers {
        match new.peers.get(k) {
            None => out.push(Change::PeerRemoved(*k)),
            Some(b) => {
                let fields = peer_fields(a, b);
                if !fields.is_empty() {
                    out.push(Change::PeerChanged { key: *k, fields });
                }
            }
        }
    }
    for k in new.peers.keys() {
        if !old.peers.contains_key(k) {
            out.push(Change::PeerAdded(*k));
        }
    }

    for (p, a) in &old.originated {
        match new.originated.get(p) {
            None => out.push(Change::OriginatedRemoved(*p)),
            Some(b) if !originated_equal(a, b) => out.push(Change::OriginatedChanged(*p)),
            Some(_) => {}
        }
    }
    for p in new.originated.keys() {
        if !old.originated.contains_key(p) {
            out.push(Change::OriginatedAdded(*p));
        }
    }

    if old.export_base_v4 != new.export_base_v4 {
        out.push(Change::ExportBaseChanged { ipv6: false });
    }
    if old.export_base_v6 != new.export_base_v6 {
        out.push(Change::ExportBaseChanged { ipv6: true });
    }
    if old.pools != new.pools {
        out.push(Change::PoolsChanged);
    }
    if old.static_routes != new.static_routes {
        out.push(Change::StaticRoutesChanged);
    }
    out
}
