//! NOTIFICATION (RFC 4271 §4.5) and its code/subcode table.

use std::fmt;

/// Error codes (RFC 4271 §4.5, RFC 7313, RFC 9687).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
    pub const SEND_HOLD_TIMER_EXPIRED: u8 = 8;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492, RFC 9234).
pub mod open {
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608 §3).
pub mod fsm {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
    pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538).
pub mod cease {
    pub const MAX_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
pub mod route_refresh {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// A NOTIFICATION message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> Self {
        Notification {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// A Cease with an RFC 9003 shutdown communication (truncated to 255
    /// octets on a UTF-8 boundary).
    pub fn cease_with_reason(subcode: u8, reason: &str) -> Self {
        let mut end = reason.len().min(255);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&reason.as_bytes()[..end]);
        Notification::new(code::CEASE, subcode, data)
    }

    /// The RFC 9003 shutdown communication of an administrative Cease, made
    /// safe for a log line: invalid UTF-8 and control characters replaced, a
    /// length beyond the data clamped.
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                cease::ADMINISTRATIVE_SHUTDOWN | cease::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = &rest[..(len as usize).min(rest.len())];
        Some(
            String::from_utf8_lossy(text)
                .chars()
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect(),
        )
    }

    /// Human-readable name of the code/subcode pair, for logs and the API.
    pub fn describe(&self) -> &'static str {
        match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED) => {
                "message header error: connection not synchronized"
            }
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH) => {
                "message header error: bad message length"
            }
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE) => {
                "message header error: bad message type"
            }
            (code::MESSAGE_HEADER, _) => "message header error",
            (code::OPEN, open::UNSUPPORTED_VERSION) => "OPEN error: unsupported version number",
            (code::OPEN, open::BAD_PEER_AS) => "OPEN error: bad peer AS",
            (code::OPEN, open::BAD_BGP_IDENTIFIER) => "OPEN error: bad BGP identifier",
            (code::OPEN, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
                "OPEN error: unsupported optional parameter"
            }
            (code::OPEN, open::UNACCEPTABLE_HOLD_TIME) => "OPEN error: unacceptable hold time",
            (code::OPEN, open::UNSUPPORTED_CAPABILITY) => "OPEN error: unsupported capability",
            (code::OPEN, open::ROLE_MISMATCH) => "OPEN error: role mismatch",
            (code::OPEN, _) => "OPEN message error",
            (code::UPDATE, update::MALFORMED_ATTRIBUTE_LIST) => {
                "UPDATE error: malformed attribute list"
            }
            (code::UPDATE, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
                "UPDATE error: unrecognized well-known attribute"
            }
            (code::UPDATE, update::MISSING_WELL_KNOWN_ATTRIBUTE) => {
                "UPDATE error: missing well-known attribute"
            }
            (code::UPDATE, update::ATTRIBUTE_FLAGS_ERROR) => "UPDATE error: attribute flags error",
            (code::UPDATE, update::ATTRIBUTE_LENGTH_ERROR) => {
                "UPDATE error: attribute length error"
            }
            (code::UPDATE, update::INVALID_ORIGIN_ATTRIBUTE) => "UPDATE error: invalid ORIGIN",
            (code::UPDATE, update::INVALID_NEXT_HOP_ATTRIBUTE) => "UPDATE error: invalid NEXT_HOP",
            (code::UPDATE, update::OPTIONAL_ATTRIBUTE_ERROR) => {
                "UPDATE error: optional attribute error"
            }
            (code::UPDATE, update::INVALID_NETWORK_FIELD) => "UPDATE error: invalid network field",
            (code::UPDATE, update::MALFORMED_AS_PATH) => "UPDATE error: malformed AS_PATH",
            (code::UPDATE, _) => "UPDATE message error",
            (code::HOLD_TIMER_EXPIRED, _) => "hold timer expired",
            (code::FSM, fsm::UNEXPECTED_IN_OPENSENT) => {
                "finite state machine error: unexpected message in OpenSent"
            }
            (code::FSM, fsm::UNEXPECTED_IN_OPENCONFIRM) => {
                "finite state machine error: unexpected message in OpenConfirm"
            }
            (code::FSM, fsm::UNEXPECTED_IN_ESTABLISHED) => {
                "finite state machine error: unexpected message in Established"
            }
            (code::FSM, _) => "finite state machine error",
            (code::CEASE, cease::MAX_PREFIXES_REACHED) => {
                "cease: maximum number of prefixes reached"
            }
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "cease: administrative shutdown",
            (code::CEASE, cease::PEER_DECONFIGURED) => "cease: peer de-configured",
            (code::CEASE, cease::ADMINISTRATIVE_RESET) => "cease: administrative reset",
            (code::CEASE, cease::CONNECTION_REJECTED) => "cease: connection rejected",
            (code::CEASE, cease::OTHER_CONFIGURATION_CHANGE) => "cease: other configuration change",
            (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION) => {
                "cease: connection collision resolution"
            }
            (code::CEASE, cease::OUT_OF_RESOURCES) => "cease: out of resources",
            (code::CEASE, cease::HARD_RESET) => "cease: hard reset",
            (code::CEASE, cease::BFD_DOWN) => "cease: BFD down",
            (code::CEASE, _) => "cease",
            (code::ROUTE_REFRESH, route_refresh::INVALID_MESSAGE_LENGTH) => {
                "ROUTE-REFRESH error: invalid message length"
            }
            (code::ROUTE_REFRESH, _) => "ROUTE-REFRESH message error",
            (code::SEND_HOLD_TIMER_EXPIRED, _) => "send hold timer expired",
            _ => "unknown error code",
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.code, self.subcode, self.describe())?;
        if let Some(msg) = self.shutdown_message() {
            write!(f, ": \"{msg}\"")?;
        }
        Ok(())
    }
}
