//! The daemon's view of one BGP session: a handle to send commands to the
//! session task and the events it reports back, tagged with the peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tabby_bgp::Family;
use tabby_bgp::driver;
use tabby_bgp::fsm::{Down, SessionConfig, State};
use tabby_bgp::message::{RouteRefresh, Update};
use tabby_bgp::negotiated::Negotiated;
use tabby_rib::PeerId;
use tokio::sync::mpsc;

/// Everything needed to run one session.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub config: SessionConfig,
    pub remote: SocketAddr,
    pub local_address: Option<IpAddr>,
    pub md5_password: Option<String>,
    /// GTSM (RFC 5082): the peer may be at most this many hops away.
    pub ttl_security: Option<u8>,
}

/// What a session reports to the daemon core.
#[derive(Debug)]
pub enum SessionEvent {
    State { from: State, to: State },
    Established(Box<Negotiated>),
    Update(Box<Update>),
    EndOfRib(Family),
    RouteRefresh(RouteRefresh),
    Down(Down),
}

/// Commands to a running session.
#[derive(Debug)]
pub enum SessionCmd {
    Start,
    Stop(Option<String>),
    Reset {
        hard: bool,
    },
    /// Close without a NOTIFICATION so the peer keeps our routes as stale
    /// (RFC 4724): a planned restart.
    Detach,
    Send(Arc<[Update]>),
    /// Close with this NOTIFICATION (e.g. Cease/1 for max-prefix).
    Cease(tabby_bgp::Notification),
    /// UPDATEs already encoded for this session's negotiated parameters,
    /// in order.
    SendEncoded(Vec<bytes::Bytes>),
    /// An update group's batch, shared by every member.
    SendShared(Arc<SharedBatch>),
    RequestRefresh(Family),
}

/// UPDATEs encoded once for all members of an update group, in order.
/// Each buffer names the member it must skip (split horizon: the routes
/// came from it).
#[derive(Debug, Default)]
pub struct SharedBatch {
    pub buffers: Vec<(Option<PeerId>, bytes::Bytes)>,
}

impl SharedBatch {
    /// What `peer` is to send, in order.
    pub fn for_peer(&self, peer: PeerId) -> Vec<bytes::Bytes> {
        self.buffers
            .iter()
            .filter(|(except, _)| *except != Some(peer))
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// A running session.
#[derive(Debug)]
pub struct SessionHandle {
    tx: mpsc::UnboundedSender<SessionCmd>,
}

impl SessionHandle {
    pub fn new(tx: mpsc::UnboundedSender<SessionCmd>) -> Self {
        SessionHandle { tx }
    }

    pub fn command(&self, cmd: SessionCmd) {
        // The task only ends when the handle is dropped; a send failure
        // means it crashed, which its own log line already reported.
        let _ = self.tx.send(cmd);
    }
}

/// Events from every session, tagged with the peer.
pub type EventSender = mpsc::UnboundedSender<(PeerId, SessionEvent)>;

/// Runs BGP sessions: the shared listener and one task per peer, from
/// `tabby_bgp::driver`.
pub trait Sessions: Send {
    /// (Re)binds the shared listener.
    fn listen(&mut self, addrs: Vec<SocketAddr>) -> Result<(), String>;
    /// Starts a session task for a peer (not yet connecting: send
    /// [`SessionCmd::Start`]).
    fn spawn(&mut self, id: PeerId, spec: SessionSpec) -> Result<SessionHandle, String>;
}

/// Which spawn owns each peer address's slot in the driver's listener.
type Owners = Arc<Mutex<HashMap<IpAddr, u64>>>;

/// [`Sessions`] on top of the tokio driver.
#[derive(Debug)]
pub struct Speaker {
    events: EventSender,
    driver: Option<Arc<driver::Speaker>>,
    /// A session replaced by a new one for the same address (a reset after
    /// a configuration change) leaves the listener asynchronously; this
    /// keeps it from removing its successor's slot.
    owners: Owners,
    next_owner: u64,
}

impl Speaker {
    pub fn new(events: EventSender) -> Self {
        Speaker {
            events,
            driver: None,
            owners: Arc::default(),
            next_owner: 0,
        }
    }
}

impl Sessions for Speaker {
    fn listen(&mut self, addrs: Vec<SocketAddr>) -> Result<(), String> {
        // Drop the old listener first so the port can be bound again.
        self.driver = None;
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let s =
            driver::Speaker::bind(&driver::ListenConfig { addrs }).map_err(|e| format!("{e}"))?;
        self.driver = Some(Arc::new(s));
        Ok(())
    }

    fn spawn(&mut self, id: PeerId, spec: SessionSpec) -> Result<SessionHandle, String> {
        let Some(speaker) = self.driver.clone() else {
            return Err("the BGP listener is not bound".into());
        };
        let mut cfg = driver::PeerConfig::new(spec.remote.ip(), spec.config);
        cfg.remote_port = spec.remote.port();
        cfg.local_addr = spec.local_address;
        cfg.md5_password = spec.md5_password;
        cfg.gtsm_hops = spec.ttl_security;
        let remote = cfg.remote;
        let owner = self.next_owner;
        self.next_owner += 1;
        let owners = self.owners.clone();
        let peer = {
            let mut o = owners.lock().unwrap_or_else(PoisonError::into_inner);
            if o.remove(&remote).is_some() {
                // The previous session for this address is still winding
                // down: take its listener slot over now.
                speaker.remove_peer(remote);
            }
            let peer = speaker.add_peer(cfg).map_err(|e| format!("{e}"))?;
            o.insert(remote, owner);
            peer
        };
        let task = peer.task;
        let mut peer_events = peer.events;
        let (tx, mut rx) = mpsc::unbounded_channel::<SessionCmd>();
        let commands = peer.commands.clone();
        // Commands: from the daemon's unbounded queue into the peer task's
        // bounded one, so the core never waits on a slow peer. When the
        // handle is dropped the peer is removed from the listener.
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                let cmd = match cmd {
                    SessionCmd::Start => driver::PeerCommand::Start,
                    SessionCmd::Stop(r) => driver::PeerCommand::Stop(r),
                    SessionCmd::Reset { hard } => driver::PeerCommand::Reset { hard },
                    SessionCmd::Detach => driver::PeerCommand::Detach,
                    SessionCmd::Cease(n) => driver::PeerCommand::Cease(n),
                    SessionCmd::Send(u) => driver::PeerCommand::SendUpdates(u.to_vec()),
                    SessionCmd::SendEncoded(b) => driver::PeerCommand::SendEncoded(b),
                    // Only now, when the session task takes it, does the
                    // shared batch become this peer's list.
                    SessionCmd::SendShared(b) => {
                        let mine = b.for_peer(id);
                        if mine.is_empty() {
                            continue;
                        }
                        driver::PeerCommand::SendEncoded(mine)
                    }
                    SessionCmd::RequestRefresh(f) => driver::PeerCommand::RouteRefresh(f),
                };
                if commands.send(cmd).await.is_err() {
                    break;
                }
            }
            {
                let mut o = owners.lock().unwrap_or_else(PoisonError::into_inner);
                if o.get(&remote) == Some(&owner) {
                    o.remove(&remote);
                    speaker.remove_peer(remote);
                }
            }
            // Give a final Stop a moment to leave as a NOTIFICATION.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            task.abort();
        });
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(ev) = peer_events.recv().await {
                let ev = match ev {
                    driver::PeerEvent::StateChanged { from, to } => {
                        SessionEvent::State { from, to }
                    }
                    driver::PeerEvent::Established(n) => SessionEvent::Established(n),
                    driver::PeerEvent::Update(u) => SessionEvent::Update(u),
                    driver::PeerEvent::EndOfRib(f) => SessionEvent::EndOfRib(f),
                    driver::PeerEvent::RouteRefresh(r) => SessionEvent::RouteRefresh(r),
                    driver::PeerEvent::Down(d) => SessionEvent::Down(d),
                    driver::PeerEvent::CommandFailed(why) => {
                        tracing::debug!(peer = %remote, %why, "session command not carried out");
                        continue;
                    }
                };
                if events.send((id, ev)).is_err() {
                    break;
                }
            }
        });
        Ok(SessionHandle::new(tx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each member gets every buffer but those naming it, in order.
    #[test]
    fn shared_batches_skip_the_members_own_routes() {
        let b = |s: &'static [u8]| bytes::Bytes::from_static(s);
        let batch = SharedBatch {
            buffers: vec![
                (None, b(b"all")),
                (Some(PeerId(1)), b(b"from-1")),
                (Some(PeerId(2)), b(b"from-2")),
                (None, b(b"tail")),
            ],
        };
        assert_eq!(
            batch.for_peer(PeerId(1)),
            vec![b(b"all"), b(b"from-2"), b(b"tail")]
        );
        assert_eq!(
            batch.for_peer(PeerId(3)),
            vec![b(b"all"), b(b"from-1"), b(b"from-2"), b(b"tail")]
        );
    }
}
