//! BMP messages (RFC 7854 §4) as values.
//!
//! Fields hold what is on the wire (the per-peer header's flags and
//! 16-octet address as sent, embedded BGP PDUs as their octets), so that
//! every decoded message encodes back to the octets it came from; typed
//! accessors read them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use tabby_bgp::Family;

/// The protocol version this crate speaks (RFC 7854 §4.1).
pub const VERSION: u8 = 3;
/// Version, length and type (RFC 7854 §4.1).
pub const COMMON_HEADER_LEN: usize = 6;
/// RFC 7854 §4.2.
pub const PER_PEER_HEADER_LEN: usize = 42;

/// Message types (RFC 7854 §4.1).
pub mod kind {
    pub const ROUTE_MONITORING: u8 = 0;
    pub const STATISTICS_REPORT: u8 = 1;
    pub const PEER_DOWN: u8 = 2;
    pub const PEER_UP: u8 = 3;
    pub const INITIATION: u8 = 4;
    pub const TERMINATION: u8 = 5;
    pub const ROUTE_MIRRORING: u8 = 6;
}

/// Per-peer header flags (RFC 7854 §4.2; RFC 9069 §4.1 for the Loc-RIB).
pub mod flag {
    /// Peer types 0–2: the peer address is IPv6.
    pub const V: u8 = 0x80;
    /// Peer types 0–2: post-policy Adj-RIB-In.
    pub const L: u8 = 0x40;
    /// Peer types 0–2: the embedded UPDATEs use 2-octet AS_PATHs.
    pub const A: u8 = 0x20;
    /// Loc-RIB (peer type 3): the Loc-RIB is filtered (RFC 9069 §4.1).
    pub const F: u8 = 0x80;
}

/// Information TLV types (RFC 7854 §4.4; RFC 9069 §4.3 adds type 3).
pub mod info {
    pub const STRING: u16 = 0;
    pub const SYS_DESCR: u16 = 1;
    pub const SYS_NAME: u16 = 2;
    pub const VRF_TABLE_NAME: u16 = 3;
}

/// Termination TLV types and reasons (RFC 7854 §4.5).
pub mod termination {
    pub const STRING: u16 = 0;
    pub const REASON: u16 = 1;
    pub const ADMINISTRATIVELY_CLOSED: u16 = 0;
    pub const UNSPECIFIED: u16 = 1;
    pub const OUT_OF_RESOURCES: u16 = 2;
    pub const REDUNDANT_CONNECTION: u16 = 3;
    pub const PERMANENTLY_CLOSED: u16 = 4;
}

/// Statistics types (RFC 7854 §4.8) this crate gives a typed value.
pub mod stat {
    pub const REJECTED_BY_POLICY: u16 = 0;
    pub const DUPLICATE_PREFIX: u16 = 1;
    pub const DUPLICATE_WITHDRAW: u16 = 2;
    pub const CLUSTER_LIST_LOOP: u16 = 3;
    pub const AS_PATH_LOOP: u16 = 4;
    pub const ORIGINATOR_ID_LOOP: u16 = 5;
    pub const AS_CONFED_LOOP: u16 = 6;
    pub const ADJ_RIB_IN_ROUTES: u16 = 7;
    pub const LOC_RIB_ROUTES: u16 = 8;
    pub const ADJ_RIB_IN_ROUTES_PER_FAMILY: u16 = 9;
    pub const LOC_RIB_ROUTES_PER_FAMILY: u16 = 10;
    pub const UPDATES_TREATED_AS_WITHDRAW: u16 = 11;
    pub const PREFIXES_TREATED_AS_WITHDRAW: u16 = 12;
    pub const DUPLICATE_UPDATES: u16 = 13;
}

/// Peer Down reasons (RFC 7854 §4.9; RFC 9069 §4.4 adds 6).
pub mod down {
    pub const LOCAL_NOTIFICATION: u8 = 1;
    pub const LOCAL_NO_NOTIFICATION: u8 = 2;
    pub const REMOTE_NOTIFICATION: u8 = 3;
    pub const REMOTE_NO_DATA: u8 = 4;
    pub const DECONFIGURED: u8 = 5;
    pub const LOCAL_TLV: u8 = 6;
}

/// One BMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    RouteMonitoring(RouteMonitoring),
    StatisticsReport(StatsReport),
    PeerDown(PeerDown),
    PeerUp(PeerUp),
    /// Information TLVs (RFC 7854 §4.3).
    Initiation(Vec<InfoTlv>),
    /// Termination TLVs (RFC 7854 §4.5).
    Termination(Vec<InfoTlv>),
    /// Route Mirroring (RFC 7854 §4.7): its TLVs, not interpreted.
    RouteMirroring {
        peer: PeerHeader,
        tlvs: Vec<InfoTlv>,
    },
}

impl Message {
    /// The message type code.
    pub fn kind(&self) -> u8 {
        match self {
            Message::RouteMonitoring(_) => kind::ROUTE_MONITORING,
            Message::StatisticsReport(_) => kind::STATISTICS_REPORT,
            Message::PeerDown(_) => kind::PEER_DOWN,
            Message::PeerUp(_) => kind::PEER_UP,
            Message::Initiation(_) => kind::INITIATION,
            Message::Termination(_) => kind::TERMINATION,
            Message::RouteMirroring { .. } => kind::ROUTE_MIRRORING,
        }
    }

    /// The per-peer header, for the message types that carry one.
    pub fn peer(&self) -> Option<&PeerHeader> {
        match self {
            Message::RouteMonitoring(m) => Some(&m.peer),
            Message::StatisticsReport(m) => Some(&m.peer),
            Message::PeerDown(m) => Some(&m.peer),
            Message::PeerUp(m) => Some(&m.peer),
            Message::RouteMirroring { peer, .. } => Some(peer),
            Message::Initiation(_) | Message::Termination(_) => None,
        }
    }
}

/// A type-length-value of Initiation, Termination, Peer Up or Route
/// Mirroring (2-octet type, 2-octet length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoTlv {
    pub kind: u16,
    pub value: Bytes,
}

impl InfoTlv {
    /// A text TLV (sysName, sysDescr, a table name, a free string).
    pub fn text(kind: u16, s: &str) -> InfoTlv {
        InfoTlv {
            kind,
            value: Bytes::copy_from_slice(s.as_bytes()),
        }
    }

    /// The Termination reason TLV.
    pub fn termination_reason(reason: u16) -> InfoTlv {
        InfoTlv {
            kind: termination::REASON,
            value: Bytes::copy_from_slice(&reason.to_be_bytes()),
        }
    }

    /// The value as text, when it is UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// Peer types (RFC 7854 §4.2, RFC 9069 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerType {
    /// 0: a peer of the global instance.
    Global,
    /// 1: an RD instance peer.
    RdInstance,
    /// 2: a local instance peer.
    Local,
    /// 3: the Loc-RIB instance (RFC 9069).
    LocRib,
    Other(u8),
}

impl PeerType {
    pub fn code(self) -> u8 {
        match self {
            PeerType::Global => 0,
            PeerType::RdInstance => 1,
            PeerType::Local => 2,
            PeerType::LocRib => 3,
            PeerType::Other(c) => c,
        }
    }

    pub fn from_code(c: u8) -> PeerType {
        match c {
            0 => PeerType::Global,
            1 => PeerType::RdInstance,
            2 => PeerType::Local,
            3 => PeerType::LocRib,
            c => PeerType::Other(c),
        }
    }
}

/// Seconds and microseconds since the Unix epoch (RFC 7854 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub secs: u32,
    pub micros: u32,
}

impl Timestamp {
    pub fn from_unix(d: std::time::Duration) -> Timestamp {
        Timestamp {
            secs: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
            micros: d.subsec_micros(),
        }
    }
}

/// The per-peer header (RFC 7854 §4.2), as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHeader {
    pub peer_type: PeerType,
    /// The flag octet as sent (see [`flag`]).
    pub flags: u8,
    /// Route distinguisher, or 0 for the global instance.
    pub distinguisher: u64,
    /// The peer address field: an IPv4 address sits in the last four octets.
    pub address: [u8; 16],
    /// The peer's AS (for the Loc-RIB: our own).
    pub asn: u32,
    /// The peer's BGP identifier (for the Loc-RIB: our own).
    pub bgp_id: Ipv4Addr,
    pub timestamp: Timestamp,
}

/// The 16-octet address field for `a` (RFC 7854 §4.2: IPv4 in the last
/// four octets, the rest zero).
pub fn address_field(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => {
            let mut f = [0u8; 16];
            f[12..].copy_from_slice(&v.octets());
            f
        }
        IpAddr::V6(v) => v.octets(),
    }
}

/// Reads a 16-octet address field as IPv6 when `v6`, else IPv4.
pub fn field_address(f: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*f))
    } else {
        IpAddr::V4(Ipv4Addr::new(f[12], f[13], f[14], f[15]))
    }
}

impl PeerHeader {
    /// A peer of the global instance (peer type 0). `post_policy` sets L;
    /// `two_octet_as` sets A (the session did not negotiate 4-octet ASNs).
    pub fn global(
        address: IpAddr,
        asn: u32,
        bgp_id: Ipv4Addr,
        timestamp: Timestamp,
        post_policy: bool,
        two_octet_as: bool,
    ) -> PeerHeader {
        let mut flags = 0;
        if address.is_ipv6() {
            flags |= flag::V;
        }
        if post_policy {
            flags |= flag::L;
        }
        if two_octet_as {
            flags |= flag::A;
        }
        PeerHeader {
            peer_type: PeerType::Global,
            flags,
            distinguisher: 0,
            address: address_field(address),
            asn,
            bgp_id,
            timestamp,
        }
    }

    /// The Loc-RIB instance of the default table (RFC 9069 §4.1): address
    /// zero, our AS and BGP identifier.
    pub fn loc_rib(asn: u32, bgp_id: Ipv4Addr, timestamp: Timestamp, filtered: bool) -> PeerHeader {
        PeerHeader {
            peer_type: PeerType::LocRib,
            flags: if filtered { flag::F } else { 0 },
            distinguisher: 0,
            address: [0; 16],
            asn,
            bgp_id,
            timestamp,
        }
    }

    fn has_peer_flags(&self) -> bool {
        matches!(
            self.peer_type,
            PeerType::Global | PeerType::RdInstance | PeerType::Local
        )
    }

    /// The peer's address, read by the V flag (RFC 7854 §4.2); `None` for
    /// the Loc-RIB and unknown peer types.
    pub fn peer_address(&self) -> Option<IpAddr> {
        self.has_peer_flags()
            .then(|| field_address(&self.address, self.flags & flag::V != 0))
    }

    /// L: the routes are post-policy.
    pub fn post_policy(&self) -> bool {
        self.has_peer_flags() && self.flags & flag::L != 0
    }

    /// A: embedded UPDATEs carry 2-octet AS_PATHs.
    pub fn two_octet_as(&self) -> bool {
        self.has_peer_flags() && self.flags & flag::A != 0
    }

    /// F of a Loc-RIB header (RFC 9069 §4.1).
    pub fn filtered(&self) -> bool {
        self.peer_type == PeerType::LocRib && self.flags & flag::F != 0
    }
}

/// Route Monitoring (RFC 7854 §4.6): one BGP UPDATE, as a whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMonitoring {
    pub peer: PeerHeader,
    /// The BGP UPDATE PDU, header included.
    pub update: Bytes,
}

/// Peer Up (RFC 7854 §4.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUp {
    pub peer: PeerHeader,
    /// Our address on the session (IPv4 in the last four octets when the
    /// peer header's V flag is clear).
    pub local_address: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
    /// The OPEN we sent, header included.
    pub sent_open: Bytes,
    /// The OPEN we received, header included.
    pub received_open: Bytes,
    pub information: Vec<InfoTlv>,
}

impl PeerUp {
    /// The local address, read by the peer header's V flag.
    pub fn local_addr(&self) -> IpAddr {
        field_address(&self.local_address, self.peer.flags & flag::V != 0)
    }
}

/// Peer Down (RFC 7854 §4.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDown {
    pub peer: PeerHeader,
    pub reason: PeerDownReason,
}

/// Why a peer went down, with the data each reason carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerDownReason {
    /// 1: we closed the session and sent this NOTIFICATION (whole message).
    LocalNotification(Bytes),
    /// 2: we closed without a NOTIFICATION; the FSM event code (RFC 4271
    /// §8.1), 0 when none applies.
    LocalNoNotification(u16),
    /// 3: the peer closed with this NOTIFICATION (whole message).
    RemoteNotification(Bytes),
    /// 4: the peer closed the connection without a NOTIFICATION.
    RemoteNoData,
    /// 5: the peer was de-configured.
    Deconfigured,
    /// 6: the Loc-RIB instance went down (RFC 9069 §4.4), with TLVs.
    LocalTlv(Vec<InfoTlv>),
    /// Any other reason code, or a known one with data it does not carry.
    Other { code: u8, data: Bytes },
}

impl PeerDownReason {
    pub fn code(&self) -> u8 {
        match self {
            PeerDownReason::LocalNotification(_) => down::LOCAL_NOTIFICATION,
            PeerDownReason::LocalNoNotification(_) => down::LOCAL_NO_NOTIFICATION,
            PeerDownReason::RemoteNotification(_) => down::REMOTE_NOTIFICATION,
            PeerDownReason::RemoteNoData => down::REMOTE_NO_DATA,
            PeerDownReason::Deconfigured => down::DECONFIGURED,
            PeerDownReason::LocalTlv(_) => down::LOCAL_TLV,
            PeerDownReason::Other { code, .. } => *code,
        }
    }
}

/// Statistics Report (RFC 7854 §4.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsReport {
    pub peer: PeerHeader,
    pub stats: Vec<Stat>,
}

/// One statistic: its type and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub kind: u16,
    pub value: StatValue,
}

/// A statistic's value, typed by its type code (RFC 7854 §4.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatValue {
    /// A 32-bit counter (types 0–6, 11–13).
    Counter(u32),
    /// A 64-bit gauge (types 7, 8).
    Gauge(u64),
    /// A 64-bit gauge of one address family (types 9, 10).
    FamilyGauge(Family, u64),
    /// Any other type, or a known type whose length does not fit it.
    Raw(Bytes),
}

/// How the value of statistic `kind` is laid out.
pub(crate) enum StatLayout {
    Counter,
    Gauge,
    FamilyGauge,
    Unknown,
}

pub(crate) fn stat_layout(kind: u16) -> StatLayout {
    match kind {
        0..=6 | 11..=13 => StatLayout::Counter,
        7 | 8 => StatLayout::Gauge,
        9 | 10 => StatLayout::FamilyGauge,
        _ => StatLayout::Unknown,
    }
}

/// The codec context to read the UPDATEs of a peer header's messages with:
/// 2-octet AS_PATHs when A is set, no ADD-PATH (a station learns ADD-PATH
/// from the Peer Up OPENs, which this accessor does not have).
pub fn read_ctx(peer: &PeerHeader) -> tabby_bgp::codec::CodecCtx {
    tabby_bgp::codec::CodecCtx {
        four_octet_as: !peer.two_octet_as(),
        max_message_len: tabby_bgp::message::MAX_EXTENDED_MESSAGE_LEN,
        extended_next_hop: true,
        ..Default::default()
    }
}

impl RouteMonitoring {
    /// The embedded UPDATE, decoded by `tabby-bgp`.
    pub fn decode_update(&self) -> Result<tabby_bgp::message::Update, tabby_bgp::DecodeError> {
        match tabby_bgp::codec::decode_message(&self.update, &read_ctx(&self.peer))? {
            tabby_bgp::Message::Update(u) => Ok(u),
            // The BMP decoder checked the type octet.
            _ => Err(tabby_bgp::DecodeError::new(
                tabby_bgp::notification::MessageHeaderError::BadMessageType(
                    self.update.get(18).copied().unwrap_or(0),
                ),
                "route monitoring PDU is not an UPDATE",
            )),
        }
    }
}

impl PeerUp {
    /// The OPEN we sent, decoded by `tabby-bgp`.
    pub fn decode_sent_open(&self) -> Result<tabby_bgp::message::Open, tabby_bgp::DecodeError> {
        open_body(&self.sent_open)
    }

    /// The OPEN we received, decoded by `tabby-bgp`.
    pub fn decode_received_open(&self) -> Result<tabby_bgp::message::Open, tabby_bgp::DecodeError> {
        open_body(&self.received_open)
    }
}

fn open_body(pdu: &[u8]) -> Result<tabby_bgp::message::Open, tabby_bgp::DecodeError> {
    tabby_bgp::codec::decode_open(
        pdu.get(tabby_bgp::message::HEADER_LEN..)
            .unwrap_or_default(),
    )
}
