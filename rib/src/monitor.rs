//! Read access for monitoring (BMP, RFC 7854): a peer's Adj-RIB-In before
//! and after import policy, by route or whole. The Loc-RIB side is
//! [`Rib::best`] and [`Rib::best_routes`].

use std::sync::Arc;

use ipnet::IpNet;

use crate::attrs::RouteAttrs;
use crate::rib::{Rib, fam_idx};
use crate::types::{PeerId, RibError};

/// One route of an Adj-RIB-In: prefix, ADD-PATH path id (0 without), and
/// its attributes (with the next hop).
pub type AdjRibInRoute = (IpNet, u32, Arc<RouteAttrs>);

impl Rib {
    /// The route `peer` gave for `prefix` (path `path_id`) as stored after
    /// import policy (post-policy Adj-RIB-In), if any.
    pub fn adj_rib_in_route(
        &self,
        peer: PeerId,
        prefix: &IpNet,
        path_id: u32,
    ) -> Option<Arc<RouteAttrs>> {
        let slot = self.slot(peer).ok()?;
        let prefix = prefix.trunc();
        self.tables[fam_idx(&prefix)]
            .dests
            .get(&prefix)?
            .paths
            .iter()
            .find(|p| p.source == slot && p.path_id == path_id)
            .map(|p| p.attrs.clone())
    }

    /// Every route `peer` has in the post-policy Adj-RIB-In, in prefix
    /// order. Walks the whole table: for a resynchronisation, not per change.
    pub fn adj_rib_in(&self, peer: PeerId) -> Vec<AdjRibInRoute> {
        let Ok(slot) = self.slot(peer) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for t in &self.tables {
            for (prefix, d) in t.dests.iter() {
                for p in d.paths.iter().filter(|p| p.source == slot) {
                    out.push((prefix, p.path_id, p.attrs.clone()));
                }
            }
        }
        out.sort_by_key(|a| (a.0, a.1));
        out
    }

    /// The pre-policy Adj-RIB-In of `peer`, in prefix order; `None` when
    /// it is not kept ([`Rib::set_keep_pre_policy`]).
    pub fn adj_rib_in_pre(&self, peer: PeerId) -> Option<Vec<AdjRibInRoute>> {
        let p = self.peer(self.slot(peer).ok()?)?;
        if !p.cfg.soft_reconfig_inbound {
            return None;
        }
        let mut out: Vec<AdjRibInRoute> = p
            .adj_in_pre
            .iter()
            .map(|((prefix, id), a)| (*prefix, *id, a.clone()))
            .collect();
        out.sort_by_key(|a| (a.0, a.1));
        Some(out)
    }

    /// Keeps (or stops keeping) `peer`'s routes as received, before import
    /// policy (what soft reconfiguration inbound keeps). Returns true when
    /// the table starts empty on an established session: the routes the
    /// peer sent before are not in it until the peer sends them again (a
    /// route refresh).
    pub fn set_keep_pre_policy(&mut self, peer: PeerId, keep: bool) -> Result<bool, RibError> {
        let slot = self.slot(peer)?;
        let p = self.peer_mut(slot).ok_or(RibError::UnknownPeer(peer))?;
        if p.cfg.soft_reconfig_inbound == keep {
            return Ok(false);
        }
        p.cfg.soft_reconfig_inbound = keep;
        if !keep {
            p.adj_in_pre = Default::default();
        }
        Ok(keep && p.session.is_some())
    }
}
