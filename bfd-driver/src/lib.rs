//! Tabby's BFD driver: the sockets, clock and task around the sans-IO
//! sessions of `tabby-bfd`, as quinn is around quinn-proto.
//!
//! Owns: the UDP transport of RFC 5881 (single-hop, port 3784, TTL 255 in
//! and out) and RFC 5883 (multihop, port 4784, a configured minimum TTL) for
//! IPv4 and IPv6 ([`transport`]); demultiplexing received packets to
//! sessions by Your Discriminator, or by addresses and interface for a
//! peer's first packets (RFC 5880 §6.3), with every packet that fits no
//! session dropped and counted by [`DropReason`]; the sessions' timers as
//! one `sleep_until` on the earliest deadline; and the [`BfdHandle`] the
//! daemon adds, removes and reconfigures sessions with, subscribes to
//! [`BfdEvent`]s through and reads [`SessionInfo`] and [`DriverStats`]
//! snapshots from.
//!
//! Does not own: the protocol (the state machine, timer negotiation, Poll
//! Sequences, authentication and the packet codec are `tabby-bfd`'s), what
//! a client does with an event (tearing down BGP is the daemon's), or
//! configuration files.
//!
//! One tokio task owns every socket and session; nothing is shared behind
//! a lock. Sockets are opened by [`BfdDriver::start`], before the task runs,
//! so a driver started inside a network namespace keeps them there.

mod config;
mod driver;
mod handle;
mod stats;
mod table;
pub mod transport;

pub use config::{DEFAULT_MULTIHOP_MIN_TTL, DriverConfig, SessionSpec};
pub use driver::BfdDriver;
pub use handle::{BfdError, BfdEvent, BfdHandle, SessionId};
pub use stats::{DriverStats, DropReason, MalformedKind, SessionCounters, SessionInfo};
pub use transport::HopMode;

pub use tabby_bfd::{AuthConfig, Diag, State, Timers};
