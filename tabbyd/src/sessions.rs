//! The daemon's view of one BGP session: a handle to send commands to the
//! session task and the events it reports back, tagged with the peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tabby_bgp::fsm::SessionConfig;
use tabby_bgp_driver as driver;
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

/// A running session.
#[derive(Debug)]
pub struct SessionHandle {
    tx: Tx,
}

#[derive(Debug)]
enum Tx {
    /// Commands as the daemon says them, recorded by tests.
    #[cfg(test)]
    Cmd(mpsc::UnboundedSender<driver::PeerCommand>),
    /// Straight to a driver peer task; the slot is released on drop.
    Peer {
        tx: driver::CommandSender,
        _slot: Slot,
    },
}

impl SessionHandle {
    #[cfg(test)]
    pub fn new(tx: mpsc::UnboundedSender<driver::PeerCommand>) -> Self {
        SessionHandle { tx: Tx::Cmd(tx) }
    }

    pub fn command(&self, cmd: driver::PeerCommand) {
        // The task only ends when the handle is dropped; a send failure
        // means it crashed, which its own log line already reported.
        match &self.tx {
            #[cfg(test)]
            Tx::Cmd(tx) => {
                let _ = tx.send(cmd);
            }
            Tx::Peer { tx, .. } => {
                let _ = tx.send(cmd);
            }
        }
    }
}

/// A driver peer's place in the listener. When its handle is dropped the
/// peer task sees its command channel close and ends the session with
/// Cease; the listener slot is freed now, and a task stuck on a peer that
/// reads nothing is cut off shortly after.
#[derive(Debug)]
struct Slot {
    speaker: Arc<driver::Speaker>,
    owners: Owners,
    remote: IpAddr,
    owner: u64,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut o = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
            if o.get(&self.remote) == Some(&self.owner) {
                o.remove(&self.remote);
                self.speaker.remove_peer(self.remote);
            }
        }
        if let (Some(task), Ok(rt)) = (self.task.take(), tokio::runtime::Handle::try_current()) {
            // Give a final Stop a moment to leave as a NOTIFICATION.
            rt.spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                task.abort();
            });
        }
    }
}

/// Events from every session, tagged with the peer. Bounded and shared by
/// all sessions: while the daemon is behind, sessions stop reading their
/// sockets rather than queue parsed routes.
pub type EventSender = mpsc::Sender<(PeerId, driver::PeerEvent)>;

/// Room for this many events from all sessions together. Short: an
/// UPDATE event holds up to a thousand parsed routes, and a full-table
/// burst would keep the queue full; the core gathers a burst of small
/// events over several rounds before it pumps (see `main.rs`).
pub const EVENT_QUEUE: usize = 256;

/// Runs BGP sessions: the shared listener and one task per peer, from
/// `tabby_bgp_driver`.
pub trait Sessions: Send {
    /// (Re)binds the shared listener.
    fn listen(&mut self, addrs: Vec<SocketAddr>) -> Result<(), String>;
    /// Starts a session task for a peer (not yet connecting: send
    /// [`driver::PeerCommand::Start`]).
    fn spawn(&mut self, id: PeerId, spec: SessionSpec) -> Result<SessionHandle, String>;
}

/// Which spawn owns each peer address's slot in the driver's listener.
type Owners = Arc<Mutex<HashMap<IpAddr, u64>>>;

/// [`Sessions`] on top of the tokio driver.
#[derive(Debug)]
pub struct Speaker {
    events: EventSender,
    driver: Option<Arc<driver::Speaker>>,
    /// The addresses `driver` was bound for.
    listening: Vec<SocketAddr>,
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
            listening: Vec::new(),
            owners: Arc::default(),
            next_owner: 0,
        }
    }
}

impl Sessions for Speaker {
    fn listen(&mut self, addrs: Vec<SocketAddr>) -> Result<(), String> {
        // The same addresses (a new AS or router id): keep the sockets. A
        // closed listening socket is released only when its aborted accept
        // task is dropped, later, so binding the port again now would fail.
        if self.driver.is_some() && self.listening == addrs {
            return Ok(());
        }
        // Drop the old listener first so the port can be bound again.
        self.driver = None;
        self.listening.clear();
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let s = driver::Speaker::bind(&driver::ListenConfig {
            addrs: addrs.clone(),
        })
        .map_err(|e| format!("{e}"))?;
        self.driver = Some(Arc::new(s));
        self.listening = addrs;
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
            let peer = speaker
                .add_peer_tagged(cfg, id, self.events.clone())
                .map_err(|e| format!("{e}"))?;
            o.insert(remote, owner);
            peer
        };
        let slot = Slot {
            speaker,
            owners,
            remote,
            owner,
            task: Some(peer.task),
        };
        Ok(SessionHandle {
            tx: Tx::Peer {
                tx: peer.commands,
                _slot: slot,
            },
        })
    }
}
