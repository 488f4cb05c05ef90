//! Why routes left: each prefix that lost its best path when BFD closed a
//! session, for `route explain`. Bounded: the oldest records go first.

use std::collections::{HashMap, VecDeque};

use ipnet::IpNet;
use tabby_api::model as am;

/// Records kept at most (a few MiB at worst).
pub const CAPACITY: usize = 65_536;

#[derive(Debug, Default)]
pub struct Departures {
    by_prefix: HashMap<IpNet, am::RouteDeparture>,
    /// Prefixes in the order recorded; a prefix recorded again appears
    /// twice, and its older entry is skipped on eviction.
    order: VecDeque<(IpNet, u64)>,
    seq: u64,
    seq_of: HashMap<IpNet, u64>,
}

impl Departures {
    pub fn record(&mut self, prefix: IpNet, d: am::RouteDeparture) {
        self.seq += 1;
        self.by_prefix.insert(prefix, d);
        self.seq_of.insert(prefix, self.seq);
        self.order.push_back((prefix, self.seq));
        while self.by_prefix.len() > CAPACITY {
            let Some((p, s)) = self.order.pop_front() else {
                break;
            };
            if self.seq_of.get(&p) == Some(&s) {
                self.by_prefix.remove(&p);
                self.seq_of.remove(&p);
            }
        }
        // Drop superseded entries once they outnumber the live ones
        // (amortised: at most once per CAPACITY records).
        if self.order.len() > 2 * CAPACITY {
            let seq_of = &self.seq_of;
            self.order.retain(|(p, s)| seq_of.get(p) == Some(s));
        }
    }

    /// The last departure recorded for `prefix`.
    pub fn of(&self, prefix: &IpNet) -> Option<&am::RouteDeparture> {
        self.by_prefix.get(prefix)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(n: u64) -> am::RouteDeparture {
        am::RouteDeparture {
            peer: "198.18.0.1".parse().unwrap(),
            at_unix_seconds: n,
            reason: "BFD went down".into(),
            withdrawn: true,
        }
    }

    #[test]
    fn keeps_the_last_record_per_prefix_and_evicts_the_oldest() {
        let mut d = Departures::default();
        let p = |i: u32| {
            IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(
                0x6440_0000 + i,
            )))
        };
        d.record(p(0), dep(1));
        d.record(p(0), dep(2));
        assert_eq!(d.of(&p(0)).unwrap().at_unix_seconds, 2);
        for i in 1..=CAPACITY as u32 {
            d.record(p(i), dep(3));
        }
        assert_eq!(d.len(), CAPACITY);
        assert!(d.of(&p(0)).is_none(), "the oldest went first");
        assert!(d.of(&p(1)).is_some());
        // Re-recorded entries don't grow the queue without bound.
        for _ in 0..3 * CAPACITY {
            d.record(p(1), dep(4));
        }
        assert!(d.order.len() <= 2 * CAPACITY);
        assert_eq!(d.of(&p(1)).unwrap().at_unix_seconds, 4);
        assert!(d.of(&p(2)).is_some(), "live records survive compaction");
        assert_eq!(d.len(), CAPACITY);
    }
}
