//! Tabby's BGP-4 speaker over TCP: the tokio driver around the sans-IO core
//! in `tabby-bgp` (as quinn is to quinn-proto).
//!
//! Owns: sockets (the listener shared by all peers, connect attempts,
//! non-blocking reads and writes), timers (it reads the clock and sleeps
//! until the session's next deadline), tasks (one per peer) and the channels
//! the daemon talks to peers through, the TCP-MD5 / GTSM socket options
//! ([`sockopt`]) and a tokio-util framing ([`framing`]).
//!
//! Does not own: the protocol. The codec, capabilities and every session
//! rule are `tabby_bgp`'s; a peer task feeds its
//! [`Session`](tabby_bgp::fsm::Session) bytes, timer expiries and commands,
//! with `now`, and carries out the actions it returns. Nor routes or
//! configuration: the daemon (`tabbyd`) owns those.
//!
//! A [`Speaker`] owns the listening sockets (dual-stack by default) and hands
//! each accepted connection to the peer task whose address matches;
//! connections from unknown addresses are closed. Each peer runs in its own
//! task ([`Speaker::add_peer`]). The daemon talks to a peer through a
//! [`PeerHandle`]: [`PeerCommand`]s in, [`PeerEvent`]s out. A daemon with
//! thousands of peers uses [`Speaker::add_peer_tagged`] instead: every
//! peer's events go to one channel, tagged, and commands go straight to the
//! peer task, so a peer costs one task and two channels of its own (commands
//! in, sockets from the listener).
//!
//! The peer task also does its connections' I/O, with non-blocking reads
//! and writes when the sockets are ready: no task or channel per
//! connection. Output has two queues: OPEN, KEEPALIVE and NOTIFICATION on
//! an urgent queue that is always served first, UPDATEs on a bulk queue
//! whose backlog stops the peer taking commands, so keepalives never wait
//! behind a full RIB dump.

mod conn;
pub mod framing;
mod peer;
pub mod sockopt;
mod speaker;

pub use speaker::{
    BGP_PORT, CommandSender, ListenConfig, PeerCommand, PeerConfig, PeerEvent, PeerHandle,
    PeerStatus, Speaker, TaggedPeer,
};
