//! The daemon's side of the driver: a cloneable handle that sends commands
//! to the driver task and reads its snapshots, and the events it publishes.

use std::fmt;
use std::net::IpAddr;

use tabby_bfd::{ConfigError, Diag, Timers};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::SessionSpec;
use crate::stats::{DriverStats, SessionInfo};

/// A session of one driver. Never reused while the driver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u64);

impl SessionId {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bfd#{}", self.0)
    }
}

/// What a session's clients are told (RFC 5882 §4.1): only
/// [`BfdEvent::Down`] is a failure of the forwarding path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BfdEvent {
    /// The session reached Up: the path is verified.
    Up,
    /// The session left Up for a failure: `diag` says why (1, Control
    /// Detection Time Expired; 3, Neighbor Signaled Session Down). A client
    /// such as BGP tears down.
    Down { diag: Diag },
    /// The peer went AdminDown while the session was Up: not a failure;
    /// clients keep running on their own timers.
    AdminDown,
    /// We put the session AdminDown while it was Up.
    LocalAdminDown,
}

impl BfdEvent {
    /// Whether a client should treat the event as a path failure.
    pub fn is_failure(self) -> bool {
        matches!(self, BfdEvent::Down { .. })
    }
}

/// What a command can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BfdError {
    #[error("peer and local address are of different families")]
    FamilyMismatch,
    #[error("{0} cannot be a BFD peer")]
    BadPeer(IpAddr),
    #[error("a multihop session needs a local address (RFC 5883 §3)")]
    MultihopNeedsLocal,
    #[error("a multihop session is not bound to an interface")]
    MultihopInterface,
    #[error("an IPv6 link-local peer needs an interface")]
    LinkLocalNeedsInterface,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the driver was started without IPv4 or IPv6, whichever this session needs")]
    FamilyDisabled,
    #[error("no interface {0}")]
    UnknownInterface(String),
    #[error("{0} already runs to the same peer, local address and interface")]
    Duplicate(SessionId),
    #[error("no session {0}")]
    UnknownSession(SessionId),
    #[error("the BFD driver has stopped")]
    DriverStopped,
}

/// What the handle asks of the task.
#[derive(Debug)]
pub(crate) enum Command {
    Add(SessionSpec, oneshot::Sender<Result<SessionId, BfdError>>),
    Remove(SessionId, oneshot::Sender<Result<(), BfdError>>),
    SetAdminDown(SessionId, bool, oneshot::Sender<Result<(), BfdError>>),
    UpdateTimers(SessionId, Timers, oneshot::Sender<Result<(), BfdError>>),
    Session(SessionId, oneshot::Sender<Result<SessionInfo, BfdError>>),
    Sessions(oneshot::Sender<Vec<SessionInfo>>),
    Stats(oneshot::Sender<DriverStats>),
}

/// The daemon's handle on a running driver; cheap to clone. The driver
/// stops when every handle is gone, after telling each peer AdminDown.
#[derive(Debug, Clone)]
pub struct BfdHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<(SessionId, BfdEvent)>,
}

impl BfdHandle {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        events: broadcast::Sender<(SessionId, BfdEvent)>,
    ) -> BfdHandle {
        BfdHandle { commands, events }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, BfdError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| BfdError::DriverStopped)?;
        rx.await.map_err(|_| BfdError::DriverStopped)
    }

    /// Starts a session; it begins in Down and transmits at once (unless
    /// passive). Subscribe first to see its first [`BfdEvent::Up`].
    pub async fn add(&self, spec: SessionSpec) -> Result<SessionId, BfdError> {
        self.ask(|r| Command::Add(spec, r)).await?
    }

    /// Ends a session. The peer is told AdminDown (RFC 5880 §6.8.16) by the
    /// next packets, for up to a few seconds, without further events.
    pub async fn remove(&self, id: SessionId) -> Result<(), BfdError> {
        self.ask(|r| Command::Remove(id, r)).await?
    }

    /// Puts a session AdminDown (`true`) or back to Down to start over.
    pub async fn set_admin_down(&self, id: SessionId, down: bool) -> Result<(), BfdError> {
        self.ask(|r| Command::SetAdminDown(id, down, r)).await?
    }

    /// New timers for a running session: an interval change starts a Poll
    /// Sequence (RFC 5880 §6.8.3) and applies once the peer's Final arrives.
    pub async fn update_timers(&self, id: SessionId, timers: Timers) -> Result<(), BfdError> {
        self.ask(|r| Command::UpdateTimers(id, timers, r)).await?
    }

    /// Every session state change that matters to clients. A receiver that
    /// falls more than the configured capacity behind gets
    /// `RecvError::Lagged` and should re-read [`BfdHandle::sessions`].
    pub fn subscribe(&self) -> broadcast::Receiver<(SessionId, BfdEvent)> {
        self.events.subscribe()
    }

    /// A snapshot of one session.
    pub async fn session(&self, id: SessionId) -> Result<SessionInfo, BfdError> {
        self.ask(|r| Command::Session(id, r)).await?
    }

    /// A snapshot of every session, in id order.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, BfdError> {
        self.ask(Command::Sessions).await
    }

    /// The driver's counters.
    pub async fn stats(&self) -> Result<DriverStats, BfdError> {
        self.ask(Command::Stats).await
    }
}
