//! tabby.v1 ↔ model conversion, with the validation of everything a client
//! sends. Every error is `INVALID_ARGUMENT` (or `RESOURCE_EXHAUSTED` for
//! sizes) and names the field and what to write instead.

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;
use tabby_proto::v1 as pb;
use tonic::Status;

use crate::model::{
    BfdPhase, BfdStatus, CandidatePath, DaemonStatus, DatastoreSync, Family, FibSync,
    GracefulRestart, GracefulRestartSettings, LargeCommunity, LocalRoute, NextHopMode, Origin,
    Path, PathSource, PeerConfig, PeerCounters, PeerError, PeerExport, PeerRef, PeerSettings,
    PeerStatus, PeerType, Route, RouteDeparture, RouteExplanation, RouteKind, SessionState,
};

/// Longest RFC 8203 / RFC 9003 shutdown communication, in bytes.
pub const MAX_SHUTDOWN_REASON: usize = 255;

/// Parses a CIDR prefix with zero host bits. `field` names the request field
/// in the error.
pub fn parse_prefix(field: &str, s: &str) -> Result<IpNet, Status> {
    parse_prefix_lazy(|| field.to_string(), s)
}

/// [`parse_prefix`] that builds the field name only on error (bulk requests
/// validate a million prefixes).
pub fn parse_prefix_lazy(field: impl Fn() -> String, s: &str) -> Result<IpNet, Status> {
    let s = s.trim();
    if let Ok(net) = IpNet::from_str(s) {
        if net.trunc() == net {
            return Ok(net);
        }
        return Err(Status::invalid_argument(format!(
            "{} {s:?} has host bits set: did you mean {}?",
            field(),
            net.trunc()
        )));
    }
    let field = field();
    if s.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field} is empty: give a prefix in CIDR notation, e.g. 100.64.1.0/26 or 2001:db8:1000::/64"
        )));
    }
    if IpAddr::from_str(s).is_ok() {
        Err(Status::invalid_argument(format!(
            "{field} {s:?} is an address, not a prefix: add the length, e.g. {s}/{}",
            if s.contains(':') { 128 } else { 32 }
        )))
    } else {
        Err(Status::invalid_argument(format!(
            "{field} {s:?} is not a CIDR prefix: write e.g. 100.64.1.0/26 or 2001:db8:1000::/64"
        )))
    }
}

/// Parses an IP address.
pub fn parse_addr(field: &str, s: &str) -> Result<IpAddr, Status> {
    let s = s.trim();
    if s.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field} is empty: give an IP address, e.g. 198.18.0.2 or 2001:db8::2"
        )));
    }
    IpAddr::from_str(s).map_err(|_| {
        Status::invalid_argument(format!(
            "{field} {s:?} is not an IP address: write e.g. 198.18.0.2 or 2001:db8::2 (no prefix length)"
        ))
    })
}

/// Parses a peer address (unicast, not unspecified).
pub fn parse_peer_addr(field: &str, s: &str) -> Result<IpAddr, Status> {
    let a = parse_addr(field, s)?;
    if a.is_unspecified() || a.is_multicast() {
        return Err(Status::invalid_argument(format!(
            "{field} {a} is not a unicast address: give the peer's own IP address"
        )));
    }
    Ok(a)
}

/// Parses a request's peer: an address (`198.18.0.2`, `2001:db8::2`), or
/// an address and the peer's port (`198.51.100.1:150`, `[2001:db8::2]:150`)
/// for a peer with a session on each of several ports.
pub fn parse_peer_ref(field: &str, s: &str) -> Result<PeerRef, Status> {
    let t = s.trim();
    if let Ok(sa) = std::net::SocketAddr::from_str(t) {
        if sa.port() == 0 {
            return Err(Status::invalid_argument(format!(
                "{field} {t:?} has port 0: give the peer's BGP port (1-65535), or the address alone"
            )));
        }
        let address = parse_peer_addr(field, &sa.ip().to_string())?;
        return Ok(PeerRef {
            address,
            port: Some(sa.port()),
        });
    }
    if t.is_empty() || IpAddr::from_str(t).is_ok() {
        return parse_peer_addr(field, t).map(PeerRef::from);
    }
    Err(Status::invalid_argument(format!(
        "{field} {t:?} is not an IP address, nor an address and port: write e.g. 198.18.0.2, \
         2001:db8::2, 198.51.100.1:150 or [2001:db8::2]:150 (no prefix length)"
    )))
}

/// Maps a proto family filter: unspecified → `None`.
pub fn family_filter(field: &str, v: i32) -> Result<Option<Family>, Status> {
    match pb::AddressFamily::try_from(v) {
        Ok(pb::AddressFamily::Unspecified) => Ok(None),
        Ok(pb::AddressFamily::Ipv4) => Ok(Some(Family::Ipv4)),
        Ok(pb::AddressFamily::Ipv6) => Ok(Some(Family::Ipv6)),
        Err(_) => Err(Status::invalid_argument(format!(
            "{field} {v} is not a known address family: use ADDRESS_FAMILY_IPV4 (1) or ADDRESS_FAMILY_IPV6 (2)"
        ))),
    }
}

/// Model family → proto.
pub fn family_to_pb(f: Family) -> pb::AddressFamily {
    match f {
        Family::Ipv4 => pb::AddressFamily::Ipv4,
        Family::Ipv6 => pb::AddressFamily::Ipv6,
    }
}

fn route_kind_from_pb(field: &str, v: i32) -> Result<RouteKind, Status> {
    match pb::RouteKind::try_from(v) {
        Ok(pb::RouteKind::Unspecified) => Ok(RouteKind::Unspecified),
        Ok(pb::RouteKind::PodBlock) => Ok(RouteKind::PodBlock),
        Ok(pb::RouteKind::Host) => Ok(RouteKind::Host),
        Ok(pb::RouteKind::ServiceIp) => Ok(RouteKind::ServiceIp),
        Err(_) => Err(Status::invalid_argument(format!(
            "{field} {v} is not a known route kind: use POD_BLOCK (1), HOST (2) or SERVICE_IP (3)"
        ))),
    }
}

fn route_kind_to_pb(k: RouteKind) -> pb::RouteKind {
    match k {
        RouteKind::Unspecified => pb::RouteKind::Unspecified,
        RouteKind::PodBlock => pb::RouteKind::PodBlock,
        RouteKind::Host => pb::RouteKind::Host,
        RouteKind::ServiceIp => pb::RouteKind::ServiceIp,
    }
}

/// Validates one announced route; `index` is its position in `routes`.
pub fn local_route_from_pb(index: usize, r: &pb::LocalRoute) -> Result<LocalRoute, Status> {
    let field = format_args!("routes[{index}]");
    let prefix = parse_prefix_lazy(|| format!("routes[{index}].prefix"), &r.prefix)?;
    let kind = match r.kind {
        0 => RouteKind::Unspecified,
        k => route_kind_from_pb(&format!("{field}.kind"), k)?,
    };
    if kind == RouteKind::Host && prefix.prefix_len() != prefix.max_prefix_len() {
        return Err(Status::invalid_argument(format!(
            "{field}: kind HOST needs a /{} but prefix is {prefix}; use POD_BLOCK or SERVICE_IP for a block",
            prefix.max_prefix_len()
        )));
    }
    let next_hop = if r.next_hop.trim().is_empty() {
        None
    } else {
        let nh = parse_addr(&format!("{field}.next_hop"), &r.next_hop)?;
        if Family::of_addr(&nh) != Family::of_prefix(&prefix) {
            return Err(Status::invalid_argument(format!(
                "{field}.next_hop {nh} is {} but prefix {prefix} is {}: give a next hop of the prefix's family or leave it empty",
                Family::of_addr(&nh).name(),
                Family::of_prefix(&prefix).name()
            )));
        }
        if nh.is_unspecified() || nh.is_multicast() {
            return Err(Status::invalid_argument(format!(
                "{field}.next_hop {nh} is not a unicast address; leave it empty to use this node's address"
            )));
        }
        Some(nh)
    };
    let priority = match r.priority {
        None => None,
        Some(p @ 1..=2_147_483_646) => Some(p),
        Some(p) => {
            return Err(Status::invalid_argument(format!(
                "{field}.priority {p} is outside 1..=2147483646 (a Calico route priority: lower is preferred; leave it unset for the normal priority)"
            )));
        }
    };
    Ok(LocalRoute {
        prefix,
        kind,
        communities: r.communities.clone(),
        large_communities: r
            .large_communities
            .iter()
            .map(|c| LargeCommunity {
                global_admin: c.global_admin,
                local_data1: c.local_data1,
                local_data2: c.local_data2,
            })
            .collect(),
        next_hop,
        priority,
        local_pref: None,
        med: None,
    })
}

/// Validates a route set: each route and no prefix twice.
pub fn local_routes_from_pb(
    routes: &[pb::LocalRoute],
    max: usize,
) -> Result<Vec<LocalRoute>, Status> {
    if routes.len() > max {
        return Err(Status::resource_exhausted(format!(
            "{} routes in one request; at most {max} allowed: split the request",
            routes.len()
        )));
    }
    let mut out = Vec::with_capacity(routes.len());
    let mut seen = std::collections::HashSet::with_capacity(routes.len());
    for (i, r) in routes.iter().enumerate() {
        let lr = local_route_from_pb(i, r)?;
        if !seen.insert(lr.prefix) {
            return Err(Status::invalid_argument(format!(
                "routes[{i}].prefix {} appears more than once: give each prefix once per request",
                lr.prefix
            )));
        }
        out.push(lr);
    }
    Ok(out)
}

fn origin_to_pb(o: Origin) -> pb::Origin {
    match o {
        Origin::Igp => pb::Origin::Igp,
        Origin::Egp => pb::Origin::Egp,
        Origin::Incomplete => pb::Origin::Incomplete,
    }
}

/// Model path → proto.
pub fn path_to_pb(p: &Path) -> pb::Path {
    pb::Path {
        next_hop: p.next_hop.to_string(),
        as_path: p.as_path.clone(),
        origin: origin_to_pb(p.origin) as i32,
        local_pref: p.local_pref,
        med: p.med,
        communities: p.communities.clone(),
        large_communities: p
            .large_communities
            .iter()
            .map(|c| pb::LargeCommunity {
                global_admin: c.global_admin,
                local_data1: c.local_data1,
                local_data2: c.local_data2,
            })
            .collect(),
        source: Some(pb::PathSource {
            source: Some(match &p.source {
                PathSource::Local(o) => pb::path_source::Source::LocalOwner(o.to_string()),
                PathSource::Peer(a) => pb::path_source::Source::PeerAddress(a.to_string()),
            }),
        }),
        best: p.best,
        age_seconds: p.age_seconds,
        kind: route_kind_to_pb(p.kind) as i32,
        stale: p.stale,
    }
}

/// Model route → proto.
pub fn route_to_pb(r: &Route) -> pb::Route {
    pb::Route {
        prefix: r.prefix.to_string(),
        family: family_to_pb(Family::of_prefix(&r.prefix)) as i32,
        paths: r.paths.iter().map(path_to_pb).collect(),
    }
}

/// Model explanation → proto.
pub fn explanation_to_pb(e: &RouteExplanation) -> pb::ExplainRouteResponse {
    pb::ExplainRouteResponse {
        prefix: e.prefix.to_string(),
        candidates: e
            .candidates
            .iter()
            .map(|c: &CandidatePath| pb::CandidatePath {
                path: Some(path_to_pb(&c.path)),
                reason: c.reason.clone(),
            })
            .collect(),
        exports: e
            .exports
            .iter()
            .map(|x: &PeerExport| pb::PeerExport {
                peer_address: x.peer.to_string(),
                exported: x.exported,
                reason: x.reason.clone(),
            })
            .collect(),
        departed: e.departed.as_ref().map(departure_to_pb),
    }
}

/// Model route departure → proto.
pub fn departure_to_pb(d: &RouteDeparture) -> pb::RouteDeparture {
    pb::RouteDeparture {
        peer_address: d.peer.to_string(),
        at_unix_seconds: d.at_unix_seconds,
        reason: d.reason.clone(),
        withdrawn: d.withdrawn,
    }
}

/// Proto route departure → model. `field` names the message in the error
/// (e.g. `departed`).
pub fn departure_from_pb(field: &str, d: &pb::RouteDeparture) -> Result<RouteDeparture, Status> {
    Ok(RouteDeparture {
        peer: parse_addr(&format!("{field}.peer_address"), &d.peer_address)?,
        at_unix_seconds: d.at_unix_seconds,
        reason: d.reason.clone(),
        withdrawn: d.withdrawn,
    })
}

/// Checks an AS number for a peer: not 0 (RFC 7607) and not AS_TRANS
/// (RFC 6793 §2).
pub fn check_asn(field: &str, asn: u32) -> Result<u32, Status> {
    match asn {
        0 => Err(Status::invalid_argument(format!(
            "{field} is 0, which is reserved (RFC 7607): give the peer's AS, 1..4294967295"
        ))),
        23456 => Err(Status::invalid_argument(format!(
            "{field} is 23456 (AS_TRANS, RFC 6793), which no router uses as its AS: give the real 4-octet AS"
        ))),
        a => Ok(a),
    }
}

/// Validates a peer configuration.
pub fn peer_config_from_pb(c: Option<&pb::PeerConfig>) -> Result<PeerConfig, Status> {
    let c = c.ok_or_else(|| {
        Status::invalid_argument("config is missing: give at least address and remote_as")
    })?;
    let address = parse_peer_addr("config.address", &c.address)?;
    let remote_as = check_asn("config.remote_as", c.remote_as)?;
    let local_as = match c.local_as {
        0 => None,
        a => Some(check_asn("config.local_as", a)?),
    };
    let hold_time = match c.hold_time_seconds {
        0 => None,
        h @ (1 | 2) => {
            return Err(Status::invalid_argument(format!(
                "config.hold_time_seconds {h} is not allowed (RFC 4271 §4.2): use 0 for the default or 3..65535"
            )));
        }
        h => Some(u16::try_from(h).map_err(|_| {
            Status::invalid_argument(format!(
                "config.hold_time_seconds {h} is above 65535: use 3..65535"
            ))
        })?),
    };
    let keepalive = match c.keepalive_seconds {
        0 => None,
        k => {
            let k16 = u16::try_from(k).map_err(|_| {
                Status::invalid_argument(format!("config.keepalive_seconds {k} is above 65535"))
            })?;
            let hold = hold_time.unwrap_or(90);
            if k16 >= hold {
                return Err(Status::invalid_argument(format!(
                    "config.keepalive_seconds {k} must be below the hold time ({hold}s); a third of it is usual"
                )));
            }
            Some(k16)
        }
    };
    let ebgp_multihop_ttl = match c.ebgp_multihop_ttl {
        0 => None,
        t => Some(u8::try_from(t).map_err(|_| {
            Status::invalid_argument(format!(
                "config.ebgp_multihop_ttl {t} is above 255: use 1..255"
            ))
        })?),
    };
    if c.description.len() > 255 {
        return Err(Status::invalid_argument(format!(
            "config.description is {} bytes; at most 255 allowed",
            c.description.len()
        )));
    }
    let mut families = Vec::new();
    for (i, f) in c.families.iter().enumerate() {
        match family_filter(&format!("config.families[{i}]"), *f)? {
            Some(f) if !families.contains(&f) => families.push(f),
            Some(_) => {}
            None => {
                return Err(Status::invalid_argument(format!(
                    "config.families[{i}] is unspecified: use ADDRESS_FAMILY_IPV4 or ADDRESS_FAMILY_IPV6"
                )));
            }
        }
    }
    Ok(PeerConfig {
        address,
        remote_as,
        local_as,
        hold_time,
        keepalive,
        description: c.description.clone(),
        passive: c.passive,
        ebgp_multihop_ttl,
        route_reflector_client: c.route_reflector_client,
        families,
        // Peers added through the API are always recorded as such.
        peer_type: PeerType::Api,
    })
}

/// Checks an RFC 8203 shutdown communication; empty → `None`.
pub fn check_reason(field: &str, s: &str) -> Result<Option<String>, Status> {
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > MAX_SHUTDOWN_REASON {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes; a shutdown communication holds at most {MAX_SHUTDOWN_REASON} (RFC 9003)",
            s.len()
        )));
    }
    Ok(Some(s.to_string()))
}

fn peer_type_to_pb(t: PeerType) -> pb::PeerType {
    match t {
        PeerType::Unspecified => pb::PeerType::Unspecified,
        PeerType::NodeMesh => pb::PeerType::NodeMesh,
        PeerType::Global => pb::PeerType::Global,
        PeerType::NodeSpecific => pb::PeerType::NodeSpecific,
        PeerType::Api => pb::PeerType::Api,
        PeerType::Workload => pb::PeerType::Workload,
    }
}

/// Model session state → proto.
pub fn session_state_to_pb(s: SessionState) -> pb::SessionState {
    match s {
        SessionState::Idle => pb::SessionState::Idle,
        SessionState::Connect => pb::SessionState::Connect,
        SessionState::Active => pb::SessionState::Active,
        SessionState::OpenSent => pb::SessionState::OpenSent,
        SessionState::OpenConfirm => pb::SessionState::OpenConfirm,
        SessionState::Established => pb::SessionState::Established,
    }
}

fn counters_to_pb(c: &PeerCounters) -> pb::PeerCounters {
    pb::PeerCounters {
        prefixes_received: c.prefixes_received,
        prefixes_accepted: c.prefixes_accepted,
        prefixes_advertised: c.prefixes_advertised,
        updates_received: c.updates_received,
        updates_sent: c.updates_sent,
        messages_received: c.messages_received,
        messages_sent: c.messages_sent,
        notifications_received: c.notifications_received,
        notifications_sent: c.notifications_sent,
        keepalives_received: c.keepalives_received,
        keepalives_sent: c.keepalives_sent,
        flaps: c.flaps,
    }
}

fn error_to_pb(e: &PeerError) -> pb::PeerError {
    pb::PeerError {
        code: u32::from(e.code),
        subcode: u32::from(e.subcode),
        text: e.text.clone(),
        sent_by_local: e.sent_by_local,
        at_unix_seconds: e.at_unix_seconds,
    }
}

/// Model peer config → proto.
pub fn peer_config_to_pb(c: &PeerConfig) -> pb::PeerConfig {
    pb::PeerConfig {
        address: c.address.to_string(),
        remote_as: c.remote_as,
        local_as: c.local_as.unwrap_or(0),
        hold_time_seconds: c.hold_time.map(u32::from).unwrap_or(0),
        keepalive_seconds: c.keepalive.map(u32::from).unwrap_or(0),
        description: c.description.clone(),
        passive: c.passive,
        ebgp_multihop_ttl: c.ebgp_multihop_ttl.map(u32::from).unwrap_or(0),
        route_reflector_client: c.route_reflector_client,
        families: c.families.iter().map(|f| family_to_pb(*f) as i32).collect(),
        r#type: peer_type_to_pb(c.peer_type) as i32,
    }
}

/// Model peer → proto.
pub fn peer_to_pb(p: &PeerStatus) -> pb::Peer {
    pb::Peer {
        config: Some(peer_config_to_pb(&p.config)),
        state: session_state_to_pb(p.state) as i32,
        enabled: p.enabled,
        state_since_unix_seconds: p.state_since_unix_seconds,
        uptime_seconds: p.uptime_seconds,
        remote_router_id: p
            .remote_router_id
            .map(|r: Ipv4Addr| r.to_string())
            .unwrap_or_default(),
        negotiated_hold_time_seconds: u32::from(p.negotiated_hold_time),
        negotiated_families: p
            .negotiated_families
            .iter()
            .map(|f| family_to_pb(*f) as i32)
            .collect(),
        counters: Some(counters_to_pb(&p.counters)),
        last_error: p.last_error.as_ref().map(error_to_pb),
        info: p.info.clone(),
        local_address: p.local_address.map(|a| a.to_string()).unwrap_or_default(),
        graceful_restart_pending: p.graceful_restart_pending,
        bfd: p.bfd.as_ref().map(bfd_status_to_pb),
        settings: p.settings.as_ref().map(peer_settings_to_pb),
    }
}

/// Model next-hop mode → proto.
pub fn next_hop_mode_to_pb(m: NextHopMode) -> pb::NextHopMode {
    match m {
        NextHopMode::Auto => pb::NextHopMode::Auto,
        NextHopMode::SelfAddress => pb::NextHopMode::Self_,
        NextHopMode::Keep => pb::NextHopMode::Keep,
    }
}

/// Proto next-hop mode → model; unspecified or unknown values are an error.
pub fn next_hop_mode_from_pb(field: &str, v: i32) -> Result<NextHopMode, Status> {
    match pb::NextHopMode::try_from(v) {
        Ok(pb::NextHopMode::Auto) => Ok(NextHopMode::Auto),
        Ok(pb::NextHopMode::Self_) => Ok(NextHopMode::SelfAddress),
        Ok(pb::NextHopMode::Keep) => Ok(NextHopMode::Keep),
        Ok(pb::NextHopMode::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
            "{field} {v} is not a known next-hop mode: use NEXT_HOP_MODE_AUTO (1), SELF (2) or KEEP (3)"
        ))),
    }
}

/// Model session settings → proto. `None` becomes an empty string (or an
/// absent optional).
pub fn peer_settings_to_pb(s: &PeerSettings) -> pb::PeerSettings {
    let text = |a: Option<String>| a.unwrap_or_default();
    pb::PeerSettings {
        origin: s.origin.clone(),
        calico_node: text(s.calico_node.clone()),
        port: u32::from(s.port),
        local_as: s.local_as,
        internal: s.internal,
        passive: s.passive,
        route_reflector_client: s.route_reflector_client,
        cluster_id: text(s.cluster_id.map(|c| c.to_string())),
        ttl_security_hops: s.ttl_security_hops.map_or(0, u32::from),
        password_set: s.password_set,
        next_hop: next_hop_mode_to_pb(s.next_hop) as i32,
        source_address: text(s.source_address.map(|a| a.to_string())),
        families: s.families.iter().map(|f| family_to_pb(*f) as i32).collect(),
        extended_next_hop: s.extended_next_hop,
        hold_time_seconds: u32::from(s.hold_time_seconds),
        keepalive_seconds: s.keepalive_seconds.map(u32::from),
        graceful_restart: s.graceful_restart.map(|g| pb::GracefulRestartSettings {
            restart_time_seconds: u32::from(g.restart_time_seconds),
            notification: g.notification,
            forwarding_preserved: g.forwarding_preserved,
        }),
        long_lived_stale_time_seconds: s.long_lived_stale_time_seconds,
        allowed_local_as: u32::from(s.allowed_local_as),
        reachable_by: text(s.reachable_by.map(|a| a.to_string())),
        filters: s.filters.clone(),
        import_policy: text(s.import_policy.clone()),
        export_policy: text(s.export_policy.clone()),
    }
}

/// Proto session settings → model, for clients. `field` names the message
/// in the error (e.g. `settings`).
pub fn peer_settings_from_pb(field: &str, s: &pb::PeerSettings) -> Result<PeerSettings, Status> {
    let text = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
    let addr = |name: &str, v: &str| -> Result<Option<IpAddr>, Status> {
        match v {
            "" => Ok(None),
            v => parse_addr(&format!("{field}.{name}"), v).map(Some),
        }
    };
    let small = |name: &str, v: u32, max: u32| -> Result<u32, Status> {
        if v > max {
            return Err(Status::invalid_argument(format!(
                "{field}.{name} {v} is above {max}"
            )));
        }
        Ok(v)
    };
    let cluster_id = match s.cluster_id.as_str() {
        "" => None,
        c => Some(Ipv4Addr::from_str(c).map_err(|_| {
            Status::invalid_argument(format!(
                "{field}.cluster_id {c:?} is not an IPv4 address (a cluster id is written as one)"
            ))
        })?),
    };
    let mut families = Vec::with_capacity(s.families.len());
    for (i, f) in s.families.iter().enumerate() {
        match family_filter(&format!("{field}.families[{i}]"), *f)? {
            Some(f) => families.push(f),
            None => {
                return Err(Status::invalid_argument(format!(
                    "{field}.families[{i}] is unspecified: use ADDRESS_FAMILY_IPV4 or ADDRESS_FAMILY_IPV6"
                )));
            }
        }
    }
    let graceful_restart = match &s.graceful_restart {
        None => None,
        Some(g) => Some(GracefulRestartSettings {
            restart_time_seconds: small(
                "graceful_restart.restart_time_seconds",
                g.restart_time_seconds,
                4095,
            )? as u16,
            notification: g.notification,
            forwarding_preserved: g.forwarding_preserved,
        }),
    };
    Ok(PeerSettings {
        origin: s.origin.clone(),
        calico_node: text(&s.calico_node),
        port: small("port", s.port, 65535)? as u16,
        local_as: s.local_as,
        internal: s.internal,
        passive: s.passive,
        route_reflector_client: s.route_reflector_client,
        cluster_id,
        ttl_security_hops: match small("ttl_security_hops", s.ttl_security_hops, 255)? {
            0 => None,
            h => Some(h as u8),
        },
        password_set: s.password_set,
        next_hop: next_hop_mode_from_pb(&format!("{field}.next_hop"), s.next_hop)?,
        source_address: addr("source_address", &s.source_address)?,
        families,
        extended_next_hop: s.extended_next_hop,
        hold_time_seconds: small("hold_time_seconds", s.hold_time_seconds, 65535)? as u16,
        keepalive_seconds: s
            .keepalive_seconds
            .map(|k| small("keepalive_seconds", k, 65535).map(|k| k as u16))
            .transpose()?,
        graceful_restart,
        long_lived_stale_time_seconds: s.long_lived_stale_time_seconds,
        allowed_local_as: small("allowed_local_as", s.allowed_local_as, 255)? as u8,
        reachable_by: addr("reachable_by", &s.reachable_by)?,
        filters: s.filters.clone(),
        import_policy: text(&s.import_policy),
        export_policy: text(&s.export_policy),
    })
}

/// Model BFD phase → proto.
pub fn bfd_phase_to_pb(p: BfdPhase) -> pb::BfdPhase {
    match p {
        BfdPhase::Starting => pb::BfdPhase::Starting,
        BfdPhase::Up => pb::BfdPhase::Up,
        BfdPhase::Down => pb::BfdPhase::Down,
        BfdPhase::AdminDown => pb::BfdPhase::AdminDown,
        BfdPhase::Unavailable => pb::BfdPhase::Unavailable,
    }
}

/// Proto BFD phase → model; unspecified or unknown values are an error.
pub fn bfd_phase_from_pb(field: &str, v: i32) -> Result<BfdPhase, Status> {
    match pb::BfdPhase::try_from(v) {
        Ok(pb::BfdPhase::Starting) => Ok(BfdPhase::Starting),
        Ok(pb::BfdPhase::Up) => Ok(BfdPhase::Up),
        Ok(pb::BfdPhase::Down) => Ok(BfdPhase::Down),
        Ok(pb::BfdPhase::AdminDown) => Ok(BfdPhase::AdminDown),
        Ok(pb::BfdPhase::Unavailable) => Ok(BfdPhase::Unavailable),
        Ok(pb::BfdPhase::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
            "{field} {v} is not a known BFD phase: use BFD_PHASE_STARTING (1), UP (2), DOWN (3), ADMIN_DOWN (4) or UNAVAILABLE (5)"
        ))),
    }
}

/// A `$ty` BFD session with `phase` and every other field copied from `$b`,
/// a BFD session of the other side: the model and the proto message name
/// the same fields, only the phase differs in type.
macro_rules! bfd_status_with_phase {
    ($ty:path, $b:expr, $phase:expr) => {{
        let b = $b;
        $ty {
            phase: $phase,
            detail: b.detail.clone(),
            since_unix_seconds: b.since_unix_seconds,
            multihop: b.multihop,
            desired_min_tx_us: b.desired_min_tx_us,
            required_min_rx_us: b.required_min_rx_us,
            multiplier: b.multiplier,
            negotiated_tx_us: b.negotiated_tx_us,
            negotiated_rx_us: b.negotiated_rx_us,
            remote_multiplier: b.remote_multiplier,
            detection_time_us: b.detection_time_us,
            local_discriminator: b.local_discriminator,
            remote_discriminator: b.remote_discriminator,
            last_diagnostic: b.last_diagnostic.clone(),
            uptime_seconds: b.uptime_seconds,
            flaps: b.flaps,
            damped: b.damped,
            bgp_held: b.bgp_held,
            wait_for_up: b.wait_for_up,
            graceful: b.graceful,
            packets_in: b.packets_in,
            packets_out: b.packets_out,
        }
    }};
}

/// Model BFD session → proto.
pub fn bfd_status_to_pb(b: &BfdStatus) -> pb::BfdStatus {
    bfd_status_with_phase!(pb::BfdStatus, b, bfd_phase_to_pb(b.phase) as i32)
}

/// Proto BFD session → model. `field` names the message in the error
/// (e.g. `bfd`).
pub fn bfd_status_from_pb(field: &str, b: &pb::BfdStatus) -> Result<BfdStatus, Status> {
    let phase = bfd_phase_from_pb(&format!("{field}.phase"), b.phase)?;
    Ok(bfd_status_with_phase!(BfdStatus, b, phase))
}

/// Model status → proto.
pub fn status_to_pb(s: &DaemonStatus) -> pb::StatusResponse {
    pb::StatusResponse {
        router_id: s.router_id.to_string(),
        local_as: s.local_as,
        version: s.version.clone(),
        uptime_seconds: s.uptime_seconds,
        datastore_sync: match s.datastore {
            DatastoreSync::Unspecified => pb::DatastoreSyncState::Unspecified,
            DatastoreSync::Disabled => pb::DatastoreSyncState::Disabled,
            DatastoreSync::Syncing => pb::DatastoreSyncState::Syncing,
            DatastoreSync::InSync => pb::DatastoreSyncState::InSync,
            DatastoreSync::Disconnected => pb::DatastoreSyncState::Disconnected,
        } as i32,
        datastore_detail: s.datastore_detail.clone(),
        fib_sync: match s.fib {
            FibSync::Unspecified => pb::FibSyncState::Unspecified,
            FibSync::Disabled => pb::FibSyncState::Disabled,
            FibSync::Syncing => pb::FibSyncState::Syncing,
            FibSync::InSync => pb::FibSyncState::InSync,
            FibSync::Error => pb::FibSyncState::Error,
        } as i32,
        fib_detail: s.fib_detail.clone(),
        graceful_restart: match s.graceful_restart {
            GracefulRestart::Unspecified => pb::GracefulRestartState::Unspecified,
            GracefulRestart::Disabled => pb::GracefulRestartState::Disabled,
            GracefulRestart::Idle => pb::GracefulRestartState::Idle,
            GracefulRestart::Restarting => pb::GracefulRestartState::Restarting,
            GracefulRestart::Helping => pb::GracefulRestartState::Helping,
        } as i32,
        graceful_restart_detail: s.graceful_restart_detail.clone(),
        peers_configured: s.peers_configured,
        peers_established: s.peers_established,
        routes: s.routes,
        bgp_listen_port: u32::from(s.bgp_listen_port),
        bgp_listen_addresses: s
            .bgp_listen_addresses
            .iter()
            .map(|a| a.to_string())
            .collect(),
        log_level: s.log_level.clone(),
    }
}

/// Checks a log filter: non-empty, at most 1,024 bytes, printable ASCII of
/// the characters tracing directives use.
pub fn check_log_filter(s: &str) -> Result<String, Status> {
    let s = s.trim();
    if s.is_empty() {
        return Err(Status::invalid_argument(
            "level is empty: give trace, debug, info, warn, error or a directive like info,tabby_bgp=debug",
        ));
    }
    if s.len() > 1024 {
        return Err(Status::invalid_argument(format!(
            "level is {} bytes; at most 1024 allowed",
            s.len()
        )));
    }
    if let Some(c) = s.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(
                c,
                '_' | '-' | ':' | '=' | ',' | '.' | '[' | ']' | '{' | '}' | '"' | '*'
            ))
    }) {
        return Err(Status::invalid_argument(format!(
            "level contains {c:?}: give a level or a tracing directive like info,tabby_bgp=debug"
        )));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<impl std::fmt::Debug, Status>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::InvalidArgument);
                s.message().to_string()
            }
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("p", " 100.64.0.0/10 ").ok(),
            "100.64.0.0/10".parse().ok()
        );
        assert_eq!(
            parse_prefix("p", "2001:db8:1000::/36").ok(),
            "2001:db8:1000::/36".parse().ok()
        );
        assert!(err(parse_prefix("p", "100.64.0.1/10")).contains("did you mean 100.64.0.0/10"));
        assert!(err(parse_prefix("p", "2001:db8::1")).contains("2001:db8::1/128"));
        assert!(err(parse_prefix("p", "100.64.0.0/40")).contains("not a CIDR prefix"));
        assert!(err(parse_prefix("p", "")).contains("p is empty"));
        assert!(err(parse_prefix("p", "100.64.0.0/-1")).contains("not a CIDR"));
    }

    #[test]
    fn peer_refs_name_an_address_or_an_address_and_port() {
        let v4 = IpAddr::from([198, 51, 100, 1]);
        let v6: IpAddr = "2001:db8::2".parse().expect("v6");
        let r = |s| parse_peer_ref("address", s);
        assert_eq!(r(" 198.51.100.1 ").ok(), Some(PeerRef::from(v4)));
        assert_eq!(
            r("198.51.100.1:150").ok(),
            Some(PeerRef {
                address: v4,
                port: Some(150)
            })
        );
        assert_eq!(r("2001:db8::2").ok(), Some(PeerRef::from(v6)));
        assert_eq!(
            r("[2001:db8::2]:166").ok(),
            Some(PeerRef {
                address: v6,
                port: Some(166)
            })
        );
        assert_eq!(
            PeerRef {
                address: v6,
                port: Some(166)
            }
            .to_string(),
            "[2001:db8::2]:166"
        );
        assert!(err(r("198.51.100.1:0")).contains("port 0"));
        assert!(err(r("198.51.100.1:70000")).contains("nor an address and port"));
        assert!(err(r("0.0.0.0:150")).contains("not a unicast address"));
        assert!(err(r("peer-a")).contains("is not an IP address"));
        assert!(err(r("")).contains("address is empty"));
    }

    #[test]
    fn asn_and_reasons() {
        assert!(err(check_asn("a", 0)).contains("RFC 7607"));
        assert!(err(check_asn("a", 23456)).contains("AS_TRANS"));
        assert_eq!(check_asn("a", 4_294_967_295).ok(), Some(4_294_967_295));
        assert_eq!(check_reason("r", "").ok(), Some(None));
        assert!(err(check_reason("r", &"é".repeat(128))).contains("256 bytes"));
    }

    #[test]
    fn peer_timers() {
        let base = pb::PeerConfig {
            address: "198.18.0.2".into(),
            remote_as: 64513,
            ..Default::default()
        };
        let ok = peer_config_from_pb(Some(&pb::PeerConfig {
            hold_time_seconds: 3,
            keepalive_seconds: 1,
            ..base.clone()
        }));
        assert!(ok.is_ok());
        // Keepalive without hold time is checked against the default 90 s.
        assert!(
            err(peer_config_from_pb(Some(&pb::PeerConfig {
                keepalive_seconds: 90,
                ..base.clone()
            })))
            .contains("90s")
        );
        assert!(
            err(peer_config_from_pb(Some(&pb::PeerConfig {
                keepalive_seconds: 70_000,
                ..base
            })))
            .contains("65535")
        );
    }

    /// A BFD session with every field set to a distinct value.
    fn full_bfd() -> BfdStatus {
        BfdStatus {
            phase: BfdPhase::Down,
            detail: "held down: BFD is flapping (damped)".into(),
            since_unix_seconds: 1_796_658_001,
            multihop: true,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 250_000,
            multiplier: 3,
            negotiated_tx_us: 300_000,
            negotiated_rx_us: 350_000,
            remote_multiplier: 5,
            detection_time_us: 1_750_000,
            local_discriminator: 0x1234_5678,
            remote_discriminator: 0x9abc_def0,
            last_diagnostic: "control detection time expired".into(),
            uptime_seconds: 42,
            flaps: 7,
            damped: true,
            bgp_held: true,
            wait_for_up: true,
            graceful: true,
            packets_in: 1_000_001,
            packets_out: 1_000_002,
        }
    }

    fn peer_with(bfd: Option<BfdStatus>) -> PeerStatus {
        let mut p = PeerStatus::idle(PeerConfig::new("198.18.0.2".parse().unwrap(), 64513));
        p.bfd = bfd;
        p
    }

    fn peer_bfd_back(p: &PeerStatus) -> Option<BfdStatus> {
        peer_to_pb(p)
            .bfd
            .as_ref()
            .map(|b| bfd_status_from_pb("bfd", b))
            .transpose()
            .expect("valid BFD status")
    }

    #[test]
    fn bfd_status_round_trips_through_the_peer_message() {
        let full = full_bfd();
        let p = peer_to_pb(&peer_with(Some(full.clone())));
        let b = p.bfd.as_ref().expect("bfd set");
        assert_eq!(b.phase, pb::BfdPhase::Down as i32);
        assert_eq!(b.detection_time_us, 1_750_000);
        assert_eq!(b.last_diagnostic, "control detection time expired");
        assert_eq!(peer_bfd_back(&peer_with(Some(full.clone()))), Some(full));
        // Absent stays absent: no BFD is not "BFD in some default phase".
        assert_eq!(peer_to_pb(&peer_with(None)).bfd, None);
        assert_eq!(peer_bfd_back(&peer_with(None)), None);
        // Survives the wire, too.
        let wire = prost::Message::encode_to_vec(&peer_to_pb(&peer_with(Some(full_bfd()))));
        let back: pb::Peer = prost::Message::decode(wire.as_slice()).unwrap();
        assert_eq!(
            bfd_status_from_pb("bfd", back.bfd.as_ref().unwrap()).unwrap(),
            full_bfd()
        );
    }

    #[test]
    fn every_bfd_phase_round_trips_and_unspecified_is_refused() {
        for phase in [
            BfdPhase::Starting,
            BfdPhase::Up,
            BfdPhase::Down,
            BfdPhase::AdminDown,
            BfdPhase::Unavailable,
        ] {
            let b = BfdStatus {
                phase,
                ..BfdStatus::default()
            };
            assert_eq!(bfd_status_from_pb("bfd", &bfd_status_to_pb(&b)).unwrap(), b);
        }
        let unspecified = pb::BfdStatus::default();
        assert!(err(bfd_status_from_pb("bfd", &unspecified)).contains("bfd.phase 0"));
        let unknown = pb::BfdStatus {
            phase: 99,
            ..Default::default()
        };
        assert!(err(bfd_status_from_pb("bfd", &unknown)).contains("not a known BFD phase"));
    }

    /// Session settings with every field set to a non-default value.
    fn full_settings() -> PeerSettings {
        PeerSettings {
            origin: "BGPPeer tor-a".into(),
            calico_node: Some("node-b".into()),
            port: 1179,
            local_as: 64999,
            internal: false,
            passive: true,
            route_reflector_client: true,
            cluster_id: Some("198.18.0.100".parse().unwrap()),
            ttl_security_hops: Some(2),
            password_set: true,
            next_hop: NextHopMode::Keep,
            source_address: Some("2001:db8::11".parse().unwrap()),
            families: vec![Family::Ipv6, Family::Ipv4],
            extended_next_hop: true,
            hold_time_seconds: 60,
            keepalive_seconds: Some(20),
            graceful_restart: Some(GracefulRestartSettings {
                restart_time_seconds: 90,
                notification: true,
                forwarding_preserved: true,
            }),
            long_lived_stale_time_seconds: Some(0),
            allowed_local_as: 2,
            reachable_by: Some("198.18.0.254".parse().unwrap()),
            filters: vec!["edge".into(), "lab".into()],
            import_policy: Some("import 2001:db8::1".into()),
            export_policy: Some("export 2001:db8::1".into()),
        }
    }

    fn settings_back(p: &PeerStatus) -> Option<PeerSettings> {
        let wire = prost::Message::encode_to_vec(&peer_to_pb(p));
        let back: pb::Peer = prost::Message::decode(wire.as_slice()).unwrap();
        back.settings
            .as_ref()
            .map(|s| peer_settings_from_pb("settings", s))
            .transpose()
            .expect("valid settings")
    }

    #[test]
    fn peer_settings_round_trip_through_the_peer_message() {
        let mut p = peer_with(None);
        p.settings = Some(full_settings());
        let s = peer_to_pb(&p).settings.expect("settings set");
        assert_eq!(s.next_hop, pb::NextHopMode::Keep as i32);
        assert_eq!(s.cluster_id, "198.18.0.100");
        assert_eq!(s.ttl_security_hops, 2);
        assert_eq!(s.keepalive_seconds, Some(20));
        // A stale time of 0 is offered LLGR, not "no LLGR".
        assert_eq!(s.long_lived_stale_time_seconds, Some(0));
        assert_eq!(
            s.families,
            [
                pb::AddressFamily::Ipv6 as i32,
                pb::AddressFamily::Ipv4 as i32
            ]
        );
        assert_eq!(settings_back(&p), Some(full_settings()));

        // Every `None` and every default survives too: absent stays absent.
        for mode in [NextHopMode::Auto, NextHopMode::SelfAddress] {
            let bare = PeerSettings {
                origin: "node-to-node mesh".into(),
                port: 179,
                local_as: 64512,
                hold_time_seconds: 90,
                next_hop: mode,
                ..PeerSettings::default()
            };
            p.settings = Some(bare.clone());
            let s = peer_to_pb(&p).settings.unwrap();
            assert_eq!(
                (s.keepalive_seconds, s.long_lived_stale_time_seconds),
                (None, None)
            );
            assert_eq!(s.graceful_restart, None);
            assert_eq!(settings_back(&p), Some(bare));
        }
        // No settings (an older daemon): absent.
        p.settings = None;
        assert_eq!(peer_to_pb(&p).settings, None);
        assert_eq!(settings_back(&p), None);
    }

    #[test]
    fn peer_settings_from_pb_refuses_what_a_daemon_never_sends() {
        let good = peer_settings_to_pb(&full_settings());
        let bad = |f: &dyn Fn(&mut pb::PeerSettings)| {
            let mut s = good.clone();
            f(&mut s);
            err(peer_settings_from_pb("settings", &s))
        };
        assert!(bad(&|s| s.next_hop = 0).contains("settings.next_hop 0"));
        assert!(bad(&|s| s.next_hop = 9).contains("not a known next-hop mode"));
        assert!(bad(&|s| s.cluster_id = "2001:db8::1".into()).contains("settings.cluster_id"));
        assert!(bad(&|s| s.source_address = "x".into()).contains("settings.source_address"));
        assert!(bad(&|s| s.port = 70_000).contains("settings.port 70000 is above 65535"));
        assert!(bad(&|s| s.ttl_security_hops = 256).contains("ttl_security_hops"));
        assert!(bad(&|s| s.families = vec![0]).contains("settings.families[0]"));
        assert!(
            bad(&|s| s.graceful_restart.as_mut().unwrap().restart_time_seconds = 4096)
                .contains("restart_time_seconds 4096")
        );
    }

    fn explanation_with(departed: Option<RouteDeparture>) -> RouteExplanation {
        RouteExplanation {
            prefix: "198.19.7.0/24".parse().unwrap(),
            candidates: vec![],
            exports: vec![],
            departed,
        }
    }

    #[test]
    fn departure_round_trips_through_the_explanation() {
        for (peer, withdrawn) in [("198.18.0.1", true), ("2001:db8::1", false)] {
            let d = RouteDeparture {
                peer: peer.parse().unwrap(),
                at_unix_seconds: 1_796_658_001,
                reason: "BFD went down (control detection time expired); paths withdrawn".into(),
                withdrawn,
            };
            let e = explanation_to_pb(&explanation_with(Some(d.clone())));
            assert!(e.candidates.is_empty());
            let pd = e.departed.as_ref().expect("departed set");
            assert_eq!(pd.peer_address, peer);
            assert_eq!(pd.withdrawn, withdrawn);
            assert_eq!(departure_from_pb("departed", pd).unwrap(), d);
        }
        let none = explanation_to_pb(&explanation_with(None));
        assert_eq!(none.departed, None);
        assert_eq!(
            none.departed
                .as_ref()
                .map(|d| departure_from_pb("departed", d))
                .transpose()
                .unwrap(),
            None
        );
        let bad = pb::RouteDeparture {
            peer_address: "not-an-address".into(),
            ..Default::default()
        };
        assert!(err(departure_from_pb("departed", &bad)).contains("departed.peer_address"));
    }
}
