//! Paths in version-neutral form: what a model path says to a GoBGP client,
//! and what a client's `global rib add|del` path asks for. Each version only
//! packs (v3 `Any`, v4 oneofs) the [`PathAttr`]s built here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use prost_types::Timestamp;
use tabby_proto::gobgp as g;
use tonic::Status;

use crate::convert::{parse_addr, parse_prefix};
use crate::model::{Family, LargeCommunity, LocalRoute, Origin, Path, PathSource, RouteKind};

/// One path attribute, in the leaf messages both versions share.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PathAttr {
    Origin(g::OriginAttribute),
    AsPath(g::AsPathAttribute),
    NextHop(g::NextHopAttribute),
    /// MP_REACH_NLRI: how IPv6 next hops travel (RFC 4760 §3).
    MpReach {
        family: g::Family,
        next_hops: Vec<String>,
        prefixes: Vec<g::IpAddressPrefix>,
    },
    Med(g::MultiExitDiscAttribute),
    LocalPref(g::LocalPrefAttribute),
    Communities(g::CommunitiesAttribute),
    LargeCommunities(g::LargeCommunitiesAttribute),
}

/// Everything a GoBGP `Path` says about one model path, but its packing.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PathFacts {
    pub nlri: g::IpAddressPrefix,
    pub attrs: Vec<PathAttr>,
    pub age: Timestamp,
    pub best: bool,
    pub withdrawal: bool,
    pub family: g::Family,
    pub source_asn: u32,
    /// Empty for locally originated paths.
    pub neighbor_ip: String,
    pub stale: bool,
    pub from_external: bool,
}

pub(super) fn family_pb(f: Family) -> g::Family {
    g::Family {
        afi: match f {
            Family::Ipv4 => g::family::Afi::Ip as i32,
            Family::Ipv6 => g::family::Afi::Ip6 as i32,
        },
        safi: g::family::Safi::Unicast as i32,
    }
}

/// A client's family; none means IPv4 unicast, as the CLI's default.
pub(super) fn family_from_pb(f: Option<&g::Family>) -> Result<Family, Status> {
    let Some(f) = f else { return Ok(Family::Ipv4) };
    match (f.afi, f.safi) {
        (1, 1) => Ok(Family::Ipv4),
        (2, 1) => Ok(Family::Ipv6),
        (afi, safi) => Err(Status::unimplemented(format!(
            "address family afi {afi} safi {safi} is not carried by tabbyd: use -a ipv4 or -a ipv6"
        ))),
    }
}

/// The `Global.families` value of each family tabbyd serves (AFI << 16 | SAFI).
pub(super) const SERVED_FAMILIES: [u32; 2] = [1 << 16 | 1, 2 << 16 | 1];

pub(super) fn timestamp(unix: SystemTime) -> Timestamp {
    let d = unix.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

pub(super) fn ago(seconds: u64) -> Timestamp {
    timestamp(
        SystemTime::now()
            .checked_sub(Duration::from_secs(seconds))
            .unwrap_or(UNIX_EPOCH),
    )
}

pub(super) fn prefix_pb(prefix: &IpNet) -> g::IpAddressPrefix {
    g::IpAddressPrefix {
        prefix_len: u32::from(prefix.prefix_len()),
        prefix: prefix.addr().to_string(),
    }
}

fn large_pb(c: &LargeCommunity) -> g::LargeCommunity {
    g::LargeCommunity {
        global_admin: c.global_admin,
        local_data1: c.local_data1,
        local_data2: c.local_data2,
    }
}

/// The attributes of a model path as GoBGP's CLI expects them: NEXT_HOP for
/// IPv4, MP_REACH_NLRI for IPv6 (RFC 4760 §3), LOCAL_PREF on local paths.
fn path_attrs(prefix: &IpNet, p: &Path) -> Vec<PathAttr> {
    let family = Family::of_prefix(prefix);
    let mut attrs = vec![PathAttr::Origin(g::OriginAttribute {
        origin: match p.origin {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        },
    })];
    if !p.as_path.is_empty() {
        attrs.push(PathAttr::AsPath(g::AsPathAttribute {
            segments: vec![g::AsSegment {
                r#type: g::as_segment::Type::AsSequence as i32,
                numbers: p.as_path.clone(),
            }],
        }));
    }
    attrs.push(match family {
        Family::Ipv4 => PathAttr::NextHop(g::NextHopAttribute {
            next_hop: p.next_hop.to_string(),
        }),
        Family::Ipv6 => PathAttr::MpReach {
            family: family_pb(family),
            next_hops: vec![p.next_hop.to_string()],
            prefixes: vec![prefix_pb(prefix)],
        },
    });
    if let Some(med) = p.med {
        attrs.push(PathAttr::Med(g::MultiExitDiscAttribute { med }));
    }
    if matches!(p.source, PathSource::Local(_)) || p.local_pref != 0 {
        attrs.push(PathAttr::LocalPref(g::LocalPrefAttribute {
            local_pref: p.local_pref,
        }));
    }
    if !p.communities.is_empty() {
        attrs.push(PathAttr::Communities(g::CommunitiesAttribute {
            communities: p.communities.clone(),
        }));
    }
    if !p.large_communities.is_empty() {
        attrs.push(PathAttr::LargeCommunities(g::LargeCommunitiesAttribute {
            communities: p.large_communities.iter().map(large_pb).collect(),
        }));
    }
    attrs
}

/// What a GoBGP client is told about path `p` of `prefix`.
pub(super) fn path_facts(prefix: &IpNet, p: &Path, local_as: u32) -> PathFacts {
    let (neighbor_ip, source_asn, from_external) = match &p.source {
        PathSource::Local(_) => (String::new(), local_as, false),
        PathSource::Peer(a) => (
            a.to_string(),
            p.as_path.first().copied().unwrap_or(local_as),
            true,
        ),
    };
    PathFacts {
        nlri: prefix_pb(prefix),
        attrs: path_attrs(prefix, p),
        age: ago(p.age_seconds),
        best: p.best,
        withdrawal: false,
        family: family_pb(Family::of_prefix(prefix)),
        source_asn,
        neighbor_ip,
        stale: p.stale,
        from_external,
    }
}

/// A withdrawal of `prefix` (no attributes), for watch streams.
pub(super) fn withdrawal_facts(prefix: &IpNet) -> PathFacts {
    PathFacts {
        nlri: prefix_pb(prefix),
        attrs: Vec::new(),
        age: timestamp(SystemTime::now()),
        best: false,
        withdrawal: true,
        family: family_pb(Family::of_prefix(prefix)),
        source_asn: 0,
        neighbor_ip: String::new(),
        stale: false,
        from_external: false,
    }
}

/// A `gobgp global rib add|del` path → the local route it asks for.
/// tabbyd originates every local route with ORIGIN IGP and an empty
/// AS_PATH; the CLI always sends an ORIGIN (INCOMPLETE unless told), so any
/// valid ORIGIN is accepted.
pub(super) fn local_route(
    nlri: &g::IpAddressPrefix,
    attrs: Vec<PathAttr>,
) -> Result<LocalRoute, Status> {
    let prefix = parse_prefix("path.nlri", &format!("{}/{}", nlri.prefix, nlri.prefix_len))?;
    let mut route = LocalRoute {
        prefix,
        kind: RouteKind::Unspecified,
        communities: Vec::new(),
        large_communities: Vec::new(),
        next_hop: None,
        local_pref: None,
        med: None,
        priority: None,
    };
    let mut next_hop: Option<String> = None;
    for a in attrs {
        match a {
            PathAttr::NextHop(nh) => next_hop = Some(nh.next_hop),
            PathAttr::MpReach { next_hops, .. } => next_hop = next_hops.into_iter().next(),
            PathAttr::Communities(c) => route.communities = c.communities,
            PathAttr::LargeCommunities(c) => {
                route.large_communities = c
                    .communities
                    .iter()
                    .map(|c| LargeCommunity {
                        global_admin: c.global_admin,
                        local_data1: c.local_data1,
                        local_data2: c.local_data2,
                    })
                    .collect();
            }
            PathAttr::Med(m) => route.med = Some(m.med),
            PathAttr::LocalPref(l) => route.local_pref = Some(l.local_pref),
            PathAttr::Origin(o) if o.origin > 2 => {
                return Err(Status::invalid_argument(format!(
                    "origin {} is not a valid ORIGIN (0 igp, 1 egp, 2 incomplete; RFC 4271 §5.1.1)",
                    o.origin
                )));
            }
            PathAttr::Origin(_) => {}
            PathAttr::AsPath(asp) => {
                if asp.segments.iter().any(|s| !s.numbers.is_empty()) {
                    return Err(Status::invalid_argument(
                        "locally originated routes carry an empty AS_PATH: drop the aspath argument",
                    ));
                }
            }
        }
    }
    if let Some(nh) = next_hop.filter(|s| !s.is_empty()) {
        let addr = parse_addr("nexthop", &nh)?;
        // The CLI fills "0.0.0.0" / "::" when no nexthop was given.
        if !addr.is_unspecified() {
            if Family::of_addr(&addr) != Family::of_prefix(&prefix) {
                return Err(Status::invalid_argument(format!(
                    "nexthop {addr} is not of the prefix's family ({prefix}): give an address of the same family"
                )));
            }
            route.next_hop = Some(addr);
        }
    }
    Ok(route)
}

/// Names the attributes a `global rib add` may carry, for error messages.
pub(super) const ACCEPTED_ATTRS: &str =
    "origin, aspath (empty), nexthop, med, local-pref, community and large-community";
