//! What the driver reports: per-session snapshots, driver counters and the
//! reasons a received packet is dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use tabby_bfd::{DecodeError, Diag, State, Timers};

use crate::SessionId;

/// Why a received datagram was dropped without reaching any session, or
/// was discarded by its session. Either way no session changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The packet checks of RFC 5880 §6.8.6 that need no session.
    Malformed(MalformedKind),
    /// Single-hop with a TTL / hop limit other than 255 (RFC 5881 §5), or
    /// multihop below the session's minimum (RFC 5883 §5).
    BadTtl,
    /// The kernel did not tell us the TTL, destination or interface.
    MissingControlData,
    /// Your Discriminator names no session of ours (RFC 5880 §6.8.6).
    UnknownDiscriminator,
    /// Your Discriminator is zero and no session matches the source,
    /// destination and interface (RFC 5880 §6.3, RFC 5881 §3).
    NoSessionForAddress,
    /// Your Discriminator names a session with another peer address.
    PeerAddressMismatch,
    /// Your Discriminator names a session bound to another interface or
    /// local address.
    LocalMismatch,
    /// A packet on the single-hop port for a multihop session or the
    /// reverse (the ports of RFC 5881 §4 and RFC 5883 §5 separate them).
    HopModeMismatch,
    /// Authentication failed or was unexpected (RFC 5880 §6.7).
    Authentication,
}

/// Which §6.8.6 packet check failed (the fields of
/// [`tabby_bfd::DecodeError`] without their values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MalformedKind {
    Truncated,
    BadVersion,
    LengthTooSmall,
    LengthExceedsPayload,
    ZeroDetectMult,
    Multipoint,
    ZeroMyDiscriminator,
    ZeroYourDiscriminator,
    AuthLength,
    UnknownAuthType,
}

impl From<&DecodeError> for MalformedKind {
    fn from(e: &DecodeError) -> MalformedKind {
        match e {
            DecodeError::Truncated { .. } => MalformedKind::Truncated,
            DecodeError::BadVersion(_) => MalformedKind::BadVersion,
            DecodeError::LengthTooSmall { .. } => MalformedKind::LengthTooSmall,
            DecodeError::LengthExceedsPayload { .. } => MalformedKind::LengthExceedsPayload,
            DecodeError::ZeroDetectMult => MalformedKind::ZeroDetectMult,
            DecodeError::MultipointSet => MalformedKind::Multipoint,
            DecodeError::ZeroMyDiscriminator => MalformedKind::ZeroMyDiscriminator,
            DecodeError::ZeroYourDiscriminator(_) => MalformedKind::ZeroYourDiscriminator,
            DecodeError::AuthLengthMismatch { .. } | DecodeError::BadAuthLength { .. } => {
                MalformedKind::AuthLength
            }
            DecodeError::UnknownAuthType(_) => MalformedKind::UnknownAuthType,
        }
    }
}

impl fmt::Display for DropReason {
    /// A stable snake_case name, fit for a metric label.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DropReason::Malformed(k) => {
                return write!(
                    f,
                    "malformed_{}",
                    match k {
                        MalformedKind::Truncated => "truncated",
                        MalformedKind::BadVersion => "bad_version",
                        MalformedKind::LengthTooSmall => "length_too_small",
                        MalformedKind::LengthExceedsPayload => "length_exceeds_payload",
                        MalformedKind::ZeroDetectMult => "zero_detect_mult",
                        MalformedKind::Multipoint => "multipoint",
                        MalformedKind::ZeroMyDiscriminator => "zero_my_discriminator",
                        MalformedKind::ZeroYourDiscriminator => "zero_your_discriminator",
                        MalformedKind::AuthLength => "auth_length",
                        MalformedKind::UnknownAuthType => "unknown_auth_type",
                    }
                );
            }
            DropReason::BadTtl => "bad_ttl",
            DropReason::MissingControlData => "missing_control_data",
            DropReason::UnknownDiscriminator => "unknown_discriminator",
            DropReason::NoSessionForAddress => "no_session_for_address",
            DropReason::PeerAddressMismatch => "peer_address_mismatch",
            DropReason::LocalMismatch => "local_mismatch",
            DropReason::HopModeMismatch => "hop_mode_mismatch",
            DropReason::Authentication => "authentication",
        };
        f.write_str(s)
    }
}

/// The driver's counters since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Datagrams received on the BFD ports, dropped or not.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Packets the kernel refused to send (buffer full, no route, ...).
    pub send_errors: u64,
    /// Datagrams dropped, by reason.
    pub dropped: BTreeMap<DropReason, u64>,
    /// Sessions configured (not counting removed ones still sending their
    /// last AdminDown packets).
    pub sessions: usize,
    /// The source port of every packet we send.
    pub source_port: u16,
}

impl DriverStats {
    /// The count for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(&reason).copied().unwrap_or(0)
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Packets the session accepted.
    pub packets_in: u64,
    pub packets_out: u64,
    /// Packets addressed to this session that it (or the TTL check)
    /// discarded.
    pub discarded: u64,
    /// Packets we sent with P, and received with F (our Poll Sequences,
    /// RFC 5880 §6.5).
    pub polls_out: u64,
    pub finals_in: u64,
    /// Packets received with P, and sent with F (the peer's).
    pub polls_in: u64,
    pub finals_out: u64,
}

/// A snapshot of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: SessionId,
    pub peer: IpAddr,
    pub local: Option<IpAddr>,
    pub multihop: bool,
    pub interface: Option<String>,
    /// The configured timers.
    pub timers: Timers,
    /// bfd.SessionState.
    pub state: State,
    /// bfd.RemoteSessionState.
    pub remote_state: State,
    /// We were put AdminDown.
    pub admin_down: bool,
    pub local_discriminator: u32,
    /// 0 until the peer is heard (and after a Detection Time of silence).
    pub remote_discriminator: u32,
    /// The negotiated transmit interval, before jitter (RFC 5880 §6.8.7).
    pub tx_interval: Duration,
    /// The negotiated interval we expect the peer's packets at: the
    /// Detection Time divided by the peer's Detect Mult (§6.8.4).
    pub rx_interval: Option<Duration>,
    /// Our Detect Mult, and the peer's.
    pub detect_mult: u8,
    pub remote_detect_mult: Option<u8>,
    /// The Detection Time (§6.8.4); `None` before the peer is heard.
    pub detection_time: Option<Duration>,
    /// bfd.LocalDiag: why our state last changed.
    pub local_diag: Diag,
    /// The diagnostic of the peer's last packet.
    pub remote_diag: Option<Diag>,
    /// A Poll Sequence of ours is waiting for the peer's Final.
    pub poll_in_progress: bool,
    /// How long the session has been Up.
    pub uptime: Option<Duration>,
    /// Times the session left Up.
    pub flaps: u64,
    pub counters: SessionCounters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_have_metric_names() {
        assert_eq!(DropReason::BadTtl.to_string(), "bad_ttl");
        assert_eq!(
            DropReason::Malformed(MalformedKind::LengthExceedsPayload).to_string(),
            "malformed_length_exceeds_payload"
        );
        let mut s = DriverStats::default();
        s.dropped.insert(DropReason::BadTtl, 3);
        s.dropped.insert(DropReason::UnknownDiscriminator, 2);
        assert_eq!(s.dropped(DropReason::BadTtl), 3);
        assert_eq!(s.dropped(DropReason::Authentication), 0);
        assert_eq!(s.dropped_total(), 5);
    }
}
