//! Export rules: what a peer may receive and how its attributes change.
//!
//! RFC 4271 §9.1.3 and §5.1, RFC 4456 §6 and §8 (reflection), RFC 1997
//! well-known communities, RFC 9234 §5 (OTC), RFC 9494 (LLGR), RFC 8212.
//! Everything here depends only on the update group's key, never on one
//! member, so a group computes each route once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use tabby_bgp::attr::{Community, LocalPref, NextHop};
use tabby_bgp::capability::Role;
use tabby_bgp::codec::{CodecCtx, EncodeError, UpdatePacker};
use tabby_bgp::{Asn, Family};

use crate::attrs::RouteAttrs;
use crate::policy::{Decider, Policy, RouteCtx, SourceMatchInput, Verdict};
use crate::types::{LocalKind, NextHopMode, PeerKind};

/// Everything that shapes what a group of peers receives. Peers with equal
/// keys share an update group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey {
    pub kind: PeerKind,
    pub rr_client: bool,
    /// The peer AS for eBGP groups (0 for iBGP: all iBGP peers share it).
    pub peer_asn: Asn,
    pub local_asn: Asn,
    pub next_hop_mode: NextHopMode,
    pub local_v4: Option<Ipv4Addr>,
    pub local_v6: Option<Ipv6Addr>,
    /// IPv4 unicast with RFC 8950 extended next hop on a session over
    /// IPv6: next-hop-self for IPv4 routes is our IPv6 address.
    pub v4_next_hop_v6: bool,
    pub export: ExportPolicy,
    pub families: Vec<Family>,
    pub add_path_max: u8,
    /// The wire format every member negotiated (4-octet AS, message size,
    /// ADD-PATH send, RFC 8950 next hop): the group encodes with it.
    pub codec: CodecCtx,
    pub role: Option<Role>,
    pub llgr: bool,
    pub rfc8212: bool,
}

/// An export policy compared by what it does, not by its or its rules'
/// names: peers whose policies differ only in names (a daemon names them after the peer) share
/// an update group. Without this, 1,000 reflector clients with the same
/// rules would be 1,000 groups, each with its own Adj-RIB-Out and encoding.
#[derive(Debug, Clone)]
pub(crate) struct ExportPolicy(pub Option<Arc<Policy>>);

impl PartialEq for ExportPolicy {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                Arc::ptr_eq(a, b)
                    || (a.default == b.default
                        && a.rules.len() == b.rules.len()
                        && a.rules.iter().zip(&b.rules).all(|(x, y)| {
                            x.matches == y.matches
                                && x.actions == y.actions
                                && x.verdict == y.verdict
                        }))
            }
            _ => false,
        }
    }
}

impl Eq for ExportPolicy {}

impl std::hash::Hash for ExportPolicy {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if let Some(p) = &self.0 {
            p.default.hash(state);
            for r in &p.rules {
                r.matches.hash(state);
                r.actions.hash(state);
                r.verdict.hash(state);
            }
        }
    }
}

impl GroupKey {
    pub fn add_path(&self, family: Family) -> bool {
        self.add_path_max > 0 && self.codec.add_path_tx.contains(&family)
    }
}

/// The source of a path as export rules see it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ExportSource {
    Local(LocalKind),
    Peer {
        kind: PeerKind,
        rr_client: bool,
        bgp_id: Ipv4Addr,
    },
}

/// Why a route is not sent to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportDenied {
    FamilyNotNegotiated,
    /// RFC 4456 §6 / RFC 4271 §9.2: iBGP route to a non-client iBGP peer
    /// from a non-client.
    IbgpSplitHorizon,
    NoAdvertise,
    NoExport,
    /// RFC 9234 §5: OTC present toward a provider, peer or route server.
    OtcLeak,
    /// RFC 9494 §4.5: LLGR-stale routes only go to LLGR-capable peers.
    LlgrStaleToNonLlgrPeer,
    Policy(Decider),
    /// No local address of the route's family configured for next-hop-self.
    NoLocalAddress,
    /// Attributes would not fit the peer's maximum message size
    /// (CONFORMANCE row 28).
    TooLarge,
    /// The route cannot be put in this peer's wire format.
    Unencodable(String),
}

impl std::fmt::Display for ExportDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportDenied::FamilyNotNegotiated => f.write_str("family not negotiated"),
            ExportDenied::IbgpSplitHorizon => {
                f.write_str("iBGP split horizon (neither side is a reflector client)")
            }
            ExportDenied::NoAdvertise => f.write_str("NO_ADVERTISE community"),
            ExportDenied::NoExport => f.write_str("NO_EXPORT community toward eBGP"),
            ExportDenied::OtcLeak => f.write_str("RFC 9234 OTC: would leak toward provider/peer"),
            ExportDenied::LlgrStaleToNonLlgrPeer => {
                f.write_str("LLGR-stale route, peer lacks LLGR")
            }
            ExportDenied::Policy(d) => write!(f, "rejected by {d}"),
            ExportDenied::NoLocalAddress => {
                f.write_str("no local address of this family for next-hop-self")
            }
            ExportDenied::TooLarge => {
                f.write_str("attributes exceed the peer's maximum message size")
            }
            ExportDenied::Unencodable(why) => write!(f, "cannot be encoded for the peer: {why}"),
        }
    }
}

/// Inputs of one export computation besides the group key.
pub(crate) struct ExportInput<'a> {
    pub prefix: &'a IpNet,
    pub attrs: &'a RouteAttrs,
    pub source: ExportSource,
    pub llgr_stale: bool,
    pub cluster_id: Ipv4Addr,
    pub default_local_pref: LocalPref,
}

/// What accepted a route [`export_route`] exported through rule `rule`.
pub(crate) fn accepted_by(key: &GroupKey, rule: Option<usize>) -> Decider {
    match &key.export.0 {
        Some(p) => p.decider(rule),
        None => Decider::NoPolicy,
    }
}

/// Computes what `key`'s peers receive for one path, with the index of the
/// export policy's rule that accepted it (`None`: the default or no
/// policy; [`accepted_by`] names it).
pub(crate) fn export_route(
    key: &GroupKey,
    input: &ExportInput<'_>,
) -> Result<(RouteAttrs, Option<usize>), ExportDenied> {
    let family = Family::of(input.prefix);
    if !key.families.contains(&family) {
        return Err(ExportDenied::FamilyNotNegotiated);
    }
    let a = &input.attrs.attrs;
    let ebgp = key.kind == PeerKind::Ebgp;
    let (from_peer, reflect) = match input.source {
        ExportSource::Local(_) => (false, false),
        ExportSource::Peer {
            kind: PeerKind::Ibgp,
            rr_client,
            ..
        } if !ebgp => {
            if !rr_client && !key.rr_client {
                return Err(ExportDenied::IbgpSplitHorizon);
            }
            (true, true)
        }
        ExportSource::Peer { .. } => (true, false),
    };
    // RFC 1997.
    if a.communities.contains(&Community::NO_ADVERTISE) {
        return Err(ExportDenied::NoAdvertise);
    }
    if ebgp
        && (a.communities.contains(&Community::NO_EXPORT)
            || a.communities.contains(&Community::NO_EXPORT_SUBCONFED))
    {
        return Err(ExportDenied::NoExport);
    }
    if input.llgr_stale && !key.llgr {
        return Err(ExportDenied::LlgrStaleToNonLlgrPeer);
    }

    // Export policy first (it sees the route as selected), then the
    // protocol's own changes.
    let ctx = route_ctx(key, input);
    let (mut out, rule) = match &key.export.0 {
        Some(p) => {
            let (verdict, rule, modified) = p.run(&ctx);
            if verdict == Verdict::Reject {
                return Err(ExportDenied::Policy(p.decider(rule)));
            }
            (modified.unwrap_or_else(|| a.clone()), rule)
        }
        // RFC 8212 §3: nothing to eBGP without an export policy.
        None if ebgp && key.rfc8212 => return Err(ExportDenied::Policy(Decider::Rfc8212)),
        None => (a.clone(), None),
    };

    // RFC 9234 §5: OTC on egress, by the role we play on the session.
    if let Some(role) = key.role {
        let toward_up = matches!(role, Role::Customer | Role::Peer | Role::RouteServerClient);
        if out.otc.is_some() && toward_up {
            return Err(ExportDenied::OtcLeak);
        }
        if out.otc.is_none() && matches!(role, Role::Provider | Role::Peer | Role::RouteServer) {
            out.otc = Some(key.local_asn);
        }
    }
    if input.llgr_stale && !out.communities.contains(&Community::LLGR_STALE) {
        // RFC 9494 §4.3: advertise with the LLGR_STALE community.
        out.communities.push(Community::LLGR_STALE);
    }

    let is_self = input.attrs.next_hop_is_self();
    let next_hop_self = match key.next_hop_mode {
        NextHopMode::SelfAddress => true,
        NextHopMode::Keep => is_self,
        // RFC 4271 §5.1.3: eBGP gets our address; iBGP and reflected
        // routes keep theirs (RFC 4456 §10).
        NextHopMode::Auto => is_self || ebgp,
    };
    // An IPv4 route whose next hop is IPv6 (learned over RFC 8950) cannot
    // go to a peer without extended next hop for IPv4 unchanged: it gets
    // our IPv4 address instead, the only next hop that peer can use.
    let v6_nh_unsendable = matches!(input.prefix, IpNet::V4(_))
        && input.attrs.next_hop.addr.is_ipv6()
        && !key.v4_next_hop_v6;
    let next_hop = if next_hop_self || v6_nh_unsendable {
        let addr = match input.prefix {
            // RFC 8950 §4: over an IPv6 session the next hop of IPv4
            // routes is our address on that session, as BIRD and GoBGP do.
            IpNet::V4(_) if key.v4_next_hop_v6 => key
                .local_v6
                .map(IpAddr::V6)
                .or(key.local_v4.map(IpAddr::V4)),
            IpNet::V4(_) if v6_nh_unsendable => key.local_v4.map(IpAddr::V4),
            IpNet::V4(_) => key
                .local_v4
                .map(IpAddr::V4)
                .or(key.local_v6.map(IpAddr::V6)),
            IpNet::V6(_) => key.local_v6.map(IpAddr::V6),
        };
        match addr {
            Some(a) => NextHop::new(a),
            None => return Err(ExportDenied::NoLocalAddress),
        }
    } else {
        input.attrs.next_hop
    };

    if ebgp {
        // RFC 4271 §5.1.2, §5.1.5, §5.1.4; RFC 4456 §8 (non-transitive
        // across ASes).
        out.as_path.prepend(key.local_asn, 1);
        out.local_pref = None;
        out.originator_id = None;
        out.cluster_list.clear();
        if from_peer && (key.export.0.is_none() || out.med == a.med) {
            out.med = None;
        }
    } else {
        if out.local_pref.is_none() {
            out.local_pref = Some(input.default_local_pref);
        }
        if reflect {
            // RFC 4456 §8.
            if let (None, ExportSource::Peer { bgp_id, .. }) = (out.originator_id, input.source) {
                out.originator_id = Some(bgp_id);
            }
            out.cluster_list.insert(0, input.cluster_id);
        }
    }
    if out.origin.is_none() {
        out.origin = Some(tabby_bgp::attr::Origin::Igp);
    }
    // The classic NEXT_HOP attribute is derived from `next_hop` when the
    // UPDATE is built; keep the interned set canonical.
    out.next_hop = None;
    let route = RouteAttrs::new(out, next_hop);
    // Exactly what the group's encoder will do: the attributes and one
    // prefix must fit a message.
    match UpdatePacker::new(
        Family::of(input.prefix),
        &route.attrs,
        Some(route.next_hop),
        &key.codec,
    ) {
        Ok(_) => Ok((route, rule)),
        Err(EncodeError::TooLong { .. }) => Err(ExportDenied::TooLarge),
        Err(e) => Err(ExportDenied::Unencodable(e.to_string())),
    }
}

/// What the export policy alone does with a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyPeek {
    Rejected,
    /// Accepted as it is (or there is no policy): the rest of the export
    /// depends on the attributes, the source and the family only.
    Unmodified,
    Modified,
}

/// Runs only the group's export policy on a route.
pub(crate) fn policy_peek(key: &GroupKey, input: &ExportInput<'_>) -> PolicyPeek {
    let Some(p) = &key.export.0 else {
        return PolicyPeek::Unmodified;
    };
    match p.peek(&route_ctx(key, input)) {
        (Verdict::Reject, _) => PolicyPeek::Rejected,
        (_, false) => PolicyPeek::Unmodified,
        (_, true) => PolicyPeek::Modified,
    }
}

fn route_ctx<'a>(key: &GroupKey, input: &ExportInput<'a>) -> RouteCtx<'a> {
    RouteCtx {
        prefix: input.prefix,
        next_hop: input.attrs.next_hop.addr,
        source: match input.source {
            ExportSource::Local(k) => SourceMatchInput::Local(k),
            ExportSource::Peer { kind, .. } => SourceMatchInput::Remote(kind),
        },
        peer_kind: key.kind,
        local_asn: key.local_asn,
        default_local_pref: input.default_local_pref,
        attrs: &input.attrs.attrs,
    }
}
