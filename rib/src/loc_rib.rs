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
use crate::dest_map::DestMap;

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
    /// Size of the ECMP set at the head of `paths` (0: no usable path).
    pub ecmp: u8,
    /// Queued for export processing.
    pub dirty: bool,
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
        for p in self.paths.iter().take(self.ecmp as usize) {
            out.push(SigEntry {
                source: p.source,
                path_id: p.path_id,
                attrs: Arc::as_ptr(&p.attrs) as usize,
                nh_cost: p.nh_cost,
                llgr: p.flags & flag::LLGR_STALE != 0,
            });
        }
    }

    pub fn best(&self) -> Option<&Path> {
        if self.ecmp > 0 {
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
            *p = path;
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
        self.ecmp = match keys.first() {
            None => 0,
            Some(k) if k.ineligible => 0,
            Some(k) if !k.remote => 1,
            Some(k) => {
                let n = keys.iter().take_while(|o| multipath_equal(k, o)).count();
                n.clamp(1, max_paths.clamp(1, 255)) as u8
            }
        };
    }
}

/// One address family's Loc-RIB.
#[derive(Debug, Default)]
pub(crate) struct LocRib {
    pub dests: DestMap<Dest>,
}

impl LocRib {
    pub fn path_count(&self) -> usize {
        self.dests.values().map(|d| d.paths.len()).sum()
    }
}
