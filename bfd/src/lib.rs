//! Tabby's BFD core: Bidirectional Forwarding Detection in Asynchronous mode
//! (RFC 5880), sans-IO like `tabby-bgp`'s session.
//!
//! Owns: the Control packet codec ([`packet`], RFC 5880 §4.1, §4.2 and the
//! packet checks of §6.8.6), Keyed SHA1 and Meticulous Keyed SHA1
//! authentication ([`auth`], §6.7.4), transmit jitter ([`jitter`], §6.8.7)
//! and the session state machine ([`session`]: §6.2 three-way handshake,
//! §6.5 Poll Sequences, §6.8.1–§6.8.4 variables, timer negotiation and
//! detection, §6.8.6 reception, §6.8.7 transmission, §6.8.16 AdminDown, and
//! RFC 5882 §4.1's rule that AdminDown is not a failure for clients).
//!
//! Does not own: sockets, the clock, timers or tasks (the caller passes
//! `now` and arms the timers the session asks for), demultiplexing packets
//! to sessions by discriminator or address, the RFC 5881/5883 transport
//! rules (UDP ports 3784/4784, TTL 255 / GTSM, source ports), choosing
//! unique discriminators, or any BGP: a client reads the
//! [`session::ClientSignal`] of each state change.
//!
//! Not implemented: the Echo function (§6.4; we advertise Required Min Echo
//! RX 0), Demand mode for ourselves (§6.6: we never set D; a peer that sets
//! D gets what §6.8.7 requires: while both ends are Up we stop periodic
//! transmission but for our own Polls, answer its Polls with F, and keep
//! detecting it on the packets it still sends us), Required Min RX 0 for
//! ourselves, the C bit (always 0), Multipoint (M set is discarded), and the
//! Simple Password and Keyed MD5 types: they decode, and a session discards
//! them with [`auth::AuthError::WrongType`] (RFC 5880 §6.7 makes the two
//! SHA1 types the ones an authenticating implementation MUST support).

pub mod auth;
pub mod config;
pub mod jitter;
pub mod packet;
pub mod session;
pub mod testing;

pub use auth::AuthConfig;
pub use config::{ConfigError, SessionConfig, Timers};
pub use packet::{Auth, AuthType, DecodeError, Diag, Packet, State};
pub use session::{Action, ClientSignal, Discard, Session, TimerKind};
