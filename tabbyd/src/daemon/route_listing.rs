//! The API's paged view of the Loc-RIB: where a [`am::RouteQuery`] can first
//! match in prefix order and where it can match no more, so that
//! `Daemon::list_routes` reads one page from the RIB's ordered index
//! ([`tabby_rib::Rib::best_routes_from`]) instead of building and sorting
//! every route for every page. The RIB keeps that index from the API's
//! first listing on (`Daemon::keep_route_order`): a reflector nobody lists
//! does not pay its 20 octets a prefix.

use std::ops::Bound;

use ipnet::{IpNet, Ipv6Net};
use tabby_api::model as am;

/// The earliest prefix `q` can return: after `q.after`, not before the
/// prefix it filters on, in its family.
pub(super) fn start(q: &am::RouteQuery) -> Bound<IpNet> {
    let mut start = Bound::Unbounded;
    if let Some(after) = q.after {
        start = later(start, Bound::Excluded(after));
    }
    if let Some((p, _)) = q.prefix {
        // Every prefix equal to or inside `p` sorts at or after its network.
        start = later(start, Bound::Included(p.trunc()));
    }
    if q.family == Some(am::Family::Ipv6) {
        start = later(start, Bound::Included(IpNet::V6(Ipv6Net::default())));
    }
    start
}

/// The later of two lower bounds.
fn later(a: Bound<IpNet>, b: Bound<IpNet>) -> Bound<IpNet> {
    let key = |x: &Bound<IpNet>| match x {
        Bound::Unbounded => None,
        // At one prefix, "after it" starts later than "from it".
        Bound::Included(p) => Some((*p, false)),
        Bound::Excluded(p) => Some((*p, true)),
    };
    if key(&a) >= key(&b) { a } else { b }
}

/// Whether neither `prefix` nor any prefix after it can match `q`.
pub(super) fn past_end(q: &am::RouteQuery, prefix: &IpNet) -> bool {
    if q.family == Some(am::Family::Ipv4) && matches!(prefix, IpNet::V6(_)) {
        return true;
    }
    match &q.prefix {
        None => false,
        Some((p, am::PrefixMatch::Exact)) => prefix > p,
        // A prefix inside `p` starts at or before `p`'s last address, and
        // later prefixes start no earlier.
        Some((p, am::PrefixMatch::Longer)) => match (p, prefix) {
            (IpNet::V4(p), IpNet::V4(x)) => x.addr() > p.broadcast(),
            (IpNet::V6(p), IpNet::V6(x)) => x.addr() > p.broadcast(),
            (IpNet::V4(_), IpNet::V6(_)) => true,
            (IpNet::V6(_), IpNet::V4(_)) => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tabby_bgp::Asn;
    use tabby_rib::{LocalKind, LocalRoute, Rib, RibConfig};

    use super::super::effective_config::tests::daemon_with;
    use super::super::{TOPOLOGY_OWNER, api_path};
    use super::*;
    use std::time::Instant;

    const NODE: &str = "
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a}
spec: {bgp: {ipv4Address: 198.18.0.11/24, ipv6Address: 2001:db8::11/64}}
";

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// What `list_routes` returned before it read the ordered index: every
    /// best route (`sorted`), filtered, cut at `limit`.
    fn reference(sorted: &[IpNet], q: &am::RouteQuery) -> (Vec<IpNet>, bool) {
        let matching: Vec<IpNet> = sorted
            .iter()
            .copied()
            .filter(|p| q.family.is_none_or(|f| am::Family::of_prefix(p) == f))
            .filter(|p| match &q.prefix {
                None => true,
                Some((f, am::PrefixMatch::Exact)) => p == f,
                Some((f, am::PrefixMatch::Longer)) => f.contains(p),
            })
            .filter(|p| q.after.is_none_or(|a| *p > a))
            .collect();
        let more = matching.len() > q.limit;
        (matching.into_iter().take(q.limit).collect(), more)
    }

    fn query(
        family: Option<am::Family>,
        prefix: Option<(IpNet, am::PrefixMatch)>,
        limit: usize,
    ) -> am::RouteQuery {
        am::RouteQuery {
            family,
            prefix,
            best_only: true,
            after: None,
            limit,
        }
    }

    /// Many routes of both families, announced out of order, listed a page
    /// at a time for several filters and page sizes: each route exactly
    /// once, in order, `more` on every page but the last, and every page
    /// as the sort-everything listing had it.
    #[test]
    fn pages_return_every_route_once_in_order() {
        let (mut d, _) = daemon_with(NODE);
        let mut all: Vec<IpNet> = Vec::new();
        for i in 0..800u32 {
            // A scattered order: multiplying by a number prime to 800 permutes.
            let j = i * 389 % 800;
            all.push(net(&format!("100.{}.{}.0/24", 64 + j / 256, j % 256)));
            if j % 3 == 0 {
                all.push(net(&format!("100.{}.{}.0/26", 64 + j / 256, j % 256)));
            }
            if j % 4 == 0 {
                all.push(net(&format!("2001:db8:{:x}::/48", j)));
            }
        }
        all.extend(["0.0.0.0/0", "::/0", "100.64.0.0/16", "100.64.0.0/10"].map(net));
        let owner = am::Owner::new("pager").unwrap();
        let routes = all
            .iter()
            .map(|p| am::LocalRoute {
                prefix: *p,
                kind: am::RouteKind::Unspecified,
                communities: vec![],
                large_communities: vec![],
                next_hop: None,
                priority: None,
                local_pref: None,
                med: None,
            })
            .collect();
        d.announce(&owner, routes, Instant::now()).unwrap();
        let mut sorted = all.clone();
        sorted.sort();

        let queries = [
            query(None, None, 1),
            query(None, None, 7),
            query(None, None, 1000),
            am::RouteQuery {
                best_only: false,
                ..query(None, None, 97)
            },
            query(Some(am::Family::Ipv4), None, 13),
            query(Some(am::Family::Ipv6), None, 9),
            query(
                None,
                Some((net("100.65.0.0/16"), am::PrefixMatch::Longer)),
                11,
            ),
            query(
                None,
                Some((net("100.64.0.0/10"), am::PrefixMatch::Longer)),
                50,
            ),
            query(
                None,
                Some((net("2001:db8::/32"), am::PrefixMatch::Longer)),
                8,
            ),
            query(
                Some(am::Family::Ipv4),
                Some((net("2001:db8::/32"), am::PrefixMatch::Longer)),
                8,
            ),
            query(
                None,
                Some((net("100.64.3.0/24"), am::PrefixMatch::Exact)),
                5,
            ),
            query(
                None,
                Some((net("100.64.3.0/25"), am::PrefixMatch::Exact)),
                5,
            ),
        ];
        // The same pages whether the RIB sorts for each listing or keeps
        // its prefixes in order (as it does once the API has listed).
        for ordered in [false, true] {
            if ordered {
                d.keep_route_order();
            }
            assert_eq!(
                d.rib.as_ref().map(|r| r.keeps_prefix_order()),
                Some(ordered)
            );
            for q0 in &queries {
                let (want, _) = reference(
                    &sorted,
                    &am::RouteQuery {
                        limit: usize::MAX,
                        ..q0.clone()
                    },
                );
                let mut got: Vec<IpNet> = Vec::new();
                let mut q = q0.clone();
                let mut pages = 0;
                loop {
                    let page = d.list_routes(&q).unwrap();
                    assert_eq!(
                        (page.routes.iter().map(|r| r.prefix).collect(), page.more),
                        reference(&sorted, &q),
                        "{q:?}"
                    );
                    assert!(page.routes.len() <= q.limit);
                    got.extend(page.routes.iter().map(|r| r.prefix));
                    pages += 1;
                    match page.routes.last() {
                        Some(last) if page.more => q.after = Some(last.prefix),
                        _ => break,
                    }
                }
                assert_eq!(got, want, "{q0:?}");
                assert_eq!(pages, want.len().div_ceil(q0.limit).max(1), "{q0:?}");
            }
        }
        assert!(all.len() > 1000);
        let everything = d.list_routes(&query(None, None, usize::MAX)).unwrap();
        assert_eq!(everything.routes.len(), all.len());
        assert!(!everything.more);
    }

    #[test]
    fn a_zero_limit_returns_nothing_and_says_whether_there_is_more() {
        let (mut d, _) = daemon_with(NODE);
        let empty = d.list_routes(&query(None, None, 0)).unwrap();
        assert_eq!((empty.routes.len(), empty.more), (0, false));
        let owner = am::Owner::new("pager").unwrap();
        d.announce(
            &owner,
            vec![am::LocalRoute {
                prefix: net("100.64.0.0/26"),
                kind: am::RouteKind::PodBlock,
                communities: vec![],
                large_communities: vec![],
                next_hop: None,
                priority: None,
                local_pref: None,
                med: None,
            }],
            Instant::now(),
        )
        .unwrap();
        let page = d.list_routes(&query(None, None, 0)).unwrap();
        assert_eq!((page.routes.len(), page.more), (0, true));
    }

    #[test]
    fn start_is_the_latest_lower_bound() {
        let mut q = query(Some(am::Family::Ipv6), None, 1);
        assert_eq!(start(&q), Bound::Included(net("::/0")));
        q.after = Some(net("198.18.0.0/15"));
        assert_eq!(start(&q), Bound::Included(net("::/0")));
        q.after = Some(net("::/0"));
        assert_eq!(start(&q), Bound::Excluded(net("::/0")));
        let mut q = query(
            None,
            Some((net("198.19.2.3/16"), am::PrefixMatch::Longer)),
            1,
        );
        assert_eq!(start(&q), Bound::Included(net("198.19.0.0/16")));
        q.after = Some(net("198.19.0.0/24"));
        assert_eq!(start(&q), Bound::Excluded(net("198.19.0.0/24")));
        assert_eq!(start(&query(None, None, 1)), Bound::Unbounded);
    }

    /// A local path whose owner breaks the API's rules (none should reach
    /// the RIB) is still reported as local, under its mended name: never as
    /// a peer.
    #[test]
    fn a_local_path_with_an_unlisted_owner_is_reported_as_local() {
        let mut rib = Rib::new(RibConfig::new(Ipv4Addr::new(198, 18, 0, 11), Asn(64512)));
        let p = net("100.64.0.0/26");
        let route = LocalRoute {
            kind: LocalKind::HostRoute,
            ..LocalRoute::default()
        };
        rib.originate(p, "bad owner!", route.clone());
        let path = api_path(&rib.best(&p).unwrap(), true);
        assert_eq!(
            path.source,
            am::PathSource::Local(am::Owner::new("bad_owner_").unwrap())
        );
        assert_eq!(path.kind, am::RouteKind::Host);
        assert!(path.best);
        // Valid owners are reported as they are.
        let q = net("100.64.1.0/26");
        rib.originate(q, TOPOLOGY_OWNER, route);
        assert_eq!(
            api_path(&rib.best(&q).unwrap(), true).source,
            am::PathSource::Local(am::Owner::new(TOPOLOGY_OWNER).unwrap())
        );
    }
}
