//! Helpers shared by the scenario tests: building UPDATEs, wiring RIBs.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ipnet::IpNet;
use tabby_bgp::attr::{AsPath, NextHop, Origin};
use tabby_bgp::message::{MpReach, Update};
use tabby_bgp::{Asn, Family, Nlri, PathAttributes};
use tabby_rib::*;

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// An IPv4 announcement with ORIGIN IGP.
pub fn announce(prefixes: &[&str], next_hop: &str, as_path: &[u32]) -> Update {
    let nh = ip(next_hop);
    let attributes = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence(as_path.iter().map(|a| Asn(*a))),
        next_hop: match nh {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        },
        ..Default::default()
    };
    with_attrs(prefixes, next_hop, attributes)
}

/// An announcement with explicit attributes (IPv6 goes in MP_REACH).
pub fn with_attrs(prefixes: &[&str], next_hop: &str, mut attributes: PathAttributes) -> Update {
    let nlri: Vec<Nlri> = prefixes.iter().map(|p| Nlri::new(net(p))).collect();
    let nh = ip(next_hop);
    if nlri
        .first()
        .is_some_and(|n| n.family() == Family::IPV6_UNICAST)
    {
        attributes.next_hop = None;
        Update {
            attributes,
            mp_reach: Some(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop::new(nh),
                nlri,
            }),
            ..Default::default()
        }
    } else {
        if let IpAddr::V4(a) = nh {
            attributes.next_hop = Some(a);
        }
        Update {
            attributes,
            nlri,
            ..Default::default()
        }
    }
}

pub fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: prefixes.iter().map(|p| Nlri::new(net(p))).collect(),
        ..Default::default()
    }
}

/// The UPDATEs among `out` addressed to `peer`, flattened.
pub fn updates_for(out: &[Outgoing], peer: PeerId) -> Vec<Update> {
    out.iter()
        .filter(|o| o.to.includes(peer))
        .flat_map(|o| o.updates.iter().cloned())
        .collect()
}

/// Announced prefixes (classic and MP) in `updates`, in order.
pub fn announced(updates: &[Update]) -> Vec<IpNet> {
    updates
        .iter()
        .flat_map(|u| {
            u.nlri
                .iter()
                .chain(u.mp_reach.iter().flat_map(|m| m.nlri.iter()))
                .map(|n| n.prefix)
        })
        .collect()
}

pub fn withdrawn(updates: &[Update]) -> Vec<IpNet> {
    updates
        .iter()
        .flat_map(|u| {
            u.withdrawn
                .iter()
                .chain(u.mp_unreach.iter().flat_map(|m| m.withdrawn.iter()))
                .map(|n| n.prefix)
        })
        .collect()
}

/// A line per UPDATE, stable, for golden comparisons.
pub fn render(updates: &[Update]) -> Vec<String> {
    updates
        .iter()
        .map(|u| {
            if let Some(f) = u.as_end_of_rib() {
                return format!("EOR {f}");
            }
            let mut s = String::new();
            let w = withdrawn(std::slice::from_ref(u));
            if !w.is_empty() {
                s.push_str(&format!(
                    "W {:?} ",
                    w.iter().map(|p| p.to_string()).collect::<Vec<_>>()
                ));
            }
            let a = announced(std::slice::from_ref(u));
            if !a.is_empty() {
                let at = &u.attributes;
                let nh = u
                    .mp_reach
                    .as_ref()
                    .map(|m| m.next_hop.addr)
                    .or(at.next_hop.map(IpAddr::V4))
                    .map(|x| x.to_string())
                    .unwrap_or_default();
                s.push_str(&format!(
                    "A {:?} nh={} path=[{}] lp={:?} med={:?} orig={:?} cl={:?} comm={:?}",
                    a.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    nh,
                    at.as_path,
                    at.local_pref,
                    at.med,
                    at.originator_id.map(|o| o.to_string()),
                    at.cluster_list
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>(),
                    at.communities
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>(),
                ));
            }
            s.trim_end().to_string()
        })
        .collect()
}

pub fn now() -> Instant {
    Instant::now()
}
