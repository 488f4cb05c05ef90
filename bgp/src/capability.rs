//! BGP capabilities (RFC 5492) advertised in OPEN.

use crate::types::{Asn, Family};

/// Capability codes (IANA "Capability Codes").
pub mod code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const ROLE: u8 = 9;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const LONG_LIVED_GR: u8 = 71;
}

/// One per-family entry of the graceful-restart capability (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GrFamily {
    pub family: Family,
    /// F bit: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// The graceful-restart capability (RFC 4724 §3; N bit from RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restart_state: bool,
    /// N bit (RFC 8538): the sender supports NOTIFICATION-triggered GR.
    pub notification: bool,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    pub families: Vec<GrFamily>,
}

/// One per-family entry of the long-lived GR capability (RFC 9494 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LlgrFamily {
    pub family: Family,
    pub forwarding_preserved: bool,
    /// Long-lived stale time in seconds (24 bits).
    pub stale_time: u32,
}

/// ADD-PATH send/receive direction (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    Receive = 1,
    Send = 2,
    Both = 3,
}

impl AddPathMode {
    pub fn can_send(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::Both)
    }
    pub fn can_receive(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::Both)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    pub family: Family,
    pub mode: AddPathMode,
}

/// One entry of the extended next hop capability (RFC 8950 §3): NLRI of
/// `family` may carry a next hop of `next_hop_afi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    pub family: Family,
    pub next_hop_afi: crate::types::Afi,
}

/// BGP role (RFC 9234 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Provider = 0,
    RouteServer = 1,
    RouteServerClient = 2,
    Customer = 3,
    Peer = 4,
}

impl Role {
    pub fn from_u8(v: u8) -> Option<Role> {
        Some(match v {
            0 => Role::Provider,
            1 => Role::RouteServer,
            2 => Role::RouteServerClient,
            3 => Role::Customer,
            4 => Role::Peer,
            _ => return None,
        })
    }

    /// RFC 9234 §4.2: whether our role and the peer's role are a valid pair.
    pub fn matches(self, peer: Role) -> bool {
        matches!(
            (self, peer),
            (Role::Provider, Role::Customer)
                | (Role::Customer, Role::Provider)
                | (Role::RouteServer, Role::RouteServerClient)
                | (Role::RouteServerClient, Role::RouteServer)
                | (Role::Peer, Role::Peer)
        )
    }
}

/// A capability as advertised in OPEN. Unknown ones are kept so they can be
/// shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    Multiprotocol(Family),
    RouteRefresh,
    EnhancedRouteRefresh,
    FourOctetAs(Asn),
    GracefulRestart(GracefulRestart),
    LongLivedGracefulRestart(Vec<LlgrFamily>),
    AddPath(Vec<AddPathFamily>),
    ExtendedNextHop(Vec<ExtendedNextHop>),
    ExtendedMessage,
    Role(Role),
    Unknown { code: u8, value: Vec<u8> },
}

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::LongLivedGracefulRestart(_) => code::LONG_LIVED_GR,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::Role(_) => code::ROLE,
            Capability::Unknown { code, .. } => *code,
        }
    }
}
