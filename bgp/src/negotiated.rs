//! What one BGP session agreed on: the intersection of two OPEN messages.
//!
//! [`Negotiated`] is built once per connection when the peer's OPEN passes
//! the checks in [`crate::fsm`]; it is handed to the daemon with the
//! `Established` action and yields the codec's [`CodecCtx`].

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::capability::{Capability, GracefulRestart, LlgrFamily, Role};
use crate::codec::CodecCtx;
use crate::message::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Open};
use crate::types::{Afi, Asn, Family};

/// The parameters both sides of a session agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub local_asn: Asn,
    pub peer_asn: Asn,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// The peer is in another AS.
    pub ebgp: bool,
    /// RFC 4271 §4.2: the smaller of both hold times; zero means no hold
    /// timer and no keepalives.
    pub hold_time: Duration,
    /// The interval we send KEEPALIVE at (zero when `hold_time` is zero).
    pub keepalive: Duration,
    /// Families both sides announced (RFC 4760 §8: IPv4 unicast when a side
    /// sent no multiprotocol capability at all).
    pub families: BTreeSet<Family>,
    /// RFC 6793: both sides speak 4-octet AS numbers.
    pub four_octet_as: bool,
    /// RFC 7911: families in which we receive path identifiers.
    pub add_path_rx: BTreeSet<Family>,
    /// RFC 7911: families in which we send path identifiers.
    pub add_path_tx: BTreeSet<Family>,
    /// RFC 2918: the peer accepts ROUTE-REFRESH.
    pub route_refresh: bool,
    /// RFC 7313: both sides announced enhanced route refresh.
    pub enhanced_route_refresh: bool,
    /// RFC 8654: both sides announced extended messages.
    pub extended_message: bool,
    /// RFC 8950: families whose NLRI may carry an IPv6 next hop, both ways.
    pub extended_next_hop: BTreeSet<Family>,
    /// RFC 4724: the peer's graceful-restart capability, when both sides
    /// announced one (we act as helper only then).
    pub peer_gr: Option<GracefulRestart>,
    /// RFC 8538: both sides set the N bit, so a NOTIFICATION other than Hard
    /// Reset keeps routes as stale.
    pub gr_notification: bool,
    /// RFC 9494: the peer's long-lived GR families, when both sides announced
    /// the capability.
    pub peer_llgr: Vec<LlgrFamily>,
    /// RFC 9234: the peer's role, when it announced one.
    pub peer_role: Option<Role>,
    /// The OPEN we sent and the one we received, for monitoring (BMP's
    /// Peer Up carries both, RFC 7854 §4.10). Shared, not copied: a
    /// reflector's sessions with one configuration send one OPEN.
    pub local_open: Arc<Open>,
    pub peer_open: Arc<Open>,
    /// The connection's local and remote socket addresses: filled in by
    /// the I/O driver (the sans-IO session has no sockets).
    pub local_addr: Option<SocketAddr>,
    pub remote_addr: Option<SocketAddr>,
}

impl Negotiated {
    /// Intersects our OPEN with the peer's. Both OPENs must already have
    /// passed the checks of RFC 4271 §6.2.
    pub fn new(local: &Open, peer: &Open, keepalive_cfg: Option<u16>) -> Negotiated {
        Negotiated::sharing(
            &Arc::new(local.clone()),
            Arc::new(peer.clone()),
            keepalive_cfg,
        )
    }

    /// [`Negotiated::new`] keeping the OPENs it is given rather than copies.
    pub fn sharing(
        local_open: &Arc<Open>,
        peer_open: Arc<Open>,
        keepalive_cfg: Option<u16>,
    ) -> Negotiated {
        let (local, peer) = (local_open.as_ref(), peer_open.as_ref());
        let local_asn = local.asn();
        let peer_asn = peer.asn();
        let ours = families(local);
        let theirs = families(peer);
        let families: BTreeSet<Family> = ours.intersection(&theirs).copied().collect();

        let has = |open: &Open, f: &dyn Fn(&Capability) -> bool| open.capabilities.iter().any(f);
        let four_octet_as = has(local, &|c| matches!(c, Capability::FourOctetAs(_)))
            && has(peer, &|c| matches!(c, Capability::FourOctetAs(_)));
        let route_refresh = has(peer, &|c| matches!(c, Capability::RouteRefresh));
        let enhanced_route_refresh = has(local, &|c| matches!(c, Capability::EnhancedRouteRefresh))
            && has(peer, &|c| matches!(c, Capability::EnhancedRouteRefresh));
        let extended_message = has(local, &|c| matches!(c, Capability::ExtendedMessage))
            && has(peer, &|c| matches!(c, Capability::ExtendedMessage));

        // RFC 7911 §4: we receive ids where we said Receive and the peer said
        // Send, and send them where we said Send and the peer said Receive.
        let add_path = |open: &Open| -> Vec<crate::capability::AddPathFamily> {
            open.capabilities
                .iter()
                .filter_map(|c| match c {
                    Capability::AddPath(v) => Some(v.clone()),
                    _ => None,
                })
                .flatten()
                .collect()
        };
        let (lap, pap) = (add_path(local), add_path(peer));
        let mut add_path_rx = BTreeSet::new();
        let mut add_path_tx = BTreeSet::new();
        for l in &lap {
            if !families.contains(&l.family) {
                continue;
            }
            for p in pap.iter().filter(|p| p.family == l.family) {
                if l.mode.can_receive() && p.mode.can_send() {
                    add_path_rx.insert(l.family);
                }
                if l.mode.can_send() && p.mode.can_receive() {
                    add_path_tx.insert(l.family);
                }
            }
        }

        // RFC 8950 §4: both sides must announce the same (family, next-hop
        // AFI) pair; we only use IPv6 next hops for IPv4 NLRI.
        let enh = |open: &Open| -> BTreeSet<(Family, Afi)> {
            open.capabilities
                .iter()
                .filter_map(|c| match c {
                    Capability::ExtendedNextHop(v) => Some(v.clone()),
                    _ => None,
                })
                .flatten()
                .map(|e| (e.family, e.next_hop_afi))
                .collect()
        };
        let extended_next_hop = enh(local)
            .intersection(&enh(peer))
            .filter(|(f, afi)| families.contains(f) && *afi == Afi::IPV6)
            .map(|(f, _)| *f)
            .collect();

        let gr = |open: &Open| {
            open.capabilities.iter().find_map(|c| match c {
                Capability::GracefulRestart(g) => Some(g.clone()),
                _ => None,
            })
        };
        let (local_gr, peer_gr) = match (gr(local), gr(peer)) {
            (Some(l), Some(p)) => (Some(l), Some(p)),
            _ => (None, None),
        };
        let gr_notification =
            matches!((&local_gr, &peer_gr), (Some(l), Some(p)) if l.notification && p.notification);

        let llgr = |open: &Open| {
            open.capabilities.iter().find_map(|c| match c {
                Capability::LongLivedGracefulRestart(v) => Some(v.clone()),
                _ => None,
            })
        };
        let peer_llgr = match (llgr(local), llgr(peer)) {
            (Some(_), Some(p)) => p
                .into_iter()
                .filter(|f| families.contains(&f.family))
                .collect(),
            _ => Vec::new(),
        };
        let peer_role = peer.capabilities.iter().find_map(|c| match c {
            Capability::Role(r) => Some(*r),
            _ => None,
        });

        // RFC 4271 §4.2: the smaller hold time; keepalive a third of it
        // unless configured lower (§10 suggests one third).
        let hold = local.hold_time.min(peer.hold_time);
        let keepalive = if hold == 0 {
            0
        } else {
            let third = (hold / 3).max(1);
            keepalive_cfg.map_or(third, |k| k.clamp(1, third))
        };

        Negotiated {
            local_asn,
            peer_asn,
            peer_id: peer.bgp_id,
            ebgp: local_asn != peer_asn,
            hold_time: Duration::from_secs(hold.into()),
            keepalive: Duration::from_secs(keepalive.into()),
            families,
            four_octet_as,
            add_path_rx,
            add_path_tx,
            route_refresh,
            enhanced_route_refresh,
            extended_message,
            extended_next_hop,
            peer_gr,
            gr_notification,
            peer_llgr,
            peer_role,
            local_open: local_open.clone(),
            peer_open: peer_open.clone(),
            local_addr: None,
            remote_addr: None,
        }
    }

    /// Every capability the peer sent, unknown ones included, for operators.
    pub fn peer_capabilities(&self) -> &[Capability] {
        &self.peer_open.capabilities
    }

    /// The codec parameters this session's messages use.
    pub fn codec_ctx(&self) -> CodecCtx {
        CodecCtx {
            four_octet_as: self.four_octet_as,
            max_message_len: if self.extended_message {
                MAX_EXTENDED_MESSAGE_LEN
            } else {
                MAX_MESSAGE_LEN
            },
            add_path_rx: self.add_path_rx.clone(),
            add_path_tx: self.add_path_tx.clone(),
            extended_next_hop: self.extended_next_hop.contains(&Family::IPV4_UNICAST),
            ebgp: self.ebgp,
        }
    }

    /// The peer's GR families we keep routes of as stale after a restart
    /// (RFC 4724 §4.2): announced by the peer and negotiated here.
    pub fn graceful_restart_families(&self) -> Vec<Family> {
        self.peer_gr
            .iter()
            .flat_map(|g| g.families.iter())
            .map(|f| f.family)
            .filter(|f| self.families.contains(f))
            .collect()
    }
}

/// The families an OPEN announces (RFC 4760 §8: none means IPv4 unicast).
fn families(open: &Open) -> BTreeSet<Family> {
    let set: BTreeSet<Family> = open
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect();
    if set.is_empty() {
        BTreeSet::from([Family::IPV4_UNICAST])
    } else {
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{AddPathFamily, AddPathMode, ExtendedNextHop, GrFamily};

    fn open(asn: u32, caps: Vec<Capability>) -> Open {
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(Asn::TRANS.0 as u16),
            hold_time: 90,
            bgp_id: Ipv4Addr::new(198, 18, 0, 1),
            capabilities: caps,
            unknown_params: Vec::new(),
        }
    }

    #[test]
    fn families_intersect_and_default_to_ipv4() {
        let l = open(
            65001,
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
            ],
        );
        let p = open(65002, vec![Capability::Multiprotocol(Family::IPV6_UNICAST)]);
        let n = Negotiated::new(&l, &p, None);
        assert_eq!(n.families, BTreeSet::from([Family::IPV6_UNICAST]));
        assert!(n.ebgp);
        let bare = open(65002, vec![]);
        let n = Negotiated::new(&l, &bare, None);
        assert_eq!(n.families, BTreeSet::from([Family::IPV4_UNICAST]));
        assert!(!n.four_octet_as);
    }

    #[test]
    fn add_path_per_direction() {
        let ap = |mode| {
            Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode,
            }])
        };
        let l = open(65001, vec![ap(AddPathMode::Both)]);
        let p = open(65001, vec![ap(AddPathMode::Send)]);
        let n = Negotiated::new(&l, &p, None);
        assert!(n.add_path_rx.contains(&Family::IPV4_UNICAST));
        assert!(n.add_path_tx.is_empty());
        let ctx = n.codec_ctx();
        assert_eq!(ctx.add_path_rx, n.add_path_rx);
        assert!(!ctx.ebgp);
    }

    #[test]
    fn hold_time_and_keepalive() {
        let mut l = open(65001, vec![]);
        let mut p = open(65002, vec![]);
        l.hold_time = 90;
        p.hold_time = 30;
        let n = Negotiated::new(&l, &p, None);
        assert_eq!(n.hold_time, Duration::from_secs(30));
        assert_eq!(n.keepalive, Duration::from_secs(10));
        // A configured keepalive above a third of the hold time is clamped.
        let n = Negotiated::new(&l, &p, Some(20));
        assert_eq!(n.keepalive, Duration::from_secs(10));
        let n = Negotiated::new(&l, &p, Some(3));
        assert_eq!(n.keepalive, Duration::from_secs(3));
        p.hold_time = 0;
        let n = Negotiated::new(&l, &p, None);
        assert_eq!(n.hold_time, Duration::ZERO);
        assert_eq!(n.keepalive, Duration::ZERO);
    }

    #[test]
    fn graceful_restart_needs_both_sides() {
        let gr = |n| {
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: n,
                restart_time: 120,
                families: vec![GrFamily {
                    family: Family::IPV4_UNICAST,
                    forwarding_preserved: true,
                }],
            })
        };
        let l = open(65001, vec![gr(true)]);
        let p = open(65002, vec![gr(true)]);
        let n = Negotiated::new(&l, &p, None);
        assert!(n.gr_notification);
        assert_eq!(n.graceful_restart_families(), vec![Family::IPV4_UNICAST]);
        let p = open(65002, vec![gr(false)]);
        assert!(!Negotiated::new(&l, &p, None).gr_notification);
        let none = open(65002, vec![]);
        assert!(Negotiated::new(&l, &none, None).peer_gr.is_none());
    }

    #[test]
    fn extended_next_hop_and_messages() {
        let enh = Capability::ExtendedNextHop(vec![ExtendedNextHop {
            family: Family::IPV4_UNICAST,
            next_hop_afi: Afi::IPV6,
        }]);
        let l = open(65001, vec![enh.clone(), Capability::ExtendedMessage]);
        let p = open(65002, vec![enh, Capability::ExtendedMessage]);
        let ctx = Negotiated::new(&l, &p, None).codec_ctx();
        assert!(ctx.extended_next_hop);
        assert_eq!(ctx.max_message_len, MAX_EXTENDED_MESSAGE_LEN);
        let p = open(65002, vec![]);
        let ctx = Negotiated::new(&l, &p, None).codec_ctx();
        assert!(!ctx.extended_next_hop);
        assert_eq!(ctx.max_message_len, MAX_MESSAGE_LEN);
    }
}
