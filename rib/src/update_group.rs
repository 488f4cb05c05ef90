//! Adj-RIB-Out through update groups.
//!
//! Peers whose [`GroupKey`] is equal receive the same routes with the same
//! attributes in the same wire format (the key holds the codec context), so
//! a group computes each export and encodes each UPDATE once, into one
//! [`UpdateBatch`] per pass. The only per-member difference is split
//! horizon: a route is never sent back to the member it came from.
//! Reflected routes from different sources carry different attributes
//! (next hop, ORIGINATOR_ID) and so travel in different UPDATEs anyway;
//! the batch marks each such span with the one member that skips it.

use std::sync::Arc;

use ipnet::IpNet;
use smallvec::SmallVec;
use tabby_bgp::codec::{EncodeError, UpdateBatch};
use tabby_bgp::{Family, Nlri};
use tracing::warn;

use crate::attrs::RouteAttrs;
use crate::dest_map::DestId;
use crate::export::GroupKey;
use crate::hash::{FastMap, FastSet};
use crate::types::{Outgoing, PeerId, Recipients};

/// What a group has advertised for one path of a prefix.
#[derive(Debug, Clone)]
pub(crate) struct AdjOutEntry {
    /// ADD-PATH identifier sent (0 without ADD-PATH).
    pub tx_id: u32,
    pub source: u32,
    pub src_path_id: u32,
    pub attrs: Arc<RouteAttrs>,
}

/// What a group advertises for one prefix, in preference order.
pub(crate) type AdjOut = SmallVec<[AdjOutEntry; 1]>;

/// The one path a group without ADD-PATH advertises for a prefix.
#[derive(Debug, Clone)]
struct SingleOut {
    source: u32,
    attrs: Arc<RouteAttrs>,
}

impl SingleOut {
    /// As an entry list (no ADD-PATH ids).
    fn into_adj_out(self) -> AdjOut {
        smallvec::smallvec![AdjOutEntry {
            tx_id: 0,
            source: self.source,
            src_path_id: 0,
            attrs: self.attrs,
        }]
    }
}

/// One family's Adj-RIB-Out of a group, indexed by Loc-RIB slot. Without
/// ADD-PATH (the common case) a slot is 16 octets: a source and the
/// attributes sent, or nothing.
#[derive(Debug)]
enum AdjOutTable {
    Single(Vec<Option<SingleOut>>),
    /// ADD-PATH: every path sent, with its path id.
    Multi(Vec<AdjOut>),
}

impl AdjOutTable {
    fn new(add_path: bool) -> Self {
        if add_path {
            AdjOutTable::Multi(Vec::new())
        } else {
            AdjOutTable::Single(Vec::new())
        }
    }

    /// The entries at `slot`, moved out (empty if none).
    fn take(&mut self, slot: usize) -> AdjOut {
        match self {
            AdjOutTable::Single(v) => v
                .get_mut(slot)
                .and_then(Option::take)
                .map(SingleOut::into_adj_out)
                .unwrap_or_default(),
            AdjOutTable::Multi(v) => v.get_mut(slot).map(std::mem::take).unwrap_or_default(),
        }
    }

    /// Stores `entries` at `slot` (without ADD-PATH only the first counts).
    fn put(&mut self, slot: usize, mut entries: AdjOut) {
        match self {
            AdjOutTable::Single(v) => {
                let Some(first) = entries.drain(..).next() else {
                    if let Some(s) = v.get_mut(slot) {
                        *s = None;
                    }
                    return;
                };
                if v.len() <= slot {
                    v.resize(slot + 1, None);
                }
                v[slot] = Some(SingleOut {
                    source: first.source,
                    attrs: first.attrs,
                });
            }
            AdjOutTable::Multi(v) => {
                if entries.is_empty() && v.len() <= slot {
                    return;
                }
                if v.len() <= slot {
                    v.resize_with(slot + 1, AdjOut::new);
                }
                v[slot] = entries;
            }
        }
    }

    /// A copy of the entries at `slot`.
    fn get(&self, slot: usize) -> AdjOut {
        match self {
            AdjOutTable::Single(v) => v
                .get(slot)
                .and_then(Option::clone)
                .map(SingleOut::into_adj_out)
                .unwrap_or_default(),
            AdjOutTable::Multi(v) => v.get(slot).cloned().unwrap_or_default(),
        }
    }

    /// Slots with something advertised.
    fn occupied(&self) -> Vec<usize> {
        match self {
            AdjOutTable::Single(v) => (0..v.len()).filter(|&i| v[i].is_some()).collect(),
            AdjOutTable::Multi(v) => (0..v.len()).filter(|&i| !v[i].is_empty()).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            AdjOutTable::Single(v) => v.iter().all(Option::is_none),
            AdjOutTable::Multi(v) => v.iter().all(SmallVec::is_empty),
        }
    }

    fn release(&mut self) {
        match self {
            AdjOutTable::Single(v) => *v = Vec::new(),
            AdjOutTable::Multi(v) => *v = Vec::new(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct UpdateGroup {
    pub id: u32,
    pub key: GroupKey,
    /// Member peer slots.
    pub members: FastSet<u32>,
    /// Adj-RIB-Out per family, indexed by the prefix's Loc-RIB slot
    /// ([`DestId`]): no key and no probe. One entry per prefix (inline)
    /// unless ADD-PATH sends several. A slot outlives its non-empty entry
    /// here: the Loc-RIB frees it only after every group has exported the
    /// prefix's removal.
    adj_out: [AdjOutTable; 2],
    next_tx_id: u32,
    /// Paths advertised, per family (IPv4, IPv6): the first entry of each
    /// prefix, or every entry with ADD-PATH.
    advertised: [usize; 2],
    /// Of those, the paths each source slot contributed: split horizon keeps
    /// them from that member, so its count is `advertised - from_source`.
    from_source: FastMap<u32, [usize; 2]>,
}

/// A group's pending changes, collected over many prefixes, then packed.
#[derive(Debug, Default)]
pub(crate) struct Batcher {
    announce: Vec<(Arc<RouteAttrs>, Option<u32>, Vec<Nlri>)>,
    announce_idx: FastMap<(usize, Option<u32>), usize>,
    withdraw: Vec<(Family, Option<u32>, Vec<Nlri>)>,
    withdraw_idx: FastMap<(Family, Option<u32>), usize>,
    /// Per-member withdrawals: the member's own route became the best, so
    /// the route it had from us must go (split horizon).
    corrections: Vec<(u32, Family, Vec<Nlri>)>,
    /// The last announce key and its index.
    last: Option<((usize, Option<u32>), usize)>,
}

impl Batcher {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty() && self.corrections.is_empty()
    }

    pub fn push_announce(&mut self, attrs: &Arc<RouteAttrs>, nlri: &Nlri) {
        self.announce(attrs, None, *nlri);
    }

    pub fn push_withdraw(&mut self, nlri: &Nlri) {
        self.withdraw(None, *nlri);
    }

    fn announce(&mut self, attrs: &Arc<RouteAttrs>, except: Option<u32>, nlri: Nlri) {
        let k = (Arc::as_ptr(attrs) as usize, except);
        // Runs of prefixes share attributes: skip the map for a repeat.
        let i = match self.last {
            Some((lk, i)) if lk == k => i,
            _ => {
                let i = *self.announce_idx.entry(k).or_insert_with(|| {
                    self.announce.push((attrs.clone(), except, Vec::new()));
                    self.announce.len() - 1
                });
                self.last = Some((k, i));
                i
            }
        };
        self.announce[i].2.push(nlri);
    }

    fn withdraw(&mut self, except: Option<u32>, nlri: Nlri) {
        let k = (nlri.family(), except);
        let i = *self.withdraw_idx.entry(k).or_insert_with(|| {
            self.withdraw.push((k.0, except, Vec::new()));
            self.withdraw.len() - 1
        });
        self.withdraw[i].2.push(nlri);
    }
}

impl UpdateGroup {
    pub fn new(id: u32, key: GroupKey) -> Self {
        let adj_out = [
            AdjOutTable::new(key.add_path(Family::IPV4_UNICAST)),
            AdjOutTable::new(key.add_path(Family::IPV6_UNICAST)),
        ];
        UpdateGroup {
            id,
            key,
            members: FastSet::default(),
            adj_out,
            next_tx_id: 1,
            advertised: [0; 2],
            from_source: FastMap::default(),
        }
    }

    /// Paths of `family` this group advertises to member `slot` (split
    /// horizon applied). Constant time.
    pub fn advertised_to(&self, slot: u32, family: Family) -> usize {
        let fi = usize::from(family == Family::IPV6_UNICAST);
        let own = self.from_source.get(&slot).map_or(0, |c| c[fi]);
        self.advertised[fi].saturating_sub(own)
    }

    /// Adds (`add`) or removes the advertised-path counts of one prefix.
    fn count(&mut self, prefix: &IpNet, entries: &[AdjOutEntry], add_path: bool, add: bool) {
        let fi = usize::from(matches!(prefix, IpNet::V6(_)));
        let n = if add_path { entries.len() } else { 1 };
        for e in entries.iter().take(n) {
            let c = self.from_source.entry(e.source).or_default();
            if add {
                self.advertised[fi] += 1;
                c[fi] += 1;
            } else {
                self.advertised[fi] = self.advertised[fi].saturating_sub(1);
                c[fi] = c[fi].saturating_sub(1);
                if *c == [0, 0] {
                    self.from_source.remove(&e.source);
                }
            }
        }
    }

    fn member(&self, source: u32) -> Option<u32> {
        self.members.contains(&source).then_some(source)
    }

    /// The Loc-RIB slots this group advertises something for.
    pub fn advertised_slots(&self) -> impl Iterator<Item = DestId> + '_ {
        self.adj_out.iter().enumerate().flat_map(|(fi, t)| {
            t.occupied()
                .into_iter()
                .map(move |i| DestId::from_parts(fi == 1, i))
        })
    }

    /// What this group advertises for the prefix in slot `id`.
    pub fn adj_out(&self, id: DestId) -> AdjOut {
        self.adj_out[id.fam_idx()].get(id.slot())
    }

    /// The family's Loc-RIB is empty: so is this part of the Adj-RIB-Out;
    /// give its memory back.
    pub fn release(&mut self, fi: usize) {
        if let Some(t) = self.adj_out.get_mut(fi) {
            debug_assert!(t.is_empty());
            t.release();
        }
    }

    /// Records the new export result for `prefix`, held in Loc-RIB slot
    /// `id` (`new` in preference order: `(source, source path id,
    /// attrs)`), queueing the difference.
    pub fn apply(
        &mut self,
        id: DestId,
        prefix: IpNet,
        new: crate::rib::Exported,
        batch: &mut Batcher,
    ) {
        let add_path = self.key.add_path(Family::of(&prefix));
        let old = self.adj_out[id.fam_idx()].take(id.slot());
        let mut entries = AdjOut::with_capacity(new.len());
        for (source, src_path_id, attrs) in new {
            let tx_id = if add_path {
                match old
                    .iter()
                    .find(|o| o.source == source && o.src_path_id == src_path_id)
                {
                    Some(o) => o.tx_id,
                    None => {
                        let id = self.next_tx_id;
                        self.next_tx_id = self.next_tx_id.wrapping_add(1).max(1);
                        id
                    }
                }
            } else {
                0
            };
            entries.push(AdjOutEntry {
                tx_id,
                source,
                src_path_id,
                attrs,
            });
        }
        if add_path {
            // RFC 7911: each path is its own NLRI; ids are unique per source.
            for e in &entries {
                let unchanged = old
                    .iter()
                    .any(|o| o.tx_id == e.tx_id && Arc::ptr_eq(&o.attrs, &e.attrs));
                if !unchanged {
                    batch.announce(
                        &e.attrs,
                        self.member(e.source),
                        Nlri::with_path_id(prefix, e.tx_id),
                    );
                }
            }
            for o in &old {
                if !entries.iter().any(|e| e.tx_id == o.tx_id) {
                    batch.withdraw(self.member(o.source), Nlri::with_path_id(prefix, o.tx_id));
                }
            }
        } else {
            match (old.first(), entries.first()) {
                (Some(o), Some(n)) if o.source == n.source && Arc::ptr_eq(&o.attrs, &n.attrs) => {}
                (o, Some(n)) => {
                    let except = self.member(n.source);
                    batch.announce(&n.attrs, except, Nlri::new(prefix));
                    if let (Some(o), Some(m)) = (o, except)
                        && o.source != m
                    {
                        batch
                            .corrections
                            .push((m, Family::of(&prefix), vec![Nlri::new(prefix)]));
                    }
                }
                (Some(o), None) => batch.withdraw(self.member(o.source), Nlri::new(prefix)),
                (None, None) => {}
            }
        }
        // Counts move only when the advertising sources change (without
        // ADD-PATH: the first entry's).
        let same_sources =
            !add_path && old.first().map(|e| e.source) == entries.first().map(|e| e.source);
        if !same_sources {
            self.count(&prefix, &old, add_path, false);
            self.count(&prefix, &entries, add_path, true);
        }
        if !entries.is_empty() {
            self.adj_out[id.fam_idx()].put(id.slot(), entries);
        }
    }

    /// Everything this group advertises that `targets` may receive, for
    /// `family` (all when `None`): initial dumps or a route refresh. Peers
    /// that come up together share one dump: a route learned from one of
    /// them goes in a batch that skips it.
    /// `prefix_of` names the prefix of a Loc-RIB slot.
    pub fn dump_for(
        &self,
        targets: &FastSet<u32>,
        family: Option<Family>,
        prefix_of: impl Fn(DestId) -> Option<IpNet>,
    ) -> Batcher {
        let mut b = Batcher::default();
        let add_path = |p: &IpNet| self.key.add_path(Family::of(p));
        let mut prefixes: Vec<(IpNet, DestId)> = self
            .advertised_slots()
            .filter_map(|id| Some((prefix_of(id)?, id)))
            .filter(|(p, _)| family.is_none_or(|f| Family::of(p) == f))
            .collect();
        prefixes.sort_unstable();
        for (p, id) in prefixes {
            let p = &p;
            for e in self.adj_out(id) {
                let except = targets.contains(&e.source).then_some(e.source);
                if except.is_some() && targets.len() == 1 {
                    continue;
                }
                let nlri = if add_path(p) {
                    Nlri::with_path_id(*p, e.tx_id)
                } else {
                    Nlri::new(*p)
                };
                b.announce(&e.attrs, except, nlri);
                if !add_path(p) {
                    break;
                }
            }
        }
        b
    }

    /// Encodes a batch into `out`, the group's batch for the members (it
    /// names each split-horizon span by the member it skips, `id_of` maps a
    /// slot to that name). Corrections, for one member each, go to
    /// `corrections`. Returns the UPDATE messages built.
    pub fn finish(
        &self,
        batch: Batcher,
        out: &mut UpdateBatch,
        id_of: impl Fn(u32) -> PeerId,
        corrections: &mut Vec<Outgoing>,
    ) -> u64 {
        let mut built = 0;
        let member = |x: Option<u32>| x.map(|s| id_of(s).0);
        for (family, except, nlri) in batch.withdraw {
            built += self.built(out.withdraw(member(except), family, &nlri));
        }
        for (attrs, except, nlri) in batch.announce {
            built += self.built(out.announce(member(except), &attrs.attrs, attrs.next_hop, &nlri));
        }
        for (slot, family, nlri) in batch.corrections {
            let mut b = UpdateBatch::new(self.key.codec.clone());
            built += self.built(b.withdraw(None, family, &nlri));
            if !b.is_empty() {
                b.seal();
                corrections.push(Outgoing {
                    to: Recipients::Peer(id_of(slot)),
                    batch: Arc::new(b),
                });
            }
        }
        built
    }

    /// Counts an encoding's messages; a failure (which the export check
    /// should have prevented) drops those prefixes with a log line.
    fn built(&self, r: Result<usize, EncodeError>) -> u64 {
        match r {
            Ok(n) => n as u64,
            Err(e) => {
                warn!(group = self.id, error = %e, "UPDATEs not sent: cannot encode them for this group");
                0
            }
        }
    }

    /// An empty batch in this group's wire format.
    pub fn new_batch(&self) -> UpdateBatch {
        UpdateBatch::new(self.key.codec.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabby_bgp::attr::NextHop;

    /// A group's Adj-RIB-Out without ADD-PATH costs 16 octets a prefix.
    #[test]
    fn single_slot_is_16_octets() {
        assert_eq!(std::mem::size_of::<Option<SingleOut>>(), 16);
    }

    #[test]
    fn adj_out_table_put_take() {
        let attrs = Arc::new(RouteAttrs::new(
            Default::default(),
            NextHop::new("198.18.0.1".parse().unwrap()),
        ));
        let e = |tx_id, source| AdjOutEntry {
            tx_id,
            source,
            src_path_id: 0,
            attrs: attrs.clone(),
        };
        for add_path in [false, true] {
            let mut t = AdjOutTable::new(add_path);
            assert!(t.take(5).is_empty());
            t.put(5, smallvec::smallvec![e(1, 7), e(2, 8)]);
            assert_eq!(t.occupied(), vec![5]);
            let got: Vec<u32> = t.get(5).iter().map(|x| x.source).collect();
            assert_eq!(got, if add_path { vec![7, 8] } else { vec![7] });
            assert_eq!(t.take(5).len(), if add_path { 2 } else { 1 });
            assert!(t.is_empty());
            t.put(9, AdjOut::new());
            assert!(t.occupied().is_empty());
        }
    }
}
