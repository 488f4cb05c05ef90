//! Kernel learning (Calico's `learn`): which foreign kernel routes are
//! reported to the daemon as locally originated, and in what form.

use crate::types::{FibRoute, LearnFilter, NextHopSpec, RouteKind};
use crate::wire::{KernelRoute, Shape};

/// Whether `r` (a route of another protocol in our table) passes the filter.
pub(crate) fn accepts<'a>(
    filter: &LearnFilter,
    r: &KernelRoute,
    dev: impl Fn(u32) -> Option<&'a str>,
) -> bool {
    if !filter.protocols.is_empty() && !filter.protocols.contains(&r.protocol) {
        return false;
    }
    if filter.interface_prefixes.is_empty() {
        return true;
    }
    match &r.shape {
        Shape::Unicast(hops) => hops.iter().any(|h| {
            dev(h.oif).is_some_and(|name| {
                filter
                    .interface_prefixes
                    .iter()
                    .any(|pre| name.starts_with(pre.as_str()))
            })
        }),
        _ => false,
    }
}

/// The learned route as a `FibRoute`. A device route (no gateway, such as a
/// per-pod `/32 dev caliXXX`) maps to a next hop with the unspecified
/// address as gateway and the device named.
pub(crate) fn to_fib_route<'a>(
    r: &KernelRoute,
    dev: impl Fn(u32) -> Option<&'a str>,
) -> Option<FibRoute> {
    let kind = match &r.shape {
        Shape::Blackhole => RouteKind::Blackhole,
        Shape::Unicast(hops) => RouteKind::Unicast(
            hops.iter()
                .map(|h| NextHopSpec {
                    gateway: h.gateway.unwrap_or(match r.prefix {
                        ipnet::IpNet::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                        ipnet::IpNet::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                    }),
                    device: dev(h.oif).map(str::to_owned),
                    onlink: h.onlink,
                    weight: h.weight,
                })
                .collect(),
        ),
        Shape::Other(_) => return None,
    };
    Some(FibRoute {
        prefix: r.prefix,
        kind,
        pref_src: r.pref_src,
    })
}
