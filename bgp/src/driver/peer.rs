//! The peer task: a thin loop around one [`Session`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;
use tracing::{Instrument, debug, info_span, warn};

use super::conn::{self, ConnIo, NetEvent};
use super::{PeerCommand, PeerConfig, PeerEvent, PeerStatus};
use crate::fsm::{Action, ConnectionId, Event, Session};
use crate::notification::{Notification, cease};
use crate::sockopt;

/// Above this many bulk octets queued for the socket, stop taking commands.
const BULK_HIGH_WATER: usize = 4 << 20;
/// Or above this many buffers: a reflector's many small batches would
/// otherwise queue here by the thousand per peer, and what waits upstream
/// (one shared batch per pump) is far cheaper than what waits here.
const BULK_HIGH_BUFFERS: usize = 512;
/// Events held for a daemon that is not reading; then reads pause. Small:
/// one UPDATE event holds up to 4 KiB of parsed routes, and what waits in
/// the peer's socket costs this process nothing.
const EVENT_BACKLOG: usize = 64;

/// The peer task's control channel (both ends): accepted and connected
/// sockets, closes and write progress. Unbounded; its senders are the
/// listener, connect attempts and writers, never remote input.
pub(super) type Control = (flume::Sender<NetEvent>, flume::Receiver<NetEvent>);

/// Where commands come from: a bounded channel (the per-peer handle) or an
/// unbounded one (tagged peers, whose daemon must never wait on a peer).
pub(super) enum Commands {
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
pub(super) enum Sink<T> {
    Own(mpsc::Sender<PeerEvent>),
    Tagged(T, mpsc::Sender<(T, PeerEvent)>),
}

enum Permit<'a, T> {
    Own(mpsc::Permit<'a, PeerEvent>),
    Tagged(T, mpsc::Permit<'a, (T, PeerEvent)>),
}

impl<T: Copy> Sink<T> {
    /// Waits for room for one event; `None` when nobody listens any more.
    async fn reserve(&self) -> Option<Permit<'_, T>> {
        match self {
            Sink::Own(tx) => tx.reserve().await.ok().map(Permit::Own),
            Sink::Tagged(tag, tx) => tx.reserve().await.ok().map(|p| Permit::Tagged(*tag, p)),
        }
    }
}

impl<T> Permit<'_, T> {
    fn send(self, ev: PeerEvent) {
        match self {
            Permit::Own(p) => p.send(ev),
            Permit::Tagged(tag, p) => p.send((tag, ev)),
        }
    }
}

fn now() -> Instant {
    TokioInstant::now().into_std()
}

struct Peer {
    cfg: PeerConfig,
    /// The peer's address as shared batches name it.
    remote: std::net::IpAddr,
    session: Session,
    conns: HashMap<ConnectionId, ConnIo>,
    connecting: HashMap<ConnectionId, JoinHandle<()>>,
    data_tx: flume::Sender<NetEvent>,
    ctl_tx: flume::Sender<NetEvent>,
    /// Events for the daemon not yet accepted by its channel.
    events: VecDeque<PeerEvent>,
}

pub(super) async fn run<T: Copy + Send + Sync + 'static>(
    cfg: PeerConfig,
    control: Control,
    commands: Commands,
    events: Sink<T>,
    status: Option<tokio::sync::watch::Sender<PeerStatus>>,
) {
    let span = info_span!("peer", remote = %cfg.remote);
    run_inner(cfg, control, commands, events, status)
        .instrument(span)
        .await;
}

async fn run_inner<T: Copy + Send + Sync + 'static>(
    cfg: PeerConfig,
    (ctl_tx, ctl_rx): Control,
    mut commands: Commands,
    events_tx: Sink<T>,
    status: Option<tokio::sync::watch::Sender<PeerStatus>>,
) {
    let (data_tx, data_rx) = flume::bounded(64);
    let mut p = Peer {
        session: Session::new(cfg.session.clone()),
        remote: sockopt::canonical(cfg.remote),
        cfg,
        conns: HashMap::new(),
        connecting: HashMap::new(),
        data_tx,
        ctl_tx,
        events: VecDeque::new(),
    };
    loop {
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
        let take_commands =
            p.bulk_backlog() < BULK_HIGH_WATER && p.bulk_buffers() < BULK_HIGH_BUFFERS;
        let take_data = p.events.len() < EVENT_BACKLOG;
        tokio::select! {
            biased;
            Ok(ev) = ctl_rx.recv_async() => p.on_net(ev),
            _ = sleep_until(deadline) => p.session.handle_event(now(), Event::Timer),
            permit = events_tx.reserve(), if !p.events.is_empty() => match permit {
                Some(permit) => {
                    if let Some(ev) = p.events.pop_front() {
                        permit.send(ev);
                    }
                }
                // Nobody listens any more: treat like a dropped handle.
                None => p.events.clear(),
            },
            Ok(ev) = data_rx.recv_async(), if take_data => p.on_net(ev),
            cmd = commands.recv(), if take_commands => match cmd {
                Some(cmd) => p.on_command(cmd),
                None => {
                    // RFC 4486: Cease / Peer De-configured.
                    let n = Notification::cease_with_reason(
                        cease::PEER_DECONFIGURED,
                        "peer removed from the configuration",
                    );
                    p.session.handle_event(now(), Event::Cease(n));
                    p.session.handle_event(now(), Event::Stop { reason: None });
                    p.carry_out();
                    return;
                }
            },
        }
    }
}

async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Peer {
    fn bulk_backlog(&self) -> usize {
        self.conns
            .values()
            .map(|c| c.backlog.load(Ordering::Relaxed))
            .sum()
    }

    fn bulk_buffers(&self) -> usize {
        self.conns
            .values()
            .map(|c| c.queued.load(Ordering::Relaxed))
            .sum()
    }

    fn on_net(&mut self, ev: NetEvent) {
        let ev = match ev {
            NetEvent::Accepted(stream) => {
                self.on_incoming(stream);
                return;
            }
            NetEvent::Connected(id, stream) => {
                self.connecting.remove(&id);
                if let Err(e) = conn::prepare(&stream, &self.cfg) {
                    warn!(%id, error = %e, "socket options failed");
                }
                self.conns.insert(
                    id,
                    ConnIo::spawn(id, stream, self.data_tx.clone(), self.ctl_tx.clone()),
                );
                Event::Connected(id)
            }
            NetEvent::Received(id, data) => Event::Received(id, data),
            NetEvent::Closed(id) => {
                self.connecting.remove(&id);
                if let Some(c) = self.conns.remove(&id) {
                    c.close();
                }
                Event::Closed(id)
            }
            NetEvent::Progress(id, pending) => Event::SendProgress { conn: id, pending },
        };
        self.session.handle_event(now(), ev);
    }

    fn on_incoming(&mut self, stream: TcpStream) {
        let id = self.session.next_connection_id();
        if let Err(e) = conn::prepare(&stream, &self.cfg) {
            warn!(%id, error = %e, "socket options failed; connection dropped");
            return;
        }
        debug!(%id, from = ?stream.peer_addr().ok(), "accepted");
        self.conns.insert(
            id,
            ConnIo::spawn(id, stream, self.data_tx.clone(), self.ctl_tx.clone()),
        );
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
            PeerCommand::SendUpdates(updates) => updates
                .iter()
                .try_for_each(|u| self.session.send_update(t, u)),
            PeerCommand::SendEncoded(buffers) => buffers
                .into_iter()
                .try_for_each(|b| self.session.send_raw(t, b)),
            // Only now, when this peer takes it, does the batch become its
            // list of buffers.
            PeerCommand::SendShared(batch) => batch
                .for_peer(self.remote)
                .into_iter()
                .try_for_each(|b| self.session.send_raw(t, b)),
            PeerCommand::RouteRefresh(family) => self.session.request_route_refresh(t, family),
        };
        if let Err(e) = result {
            self.events
                .push_back(PeerEvent::CommandFailed(e.to_string()));
        }
    }

    /// Carries out every action the session has queued.
    fn carry_out(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Connect(id) => {
                    let cfg = self.cfg.clone();
                    let ctl = self.ctl_tx.clone();
                    let task = tokio::spawn(async move {
                        match conn::connect(&cfg).await {
                            Ok(s) => {
                                let _ = ctl.send(NetEvent::Connected(id, s));
                            }
                            Err(e) => {
                                debug!(%id, error = %e, "connect failed");
                                let _ = ctl.send(NetEvent::Closed(id));
                            }
                        }
                    });
                    self.connecting.insert(id, task);
                }
                Action::Send { conn, data, urgent } => {
                    if let Some(c) = self.conns.get(&conn) {
                        c.send(data, urgent);
                    }
                }
                Action::Close(id) => {
                    if let Some(t) = self.connecting.remove(&id) {
                        t.abort();
                    }
                    if let Some(c) = self.conns.remove(&id) {
                        c.close();
                    }
                }
                Action::StateChanged { from, to } => {
                    self.events.push_back(PeerEvent::StateChanged { from, to });
                }
                Action::Established(n) => self.events.push_back(PeerEvent::Established(n)),
                Action::Down(d) => self.events.push_back(PeerEvent::Down(d)),
                Action::Update(u) => self.events.push_back(PeerEvent::Update(u)),
                Action::RouteRefresh(r) => self.events.push_back(PeerEvent::RouteRefresh(r)),
                Action::EndOfRib(f) => self.events.push_back(PeerEvent::EndOfRib(f)),
            }
        }
    }
}
