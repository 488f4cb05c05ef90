//! BGP messages (RFC 4271 §4) as typed values.

use std::net::Ipv4Addr;

use crate::attr::{NextHop, PathAttributes};
use crate::capability::Capability;
use crate::error::Rfc7606Issue;
use crate::notification::Notification;
use crate::types::{Asn, Family, Nlri};

/// Message type codes.
pub mod kind {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// The fixed header size (marker 16 + length 2 + type 1).
pub const HEADER_LEN: usize = 19;
/// RFC 4271 §4.1 maximum message size.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// RFC 8654 maximum message size with extended messages.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

// An UPDATE is the common case: boxing it would cost an allocation per
// message to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    pub fn kind(&self) -> u8 {
        match self {
            Message::Open(_) => kind::OPEN,
            Message::Update(_) => kind::UPDATE,
            Message::Notification(_) => kind::NOTIFICATION,
            Message::Keepalive => kind::KEEPALIVE,
            Message::RouteRefresh(_) => kind::ROUTE_REFRESH,
        }
    }
}

/// OPEN (RFC 4271 §4.2). `my_as` is the 2-octet field as sent; the real
/// 4-octet ASN is in the [`Capability::FourOctetAs`] capability when present
/// (see [`Open::asn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
    /// Optional parameters other than capabilities (type, value), kept so the
    /// FSM can answer 2/4 Unsupported Optional Parameter.
    pub unknown_params: Vec<(u8, Vec<u8>)>,
}

impl Open {
    /// The speaker's real AS: the 4-octet capability if present, else `my_as`.
    pub fn asn(&self) -> Asn {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(Asn(self.my_as as u32))
    }
}

/// MP_REACH_NLRI (RFC 4760 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub family: Family,
    pub next_hop: NextHop,
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: Vec<Nlri>,
}

/// UPDATE (RFC 4271 §4.3), decoded.
///
/// After decoding, `issues` lists every RFC 7606 outcome that was applied
/// short of a session reset: attributes discarded, or the whole UPDATE
/// treated as withdraw (then every NLRI in it must be handled as withdrawn).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Withdrawn IPv4 unicast routes (classic field).
    pub withdrawn: Vec<Nlri>,
    pub attributes: PathAttributes,
    /// Announced IPv4 unicast routes (classic field).
    pub nlri: Vec<Nlri>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    /// RFC 7606 outcomes applied while decoding (empty for a clean UPDATE).
    pub issues: Vec<Rfc7606Issue>,
}

impl Update {
    /// True when RFC 7606 says to treat this UPDATE's NLRI as withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.issues.iter().any(|i| i.is_treat_as_withdraw())
    }

    /// An End-of-RIB marker (RFC 4724 §2) for `family`.
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            Update::default()
        } else {
            Update {
                mp_unreach: Some(MpUnreach {
                    family,
                    withdrawn: Vec::new(),
                }),
                ..Update::default()
            }
        }
    }

    /// The family this UPDATE is an End-of-RIB marker for, if it is one.
    pub fn as_end_of_rib(&self) -> Option<Family> {
        let no_attrs = self.attributes == PathAttributes::default() && self.issues.is_empty();
        if !no_attrs
            || !self.withdrawn.is_empty()
            || !self.nlri.is_empty()
            || self.mp_reach.is_some()
        {
            return None;
        }
        match &self.mp_unreach {
            None => Some(Family::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() => Some(u.family),
            Some(_) => None,
        }
    }
}

/// ROUTE-REFRESH subtypes (RFC 7313 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshSubtype {
    Request = 0,
    BeginningOfRouteRefresh = 1,
    EndOfRouteRefresh = 2,
    /// Any other subtype (3-255): RFC 7313 §5 says to ignore the message.
    /// Encoded as 255.
    Reserved = 255,
}

/// ROUTE-REFRESH (RFC 2918, RFC 7313).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub family: Family,
    pub subtype: RefreshSubtype,
}
