//! The listener shared by all peers, what a peer is configured with, and
//! the commands and events the daemon exchanges with each peer task.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use tabby_bgp::fsm::{Down, SessionConfig, SessionStats, State, local_open};
use tabby_bgp::message::{Open, RouteRefresh, Update};
use tabby_bgp::negotiated::Negotiated;
use tabby_bgp::types::Family;

use crate::{conn, peer, sockopt};

mod listeners;

use listeners::Listener;

/// The well-known BGP port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    /// Addresses to listen on. `[::]:port` is dual-stack (IPv4 peers arrive
    /// v4-mapped). Empty: do not listen (every peer active-only).
    pub addrs: Vec<SocketAddr>,
}

impl ListenConfig {
    /// Dual-stack on every address at `port`.
    pub fn any(port: u16) -> ListenConfig {
        ListenConfig {
            addrs: vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)],
        }
    }
}

/// One peer's transport settings plus its session configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub remote: IpAddr,
    /// The port we connect to (179 unless testing).
    pub remote_port: u16,
    /// Source address of our connections.
    pub local_addr: Option<IpAddr>,
    /// RFC 2385 TCP-MD5 password, on the listening and connecting sockets.
    pub md5_password: Option<String>,
    /// RFC 5082 GTSM: the peer is this many hops away (1 = on-link).
    pub gtsm_hops: Option<u8>,
    /// TTL of our segments for multihop peers without GTSM.
    pub ttl: Option<u8>,
    pub connect_timeout: Duration,
    pub session: SessionConfig,
}

impl PeerConfig {
    pub fn new(remote: IpAddr, session: SessionConfig) -> PeerConfig {
        PeerConfig {
            remote,
            remote_port: BGP_PORT,
            local_addr: None,
            md5_password: None,
            gtsm_hops: None,
            ttl: None,
            connect_timeout: Duration::from_secs(10),
            session,
        }
    }
}

/// What the daemon asks of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCommand {
    Start,
    /// Cease / Administrative Shutdown with an RFC 9003 message.
    Stop(Option<String>),
    /// Close without a NOTIFICATION and stay down, so that peers keep our
    /// routes while this process restarts (RFC 4724). Dropping the handle
    /// instead sends Cease and makes peers flush them.
    Detach,
    /// Cease / Administrative Reset (hard: RFC 8538 Hard Reset).
    Reset {
        hard: bool,
    },
    /// Close with this NOTIFICATION (e.g. Cease/1 for max-prefix) and
    /// start again after the idle hold.
    Cease(tabby_bgp::notification::Notification),
    /// UPDATEs to encode with the session's parameters and send. Shared:
    /// one batch goes to many peers, each encoding it as it takes it.
    SendUpdates(Arc<[Update]>),
    /// Whole UPDATE messages already encoded with
    /// [`Negotiated::codec_ctx`], sent in order. Several buffers travel in
    /// one command (and leave in one vectored write) so a reflector's many
    /// small batches cost one hand-over per peer, not one each.
    SendEncoded(Vec<Bytes>),
    /// An update group's batch, encoded once for every member: this peer
    /// (`member` in the batch) sends all of it but the spans that came from
    /// itself. Refused when the batch's wire format is not this session's.
    SendShared {
        batch: Arc<tabby_bgp::codec::UpdateBatch>,
        member: tabby_bgp::codec::Member,
    },
    /// Ask the peer to resend its routes of a family (RFC 2918).
    RouteRefresh(Family),
}

/// What a peer tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    StateChanged {
        from: State,
        to: State,
    },
    Established(Box<Negotiated>),
    Update(Box<Update>),
    EndOfRib(Family),
    RouteRefresh(RouteRefresh),
    Down(Down),
    /// A command could not be carried out (not established, encode error).
    CommandFailed(String),
}

/// A peer's state and counters, always current (for `show neighbors`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStatus {
    pub state: Option<State>,
    pub stats: SessionStats,
}

/// The daemon's side of one peer task.
#[derive(Debug)]
pub struct PeerHandle {
    pub remote: IpAddr,
    pub status: tokio::sync::watch::Receiver<PeerStatus>,
    /// Bounded: a peer whose socket is backed up stops taking commands.
    pub commands: mpsc::Sender<PeerCommand>,
    pub events: mpsc::Receiver<PeerEvent>,
    pub task: JoinHandle<()>,
}

/// The daemon's side of a peer started with [`Speaker::add_peer_tagged`].
#[derive(Debug)]
pub struct TaggedPeer {
    pub remote: IpAddr,
    /// Unbounded: the daemon never waits on a peer. The peer task stops
    /// taking commands while its socket is backed up, so they wait here.
    pub commands: CommandSender,
    pub task: JoinHandle<()>,
}

/// Commands to a tagged peer; `send` never waits.
pub type CommandSender = flume::Sender<PeerCommand>;

/// One peer task's entry in the listener's table.
#[derive(Debug)]
struct Session {
    /// The peer task's control channel, where accepted connections go.
    incoming: flume::Sender<conn::NetEvent>,
    md5: Option<String>,
}

/// The sessions to one address, by the remote port they connect to.
/// Usually one; a peer that runs several speakers on different ports (two
/// Calico BGPPeers for `198.51.100.1:150` and `198.51.100.1:166`) has more.
/// A vector sorted by port, not a map: a map's first node holds room for
/// eleven, and a reflector has thousands of addresses with one session.
#[derive(Debug, Default)]
struct PeerSlot {
    sessions: Vec<(u16, Session)>,
}

impl PeerSlot {
    /// The TCP-MD5 key the listeners carry for this address: one per
    /// address in the kernel, so the lowest port's that has one.
    fn md5(&self) -> Option<&str> {
        self.sessions.iter().find_map(|(_, s)| s.md5.as_deref())
    }

    fn position(&self, port: u16) -> Result<usize, usize> {
        self.sessions.binary_search_by_key(&port, |(p, _)| *p)
    }

    fn contains(&self, port: u16) -> bool {
        self.position(port).is_ok()
    }

    fn insert(&mut self, port: u16, session: Session) {
        match self.position(port) {
            Ok(i) => self.sessions[i].1 = session,
            Err(i) => {
                // Usually the only one: no spare room.
                self.sessions.reserve_exact(1);
                self.sessions.insert(i, (port, session));
            }
        }
    }

    fn remove(&mut self, port: u16) -> Option<Session> {
        let i = self.position(port).ok()?;
        Some(self.sessions.remove(i).1)
    }

    /// Who takes a connection that arrived on our `local_port`. A TCP
    /// connection from a peer does not say which of its speakers opened it
    /// (its source port is ephemeral). A speaker listening on a port
    /// connects to that same port on its peers (as Calico nodes sharing a
    /// listenPort do), so the session to the peer's port equal to ours
    /// takes it; otherwise the lowest port's, as BIRD gives an incoming
    /// connection to the first protocol with that neighbor address. The
    /// other sessions to the address connect out only.
    fn for_local_port(&self, local_port: u16) -> Option<&Session> {
        let at = self.position(local_port).unwrap_or(0);
        self.sessions.get(at).map(|(_, s)| s)
    }
}

type Peers = Arc<Mutex<HashMap<IpAddr, PeerSlot>>>;

/// A configuration in use and its OPEN, while some peer runs it.
#[derive(Debug)]
struct Shared {
    cfg: Weak<SessionConfig>,
    open: Weak<Open>,
}

/// The listening sockets and the table that routes accepted connections to
/// peers.
///
/// The listening sockets can be replaced while peers run
/// ([`Speaker::listen`]): the peer table stays, so connections for every
/// configured peer are accepted on the new sockets, and established
/// sessions are not touched.
#[derive(Debug)]
pub struct Speaker {
    peers: Peers,
    /// Locked after `peers` where both are.
    listeners: Mutex<Vec<Listener>>,
    /// The session configurations in use and the OPEN each sends, one per
    /// distinct configuration: a reflector's thousands of clients of one
    /// configuration share them.
    configs: Mutex<Vec<Shared>>,
}

impl Speaker {
    /// Binds every listening address. Must run inside a tokio runtime.
    pub fn bind(cfg: &ListenConfig) -> io::Result<Speaker> {
        let s = Speaker {
            peers: Arc::default(),
            listeners: Mutex::new(Vec::new()),
            configs: Mutex::new(Vec::new()),
        };
        s.listen(cfg)?;
        Ok(s)
    }

    /// Listens on `cfg`'s addresses instead of the current ones, with no
    /// moment when a kept address does not listen: sockets on an address
    /// asked for again stay as they are, new ones are bound before the old
    /// ones close unless they overlap (the same port on the same or the
    /// wildcard address), in which case the old socket stops listening at
    /// once, its queued connections handed over, and the new one is bound
    /// straight after. On an error (naming the address and the errno) no
    /// socket changed: the previous ones still listen. Must run inside a
    /// tokio runtime.
    pub fn listen(&self, cfg: &ListenConfig) -> io::Result<()> {
        let table = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ls = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listeners::swap(&mut ls, &cfg.addrs, &table, &self.peers)
    }

    /// Stops listening now: the addresses can be bound again when this
    /// returns. Peers stay (outgoing connections only).
    pub fn close_listeners(&self) {
        let ls = std::mem::take(
            &mut *self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        drop(ls);
    }

    /// The bound addresses (with the real port when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// Starts a peer task. The session stays Idle until
    /// [`PeerCommand::Start`].
    pub fn add_peer(&self, cfg: PeerConfig) -> io::Result<PeerHandle> {
        let (remote, control) = self.register(&cfg)?;
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let (status_tx, status) = tokio::sync::watch::channel(PeerStatus::default());
        let (transport, session) = conn::Transport::split(cfg);
        let task = tokio::spawn(peer::run(
            transport,
            self.shared(session),
            control,
            peer::Commands::Bounded(cmd_rx),
            peer::Sink::<()>::Own(ev_tx),
            Some(status_tx),
        ));
        Ok(PeerHandle {
            remote,
            status,
            commands: cmd_tx,
            events: ev_rx,
            task,
        })
    }

    /// Starts a peer task whose events go to the shared `events` channel,
    /// each with `tag`. Bounded: while the daemon is behind, peers hold a
    /// few events and then stop reading their sockets, so TCP pushes back
    /// on senders instead of parsed routes piling up in memory.
    pub fn add_peer_tagged<T>(
        &self,
        cfg: PeerConfig,
        tag: T,
        events: mpsc::Sender<(T, PeerEvent)>,
    ) -> io::Result<TaggedPeer>
    where
        T: Copy + Send + Sync + 'static,
    {
        let (remote, control) = self.register(&cfg)?;
        let (cmd_tx, cmd_rx) = flume::unbounded();
        let (transport, session) = conn::Transport::split(cfg);
        let task = tokio::spawn(peer::run(
            transport,
            self.shared(session),
            control,
            peer::Commands::Unbounded(cmd_rx),
            peer::Sink::Tagged(tag, events),
            None,
        ));
        Ok(TaggedPeer {
            remote,
            commands: cmd_tx,
            task,
        })
    }

    /// `cfg` and the OPEN it sends, shared with the peers already running
    /// the same configuration.
    fn shared(&self, cfg: SessionConfig) -> (Arc<SessionConfig>, Arc<Open>) {
        let mut configs = self.configs.lock().unwrap_or_else(PoisonError::into_inner);
        configs.retain(|s| s.cfg.strong_count() > 0);
        for s in configs.iter() {
            if let (Some(c), Some(o)) = (s.cfg.upgrade(), s.open.upgrade())
                && *c == cfg
            {
                return (c, o);
            }
        }
        let open = Arc::new(local_open(&cfg));
        let cfg = Arc::new(cfg);
        configs.push(Shared {
            cfg: Arc::downgrade(&cfg),
            open: Arc::downgrade(&open),
        });
        (cfg, open)
    }

    /// Checks the configuration and takes the listener slot for its
    /// address and remote port.
    fn register(&self, cfg: &PeerConfig) -> io::Result<(IpAddr, peer::Control)> {
        let remote = sockopt::canonical(cfg.remote);
        cfg.session.validate().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("peer {remote}: {e}"))
        })?;
        let (in_tx, in_rx) = flume::unbounded();
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = peers.entry(remote).or_default();
        if slot.contains(cfg.remote_port) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "peer {} is already configured",
                    SocketAddr::new(remote, cfg.remote_port)
                ),
            ));
        }
        slot.insert(
            cfg.remote_port,
            Session {
                incoming: in_tx.clone(),
                md5: cfg.md5_password.clone(),
            },
        );
        if let Some(pw) = slot.md5() {
            for l in self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
            {
                if let Err(e) = sockopt::set_tcp_md5(l.socket.as_ref(), remote, Some(pw.as_bytes()))
                {
                    slot.remove(cfg.remote_port);
                    if slot.sessions.is_empty() {
                        peers.remove(&remote);
                    }
                    return Err(e);
                }
            }
        }
        Ok((remote, (in_tx, in_rx)))
    }

    /// Forgets the session to `remote` on `remote_port`: its connections
    /// are no longer accepted, and the address's TCP-MD5 key goes with its
    /// last session (or becomes the remaining sessions' key). Drop its
    /// [`PeerHandle`] to end the task.
    pub fn remove_peer(&self, remote: IpAddr, remote_port: u16) {
        let remote = sockopt::canonical(remote);
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = peers.get_mut(&remote) else {
            return;
        };
        let before = slot.md5().map(str::to_owned);
        if slot.remove(remote_port).is_none() {
            return;
        }
        let after = slot.md5().map(str::to_owned);
        if slot.sessions.is_empty() {
            peers.remove(&remote);
        }
        if before != after {
            for l in self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
            {
                if let Err(e) = sockopt::set_tcp_md5(
                    l.socket.as_ref(),
                    remote,
                    after.as_deref().map(str::as_bytes),
                ) {
                    warn!(peer = %remote, error = %e, "cannot change the TCP-MD5 key");
                }
            }
        }
    }
}

async fn accept_loop(listener: Arc<TcpListener>, peers: Peers) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let table = peers.lock().unwrap_or_else(PoisonError::into_inner);
                hand_over(&table, stream, from);
            }
            // EINVAL: the socket is not listening (stopped for a swap that
            // may still put it back).
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                debug!(error = %e, "accept on a stopped listener");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Gives an accepted connection to the session of its address (see
/// [`PeerSlot::for_local_port`]), or closes it.
fn hand_over(table: &HashMap<IpAddr, PeerSlot>, stream: TcpStream, from: SocketAddr) {
    let ip = sockopt::canonical(from.ip());
    let local_port = stream.local_addr().map_or(BGP_PORT, |a| a.port());
    match table.get(&ip).and_then(|s| s.for_local_port(local_port)) {
        Some(session) => {
            if session
                .incoming
                .send(conn::NetEvent::Accepted(stream))
                .is_err()
            {
                debug!(%from, "peer task gone; connection dropped");
            }
        }
        None => debug!(%from, "connection from an unknown address closed"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tabby_bgp::Asn;
    use tabby_bgp::fsm::PeerAs;

    use super::*;

    fn cfg(hold: u16) -> SessionConfig {
        let mut c = SessionConfig::new(Asn(64512), PeerAs::Internal, Ipv4Addr::new(198, 18, 0, 1));
        c.hold_time = hold;
        c
    }

    #[tokio::test(flavor = "current_thread")]
    async fn peers_of_one_configuration_share_it_and_its_open() {
        let sp = Speaker::bind(&ListenConfig { addrs: vec![] }).expect("speaker");
        let (c1, o1) = sp.shared(cfg(90));
        let (c2, o2) = sp.shared(cfg(90));
        assert!(Arc::ptr_eq(&c1, &c2) && Arc::ptr_eq(&o1, &o2));
        assert_eq!(*o1, local_open(&cfg(90)));
        let (c3, o3) = sp.shared(cfg(30));
        assert!(!Arc::ptr_eq(&c1, &c3) && !Arc::ptr_eq(&o1, &o3));
        assert_eq!(o3.hold_time, 30);
        // Once no peer runs a configuration, it is forgotten.
        drop((c3, o3));
        let _ = sp.shared(cfg(90));
        assert_eq!(sp.configs.lock().unwrap().len(), 1);
    }

    #[test]
    fn an_address_keeps_its_sessions_sorted_by_port() {
        let (tx, _rx) = flume::unbounded();
        let s = |md5: Option<&str>| Session {
            incoming: tx.clone(),
            md5: md5.map(str::to_owned),
        };
        let mut slot = PeerSlot::default();
        slot.insert(179, s(None));
        slot.insert(150, s(Some("k")));
        slot.insert(166, s(None));
        let ports: Vec<u16> = slot.sessions.iter().map(|(p, _)| *p).collect();
        assert_eq!(ports, [150, 166, 179]);
        assert!(slot.contains(166) && !slot.contains(200));
        assert_eq!(slot.md5(), Some("k"));
        // Our port's session takes the connection, else the lowest port's.
        assert!(std::ptr::eq(
            slot.for_local_port(179).unwrap(),
            &slot.sessions[2].1
        ));
        assert!(std::ptr::eq(
            slot.for_local_port(200).unwrap(),
            &slot.sessions[0].1
        ));
        assert!(slot.remove(150).is_some() && slot.remove(150).is_none());
        assert_eq!(slot.md5(), None);
    }
}
