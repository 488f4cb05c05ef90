//! Kernel learning (Calico's `learn`): which foreign kernel routes are
//! reported to the daemon as locally originated, and in what form.

use ipnet::IpNet;

use crate::maps::HashMap;
use crate::types::{FibRoute, KernelEvent, LearnFilter, NextHopSpec, RouteKind};
use crate::wire::{KernelRoute, Shape};

/// The routes learned so far, to report each change once.
#[derive(Debug, Default)]
pub(crate) struct Learner {
    filter: Option<LearnFilter>,
    learned: HashMap<IpNet, FibRoute>,
}

impl Learner {
    pub(crate) fn new(filter: Option<LearnFilter>) -> Self {
        Self {
            filter,
            learned: HashMap::default(),
        }
    }

    /// A foreign route in our table appeared (`added`) or went; the event
    /// to report, if any.
    pub(crate) fn note<'a>(
        &mut self,
        r: &KernelRoute,
        added: bool,
        dev: impl Fn(u32) -> Option<&'a str>,
    ) -> Option<KernelEvent> {
        let filter = self.filter.as_ref()?;
        let p = r.prefix;
        if !accepts(filter, r, &dev) {
            return None;
        }
        if added {
            let route = to_fib_route(r, dev)?;
            if self.learned.get(&p) == Some(&route) {
                return None;
            }
            self.learned.insert(p, route.clone());
            Some(KernelEvent::Learned(route))
        } else {
            self.learned
                .remove(&p)
                .is_some()
                .then_some(KernelEvent::Unlearned(p))
        }
    }

    /// Starts over before a dump: returns what was learned, so that what the
    /// dump no longer shows can be reported as gone.
    pub(crate) fn restart(&mut self) -> HashMap<IpNet, FibRoute> {
        std::mem::take(&mut self.learned)
    }

    pub(crate) fn knows(&self, p: &IpNet) -> bool {
        self.learned.contains_key(p)
    }
}

/// Whether `r` (a route of another protocol in our table) passes the filter.
fn accepts<'a>(
    filter: &LearnFilter,
    r: &KernelRoute,
    dev: &impl Fn(u32) -> Option<&'a str>,
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
fn to_fib_route<'a>(r: &KernelRoute, dev: impl Fn(u32) -> Option<&'a str>) -> Option<FibRoute> {
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
        // The metric the route has in the kernel (Felix's priority for it).
        metric: Some(r.metric),
    })
}
