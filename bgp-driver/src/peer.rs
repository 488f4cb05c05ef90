//! The peer task: a thin loop around one [`Session`] and its connections.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;
use tracing::{Instrument, debug, info_span, warn};

use tabby_bgp::fsm::{Action, ConnectionId, Event, Session, SessionConfig};
use tabby_bgp::message::{Open, Update};
use tabby_bgp::notification::Cease;

use crate::conn::{self, COALESCE_BUFFERS, COALESCE_OCTETS, Conn, NetEvent, Read, Transport};
use crate::speaker::{PeerCommand, PeerEvent, PeerStatus};

/// Events held for a daemon that is not reading; then reads pause. Small:
/// one UPDATE event holds up to 4 KiB of parsed routes, and what waits in
/// the peer's socket costs this process nothing.
const EVENT_BACKLOG: usize = 4;

/// The peer task's control channel (both ends): accepted and connected
/// sockets. Unbounded; its senders are the listener and connect attempts,
/// never remote input.
pub(crate) type Control = (flume::Sender<NetEvent>, flume::Receiver<NetEvent>);

/// Where commands come from: a bounded channel (the per-peer handle) or an
/// unbounded one (tagged peers, whose daemon must never wait on a peer).
pub(crate) enum Commands {
    Bounded(mpsc::Receiver<PeerCommand>),
    Unbounded(flume::Receiver<PeerCommand>),
}

impl Commands {
    async fn recv(&mut self) -> Option<PeerCommand> {
        match self {
            Commands::Bounded(rx) => rx.recv().await,
            Commands::Unbounded(rx) => rx.recv_async().await.ok(),
        }
    }
}

/// Where events go: the peer's own channel, or one shared by many peers
/// with each event tagged.
pub(crate) enum Sink<T> {
    Own(mpsc::Sender<PeerEvent>),
    Tagged(T, mpsc::Sender<(T, PeerEvent)>),
}

enum Permit<T> {
    Own(mpsc::OwnedPermit<PeerEvent>),
    Tagged(T, mpsc::OwnedPermit<(T, PeerEvent)>),
}

impl<T: Copy> Sink<T> {
    /// Sends at once if there is room; gives the event back if not.
    fn try_send(&self, ev: PeerEvent) -> Result<(), PeerEvent> {
        use mpsc::error::TrySendError;
        match self {
            Sink::Own(tx) => match tx.try_send(ev) {
                Err(TrySendError::Full(ev)) => Err(ev),
                // Nobody listens any more: as for a dropped handle.
                Ok(()) | Err(TrySendError::Closed(_)) => Ok(()),
            },
            Sink::Tagged(tag, tx) => match tx.try_send((*tag, ev)) {
                Err(TrySendError::Full((_, ev))) => Err(ev),
                Ok(()) | Err(TrySendError::Closed(_)) => Ok(()),
            },
        }
    }

    /// Waits for room for one event; `None` when nobody listens any more.
    /// The wait holds its own sender, not a borrow of the peer.
    fn reserve(&self) -> impl Future<Output = Option<Permit<T>>> + use<T> {
        let sink = match self {
            Sink::Own(tx) => Sink::Own(tx.clone()),
            Sink::Tagged(tag, tx) => Sink::Tagged(*tag, tx.clone()),
        };
        async move {
            match sink {
                Sink::Own(tx) => tx.reserve_owned().await.ok().map(Permit::Own),
                Sink::Tagged(tag, tx) => tx
                    .reserve_owned()
                    .await
                    .ok()
                    .map(|p| Permit::Tagged(tag, p)),
            }
        }
    }
}

impl<T> Permit<T> {
    fn send(self, ev: PeerEvent) {
        match self {
            Permit::Own(p) => {
                p.send(ev);
            }
            Permit::Tagged(tag, p) => {
                p.send((tag, ev));
            }
        }
    }
}

fn now() -> Instant {
    TokioInstant::now().into_std()
}

struct Peer<T> {
    transport: Transport,
    session: Session,
    /// Open connections: usually one, two during a collision.
    conns: Vec<Conn>,
    /// Connect attempts in flight.
    connecting: Vec<(ConnectionId, JoinHandle<()>)>,
    ctl_tx: flume::Sender<NetEvent>,
    sink: Sink<T>,
    /// Events for the daemon not yet accepted by its channel (while it is
    /// full); empty and unallocated otherwise.
    events: VecDeque<PeerEvent>,
    /// UPDATEs still to encode, and where in them: a batch is encoded a
    /// write's worth at a time, so a table dump is never all in memory
    /// encoded at once.
    to_encode: Option<(Arc<[Update]>, usize)>,
}

/// Which connection is ready, and for what.
enum Ready {
    Read(ConnectionId),
    Write(ConnectionId),
}

/// The peer task. Not an `async fn`: the loop below captures the peer's
/// state once, where an `async fn` would also keep its arguments, and a
/// reflector runs thousands of these.
pub(crate) fn run<T: Copy + Send + Sync + 'static>(
    transport: Transport,
    (session, open): (Arc<SessionConfig>, Arc<Open>),
    (ctl_tx, ctl_rx): Control,
    mut commands: Commands,
    events_tx: Sink<T>,
    status: Option<tokio::sync::watch::Sender<PeerStatus>>,
) -> impl Future<Output = ()> + Send + 'static {
    let span = info_span!("peer", remote = %transport.remote);
    let mut p = Peer {
        session: Session::shared(session, open),
        transport,
        conns: Vec::new(),
        connecting: Vec::new(),
        ctl_tx,
        sink: events_tx,
        events: VecDeque::new(),
        to_encode: None,
    };
    async move {
        loop {
            p.encode_some();
            p.carry_out();
            if let Some(status) = &status {
                status.send_if_modified(|s| {
                    let state = Some(p.session.state());
                    let stats = p.session.stats();
                    if s.state == state && s.stats == *stats {
                        return false;
                    }
                    s.state = state;
                    s.stats.clone_from(stats);
                    true
                });
            }
            let deadline = p.session.poll_timeout().map(TokioInstant::from_std);
            // Take commands until a write's worth is queued; then write.
            // Commands that wait meanwhile cost little (a shared batch is
            // one pointer), and buffers queued here are what a peer
            // holding back its reads makes us keep.
            let take_commands = p.to_encode.is_none() && p.has_room();
            let take_data = p.events.len() < EVENT_BACKLOG;
            let conns = &p.conns;
            tokio::select! {
                biased;
                Ok(ev) = ctl_rx.recv_async() => p.on_net(ev),
                _ = sleep_until(deadline) => p.session.handle_event(now(), Event::Timer),
                permit = p.sink.reserve(), if !p.events.is_empty() => {
                    match permit {
                        Some(permit) => {
                            if let Some(ev) = p.events.pop_front() {
                                permit.send(ev);
                            }
                        }
                        // Nobody listens any more: treat like a dropped handle.
                        None => p.events.clear(),
                    }
                    if p.events.is_empty() {
                        p.events = VecDeque::new();
                    }
                },
                ready = readable(conns), if take_data => p.on_ready(ready),
                cmd = commands.recv(), if take_commands => match cmd {
                    Some(cmd) => p.on_command(cmd),
                    None => {
                        // RFC 4486: Cease / Peer De-configured (it carries
                        // no text: RFC 9003 is for subcodes 2 and 4).
                        debug!("peer removed from the configuration");
                        let n = Cease::PeerDeconfigured.into();
                        p.session.handle_event(now(), Event::Cease(n));
                        p.session.handle_event(now(), Event::Stop { reason: None });
                        p.carry_out();
                        return;
                    }
                },
                ready = writable(conns) => p.on_ready(ready),
            }
        }
    }
    .instrument(span)
}

/// Resolves when a connection has something to read (or failed).
fn readable(conns: &[Conn]) -> impl Future<Output = Ready> + '_ {
    poll_fn(move |cx| {
        for c in conns {
            if c.poll_read_ready(cx).is_ready() {
                return Poll::Ready(Ready::Read(c.id));
            }
        }
        Poll::Pending
    })
}

/// Resolves when a connection with queued output can take more.
fn writable(conns: &[Conn]) -> impl Future<Output = Ready> + '_ {
    poll_fn(move |cx| {
        for c in conns.iter().filter(|c| !c.out.is_empty()) {
            if c.poll_write_ready(cx).is_ready() {
                return Poll::Ready(Ready::Write(c.id));
            }
        }
        Poll::Pending
    })
}

async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl<T: Copy> Peer<T> {
    /// Hands an event to the daemon, or queues it while its channel is full.
    fn emit(&mut self, ev: PeerEvent) {
        let ev = if self.events.is_empty() {
            match self.sink.try_send(ev) {
                Ok(()) => return,
                Err(ev) => ev,
            }
        } else {
            ev
        };
        self.events.push_back(ev);
    }

    /// Less than a write's worth is queued.
    fn has_room(&self) -> bool {
        self.bulk_octets() < COALESCE_OCTETS && self.bulk_buffers() < COALESCE_BUFFERS
    }

    /// Encodes queued UPDATEs until a write's worth is queued.
    fn encode_some(&mut self) {
        let Some((updates, mut next)) = self.to_encode.take() else {
            return;
        };
        let t = now();
        while self.has_room() {
            let Some(u) = updates.get(next) else {
                return;
            };
            if let Err(e) = self.session.send_update(t, u) {
                self.emit(PeerEvent::CommandFailed(e.to_string()));
                return;
            }
            // Into the connection's queue now, where `has_room` sees it.
            self.carry_out();
            next += 1;
        }
        if next < updates.len() {
            self.to_encode = Some((updates, next));
        }
    }

    fn bulk_octets(&self) -> usize {
        self.conns.iter().map(|c| c.out.bulk_octets()).sum()
    }

    fn bulk_buffers(&self) -> usize {
        self.conns.iter().map(|c| c.out.bulk_buffers()).sum()
    }

    fn conn_mut(&mut self, id: ConnectionId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn add_conn(&mut self, id: ConnectionId, stream: TcpStream) {
        // Usually the only one: no spare slots.
        self.conns.reserve_exact(1);
        self.conns.push(Conn::new(id, stream));
    }

    /// Closes a connection (flushing a final NOTIFICATION) if it is open.
    fn close_conn(&mut self, id: ConnectionId) {
        if let Some(i) = self.conns.iter().position(|c| c.id == id) {
            self.conns.swap_remove(i).close();
        }
        if self.conns.is_empty() {
            self.conns = Vec::new();
        }
    }

    fn stop_connecting(&mut self, id: ConnectionId) {
        if let Some(i) = self.connecting.iter().position(|(c, _)| *c == id) {
            self.connecting.swap_remove(i).1.abort();
        }
        if self.connecting.is_empty() {
            self.connecting = Vec::new();
        }
    }

    fn on_ready(&mut self, ready: Ready) {
        let (id, result) = match ready {
            Ready::Read(id) => {
                let Some(c) = self.conn_mut(id) else { return };
                match c.read() {
                    Read::Data(data) => {
                        self.session.handle_event(now(), Event::Received(id, data));
                        return;
                    }
                    Read::Again => return,
                    Read::Closed => (id, None),
                }
            }
            Ready::Write(id) => {
                let Some(c) = self.conn_mut(id) else { return };
                match c.write() {
                    Ok(false) => return,
                    Ok(true) => (id, Some(!c.out.is_empty())),
                    Err(e) => {
                        debug!(%id, error = %e, "write failed");
                        (id, None)
                    }
                }
            }
        };
        let ev = match result {
            Some(pending) => Event::SendProgress { conn: id, pending },
            None => {
                self.close_conn(id);
                Event::Closed(id)
            }
        };
        self.session.handle_event(now(), ev);
    }

    fn on_net(&mut self, ev: NetEvent) {
        let ev = match ev {
            NetEvent::Accepted(stream) => {
                self.on_incoming(stream);
                return;
            }
            NetEvent::Connected(id, stream) => {
                self.stop_connecting(id);
                if let Err(e) = conn::prepare(&stream, &self.transport) {
                    warn!(%id, error = %e, "socket options failed");
                }
                self.add_conn(id, stream);
                Event::Connected(id)
            }
            NetEvent::Failed(id) => {
                self.stop_connecting(id);
                Event::Closed(id)
            }
        };
        self.session.handle_event(now(), ev);
    }

    fn on_incoming(&mut self, stream: TcpStream) {
        let id = self.session.next_connection_id();
        if let Err(e) = conn::prepare(&stream, &self.transport) {
            warn!(%id, error = %e, "socket options failed; connection dropped");
            return;
        }
        debug!(%id, from = ?stream.peer_addr().ok(), "accepted");
        self.add_conn(id, stream);
        self.session.handle_event(now(), Event::Accepted(id));
    }

    fn on_command(&mut self, cmd: PeerCommand) {
        let t = now();
        let result = match cmd {
            PeerCommand::Start => {
                self.session.handle_event(t, Event::Start);
                Ok(())
            }
            PeerCommand::Stop(reason) => {
                self.session.handle_event(t, Event::Stop { reason });
                Ok(())
            }
            PeerCommand::Detach => {
                self.session.handle_event(t, Event::Detach);
                Ok(())
            }
            PeerCommand::Cease(n) => {
                self.session.handle_event(t, Event::Cease(n));
                Ok(())
            }
            PeerCommand::Reset { hard } => {
                self.session.handle_event(t, Event::Reset { hard });
                Ok(())
            }
            PeerCommand::SendUpdates(updates) => {
                self.to_encode = Some((updates, 0));
                self.encode_some();
                Ok(())
            }
            PeerCommand::SendEncoded(buffers) => buffers
                .into_iter()
                .try_for_each(|b| self.session.send_raw(t, b)),
            // Only now, when this peer takes it, does the batch become its
            // list of buffers.
            PeerCommand::SendShared { batch, member } => self.session.send_batch(t, &batch, member),
            PeerCommand::RouteRefresh(family) => self.session.request_route_refresh(t, family),
        };
        if let Err(e) = result {
            self.emit(PeerEvent::CommandFailed(e.to_string()));
        }
    }

    /// Carries out every action the session has queued.
    fn carry_out(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Connect(id) => {
                    let cfg = self.transport.clone();
                    let ctl = self.ctl_tx.clone();
                    let task = tokio::spawn(async move {
                        match conn::connect(&cfg).await {
                            Ok(s) => {
                                let _ = ctl.send(NetEvent::Connected(id, s));
                            }
                            Err(e) => {
                                debug!(%id, error = %e, "connect failed");
                                let _ = ctl.send(NetEvent::Failed(id));
                            }
                        }
                    });
                    self.connecting.push((id, task));
                }
                Action::Send { conn, data, urgent } => {
                    if let Some(c) = self.conn_mut(conn) {
                        c.out.push(data, urgent);
                    }
                }
                Action::Close(id) => {
                    self.stop_connecting(id);
                    self.close_conn(id);
                }
                Action::StateChanged { from, to } => {
                    self.emit(PeerEvent::StateChanged { from, to });
                }
                Action::Established(mut n) => {
                    // The session's connection: the only one left once a
                    // collision is resolved (the loser's Close came first).
                    if let Some(c) = self.conns.last() {
                        n.local_addr = c.local_addr();
                        n.remote_addr = c.peer_addr();
                    }
                    self.emit(PeerEvent::Established(n))
                }
                Action::Down(d) => self.emit(PeerEvent::Down(d)),
                Action::Update(u) => self.emit(PeerEvent::Update(u)),
                Action::RouteRefresh(r) => self.emit(PeerEvent::RouteRefresh(r)),
                Action::EndOfRib(f) => self.emit(PeerEvent::EndOfRib(f)),
            }
        }
    }
}
