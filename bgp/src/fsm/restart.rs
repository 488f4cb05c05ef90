//! Graceful restart and Hard Reset rules (RFC 4724, RFC 8538, RFC 9494):
//! which NOTIFICATION goes out, and whether a peer's routes survive it.

use std::time::Duration;

use crate::negotiated::Negotiated;
use crate::notification::{Cease, Notification, NotificationKind};

use super::{DownReason, StaleRoutes};

/// RFC 8538 §5: with the N bit negotiated, Cease / Maximum Number of
/// Prefixes Reached, Administrative Shutdown and Peer De-configured MUST go
/// out as a Hard Reset.
pub(super) fn must_hard_reset(n: Notification, neg: Option<&Negotiated>) -> Notification {
    if !neg.is_some_and(|n| n.gr_notification) {
        return n;
    }
    match n.kind() {
        NotificationKind::Cease(
            c @ (Cease::MaxPrefixesReached(_)
            | Cease::AdministrativeShutdown(_)
            | Cease::PeerDeconfigured),
        ) => c.hard_reset().into(),
        _ => n,
    }
}

fn is_hard_reset(n: &Notification) -> bool {
    matches!(n.kind(), NotificationKind::Cease(Cease::HardReset(_)))
}

/// Whether graceful restart keeps the peer's routes after `reason`
/// (RFC 4724 §4.2, RFC 8538 §4, RFC 9494 §4.3).
pub(super) fn stale_routes(neg: &Negotiated, reason: &DownReason) -> Option<StaleRoutes> {
    let applies = match reason {
        DownReason::ConnectionLost | DownReason::PeerReconnected | DownReason::Detached => true,
        DownReason::NotificationSent(n) | DownReason::NotificationReceived(n) => {
            neg.gr_notification && !is_hard_reset(n)
        }
        DownReason::AdminStop(_) => false,
        DownReason::AdminReset { hard } => !hard && neg.gr_notification,
    };
    if !applies {
        return None;
    }
    let families = neg.graceful_restart_families();
    let restart_time =
        Duration::from_secs(neg.peer_gr.as_ref().map_or(0, |g| g.restart_time).into());
    let llgr = neg.peer_llgr.clone();
    if (families.is_empty() || restart_time.is_zero()) && llgr.is_empty() {
        return None;
    }
    Some(StaleRoutes {
        restart_time,
        families,
        llgr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{Capability, GrFamily, GracefulRestart, LlgrFamily};
    use crate::message::Open;
    use crate::types::Family;
    use std::net::Ipv4Addr;

    fn neg(restart_time: u16, n_bit: bool, llgr: bool) -> Negotiated {
        let mut caps = vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: n_bit,
                restart_time,
                families: vec![GrFamily {
                    family: Family::IPV4_UNICAST,
                    forwarding_preserved: true,
                }],
            }),
        ];
        if llgr {
            caps.push(Capability::LongLivedGracefulRestart(vec![LlgrFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
                stale_time: 3600,
            }]));
        }
        let open = |id| Open {
            version: 4,
            my_as: 65001,
            hold_time: 90,
            bgp_id: Ipv4Addr::new(198, 18, 0, id),
            capabilities: caps.clone(),
            unknown_params: Vec::new(),
        };
        Negotiated::new(&open(1), &open(2), None)
    }

    #[test]
    fn hard_reset_wraps_subcode_and_data() {
        let shutdown = Cease::AdministrativeShutdown(Some("x".into()));
        let n = Notification::from(shutdown.clone());
        let h = Notification::from(shutdown.clone().hard_reset());
        assert_eq!(
            h.kind(),
            NotificationKind::Cease(Cease::HardReset(Some(Box::new(shutdown))))
        );
        // RFC 8538 §3: the data is the Cease's subcode, then its data.
        assert_eq!(h.data, vec![2, 1, b'x']);
        // Only with the N bit, and only for subcodes 1-3.
        assert_eq!(must_hard_reset(n.clone(), Some(&neg(120, true, false))), h);
        assert_eq!(must_hard_reset(n.clone(), Some(&neg(120, false, false))), n);
        let collision = Notification::from(Cease::ConnectionCollisionResolution);
        assert_eq!(
            must_hard_reset(collision.clone(), Some(&neg(120, true, false))),
            collision
        );
    }

    #[test]
    fn which_downs_keep_routes() {
        let hold = DownReason::NotificationSent(NotificationKind::HoldTimerExpired.into());
        let hard =
            DownReason::NotificationReceived(Cease::AdministrativeReset(None).hard_reset().into());
        let n = neg(120, true, false);
        assert!(stale_routes(&n, &DownReason::ConnectionLost).is_some());
        assert!(stale_routes(&n, &hold).is_some());
        assert!(stale_routes(&n, &hard).is_none());
        assert!(stale_routes(&n, &DownReason::AdminStop(None)).is_none());
        let s = stale_routes(&n, &DownReason::ConnectionLost).expect("stale");
        assert_eq!(s.restart_time, Duration::from_secs(120));
        assert_eq!(s.families, vec![Family::IPV4_UNICAST]);
        // No N bit: a NOTIFICATION flushes.
        assert!(stale_routes(&neg(120, false, false), &hold).is_none());
        // Restart time 0 keeps nothing, unless long-lived GR applies.
        assert!(stale_routes(&neg(0, true, false), &DownReason::ConnectionLost).is_none());
        let s = stale_routes(&neg(0, true, true), &DownReason::ConnectionLost).expect("llgr");
        assert_eq!(s.llgr.len(), 1);
    }
}
