//! What the churn driver changes: every node's desired set of local routes
//! and the next change to it, drawn from a seeded generator so that two runs
//! (and the Tabby and BIRD clusters) see the same kind of load.
//!
//! Address plan: node `i` owns the /18 `100.64.0.0 + i·2¹⁴` (so at most 256
//! nodes fit in 100.64.0.0/10). Its first /26 is its permanent block; blocks
//! that come and go are the other /26s of its /18. A borrowed /32 is an
//! address from the upper half of another node's /18 (a pod whose address
//! came from a block affine to another node, announced by the node it runs
//! on).

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use anyhow::{Result, bail};
use ipnet::{IpNet, Ipv4Net};

/// The most nodes the address plan holds.
pub const MAX_NODES: usize = 256;
/// The pool every node's routes come from (Calico exports only pool routes).
pub const POOL: &str = "100.64.0.0/10";
/// Extra routes a node holds on average: a change removes one with
/// probability `extra / (extra + MEAN_EXTRA)`, else adds one.
const MEAN_EXTRA: f64 = 4.0;
/// Of the additions, this share are blocks (the rest borrowed /32s).
const BLOCK_SHARE: f64 = 0.25;
/// Draws before an addition gives up on finding a free prefix.
const TRIES: usize = 16;

/// splitmix64: small, seeded, good enough to spread load.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn node_base(i: usize) -> u32 {
    u32::from(Ipv4Addr::new(100, 64, 0, 0)) + ((i as u32) << 14)
}

/// Node `i`'s permanent block (its first /26).
pub fn node_block(i: usize) -> Result<Ipv4Net> {
    if i >= MAX_NODES {
        bail!("node {i}: the address plan holds {MAX_NODES} nodes");
    }
    Ok(Ipv4Net::new(Ipv4Addr::from(node_base(i)), 26)?)
}

/// Block `k` (1–255) of node `i`'s /18.
fn extra_block(i: usize, k: usize) -> Option<Ipv4Net> {
    Ipv4Net::new(Ipv4Addr::from(node_base(i) + ((k as u32) << 6)), 26).ok()
}

/// Address `a` (0–8191) of the upper half of node `i`'s /18, as a /32.
fn borrowed(i: usize, a: usize) -> Option<Ipv4Net> {
    Ipv4Net::new(Ipv4Addr::from(node_base(i) + 8192 + a as u32), 32).ok()
}

/// One change to one node's set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub node: usize,
    pub prefix: Ipv4Net,
    /// Added (true) or removed.
    pub add: bool,
    /// The node's whole set after the change, for `ReplaceRoutes` or a
    /// rewritten configuration.
    pub set: Vec<Ipv4Net>,
}

/// Every node's desired set, and who holds each prefix.
#[derive(Debug, Clone)]
pub struct Load {
    sets: Vec<BTreeSet<Ipv4Net>>,
    owner: HashMap<Ipv4Net, usize>,
    rng: Rng,
}

impl Load {
    /// `nodes` nodes, each with its permanent block.
    pub fn new(nodes: usize, seed: u64) -> Result<Load> {
        let mut sets = Vec::with_capacity(nodes);
        let mut owner = HashMap::new();
        for i in 0..nodes {
            let b = node_block(i)?;
            sets.push(BTreeSet::from([b]));
            owner.insert(b, i);
        }
        Ok(Load {
            sets,
            owner,
            rng: Rng::new(seed),
        })
    }

    pub fn nodes(&self) -> usize {
        self.sets.len()
    }

    /// Node `i`'s set now.
    pub fn set(&self, i: usize) -> Vec<Ipv4Net> {
        self.sets
            .get(i)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Routes held over all nodes.
    pub fn routes(&self) -> usize {
        self.owner.len()
    }

    /// Whether `prefix` belongs in node `j`'s kernel: another node holds it,
    /// or `j` holds it and it is a block (blackholed locally).
    pub fn wanted(&self, j: usize, prefix: &IpNet) -> bool {
        let IpNet::V4(p) = prefix else {
            return false;
        };
        match self.owner.get(p) {
            Some(&o) => o != j || p.prefix_len() < 32,
            None => false,
        }
    }

    /// Node `j`'s desired kernel routes (see [`Load::wanted`]).
    pub fn kernel(&self, j: usize) -> BTreeSet<IpNet> {
        self.owner
            .iter()
            .filter(|&(p, &o)| o != j || p.prefix_len() < 32)
            .map(|(p, _)| IpNet::V4(*p))
            .collect()
    }

    /// The next change: a random node among those `eligible`, then a
    /// removal or an addition of a prefix that is not `busy` (a prefix has
    /// at most one change in flight, so every kernel event maps to one
    /// change). `None` when no eligible node has a free move.
    pub fn next(
        &mut self,
        eligible: impl Fn(usize) -> bool,
        busy: impl Fn(&Ipv4Net) -> bool,
    ) -> Option<Change> {
        let n = self.sets.len();
        let start = self.rng.below(n);
        for step in 0..n {
            let node = (start + step) % n;
            if !eligible(node) {
                continue;
            }
            if let Some(c) = self.change_on(node, &busy) {
                return Some(c);
            }
        }
        None
    }

    fn change_on(&mut self, node: usize, busy: &impl Fn(&Ipv4Net) -> bool) -> Option<Change> {
        let permanent = node_block(node).ok()?;
        let removable: Vec<Ipv4Net> = self.sets[node]
            .iter()
            .filter(|p| **p != permanent && !busy(p))
            .copied()
            .collect();
        let extra = self.sets[node].len().saturating_sub(1) as f64;
        let remove = !removable.is_empty() && self.rng.unit() < extra / (extra + MEAN_EXTRA);
        if remove {
            let p = removable[self.rng.below(removable.len())];
            self.sets[node].remove(&p);
            self.owner.remove(&p);
            return Some(self.change(node, p, false));
        }
        let n = self.sets.len();
        for _ in 0..TRIES {
            let p = if self.rng.unit() < BLOCK_SHARE {
                extra_block(node, 1 + self.rng.below(255))
            } else if n > 1 {
                let other = (node + 1 + self.rng.below(n - 1)) % n;
                borrowed(other, self.rng.below(8192))
            } else {
                borrowed(node, self.rng.below(8192))
            };
            let Some(p) = p else { continue };
            if self.owner.contains_key(&p) || busy(&p) {
                continue;
            }
            self.sets[node].insert(p);
            self.owner.insert(p, node);
            return Some(self.change(node, p, true));
        }
        None
    }

    fn change(&self, node: usize, prefix: Ipv4Net, add: bool) -> Change {
        Change {
            node,
            prefix,
            add,
            set: self.set(node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_plan() {
        assert_eq!(node_block(0).unwrap().to_string(), "100.64.0.0/26");
        assert_eq!(node_block(1).unwrap().to_string(), "100.64.64.0/26");
        assert_eq!(node_block(255).unwrap().to_string(), "100.127.192.0/26");
        assert!(node_block(256).is_err());
        assert_eq!(
            extra_block(1, 255).unwrap().to_string(),
            "100.64.127.192/26"
        );
        assert_eq!(borrowed(1, 8191).unwrap().to_string(), "100.64.127.255/32");
        let pool: Ipv4Net = POOL.parse().unwrap();
        assert!(pool.contains(&extra_block(255, 255).unwrap()));
    }

    #[test]
    fn changes_keep_sets_and_owners_consistent() {
        let mut l = Load::new(5, 7).unwrap();
        let mut adds = 0;
        for _ in 0..2000 {
            let c = l.next(|_| true, |_| false).unwrap();
            assert_eq!(c.set, l.set(c.node));
            assert_eq!(c.set.contains(&c.prefix), c.add);
            assert!(c.set.contains(&node_block(c.node).unwrap()));
            adds += usize::from(c.add);
        }
        // Removals balance additions around MEAN_EXTRA per node.
        let extra = l.routes() - 5;
        assert!(extra < 5 * 20, "{extra} extra routes");
        assert!(adds > 800 && adds < 1200 + extra, "{adds} additions");
        let total: usize = (0..5).map(|i| l.set(i).len()).sum();
        assert_eq!(total, l.routes());
    }

    #[test]
    fn kernel_holds_others_routes_and_own_blocks() {
        let mut l = Load::new(3, 1).unwrap();
        for _ in 0..50 {
            l.next(|_| true, |_| false);
        }
        for j in 0..3 {
            let k = l.kernel(j);
            for i in 0..3 {
                for p in l.set(i) {
                    let want = i != j || p.prefix_len() < 32;
                    assert_eq!(k.contains(&IpNet::V4(p)), want, "{p} at {j}");
                    assert_eq!(l.wanted(j, &IpNet::V4(p)), want);
                }
            }
        }
    }

    #[test]
    fn busy_prefixes_and_ineligible_nodes_are_left_alone() {
        let mut l = Load::new(4, 3).unwrap();
        let first = l.next(|n| n == 2, |_| false).unwrap();
        assert_eq!(first.node, 2);
        for _ in 0..200 {
            let c = l.next(|n| n != 0, |p| *p == first.prefix).unwrap();
            assert_ne!(c.node, 0);
            assert_ne!(c.prefix, first.prefix);
        }
        assert!(l.next(|_| false, |_| false).is_none());
    }

    #[test]
    fn the_seed_fixes_the_sequence() {
        let run = |seed| {
            let mut l = Load::new(10, seed).unwrap();
            (0..100)
                .filter_map(|_| l.next(|_| true, |_| false))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }
}
