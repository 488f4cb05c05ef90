//! The sans-IO BGP session state machine (RFC 4271 §8).
//!
//! A [`Session`] owns one peer's protocol state and nothing else: no socket,
//! no clock, no task. The caller feeds it [`Event`]s with the current time
//! through [`Session::handle_event`], sleeps until [`Session::poll_timeout`],
//! and carries out every [`Action`] that [`Session::poll_action`] returns
//! (connect, send bytes, close, deliver routes). The tokio driver in the
//! `tabby-bgp-driver` crate is one such caller; the tests in `tests/fsm_*.rs` are
//! another, with a virtual clock.
//!
//! Up to three TCP connections may exist at once for one peer (ours, the
//! peer's, and a replacement while Established) so that connection collisions
//! (RFC 4271 §6.8) and a restarting peer (RFC 4724 §4.2) are handled; each
//! is named by a [`ConnectionId`] the session hands out.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use std::time::Instant;
//! use tabby_bgp::fsm::{Action, Event, PeerAs, Session, SessionConfig, State};
//! use tabby_bgp::types::Asn;
//!
//! let cfg = SessionConfig::new(Asn(65001), PeerAs::Exact(Asn(65002)), Ipv4Addr::new(192, 0, 2, 1));
//! let mut session = Session::new(cfg);
//! let now = Instant::now();
//! session.handle_event(now, Event::Start);
//! // The caller opens the TCP connection it is asked for...
//! let conn = std::iter::from_fn(|| session.poll_action())
//!     .find_map(|a| match a {
//!         Action::Connect(c) => Some(c),
//!         _ => None,
//!     })
//!     .expect("a connection attempt");
//! session.handle_event(now, Event::Connected(conn));
//! // ...and writes the OPEN the session produced.
//! assert!(std::iter::from_fn(|| session.poll_action())
//!     .any(|a| matches!(a, Action::Send { conn: c, urgent: true, .. } if c == conn)));
//! assert_eq!(session.state(), State::OpenSent);
//! // Next wake-up: the hold timer of OpenSent.
//! assert!(session.poll_timeout().is_some());
//! ```

mod config;
mod open;
mod restart;
mod session;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::capability::LlgrFamily;
use crate::message::{RouteRefresh, Update};
use crate::negotiated::Negotiated;
use crate::notification::Notification;
use crate::types::Family;

pub use config::{GrConfig, PeerAs, SessionConfig};
pub use open::local_open;
pub use session::{MessageCounts, SendError, Session, SessionStats};

/// One TCP connection of a session, named by the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// The six states of RFC 4271 §8.2.2, for the session as a whole: the most
/// advanced of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// Inputs to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// ManualStart (RFC 4271 §8.1.2): connect (or wait, when passive).
    Start,
    /// ManualStop: Cease / Administrative Shutdown with an optional RFC 9003
    /// shutdown communication.
    Stop { reason: Option<String> },
    /// Close every connection without a NOTIFICATION and stay down: a
    /// planned restart under graceful restart, where the peer must see a
    /// plain TCP close to keep our routes (RFC 4724 §4).
    Detach,
    /// Cease / Administrative Reset, then start again. `hard` sends an RFC
    /// 8538 Hard Reset so that the peer flushes our routes at once; a soft
    /// reset lets a peer that negotiated the N bit keep them as stale.
    Reset { hard: bool },
    /// Tear the session down with this NOTIFICATION, as for an error we
    /// found (e.g. Cease / Maximum Number of Prefixes Reached, RFC 4486,
    /// from the RIB); it starts again after the idle hold.
    Cease(Notification),
    /// Our connection attempt announced by [`Action::Connect`] succeeded.
    Connected(ConnectionId),
    /// The peer connected to us; the id comes from
    /// [`Session::next_connection_id`].
    Accepted(ConnectionId),
    /// A connection attempt failed, or an open connection was closed or
    /// reset by the other end.
    Closed(ConnectionId),
    /// Bytes arrived on a connection.
    Received(ConnectionId, Bytes),
    /// The transport wrote some of what we asked it to send; `pending` says
    /// whether bytes are still waiting. Drives the RFC 9687 send hold timer.
    SendProgress { conn: ConnectionId, pending: bool },
    /// The time returned by [`Session::poll_timeout`] was reached.
    Timer,
}

/// Outputs of the session, in the order they must be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer and report it as
    /// [`Event::Connected`] or [`Event::Closed`].
    Connect(ConnectionId),
    /// Write these bytes (whole messages) on the connection. `urgent` ones
    /// (OPEN, KEEPALIVE, NOTIFICATION) must not wait behind bulk UPDATEs.
    Send {
        conn: ConnectionId,
        data: Bytes,
        urgent: bool,
    },
    /// Flush what is already queued as urgent, then close the connection
    /// (or abandon the attempt).
    Close(ConnectionId),
    StateChanged {
        from: State,
        to: State,
    },
    /// The session reached Established with these parameters.
    Established(Box<Negotiated>),
    /// The session went down (or an attempt to bring it up failed).
    Down(Down),
    /// An UPDATE from the peer (never an End-of-RIB marker).
    Update(Box<Update>),
    /// The peer asked for a route refresh, or marks the beginning or end of
    /// one (RFC 7313).
    RouteRefresh(RouteRefresh),
    /// The peer's End-of-RIB marker (RFC 4724 §2).
    EndOfRib(Family),
}

/// Why a session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We were told to stop ([`Event::Stop`]).
    AdminStop(Option<String>),
    /// We closed without a NOTIFICATION ([`Event::Detach`]).
    Detached,
    /// We were told to reset ([`Event::Reset`]).
    AdminReset { hard: bool },
    /// We found an error and sent this NOTIFICATION (hold timer, bad OPEN,
    /// malformed UPDATE, unexpected message, ...).
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The TCP connection closed or failed without a NOTIFICATION.
    ConnectionLost,
    /// The peer opened a new session while the old one was up (RFC 4724
    /// §4.2, or a collision resolved against the established connection).
    PeerReconnected,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::AdminStop(Some(r)) => write!(f, "administrative stop: \"{r}\""),
            DownReason::AdminStop(None) => f.write_str("administrative stop"),
            DownReason::Detached => f.write_str("closed for a graceful restart"),
            DownReason::AdminReset { hard: true } => f.write_str("administrative hard reset"),
            DownReason::AdminReset { hard: false } => f.write_str("administrative reset"),
            DownReason::NotificationSent(n) => write!(f, "sent NOTIFICATION {n}"),
            DownReason::NotificationReceived(n) => write!(f, "received NOTIFICATION {n}"),
            DownReason::ConnectionLost => f.write_str("TCP connection lost"),
            DownReason::PeerReconnected => f.write_str("peer opened a new session"),
        }
    }
}

/// What the RIB should do with the routes learned from the peer when the
/// session goes down under graceful restart (RFC 4724 §4.2, RFC 8538,
/// RFC 9494).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRoutes {
    /// Keep the routes of `families` as stale this long, waiting for the
    /// session to come back (the peer's Restart Time).
    pub restart_time: Duration,
    pub families: Vec<Family>,
    /// Then keep these families longer at lowest preference (RFC 9494).
    pub llgr: Vec<LlgrFamily>,
}

/// A session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub reason: DownReason,
    /// False when the session never reached Established (a failed attempt).
    pub was_established: bool,
    /// `Some` when graceful restart applies: keep the peer's routes as stale
    /// instead of withdrawing them. `None`: withdraw them now.
    pub stale: Option<StaleRoutes>,
}
