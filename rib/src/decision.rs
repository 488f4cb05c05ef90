//! The decision process (RFC 4271 §9.1.2.2, RFC 4456 §9) as one total order.
//!
//! Each candidate path is reduced to a [`RankKey`]; [`compare`] walks the
//! steps in order and reports the first that decides. `Less` means *more
//! preferred*, so sorting ascending puts the best path first.
//!
//! MED is the one step that is not a property of a single path: RFC 4271
//! compares it only between routes from the same neighbouring AS, which as a
//! pairwise rule is not transitive (the well-known MED oscillation). We make
//! it set-relative instead ([`resolve_med`]): among paths equal on every
//! earlier step and from the same neighbouring AS, a path whose MED is higher
//! than another's is *dominated*. That is exactly the RFC's elimination for
//! the surviving set, and it turns the whole process into a lexicographic,
//! hence total, order over keys, independent of arrival order.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use tabby_bgp::Asn;
use tabby_bgp::attr::{LocalPref, Med, Origin};

/// The step of the decision process at which one path lost to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Next hop unreachable, martian or ours; or a looped route.
    Eligibility,
    /// Locally originated routes win over learned ones (like BIRD's static
    /// protocol preference over BGP in Calico's configuration).
    LocalOrigin,
    /// RFC 9494 §4.3: LLGR-stale paths are least preferred.
    LlgrStale,
    /// RFC 4271 §9.1.1: higher LOCAL_PREF.
    LocalPref,
    /// §9.1.2.2 a: shorter AS_PATH (AS_SET counts 1, confederations 0).
    AsPathLength,
    /// §9.1.2.2 b: lower ORIGIN.
    Origin,
    /// §9.1.2.2 c: lower MED, same neighbouring AS (or always).
    Med,
    /// §9.1.2.2 d: eBGP-learned over iBGP-learned.
    EbgpOverIbgp,
    /// §9.1.2.2 e: lower interior cost to the next hop.
    IgpCost,
    /// §9.1.2.2 f with RFC 4456 §9: lower ORIGINATOR_ID, else BGP id.
    RouterId,
    /// RFC 4456 §9: shorter CLUSTER_LIST.
    ClusterListLength,
    /// §9.1.2.2 g: lower peer address.
    PeerAddress,
    /// Last resort for a total order: lower received ADD-PATH identifier
    /// (or local owner).
    PathId,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Eligibility => "eligibility",
            Step::LocalOrigin => "local-origin",
            Step::LlgrStale => "llgr-stale",
            Step::LocalPref => "local-pref",
            Step::AsPathLength => "as-path-length",
            Step::Origin => "origin",
            Step::Med => "med",
            Step::EbgpOverIbgp => "ebgp-over-ibgp",
            Step::IgpCost => "igp-cost",
            Step::RouterId => "router-id",
            Step::ClusterListLength => "cluster-list-length",
            Step::PeerAddress => "peer-address",
            Step::PathId => "path-id",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the decision process looks at for one candidate path.
#[derive(Debug, Clone, Copy)]
pub struct RankKey {
    pub ineligible: bool,
    /// False for locally originated paths.
    pub remote: bool,
    /// A learned path above Calico's normal route priority: it does not
    /// lose to local paths at the local-origin step (see `rank_key`).
    pub elevated: bool,
    pub llgr_stale: bool,
    pub local_pref: LocalPref,
    pub as_path_len: u32,
    pub origin: Origin,
    /// The MED as compared, set by [`resolve_med`]: the received one, or
    /// under the set-relative rule [`Med::LOWEST`] for a path no other
    /// dominates and the next value for one that is dominated.
    pub med: Med,
    pub ibgp: bool,
    pub igp_cost: u32,
    /// ORIGINATOR_ID if present, else the peer's BGP identifier.
    pub router_id: Ipv4Addr,
    pub cluster_list_len: u32,
    pub peer_addr: IpAddr,
    pub path_id: u32,
    /// Inputs of the MED step, not compared directly.
    pub neighbor_as: Asn,
    pub raw_med: Med,
}

/// Compares two candidates; `Less` means `a` is preferred. Also returns the
/// step that decided (`PathId` when the keys are identical).
pub fn compare(a: &RankKey, b: &RankKey) -> (Ordering, Step) {
    // Evaluated lazily, step by step: this runs for every pair of
    // candidates in every decision.
    macro_rules! step {
        ($ord:expr, $step:expr) => {
            let o = $ord;
            if o != Ordering::Equal {
                return (o, $step);
            }
        };
    }
    step!(a.ineligible.cmp(&b.ineligible), Step::Eligibility);
    // Local paths first, except that a learned path above the normal
    // priority ranks with them. Between two learned paths this step only
    // ever separates an elevated one from one that is not, which LOCAL_PREF
    // would decide the same way: it is named for that.
    let outranked = |k: &RankKey| k.remote && !k.elevated;
    step!(
        outranked(a).cmp(&outranked(b)),
        if a.remote && b.remote {
            Step::LocalPref
        } else {
            Step::LocalOrigin
        }
    );
    step!(a.llgr_stale.cmp(&b.llgr_stale), Step::LlgrStale);
    step!(a.local_pref.cmp_preference(b.local_pref), Step::LocalPref);
    step!(a.as_path_len.cmp(&b.as_path_len), Step::AsPathLength);
    step!(a.origin.cmp(&b.origin), Step::Origin);
    step!(a.med.cmp_preference(b.med), Step::Med);
    step!(a.ibgp.cmp(&b.ibgp), Step::EbgpOverIbgp);
    step!(a.igp_cost.cmp(&b.igp_cost), Step::IgpCost);
    step!(a.router_id.cmp(&b.router_id), Step::RouterId);
    step!(
        a.cluster_list_len.cmp(&b.cluster_list_len),
        Step::ClusterListLength
    );
    step!(a.peer_addr.cmp(&b.peer_addr), Step::PeerAddress);
    step!(a.path_id.cmp(&b.path_id), Step::PathId);
    (Ordering::Equal, Step::PathId)
}

impl PartialEq for RankKey {
    fn eq(&self, other: &Self) -> bool {
        compare(self, other).0 == Ordering::Equal
    }
}
impl Eq for RankKey {}
impl PartialOrd for RankKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for RankKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self, other).0
    }
}

/// True when two paths may share the forwarding load: equal on every step up
/// to and including the interior cost (RFC 4271 §9.1.2.2 e), both eligible.
pub fn multipath_equal(a: &RankKey, b: &RankKey) -> bool {
    !a.ineligible
        && !b.ineligible
        && matches!(
            compare(a, b),
            (Ordering::Equal, _)
                | (
                    _,
                    Step::RouterId | Step::ClusterListLength | Step::PeerAddress | Step::PathId
                )
        )
}

/// Fills the compared MED of each key for this candidate set (see the module
/// comment). A missing MED is 0, the lowest value (RFC 4271 §9.1.2.2 c).
pub fn resolve_med(keys: &mut [RankKey], always_compare_med: bool) {
    if always_compare_med {
        for k in keys.iter_mut() {
            k.med = k.raw_med;
        }
        return;
    }
    let n = keys.len();
    for i in 0..n {
        let ki = keys[i];
        let dominated = keys.iter().any(|kj| {
            kj.neighbor_as == ki.neighbor_as
                && kj.raw_med.prefers(ki.raw_med)
                && kj.ineligible == ki.ineligible
                && kj.remote == ki.remote
                && kj.llgr_stale == ki.llgr_stale
                && kj.local_pref == ki.local_pref
                && kj.as_path_len == ki.as_path_len
                && kj.origin == ki.origin
        });
        keys[i].med = Med::new(dominated as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> RankKey {
        RankKey {
            ineligible: false,
            remote: true,
            elevated: false,
            llgr_stale: false,
            local_pref: LocalPref::new(100),
            as_path_len: 2,
            origin: Origin::Igp,
            med: Med::LOWEST,
            ibgp: true,
            igp_cost: 10,
            router_id: Ipv4Addr::new(198, 18, 0, 5),
            cluster_list_len: 1,
            peer_addr: "198.18.0.5".parse().unwrap(),
            path_id: 0,
            neighbor_as: Asn(65001),
            raw_med: Med::LOWEST,
        }
    }

    /// Asserts that `better` beats `worse` at `step`, in both argument orders.
    fn beats(better: RankKey, worse: RankKey, step: Step) {
        assert_eq!(compare(&better, &worse), (Ordering::Less, step));
        assert_eq!(compare(&worse, &better), (Ordering::Greater, step));
    }

    #[test]
    fn step_eligibility() {
        let mut b = base();
        b.ineligible = true;
        b.local_pref = LocalPref::new(1000);
        beats(base(), b, Step::Eligibility);
    }

    #[test]
    fn step_local_origin() {
        let mut a = base();
        a.remote = false;
        let mut b = base();
        b.local_pref = LocalPref::new(1000);
        beats(a, b, Step::LocalOrigin);
    }

    #[test]
    fn step_llgr_stale() {
        let mut b = base();
        b.llgr_stale = true;
        b.local_pref = LocalPref::new(1000);
        beats(base(), b, Step::LlgrStale);
    }

    #[test]
    fn step_local_pref_higher_wins() {
        let mut a = base();
        a.local_pref = LocalPref::new(200);
        a.as_path_len = 9;
        beats(a, base(), Step::LocalPref);
    }

    #[test]
    fn step_as_path_shorter_wins() {
        let mut b = base();
        b.as_path_len = 3;
        b.origin = Origin::Igp;
        let mut a = base();
        a.origin = Origin::Incomplete;
        a.as_path_len = 2;
        beats(a, b, Step::AsPathLength);
    }

    #[test]
    fn step_origin_lower_wins() {
        let mut b = base();
        b.origin = Origin::Egp;
        beats(base(), b, Step::Origin);
        let mut c = base();
        c.origin = Origin::Incomplete;
        beats(b, c, Step::Origin);
    }

    #[test]
    fn step_med_same_neighbour_as() {
        let mut keys = [base(), base()];
        keys[0].raw_med = Med::new(50);
        keys[1].raw_med = Med::new(10);
        keys[1].path_id = 1;
        resolve_med(&mut keys, false);
        beats(keys[1], keys[0], Step::Med);
    }

    #[test]
    fn step_med_ignored_across_neighbour_as() {
        let mut keys = [base(), base()];
        keys[0].raw_med = Med::new(50);
        keys[0].ibgp = false;
        keys[1].raw_med = Med::new(10);
        keys[1].neighbor_as = Asn(65002);
        resolve_med(&mut keys, false);
        // Different neighbouring AS: MED not compared, eBGP wins next.
        beats(keys[0], keys[1], Step::EbgpOverIbgp);
    }

    #[test]
    fn step_med_always_compare() {
        let mut keys = [base(), base()];
        keys[0].raw_med = Med::new(50);
        keys[0].ibgp = false;
        keys[1].raw_med = Med::new(10);
        keys[1].neighbor_as = Asn(65002);
        resolve_med(&mut keys, true);
        beats(keys[1], keys[0], Step::Med);
    }

    #[test]
    fn step_ebgp_over_ibgp() {
        let mut a = base();
        a.ibgp = false;
        a.igp_cost = 1000;
        beats(a, base(), Step::EbgpOverIbgp);
    }

    #[test]
    fn step_igp_cost() {
        let mut a = base();
        a.igp_cost = 1;
        a.router_id = Ipv4Addr::new(198, 18, 0, 255);
        beats(a, base(), Step::IgpCost);
    }

    #[test]
    fn step_router_id() {
        let mut a = base();
        a.router_id = Ipv4Addr::new(198, 18, 0, 1);
        a.cluster_list_len = 5;
        beats(a, base(), Step::RouterId);
    }

    #[test]
    fn step_cluster_list_length() {
        let mut a = base();
        a.cluster_list_len = 0;
        a.peer_addr = "198.18.0.200".parse().unwrap();
        beats(a, base(), Step::ClusterListLength);
    }

    #[test]
    fn step_peer_address() {
        let mut a = base();
        a.peer_addr = "198.18.0.1".parse().unwrap();
        a.path_id = 9;
        beats(a, base(), Step::PeerAddress);
    }

    #[test]
    fn step_path_id() {
        let mut b = base();
        b.path_id = 1;
        beats(base(), b, Step::PathId);
    }

    #[test]
    fn multipath_stops_before_router_id() {
        let mut b = base();
        b.router_id = Ipv4Addr::new(198, 18, 0, 9);
        b.peer_addr = "198.18.0.9".parse().unwrap();
        assert!(multipath_equal(&base(), &b));
        b.igp_cost = 11;
        assert!(!multipath_equal(&base(), &b));
        let mut c = base();
        c.ineligible = true;
        assert!(!multipath_equal(&c, &c));
    }

    fn key_strategy() -> impl Strategy<Value = RankKey> {
        (
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                0u32..3,
                0u32..3,
            ),
            (0u8..3, any::<bool>(), 0u32..3, 0u32..3, 0u32..3),
            (0u32..3, 0u8..3, 0u32..3, 0u32..3),
        )
            .prop_map(|(a, b, c)| {
                let (inel, remote, llgr, lp, aslen) = a;
                let (origin, ibgp, cost, rid, cl) = b;
                let (addr, path_id, nas, med) = c;
                RankKey {
                    ineligible: inel,
                    remote,
                    elevated: remote && lp == 2,
                    llgr_stale: llgr,
                    local_pref: LocalPref::new(lp),
                    as_path_len: aslen,
                    origin: match origin {
                        0 => Origin::Igp,
                        1 => Origin::Egp,
                        _ => Origin::Incomplete,
                    },
                    med: Med::LOWEST,
                    ibgp,
                    igp_cost: cost,
                    router_id: Ipv4Addr::from(rid),
                    cluster_list_len: cl,
                    peer_addr: IpAddr::V4(Ipv4Addr::from(addr)),
                    path_id: path_id as u32,
                    neighbor_as: Asn(nas),
                    raw_med: Med::new(med),
                }
            })
    }

    proptest! {
        /// Antisymmetry, transitivity and totality of the order, with MED
        /// resolved over the set the keys belong to.
        #[test]
        fn decision_is_a_total_order(mut keys in proptest::collection::vec(key_strategy(), 3..8), always in any::<bool>()) {
            resolve_med(&mut keys, always);
            for a in &keys {
                prop_assert_eq!(a.cmp(a), Ordering::Equal);
                for b in &keys {
                    prop_assert_eq!(a.cmp(b), b.cmp(a).reverse());
                    for c in &keys {
                        if a <= b && b <= c {
                            prop_assert!(a <= c, "not transitive: {:?} {:?} {:?}", a, b, c);
                        }
                    }
                }
            }
        }

        /// The best path does not depend on the order paths arrived in (the
        /// MED non-determinism RFC 4271's pairwise rule would have).
        #[test]
        fn best_is_independent_of_arrival_order(keys in proptest::collection::vec(key_strategy(), 1..8), always in any::<bool>(), rot in 0usize..8) {
            let mut a: Vec<RankKey> = keys.iter().enumerate().map(|(i, k)| RankKey { path_id: i as u32, ..*k }).collect();
            let mut b = a.clone();
            let r = rot % b.len();
            b.rotate_left(r);
            b.reverse();
            resolve_med(&mut a, always);
            resolve_med(&mut b, always);
            let best_a = a.iter().min().map(|k| k.path_id);
            let best_b = b.iter().min().map(|k| k.path_id);
            prop_assert_eq!(best_a, best_b);
        }
    }
}
