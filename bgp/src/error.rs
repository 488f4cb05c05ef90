//! Decode errors: the NOTIFICATION table plus the RFC 7606 outcome.
//!
//! A [`DecodeError`] is fatal for the session (RFC 7606 "session reset") and
//! converts into the [`Notification`] to send. Outcomes short of a reset are
//! not errors: they are recorded as [`Rfc7606Issue`]s on the decoded
//! [`Update`](crate::message::Update).

use crate::notification::Notification;

/// A decode failure that ends the session: the NOTIFICATION to send and a
/// sentence for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (NOTIFICATION {})", .notification)]
pub struct DecodeError {
    pub notification: Notification,
    pub reason: String,
}

impl DecodeError {
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>, reason: impl Into<String>) -> Self {
        DecodeError {
            notification: Notification::new(code, subcode, data),
            reason: reason.into(),
        }
    }
}

impl From<DecodeError> for Notification {
    fn from(e: DecodeError) -> Notification {
        e.notification
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
