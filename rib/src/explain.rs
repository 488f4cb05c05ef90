//! Explanations: why a prefix has the best route it has, and who gets it.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::attrs::RouteAttrs;
use crate::decision::{Step, compare, resolve_med};
use crate::export::{ExportInput, accepted_by, export_route};
use crate::loc_rib::{UNREACHABLE, flag};
use crate::policy::Decider;
use crate::rib::{Rib, fam_idx, rank_key};
use crate::types::{PeerId, RouteSource};

/// One candidate path of a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateExplain {
    pub source: RouteSource,
    /// Received ADD-PATH id (0 without ADD-PATH).
    pub path_id: u32,
    pub attributes: Arc<RouteAttrs>,
    pub best: bool,
    /// Part of the ECMP set.
    pub multipath: bool,
    /// The decision step at which it lost to the best path.
    pub lost_at: Option<Step>,
    /// Why the path cannot be used at all, if so.
    pub ineligible: Option<&'static str>,
    pub next_hop_cost: Option<u32>,
    pub stale: bool,
    pub llgr_stale: bool,
    /// The import rule that accepted it, when known (peers with
    /// soft-reconfiguration inbound keep what is needed to tell).
    pub import_decided_by: Option<Decider>,
}

/// A route a peer sent for the prefix that import policy rejected (known
/// for peers with soft-reconfiguration inbound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRejected {
    pub peer: PeerId,
    pub path_id: u32,
    pub decided_by: Decider,
}

/// Whether one peer receives the prefix, and what decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerExport {
    pub peer: PeerId,
    pub address: IpAddr,
    pub exported: bool,
    /// A sentence for the operator.
    pub reason: String,
    /// The policy rule that decided, when policy decided.
    pub decided_by: Option<Decider>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub prefix: IpNet,
    /// In decision order, best first.
    pub candidates: Vec<CandidateExplain>,
    pub import_rejected: Vec<ImportRejected>,
    pub exports: Vec<PeerExport>,
}

impl Rib {
    /// Every candidate path of `prefix` with the step at which it lost, and
    /// for every configured peer whether the best route is exported to it.
    pub fn explain(&self, prefix: &IpNet) -> Explanation {
        let prefix = prefix.trunc();
        let mut out = Explanation {
            prefix,
            candidates: Vec::new(),
            import_rejected: Vec::new(),
            exports: Vec::new(),
        };
        let dest = self.tables[fam_idx(&prefix)].dests.get(&prefix);
        if let Some(d) = dest {
            let mut keys: Vec<_> = d
                .paths
                .iter()
                .map(|p| rank_key(p, &prefix, &self.peers, &self.cfg))
                .collect();
            resolve_med(&mut keys, self.cfg.always_compare_med);
            for (i, p) in d.paths.iter().enumerate() {
                let best = i == 0 && d.ecmp() > 0;
                let lost_at = match (keys.first(), keys.get(i)) {
                    _ if !p.eligible() => Some(Step::Eligibility),
                    (Some(b), Some(k)) if i > 0 => Some(compare(b, k).1),
                    _ => None,
                };
                let ineligible = if p.flags & flag::BAD_NEXT_HOP != 0 {
                    Some("next hop is martian or one of our own addresses")
                } else if p.nh_cost == UNREACHABLE {
                    Some("next hop unreachable")
                } else {
                    None
                };
                out.candidates.push(CandidateExplain {
                    source: self.source_of(&prefix, p),
                    path_id: if p.is_local() { 0 } else { p.path_id },
                    attributes: p.attrs.clone(),
                    best,
                    multipath: i < d.ecmp() as usize,
                    lost_at: if best {
                        None
                    } else {
                        lost_at.or(Some(Step::Eligibility))
                    },
                    ineligible,
                    next_hop_cost: (p.nh_cost != UNREACHABLE).then_some(p.nh_cost),
                    stale: p.flags & flag::STALE != 0,
                    llgr_stale: p.flags & flag::LLGR_STALE != 0,
                    import_decided_by: None,
                });
            }
        }
        // Import decisions, replayed from the pre-policy Adj-RIB-In.
        for (slot, s) in self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i as u32, p)))
        {
            for ((pfx, id), base) in s.adj_in_pre.iter().filter(|((pfx, _), _)| *pfx == prefix) {
                let (accepted, decider) = self.import_decision(s, pfx, base);
                if accepted {
                    // Candidates are in the destination's path order.
                    let i = dest.and_then(|d| {
                        d.paths
                            .iter()
                            .position(|p| p.source == slot && p.path_id == *id)
                    });
                    if let Some(c) = i.and_then(|i| out.candidates.get_mut(i)) {
                        c.import_decided_by = Some(decider);
                    }
                } else {
                    out.import_rejected.push(ImportRejected {
                        peer: s.id,
                        path_id: *id,
                        decided_by: decider,
                    });
                }
            }
        }
        let best = dest.and_then(|d| d.best());
        let mut peers: Vec<_> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i as u32, p)))
            .collect();
        peers.sort_by_key(|(_, p)| p.id);
        for (slot, s) in peers {
            let mut e = PeerExport {
                peer: s.id,
                address: s.cfg.address,
                exported: false,
                reason: String::new(),
                decided_by: None,
            };
            match (best, self.group_key(s)) {
                (_, None) => e.reason = "session not established".into(),
                (None, _) => e.reason = "no usable route".into(),
                (Some(b), _) if b.source == slot => {
                    e.reason = "learned from this peer (not sent back)".into()
                }
                (Some(b), Some(key)) => {
                    let input = ExportInput {
                        prefix: &prefix,
                        attrs: &b.attrs,
                        source: self.export_source_pub(&prefix, b),
                        llgr_stale: b.flags & flag::LLGR_STALE != 0,
                        cluster_id: self.cfg.effective_cluster_id(),
                        default_local_pref: tabby_bgp::attr::LocalPref::new(
                            self.cfg.default_local_pref,
                        ),
                    };
                    match export_route(&key, &input) {
                        Ok((_, rule)) => {
                            let d = accepted_by(&key, rule);
                            e.exported = true;
                            e.reason = format!("exported ({d})");
                            e.decided_by = Some(d);
                        }
                        Err(err) => {
                            e.reason = err.to_string();
                            if let crate::export::ExportDenied::Policy(d) = err {
                                e.decided_by = Some(d);
                            }
                        }
                    }
                }
            }
            out.exports.push(e);
        }
        out
    }
}
