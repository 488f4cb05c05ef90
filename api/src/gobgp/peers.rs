//! The parts of a GoBGP `Peer` that both versions carry in the same
//! messages (v4 reuses v3's Rust types for them): timers, transport,
//! counters, per-family state, and the capabilities before packing.

use std::time::{Duration, UNIX_EPOCH};

use tabby_proto::gobgp as g;

use super::paths::{family_pb, timestamp};
use crate::model::{Family, PeerStatus, SessionState};

/// One capability tabbyd reports, before each version packs it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Capability {
    MultiProtocol(g::MultiProtocolCapability),
    RouteRefresh(g::RouteRefreshCapability),
    FourOctetAsn(g::FourOctetAsnCapability),
}

/// Everything of a GoBGP `Peer` that is not version-specific. Every
/// sub-message is present: the CLI dereferences them without checking.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PeerParts {
    pub local_as: u32,
    pub internal: bool,
    pub established: bool,
    pub ebgp_multihop: g::EbgpMultihop,
    pub route_reflector: g::RouteReflector,
    pub timers: g::Timers,
    pub transport: g::Transport,
    pub afi_safis: Vec<g::AfiSafi>,
    pub messages: g::Messages,
    pub local_cap: Vec<Capability>,
    /// Empty unless Established.
    pub remote_cap: Vec<Capability>,
    pub router_id: String,
    pub flops: u32,
}

fn capabilities(families: &[Family], asn: u32) -> Vec<Capability> {
    let mut v: Vec<Capability> = families
        .iter()
        .map(|f| {
            Capability::MultiProtocol(g::MultiProtocolCapability {
                family: Some(family_pb(*f)),
            })
        })
        .collect();
    v.push(Capability::RouteRefresh(g::RouteRefreshCapability {}));
    v.push(Capability::FourOctetAsn(g::FourOctetAsnCapability { asn }));
    v
}

fn afi_safi(f: Family, p: &PeerStatus, first: bool) -> g::AfiSafi {
    // Counters are per session in Tabby; report them under the session's
    // first family so totals stay right.
    let count = |n: u64| if first { n } else { 0 };
    g::AfiSafi {
        config: Some(g::AfiSafiConfig {
            family: Some(family_pb(f)),
            enabled: true,
        }),
        state: Some(g::AfiSafiState {
            family: Some(family_pb(f)),
            enabled: true,
            received: count(p.counters.prefixes_received),
            accepted: count(p.counters.prefixes_accepted),
            advertised: count(p.counters.prefixes_advertised),
        }),
        prefix_limits: None,
    }
}

/// The shared parts of model peer `p`, for a daemon of AS `local_as`.
pub(super) fn peer_parts(p: &PeerStatus, local_as: u32) -> PeerParts {
    let c = &p.config;
    let local = c.local_as.unwrap_or(local_as);
    let families: Vec<Family> = if c.families.is_empty() {
        vec![Family::of_addr(&c.address)]
    } else {
        c.families.clone()
    };
    let hold = u64::from(c.hold_time.unwrap_or(90));
    let keepalive = c.keepalive.map(u64::from).unwrap_or(hold / 3);
    let since = UNIX_EPOCH + Duration::from_secs(p.state_since_unix_seconds);
    let established = p.state == SessionState::Established;
    let counters = &p.counters;
    PeerParts {
        local_as: local,
        internal: c.remote_as == local,
        established,
        ebgp_multihop: g::EbgpMultihop {
            enabled: c.ebgp_multihop_ttl.is_some(),
            multihop_ttl: c.ebgp_multihop_ttl.map(u32::from).unwrap_or(0),
        },
        route_reflector: g::RouteReflector {
            route_reflector_client: c.route_reflector_client,
            route_reflector_cluster_id: String::new(),
        },
        timers: g::Timers {
            config: Some(g::TimersConfig {
                connect_retry: 5,
                hold_time: hold,
                keepalive_interval: keepalive,
                ..Default::default()
            }),
            state: Some(g::TimersState {
                hold_time: hold,
                keepalive_interval: keepalive,
                negotiated_hold_time: u64::from(p.negotiated_hold_time),
                uptime: (p.state_since_unix_seconds != 0 && established).then(|| timestamp(since)),
                downtime: (p.state_since_unix_seconds != 0 && !established)
                    .then(|| timestamp(since)),
                ..Default::default()
            }),
        },
        transport: g::Transport {
            local_address: p.local_address.map(|a| a.to_string()).unwrap_or_default(),
            passive_mode: c.passive,
            remote_address: c.address.to_string(),
            remote_port: 179,
            ..Default::default()
        },
        afi_safis: families
            .iter()
            .enumerate()
            .map(|(i, f)| afi_safi(*f, p, i == 0))
            .collect(),
        messages: g::Messages {
            received: Some(g::Message {
                notification: counters.notifications_received,
                update: counters.updates_received,
                keepalive: counters.keepalives_received,
                total: counters.messages_received,
                ..Default::default()
            }),
            sent: Some(g::Message {
                notification: counters.notifications_sent,
                update: counters.updates_sent,
                keepalive: counters.keepalives_sent,
                total: counters.messages_sent,
                ..Default::default()
            }),
        },
        local_cap: capabilities(&families, local),
        remote_cap: if established {
            capabilities(&p.negotiated_families, local)
        } else {
            Vec::new()
        },
        router_id: p
            .remote_router_id
            .map(|r| r.to_string())
            .unwrap_or_default(),
        flops: u32::try_from(counters.flaps).unwrap_or(u32::MAX),
    }
}
