//! Our OPEN, and the checks of the peer's OPEN (RFC 4271 §6.2).

use crate::capability::{Capability, ExtendedNextHop, GrFamily, GracefulRestart, LlgrFamily};
use crate::message::Open;
use crate::notification::OpenMessageError;
use crate::types::{Afi, Asn, Family};

use super::config::SessionConfig;

/// The OPEN a session with `cfg` sends.
pub fn local_open(cfg: &SessionConfig) -> Open {
    let mut caps: Vec<Capability> = cfg
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    caps.push(Capability::RouteRefresh);
    if cfg.enhanced_route_refresh {
        caps.push(Capability::EnhancedRouteRefresh);
    }
    caps.push(Capability::FourOctetAs(cfg.local_as));
    if let Some(gr) = &cfg.graceful_restart {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: gr.restarting,
            notification: gr.notification,
            restart_time: gr.restart_time.min(0x0fff),
            families: cfg
                .families
                .iter()
                .map(|f| GrFamily {
                    family: *f,
                    forwarding_preserved: gr.forwarding_preserved,
                })
                .collect(),
        }));
    }
    if let Some(stale) = cfg.llgr_stale_time {
        caps.push(Capability::LongLivedGracefulRestart(
            cfg.families
                .iter()
                .map(|f| LlgrFamily {
                    family: *f,
                    forwarding_preserved: cfg
                        .graceful_restart
                        .is_some_and(|g| g.forwarding_preserved),
                    stale_time: stale.min(0x00ff_ffff),
                })
                .collect(),
        ));
    }
    let add_path: Vec<_> = cfg
        .add_path
        .iter()
        .filter(|a| cfg.families.contains(&a.family))
        .copied()
        .collect();
    if !add_path.is_empty() {
        caps.push(Capability::AddPath(add_path));
    }
    if cfg.extended_next_hop && cfg.families.contains(&Family::IPV4_UNICAST) {
        caps.push(Capability::ExtendedNextHop(vec![ExtendedNextHop {
            family: Family::IPV4_UNICAST,
            next_hop_afi: Afi::IPV6,
        }]));
    }
    if cfg.extended_messages {
        caps.push(Capability::ExtendedMessage);
    }
    if let Some(role) = cfg.role {
        caps.push(Capability::Role(role));
    }
    Open {
        version: 4,
        // RFC 6793 §4.1: AS_TRANS when our AS does not fit two octets.
        my_as: u16::try_from(cfg.local_as.0).unwrap_or(Asn::TRANS.0 as u16),
        hold_time: cfg.hold_time,
        bgp_id: cfg.router_id,
        capabilities: caps,
        unknown_params: Vec::new(),
    }
}

/// RFC 4271 §6.2 and the RFCs that extend it: the error to send when the
/// peer's OPEN is unacceptable.
pub(crate) fn check_open(cfg: &SessionConfig, open: &Open) -> Result<(), OpenMessageError> {
    use OpenMessageError as E;
    // §6.2: data is the largest version we support.
    if open.version != 4 {
        return Err(E::UnsupportedVersion(4));
    }
    // RFC 5492 §5: optional parameters other than capabilities.
    if let Some((kind, _)) = open.unknown_params.first() {
        return Err(E::UnsupportedOptionalParameter(Some(*kind)));
    }
    // RFC 6793 §4.2 and CONFORMANCE row 8.
    let four_octet = open.capabilities.iter().find_map(|c| match c {
        Capability::FourOctetAs(a) => Some(*a),
        _ => None,
    });
    let peer_as = match four_octet {
        Some(a) => a,
        None if open.my_as == Asn::TRANS.0 as u16 => {
            return Err(E::BadPeerAs(Some(open.my_as)));
        }
        None => Asn(open.my_as.into()),
    };
    if peer_as.0 == 0 || !cfg.peer_as.accepts(cfg.local_as, peer_as) {
        return Err(E::BadPeerAs(Some(open.my_as)));
    }
    // §6.2: hold time 1 and 2 are unacceptable, 0 is valid.
    if matches!(open.hold_time, 1 | 2) {
        return Err(E::UnacceptableHoldTime);
    }
    // RFC 6286 §2.2: zero is invalid; equal to ours only invalid within an AS.
    let id = u32::from(open.bgp_id);
    if id == 0 || (peer_as == cfg.local_as && open.bgp_id == cfg.router_id) {
        return Err(E::BadBgpIdentifier(Some(open.bgp_id)));
    }
    // RFC 9234 §4.2.
    let peer_role = open.capabilities.iter().find_map(|c| match c {
        Capability::Role(r) => Some(*r),
        _ => None,
    });
    if let Some(ours) = cfg.role {
        match peer_role {
            Some(theirs) if !ours.matches(theirs) => {
                return Err(E::RoleMismatch(Some(theirs as u8)));
            }
            None if cfg.role_strict => return Err(E::RoleMismatch(None)),
            _ => {}
        }
    }
    Ok(())
}
