//! Basic BGP vocabulary: AS numbers, address families, NLRI.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::IpNet;

/// An autonomous system number (always held as 4 octets, RFC 6793).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Asn(pub u32);

impl Asn {
    /// RFC 6793 §9: the placeholder a 4-octet speaker sends to a 2-octet peer.
    pub const TRANS: Asn = Asn(23456);

    /// True when the number fits the 2-octet AS_PATH encoding.
    pub fn is_two_octet(self) -> bool {
        self.0 <= u16::MAX as u32
    }
}

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// BGP identifier (router id).
pub type RouterId = Ipv4Addr;

/// Address Family Identifier (IANA). Unknown values are kept, not rejected,
/// because capabilities may advertise families we do not speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Afi(pub u16);

impl Afi {
    pub const IPV4: Afi = Afi(1);
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (IANA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Safi(pub u8);

impl Safi {
    pub const UNICAST: Safi = Safi(1);
    pub const MULTICAST: Safi = Safi(2);
}

/// An (AFI, SAFI) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Family {
    pub afi: Afi,
    pub safi: Safi,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family {
        afi: Afi::IPV4,
        safi: Safi::UNICAST,
    };
    pub const IPV6_UNICAST: Family = Family {
        afi: Afi::IPV6,
        safi: Safi::UNICAST,
    };

    pub const fn new(afi: Afi, safi: Safi) -> Self {
        Family { afi, safi }
    }

    /// The families this speaker carries routes for.
    pub fn is_supported(self) -> bool {
        self == Self::IPV4_UNICAST || self == Self::IPV6_UNICAST
    }

    /// The family an IP prefix belongs to (unicast).
    pub fn of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Self::IPV4_UNICAST,
            IpNet::V6(_) => Self::IPV6_UNICAST,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Self::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            Family { afi, safi } => write!(f, "afi{}/safi{}", afi.0, safi.0),
        }
    }
}

/// One NLRI entry: a prefix with its ADD-PATH path identifier (RFC 7911) when
/// ADD-PATH was negotiated for that direction and family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nlri {
    pub prefix: IpNet,
    pub path_id: Option<u32>,
}

impl Nlri {
    pub fn new(prefix: IpNet) -> Self {
        Nlri {
            prefix,
            path_id: None,
        }
    }

    pub fn with_path_id(prefix: IpNet, path_id: u32) -> Self {
        Nlri {
            prefix,
            path_id: Some(path_id),
        }
    }

    pub fn family(&self) -> Family {
        Family::of(&self.prefix)
    }
}

impl fmt::Display for Nlri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path_id {
            Some(id) => write!(f, "{} (path-id {})", self.prefix, id),
            None => write!(f, "{}", self.prefix),
        }
    }
}
