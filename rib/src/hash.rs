//! A small, fast, non-cryptographic hasher for the RIB's internal maps.
//!
//! Keys are prefixes and pointers chosen by us or by authenticated peers; a
//! peer can at worst degrade one table's lookups, the same exposure BIRD and
//! FRR accept with their own hash tables. SipHash costs a measurable share of
//! ingest time, so the hot maps use this multiply-rotate hash instead.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Multiply-rotate hasher (the scheme rustc uses for its own tables).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // A final avalanche so the low bits hashbrown uses are well mixed.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

pub type FastBuild = BuildHasherDefault<FastHasher>;
pub type FastMap<K, V> = HashMap<K, V, FastBuild>;
pub type FastSet<K> = HashSet<K, FastBuild>;

/// Hasher for prefix-keyed tables that keeps neighbouring prefixes of one
/// length in neighbouring buckets: the bucket comes from the network number
/// (address bits above the length), so an UPDATE's run of adjacent prefixes
/// touches adjacent memory instead of a cache miss each. The top seven bits
/// (hashbrown's tag) mix the length and low network bits so that lookups in
/// a group rarely compare keys in vain. Distinct prefixes share a network
/// number only across lengths (at most 33 for IPv4), so chains stay short.
///
/// It recognises `IpNet`'s `Hash` calls (address as `u32`/`u128`, length as
/// `u8`); anything else is folded in generically, which stays correct and
/// only loses locality.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrefixHasher {
    addr: u128,
    v6: bool,
    len: u8,
    other: u64,
}

impl Hasher for PrefixHasher {
    fn write(&mut self, bytes: &[u8]) {
        // `Ipv4Addr`/`Ipv6Addr` hash their octets.
        if let Ok(a) = <[u8; 4]>::try_from(bytes) {
            self.addr = u32::from_be_bytes(a) as u128;
            self.v6 = false;
        } else if let Ok(a) = <[u8; 16]>::try_from(bytes) {
            self.addr = u128::from_be_bytes(a);
            self.v6 = true;
        } else {
            for b in bytes {
                self.other = (self.other.rotate_left(5) ^ *b as u64).wrapping_mul(SEED);
            }
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.len = i;
    }
    // `Ipv4Addr`/`Ipv6Addr` hash their octets as a native-endian integer.
    fn write_u32(&mut self, i: u32) {
        self.addr = u32::from_be_bytes(i.to_ne_bytes()) as u128;
        self.v6 = false;
    }
    fn write_u128(&mut self, i: u128) {
        self.addr = u128::from_be_bytes(i.to_ne_bytes());
        self.v6 = true;
    }
    fn write_u64(&mut self, i: u64) {
        // The enum discriminant (or anything unexpected).
        self.other = (self.other.rotate_left(5) ^ i).wrapping_mul(SEED);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_isize(&mut self, i: isize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        let len = self.len.min(if self.v6 { 128 } else { 32 }) as u32;
        let net: u64 = if self.v6 {
            let n = if len == 0 {
                0
            } else {
                self.addr >> (128 - len)
            };
            // Fold the bits above 64 in without disturbing the low ones'
            // order for adjacent prefixes.
            (n as u64) ^ ((n >> 64) as u64).wrapping_mul(SEED)
        } else if len == 0 {
            0
        } else {
            (self.addr as u64) >> (32 - len)
        };
        let tag = ((net & 0x7f) ^ (len as u64).wrapping_mul(37) ^ (self.other >> 57)) & 0x7f;
        (tag << 57) | (net & ((1 << 57) - 1))
    }
}

pub type PrefixBuild = BuildHasherDefault<PrefixHasher>;
pub type PrefixMap<V> = HashMap<ipnet::IpNet, V, PrefixBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn prefixes_spread_over_buckets() {
        let b = FastBuild::default();
        let mut low = std::collections::HashSet::new();
        let mut top = std::collections::HashSet::new();
        for i in 0..100_000u32 {
            let p: ipnet::IpNet = ipnet::IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0x6440_0000u32 + (i << 5)), 27)
                    .unwrap(),
            );
            let h = b.hash_one(p);
            low.insert(h & 0x1_FFFF);
            top.insert(h >> 57);
        }
        // 100k keys into 128k buckets: most buckets distinct.
        assert!(
            low.len() > 60_000,
            "only {} distinct low-bit buckets",
            low.len()
        );
        assert_eq!(top.len(), 128);
    }

    #[test]
    fn prefix_hash_keeps_neighbours_together() {
        let b = PrefixBuild::default();
        let p = |i: u32, len: u8| {
            ipnet::IpNet::V4(
                ipnet::Ipv4Net::new(
                    std::net::Ipv4Addr::from(0x6440_0000u32 + (i << (32 - len))),
                    len,
                )
                .unwrap(),
            )
        };
        let low = |h: u64| h & ((1 << 57) - 1);
        let h0 = b.hash_one(p(0, 27));
        let h1 = b.hash_one(p(1, 27));
        assert_eq!(low(h1), low(h0) + 1, "adjacent /27s must be adjacent");
        assert_ne!(b.hash_one(p(0, 24)), b.hash_one(p(0, 27)));
        let v6a: ipnet::IpNet = "2001:db8:1000::/64".parse().unwrap();
        let v6b: ipnet::IpNet = "2001:db8:1000:1::/64".parse().unwrap();
        assert_eq!(low(b.hash_one(v6b)), low(b.hash_one(v6a)) + 1);
        // Equal keys hash equally whatever the path taken.
        assert_eq!(b.hash_one(p(5, 26)), b.hash_one(p(5, 26)));
    }
}
