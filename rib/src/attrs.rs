//! Interned route attributes: one shared copy per distinct attribute set.
//!
//! A route's attributes are its [`PathAttributes`] plus its next hop (which
//! for MP_REACH routes lives outside the attribute set on the wire). All the
//! NLRI of one UPDATE share one `Arc`, and identical sets from different
//! peers or UPDATEs share it too, so a path costs a pointer, not a copy.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tabby_bgp::PathAttributes;
use tabby_bgp::attr::{LocalPref, Med, NextHop};

use crate::hash::FastSet;

/// Attributes of a route as held in the RIB.
#[derive(Debug, Clone)]
pub struct RouteAttrs {
    pub attrs: PathAttributes,
    /// The route's next hop. For locally originated routes without an
    /// override this is the unspecified address of the family: "self".
    pub next_hop: NextHop,
    /// What the decision process reads, computed once per interned set so
    /// a decision does not walk AS_PATH segments for every candidate.
    pub(crate) rank: RankInputs,
    /// Hash of `attrs` and `next_hop`, computed once: the interner's tables
    /// rehash on growth and every lookup would otherwise walk all fields.
    hash: u64,
}

impl PartialEq for RouteAttrs {
    fn eq(&self, other: &Self) -> bool {
        // `rank` is derived from `attrs`; the cached hash rejects most
        // unequal sets without walking them.
        self.hash == other.hash && self.next_hop == other.next_hop && self.attrs == other.attrs
    }
}
impl Eq for RouteAttrs {}

impl Hash for RouteAttrs {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Decision-process inputs derived from the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RankInputs {
    pub local_pref: Option<LocalPref>,
    pub as_path_len: u32,
    pub origin: tabby_bgp::attr::Origin,
    pub med: Med,
    pub neighbor_as: Option<tabby_bgp::Asn>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list_len: u32,
}

impl RouteAttrs {
    pub fn new(attrs: PathAttributes, next_hop: NextHop) -> Self {
        let rank = RankInputs {
            local_pref: attrs.local_pref,
            as_path_len: attrs.as_path.path_len() as u32,
            origin: attrs.origin.unwrap_or(tabby_bgp::attr::Origin::Incomplete),
            // RFC 4271 §9.1.2.2 c: a missing MED is the lowest value.
            med: attrs.med.unwrap_or(Med::LOWEST),
            neighbor_as: attrs.as_path.first_as(),
            originator_id: attrs.originator_id,
            cluster_list_len: attrs.cluster_list.len() as u32,
        };
        let hash = {
            use std::hash::BuildHasher;
            crate::hash::FastBuild::default().hash_one((&attrs, &next_hop))
        };
        RouteAttrs {
            attrs,
            next_hop,
            rank,
            hash,
        }
    }

    /// LOCAL_PREF, or `default` when absent (RFC 4271 §5.1.5).
    pub fn local_pref_or(&self, default: LocalPref) -> LocalPref {
        self.attrs.local_pref.unwrap_or(default)
    }

    /// True when the next hop means "this node" (local route, no override).
    pub fn next_hop_is_self(&self) -> bool {
        self.next_hop.addr.is_unspecified()
    }

    /// The unspecified next hop of `prefix`'s family ("self").
    pub fn self_next_hop(v6: bool) -> NextHop {
        if v6 {
            NextHop::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
        } else {
            NextHop::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        }
    }
}

/// Hashes an `Arc<RouteAttrs>` by its contents so the set finds equal sets.
#[derive(Debug, Clone)]
struct Interned(Arc<RouteAttrs>);

impl PartialEq for Interned {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}
impl Eq for Interned {}
impl Hash for Interned {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (*self.0).hash(state)
    }
}
impl std::borrow::Borrow<RouteAttrs> for Interned {
    fn borrow(&self) -> &RouteAttrs {
        &self.0
    }
}

/// Shards of the interner: garbage is collected one shard at a time, so a
/// collection pauses for a sixty-fourth of the set, not all of it.
const SHARDS: usize = 64;

#[derive(Debug, Default)]
struct Shard {
    set: FastSet<Interned>,
    /// Size after the last collection; the next runs at twice that.
    collect_at: usize,
}

impl Shard {
    fn collect(&mut self) {
        self.set.retain(|e| Arc::strong_count(&e.0) > 1);
        self.collect_at = self.set.len() * 2;
    }
}

/// The attribute interner. Entries no path refers to any more are dropped
/// shard by shard as a shard doubles, and all at once by
/// [`Interner::collect`].
#[derive(Debug)]
pub struct Interner {
    shards: Vec<Shard>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

/// The shard of an attribute set (from its cached hash's top bits; the
/// tables use the low bits).
fn shard_of(a: &RouteAttrs) -> usize {
    (a.hash >> 58) as usize % SHARDS
}

impl Interner {
    /// The shared copy of `attrs`.
    pub fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        let Some(shard) = self.shards.get_mut(shard_of(&attrs)) else {
            return Arc::new(attrs);
        };
        if let Some(found) = shard.set.get(&attrs) {
            return found.0.clone();
        }
        if shard.set.len() >= shard.collect_at.max(64) {
            shard.collect();
        }
        let arc = Arc::new(attrs);
        shard.set.insert(Interned(arc.clone()));
        arc
    }

    /// Drops entries only the interner still holds.
    pub fn collect(&mut self) {
        for s in &mut self.shards {
            s.collect();
        }
    }

    /// Distinct attribute sets currently held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.set.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.set.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabby_bgp::Asn;
    use tabby_bgp::attr::{AsPath, Origin};

    fn attrs(asn: u32) -> RouteAttrs {
        RouteAttrs::new(
            PathAttributes {
                origin: Some(Origin::Igp),
                as_path: AsPath::from_sequence([Asn(asn)]),
                ..Default::default()
            },
            NextHop::new("198.18.0.1".parse().unwrap()),
        )
    }

    #[test]
    fn equal_sets_share_one_copy() {
        let mut i = Interner::default();
        let a = i.intern(attrs(65001));
        let b = i.intern(attrs(65001));
        let c = i.intern(attrs(65002));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn collect_drops_unreferenced_sets() {
        let mut i = Interner::default();
        let a = i.intern(attrs(65001));
        drop(i.intern(attrs(65002)));
        i.collect();
        assert_eq!(i.len(), 1);
        assert!(Arc::ptr_eq(&a, &i.intern(attrs(65001))));
    }
}
