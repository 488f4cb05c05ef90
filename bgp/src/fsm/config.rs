//! Per-peer session configuration.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::capability::{AddPathFamily, Role};
use crate::types::{Asn, Family};

/// Which AS numbers the peer may announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAs {
    /// Exactly this AS.
    Exact(Asn),
    /// Our own AS (iBGP).
    Internal,
    /// Any AS other than ours (eBGP).
    External,
    /// Any AS in this inclusive range.
    Range { min: Asn, max: Asn },
}

impl PeerAs {
    pub fn accepts(self, local: Asn, peer: Asn) -> bool {
        match self {
            PeerAs::Exact(a) => a == peer,
            PeerAs::Internal => peer == local,
            PeerAs::External => peer != local,
            PeerAs::Range { min, max } => (min..=max).contains(&peer),
        }
    }
}

/// Our side of graceful restart (RFC 4724, RFC 8538).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrConfig {
    /// Seconds the peer should keep our routes after we go away (12 bits).
    pub restart_time: u16,
    /// R bit: set after this process restarted with routes preserved.
    pub restarting: bool,
    /// F bit for each announced family: the data plane survived a restart.
    pub forwarding_preserved: bool,
    /// N bit (RFC 8538): NOTIFICATION-triggered graceful restart.
    pub notification: bool,
}

impl Default for GrConfig {
    fn default() -> Self {
        GrConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: true,
            notification: true,
        }
    }
}

/// Everything the FSM needs to know about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: Asn,
    pub peer_as: PeerAs,
    pub router_id: Ipv4Addr,
    /// Seconds; 0 disables the hold timer, 1 and 2 are invalid (RFC 4271 §4.2).
    pub hold_time: u16,
    /// Seconds between KEEPALIVEs; default a third of the negotiated hold time.
    pub keepalive: Option<u16>,
    /// RFC 4271 §8: wait between outgoing connection attempts.
    pub connect_retry: Duration,
    /// Never connect; only accept the peer's connection.
    pub passive: bool,
    /// RFC 4271 §8.1.1 DelayOpen: wait this long for the peer's OPEN before
    /// sending ours.
    pub delay_open: Option<Duration>,
    /// Idle hold after the session failed, doubled on each failure up to
    /// `idle_hold_max` (RFC 4271 §8.1.1 DampPeerOscillations), and reset once
    /// the session stays up for `idle_hold_max`.
    pub idle_hold: Duration,
    pub idle_hold_max: Duration,
    /// RFC 9687 send hold time; `None` uses the RFC default of
    /// max(8 minutes, 2 × hold time).
    pub send_hold: Option<Duration>,
    /// RFC 4271 §8: hold time while waiting for the peer's OPEN.
    pub open_hold: Duration,
    /// Families to offer (RFC 4760 multiprotocol capability).
    pub families: Vec<Family>,
    pub graceful_restart: Option<GrConfig>,
    /// RFC 9494 long-lived stale time in seconds (24 bits) for every family.
    pub llgr_stale_time: Option<u32>,
    /// RFC 7911 ADD-PATH per family.
    pub add_path: Vec<AddPathFamily>,
    /// RFC 8950: offer IPv6 next hops for IPv4 unicast NLRI.
    pub extended_next_hop: bool,
    /// RFC 8654: offer 65535-octet messages.
    pub extended_messages: bool,
    /// RFC 7313: offer enhanced route refresh.
    pub enhanced_route_refresh: bool,
    /// RFC 9234 role; with `role_strict`, a peer without a role is refused.
    pub role: Option<Role>,
    pub role_strict: bool,
}

impl SessionConfig {
    /// Defaults close to BIRD's and FRR's: hold 90 s, IPv4 and IPv6 unicast,
    /// route refresh, 4-octet AS, graceful restart helper with N bit.
    pub fn new(local_as: Asn, peer_as: PeerAs, router_id: Ipv4Addr) -> Self {
        SessionConfig {
            local_as,
            peer_as,
            router_id,
            hold_time: 90,
            keepalive: None,
            connect_retry: Duration::from_secs(5),
            passive: false,
            delay_open: None,
            idle_hold: Duration::from_secs(1),
            idle_hold_max: Duration::from_secs(120),
            send_hold: None,
            open_hold: Duration::from_secs(240),
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            graceful_restart: Some(GrConfig::default()),
            llgr_stale_time: None,
            add_path: Vec::new(),
            extended_next_hop: false,
            extended_messages: false,
            enhanced_route_refresh: true,
            role: None,
            role_strict: false,
        }
    }

    /// Checks what would make every peer refuse us, in words for the
    /// operator.
    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.hold_time, 1 | 2) {
            return Err(format!(
                "hold time {} s is invalid: use 0 (no hold timer) or at least 3 (RFC 4271 §4.2)",
                self.hold_time
            ));
        }
        if self.router_id.is_unspecified() {
            return Err("router id 0.0.0.0 is invalid (RFC 6286): set a router id".into());
        }
        if self.local_as.0 == 0 {
            return Err("local AS 0 is invalid (RFC 7607)".into());
        }
        if self.families.is_empty() {
            return Err("no address family to offer: enable IPv4 or IPv6 unicast".into());
        }
        // Timer arithmetic on Instant must not overflow.
        let day = Duration::from_secs(86_400);
        let timers = [
            ("connect retry", Some(self.connect_retry)),
            ("delay open", self.delay_open),
            ("idle hold", Some(self.idle_hold)),
            ("idle hold maximum", Some(self.idle_hold_max)),
            ("send hold", self.send_hold),
            ("open hold", Some(self.open_hold)),
        ];
        if let Some((name, d)) = timers
            .iter()
            .find_map(|(n, d)| d.filter(|d| *d > day).map(|d| (n, d)))
        {
            return Err(format!("{name} time {d:?} is longer than a day"));
        }
        if let Some(k) = self.keepalive
            && self.hold_time != 0
            && k > self.hold_time / 3
        {
            return Err(format!(
                "keepalive {k} s is more than a third of the hold time {} s",
                self.hold_time
            ));
        }
        Ok(())
    }

    /// RFC 9687 §3: the send hold time in force for a negotiated hold time.
    pub fn send_hold_time(&self, hold: Duration) -> Duration {
        self.send_hold
            .unwrap_or_else(|| Duration::from_secs(480).max(hold * 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let ok = SessionConfig::new(Asn(65001), PeerAs::External, Ipv4Addr::new(198, 18, 0, 1));
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.hold_time = 2;
        assert!(c.validate().is_err());
        c.hold_time = 0;
        assert!(c.validate().is_ok());
        let mut c = ok.clone();
        c.router_id = Ipv4Addr::UNSPECIFIED;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.keepalive = Some(60);
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.connect_retry = Duration::MAX;
        assert!(c.validate().is_err());
        let mut c = ok;
        c.families.clear();
        assert!(c.validate().is_err());
    }

    #[test]
    fn send_hold_default_follows_rfc_9687() {
        let c = SessionConfig::new(Asn(65001), PeerAs::External, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(
            c.send_hold_time(Duration::from_secs(90)),
            Duration::from_secs(480)
        );
        assert_eq!(
            c.send_hold_time(Duration::from_secs(300)),
            Duration::from_secs(600)
        );
    }
}
