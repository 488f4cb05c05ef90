//! The Loc-RIB: every candidate path per prefix, kept sorted by preference.
//!
//! A [`Dest`] holds its paths in decision order, so the best path is first
//! and the ECMP set is a prefix of the list. A path is 24 bytes: its shared
//! attributes, where it came from, its ADD-PATH id, the cost of its next hop
//! and a few flags. The post-policy Adj-RIB-In of each peer is the subset of
//! these paths with that source (no second copy).

use std::sync::Arc;

use smallvec::SmallVec;

use crate::attrs::RouteAttrs;
use crate::decision::{RankKey, multipath_equal, resolve_med};
use crate::dest_map::{DestId, DestMap};

/// `Path::source` of locally originated paths.
pub(crate) const LOCAL_SOURCE: u32 = u32::MAX;
/// `Path::nh_cost` of a path whose next hop is unreachable.
pub(crate) const UNREACHABLE: u32 = u32::MAX;

pub(crate) mod flag {
    /// RFC 4724: kept across the peer's restart, awaiting refresh.
    pub const STALE: u8 = 1;
    /// RFC 9494: long-lived stale, least preferred.
    pub const LLGR_STALE: u8 = 2;
    /// Next hop is martian or one of ours (CONFORMANCE row 17).
    pub const BAD_NEXT_HOP: u8 = 4;
}

#[derive(Debug, Clone)]
pub(crate) struct Path {
    pub attrs: Arc<RouteAttrs>,
    /// Peer slot, or [`LOCAL_SOURCE`].
    pub source: u32,
    /// Received ADD-PATH id (0 without ADD-PATH), or local owner id.
    pub path_id: u32,
    pub nh_cost: u32,
    pub flags: u8,
    /// Meaningful on the first path only: the size of the ECMP set at the
    /// head of the list (0: no usable path). Kept here, in what would be
    /// padding, so that a one-path [`Dest`] is 32 octets.
    pub ecmp: u8,
}

impl Path {
    pub fn is_local(&self) -> bool {
        self.source == LOCAL_SOURCE
    }
    pub fn eligible(&self) -> bool {
        self.nh_cost != UNREACHABLE && self.flags & flag::BAD_NEXT_HOP == 0
    }
}

/// One prefix of the Loc-RIB.
#[derive(Debug, Default)]
pub(crate) struct Dest {
    /// In decision order (best first) after every [`Dest::decide`]. Most
    /// prefixes have one path, held inline.
    pub paths: SmallVec<[Path; 1]>,
}

/// Identity of the selected set, to tell whether a change is visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SigEntry {
    source: u32,
    path_id: u32,
    attrs: usize,
    nh_cost: u32,
    llgr: bool,
}

impl Dest {
    /// Appends the selected set's identity to `out`.
    pub fn signature(&self, out: &mut Vec<SigEntry>) {
        out.clear();
        for p in self.paths.iter().take(self.ecmp() as usize) {
            out.push(SigEntry {
                source: p.source,
                path_id: p.path_id,
                attrs: Arc::as_ptr(&p.attrs) as usize,
                nh_cost: p.nh_cost,
                llgr: p.flags & flag::LLGR_STALE != 0,
            });
        }
    }

    /// Size of the ECMP set at the head of `paths` (0: no usable path).
    pub fn ecmp(&self) -> u8 {
        self.paths.first().map_or(0, |p| p.ecmp)
    }

    pub fn best(&self) -> Option<&Path> {
        if self.ecmp() > 0 {
            self.paths.first()
        } else {
            None
        }
    }

    /// Inserts or replaces (implicit withdraw, RFC 4271 §3.1) the path with
    /// the same source and path id. Returns true when something changed.
    pub fn upsert(&mut self, path: Path) -> bool {
        if let Some(p) = self
            .paths
            .iter_mut()
            .find(|p| p.source == path.source && p.path_id == path.path_id)
        {
            let same = Arc::ptr_eq(&p.attrs, &path.attrs)
                && p.nh_cost == path.nh_cost
                && p.flags == path.flags;
            let ecmp = p.ecmp;
            *p = Path { ecmp, ..path };
            !same
        } else {
            self.paths.push(path);
            true
        }
    }

    /// Removes the path with this source and path id.
    pub fn remove(&mut self, source: u32, path_id: u32) -> bool {
        match self
            .paths
            .iter()
            .position(|p| p.source == source && p.path_id == path_id)
        {
            Some(i) => {
                self.paths.remove(i);
                true
            }
            None => false,
        }
    }

    /// Runs the decision process: sorts `paths` best first and sets `ecmp`.
    /// `key` builds a path's [`RankKey`]; `keys` is scratch space.
    pub fn decide(
        &mut self,
        keys: &mut Vec<RankKey>,
        always_compare_med: bool,
        max_paths: usize,
        key: impl Fn(&Path) -> RankKey,
    ) {
        keys.clear();
        keys.extend(self.paths.iter().map(key));
        if keys.len() > 1 {
            resolve_med(keys, always_compare_med);
            // Insertion sort on both arrays: lists are short and mostly
            // sorted already (one path changed since the last decision).
            for i in 1..keys.len() {
                let mut j = i;
                while j > 0 && keys[j] < keys[j - 1] {
                    keys.swap(j, j - 1);
                    self.paths.swap(j, j - 1);
                    j -= 1;
                }
            }
        }
        let ecmp = match keys.first() {
            None => 0,
            Some(k) if k.ineligible => 0,
            Some(k) if !k.remote => 1,
            Some(k) => {
                let n = keys.iter().take_while(|o| multipath_equal(k, o)).count();
                n.clamp(1, max_paths.clamp(1, 255)) as u8
            }
        };
        if let Some(p) = self.paths.first_mut() {
            p.ecmp = ecmp;
        }
    }
}

/// One address family's Loc-RIB.
#[derive(Debug, Default)]
pub(crate) struct LocRib {
    pub dests: DestMap<Dest>,
    /// Prefixes queued for export, one bit per slot.
    pub queued: Queued,
}

/// A bit per Loc-RIB slot.
#[derive(Debug, Default)]
pub(crate) struct Queued(Vec<u64>);

impl Queued {
    pub fn get(&self, id: DestId) -> bool {
        let i = id.slot();
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn set(&mut self, id: DestId, on: bool) {
        let i = id.slot();
        if self.0.len() <= i / 64 {
            if !on {
                return;
            }
            self.0.resize(i / 64 + 1, 0);
        }
        if on {
            self.0[i / 64] |= 1 << (i % 64);
        } else {
            self.0[i / 64] &= !(1 << (i % 64));
        }
    }
}

impl LocRib {
    pub fn path_count(&self) -> usize {
        self.dests.values().map(|d| d.paths.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Loc-RIB's footprint at a million prefixes rests on these.
    #[test]
    fn one_path_destination_is_32_octets() {
        assert_eq!(std::mem::size_of::<Path>(), 24);
        assert_eq!(std::mem::size_of::<Dest>(), 32);
    }

    #[test]
    fn queued_bits_set_and_clear() {
        let mut q = Queued::default();
        let a = DestId::from_parts(false, 3);
        let b = DestId::from_parts(false, 200);
        assert!(!q.get(b));
        q.set(a, true);
        q.set(b, true);
        assert!(q.get(a) && q.get(b));
        assert!(!q.get(DestId::from_parts(false, 4)));
        q.set(a, false);
        assert!(!q.get(a) && q.get(b));
        q.set(DestId::from_parts(false, 100_000), false);
        assert!(!q.get(DestId::from_parts(false, 100_000)));
    }
}
