//! Reading the Loc-RIB in prefix order from any prefix on, so that a reader
//! (the API's paged route listing) takes one page without building or
//! sorting the whole table. The order comes from the per-family key index of
//! [`crate::dest_map::DestMap`].

use std::ops::Bound;

use ipnet::IpNet;

use crate::rib::Rib;
use crate::types::BestRoute;

impl Rib {
    /// The prefixes with a usable route and their best routes, as
    /// [`Rib::best_routes`] has them but lazily and from `start` on: in
    /// `IpNet` order (IPv4 before IPv6, then address, then length). Each
    /// item taken costs a lookup and one [`BestRoute`]; prefixes without a
    /// usable path are passed over.
    pub fn best_routes_from(
        &self,
        start: Bound<IpNet>,
    ) -> impl Iterator<Item = (IpNet, BestRoute)> + '_ {
        // Table 0 holds only IPv4 prefixes and table 1 only IPv6 ones, so
        // one after the other is the whole order.
        self.tables
            .iter()
            .flat_map(move |t| t.dests.keys_from(start))
            .filter_map(|p| self.best(&p).map(|b| (p, b)))
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
            "10.0.0.0/8",
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
        rib.withdraw_local("10.0.0.0/8".parse().unwrap(), "test");
        let all = rib.best_routes();
        assert_eq!(all.len(), prefixes.len() - 1);
        let listed: Vec<_> = rib.best_routes_from(Bound::Unbounded).collect();
        assert_eq!(listed, all);
        for s in prefixes.iter().chain(&["10.0.0.0/8".parse().unwrap()]) {
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
