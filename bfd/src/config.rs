//! What the operator chooses for one BFD session.

use std::time::Duration;

use crate::auth::AuthConfig;

/// The three timer parameters of §6.8.1, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// bfd.DesiredMinTxInterval while Up (raised to 1 s while not Up,
    /// §6.8.3).
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: Duration,
    /// bfd.DetectMult.
    pub detect_mult: u8,
}

impl Default for Timers {
    /// The datacenter defaults: 300 ms × 3, a failure seen in under a second.
    fn default() -> Timers {
        Timers {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
        }
    }
}

impl Timers {
    /// Both intervals are sent in 32-bit microseconds and must be at least
    /// 1 µs: zero Desired Min TX is reserved, and zero Required Min RX would
    /// ask the peer to stop sending, which this crate does not support.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, d) in [
            ("desired min TX", self.desired_min_tx),
            ("required min RX", self.required_min_rx),
        ] {
            let us = d.as_micros();
            if us == 0 || us > u128::from(u32::MAX) {
                return Err(ConfigError::Interval { name, value: d });
            }
        }
        if self.detect_mult == 0 {
            return Err(ConfigError::ZeroDetectMult);
        }
        Ok(())
    }

    pub(crate) fn desired_min_tx_us(&self) -> u32 {
        self.desired_min_tx.as_micros() as u32
    }

    pub(crate) fn required_min_rx_us(&self) -> u32 {
        self.required_min_rx.as_micros() as u32
    }
}

/// One session's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionConfig {
    pub timers: Timers,
    /// Passive role (§6.1): send nothing until the peer has been heard.
    pub passive: bool,
    /// Keyed SHA1 authentication; `None`: no authentication.
    pub auth: Option<AuthConfig>,
}

/// A configuration the session refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} interval {value:?} outside 1 µs to 2^32-1 µs")]
    Interval { name: &'static str, value: Duration },
    #[error("detect multiplier is zero")]
    ZeroDetectMult,
}
