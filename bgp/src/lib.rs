//! Tabby's BGP-4 speaker core, sans-IO (as quinn-proto is to quinn).
//!
//! Owns: the wire codec ([`codec`]: nom parses, bytes writes), message and
//! attribute types, capabilities, the session state machine ([`fsm`]),
//! which takes bytes, timer expiries and `now` as arguments and returns
//! actions, and the fuzz oracle ([`testing`]).
//!
//! Does not own: sockets, timers, tasks or socket options: the tokio driver
//! that runs sessions over TCP is `tabby-bgp-driver`, and this crate
//! depends on no runtime or socket crate (`tests/sans_io_deps.rs`). Nor
//! routing decisions (`tabby-rib`), the kernel (`tabby-fib-sync`) or
//! configuration (`tabby-topology`). Nothing here knows what a RIB is.

pub mod attr;
pub mod capability;
pub mod codec;
pub mod error;
pub mod fsm;
pub mod message;
pub mod negotiated;
pub mod notification;
pub mod testing;
pub mod types;

pub use attr::PathAttributes;
pub use error::DecodeError;
pub use message::Message;
pub use notification::{Notification, NotificationKind};
pub use types::{Afi, Asn, Family, Nlri, Safi};
