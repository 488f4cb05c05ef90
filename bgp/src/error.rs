//! Decode errors: the NOTIFICATION table plus the RFC 7606 outcome.
//!
//! A [`DecodeError`] is fatal for the session (RFC 7606 "session reset") and
//! converts into the [`Notification`] to send. Outcomes short of a reset are
//! not errors: they are recorded as [`Rfc7606Issue`]s on the decoded
//! [`Update`](crate::message::Update).

use std::fmt;

use crate::notification::{Notification, NotificationKind};

/// A decode failure that ends the session: the NOTIFICATION to send, typed,
/// and a sentence for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: NotificationKind,
    pub reason: String,
}

impl DecodeError {
    pub fn new(kind: impl Into<NotificationKind>, reason: impl Into<String>) -> Self {
        DecodeError {
            kind: kind.into(),
            reason: reason.into(),
        }
    }

    /// The NOTIFICATION to send.
    pub fn notification(&self) -> Notification {
        self.kind.clone().into()
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (NOTIFICATION {}/{}: {})",
            self.reason,
            self.kind.code(),
            self.kind.subcode(),
            self.kind
        )
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for Notification {
    fn from(e: DecodeError) -> Notification {
        e.kind.into()
    }
}

/// The RFC 7606 §2 approaches short of a session reset.
///
/// "AFI/SAFI disable" is deliberately absent: where RFC 7606 allows it
/// (§5.3 unparsable MP NLRI, §7.11 inconsistent MP next-hop length) it
/// allows a session reset too, and a reset is what Tabby does. A peer that
/// sends one broken family is broken for all of them more often than not,
/// and a reset is what the operator sees and what graceful restart covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rfc7606Action {
    /// Handle every NLRI of the UPDATE as withdrawn (§2, "treat-as-withdraw").
    TreatAsWithdraw,
    /// Drop the attribute, keep the route (§2, "attribute discard").
    AttributeDiscard,
}

/// One RFC 7606 outcome applied while decoding an UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rfc7606Issue {
    pub action: Rfc7606Action,
    /// The attribute type code concerned (0 when not about one attribute).
    pub attribute: u8,
    /// The NOTIFICATION subcode a reset would have carried (for counters and
    /// the operator's log line).
    pub subcode: u8,
    pub reason: String,
}

impl Rfc7606Issue {
    pub fn is_treat_as_withdraw(&self) -> bool {
        self.action == Rfc7606Action::TreatAsWithdraw
    }
}
