//! Path attributes (RFC 4271 §5 and the RFCs that add attributes).
//!
//! [`PathAttributes`] is the decoded, normalised attribute set of one UPDATE:
//! AS4_PATH / AS4_AGGREGATOR are already reconciled into `as_path` /
//! `aggregator` (RFC 6793 §4.2.3) and MP_REACH / MP_UNREACH live in the
//! [`Update`](crate::message::Update), not here. It is `Hash + Eq` so a RIB
//! can intern one shared copy per distinct set.

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::types::Asn;

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
    pub const OTC: u8 = 35;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// ORIGIN (RFC 4271 §5.1.1). The derived order is the decision-process order:
/// IGP < EGP < INCOMPLETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Origin {
    #[default]
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Igp => "IGP",
            Origin::Egp => "EGP",
            Origin::Incomplete => "incomplete",
        })
    }
}

/// LOCAL_PREF (RFC 4271 §5.1.5): the degree of preference inside the AS,
/// where higher is preferred. There is no `Ord` (the numeric order is the
/// opposite of preference): compare with [`LocalPref::cmp_preference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalPref(u32);

impl LocalPref {
    pub const fn new(value: u32) -> Self {
        LocalPref(value)
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    /// The decision-process order (RFC 4271 §9.1.1): `Less` when `self` is
    /// preferred, that is when it is the higher value.
    pub fn cmp_preference(self, other: LocalPref) -> Ordering {
        other.0.cmp(&self.0)
    }

    /// True when `self` is preferred over `other`.
    pub fn prefers(self, other: LocalPref) -> bool {
        self.cmp_preference(other) == Ordering::Less
    }
}

impl From<u32> for LocalPref {
    fn from(value: u32) -> Self {
        LocalPref(value)
    }
}

impl From<LocalPref> for u32 {
    fn from(lp: LocalPref) -> u32 {
        lp.0
    }
}

impl fmt::Display for LocalPref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// MULTI_EXIT_DISC (RFC 4271 §5.1.4): where lower is preferred, between
/// routes from the same neighbouring AS. A route without one counts as
/// [`Med::LOWEST`] (§9.1.2.2 c). There is no `Ord`, so that a comparison
/// says which way it prefers: [`Med::cmp_preference`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Med(u32);

impl Med {
    /// The lowest (most preferred) value, which a missing MED counts as.
    pub const LOWEST: Med = Med(0);

    pub const fn new(value: u32) -> Self {
        Med(value)
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    /// The decision-process order (RFC 4271 §9.1.2.2 c): `Less` when `self`
    /// is preferred, that is when it is the lower value.
    pub fn cmp_preference(self, other: Med) -> Ordering {
        self.0.cmp(&other.0)
    }

    /// True when `self` is preferred over `other`.
    pub fn prefers(self, other: Med) -> bool {
        self.cmp_preference(other) == Ordering::Less
    }
}

impl From<u32> for Med {
    fn from(value: u32) -> Self {
        Med(value)
    }
}

impl From<Med> for u32 {
    fn from(med: Med) -> u32 {
        med.0
    }
}

impl fmt::Display for Med {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// AS_PATH segment types (RFC 4271 §4.3, RFC 5065 for confederations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegmentType {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment {
    pub kind: SegmentType,
    pub asns: Vec<Asn>,
}

/// AS_PATH, always held with 4-octet ASNs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AsPath {
    pub segments: Vec<Segment>,
}

impl AsPath {
    pub fn from_sequence(asns: impl IntoIterator<Item = Asn>) -> Self {
        let asns: Vec<Asn> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![Segment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// Path length for the decision process (RFC 4271 §9.1.2.2 a): an AS_SET
    /// counts as one, confederation segments count zero (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }

    /// Every ASN in the path, in order, all segment kinds.
    pub fn iter(&self) -> impl Iterator<Item = Asn> + '_ {
        self.segments.iter().flat_map(|s| s.asns.iter().copied())
    }

    /// The first AS of the first AS_SEQUENCE (the neighbouring AS, for MED
    /// comparison and the eBGP first-AS check).
    pub fn first_as(&self) -> Option<Asn> {
        match self.segments.first() {
            Some(s) if s.kind == SegmentType::Sequence => s.asns.first().copied(),
            _ => None,
        }
    }

    /// How many times `asn` appears (for loop detection with allow-own-as).
    pub fn count(&self, asn: Asn) -> usize {
        self.iter().filter(|a| *a == asn).count()
    }

    /// Prepends `asn` `times` times to the leading AS_SEQUENCE, opening a new
    /// one when the path starts with another kind or the segment is full.
    pub fn prepend(&mut self, asn: Asn, times: usize) {
        for _ in 0..times {
            match self.segments.first_mut() {
                Some(s) if s.kind == SegmentType::Sequence && s.asns.len() < 255 => {
                    s.asns.insert(0, asn)
                }
                _ => self.segments.insert(
                    0,
                    Segment {
                        kind: SegmentType::Sequence,
                        asns: vec![asn],
                    },
                ),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.asns.is_empty())
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, close) = match s.kind {
                SegmentType::Sequence => ("", ""),
                SegmentType::Set => ("{", "}"),
                SegmentType::ConfedSequence => ("(", ")"),
                SegmentType::ConfedSet => ("[", "]"),
            };
            f.write_str(open)?;
            for (i, a) in s.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(if s.kind == SegmentType::Sequence {
                        " "
                    } else {
                        ","
                    })?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

/// AGGREGATOR (RFC 4271 §5.1.7, 4-octet form after RFC 6793 reconciliation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Aggregator {
    pub asn: Asn,
    pub address: Ipv4Addr,
}

/// A standard community (RFC 1997).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl Community {
    /// RFC 1997 well-known communities.
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// RFC 8326.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// RFC 9494: long-lived graceful-restart stale marker.
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// RFC 9494: do not keep this route as LLGR stale.
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
    /// RFC 7999.
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);

    pub fn new(asn: u16, value: u16) -> Self {
        Community(((asn as u32) << 16) | value as u32)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Community::NO_EXPORT => f.write_str("no-export"),
            Community::NO_ADVERTISE => f.write_str("no-advertise"),
            Community::NO_EXPORT_SUBCONFED => f.write_str("no-export-subconfed"),
            Community::GRACEFUL_SHUTDOWN => f.write_str("graceful-shutdown"),
            Community::LLGR_STALE => f.write_str("llgr-stale"),
            Community::NO_LLGR => f.write_str("no-llgr"),
            Community::BLACKHOLE => f.write_str("blackhole"),
            Community(v) => write!(f, "{}:{}", v >> 16, v & 0xFFFF),
        }
    }
}

/// An extended community (RFC 4360), kept as its 8 raw octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtCommunity(pub [u8; 8]);

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data_1: u32,
    pub local_data_2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data_1, self.local_data_2
        )
    }
}

/// An attribute this speaker does not interpret, kept byte-exact (RFC 4271
/// §5: optional transitive ones are forwarded with the Partial bit set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

impl RawAttribute {
    pub fn is_optional(&self) -> bool {
        self.flags & flags::OPTIONAL != 0
    }
    pub fn is_transitive(&self) -> bool {
        self.flags & flags::TRANSITIVE != 0
    }
}

/// The next hop of a route: a NEXT_HOP attribute (IPv4) or the next-hop field
/// of MP_REACH_NLRI, which for IPv6 may carry a link-local address too
/// (RFC 4760 §3, RFC 2545 §3) and for IPv4 NLRI may be IPv6 (RFC 8950).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    pub addr: IpAddr,
    pub link_local: Option<Ipv6Addr>,
}

impl NextHop {
    pub fn new(addr: IpAddr) -> Self {
        NextHop {
            addr,
            link_local: None,
        }
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.link_local {
            Some(ll) => write!(f, "{} ({})", self.addr, ll),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// The decoded path attributes of one UPDATE (without MP_REACH/MP_UNREACH).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    /// Mandatory in any UPDATE that carries NLRI; `None` only while decoding
    /// or in a withdraw-only UPDATE.
    pub origin: Option<Origin>,
    pub as_path: AsPath,
    /// NEXT_HOP attribute (IPv4 NLRI in the classic NLRI field).
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<Med>,
    pub local_pref: Option<LocalPref>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    /// Kept in received order; a RIB may sort them for sharing.
    pub communities: Vec<Community>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub ext_communities: Vec<ExtCommunity>,
    pub large_communities: Vec<LargeCommunity>,
    /// Only To Customer (RFC 9234 §5).
    pub otc: Option<Asn>,
    /// Attributes not interpreted here, byte-exact, in received order.
    pub unknown: Vec<RawAttribute>,
}

impl PathAttributes {
    pub fn has_community(&self, c: Community) -> bool {
        self.communities.contains(&c)
    }
}
