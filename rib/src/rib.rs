//! The RIB: peers, Loc-RIB, update groups, graceful-restart state, and the
//! event-in / output-out interface the daemon drives.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;
use smallvec::SmallVec;
use tabby_bgp::attr::{Community, LocalPref, Med, NextHop, Origin};
use tabby_bgp::capability::Role;
use tabby_bgp::message::Update;
use tabby_bgp::{Asn, Family, Nlri, PathAttributes};
use tracing::{debug, info, warn};

use crate::attrs::{Interner, RouteAttrs};
use crate::decision::RankKey;
use crate::dest_map::DestId;
use crate::export::{
    ExportInput, ExportPolicy, ExportSource, GroupKey, PolicyPeek, export_route, policy_peek,
};
use crate::hash::{FastMap, FastSet};
use crate::loc_rib::{Dest, LOCAL_SOURCE, LocRib, Path, SigEntry, UNREACHABLE, flag};
use crate::policy::{Policy, RouteCtx, SourceMatchInput, Verdict};
use crate::types::*;
use crate::update_group::{Batcher, UpdateGroup};

/// Tells the RIB whether a next hop is reachable and at what interior cost
/// (RFC 4271 §9.1.2.1). The daemon answers from the kernel's routing table.
pub trait NextHopResolver: Send {
    /// `None`: unreachable, the path is not eligible.
    fn resolve(&self, next_hop: IpAddr) -> Option<u32>;
}

impl<F: Fn(IpAddr) -> Option<u32> + Send> NextHopResolver for F {
    fn resolve(&self, next_hop: IpAddr) -> Option<u32> {
        self(next_hop)
    }
}

/// Why an announced route was not stored, counted in [`ApplyOutcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// RFC 7606 treat-as-withdraw.
    TreatAsWithdraw,
    MissingNextHop,
    /// RFC 4271 §9.1.2: our AS in the AS_PATH more often than allowed.
    AsLoop,
    /// RFC 4271 §6.3: first AS of an eBGP route is not the peer's.
    FirstAsMismatch,
    /// RFC 4456 §8: ORIGINATOR_ID is our router id.
    OriginatorLoop,
    /// RFC 4456 §8: CLUSTER_LIST holds our cluster id.
    ClusterLoop,
    /// RFC 9234 §5: route leak detected by OTC.
    RouteLeak,
    ImportPolicy,
    UnsupportedFamily,
}

/// What one UPDATE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub announced: usize,
    pub withdrawn: usize,
    pub rejected: Vec<(RejectReason, usize)>,
    /// The UPDATE was an End-of-RIB marker for this family.
    pub end_of_rib: Option<Family>,
}

impl ApplyOutcome {
    fn reject(&mut self, r: RejectReason, n: usize) {
        match self.rejected.iter_mut().find(|(x, _)| *x == r) {
            Some((_, c)) => *c += n,
            None => self.rejected.push((r, n)),
        }
    }
}

/// Counters for operators and benches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RibStats {
    pub prefixes: usize,
    pub paths: usize,
    pub attribute_sets: usize,
    pub update_groups: usize,
    /// UPDATE messages built since start (one per group batch, not per peer).
    pub updates_built: u64,
}

/// Graceful-restart state of one family of one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrState {
    /// RFC 4724 §4.2: session down, restart timer running.
    /// `llgr`: long-lived stale time to enter when it expires (RFC 9494).
    Restarting {
        deadline: Instant,
        llgr: Option<u32>,
    },
    /// Session back, waiting for End-of-RIB (stale-path timer).
    AwaitingEor { deadline: Instant },
    /// RFC 9494: long-lived stale.
    LongLived { deadline: Instant },
}

impl GrState {
    fn deadline(self) -> Instant {
        match self {
            GrState::Restarting { deadline, .. }
            | GrState::AwaitingEor { deadline }
            | GrState::LongLived { deadline } => deadline,
        }
    }
}

#[derive(Debug)]
pub(crate) struct PeerSlot {
    pub id: PeerId,
    pub cfg: PeerConfig,
    pub kind: PeerKind,
    pub local_asn: Asn,
    pub bgp_id: Ipv4Addr,
    pub session: Option<PeerSession>,
    pub group: Option<u32>,
    pub awaiting_dump: bool,
    /// Pre-policy Adj-RIB-In (soft-reconfiguration inbound only).
    pub adj_in_pre: FastMap<(IpNet, u32), Arc<RouteAttrs>>,
    pub gr: Vec<(Family, GrState)>,
    pub eor_rx: Vec<Family>,
    /// Paths in the Loc-RIB from this peer, per family (IPv4, IPv6).
    pub counts: [usize; 2],
}

/// The routing information base. See the crate documentation.
pub struct Rib {
    pub(crate) cfg: RibConfig,
    pub(crate) peers: Vec<Option<PeerSlot>>,
    pub(crate) peer_slots: HashMap<PeerId, u32>,
    pub(crate) tables: [LocRib; 2],
    pub(crate) interner: Interner,
    resolver: Box<dyn NextHopResolver>,
    nh_cache: FastMap<IpAddr, u32>,
    own_addrs: FastSet<IpAddr>,
    pub(crate) owners: Vec<String>,
    owner_ids: HashMap<String, u32>,
    pub(crate) local_meta: FastMap<(IpNet, u32), LocalRoute>,
    best_changes: Vec<BestChange>,
    /// False: changes are recorded by prefix only, in `changed`.
    change_detail: bool,
    changed: Vec<IpNet>,
    seq: u64,
    /// Prefixes queued for export, in the order they changed.
    dirty: Vec<DestId>,
    pub(crate) groups: Vec<Option<UpdateGroup>>,
    group_ids: HashMap<GroupKey, u32>,
    add_path_groups: usize,
    queued: Vec<Outgoing>,
    deferral: Option<Instant>,
    selection_complete: bool,
    updates_built: u64,
    keys: Vec<RankKey>,
    sig_old: Vec<SigEntry>,
    sig_new: Vec<SigEntry>,
}

impl std::fmt::Debug for Rib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rib")
            .field("router_id", &self.cfg.router_id)
            .field("local_asn", &self.cfg.local_asn)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What a group exports for one prefix: `(source, source path id, attrs)`
/// in preference order; one entry unless ADD-PATH.
pub(crate) type Exported = SmallVec<[(u32, u32, Arc<RouteAttrs>); 1]>;

/// Prefixes exported per batch in an export pass.
const EXPORT_CHUNK: usize = 65_536;

/// Export results of one pass over a group, by (attributes, source, LLGR
/// stale, family): a reflector exports a million prefixes that share a few
/// thousand attribute sets, and each set is modified and interned once.
/// Used for routes the export policy accepts unmodified (it still runs per
/// prefix, so prefix rules keep their meaning). Only for one pass: the key
/// holds the attributes' address, valid while the Loc-RIB is not changed.
#[derive(Default)]
pub(crate) struct ExportMemo(FastMap<(usize, u32, bool, u8), Option<Arc<RouteAttrs>>>);

pub(crate) fn fam_idx(p: &IpNet) -> usize {
    match p {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1,
    }
}

fn family_idx(f: Family) -> Option<usize> {
    if f == Family::IPV4_UNICAST {
        Some(0)
    } else if f == Family::IPV6_UNICAST {
        Some(1)
    } else {
        None
    }
}

/// RFC 4271 §6.3 and common practice: next hops that can never be valid.
pub(crate) fn is_martian(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            v.is_unspecified() || v.is_loopback() || v.is_multicast() || v.is_broadcast()
        }
        IpAddr::V6(v) => v.is_unspecified() || v.is_loopback() || v.is_multicast(),
    }
}

/// Builds the decision key of one path of `prefix`.
pub(crate) fn rank_key(
    p: &Path,
    prefix: &IpNet,
    peers: &[Option<PeerSlot>],
    cfg: &RibConfig,
) -> RankKey {
    let r = &p.attrs.rank;
    let peer = if p.is_local() {
        None
    } else {
        peers.get(p.source as usize).and_then(|s| s.as_ref())
    };
    // Calico 3.32 gives a learned route above the normal priority (LOCAL_PREF
    // above 2147483647 − normal priority) `preference 200`, so that it
    // overrides a route of this node (a workload live-migrated to another
    // node): such a path does not lose to local ones at the local-origin
    // step, and LOCAL_PREF decides between them.
    let elevated = || {
        r.local_pref.is_some_and(|lp| {
            lp.get() > crate::policy::PRIORITY_BASE.saturating_sub(cfg.normal_priority(prefix))
        })
    };
    let (remote, ibgp, rid, addr) = match peer {
        Some(s) => (true, s.kind == PeerKind::Ibgp, s.bgp_id, s.cfg.address),
        None => (
            false,
            false,
            cfg.router_id,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ),
    };
    RankKey {
        ineligible: !p.eligible(),
        remote,
        elevated: remote && elevated(),
        llgr_stale: p.flags & flag::LLGR_STALE != 0,
        local_pref: r
            .local_pref
            .unwrap_or(LocalPref::new(cfg.default_local_pref)),
        as_path_len: r.as_path_len,
        origin: r.origin,
        med: Med::LOWEST,
        ibgp,
        igp_cost: if p.nh_cost == UNREACHABLE {
            u32::MAX
        } else {
            p.nh_cost
        },
        router_id: r.originator_id.unwrap_or(rid),
        cluster_list_len: r.cluster_list_len,
        peer_addr: addr,
        path_id: p.path_id,
        neighbor_as: r.neighbor_as.unwrap_or(cfg.local_asn),
        raw_med: r.med,
    }
}

/// How the export rules see where a path came from.
fn export_source(
    peers: &[Option<PeerSlot>],
    local_meta: &FastMap<(IpNet, u32), LocalRoute>,
    prefix: &IpNet,
    p: &Path,
) -> ExportSource {
    match peers.get(p.source as usize).and_then(|s| s.as_ref()) {
        Some(s) if !p.is_local() => ExportSource::Peer {
            kind: s.kind,
            rr_client: s.cfg.rr_client,
            bgp_id: s.bgp_id,
        },
        _ => ExportSource::Local(
            local_meta
                .get(&(*prefix, p.path_id))
                .map(|l| l.kind)
                .unwrap_or_default(),
        ),
    }
}

/// The best route of a destination, as handed to fib-sync.
fn build_best(
    prefix: &IpNet,
    d: &Dest,
    peers: &[Option<PeerSlot>],
    owners: &[String],
    local_meta: &FastMap<(IpNet, u32), LocalRoute>,
) -> Option<BestRoute> {
    let best = d.best()?;
    let peer = |slot: u32| peers.get(slot as usize).and_then(|s| s.as_ref());
    // Paths through the same next hop (a route and its reflection) are
    // one forwarding entry.
    let mut next_hops: Vec<EcmpHop> = Vec::with_capacity(d.ecmp() as usize);
    for p in &d.paths[..d.ecmp() as usize] {
        if !next_hops.iter().any(|h| h.addr == p.attrs.next_hop.addr) {
            next_hops.push(EcmpHop {
                addr: p.attrs.next_hop.addr,
                peer: if p.is_local() {
                    None
                } else {
                    peer(p.source).map(|s| s.id)
                },
            });
        }
    }
    Some(BestRoute {
        next_hops,
        local: best.is_local(),
        source: source_of(prefix, best, peers, owners, local_meta),
        attributes: best.attrs.clone(),
        stale: best.flags & flag::STALE != 0,
    })
}

fn source_of(
    prefix: &IpNet,
    p: &Path,
    peers: &[Option<PeerSlot>],
    owners: &[String],
    local_meta: &FastMap<(IpNet, u32), LocalRoute>,
) -> RouteSource {
    if p.is_local() {
        return RouteSource::Local {
            owner: owners.get(p.path_id as usize).cloned().unwrap_or_default(),
            kind: local_meta
                .get(&(*prefix, p.path_id))
                .map(|l| l.kind)
                .unwrap_or_default(),
        };
    }
    match peers.get(p.source as usize).and_then(|s| s.as_ref()) {
        Some(s) => RouteSource::Peer {
            peer: s.id,
            address: s.cfg.address,
            kind: s.kind,
        },
        None => RouteSource::Local {
            owner: String::from("(removed peer)"),
            kind: LocalKind::Static,
        },
    }
}

impl Rib {
    pub fn new(cfg: RibConfig) -> Self {
        let own_addrs = cfg.local_addresses.iter().copied().collect();
        Rib {
            cfg,
            peers: Vec::new(),
            peer_slots: HashMap::new(),
            tables: [LocRib::default(), LocRib::default()],
            interner: Interner::default(),
            resolver: Box::new(|_| Some(0)),
            nh_cache: FastMap::default(),
            own_addrs,
            owners: Vec::new(),
            owner_ids: HashMap::new(),
            local_meta: FastMap::default(),
            best_changes: Vec::new(),
            change_detail: true,
            changed: Vec::new(),
            seq: 0,
            dirty: Vec::new(),
            groups: Vec::new(),
            group_ids: HashMap::new(),
            add_path_groups: 0,
            queued: Vec::new(),
            deferral: None,
            selection_complete: true,
            updates_built: 0,
            keys: Vec::new(),
            sig_old: Vec::new(),
            sig_new: Vec::new(),
        }
    }

    pub fn config(&self) -> &RibConfig {
        &self.cfg
    }

    /// Replaces the next-hop resolver and re-evaluates every path.
    pub fn set_next_hop_resolver(&mut self, r: Box<dyn NextHopResolver>) {
        self.resolver = r;
        self.next_hops_changed();
    }

    /// The daemon's view of reachability changed: re-resolve every next hop
    /// and re-run the decision where a cost changed.
    pub fn next_hops_changed(&mut self) {
        self.nh_cache.clear();
        for fi in 0..2 {
            let prefixes: Vec<IpNet> = self.tables[fi].dests.keys().collect();
            for prefix in prefixes {
                let mut updates: Vec<(u32, u32, u32, u8)> = Vec::new();
                let current: Vec<(u32, u32, IpAddr, u32, u8)> = self.tables[fi]
                    .dests
                    .get(&prefix)
                    .map(|d| {
                        d.paths
                            .iter()
                            .filter(|p| !p.is_local())
                            .map(|p| {
                                (
                                    p.source,
                                    p.path_id,
                                    p.attrs.next_hop.addr,
                                    p.nh_cost,
                                    p.flags,
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for (source, path_id, addr, nh_cost, pflags) in current {
                    let (cost, bad) = self.resolve_next_hop(addr);
                    let flags =
                        (pflags & !flag::BAD_NEXT_HOP) | if bad { flag::BAD_NEXT_HOP } else { 0 };
                    if cost != nh_cost || flags != pflags {
                        updates.push((source, path_id, cost, flags));
                    }
                }
                if !updates.is_empty() {
                    self.change_dest(prefix, false, LOCAL_SOURCE, |d| {
                        for (s, id, cost, flags) in &updates {
                            if let Some(p) = d
                                .paths
                                .iter_mut()
                                .find(|p| p.source == *s && p.path_id == *id)
                            {
                                p.nh_cost = *cost;
                                p.flags = *flags;
                            }
                        }
                        true
                    });
                }
            }
        }
    }

    /// (cost, martian-or-ours) of a next hop, cached.
    fn resolve_next_hop(&mut self, addr: IpAddr) -> (u32, bool) {
        if is_martian(addr) || self.own_addrs.contains(&addr) {
            return (UNREACHABLE, true);
        }
        if let Some(c) = self.nh_cache.get(&addr) {
            return (*c, false);
        }
        let c = self
            .resolver
            .resolve(addr)
            .map_or(UNREACHABLE, |c| c.min(UNREACHABLE - 1));
        self.nh_cache.insert(addr, c);
        (c, false)
    }

    fn rebuild_own_addrs(&mut self) {
        self.own_addrs = self.cfg.local_addresses.iter().copied().collect();
        for s in self.peers.iter().flatten() {
            if let Some(a) = s.cfg.local_v4 {
                self.own_addrs.insert(IpAddr::V4(a));
            }
            if let Some(a) = s.cfg.local_v6 {
                self.own_addrs.insert(IpAddr::V6(a));
            }
        }
        self.nh_cache.clear();
    }

    // ---------------------------------------------------------------- peers

    pub(crate) fn slot(&self, id: PeerId) -> Result<u32, RibError> {
        self.peer_slots
            .get(&id)
            .copied()
            .ok_or(RibError::UnknownPeer(id))
    }

    pub(crate) fn peer(&self, slot: u32) -> Option<&PeerSlot> {
        self.peers.get(slot as usize).and_then(|p| p.as_ref())
    }

    pub(crate) fn peer_mut(&mut self, slot: u32) -> Option<&mut PeerSlot> {
        self.peers.get_mut(slot as usize).and_then(|p| p.as_mut())
    }

    /// Configures a peer (no session yet).
    pub fn add_peer(&mut self, id: PeerId, cfg: PeerConfig) -> Result<(), RibError> {
        if self.peer_slots.contains_key(&id) {
            return Err(RibError::DuplicatePeer(id));
        }
        let local_asn = cfg.local_asn.unwrap_or(self.cfg.local_asn);
        let kind = if cfg.peer_asn == local_asn {
            PeerKind::Ibgp
        } else {
            PeerKind::Ebgp
        };
        let slot = match self.peers.iter().position(|p| p.is_none()) {
            Some(i) => i,
            None => {
                self.peers.push(None);
                self.peers.len() - 1
            }
        };
        self.peers[slot] = Some(PeerSlot {
            id,
            cfg,
            kind,
            local_asn,
            bgp_id: Ipv4Addr::UNSPECIFIED,
            session: None,
            group: None,
            awaiting_dump: false,
            adj_in_pre: FastMap::default(),
            gr: Vec::new(),
            eor_rx: Vec::new(),
            counts: [0; 2],
        });
        self.peer_slots.insert(id, slot as u32);
        self.rebuild_own_addrs();
        info!(peer = %id, ?kind, "peer added to RIB");
        Ok(())
    }

    /// Removes a peer and every route it sent.
    pub fn remove_peer(&mut self, id: PeerId) -> Result<(), RibError> {
        let slot = self.slot(id)?;
        self.leave_group(slot);
        self.flush_peer(slot, None);
        // Settle the groups' Adj-RIB-Out before the slot can be reused, so no
        // entry names a slot that now belongs to another peer.
        self.process_dirty();
        self.peers[slot as usize] = None;
        self.peer_slots.remove(&id);
        self.rebuild_own_addrs();
        self.check_deferral_done();
        Ok(())
    }

    /// A session reached Established with these negotiated parameters.
    pub fn peer_up(
        &mut self,
        id: PeerId,
        session: PeerSession,
        now: Instant,
    ) -> Result<(), RibError> {
        let slot = self.slot(id)?;
        // A new session replaces any previous one (the session layer should
        // have said peer_down; do not leave a stale group membership).
        self.leave_group(slot);
        let stale_time = self.cfg.stale_path_time;
        let mut sweep: Vec<Family> = Vec::new();
        {
            let Some(p) = self.peer_mut(slot) else {
                return Err(RibError::UnknownPeer(id));
            };
            p.bgp_id = session.router_id;
            p.eor_rx.clear();
            // RFC 4724 §4.2: on re-establishment, stale routes of families
            // the peer no longer preserves are deleted at once; the others
            // wait for End-of-RIB.
            for (fam, st) in p.gr.iter_mut() {
                let preserved = session
                    .graceful_restart
                    .as_ref()
                    .and_then(|g| g.families.iter().find(|f| f.family == *fam))
                    .is_some_and(|f| f.forwarding_preserved)
                    || session
                        .llgr
                        .iter()
                        .any(|l| l.family == *fam && l.forwarding_preserved);
                if preserved && session.families.contains(fam) {
                    *st = GrState::AwaitingEor {
                        deadline: now + stale_time,
                    };
                } else {
                    sweep.push(*fam);
                }
            }
            p.gr.retain(|(f, _)| !sweep.contains(f));
            p.session = Some(session);
        }
        for f in sweep {
            self.sweep_stale(slot, f);
        }
        self.join_group(slot);
        self.check_deferral_done();
        info!(peer = %id, "peer up in RIB");
        Ok(())
    }

    /// The session ended. With [`DownKind::Graceful`] and graceful restart
    /// negotiated, the peer's routes stay as stale (RFC 4724 §4.2, RFC 8538);
    /// otherwise they are withdrawn now.
    pub fn peer_down(&mut self, id: PeerId, kind: DownKind, now: Instant) -> Result<(), RibError> {
        let slot = self.slot(id)?;
        self.leave_group(slot);
        let Some(p) = self.peer_mut(slot) else {
            return Err(RibError::UnknownPeer(id));
        };
        let Some(session) = p.session.take() else {
            return Ok(());
        };
        p.awaiting_dump = false;
        let mut keep: Vec<(Family, GrState, bool)> = Vec::new();
        if kind == DownKind::Graceful {
            for fam in &session.families {
                let gr = session
                    .graceful_restart
                    .as_ref()
                    .filter(|g| g.restart_time > 0 && g.families.iter().any(|f| f.family == *fam));
                let llgr = session
                    .llgr
                    .iter()
                    .find(|l| l.family == *fam && l.stale_time > 0);
                if let Some(g) = gr {
                    let deadline = now + std::time::Duration::from_secs(g.restart_time as u64);
                    let llgr = llgr.map(|l| l.stale_time);
                    keep.push((*fam, GrState::Restarting { deadline, llgr }, false));
                } else if let Some(l) = llgr {
                    // RFC 9494 §4.2: no (or zero-time) GR: straight to LLGR.
                    let deadline = now + std::time::Duration::from_secs(l.stale_time as u64);
                    keep.push((*fam, GrState::LongLived { deadline }, true));
                }
            }
        }
        let p = self.peer_mut(slot).expect("slot checked above");
        p.gr = keep.iter().map(|(f, s, _)| (*f, *s)).collect();
        if keep.is_empty() {
            p.adj_in_pre.clear();
        }
        for fam in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            match keep.iter().find(|(f, _, _)| *f == fam) {
                Some((_, _, llgr)) => self.mark_stale(slot, fam, *llgr),
                None => self.flush_peer(slot, Some(fam)),
            }
        }
        info!(peer = %id, ?kind, stale_families = keep.len(), "peer down in RIB");
        Ok(())
    }

    /// Marks a peer's paths stale; with `llgr`, also long-lived stale
    /// (least preferred), dropping those tagged NO_LLGR (RFC 9494 §4.3).
    fn mark_stale(&mut self, slot: u32, fam: Family, llgr: bool) {
        let Some(fi) = family_idx(fam) else { return };
        let prefixes: Vec<IpNet> = self.tables[fi]
            .dests
            .iter()
            .filter(|(_, d)| d.paths.iter().any(|p| p.source == slot))
            .map(|(k, _)| k)
            .collect();
        for prefix in prefixes {
            self.change_dest(prefix, false, slot, |d| {
                if llgr {
                    d.paths.retain(|p| {
                        p.source != slot || !p.attrs.attrs.communities.contains(&Community::NO_LLGR)
                    });
                }
                for p in d.paths.iter_mut().filter(|p| p.source == slot) {
                    p.flags |= flag::STALE | if llgr { flag::LLGR_STALE } else { 0 };
                }
                llgr
            });
        }
    }

    /// Removes a peer's stale paths of one family (End-of-RIB or timer).
    fn sweep_stale(&mut self, slot: u32, fam: Family) {
        self.remove_paths(fam, slot, |p| p.flags & flag::STALE != 0);
        if let Some(p) = self.peer_mut(slot) {
            p.gr.retain(|(f, _)| *f != fam);
        }
    }

    /// Removes every path of a peer (in one family, or all).
    fn flush_peer(&mut self, slot: u32, fam: Option<Family>) {
        for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            if fam.is_none_or(|x| x == f) {
                self.remove_paths(f, slot, |_| true);
                if let Some(p) = self.peer_mut(slot) {
                    p.adj_in_pre.retain(|(pfx, _), _| Family::of(pfx) != f);
                    p.gr.retain(|(x, _)| *x != f);
                }
            }
        }
    }

    /// Removes the paths of `source` in `fam` that match `pred`.
    fn remove_paths(&mut self, fam: Family, source: u32, pred: impl Fn(&Path) -> bool) {
        let Some(fi) = family_idx(fam) else { return };
        let prefixes: Vec<IpNet> = self.tables[fi]
            .dests
            .iter()
            .filter(|(_, d)| d.paths.iter().any(|p| p.source == source && pred(p)))
            .map(|(k, _)| k)
            .collect();
        let removed: usize = prefixes.len();
        for prefix in prefixes {
            self.change_dest(prefix, false, source, |d| {
                d.paths.retain(|p| p.source != source || !pred(p));
                true
            });
        }
        if removed > 0 {
            debug!(%fam, prefixes = removed, "paths removed");
        }
    }

    // ------------------------------------------------------------ decisions

    /// Applies `f` to the prefix's destination (created when `create`),
    /// re-runs the decision and records the consequences. `f` returns
    /// whether it changed any path.
    fn change_dest(
        &mut self,
        prefix: IpNet,
        create: bool,
        source: u32,
        f: impl FnOnce(&mut Dest) -> bool,
    ) {
        let fi = fam_idx(&prefix);
        let Rib {
            tables,
            peers,
            cfg,
            keys,
            sig_old,
            sig_new,
            dirty,
            best_changes,
            change_detail,
            changed: changed_prefixes,
            seq,
            owners,
            local_meta,
            deferral,
            add_path_groups,
            group_ids,
            ..
        } = self;
        let LocRib {
            dests: table,
            queued,
        } = &mut tables[fi];
        let (id, dest) = if create {
            table.entry(&prefix)
        } else {
            match table.get_with_id(&prefix) {
                Some(e) => e,
                None => return,
            }
        };
        dest.signature(sig_old);
        let before = dest.paths.len();
        let changed = f(dest);
        // Every caller changes the paths of one source: keep its per-family
        // count (max-prefix, RFC 4486 Cease/1) without scanning.
        let delta = dest.paths.len() as isize - before as isize;
        if delta != 0
            && let Some(Some(p)) = peers.get_mut(source as usize)
        {
            p.counts[fi] = p.counts[fi].saturating_add_signed(delta);
        }
        if changed {
            dest.decide(keys, cfg.always_compare_med, cfg.max_paths, |p| {
                rank_key(p, &prefix, peers, cfg)
            });
            dest.signature(sig_new);
            let best_changed = sig_old != sig_new;
            // Without update groups there is nobody to export to; a group
            // created later starts from the whole table.
            if (best_changed || *add_path_groups > 0) && !queued.get(id) && !group_ids.is_empty() {
                queued.set(id, true);
                dirty.push(id);
            }
            if best_changed && deferral.is_none() && !*change_detail {
                *seq += 1;
                changed_prefixes.push(prefix);
            } else if best_changed && deferral.is_none() {
                *seq += 1;
                best_changes.push(BestChange {
                    seq: *seq,
                    prefix,
                    best: build_best(&prefix, dest, peers, owners, local_meta),
                });
            }
        }
        // A queued prefix stays until its export pass has withdrawn it
        // (update groups' Adj-RIB-Out refers to it by slot).
        if dest.paths.is_empty() && !queued.get(id) {
            table.remove(&prefix);
        }
    }

    fn best_route_of(&self, fi: usize, prefix: &IpNet) -> Option<BestRoute> {
        let d = self.tables[fi].dests.get(prefix)?;
        build_best(prefix, d, &self.peers, &self.owners, &self.local_meta)
    }

    pub(crate) fn source_of(&self, prefix: &IpNet, p: &Path) -> RouteSource {
        source_of(prefix, p, &self.peers, &self.owners, &self.local_meta)
    }

    /// The current best route of a prefix.
    pub fn best(&self, prefix: &IpNet) -> Option<BestRoute> {
        self.best_route_of(fam_idx(prefix), prefix)
    }

    /// Every prefix with a usable route, and its best route.
    pub fn best_routes(&self) -> Vec<(IpNet, BestRoute)> {
        let mut out: Vec<(IpNet, BestRoute)> = Vec::new();
        for fi in 0..2 {
            for (k, d) in self.tables[fi].dests.iter() {
                if let Some(b) = build_best(&k, d, &self.peers, &self.owners, &self.local_meta) {
                    out.push((k, b));
                }
            }
        }
        out.sort_by_key(|a| a.0);
        out
    }

    // --------------------------------------------------------------- input

    /// Applies one received UPDATE (RFC 4271 §9, RFC 4760, RFC 7606).
    pub fn apply_update(
        &mut self,
        peer: PeerId,
        update: &Update,
    ) -> Result<ApplyOutcome, RibError> {
        let slot = self.slot(peer)?;
        if self.peer(slot).is_none_or(|p| p.session.is_none()) {
            return Err(RibError::PeerNotUp(peer));
        }
        let mut out = ApplyOutcome::default();
        if let Some(fam) = update.as_end_of_rib() {
            self.end_of_rib(slot, fam);
            out.end_of_rib = Some(fam);
            return Ok(out);
        }
        for n in &update.withdrawn {
            self.withdraw_path(slot, n);
            out.withdrawn += 1;
        }
        if let Some(u) = &update.mp_unreach {
            for n in &u.withdrawn {
                self.withdraw_path(slot, n);
                out.withdrawn += 1;
            }
        }
        let taw = update.treat_as_withdraw();
        if !update.nlri.is_empty() {
            let nh = update
                .attributes
                .next_hop
                .map(|a| NextHop::new(IpAddr::V4(a)));
            self.announce(slot, &update.attributes, nh, &update.nlri, taw, &mut out);
        }
        if let Some(r) = &update.mp_reach {
            if r.family.is_supported() {
                self.announce(
                    slot,
                    &update.attributes,
                    Some(r.next_hop),
                    &r.nlri,
                    taw,
                    &mut out,
                );
            } else {
                out.reject(RejectReason::UnsupportedFamily, r.nlri.len());
            }
        }
        Ok(out)
    }

    fn withdraw_path(&mut self, slot: u32, n: &Nlri) {
        let prefix = n.prefix.trunc();
        let id = n.path_id.unwrap_or(0);
        if let Some(p) = self.peer_mut(slot) {
            p.adj_in_pre.remove(&(prefix, id));
        }
        self.change_dest(prefix, false, slot, |d| d.remove(slot, id));
    }

    /// Loop and sanity checks on a received attribute set (RFC 4271 §9,
    /// RFC 4456 §8, RFC 9234 §5).
    fn import_check(&self, s: &PeerSlot, a: &PathAttributes) -> Option<RejectReason> {
        let ebgp = s.kind == PeerKind::Ebgp;
        if ebgp
            && a.as_path.first_as() != Some(s.cfg.peer_asn)
            && s.cfg.role != Some(Role::RouteServerClient)
        {
            return Some(RejectReason::FirstAsMismatch);
        }
        if a.as_path.count(s.local_asn) > s.cfg.num_allowed_local_as as usize {
            return Some(RejectReason::AsLoop);
        }
        if !ebgp {
            if a.originator_id == Some(self.cfg.router_id) {
                return Some(RejectReason::OriginatorLoop);
            }
            if a.cluster_list.contains(&self.cfg.effective_cluster_id()) {
                return Some(RejectReason::ClusterLoop);
            }
        }
        if let Some(role) = s.cfg.role {
            // Our role Provider/RouteServer: the peer is a customer or RS
            // client and must not send OTC routes; Peer: OTC must be theirs.
            let leak = match role {
                Role::Provider | Role::RouteServer => a.otc.is_some(),
                Role::Peer => a.otc.is_some_and(|o| o != s.cfg.peer_asn),
                _ => false,
            };
            if leak {
                return Some(RejectReason::RouteLeak);
            }
        }
        None
    }

    fn announce(
        &mut self,
        slot: u32,
        attrs: &PathAttributes,
        nh: Option<NextHop>,
        nlri: &[Nlri],
        taw: bool,
        out: &mut ApplyOutcome,
    ) {
        let Some(s) = self.peer(slot) else { return };
        let reason = if taw {
            Some(RejectReason::TreatAsWithdraw)
        } else if nh.is_none() {
            Some(RejectReason::MissingNextHop)
        } else {
            self.import_check(s, attrs)
        };
        let (Some(nh), None) = (nh, reason) else {
            // RFC 7606 §2 treat-as-withdraw, loops (RFC 4271 §9.1.2 / RFC
            // 4456 §8): drop the routes and any earlier version of them.
            let r = reason.unwrap_or(RejectReason::MissingNextHop);
            debug!(peer = %s.id, ?r, count = nlri.len(), "routes not accepted");
            out.reject(r, nlri.len());
            for n in nlri {
                self.withdraw_path(slot, n);
            }
            return;
        };
        let ebgp = s.kind == PeerKind::Ebgp;
        let mut a = attrs.clone();
        a.next_hop = None;
        if ebgp {
            // RFC 4271 §5.1.5, RFC 4456 §8: not meaningful across ASes.
            a.local_pref = None;
            a.originator_id = None;
            a.cluster_list.clear();
        }
        if let Some(role) = s.cfg.role {
            // RFC 9234 §5: mark routes from providers, peers and route
            // servers with the neighbour's AS.
            if a.otc.is_none()
                && matches!(role, Role::Customer | Role::Peer | Role::RouteServerClient)
            {
                a.otc = Some(s.cfg.peer_asn);
            }
        }
        let peer_kind = s.kind;
        let import = s.cfg.import.clone();
        let soft = s.cfg.soft_reconfig_inbound;
        let rfc8212_block = import.is_none() && ebgp && self.cfg.rfc8212;
        let base = self.interner.intern(RouteAttrs::new(a, nh));
        let (cost, bad) = self.resolve_next_hop(nh.addr);
        let flags = if bad { flag::BAD_NEXT_HOP } else { 0 };
        for n in nlri {
            let prefix = n.prefix.trunc();
            let id = n.path_id.unwrap_or(0);
            if soft && let Some(p) = self.peer_mut(slot) {
                p.adj_in_pre.insert((prefix, id), base.clone());
            }
            let attrs = match self.run_import(&import, rfc8212_block, peer_kind, &prefix, &base) {
                Some(a) => a,
                None => {
                    out.reject(RejectReason::ImportPolicy, 1);
                    self.change_dest(prefix, false, slot, |d| d.remove(slot, id));
                    continue;
                }
            };
            out.announced += 1;
            let path = Path {
                attrs,
                source: slot,
                path_id: id,
                nh_cost: cost,
                flags,
                ecmp: 0,
            };
            self.change_dest(prefix, true, path.source, |d| d.upsert(path));
        }
    }

    /// Whether import policy accepts a pre-policy route, and what decided.
    pub(crate) fn import_decision(
        &self,
        s: &PeerSlot,
        prefix: &IpNet,
        base: &RouteAttrs,
    ) -> (bool, crate::policy::Decider) {
        let ebgp = s.kind == PeerKind::Ebgp;
        match &s.cfg.import {
            None if ebgp && self.cfg.rfc8212 => (false, crate::policy::Decider::Rfc8212),
            None => (true, crate::policy::Decider::NoPolicy),
            Some(policy) => {
                let ctx = RouteCtx {
                    prefix,
                    next_hop: base.next_hop.addr,
                    source: SourceMatchInput::Remote(s.kind),
                    peer_kind: s.kind,
                    local_asn: self.cfg.local_asn,
                    default_local_pref: LocalPref::new(self.cfg.default_local_pref),
                    attrs: &base.attrs,
                };
                let r = policy.evaluate(&ctx);
                (r.verdict == Verdict::Accept, r.decider)
            }
        }
    }

    /// Import policy over one route: the attributes to store, or `None`.
    fn run_import(
        &mut self,
        import: &Option<Arc<Policy>>,
        rfc8212_block: bool,
        peer_kind: PeerKind,
        prefix: &IpNet,
        base: &Arc<RouteAttrs>,
    ) -> Option<Arc<RouteAttrs>> {
        if rfc8212_block {
            return None;
        }
        let Some(policy) = import else {
            return Some(base.clone());
        };
        let ctx = RouteCtx {
            prefix,
            next_hop: base.next_hop.addr,
            source: SourceMatchInput::Remote(peer_kind),
            peer_kind,
            local_asn: self.cfg.local_asn,
            default_local_pref: LocalPref::new(self.cfg.default_local_pref),
            attrs: &base.attrs,
        };
        let (verdict, _, modified) = policy.run(&ctx);
        match (verdict, modified) {
            (Verdict::Reject, _) => None,
            (Verdict::Accept, None) => Some(base.clone()),
            (Verdict::Accept, Some(m)) => {
                Some(self.interner.intern(RouteAttrs::new(m, base.next_hop)))
            }
        }
    }

    /// End-of-RIB received (RFC 4724 §2): sweep what is still stale.
    fn end_of_rib(&mut self, slot: u32, fam: Family) {
        let Some(p) = self.peer_mut(slot) else { return };
        if !p.eor_rx.contains(&fam) {
            p.eor_rx.push(fam);
        }
        let stale = p.gr.iter().any(|(f, _)| *f == fam);
        let id = p.id;
        if stale {
            info!(peer = %id, %fam, "End-of-RIB: sweeping stale routes");
            self.sweep_stale(slot, fam);
        }
        self.check_deferral_done();
    }

    // ------------------------------------------------------- local routes

    fn owner_id(&mut self, owner: &str) -> u32 {
        if let Some(id) = self.owner_ids.get(owner) {
            return *id;
        }
        let id = self.owners.len() as u32;
        self.owners.push(owner.to_string());
        self.owner_ids.insert(owner.to_string(), id);
        id
    }

    /// Originates (or updates) a route owned by `owner` (e.g. "ipam",
    /// "services"). Next hop self, ORIGIN IGP, empty AS_PATH. Says whether
    /// the owner had it before, and as it is now.
    pub fn originate(&mut self, prefix: IpNet, owner: &str, route: LocalRoute) -> LocalChange {
        let prefix = prefix.trunc();
        let id = self.owner_id(owner);
        let change = match self.local_meta.get(&(prefix, id)) {
            None => LocalChange::Added,
            Some(old) if *old == route => LocalChange::Unchanged,
            Some(_) => LocalChange::Updated,
        };
        let mut communities = route.communities.clone();
        communities.sort();
        communities.dedup();
        let mut large = route.large_communities.clone();
        large.sort();
        large.dedup();
        let local_pref = route.local_pref.unwrap_or_else(|| {
            crate::policy::priority_to_local_pref(self.cfg.normal_priority(&prefix))
        });
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            local_pref: Some(local_pref),
            med: route.med,
            communities,
            large_communities: large,
            ..PathAttributes::default()
        };
        let nh = route
            .next_hop
            .map(NextHop::new)
            .unwrap_or_else(|| RouteAttrs::self_next_hop(matches!(prefix, IpNet::V6(_))));
        let attrs = self.interner.intern(RouteAttrs::new(attrs, nh));
        self.local_meta.insert((prefix, id), route);
        let path = Path {
            attrs,
            source: LOCAL_SOURCE,
            path_id: id,
            nh_cost: 0,
            flags: 0,
            ecmp: 0,
        };
        self.change_dest(prefix, true, path.source, |d| d.upsert(path));
        change
    }

    /// Sets Calico's normal route priorities (see
    /// `RibConfig::normal_priority_v4`): local routes without a LOCAL_PREF
    /// of their own are originated again with the new one, and re-exported.
    /// Returns how many.
    pub fn set_normal_priority(&mut self, v4: u32, v6: u32) -> usize {
        let (old_v4, old_v6) = (self.cfg.normal_priority_v4, self.cfg.normal_priority_v6);
        if (old_v4, old_v6) == (v4, v6) {
            return 0;
        }
        self.cfg.normal_priority_v4 = v4;
        self.cfg.normal_priority_v6 = v6;
        let moved: Vec<(IpNet, u32, LocalRoute)> = self
            .local_meta
            .iter()
            .filter(|((p, _), r)| {
                r.local_pref.is_none()
                    && match p {
                        IpNet::V4(_) => old_v4 != v4,
                        IpNet::V6(_) => old_v6 != v6,
                    }
            })
            .map(|((p, id), r)| (*p, *id, r.clone()))
            .collect();
        let n = moved.len();
        for (prefix, id, route) in moved {
            if let Some(owner) = self.owners.get(id as usize).cloned() {
                self.originate(prefix, &owner, route);
            }
        }
        n
    }

    /// Withdraws a route originated by `owner`. Returns whether it existed.
    pub fn withdraw_local(&mut self, prefix: IpNet, owner: &str) -> bool {
        let prefix = prefix.trunc();
        let Some(&id) = self.owner_ids.get(owner) else {
            return false;
        };
        let existed = self.local_meta.remove(&(prefix, id)).is_some();
        self.change_dest(prefix, false, LOCAL_SOURCE, |d| d.remove(LOCAL_SOURCE, id));
        existed
    }

    /// Every route an owner originated, grouped by owner (in no order):
    /// what a RIB rebuilt for a new router id or AS must originate again.
    pub fn local_routes(&self) -> BTreeMap<String, Vec<(IpNet, LocalRoute)>> {
        let mut out: BTreeMap<String, Vec<(IpNet, LocalRoute)>> = BTreeMap::new();
        for ((prefix, id), r) in &self.local_meta {
            if let Some(owner) = self.owners.get(*id as usize) {
                out.entry(owner.clone())
                    .or_default()
                    .push((*prefix, r.clone()));
            }
        }
        out
    }

    /// Makes `routes` the complete set originated by `owner`: adds, updates
    /// and withdraws in one call (e.g. after an IPAM resync). Counts what
    /// changed.
    pub fn replace_local(&mut self, owner: &str, routes: Vec<(IpNet, LocalRoute)>) -> LocalChanges {
        let mut counts = LocalChanges::default();
        let id = self.owner_id(owner);
        let wanted: FastSet<IpNet> = routes.iter().map(|(p, _)| p.trunc()).collect();
        let stale: Vec<IpNet> = self
            .local_meta
            .keys()
            .filter(|(p, o)| *o == id && !wanted.contains(p))
            .map(|(p, _)| *p)
            .collect();
        for p in stale {
            self.withdraw_local(p, owner);
            counts.removed += 1;
        }
        for (p, r) in routes {
            match self.local_meta.get(&(p.trunc(), id)) {
                Some(old) if *old == r => counts.unchanged += 1,
                Some(_) => {
                    self.originate(p, owner, r);
                    counts.updated += 1;
                }
                None => {
                    self.originate(p, owner, r);
                    counts.added += 1;
                }
            }
        }
        counts
    }

    // ------------------------------------------------------------ output

    /// Best-route changes since the last call, in order.
    pub fn drain_best_changes(&mut self) -> Vec<BestChange> {
        std::mem::take(&mut self.best_changes)
    }

    /// With `false`, a best-route change is recorded as its prefix only
    /// ([`Rib::drain_changed_prefixes`]) and [`Rib::drain_best_changes`]
    /// stays empty: a reflector without a kernel to program builds no
    /// route per change, and asks [`Rib::best`] when it needs one. Changes
    /// pending when it is turned back on are converted.
    pub fn set_change_detail(&mut self, on: bool) {
        if on && !self.change_detail {
            for prefix in std::mem::take(&mut self.changed) {
                self.seq += 1;
                let best = self.best(&prefix);
                self.best_changes.push(BestChange {
                    seq: self.seq,
                    prefix,
                    best,
                });
            }
        }
        self.change_detail = on;
    }

    /// Prefixes whose best route changed since the last call, in order
    /// (with change detail off; see [`Rib::set_change_detail`]).
    pub fn drain_changed_prefixes(&mut self) -> Vec<IpNet> {
        std::mem::take(&mut self.changed)
    }

    /// False while selection is deferred (RFC 4724 §4.1), true once it
    /// ended (and from the start when there was none). When it turns true,
    /// the best changes drained next hold the complete table: fib-sync may
    /// then remove kernel routes of a previous run they did not confirm.
    pub fn selection_complete(&self) -> bool {
        self.selection_complete
    }

    pub(crate) fn group_key(&self, s: &PeerSlot) -> Option<GroupKey> {
        let sess = s.session.as_ref()?;
        let mut families: Vec<Family> = sess
            .families
            .iter()
            .copied()
            .filter(|f| f.is_supported())
            .collect();
        families.sort();
        let codec = tabby_bgp::codec::CodecCtx {
            four_octet_as: sess.four_octet_as,
            max_message_len: sess.max_message_len,
            add_path_rx: Default::default(),
            add_path_tx: sess.add_path_tx.iter().copied().collect(),
            extended_next_hop: sess.extended_next_hop.contains(&Family::IPV4_UNICAST),
            ebgp: s.kind == PeerKind::Ebgp,
        };
        Some(GroupKey {
            kind: s.kind,
            rr_client: s.cfg.rr_client,
            peer_asn: if s.kind == PeerKind::Ebgp {
                s.cfg.peer_asn
            } else {
                Asn(0)
            },
            local_asn: s.local_asn,
            next_hop_mode: s.cfg.next_hop_mode,
            local_v4: s.cfg.local_v4,
            local_v6: s.cfg.local_v6,
            v4_next_hop_v6: s.cfg.address.is_ipv6()
                && sess.extended_next_hop.contains(&Family::IPV4_UNICAST)
                && families.contains(&Family::IPV4_UNICAST),
            export: ExportPolicy(s.cfg.export.clone()),
            families,
            add_path_max: s.cfg.add_path_send_max,
            codec,
            role: s.cfg.role,
            llgr: !sess.llgr.is_empty(),
            rfc8212: self.cfg.rfc8212,
        })
    }

    fn join_group(&mut self, slot: u32) {
        let Some(key) = self.peer(slot).and_then(|s| self.group_key(s)) else {
            return;
        };
        let gid = match self.group_ids.get(&key) {
            Some(g) => *g,
            None => {
                let gid = match self.groups.iter().position(|g| g.is_none()) {
                    Some(i) => i as u32,
                    None => {
                        self.groups.push(None);
                        (self.groups.len() - 1) as u32
                    }
                };
                if key.add_path_max > 0 && !key.codec.add_path_tx.is_empty() {
                    self.add_path_groups += 1;
                }
                let mut g = UpdateGroup::new(gid, key.clone());
                // A new group starts from the whole Loc-RIB; nobody in it
                // has received anything yet, so the batch is discarded.
                let mut scratch = Batcher::default();
                let mut memo = ExportMemo::default();
                let ids: Vec<DestId> = self
                    .tables
                    .iter()
                    .flat_map(|t| t.dests.iter_ids().map(|(id, _, _)| id))
                    .collect();
                for id in ids {
                    if let Some((p, entries)) = self.export_entries(&g.key, id, Some(&mut memo)) {
                        g.apply(id, p, entries, &mut scratch);
                    }
                }
                self.groups[gid as usize] = Some(g);
                self.group_ids.insert(key, gid);
                debug!(group = gid, "update group created");
                gid
            }
        };
        if let Some(Some(g)) = self.groups.get_mut(gid as usize) {
            g.members.insert(slot);
        }
        if let Some(p) = self.peer_mut(slot) {
            p.group = Some(gid);
            p.awaiting_dump = true;
        }
    }

    fn leave_group(&mut self, slot: u32) {
        let Some(gid) = self.peer_mut(slot).and_then(|p| p.group.take()) else {
            return;
        };
        let mut empty_key = None;
        if let Some(Some(g)) = self.groups.get_mut(gid as usize) {
            g.members.remove(&slot);
            if g.members.is_empty() {
                empty_key = Some(g.key.clone());
            }
        }
        if let Some(key) = empty_key {
            if key.add_path_max > 0 && !key.codec.add_path_tx.is_empty() {
                self.add_path_groups -= 1;
            }
            self.group_ids.remove(&key);
            self.groups[gid as usize] = None;
            debug!(group = gid, "update group removed");
        }
    }

    /// The export source of a path.
    fn export_source(&self, prefix: &IpNet, p: &Path) -> ExportSource {
        export_source(&self.peers, &self.local_meta, prefix, p)
    }

    pub(crate) fn export_source_pub(&self, prefix: &IpNet, p: &Path) -> ExportSource {
        self.export_source(prefix, p)
    }

    /// What a group advertises for `prefix` now: best only, or up to N
    /// eligible paths with ADD-PATH (RFC 7911). With `memo`, results are
    /// reused for paths with the same attributes and source that the export
    /// policy accepts unmodified (see [`ExportMemo`]).
    /// `None` if the slot is vacant.
    pub(crate) fn export_entries(
        &mut self,
        key: &GroupKey,
        id: DestId,
        mut memo: Option<&mut ExportMemo>,
    ) -> Option<(IpNet, Exported)> {
        // Split borrows: the paths are read in place while attributes are
        // interned.
        let Rib {
            tables,
            interner,
            cfg,
            peers,
            local_meta,
            ..
        } = self;
        let fi = id.fam_idx();
        let (prefix, d) = tables[fi].dests.at(id)?;
        let prefix = &prefix;
        let n = if d.ecmp() == 0 {
            0
        } else if key.add_path(Family::of(prefix)) {
            key.add_path_max as usize
        } else {
            1
        };
        let cluster_id = cfg.effective_cluster_id();
        let mut out = Exported::new();
        for p in d.paths.iter().filter(|p| p.eligible()).take(n) {
            let llgr_stale = p.flags & flag::LLGR_STALE != 0;
            let input = ExportInput {
                prefix,
                attrs: &p.attrs,
                source: export_source(peers, local_meta, prefix, p),
                llgr_stale,
                cluster_id,
                default_local_pref: LocalPref::new(cfg.default_local_pref),
            };
            // Shared only for peer routes the policy leaves as they are
            // (local routes' treatment depends on their prefix's owner).
            let mkey = match (&memo, p.is_local()) {
                (Some(_), false) => match policy_peek(key, &input) {
                    PolicyPeek::Rejected => continue,
                    PolicyPeek::Unmodified => Some((
                        Arc::as_ptr(&p.attrs) as usize,
                        p.source,
                        llgr_stale,
                        fi as u8,
                    )),
                    PolicyPeek::Modified => None,
                },
                _ => None,
            };
            if let (Some(m), Some(k)) = (memo.as_deref(), mkey)
                && let Some(hit) = m.0.get(&k)
            {
                if let Some(a) = hit {
                    out.push((p.source, p.path_id, a.clone()));
                }
                continue;
            }
            let result = match export_route(key, &input) {
                Ok((ra, _)) => Some(interner.intern(ra)),
                Err(
                    e @ (crate::export::ExportDenied::TooLarge
                    | crate::export::ExportDenied::Unencodable(_)),
                ) => {
                    warn!(%prefix, reason = %e, "route not exported");
                    None
                }
                Err(_) => None,
            };
            if let (Some(m), Some(k)) = (memo.as_deref_mut(), mkey) {
                m.0.insert(k, result.clone());
            }
            if let Some(a) = result {
                out.push((p.source, p.path_id, a));
            }
        }
        Some((*prefix, out))
    }

    fn member_ids(&self, g: &UpdateGroup) -> Arc<[PeerId]> {
        let mut v: Vec<PeerId> = g
            .members
            .iter()
            .filter_map(|s| self.peer(*s))
            .filter(|p| !p.awaiting_dump)
            .map(|p| p.id)
            .collect();
        v.sort();
        v.into()
    }

    fn id_of(&self, slot: u32) -> PeerId {
        self.peer(slot).map_or(PeerId(u32::MAX), |p| p.id)
    }

    /// Runs pending export work into the queue.
    fn process_dirty(&mut self) {
        if self.deferral.is_some() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        if dirty.is_empty() {
            return;
        }
        for gi in 0..self.groups.len() {
            let Some(mut g) = self.groups[gi].take() else {
                continue;
            };
            let mut memo = ExportMemo::default();
            // One batch per group and pass, encoded in chunks: the NLRI of a
            // pass are held until packed, and a million-prefix pass would
            // hold them all at once.
            let mut encoded = g.new_batch();
            let mut corrections = Vec::new();
            for chunk in dirty.chunks(EXPORT_CHUNK) {
                let mut batch = Batcher::default();
                for &id in chunk {
                    if let Some((p, entries)) = self.export_entries(&g.key, id, Some(&mut memo)) {
                        g.apply(id, p, entries, &mut batch);
                    }
                }
                if !batch.is_empty() {
                    self.updates_built +=
                        g.finish(batch, &mut encoded, |s| self.id_of(s), &mut corrections);
                }
            }
            if !encoded.is_empty() {
                let members = self.member_ids(&g);
                if !members.is_empty() {
                    encoded.seal();
                    self.queued.push(Outgoing {
                        to: Recipients::Group {
                            group: g.id,
                            members,
                        },
                        batch: Arc::new(encoded),
                    });
                }
            }
            self.queued.append(&mut corrections);
            self.groups[gi] = Some(g);
        }
        // Every group has seen the change: unmark, and drop prefixes left
        // without paths (their withdrawals are queued above).
        for id in dirty {
            let t = &mut self.tables[id.fam_idx()];
            t.queued.set(id, false);
            if t.dests.at(id).is_some_and(|(_, d)| d.paths.is_empty()) {
                t.dests.remove_id(id);
            }
        }
        for (fi, t) in self.tables.iter_mut().enumerate() {
            if t.dests.len() == 0 {
                t.queued = Default::default();
                for g in self.groups.iter_mut().flatten() {
                    g.release(fi);
                }
            }
        }
    }

    /// UPDATEs to send since the last call, in order: group batches first,
    /// then the initial dump (ending with End-of-RIB) of peers that came up.
    pub fn drain_outgoing(&mut self) -> Vec<Outgoing> {
        if self.deferral.is_some() {
            return Vec::new();
        }
        self.process_dirty();
        let waiting: Vec<u32> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.as_ref()
                    .filter(|p| p.awaiting_dump && p.session.is_some())
                    .map(|_| i as u32)
            })
            .collect();
        // Peers of one group that came up together share their dump.
        let mut by_group: Vec<(u32, Vec<u32>)> = Vec::new();
        for slot in waiting {
            let Some(gid) = self.peer(slot).and_then(|p| p.group) else {
                continue;
            };
            match by_group.iter_mut().find(|(g, _)| *g == gid) {
                Some((_, v)) => v.push(slot),
                None => by_group.push((gid, vec![slot])),
            }
        }
        for (gid, slots) in by_group {
            self.dump_to(gid, &slots, None, true);
        }
        std::mem::take(&mut self.queued)
    }

    /// Queues everything group `gid` advertises to `slots` (members of it),
    /// for `family` or all, optionally followed by End-of-RIB.
    fn dump_to(&mut self, gid: u32, slots: &[u32], family: Option<Family>, eor: bool) {
        let Some(Some(g)) = self.groups.get(gid as usize) else {
            return;
        };
        let targets: FastSet<u32> = slots.iter().copied().collect();
        let families: Vec<Family> = g
            .key
            .families
            .iter()
            .copied()
            .filter(|f| family.is_none_or(|y| y == *f))
            .collect();
        let mut ids: Vec<PeerId> = slots.iter().map(|s| self.id_of(*s)).collect();
        ids.sort();
        let to = match ids[..] {
            [p] => Recipients::Peer(p),
            _ => Recipients::Group {
                group: gid,
                members: ids.into(),
            },
        };
        let tables = &self.tables;
        let batch = g.dump_for(&targets, family, |id| {
            tables[id.fam_idx()].dests.at(id).map(|(p, _)| p)
        });
        let mut encoded = g.new_batch();
        let mut corrections = Vec::new();
        self.updates_built += g.finish(batch, &mut encoded, |x| self.id_of(x), &mut corrections);
        if eor {
            for f in &families {
                if let Err(e) = encoded.end_of_rib(*f) {
                    warn!(group = gid, error = %e, "cannot encode End-of-RIB");
                }
            }
        }
        if !encoded.is_empty() {
            encoded.seal();
            self.queued.push(Outgoing {
                to,
                batch: Arc::new(encoded),
            });
        }
        self.queued.append(&mut corrections);
        for s in slots {
            if let Some(p) = self.peer_mut(*s) {
                p.awaiting_dump = false;
            }
        }
    }

    /// The peer asked for a route refresh (RFC 2918): re-send its
    /// Adj-RIB-Out for `family`.
    pub fn route_refresh(&mut self, peer: PeerId, family: Family) -> Result<(), RibError> {
        let slot = self.slot(peer)?;
        if self.peer(slot).is_none_or(|p| p.session.is_none()) {
            return Err(RibError::PeerNotUp(peer));
        }
        if !family.is_supported() {
            return Err(RibError::UnsupportedFamily(family));
        }
        self.process_dirty();
        if let Some(gid) = self.peer(slot).and_then(|p| p.group) {
            self.dump_to(gid, &[slot], Some(family), false);
        }
        Ok(())
    }

    /// Replaces a peer's import and export policies without a session reset
    /// (see [`Rib::update_settings`]).
    pub fn update_policy(
        &mut self,
        peer: PeerId,
        import: Option<Arc<Policy>>,
        export: Option<Arc<Policy>>,
    ) -> Result<PolicyChangeOutcome, RibError> {
        let slot = self.slot(peer)?;
        let mut s = self
            .peer(slot)
            .ok_or(RibError::UnknownPeer(peer))?
            .cfg
            .settings();
        s.import = import;
        s.export = export;
        self.update_settings(peer, s)
    }

    /// Applies a peer's changed routing settings without a session reset.
    /// Export side (export policy, next-hop mode): the peer moves to the
    /// update group of its new settings and gets only the difference.
    /// Import side (import policy, allowed local-AS count): re-applied from
    /// the pre-policy Adj-RIB-In when kept; otherwise the outcome asks for
    /// a route refresh.
    pub fn update_settings(
        &mut self,
        peer: PeerId,
        new: PeerSettings,
    ) -> Result<PolicyChangeOutcome, RibError> {
        let slot = self.slot(peer)?;
        let mut outcome = PolicyChangeOutcome::default();
        let (import_changed, export_changed, up, soft) = {
            let s = self.peer(slot).ok_or(RibError::UnknownPeer(peer))?;
            let old = s.cfg.settings();
            (
                old.import != new.import || old.num_allowed_local_as != new.num_allowed_local_as,
                old.export != new.export || old.next_hop_mode != new.next_hop_mode,
                s.session.is_some(),
                s.cfg.soft_reconfig_inbound,
            )
        };
        if export_changed {
            self.process_dirty();
            let old = self.advertised_to(slot);
            let dumped = self.peer(slot).is_some_and(|p| !p.awaiting_dump);
            self.leave_group(slot);
            if let Some(p) = self.peer_mut(slot) {
                p.cfg.export = new.export;
                p.cfg.next_hop_mode = new.next_hop_mode;
            }
            if up {
                self.join_group(slot);
                if dumped {
                    let new = self.advertised_to(slot);
                    self.queue_diff(slot, old, new);
                    if let Some(p) = self.peer_mut(slot) {
                        p.awaiting_dump = false;
                    }
                }
            }
        }
        if import_changed {
            if let Some(p) = self.peer_mut(slot) {
                p.cfg.import = new.import;
                p.cfg.num_allowed_local_as = new.num_allowed_local_as;
            }
            if soft {
                self.reapply_import(slot);
            } else if up {
                outcome.route_refresh = self
                    .peer(slot)
                    .and_then(|p| p.session.as_ref())
                    .map(|s| s.families.clone())
                    .unwrap_or_default();
            }
        }
        Ok(outcome)
    }

    /// What `slot` currently has from us: prefix → (tx id, attrs).
    fn advertised_to(&self, slot: u32) -> FastMap<IpNet, Vec<(u32, Arc<RouteAttrs>)>> {
        let mut m: FastMap<IpNet, Vec<(u32, Arc<RouteAttrs>)>> = FastMap::default();
        let Some(Some(g)) = self
            .peer(slot)
            .and_then(|p| p.group)
            .and_then(|gid| self.groups.get(gid as usize))
        else {
            return m;
        };
        let prefixes = g
            .advertised_slots()
            .filter_map(|id| Some((self.tables[id.fam_idx()].dests.at(id)?.0, g.adj_out(id))));
        for (p, entries) in prefixes {
            let add_path = g.key.add_path(Family::of(&p));
            let v: Vec<(u32, Arc<RouteAttrs>)> = if add_path {
                entries
                    .iter()
                    .filter(|e| e.source != slot)
                    .map(|e| (e.tx_id, e.attrs.clone()))
                    .collect()
            } else {
                entries
                    .first()
                    .filter(|e| e.source != slot)
                    .map(|e| (0, e.attrs.clone()))
                    .into_iter()
                    .collect()
            };
            if !v.is_empty() {
                m.insert(p, v);
            }
        }
        m
    }

    fn queue_diff(
        &mut self,
        slot: u32,
        old: FastMap<IpNet, Vec<(u32, Arc<RouteAttrs>)>>,
        new: FastMap<IpNet, Vec<(u32, Arc<RouteAttrs>)>>,
    ) {
        let id = self.id_of(slot);
        let Some(Some(g)) = self
            .peer(slot)
            .and_then(|p| p.group)
            .and_then(|gid| self.groups.get(gid as usize))
        else {
            return;
        };
        let mut keys: Vec<&IpNet> = old.keys().chain(new.keys()).collect();
        keys.sort();
        keys.dedup();
        let nlri = |p: &IpNet, tx: u32| {
            if tx == 0 {
                Nlri::new(*p)
            } else {
                Nlri::with_path_id(*p, tx)
            }
        };
        let mut b = Batcher::default();
        for p in keys {
            let o = old.get(p).map(|v| v.as_slice()).unwrap_or(&[]);
            let n = new.get(p).map(|v| v.as_slice()).unwrap_or(&[]);
            for (tx, a) in n {
                if !o.iter().any(|(t, b)| t == tx && Arc::ptr_eq(a, b)) {
                    b.push_announce(a, &nlri(p, *tx));
                }
            }
            for (tx, _) in o {
                if !n.iter().any(|(t, _)| t == tx) {
                    b.push_withdraw(&nlri(p, *tx));
                }
            }
        }
        let mut encoded = g.new_batch();
        let mut corrections = Vec::new();
        self.updates_built += g.finish(b, &mut encoded, |x| self.id_of(x), &mut corrections);
        if !encoded.is_empty() {
            encoded.seal();
            self.queued.push(Outgoing {
                to: Recipients::Peer(id),
                batch: Arc::new(encoded),
            });
        }
        self.queued.append(&mut corrections);
    }

    /// Re-runs import policy over a peer's pre-policy Adj-RIB-In.
    fn reapply_import(&mut self, slot: u32) {
        let Some(s) = self.peer(slot) else { return };
        let entries: Vec<((IpNet, u32), Arc<RouteAttrs>)> =
            s.adj_in_pre.iter().map(|(k, v)| (*k, v.clone())).collect();
        let import = s.cfg.import.clone();
        let kind = s.kind;
        let block = import.is_none() && kind == PeerKind::Ebgp && self.cfg.rfc8212;
        for ((prefix, id), base) in entries {
            match self.run_import(&import, block, kind, &prefix, &base) {
                None => self.change_dest(prefix, false, slot, |d| d.remove(slot, id)),
                Some(attrs) => {
                    let (cost, bad) = self.resolve_next_hop(base.next_hop.addr);
                    let stale = self.tables[fam_idx(&prefix)]
                        .dests
                        .get(&prefix)
                        .and_then(|d| d.paths.iter().find(|p| p.source == slot && p.path_id == id))
                        .map_or(0, |p| p.flags & (flag::STALE | flag::LLGR_STALE));
                    let path = Path {
                        attrs,
                        source: slot,
                        path_id: id,
                        nh_cost: cost,
                        flags: stale | if bad { flag::BAD_NEXT_HOP } else { 0 },
                        ecmp: 0,
                    };
                    self.change_dest(prefix, true, path.source, |d| d.upsert(path));
                }
            }
        }
    }

    // ------------------------------------------------------------- timers

    /// Starts selection deferral as a restarting speaker (RFC 4724 §4.1):
    /// no best changes and no UPDATEs until every peer that came up with
    /// graceful restart has sent End-of-RIB for all its families, or until
    /// `until`.
    pub fn defer_selection(&mut self, until: Instant) {
        self.deferral = Some(until);
        self.selection_complete = false;
        info!("route selection deferred until End-of-RIB or the deferral timer");
    }

    pub fn is_deferring(&self) -> bool {
        self.deferral.is_some()
    }

    fn check_deferral_done(&mut self) {
        if self.deferral.is_none() {
            return;
        }
        let all = self.peers.iter().flatten().all(|p| match &p.session {
            None => false,
            Some(s) => {
                s.graceful_restart.is_none() || s.families.iter().all(|f| p.eor_rx.contains(f))
            }
        });
        if all {
            self.finish_deferral("End-of-RIB from every peer");
        }
    }

    fn finish_deferral(&mut self, why: &str) {
        self.deferral = None;
        self.selection_complete = true;
        info!(reason = why, "route selection deferral ended");
        for (prefix, best) in self.best_routes() {
            self.seq += 1;
            if self.change_detail {
                self.best_changes.push(BestChange {
                    seq: self.seq,
                    prefix,
                    best: Some(best),
                });
            } else {
                self.changed.push(prefix);
            }
        }
    }

    /// The earliest instant [`Rib::on_timer`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let gr = self
            .peers
            .iter()
            .flatten()
            .flat_map(|p| p.gr.iter().map(|(_, s)| s.deadline()));
        gr.chain(self.deferral).min()
    }

    /// Fires every timer due at `now`.
    pub fn on_timer(&mut self, now: Instant) {
        if self.deferral.is_some_and(|d| d <= now) {
            self.finish_deferral("deferral timer");
        }
        let mut due: Vec<(u32, Family, GrState)> = Vec::new();
        for (i, p) in self.peers.iter().enumerate() {
            if let Some(p) = p {
                for (f, s) in &p.gr {
                    if s.deadline() <= now {
                        due.push((i as u32, *f, *s));
                    }
                }
            }
        }
        for (slot, fam, st) in due {
            match st {
                GrState::Restarting {
                    llgr: Some(secs), ..
                } => {
                    if let Some(p) = self.peer_mut(slot) {
                        for (f, s) in p.gr.iter_mut() {
                            if *f == fam {
                                *s = GrState::LongLived {
                                    deadline: now + std::time::Duration::from_secs(secs as u64),
                                };
                            }
                        }
                    }
                    self.mark_stale(slot, fam, true);
                }
                _ => {
                    info!(peer = %self.id_of(slot), %fam, "graceful-restart timer expired: sweeping stale routes");
                    self.sweep_stale(slot, fam);
                }
            }
        }
    }

    // -------------------------------------------------------------- stats

    pub fn stats(&self) -> RibStats {
        RibStats {
            // A prefix that lost its last path stays until exported.
            prefixes: self
                .tables
                .iter()
                .flat_map(|t| t.dests.values())
                .filter(|d| !d.paths.is_empty())
                .count(),
            paths: self.tables.iter().map(|t| t.path_count()).sum(),
            attribute_sets: self.interner.len(),
            update_groups: self.groups.iter().flatten().count(),
            updates_built: self.updates_built,
        }
    }

    /// The update group a peer belongs to (for `tabbyctl`).
    pub fn group_of(&self, peer: PeerId) -> Option<u32> {
        self.slot(peer)
            .ok()
            .and_then(|s| self.peer(s))
            .and_then(|p| p.group)
    }

    /// Paths advertised to a peer in `family` (its Adj-RIB-Out, as its
    /// update group has it, split horizon applied). Constant time.
    pub fn advertised_count(&self, peer: PeerId, family: Family) -> usize {
        let Ok(slot) = self.slot(peer) else {
            return 0;
        };
        self.peer(slot)
            .filter(|p| p.session.is_some() && !p.awaiting_dump)
            .and_then(|p| p.group)
            .and_then(|g| self.groups.get(g as usize))
            .and_then(|g| g.as_ref())
            .map_or(0, |g| g.advertised_to(slot, family))
    }

    /// Paths a peer has in the Loc-RIB in `family` (stale ones included),
    /// for max-prefix checks after each UPDATE. Constant time.
    pub fn prefix_count(&self, peer: PeerId, family: Family) -> usize {
        let (Ok(slot), Some(fi)) = (self.slot(peer), family_idx(family)) else {
            return 0;
        };
        self.peer(slot).map_or(0, |p| p.counts[fi])
    }
}
