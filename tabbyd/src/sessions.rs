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

/// UPDATEs encoded once for all members of an update group, in order,
/// packed into a few large chunks. Each member skips the spans that came
/// from itself (split horizon) by taking zero-copy slices around them, so
/// a member's share is a handful of buffers however many source peers the
/// batch holds.
#[derive(Debug, Default)]
pub struct SharedBatch {
    chunks: Vec<bytes::Bytes>,
    open: bytes::BytesMut,
    /// Per member, the spans it must not send: (chunk, start, end), in order.
    skips: HashMap<PeerId, Vec<(usize, usize, usize)>>,
}

impl SharedBatch {
    /// Chunks close near this size; one append never straddles two.
    const CHUNK: usize = 64 * 1024;

    /// Appends whole encoded messages; `except` is the member they came
    /// from, which must not get them back.
    pub fn push(&mut self, except: Option<PeerId>, data: &[u8]) {
        if !self.open.is_empty() && self.open.len() + data.len() > Self::CHUNK {
            self.seal();
        }
        let start = self.open.len();
        self.open.extend_from_slice(data);
        if let Some(p) = except {
            let span = (self.chunks.len(), start, self.open.len());
            self.skips.entry(p).or_default().push(span);
        }
    }

    /// Freezes the chunk being filled (done before the batch is shared).
    pub fn seal(&mut self) {
        if !self.open.is_empty() {
            self.chunks.push(self.open.split().freeze());
        }
    }

    /// What `peer` is to send, in order.
    pub fn for_peer(&self, peer: PeerId) -> Vec<bytes::Bytes> {
        let skips = self.skips.get(&peer).map(Vec::as_slice).unwrap_or_default();
        let mut skips = skips.iter().peekable();
        let mut out = Vec::with_capacity(self.chunks.len() + 1);
        for (i, chunk) in self.chunks.iter().enumerate() {
            let mut pos = 0;
            while let Some(&&(_, start, end)) = skips.peek().filter(|s| s.0 == i) {
                if start > pos {
                    out.push(chunk.slice(pos..start));
                }
                pos = end;
                skips.next();
            }
            if pos == 0 {
                out.push(chunk.clone());
            } else if pos < chunk.len() {
                out.push(chunk.slice(pos..));
            }
        }
        out
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

    fn joined(v: Vec<bytes::Bytes>) -> Vec<u8> {
        v.concat()
    }

    /// Each member gets every span but those naming it, in order.
    #[test]
    fn shared_batches_skip_the_members_own_routes() {
        let mut batch = SharedBatch::default();
        batch.push(None, b"all-");
        batch.push(Some(PeerId(1)), b"from-1-");
        batch.push(Some(PeerId(2)), b"from-2-");
        batch.push(Some(PeerId(1)), b"again-1-");
        batch.push(None, b"tail");
        batch.seal();
        assert_eq!(joined(batch.for_peer(PeerId(1))), b"all-from-2-tail");
        assert_eq!(
            joined(batch.for_peer(PeerId(2))),
            b"all-from-1-again-1-tail"
        );
        assert_eq!(
            joined(batch.for_peer(PeerId(3))),
            b"all-from-1-from-2-again-1-tail"
        );
        // One chunk, shared: a member's share is slices of it, not copies.
        assert_eq!(batch.for_peer(PeerId(3)).len(), 1);
        assert_eq!(batch.for_peer(PeerId(1)).len(), 3);
    }

    /// Spans land in whole chunks: large batches split between appends,
    /// and skipping works across chunk boundaries.
    #[test]
    fn shared_batches_split_into_chunks_between_appends() {
        let mut batch = SharedBatch::default();
        let big = vec![7u8; SharedBatch::CHUNK - 10];
        batch.push(None, &big);
        batch.push(Some(PeerId(1)), b"0123456789abcdef");
        batch.push(None, b"end");
        batch.seal();
        assert_eq!(batch.chunks.len(), 2);
        let mut want = big.clone();
        want.extend_from_slice(b"end");
        assert_eq!(joined(batch.for_peer(PeerId(1))), want);
        let mut all = big;
        all.extend_from_slice(b"0123456789abcdefend");
        assert_eq!(joined(batch.for_peer(PeerId(2))), all);
        // A skip at a chunk's start leaves only its tail of that chunk.
        assert_eq!(batch.for_peer(PeerId(1)).len(), 2);
        // Nothing to send is an empty list (the forwarder then sends nothing).
        let mut only = SharedBatch::default();
        only.push(Some(PeerId(4)), b"x");
        only.seal();
        assert!(only.for_peer(PeerId(4)).is_empty());
    }
}
