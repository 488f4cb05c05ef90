//! The input and output types of the FIB synchroniser: what the daemon asks
//! for (`FibRoute`, `FibOp`), how it is configured (`FibConfig`), and what
//! it reports (`FibStats`, `KernelEvent`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::FibError;

/// Tabby's route protocol number (`rtm_protocol`), 84 = ASCII `'T'`.
///
/// Chosen because it appears in no registry we could find: the kernel's
/// `rtnetlink.h` (2 kernel, 3 boot, 4 static, 9 ra, 11 zebra, 12 bird,
/// 16 dhcp, 17 mrouted, 18 keepalived, 42 babel, 99 openr, 186-192 FRR's
/// bgp/isis/ospf/rip/eigrp), FRR's own 193-198 (ldp, sharp, pbr, static,
/// openfabric, srte) and Calico Felix's 80 for its VXLAN routes. The
/// protocol number is how Tabby recognises its own routes after a restart,
/// so it must be unique on the node; it is configurable for sites that
/// already use 84.
pub const TABBY_RT_PROTO: u8 = 84;

/// The kernel's main routing table.
pub const RT_TABLE_MAIN: u32 = 254;

/// One route Tabby wants in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibRoute {
    /// Destination; host bits are cleared on `set`.
    pub prefix: IpNet,
    /// What the route does with packets.
    pub kind: RouteKind,
    /// Optional preferred source address (`RTA_PREFSRC`, `ip route ... src`).
    pub pref_src: Option<IpAddr>,
    /// This route's own metric (`RTA_PRIORITY`); `None`: its family's (see
    /// [`FibOp::Priority`]). A metric is part of the kernel's route key, so
    /// a change moves the route: installed at the new metric, then removed
    /// from the old one. 0 for IPv6 means 1024.
    pub metric: Option<u32>,
}

impl FibRoute {
    /// A route via one gateway.
    pub fn via(prefix: IpNet, gateway: IpAddr) -> Self {
        Self {
            prefix,
            kind: RouteKind::Unicast(vec![NextHopSpec::gateway(gateway)]),
            pref_src: None,
            metric: None,
        }
    }

    /// An ECMP route over several gateways (all weight 1).
    pub fn ecmp(prefix: IpNet, gateways: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            prefix,
            kind: RouteKind::Unicast(gateways.into_iter().map(NextHopSpec::gateway).collect()),
            pref_src: None,
            metric: None,
        }
    }

    /// A blackhole route (a node's own pod block: advertised, dropped
    /// locally unless a more specific per-pod route exists).
    pub fn blackhole(prefix: IpNet) -> Self {
        Self {
            prefix,
            kind: RouteKind::Blackhole,
            pref_src: None,
            metric: None,
        }
    }

    /// The same route at a metric of its own instead of its family's.
    pub fn at_metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }
}

/// One change to the desired routes, as pushed in order through
/// [`FibHandle::ops`](crate::FibHandle::ops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibOp {
    /// Wants this route for its prefix (adds, or replaces the one wanted
    /// before).
    Set(FibRoute),
    /// No longer wants a route for this prefix.
    Remove(IpNet),
    /// The RIB has converged: routes of ours found at start that are not
    /// wanted by then go (see `FibHandle::converged`).
    Converged,
    /// From now on our routes sit at these metrics (`RTA_PRIORITY`, per
    /// family; 0 for IPv6 means 1024), replacing `FibConfig::metric`. A
    /// metric is part of the kernel's route key, so each route is installed
    /// at the new metric and then removed from the old one (once the RIB
    /// has converged, like any route of ours at an old metric).
    Priority { v4: u32, v6: u32 },
}

/// What a route does with packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKind {
    /// Forward via one next hop, or several (ECMP through `RTA_MULTIPATH`).
    Unicast(Vec<NextHopSpec>),
    /// Drop silently (`RTN_BLACKHOLE`).
    Blackhole,
}

/// One next hop of a unicast route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NextHopSpec {
    /// Gateway address: the prefix's family, or IPv6 for an IPv4 prefix
    /// (programmed with `RTA_VIA`, `ip route ... via inet6`; RFC 8950).
    pub gateway: IpAddr,
    /// Output device by name (for example the IP-in-IP tunnel). `None` lets
    /// the kernel resolve it from the gateway.
    pub device: Option<String>,
    /// Treat the gateway as directly attached to `device` even without a
    /// covering connected route (`onlink`, Calico's `krt_tunnel`).
    pub onlink: bool,
    /// ECMP weight, 1..=256; ignored for single-path routes.
    pub weight: u16,
}

impl NextHopSpec {
    /// A plain gateway next hop.
    pub fn gateway(gateway: IpAddr) -> Self {
        Self {
            gateway,
            device: None,
            onlink: false,
            weight: 1,
        }
    }

    /// A gateway reached `onlink` through a named device.
    pub fn onlink(gateway: IpAddr, device: impl Into<String>) -> Self {
        Self {
            gateway,
            device: Some(device.into()),
            onlink: true,
            weight: 1,
        }
    }
}

/// Which kernel routes to import as locally originated (Calico's `learn`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LearnFilter {
    /// Route protocol numbers to import (for example 3 = boot for
    /// per-pod device routes). Empty means any protocol except our own.
    pub protocols: Vec<u8>,
    /// Interface name prefixes the route's output device must match (for
    /// example `cali`). Empty means any interface.
    pub interface_prefixes: Vec<String>,
}

/// Configuration of one FIB synchroniser.
#[derive(Debug, Clone)]
pub struct FibConfig {
    /// Our route protocol number; see [`TABBY_RT_PROTO`].
    pub protocol: u8,
    /// Routing table to program (254 = main).
    pub table: u32,
    /// Route metric (`RTA_PRIORITY`). IPv6 treats 0 as 1024, so 0 is mapped
    /// to 1024 for IPv6 routes.
    pub metric: u32,
    /// Receive buffer of the request and event sockets in bytes; set with
    /// `SO_RCVBUFFORCE` when permitted (root / `CAP_NET_ADMIN`), else
    /// `SO_RCVBUF` (capped by `net.core.rmem_max`).
    pub rcvbuf: usize,
    /// Receive buffer of the event socket; defaults to `rcvbuf`. Tests make
    /// it tiny to force an overrun.
    pub event_rcvbuf: Option<usize>,
    /// Import matching kernel routes and report them as `KernelEvent::Learned`.
    pub learn: Option<LearnFilter>,
    /// Requests packed into one `sendmsg` are at most this many bytes.
    pub batch_bytes: usize,
    /// At most this many requests are unacknowledged at once.
    pub max_in_flight: usize,
    /// Routes whose next hop was unreachable are retried on link and
    /// address changes, and at least this often.
    pub retry_interval: Duration,
    /// When at least this many prefixes wait to be programmed, stop
    /// listening to route notifications (each costs the kernel a message
    /// and us a `recv`), send only creates and deletes (both safe without a
    /// current view), and verify the whole table with one dump at the end.
    /// 0 disables bulk mode.
    pub bulk_threshold: usize,
    /// Re-read the whole table this often and correct any drift (our view
    /// is event-driven; this bounds how long an unnoticed divergence can
    /// last). `None` disables. A dump costs about as much as reading the
    /// same routes as events.
    pub verify_interval: Option<Duration>,
    /// Program single-path routes through shared nexthop objects
    /// (`RTM_NEWNEXTHOP`, `RTA_NH_ID`; Linux 5.3+): one object per distinct
    /// gateway and device instead of a next hop set up per route. Used only
    /// when the kernel takes them (detected at start); otherwise, and for
    /// ECMP and blackhole routes, next hops are spelled out per route.
    pub nexthop_objects: bool,
}

impl Default for FibConfig {
    fn default() -> Self {
        Self {
            protocol: TABBY_RT_PROTO,
            table: RT_TABLE_MAIN,
            metric: 32,
            rcvbuf: 32 << 20,
            event_rcvbuf: None,
            learn: None,
            batch_bytes: 96 << 10,
            max_in_flight: 8192,
            retry_interval: Duration::from_secs(10),
            bulk_threshold: 4096,
            verify_interval: Some(Duration::from_secs(600)),
            nexthop_objects: true,
        }
    }
}

impl FibConfig {
    /// The metric the kernel stores for a route of this family.
    pub(crate) fn kernel_metric(&self, v6: bool) -> u32 {
        if v6 && self.metric == 0 {
            1024
        } else {
            self.metric
        }
    }
}

/// Counters, readable at any time through `FibHandle::stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FibStats {
    /// Routes created (`RTM_NEWROUTE` with `NLM_F_CREATE|NLM_F_EXCL`) and acknowledged.
    pub installs: u64,
    /// Routes of ours replaced in place (`NLM_F_REPLACE`).
    pub replaces: u64,
    /// Routes of ours deleted (ENOENT counts as done).
    pub deletes: u64,
    /// Routes of ours put back after someone else removed or changed them.
    pub restores: u64,
    /// Full dumps after an event-socket overrun or an unexplained EEXIST.
    pub resyncs: u64,
    /// Dumps repeated because the kernel flagged them `NLM_F_DUMP_INTR`.
    pub dump_retries: u64,
    /// Failed requests by errno (positive, as in `errno.h`).
    pub errors: BTreeMap<i32, u64>,
    /// Routes wanted by the RIB.
    pub desired: usize,
    /// Routes of our protocol currently in the kernel table.
    pub installed: usize,
    /// Wanted routes whose key (prefix, table, metric) is held by another
    /// protocol's route; they wait until it goes away.
    pub blocked_by_foreign: usize,
    /// Wanted routes waiting for a next hop or device to become usable.
    pub parked: usize,
    /// Whether the RIB has declared convergence.
    pub converged: bool,
    /// Times bulk mode was entered (see `FibConfig::bulk_threshold`).
    pub bulk_runs: u64,
    /// Routes pushed through `FibHandle::ops` that were refused as invalid
    /// and left the desired route of their prefix as it was (the async
    /// methods return the error instead).
    pub refused: u64,
    /// Nexthop objects of ours created and acknowledged.
    pub nexthop_installs: u64,
    /// Nexthop objects of ours deleted once no route used them.
    pub nexthop_deletes: u64,
    /// Nexthop objects of ours in the kernel (or being created); 0 when the
    /// kernel has none and next hops are spelled out per route.
    pub nexthops: usize,
}

/// What the synchroniser saw in the kernel, for the daemon (next-hop
/// reachability, learned routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A link appeared or changed state; `up` is administratively up with
    /// carrier (`IFF_UP` and `IFF_LOWER_UP`).
    Link { index: u32, name: String, up: bool },
    /// A link was removed.
    LinkRemoved { index: u32, name: String },
    /// An address was added to an interface.
    AddressAdded { index: u32, address: IpNet },
    /// An address was removed from an interface.
    AddressRemoved { index: u32, address: IpNet },
    /// A kernel route matching the learn filter appeared or changed.
    Learned(FibRoute),
    /// A learned route went away.
    Unlearned(IpNet),
    /// The event stream overran and the kernel view was rebuilt from a dump;
    /// consumers should re-read anything they cache.
    Resynced,
}

/// Checks a route and brings it to the form the planner compares with the
/// kernel's (host bits cleared, next hops sorted, a single next hop at
/// weight 1). Applying it twice changes nothing.
pub(crate) fn validate(mut route: FibRoute) -> Result<FibRoute, FibError> {
    let prefix = route.prefix;
    let bad = |why: String| Err(FibError::InvalidRoute(prefix, why));
    let v6 = matches!(prefix, IpNet::V6(_));
    if let Some(src) = route.pref_src
        && src.is_ipv6() != v6
    {
        return bad(format!(
            "preferred source {src} is not of the prefix's family"
        ));
    }
    if v6 && route.metric == Some(0) {
        // The kernel stores an IPv6 route asked for at 0 at 1024.
        route.metric = Some(1024);
    }
    if let RouteKind::Unicast(hops) = &mut route.kind {
        if hops.is_empty() {
            return bad("a unicast route needs at least one next hop".into());
        }
        for NextHopSpec {
            gateway,
            device,
            weight,
            onlink,
        } in hops.iter()
        {
            // An IPv4 route may go via an IPv6 gateway (RTA_VIA, RFC 8950
            // next hops); the kernel has no IPv6 route via an IPv4 gateway.
            if v6 && gateway.is_ipv4() {
                return bad(format!("gateway {gateway} is not of the prefix's family"));
            }
            if !(1..=256).contains(weight) {
                return bad(format!("weight {weight} is outside 1..=256"));
            }
            if let Some(d) = device {
                if d.is_empty() || d.len() > 15 {
                    return bad(format!("device name {d:?} must be 1 to 15 bytes"));
                }
            } else if *onlink {
                return bad("onlink needs a device".into());
            }
        }
        // Sorted by gateway, then device: a repeated pair is adjacent.
        hops.sort();
        if hops
            .windows(2)
            .any(|w| w[0].gateway == w[1].gateway && w[0].device == w[1].device)
        {
            return bad("duplicate next hop".into());
        }
        if let [h] = hops.as_mut_slice() {
            h.weight = 1;
        }
    }
    route.prefix = prefix.trunc();
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn validate_normalises_and_is_idempotent() {
        let mut hops = vec![
            NextHopSpec::gateway(ip("198.18.0.3")),
            NextHopSpec::gateway(ip("198.18.0.2")),
        ];
        hops[0].weight = 7;
        let r = FibRoute {
            prefix: "100.64.1.9/24".parse().unwrap(),
            kind: RouteKind::Unicast(hops),
            pref_src: None,
            metric: None,
        };
        let v = validate(r).unwrap();
        assert_eq!(v.prefix, "100.64.1.0/24".parse::<IpNet>().unwrap());
        let RouteKind::Unicast(h) = &v.kind else {
            panic!("unicast expected")
        };
        assert_eq!(h[0].gateway, ip("198.18.0.2"));
        assert_eq!(h[1].weight, 7);
        assert_eq!(validate(v.clone()).unwrap(), v);

        let mut single = FibRoute::via("100.64.2.0/24".parse().unwrap(), ip("198.18.0.2"));
        if let RouteKind::Unicast(h) = &mut single.kind {
            h[0].weight = 9;
        }
        let RouteKind::Unicast(h) = validate(single).unwrap().kind else {
            panic!("unicast expected")
        };
        assert_eq!(h[0].weight, 1);
    }

    #[test]
    fn validate_refuses_bad_routes() {
        let p: IpNet = "2001:db8::/64".parse().unwrap();
        let bad = [
            FibRoute::via(p, ip("198.18.0.2")),
            FibRoute::ecmp(p, [ip("2001:db8::2"), ip("2001:db8::2")]),
            FibRoute {
                prefix: p,
                kind: RouteKind::Unicast(Vec::new()),
                pref_src: None,
                metric: None,
            },
            FibRoute {
                prefix: p,
                kind: RouteKind::Blackhole,
                pref_src: Some(ip("198.18.0.1")),
                metric: None,
            },
            FibRoute {
                prefix: p,
                kind: RouteKind::Unicast(vec![NextHopSpec {
                    onlink: true,
                    ..NextHopSpec::gateway(ip("2001:db8::2"))
                }]),
                pref_src: None,
                metric: None,
            },
            FibRoute {
                prefix: p,
                kind: RouteKind::Unicast(vec![NextHopSpec::onlink(
                    ip("2001:db8::2"),
                    "a-name-longer-than-15",
                )]),
                pref_src: None,
                metric: None,
            },
        ];
        for r in bad {
            assert!(validate(r.clone()).is_err(), "{r:?}");
        }
        // The same gateway over two devices is two next hops.
        let two = FibRoute {
            prefix: p,
            kind: RouteKind::Unicast(vec![
                NextHopSpec::onlink(ip("2001:db8::2"), "t0"),
                NextHopSpec::onlink(ip("2001:db8::2"), "t1"),
            ]),
            pref_src: None,
            metric: None,
        };
        assert!(validate(two).is_ok());
    }
}
