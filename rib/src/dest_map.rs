//! Prefix-keyed tables that stay compact at a million prefixes.
//!
//! A `HashMap<IpNet, V>` keeps key and value in its buckets and sizes the
//! bucket array to the power of two above 8/7 of the count: a million
//! prefixes take two million buckets, and growing copies the whole table
//! while the old one is still allocated. A [`DestMap`] keeps entries in a
//! `Vec` of stable slots (a freed slot is reused) and maps prefixes to slots
//! through a `hashbrown::HashTable<u32>`, whose buckets are five octets. The
//! entry vector grows in place (`realloc` moves large blocks by remapping
//! pages), IPv4 keys are one `u64` instead of an 18-octet `IpNet`, and a slot
//! number ([`DestId`], four octets) lets other tables refer to an entry
//! without a probe.
//!
//! Once asked for ([`DestMap::ensure_order`], by the first paged listing),
//! each family also keeps its compact keys in a `BTreeSet` so that the table
//! can be read in prefix order from any prefix on without sorting it. It
//! costs 15-20 octets a prefix for IPv4 and 40-50 for IPv6 (measured on 100k
//! prefixes inserted shuffled and in order) and a B-tree insert or removal
//! when a prefix appears or goes, so a table nobody lists (a reflector's
//! million routes) does not pay for it.

use hashbrown::HashTable;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Bound;

/// A slot of a [`DestMap`]: the top bit says IPv6, the rest is the slot.
/// Valid until the entry is removed; then the number may be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DestId(u32);

const V6_BIT: u32 = 1 << 31;

impl DestId {
    fn new(v6: bool, slot: u32) -> Self {
        DestId(if v6 { slot | V6_BIT } else { slot })
    }
    pub fn is_v6(self) -> bool {
        self.0 & V6_BIT != 0
    }
    pub fn from_parts(v6: bool, slot: usize) -> Self {
        DestId::new(v6, slot as u32)
    }
    /// The slot within its family.
    pub fn slot(self) -> usize {
        (self.0 & !V6_BIT) as usize
    }
    /// 0 for IPv4, 1 for IPv6 (the Loc-RIB table index).
    pub fn fam_idx(self) -> usize {
        usize::from(self.is_v6())
    }
}

/// A compact prefix key with a reserved "vacant slot" value. Keys order as
/// their prefixes do (`IpNet`'s order: address, then length).
trait SlotKey: Copy + Ord {
    const VACANT: Self;
    fn net(self) -> IpNet;
    /// Neighbouring prefixes of one length get neighbouring buckets (a run
    /// of adjacent prefixes in an UPDATE touches adjacent memory); the top
    /// seven bits, hashbrown's tag, mix the length and the low network bits
    /// so that a probe rarely compares keys in vain.
    fn hash(self) -> u64;
}

fn spread(net: u64, len: u32) -> u64 {
    let tag = ((net & 0x7f) ^ u64::from(len).wrapping_mul(37)) & 0x7f;
    (tag << 57) | (net & ((1 << 57) - 1))
}

/// IPv4: address in bits 8..40, length in bits 0..8 (so the integer order
/// is the prefix order).
type V4Key = u64;

fn v4_key(p: &Ipv4Net) -> V4Key {
    (u64::from(u32::from(p.addr())) << 8) | u64::from(p.prefix_len())
}

impl SlotKey for V4Key {
    const VACANT: Self = u64::MAX;
    fn net(self) -> IpNet {
        let addr = Ipv4Addr::from((self >> 8) as u32);
        // Keys are only made from valid prefixes: the length is at most 32.
        Ipv4Net::new(addr, (self & 0xff) as u8)
            .map(IpNet::V4)
            .unwrap_or_else(|_| IpNet::V4(Ipv4Net::default()))
    }
    fn hash(self) -> u64 {
        let len = (self & 0xff) as u32;
        let addr = self >> 8;
        let net = if len == 0 {
            0
        } else {
            addr >> (32 - len.min(32))
        };
        spread(net, len)
    }
}

/// The derived order (high half, low half, length) is the prefix order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct V6Key {
    addr: [u64; 2],
    len: u8,
}

fn v6_key(p: &Ipv6Net) -> V6Key {
    let a = u128::from(p.addr());
    V6Key {
        addr: [(a >> 64) as u64, a as u64],
        len: p.prefix_len(),
    }
}

impl SlotKey for V6Key {
    const VACANT: Self = V6Key {
        addr: [0, 0],
        len: u8::MAX,
    };
    fn net(self) -> IpNet {
        let a = (u128::from(self.addr[0]) << 64) | u128::from(self.addr[1]);
        Ipv6Net::new(Ipv6Addr::from(a), self.len)
            .map(IpNet::V6)
            .unwrap_or_else(|_| IpNet::V6(Ipv6Net::default()))
    }
    fn hash(self) -> u64 {
        let len = u32::from(self.len.min(128));
        let a = (u128::from(self.addr[0]) << 64) | u128::from(self.addr[1]);
        let n = if len == 0 { 0 } else { a >> (128 - len) };
        // Fold the high half in without disturbing the low bits' order.
        let net = (n as u64) ^ ((n >> 64) as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        spread(net, len)
    }
}

/// One family's slots.
#[derive(Debug)]
struct SlotMap<K, V> {
    index: HashTable<u32>,
    entries: Vec<(K, V)>,
    free: Vec<u32>,
    /// The keys of `index`, in prefix order, once asked for.
    order: Option<BTreeSet<K>>,
}

impl<K, V> Default for SlotMap<K, V> {
    fn default() -> Self {
        SlotMap {
            index: HashTable::new(),
            entries: Vec::new(),
            free: Vec::new(),
            order: None,
        }
    }
}

impl<K: SlotKey, V: Default> SlotMap<K, V> {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn find(&self, k: K) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(k.hash(), |&i| entries[i as usize].0 == k)
            .map(|&i| i as usize)
    }

    fn get(&self, k: K) -> Option<&V> {
        self.find(k).map(|i| &self.entries[i].1)
    }

    /// The slot of `k`, created with a default value if absent.
    fn slot(&mut self, k: K) -> usize {
        let entries = &self.entries;
        let next = self.free.last().map_or(entries.len(), |&i| i as usize);
        match self.index.entry(
            k.hash(),
            |&i| entries[i as usize].0 == k,
            |&i| entries[i as usize].0.hash(),
        ) {
            hashbrown::hash_table::Entry::Occupied(o) => *o.get() as usize,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(next as u32);
                if let Some(o) = self.order.as_mut() {
                    o.insert(k);
                }
                if next == self.entries.len() {
                    self.entries.push((k, V::default()));
                } else {
                    self.free.pop();
                    self.entries[next] = (k, V::default());
                }
                next
            }
        }
    }

    fn remove(&mut self, k: K) -> Option<V> {
        let entries = &self.entries;
        let i = match self
            .index
            .find_entry(k.hash(), |&i| entries[i as usize].0 == k)
        {
            Ok(o) => o.remove().0 as usize,
            Err(_) => return None,
        };
        if let Some(o) = self.order.as_mut() {
            o.remove(&k);
        }
        Some(self.vacate(i))
    }

    fn remove_at(&mut self, i: usize) -> Option<V> {
        let k = self.entries.get(i)?.0;
        if k == K::VACANT {
            return None;
        }
        self.remove(k)
    }

    fn vacate(&mut self, i: usize) -> V {
        let (k, v) = std::mem::replace(&mut self.entries[i], (K::VACANT, V::default()));
        debug_assert!(k != K::VACANT);
        if self.index.is_empty() {
            // Emptied (a peer's table flushed): give the memory back, and
            // keep an ordered index if one was kept.
            let keep_order = self.order.is_some();
            *self = SlotMap::default();
            if keep_order {
                self.order = Some(BTreeSet::new());
            }
        } else {
            self.free.push(i as u32);
        }
        v
    }

    fn at(&self, i: usize) -> Option<(IpNet, &V)> {
        match self.entries.get(i) {
            Some((k, v)) if *k != K::VACANT => Some((k.net(), v)),
            _ => None,
        }
    }

    fn iter(&self) -> impl Iterator<Item = (usize, IpNet, &V)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| *k != K::VACANT)
            .map(|(i, (k, v))| (i, k.net(), v))
    }

    fn keeps_order(&self) -> bool {
        self.order.is_some()
    }

    /// Builds the ordered key index if it is not kept yet.
    fn ensure_order(&mut self) {
        if self.order.is_none() {
            let keys = self.entries.iter().map(|(k, _)| *k);
            self.order = Some(keys.filter(|k| *k != K::VACANT).collect());
        }
    }

    /// The prefixes from `start` on, in order (none before
    /// [`SlotMap::ensure_order`]).
    fn keys_from(&self, start: Bound<K>) -> impl Iterator<Item = IpNet> + '_ {
        // An unbounded end: `range` cannot panic on inverted bounds.
        self.order
            .iter()
            .flat_map(move |o| o.range((start, Bound::Unbounded)))
            .map(|k| k.net())
    }
}

/// A prefix-keyed table; see the module documentation. Iteration order is
/// slot order (roughly insertion order), not prefix order.
#[derive(Debug)]
pub(crate) struct DestMap<V> {
    v4: SlotMap<V4Key, V>,
    v6: SlotMap<V6Key, V>,
}

impl<V> Default for DestMap<V> {
    fn default() -> Self {
        DestMap {
            v4: SlotMap::default(),
            v6: SlotMap::default(),
        }
    }
}

impl<V: Default> DestMap<V> {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn get(&self, p: &IpNet) -> Option<&V> {
        match p {
            IpNet::V4(n) => self.v4.get(v4_key(n)),
            IpNet::V6(n) => self.v6.get(v6_key(n)),
        }
    }

    /// The entry of `p` and its slot, if present.
    pub fn get_with_id(&mut self, p: &IpNet) -> Option<(DestId, &mut V)> {
        match p {
            IpNet::V4(n) => {
                let i = self.v4.find(v4_key(n))?;
                Some((DestId::new(false, i as u32), &mut self.v4.entries[i].1))
            }
            IpNet::V6(n) => {
                let i = self.v6.find(v6_key(n))?;
                Some((DestId::new(true, i as u32), &mut self.v6.entries[i].1))
            }
        }
    }

    /// The entry of `p`, created with a default value if absent.
    pub fn entry(&mut self, p: &IpNet) -> (DestId, &mut V) {
        match p {
            IpNet::V4(n) => {
                let i = self.v4.slot(v4_key(n));
                (DestId::new(false, i as u32), &mut self.v4.entries[i].1)
            }
            IpNet::V6(n) => {
                let i = self.v6.slot(v6_key(n));
                (DestId::new(true, i as u32), &mut self.v6.entries[i].1)
            }
        }
    }

    pub fn remove(&mut self, p: &IpNet) -> Option<V> {
        match p {
            IpNet::V4(n) => self.v4.remove(v4_key(n)),
            IpNet::V6(n) => self.v6.remove(v6_key(n)),
        }
    }

    pub fn remove_id(&mut self, id: DestId) -> Option<V> {
        if id.is_v6() {
            self.v6.remove_at(id.slot())
        } else {
            self.v4.remove_at(id.slot())
        }
    }

    pub fn at(&self, id: DestId) -> Option<(IpNet, &V)> {
        if id.is_v6() {
            self.v6.at(id.slot())
        } else {
            self.v4.at(id.slot())
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> {
        self.iter_ids().map(|(_, p, v)| (p, v))
    }

    pub fn iter_ids(&self) -> impl Iterator<Item = (DestId, IpNet, &V)> {
        self.v4
            .iter()
            .map(|(i, p, v)| (DestId::new(false, i as u32), p, v))
            .chain(
                self.v6
                    .iter()
                    .map(|(i, p, v)| (DestId::new(true, i as u32), p, v)),
            )
    }

    pub fn keys(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.iter().map(|(p, _)| p)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// True once [`DestMap::ensure_order`] was called.
    pub fn keeps_order(&self) -> bool {
        self.v4.keeps_order() && self.v6.keeps_order()
    }

    /// Keeps an ordered index of the prefixes from now on (built now if it
    /// is not kept yet), for [`DestMap::keys_from`].
    pub fn ensure_order(&mut self) {
        self.v4.ensure_order();
        self.v6.ensure_order();
    }

    /// The prefixes held, in `IpNet` order (IPv4 before IPv6, then address,
    /// then length), from `start` on. Empty until
    /// [`DestMap::ensure_order`] was called once.
    pub fn keys_from(&self, start: Bound<IpNet>) -> impl Iterator<Item = IpNet> + '_ {
        // Where each family starts; `None`: not at all (IPv4 keys all
        // precede an IPv6 start).
        let (v4, v6) = match start {
            Bound::Unbounded => (Some(Bound::Unbounded), Bound::Unbounded),
            Bound::Included(IpNet::V4(n)) => (Some(Bound::Included(v4_key(&n))), Bound::Unbounded),
            Bound::Excluded(IpNet::V4(n)) => (Some(Bound::Excluded(v4_key(&n))), Bound::Unbounded),
            Bound::Included(IpNet::V6(n)) => (None, Bound::Included(v6_key(&n))),
            Bound::Excluded(IpNet::V6(n)) => (None, Bound::Excluded(v6_key(&n))),
        };
        v4.into_iter()
            .flat_map(|b| self.v4.keys_from(b))
            .chain(self.v6.keys_from(v6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets() -> Vec<IpNet> {
        [
            "0.0.0.0/0",
            "255.255.255.255/32",
            "100.64.1.0/24",
            "100.64.1.0/26",
            "100.64.1.64/26",
            "::/0",
            "2001:db8::/48",
            "2001:db8::/64",
            "2001:db8:1000:ffff::1/128",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
    }

    #[test]
    fn keys_round_trip_and_stay_distinct() {
        let mut m: DestMap<u32> = DestMap::default();
        for (i, p) in nets().iter().enumerate() {
            *m.entry(p).1 = i as u32 + 1;
        }
        assert_eq!(m.len(), nets().len());
        for (i, p) in nets().iter().enumerate() {
            assert_eq!(m.get(p), Some(&(i as u32 + 1)), "{p}");
            let (id, v) = m.get_with_id(p).unwrap();
            assert_eq!(*v, i as u32 + 1);
            assert_eq!(m.at(id).map(|(q, _)| q), Some(*p));
            assert_eq!(id.is_v6(), matches!(p, IpNet::V6(_)));
        }
        let mut seen: Vec<IpNet> = m.keys().collect();
        seen.sort();
        let mut want = nets();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn freed_slots_are_reused_and_ids_stay_valid() {
        let mut m: DestMap<u32> = DestMap::default();
        let n = nets();
        let ids: Vec<DestId> = n.iter().map(|p| m.entry(p).0).collect();
        assert_eq!(m.remove(&n[2]), Some(0));
        assert_eq!(m.get(&n[2]), None);
        assert!(m.at(ids[2]).is_none(), "a removed slot reads as vacant");
        assert_eq!(m.remove_id(ids[2]), None, "removing twice is a no-op");
        // Other entries keep their slots.
        assert_eq!(m.at(ids[3]).map(|(p, _)| p), Some(n[3]));
        let q: IpNet = "198.19.0.0/16".parse().unwrap();
        let (id, _) = m.entry(&q);
        assert_eq!(id, ids[2], "the freed IPv4 slot is reused");
        assert_eq!(m.len(), n.len());
        assert_eq!(m.remove_id(ids[3]), Some(0));
        assert_eq!(m.get(&n[3]), None);
    }

    #[test]
    fn emptied_table_gives_memory_back_and_refills() {
        let mut m: DestMap<u32> = DestMap::default();
        let ps: Vec<IpNet> = (0..5000u32)
            .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x6440_0000 + (i << 2)), 30).unwrap()))
            .collect();
        for (i, p) in ps.iter().enumerate() {
            *m.entry(p).1 = i as u32;
        }
        assert_eq!(m.len(), 5000);
        for (i, p) in ps.iter().enumerate() {
            assert_eq!(m.get(p), Some(&(i as u32)));
        }
        for p in &ps {
            assert!(m.remove(p).is_some());
        }
        assert_eq!(m.len(), 0);
        assert_eq!(m.v4.entries.capacity(), 0);
        assert_eq!(m.iter().count(), 0);
        *m.entry(&ps[7]).1 = 9;
        assert_eq!(m.get(&ps[7]), Some(&9));
    }

    #[test]
    fn keys_from_reads_in_prefix_order_from_any_start() {
        let mut m: DestMap<u32> = DestMap::default();
        let all = nets();
        let (before, after) = all.split_at(all.len() / 2);
        for p in before.iter().rev() {
            m.entry(p);
        }
        assert_eq!(
            m.keys_from(Bound::Unbounded).count(),
            0,
            "no index until asked"
        );
        // Built from what is there, then kept as prefixes come and go.
        m.ensure_order();
        for p in after.iter().rev() {
            m.entry(p);
        }
        let gone: IpNet = "100.64.1.0/26".parse().unwrap();
        m.remove(&gone);
        let mut want = nets();
        want.retain(|p| *p != gone);
        want.sort();
        assert_eq!(m.keys_from(Bound::Unbounded).collect::<Vec<_>>(), want);
        // From every held prefix, one removed, and ones never held
        // (between, before and after the others, with host bits).
        let mut starts = nets();
        starts.extend(
            [
                "100.64.1.1/24",
                "0.0.0.0/1",
                "::/0",
                "2001:db8::/56",
                "ffff::/16",
            ]
            .iter()
            .map(|s| s.parse::<IpNet>().unwrap()),
        );
        for s in starts {
            let inc: Vec<IpNet> = want.iter().copied().filter(|p| *p >= s).collect();
            let exc: Vec<IpNet> = want.iter().copied().filter(|p| *p > s).collect();
            assert_eq!(
                m.keys_from(Bound::Included(s)).collect::<Vec<_>>(),
                inc,
                "{s}"
            );
            assert_eq!(
                m.keys_from(Bound::Excluded(s)).collect::<Vec<_>>(),
                exc,
                "{s}"
            );
        }
        // Emptied and refilled, the order follows.
        for p in nets() {
            m.remove(&p);
        }
        assert_eq!(m.keys_from(Bound::Unbounded).count(), 0);
        m.entry(&gone);
        assert_eq!(
            m.keys_from(Bound::Unbounded).collect::<Vec<_>>(),
            vec![gone]
        );
    }

    #[test]
    fn adjacent_prefixes_hash_to_adjacent_buckets() {
        let p = |i: u32| v4_key(&Ipv4Net::new(Ipv4Addr::from(0x6440_0000 + (i << 5)), 27).unwrap());
        let low = |h: u64| h & ((1 << 57) - 1);
        assert_eq!(low(p(1).hash()), low(p(0).hash()) + 1);
        let a = v6_key(&"2001:db8:1000::/64".parse().unwrap());
        let b = v6_key(&"2001:db8:1000:1::/64".parse().unwrap());
        assert_eq!(low(b.hash()), low(a.hash()) + 1);
    }
}
