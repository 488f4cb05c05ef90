//! Tabby's BGP-4 speaker core.
//!
//! Owns: the wire codec ([`codec`]: nom parses, bytes writes), message and
//! attribute types, capabilities, the sans-IO session state machine
//! ([`fsm`]), its tokio driver ([`driver`]), the TCP-MD5 / GTSM socket
//! options ([`sockopt`]) and the fuzz oracle ([`testing`]).
//!
//! Does not own: routing decisions (`tabby-rib`), the kernel (`tabby-fib-sync`)
//! or configuration (`tabby-topology`). Nothing here knows what a RIB is.

pub mod attr;
pub mod capability;
pub mod codec;
pub mod driver;
pub mod error;
pub mod fsm;
pub mod message;
pub mod negotiated;
pub mod notification;
pub mod sockopt;
pub mod testing;
pub mod types;

pub use attr::PathAttributes;
pub use error::DecodeError;
pub use message::Message;
pub use notification::Notification;
pub use types::{Afi, Asn, Family, Nlri, Safi};
