//! Typed NOTIFICATIONs: one enum per error code (RFC 4271 §4.5, §6 and the
//! RFCs that add codes and subcodes) with the data each subcode defines,
//! and [`NotificationKind`] over them.
//!
//! `From<…> for Notification` builds the wire form; [`Notification::kind`]
//! reads it back, so a received NOTIFICATION is matched and shown by
//! variant. Reading never fails:
//!
//! - a code/subcode pair not in these tables is [`NotificationKind::Unknown`]
//!   (one built by hand for a known pair reads back as its typed variant);
//! - data a subcode requires is read as far as it goes, missing octets as
//!   zero;
//! - data a subcode may carry (`Option` fields) is `None` unless it has
//!   its documented shape.
//!
//! The [`Notification`] keeps the octets as received either way.

use std::fmt;
use std::net::Ipv4Addr;

use super::{Notification, cease, code, fsm, header, open, route_refresh, update};
use crate::capability::Role;
use crate::message::kind as message_type;
use crate::types::{Afi, Family, Safi};

/// Longest RFC 9003 shutdown communication, in octets.
const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// The first two octets of `data` as a big-endian integer, missing ones as
/// zero.
fn u16_padded(data: &[u8]) -> u16 {
    let mut b = [0u8; 2];
    for (d, s) in b.iter_mut().zip(data) {
        *d = *s;
    }
    u16::from_be_bytes(b)
}

fn first_or_zero(data: &[u8]) -> u8 {
    data.first().copied().unwrap_or(0)
}

fn exact<const N: usize>(data: &[u8]) -> Option<[u8; N]> {
    data.try_into().ok()
}

/// RFC 9003 §2: a length octet, then UTF-8 (at most 255 octets, cut on a
/// character boundary).
fn shutdown_data(text: &str) -> Vec<u8> {
    let mut end = text.len().min(MAX_SHUTDOWN_COMMUNICATION);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let body = text.as_bytes().get(..end).unwrap_or_default();
    let mut data = Vec::with_capacity(body.len() + 1);
    data.push(body.len() as u8);
    data.extend_from_slice(body);
    data
}

/// Text made safe for a log line: control characters replaced.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// The RFC 9003 shutdown communication in `data`, made safe for a log line:
/// invalid UTF-8 and control characters replaced, a length beyond the data
/// clamped. `None` when `data` is empty.
pub(super) fn shutdown_text(data: &[u8]) -> Option<String> {
    let (&len, rest) = data.split_first()?;
    let text = rest
        .get(..(len as usize).min(rest.len()))
        .unwrap_or_default();
    Some(sanitize(&String::from_utf8_lossy(text)))
}

/// The name of an error code, for operator messages.
fn code_name(code: u8) -> Option<&'static str> {
    Some(match code {
        code::MESSAGE_HEADER => "Message header error",
        code::OPEN => "OPEN message error",
        code::UPDATE => "UPDATE message error",
        code::HOLD_TIMER_EXPIRED => "Hold timer expired",
        code::FSM => "Finite state machine error",
        code::CEASE => "Cease",
        code::ROUTE_REFRESH => "ROUTE-REFRESH message error",
        code::SEND_HOLD_TIMER_EXPIRED => "Send hold timer expired",
        _ => return None,
    })
}

/// Implements, for one per-code enum: `CODE`, `Display` (code name, then
/// the subcode's detail) and the conversions into [`NotificationKind`] and
/// [`Notification`].
macro_rules! error_code {
    ($ty:ident, $code:path, $variant:ident) => {
        impl $ty {
            /// The error code of every variant.
            pub const CODE: u8 = $code;
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(code_name($code).unwrap_or_default())?;
                f.write_str(": ")?;
                self.detail(f)
            }
        }

        impl From<$ty> for NotificationKind {
            fn from(e: $ty) -> NotificationKind {
                NotificationKind::$variant(e)
            }
        }

        impl From<$ty> for Notification {
            fn from(e: $ty) -> Notification {
                let subcode = e.subcode();
                Notification::new($code, subcode, e.into_data())
            }
        }
    };
}

// ------------------------------------------------------------- code 1

/// Message Header Error (code 1, RFC 4271 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageHeaderError {
    /// Subcode 0: no more specific subcode applies.
    Unspecific,
    /// 1: the marker is not all ones.
    ConnectionNotSynchronized,
    /// 2: the erroneous Length field.
    BadMessageLength(u16),
    /// 3: the erroneous Type field.
    BadMessageType(u8),
}

error_code!(MessageHeaderError, code::MESSAGE_HEADER, MessageHeader);

impl MessageHeaderError {
    pub fn subcode(&self) -> u8 {
        match self {
            Self::Unspecific => 0,
            Self::ConnectionNotSynchronized => header::CONNECTION_NOT_SYNCHRONIZED,
            Self::BadMessageLength(_) => header::BAD_MESSAGE_LENGTH,
            Self::BadMessageType(_) => header::BAD_MESSAGE_TYPE,
        }
    }

    fn into_data(self) -> Vec<u8> {
        match self {
            Self::BadMessageLength(len) => len.to_be_bytes().to_vec(),
            Self::BadMessageType(ty) => vec![ty],
            Self::Unspecific | Self::ConnectionNotSynchronized => Vec::new(),
        }
    }

    fn parse(subcode: u8, data: &[u8]) -> Option<Self> {
        Some(match subcode {
            0 => Self::Unspecific,
            header::CONNECTION_NOT_SYNCHRONIZED => Self::ConnectionNotSynchronized,
            header::BAD_MESSAGE_LENGTH => Self::BadMessageLength(u16_padded(data)),
            header::BAD_MESSAGE_TYPE => Self::BadMessageType(first_or_zero(data)),
            _ => return None,
        })
    }

    fn detail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unspecific => f.write_str("unspecific"),
            Self::ConnectionNotSynchronized => f.write_str("connection not synchronized"),
            Self::BadMessageLength(len) => write!(f, "bad message length {len}"),
            Self::BadMessageType(ty) => write!(f, "bad message type {ty}"),
        }
    }
}

// ------------------------------------------------------------- code 2

/// OPEN Message Error (code 2, RFC 4271 §6.2, RFC 5492, RFC 9234).
///
/// Where RFC 4271 defines no data but speakers (Tabby among them) send the
/// offending field, the variant carries it as an `Option`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpenMessageError {
    /// Subcode 0: also what a recognised but malformed optional parameter
    /// or capability draws (RFC 4271 §6.2, RFC 5492 §3).
    Unspecific,
    /// 1: the largest version the sender supports.
    UnsupportedVersion(u16),
    /// 2: the My Autonomous System field of the refused OPEN.
    BadPeerAs(Option<u16>),
    /// 3: the refused BGP Identifier.
    BadBgpIdentifier(Option<Ipv4Addr>),
    /// 4: the refused parameter type.
    UnsupportedOptionalParameter(Option<u8>),
    /// 6: a hold time of 1 or 2 seconds (or one refused by local policy).
    UnacceptableHoldTime,
    /// 7: the capabilities (code, length, value) the sender requires and
    /// did not get (RFC 5492 §3).
    UnsupportedCapability(Vec<u8>),
    /// 11 (RFC 9234 §4.2): the peer's role value, when it sent one.
    RoleMismatch(Option<u8>),
}

error_code!(OpenMessageError, code::OPEN, Open);

impl OpenMessageError {
    pub fn subcode(&self) -> u8 {
        match self {
            Self::Unspecific => 0,
            Self::UnsupportedVersion(_) => open::UNSUPPORTED_VERSION,
            Self::BadPeerAs(_) => open::BAD_PEER_AS,
            Self::BadBgpIdentifier(_) => open::BAD_BGP_IDENTIFIER,
            Self::UnsupportedOptionalParameter(_) => open::UNSUPPORTED_OPTIONAL_PARAMETER,
            Self::UnacceptableHoldTime => open::UNACCEPTABLE_HOLD_TIME,
            Self::UnsupportedCapability(_) => open::UNSUPPORTED_CAPABILITY,
            Self::RoleMismatch(_) => open::ROLE_MISMATCH,
        }
    }

    fn into_data(self) -> Vec<u8> {
        match self {
            Self::UnsupportedVersion(v) => v.to_be_bytes().to_vec(),
            Self::BadPeerAs(Some(asn)) => asn.to_be_bytes().to_vec(),
            Self::BadBgpIdentifier(Some(id)) => id.octets().to_vec(),
            Self::UnsupportedOptionalParameter(Some(ty)) => vec![ty],
            Self::UnsupportedCapability(caps) => caps,
            Self::RoleMismatch(Some(role)) => vec![role],
            Self::Unspecific
            | Self::BadPeerAs(None)
            | Self::BadBgpIdentifier(None)
            | Self::UnsupportedOptionalParameter(None)
            | Self::UnacceptableHoldTime
            | Self::RoleMismatch(None) => Vec::new(),
        }
    }

    fn parse(subcode: u8, data: &[u8]) -> Option<Self> {
        Some(match subcode {
            0 => Self::Unspecific,
            open::UNSUPPORTED_VERSION => Self::UnsupportedVersion(u16_padded(data)),
            open::BAD_PEER_AS => Self::BadPeerAs(exact::<2>(data).map(u16::from_be_bytes)),
            open::BAD_BGP_IDENTIFIER => {
                Self::BadBgpIdentifier(exact::<4>(data).map(Ipv4Addr::from))
            }
            open::UNSUPPORTED_OPTIONAL_PARAMETER => {
                Self::UnsupportedOptionalParameter(exact::<1>(data).map(|[t]| t))
            }
            open::UNACCEPTABLE_HOLD_TIME => Self::UnacceptableHoldTime,
            open::UNSUPPORTED_CAPABILITY => Self::UnsupportedCapability(data.to_vec()),
            open::ROLE_MISMATCH => Self::RoleMismatch(exact::<1>(data).map(|[r]| r)),
            _ => return None,
        })
    }

    fn detail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unspecific => f.write_str("unspecific"),
            Self::UnsupportedVersion(v) => {
                write!(f, "unsupported version number (highest supported: {v})")
            }
            Self::BadPeerAs(None) => f.write_str("bad peer AS"),
            Self::BadPeerAs(Some(asn)) => write!(f, "bad peer AS ({asn})"),
            Self::BadBgpIdentifier(None) => f.write_str("bad BGP identifier"),
            Self::BadBgpIdentifier(Some(id)) => write!(f, "bad BGP identifier ({id})"),
            Self::UnsupportedOptionalParameter(None) => {
                f.write_str("unsupported optional parameter")
            }
            Self::UnsupportedOptionalParameter(Some(ty)) => {
                write!(f, "unsupported optional parameter (type {ty})")
            }
            Self::UnacceptableHoldTime => f.write_str("unacceptable hold time"),
            Self::UnsupportedCapability(caps) => {
                f.write_str("unsupported capability")?;
                let codes = capability_codes(caps);
                if let Some((first, rest)) = codes.split_first() {
                    let noun = if rest.is_empty() { "code" } else { "codes" };
                    write!(f, " ({noun} {first}")?;
                    for c in rest {
                        write!(f, ", {c}")?;
                    }
                    f.write_str(")")?;
                }
                Ok(())
            }
            Self::RoleMismatch(None) => f.write_str("role mismatch"),
            Self::RoleMismatch(Some(r)) => match Role::from_u8(*r) {
                Some(role) => write!(f, "role mismatch (role {})", role_name(role)),
                None => write!(f, "role mismatch (role {r})"),
            },
        }
    }
}

/// The codes of the capability TLVs in `caps`, as far as they parse.
fn capability_codes(mut caps: &[u8]) -> Vec<u8> {
    let mut codes = Vec::new();
    while let [code, len, rest @ ..] = caps {
        codes.push(*code);
        caps = rest.get(*len as usize..).unwrap_or_default();
    }
    codes
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Provider => "provider",
        Role::RouteServer => "route server",
        Role::RouteServerClient => "route server client",
        Role::Customer => "customer",
        Role::Peer => "peer",
    }
}

// ------------------------------------------------------------- code 3

/// UPDATE Message Error (code 3, RFC 4271 §6.3). The `Vec<u8>` variants
/// carry the erroneous attribute as it was on the wire (flags, type code,
/// length, value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UpdateMessageError {
    /// Subcode 0: no more specific subcode applies.
    Unspecific,
    /// 1.
    MalformedAttributeList,
    /// 2.
    UnrecognizedWellKnownAttribute(Vec<u8>),
    /// 3: the type code of the missing attribute.
    MissingWellKnownAttribute(u8),
    /// 4.
    AttributeFlagsError(Vec<u8>),
    /// 5.
    AttributeLengthError(Vec<u8>),
    /// 6.
    InvalidOrigin(Vec<u8>),
    /// 8.
    InvalidNextHop(Vec<u8>),
    /// 9.
    OptionalAttributeError(Vec<u8>),
    /// 10.
    InvalidNetworkField,
    /// 11.
    MalformedAsPath,
}

error_code!(UpdateMessageError, code::UPDATE, Update);

impl UpdateMessageError {
    pub fn subcode(&self) -> u8 {
        match self {
            Self::Unspecific => 0,
            Self::MalformedAttributeList => update::MALFORMED_ATTRIBUTE_LIST,
            Self::UnrecognizedWellKnownAttribute(_) => update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            Self::MissingWellKnownAttribute(_) => update::MISSING_WELL_KNOWN_ATTRIBUTE,
            Self::AttributeFlagsError(_) => update::ATTRIBUTE_FLAGS_ERROR,
            Self::AttributeLengthError(_) => update::ATTRIBUTE_LENGTH_ERROR,
            Self::InvalidOrigin(_) => update::INVALID_ORIGIN_ATTRIBUTE,
            Self::InvalidNextHop(_) => update::INVALID_NEXT_HOP_ATTRIBUTE,
            Self::OptionalAttributeError(_) => update::OPTIONAL_ATTRIBUTE_ERROR,
            Self::InvalidNetworkField => update::INVALID_NETWORK_FIELD,
            Self::MalformedAsPath => update::MALFORMED_AS_PATH,
        }
    }

    /// The erroneous attribute as it was on the wire, for the subcodes
    /// whose data it is.
    pub fn attribute(&self) -> Option<&[u8]> {
        match self {
            Self::UnrecognizedWellKnownAttribute(a)
            | Self::AttributeFlagsError(a)
            | Self::AttributeLengthError(a)
            | Self::InvalidOrigin(a)
            | Self::InvalidNextHop(a)
            | Self::OptionalAttributeError(a) => Some(a),
            _ => None,
        }
    }

    /// The type code of the attribute the error names, if it names one.
    pub fn attribute_type(&self) -> Option<u8> {
        match self {
            Self::MissingWellKnownAttribute(ty) => Some(*ty),
            _ => self.attribute().and_then(|a| a.get(1).copied()),
        }
    }

    fn into_data(self) -> Vec<u8> {
        match self {
            Self::UnrecognizedWellKnownAttribute(a)
            | Self::AttributeFlagsError(a)
            | Self::AttributeLengthError(a)
            | Self::InvalidOrigin(a)
            | Self::InvalidNextHop(a)
            | Self::OptionalAttributeError(a) => a,
            Self::MissingWellKnownAttribute(ty) => vec![ty],
            Self::Unspecific
            | Self::MalformedAttributeList
            | Self::InvalidNetworkField
            | Self::MalformedAsPath => Vec::new(),
        }
    }

    fn parse(subcode: u8, data: &[u8]) -> Option<Self> {
        let attr = || data.to_vec();
        Some(match subcode {
            0 => Self::Unspecific,
            update::MALFORMED_ATTRIBUTE_LIST => Self::MalformedAttributeList,
            update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE => {
                Self::UnrecognizedWellKnownAttribute(attr())
            }
            update::MISSING_WELL_KNOWN_ATTRIBUTE => {
                Self::MissingWellKnownAttribute(first_or_zero(data))
            }
            update::ATTRIBUTE_FLAGS_ERROR => Self::AttributeFlagsError(attr()),
            update::ATTRIBUTE_LENGTH_ERROR => Self::AttributeLengthError(attr()),
            update::INVALID_ORIGIN_ATTRIBUTE => Self::InvalidOrigin(attr()),
            update::INVALID_NEXT_HOP_ATTRIBUTE => Self::InvalidNextHop(attr()),
            update::OPTIONAL_ATTRIBUTE_ERROR => Self::OptionalAttributeError(attr()),
            update::INVALID_NETWORK_FIELD => Self::InvalidNetworkField,
            update::MALFORMED_AS_PATH => Self::MalformedAsPath,
            _ => return None,
        })
    }

    fn detail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecific => "unspecific",
            Self::MalformedAttributeList => "malformed attribute list",
            Self::UnrecognizedWellKnownAttribute(_) => "unrecognized well-known attribute",
            Self::MissingWellKnownAttribute(_) => "missing well-known attribute",
            Self::AttributeFlagsError(_) => "attribute flags error",
            Self::AttributeLengthError(_) => "attribute length error",
            Self::InvalidOrigin(_) => "invalid ORIGIN attribute",
            Self::InvalidNextHop(_) => "invalid NEXT_HOP attribute",
            Self::OptionalAttributeError(_) => "optional attribute error",
            Self::InvalidNetworkField => "invalid network field",
            Self::MalformedAsPath => "malformed AS_PATH",
        })?;
        match self.attribute_type() {
            Some(ty) => write!(f, " (type {ty})"),
            None => Ok(()),
        }
    }
}

// ------------------------------------------------------------- code 5

/// Finite State Machine Error (code 5, RFC 6608). The unexpected message's
/// type is the data of subcodes 1-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsmError {
    /// Subcode 0.
    Unspecified,
    /// 1.
    UnexpectedMessageInOpenSent(Option<u8>),
    /// 2.
    UnexpectedMessageInOpenConfirm(Option<u8>),
    /// 3.
    UnexpectedMessageInEstablished(Option<u8>),
}

error_code!(FsmError, code::FSM, Fsm);

impl FsmError {
    pub fn subcode(&self) -> u8 {
        match self {
            Self::Unspecified => fsm::UNSPECIFIED,
            Self::UnexpectedMessageInOpenSent(_) => fsm::UNEXPECTED_IN_OPENSENT,
            Self::UnexpectedMessageInOpenConfirm(_) => fsm::UNEXPECTED_IN_OPENCONFIRM,
            Self::UnexpectedMessageInEstablished(_) => fsm::UNEXPECTED_IN_ESTABLISHED,
        }
    }

    fn message_type(&self) -> Option<u8> {
        match self {
            Self::Unspecified => None,
            Self::UnexpectedMessageInOpenSent(t)
            | Self::UnexpectedMessageInOpenConfirm(t)
            | Self::UnexpectedMessageInEstablished(t) => *t,
        }
    }

    fn into_data(self) -> Vec<u8> {
        self.message_type().map(|t| vec![t]).unwrap_or_default()
    }

    fn parse(subcode: u8, data: &[u8]) -> Option<Self> {
        let ty = exact::<1>(data).map(|[t]| t);
        Some(match subcode {
            fsm::UNSPECIFIED => Self::Unspecified,
            fsm::UNEXPECTED_IN_OPENSENT => Self::UnexpectedMessageInOpenSent(ty),
            fsm::UNEXPECTED_IN_OPENCONFIRM => Self::UnexpectedMessageInOpenConfirm(ty),
            fsm::UNEXPECTED_IN_ESTABLISHED => Self::UnexpectedMessageInEstablished(ty),
            _ => return None,
        })
    }

    fn detail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            Self::Unspecified => return f.write_str("unspecified error"),
            Self::UnexpectedMessageInOpenSent(_) => "OpenSent",
            Self::UnexpectedMessageInOpenConfirm(_) => "OpenConfirm",
            Self::UnexpectedMessageInEstablished(_) => "Established",
        };
        let name = match self.message_type() {
            None => None,
            Some(message_type::OPEN) => Some("OPEN"),
            Some(message_type::UPDATE) => Some("UPDATE"),
            Some(message_type::NOTIFICATION) => Some("NOTIFICATION"),
            Some(message_type::KEEPALIVE) => Some("KEEPALIVE"),
            Some(message_type::ROUTE_REFRESH) => Some("ROUTE-REFRESH"),
            Some(t) => return write!(f, "unexpected message of type {t} in {state}"),
        };
        match name {
            Some(n) => write!(f, "unexpected {n} in {state}"),
            None => write!(f, "unexpected message in {state}"),
        }
    }
}

// ------------------------------------------------------------- code 6

/// The family and the limit a Cease / Maximum Number of Prefixes Reached
/// names (RFC 4486 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixLimit {
    pub family: Family,
    pub limit: u32,
}

/// Cease (code 6, RFC 4486, RFC 8538, RFC 9384).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cease {
    /// 1: optionally with the family and the limit.
    MaxPrefixesReached(Option<PrefixLimit>),
    /// 2: optionally with an RFC 9003 shutdown communication (at most 255
    /// octets of UTF-8 are sent).
    AdministrativeShutdown(Option<String>),
    /// 3.
    PeerDeconfigured,
    /// 4: optionally with an RFC 9003 shutdown communication.
    AdministrativeReset(Option<String>),
    /// 5.
    ConnectionRejected,
    /// 6.
    OtherConfigurationChange,
    /// 7.
    ConnectionCollisionResolution,
    /// 8.
    OutOfResources,
    /// 9 (RFC 8538 §3): the Cease it stands for. Read back one level deep:
    /// a Hard Reset inside a Hard Reset reads as `HardReset(None)`, and
    /// one around an unknown subcode as `HardReset(None)` too.
    HardReset(Option<Box<Cease>>),
    /// 10 (RFC 9384): the BFD session went down.
    BfdDown,
}

error_code!(Cease, code::CEASE, Cease);

impl Cease {
    pub fn subcode(&self) -> u8 {
        match self {
            Self::MaxPrefixesReached(_) => cease::MAX_PREFIXES_REACHED,
            Self::AdministrativeShutdown(_) => cease::ADMINISTRATIVE_SHUTDOWN,
            Self::PeerDeconfigured => cease::PEER_DECONFIGURED,
            Self::AdministrativeReset(_) => cease::ADMINISTRATIVE_RESET,
            Self::ConnectionRejected => cease::CONNECTION_REJECTED,
            Self::OtherConfigurationChange => cease::OTHER_CONFIGURATION_CHANGE,
            Self::ConnectionCollisionResolution => cease::CONNECTION_COLLISION_RESOLUTION,
            Self::OutOfResources => cease::OUT_OF_RESOURCES,
            Self::HardReset(_) => cease::HARD_RESET,
            Self::BfdDown => cease::BFD_DOWN,
        }
    }

    /// RFC 8538 §3: this Cease sent as a Hard Reset.
    pub fn hard_reset(self) -> Cease {
        Cease::HardReset(Some(Box::new(self)))
    }

    fn into_data(self) -> Vec<u8> {
        match self {
            Self::MaxPrefixesReached(Some(l)) => {
                let mut d = Vec::with_capacity(7);
                d.extend_from_slice(&l.family.afi.0.to_be_bytes());
                d.push(l.family.safi.0);
                d.extend_from_slice(&l.limit.to_be_bytes());
                d
            }
            Self::AdministrativeShutdown(Some(text)) | Self::AdministrativeReset(Some(text)) => {
                shutdown_data(&text)
            }
            Self::HardReset(Some(inner)) => {
                let mut d = vec![inner.subcode()];
                d.extend(inner.into_data());
                d
            }
            Self::MaxPrefixesReached(None)
            | Self::AdministrativeShutdown(None)
            | Self::PeerDeconfigured
            | Self::AdministrativeReset(None)
            | Self::ConnectionRejected
            | Self::OtherConfigurationChange
            | Self::ConnectionCollisionResolution
            | Self::OutOfResources
            | Self::HardReset(None)
            | Self::BfdDown => Vec::new(),
        }
    }

    fn parse(subcode: u8, data: &[u8]) -> Option<Self> {
        Self::parse_at(subcode, data, false)
    }

    /// `nested`: inside a Hard Reset, whose own data is not read again (no
    /// input can make this recurse).
    fn parse_at(subcode: u8, data: &[u8], nested: bool) -> Option<Self> {
        Some(match subcode {
            cease::MAX_PREFIXES_REACHED => {
                Self::MaxPrefixesReached(exact::<7>(data).map(|[a1, a2, safi, l1, l2, l3, l4]| {
                    PrefixLimit {
                        family: Family::new(Afi(u16::from_be_bytes([a1, a2])), Safi(safi)),
                        limit: u32::from_be_bytes([l1, l2, l3, l4]),
                    }
                }))
            }
            cease::ADMINISTRATIVE_SHUTDOWN => Self::AdministrativeShutdown(shutdown_text(data)),
            cease::PEER_DECONFIGURED => Self::PeerDeconfigured,
            cease::ADMINISTRATIVE_RESET => Self::AdministrativeReset(shutdown_text(data)),
            cease::CONNECTION_REJECTED => Self::ConnectionRejected,
            cease::OTHER_CONFIGURATION_CHANGE => Self::OtherConfigurationChange,
            cease::CONNECTION_COLLISION_RESOLUTION => Self::ConnectionCollisionResolution,
            cease::OUT_OF_RESOURCES => Self::OutOfResources,
            cease::HARD_RESET if nested => Self::HardReset(None),
            cease::HARD_RESET => Self::HardReset(
                data.split_first()
                    .and_then(|(&sub, rest)| Self::parse_at(sub, rest, true))
                    .map(Box::new),
            ),
            cease::BFD_DOWN => Self::BfdDown,
            _ => return None,
        })
    }

    fn detail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_text = |f: &mut fmt::Formatter<'_>, what: &str, text: &Option<String>| {
            f.write_str(what)?;
            match text.as_deref() {
                Some(t) if !t.is_empty() => write!(f, ": \"{}\"", sanitize(t)),
                _ => Ok(()),
            }
        };
        match self {
            Self::MaxPrefixesReached(None) => f.write_str("maximum number of prefixes reached"),
            Self::MaxPrefixesReached(Some(l)) => write!(
                f,
                "maximum number of prefixes reached ({}, limit {})",
                l.family, l.limit
            ),
            Self::AdministrativeShutdown(t) => with_text(f, "administrative shutdown", t),
            Self::PeerDeconfigured => f.write_str("peer de-configured"),
            Self::AdministrativeReset(t) => with_text(f, "administrative reset", t),
            Self::ConnectionRejected => f.write_str("connection rejected"),
            Self::OtherConfigurationChange => f.write_str("other configuration change"),
            Self::ConnectionCollisionResolution => f.write_str("connection collision resolution"),
            Self::OutOfResources => f.write_str("out of resources"),
            Self::HardReset(None) => f.write_str("hard reset"),
            Self::HardReset(Some(inner)) => {
                f.write_str("hard reset (")?;
                inner.detail(f)?;
                f.write_str(")")
            }
            Self::BfdDown => f.write_str("BFD down"),
        }
    }
}

// ------------------------------------------------------------- code 7

/// ROUTE-REFRESH Message Error (code 7, RFC 7313 §5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteRefreshError {
    /// 1: the whole offending ROUTE-REFRESH message.
    InvalidMessageLength(Vec<u8>),
}

error_code!(RouteRefreshError, code::ROUTE_REFRESH, RouteRefresh);

impl RouteRefreshError {
    pub fn subcode(&self) -> u8 {
        match self {
            Self::InvalidMessageLength(_) => route_refresh::INVALID_MESSAGE_LENGTH,
        }
    }

    fn into_data(self) -> Vec<u8> {
        match self {
            Self::InvalidMessageLength(m) => m,
        }
    }

    fn parse(subcode: u8, data: &[u8]) -> Option<Self> {
        match subcode {
            route_refresh::INVALID_MESSAGE_LENGTH => {
                Some(Self::InvalidMessageLength(data.to_vec()))
            }
            _ => None,
        }
    }

    fn detail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMessageLength(m) => {
                write!(f, "invalid message length ({} octets)", m.len())
            }
        }
    }
}

// ------------------------------------------------------------- all codes

/// What a NOTIFICATION says, typed: one variant per error code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    MessageHeader(MessageHeaderError),
    Open(OpenMessageError),
    Update(UpdateMessageError),
    /// Code 4 (RFC 4271 §6.5), subcode 0.
    HoldTimerExpired,
    Fsm(FsmError),
    Cease(Cease),
    RouteRefresh(RouteRefreshError),
    /// Code 8 (RFC 9687 §4), subcode 0.
    SendHoldTimerExpired,
    /// A code/subcode pair these tables do not know. Converts to a
    /// NOTIFICATION without data.
    Unknown {
        code: u8,
        subcode: u8,
    },
}

impl NotificationKind {
    /// Reads a NOTIFICATION's fields (see the module documentation for how
    /// data of the wrong shape is read).
    pub fn parse(code: u8, subcode: u8, data: &[u8]) -> NotificationKind {
        let known = match code {
            code::MESSAGE_HEADER => MessageHeaderError::parse(subcode, data).map(Self::from),
            code::OPEN => OpenMessageError::parse(subcode, data).map(Self::from),
            code::UPDATE => UpdateMessageError::parse(subcode, data).map(Self::from),
            code::HOLD_TIMER_EXPIRED => (subcode == 0).then_some(Self::HoldTimerExpired),
            code::FSM => FsmError::parse(subcode, data).map(Self::from),
            code::CEASE => Cease::parse(subcode, data).map(Self::from),
            code::ROUTE_REFRESH => RouteRefreshError::parse(subcode, data).map(Self::from),
            code::SEND_HOLD_TIMER_EXPIRED => (subcode == 0).then_some(Self::SendHoldTimerExpired),
            _ => None,
        };
        known.unwrap_or(Self::Unknown { code, subcode })
    }

    pub fn code(&self) -> u8 {
        match self {
            Self::MessageHeader(_) => MessageHeaderError::CODE,
            Self::Open(_) => OpenMessageError::CODE,
            Self::Update(_) => UpdateMessageError::CODE,
            Self::HoldTimerExpired => code::HOLD_TIMER_EXPIRED,
            Self::Fsm(_) => FsmError::CODE,
            Self::Cease(_) => Cease::CODE,
            Self::RouteRefresh(_) => RouteRefreshError::CODE,
            Self::SendHoldTimerExpired => code::SEND_HOLD_TIMER_EXPIRED,
            Self::Unknown { code, .. } => *code,
        }
    }

    pub fn subcode(&self) -> u8 {
        match self {
            Self::MessageHeader(e) => e.subcode(),
            Self::Open(e) => e.subcode(),
            Self::Update(e) => e.subcode(),
            Self::HoldTimerExpired | Self::SendHoldTimerExpired => 0,
            Self::Fsm(e) => e.subcode(),
            Self::Cease(e) => e.subcode(),
            Self::RouteRefresh(e) => e.subcode(),
            Self::Unknown { subcode, .. } => *subcode,
        }
    }
}

impl From<NotificationKind> for Notification {
    fn from(k: NotificationKind) -> Notification {
        match k {
            NotificationKind::MessageHeader(e) => e.into(),
            NotificationKind::Open(e) => e.into(),
            NotificationKind::Update(e) => e.into(),
            NotificationKind::HoldTimerExpired => {
                Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new())
            }
            NotificationKind::Fsm(e) => e.into(),
            NotificationKind::Cease(e) => e.into(),
            NotificationKind::RouteRefresh(e) => e.into(),
            NotificationKind::SendHoldTimerExpired => {
                Notification::new(code::SEND_HOLD_TIMER_EXPIRED, 0, Vec::new())
            }
            NotificationKind::Unknown { code, subcode } => {
                Notification::new(code, subcode, Vec::new())
            }
        }
    }
}

impl From<&Notification> for NotificationKind {
    fn from(n: &Notification) -> NotificationKind {
        NotificationKind::parse(n.code, n.subcode, &n.data)
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MessageHeader(e) => e.fmt(f),
            Self::Open(e) => e.fmt(f),
            Self::Update(e) => e.fmt(f),
            Self::Fsm(e) => e.fmt(f),
            Self::Cease(e) => e.fmt(f),
            Self::RouteRefresh(e) => e.fmt(f),
            Self::HoldTimerExpired | Self::SendHoldTimerExpired => {
                f.write_str(code_name(self.code()).unwrap_or_default())
            }
            Self::Unknown { code, subcode } => match code_name(*code) {
                Some(name) => write!(f, "{name}: unknown subcode {subcode}"),
                None => write!(f, "unknown error code {code} (subcode {subcode})"),
            },
        }
    }
}
