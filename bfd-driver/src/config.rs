//! What the daemon chooses: the driver's sockets ([`DriverConfig`]) and each
//! session ([`SessionSpec`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tabby_bfd::{AuthConfig, SessionConfig, Timers};

use crate::transport::HopMode;

/// RFC 5883 §5 leaves the TTL check of multihop sessions to configuration;
/// like FRR's default, we accept one router between the two systems.
pub const DEFAULT_MULTIHOP_MIN_TTL: u8 = 254;

/// The driver's sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// The address the IPv4 sockets bind to (the wildcard by default);
    /// `None` turns IPv4 off.
    pub listen_v4: Option<Ipv4Addr>,
    /// The address the IPv6 sockets bind to (the wildcard by default);
    /// `None` turns IPv6 off.
    pub listen_v6: Option<Ipv6Addr>,
    /// The source port of every packet sent (RFC 5881 §4: 49152–65535);
    /// `None`: a random free one.
    pub source_port: Option<u16>,
    /// How many events a slow subscriber may fall behind before it misses
    /// some (it then re-reads [`crate::BfdHandle::sessions`]).
    pub event_capacity: usize,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            listen_v4: Some(Ipv4Addr::UNSPECIFIED),
            listen_v6: Some(Ipv6Addr::UNSPECIFIED),
            source_port: None,
            event_capacity: 1024,
        }
    }
}

/// One session to run.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The remote system. An IPv6 link-local address needs `interface`.
    pub peer: IpAddr,
    /// Our address: the source of our packets, and part of the key that
    /// matches the peer's first packets to this session (RFC 5880 §6.3).
    /// Required for multihop (RFC 5883 §3); for single-hop, `None` lets
    /// the kernel choose and accepts the peer's packets on any address.
    pub local: Option<IpAddr>,
    /// RFC 5883 multihop instead of RFC 5881 single-hop.
    pub multihop: bool,
    /// Single-hop only: the interface the peer is on; packets leave through
    /// it and are accepted only when they arrive on it.
    pub interface: Option<String>,
    pub timers: Timers,
    /// Passive role (RFC 5880 §6.1): silent until the peer is heard.
    pub passive: bool,
    /// Keyed SHA1 or Meticulous Keyed SHA1 (RFC 5880 §6.7.4).
    pub auth: Option<AuthConfig>,
    /// Multihop only: the lowest TTL / hop limit accepted (RFC 5883 §5).
    /// Single-hop always requires 255 (RFC 5881 §5).
    pub min_ttl: u8,
}

impl fmt::Debug for SessionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSpec")
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("multihop", &self.multihop)
            .field("interface", &self.interface)
            .field("timers", &self.timers)
            .field("passive", &self.passive)
            // AuthConfig's Debug never prints the key.
            .field("auth", &self.auth)
            .field("min_ttl", &self.min_ttl)
            .finish()
    }
}

impl SessionSpec {
    /// A single-hop session (RFC 5881) with the default timers.
    pub fn single_hop(peer: IpAddr, local: Option<IpAddr>, interface: Option<&str>) -> SessionSpec {
        SessionSpec {
            peer,
            local,
            multihop: false,
            interface: interface.map(str::to_string),
            timers: Timers::default(),
            passive: false,
            auth: None,
            min_ttl: crate::transport::TTL,
        }
    }

    /// A multihop session (RFC 5883) with the default timers and minimum
    /// TTL.
    pub fn multihop(peer: IpAddr, local: IpAddr) -> SessionSpec {
        SessionSpec {
            peer,
            local: Some(local),
            multihop: true,
            interface: None,
            timers: Timers::default(),
            passive: false,
            auth: None,
            min_ttl: DEFAULT_MULTIHOP_MIN_TTL,
        }
    }

    /// The same with other timers.
    pub fn with_timers(mut self, timers: Timers) -> SessionSpec {
        self.timers = timers;
        self
    }

    pub fn hop_mode(&self) -> HopMode {
        if self.multihop {
            HopMode::Multihop
        } else {
            HopMode::SingleHop
        }
    }

    /// The lowest TTL accepted: 255 for single-hop whatever `min_ttl` says.
    pub fn required_ttl(&self) -> u8 {
        match self.hop_mode() {
            HopMode::SingleHop => crate::transport::TTL,
            HopMode::Multihop => self.min_ttl,
        }
    }

    /// What the sans-IO session is built from.
    pub(crate) fn session_config(&self) -> SessionConfig {
        SessionConfig {
            timers: self.timers,
            passive: self.passive,
            auth: self.auth.clone(),
        }
    }

    /// The checks that need no sockets; see [`crate::BfdError`].
    pub(crate) fn validate(&self) -> Result<(), crate::BfdError> {
        use crate::BfdError;
        if let Some(l) = self.local
            && l.is_ipv4() != self.peer.is_ipv4()
        {
            return Err(BfdError::FamilyMismatch);
        }
        if self.peer.is_unspecified() || self.peer.is_multicast() {
            return Err(BfdError::BadPeer(self.peer));
        }
        if self.multihop {
            if self.local.is_none() {
                return Err(BfdError::MultihopNeedsLocal);
            }
            if self.interface.is_some() {
                return Err(BfdError::MultihopInterface);
            }
        }
        if is_link_local(self.peer) && self.interface.is_none() {
            return Err(BfdError::LinkLocalNeedsInterface);
        }
        self.timers.validate()?;
        Ok(())
    }
}

/// IPv6 link-local unicast (fe80::/10): meaningful only with a scope.
pub(crate) fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BfdError;

    #[test]
    fn validation() {
        let v4: IpAddr = "198.18.0.2".parse().unwrap();
        let v6: IpAddr = "2001:db8::2".parse().unwrap();
        let ll: IpAddr = "fe80::2".parse().unwrap();
        assert!(SessionSpec::single_hop(v4, None, None).validate().is_ok());
        assert_eq!(
            SessionSpec::single_hop(v4, Some(v6), None).validate(),
            Err(BfdError::FamilyMismatch)
        );
        assert_eq!(
            SessionSpec::single_hop(ll, None, None).validate(),
            Err(BfdError::LinkLocalNeedsInterface)
        );
        assert!(
            SessionSpec::single_hop(ll, None, Some("eth0"))
                .validate()
                .is_ok()
        );
        let mut mh = SessionSpec::multihop(v4, "198.18.0.1".parse().unwrap());
        assert!(mh.validate().is_ok());
        assert_eq!(mh.required_ttl(), DEFAULT_MULTIHOP_MIN_TTL);
        mh.local = None;
        assert_eq!(mh.validate(), Err(BfdError::MultihopNeedsLocal));
        let mut bad = SessionSpec::single_hop(v4, None, None);
        bad.timers.detect_mult = 0;
        assert!(matches!(bad.validate(), Err(BfdError::Config(_))));
        assert_eq!(SessionSpec::single_hop(v4, None, None).required_ttl(), 255);
    }
}
