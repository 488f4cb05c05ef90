//! Reading the Loc-RIB in prefix order from any prefix on, so that a reader
//! (the API's paged route listing) takes one page without building or
//! sorting the whole table. The order comes from the per-family key index of
//! [`crate::dest_map::DestMap`].

use std::ops::Bound;

use ipnet::IpNet;

use crate::rib::Rib;
use crate::types::BestRoute;

impl Rib {
    /// From now on, keep an ordered index of the Loc-RIB's prefixes (about
    /// 20 octets an IPv4 prefix) so that [`Rib::best_routes_from`] reads a
    /// page without sorting. The first paged listing asks for it: a RIB
    /// nobody lists (a reflector's million routes) does not pay for it.
    pub fn keep_prefix_order(&mut self) {
        for t in self.tables.iter_mut() {
            t.dests.ensure_order();
        }
    }

    /// True once [`Rib::keep_prefix_order`] was called.
    pub fn keeps_prefix_order(&self) -> bool {
        self.tables.iter().all(|t| t.dests.keeps_order())
    }

    /// The prefixes with a usable route and their best routes, as
    /// [`Rib::best_routes`] has them but from `start` on: in `IpNet` order
    /// (IPv4 before IPv6, then address, then length). With the ordered index
    /// ([`Rib::keep_prefix_order`]) it is lazy: each item taken costs a
    /// lookup and one [`BestRoute`]; without it the table is sorted first.
    /// Prefixes without a usable path are passed over.
    pub fn best_routes_from(
        &self,
        start: Bound<IpNet>,
    ) -> Box<dyn Iterator<Item = (IpNet, BestRoute)> + '_> {
        if !self.keeps_prefix_order() {
            let mut all = self.best_routes();
            all.retain(|(p, _)| match start {
                Bound::Unbounded => true,
                Bound::Included(s) => *p >= s,
                Bound::Excluded(s) => *p > s,
            });
            all.sort_by_key(|(p, _)| *p);
            return Box::new(all.into_iter());
        }
        // Table 0 holds only IPv4 prefixes and table 1 only IPv6 ones, so
        // one after the other is the whole order.
        Box::new(
            self.tables
                .iter()
                .flat_map(move |t| t.dests.keys_from(start))
                .filter_map(|p| self.best(&p).map(|b| (p, b))),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tabby_bgp::Asn;

    use super::*;
    use crate::types::{LocalRoute, RibConfig};

    #[test]
    fn best_routes_from_matches_the_sorted_table_from_any_start() {
        let mut rib = Rib::new(RibConfig::new(Ipv4Addr::new(192, 0, 2, 1), Asn(64512)));
        let prefixes: Vec<IpNet> = [
            "100.64.0.0/26",
            "198.18.0.0/15",
            "2001:db8::/48",
            "100.64.0.0/16",
            "0.0.0.0/0",
            "2001:db8::/64",
            "100.64.0.64/26",
            "::/0",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for p in &prefixes {
            rib.originate(*p, "test", LocalRoute::default());
        }
        rib.withdraw_local("198.18.0.0/15".parse().unwrap(), "test");
        let all = rib.best_routes();
        assert_eq!(all.len(), prefixes.len() - 1);
        let sorted: Vec<_> = rib.best_routes_from(Bound::Unbounded).collect();
        assert_eq!(sorted, all, "without the index, by sorting");
        rib.keep_prefix_order();
        let listed: Vec<_> = rib.best_routes_from(Bound::Unbounded).collect();
        assert_eq!(listed, all);
        for s in prefixes.iter().chain(&["198.18.0.0/15".parse().unwrap()]) {
            let from: Vec<IpNet> = rib
                .best_routes_from(Bound::Excluded(*s))
                .map(|(p, _)| p)
                .collect();
            let want: Vec<IpNet> = all.iter().map(|(p, _)| *p).filter(|p| p > s).collect();
            assert_eq!(from, want, "after {s}");
            let from: Vec<IpNet> = rib
                .best_routes_from(Bound::Included(*s))
                .map(|(p, _)| p)
                .collect();
            let want: Vec<IpNet> = all.iter().map(|(p, _)| *p).filter(|p| p >= s).collect();
            assert_eq!(from, want, "from {s}");
        }
    }
}
