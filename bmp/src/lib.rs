//! Tabby's BMP core: the BGP Monitoring Protocol version 3 (RFC 7854) with
//! the Loc-RIB peer type of RFC 9069, sans-IO like `tabby-bgp`.
//!
//! Owns: the message types ([`message`]), their encoder and a decoder for
//! the same messages ([`codec`]: the common header, the per-peer header,
//! Initiation, Termination, Peer Up, Peer Down, Route Monitoring,
//! Statistics Report; Route Mirroring decodes as opaque TLVs), builders that
//! wrap `tabby-bgp`'s OPEN and UPDATE encoders ([`build`]), and the fuzz
//! oracle ([`testing`]).
//!
//! Does not own: sockets, reconnection, queues or clocks (timestamps are
//! arguments; the station connections are `tabbyd`'s), what to export when
//! (the daemon decides), or the BGP codec itself: embedded BGP PDUs are
//! encoded and parsed by `tabby-bgp`, and kept here as the octets they are.

pub mod build;
pub mod codec;
pub mod message;
pub mod testing;

pub use codec::{DecodeError, decode, frame_len};
pub use message::{
    InfoTlv, Message, PeerDown, PeerDownReason, PeerHeader, PeerType, PeerUp, RouteMonitoring,
    Stat, StatValue, StatsReport, Timestamp,
};
