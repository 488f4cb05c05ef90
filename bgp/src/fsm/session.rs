//! [`Session`]: one peer's state machine.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tracing::{debug, info, warn};

use crate::codec::{self, CodecCtx, EncodeError};
use crate::message::{Message, Open, RefreshSubtype, RouteRefresh, Update};
use crate::negotiated::Negotiated;
use crate::notification::{Cease, FsmError, Notification, NotificationKind};
use crate::types::Family;

use super::config::SessionConfig;
use super::open::{check_open, local_open};
use super::restart::{must_hard_reset, stale_routes};
use super::{Action, ConnectionId, Down, DownReason, Event, State};

/// At most this many connections per peer: ours, the peer's, and a
/// replacement while Established (RFC 4271 §6.8, RFC 4724 §4.2).
const MAX_CONNECTIONS: usize = 3;

/// Why [`Session::send_update`] and friends refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the session is not established")]
    NotEstablished,
    #[error("family {0} was not negotiated with the peer")]
    FamilyNotNegotiated(Family),
    #[error("the peer did not announce the route refresh capability")]
    RouteRefreshNotNegotiated,
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A shared batch encoded for other session parameters (the session
    /// came back with different capabilities before its group changed).
    #[error("the UPDATE batch was encoded for another wire format than this session's")]
    WireFormat,
}

/// Messages of each type, counted for operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub open: u64,
    pub update: u64,
    pub notification: u64,
    pub keepalive: u64,
    pub route_refresh: u64,
}

impl MessageCounts {
    fn count(&mut self, kind: u8) {
        use crate::message::kind as k;
        match kind {
            k::OPEN => self.open += 1,
            k::UPDATE => self.update += 1,
            k::NOTIFICATION => self.notification += 1,
            k::KEEPALIVE => self.keepalive += 1,
            k::ROUTE_REFRESH => self.route_refresh += 1,
            _ => {}
        }
    }
}

/// What `show neighbor` prints: counters since the session was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub received: MessageCounts,
    pub sent: MessageCounts,
    pub octets_received: u64,
    pub octets_sent: u64,
    /// Times the session reached Established.
    pub established: u64,
    /// When the current Established session began.
    pub established_since: Option<Instant>,
    /// Why the session last went down.
    pub last_down: Option<DownReason>,
}

/// Where one connection is in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Connected, waiting DelayOpen before sending our OPEN.
    DelayOpen,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Conn {
    id: ConnectionId,
    /// We initiated it (matters for collision resolution, RFC 4271 §6.8).
    outbound: bool,
    phase: Phase,
    /// Bytes received and not yet framed into a whole message.
    buf: BytesMut,
    ctx: CodecCtx,
    negotiated: Option<Negotiated>,
    /// The peer's OPEN had the RFC 4724 R bit set.
    peer_restarted: bool,
    hold: Duration,
    keepalive: Duration,
    send_hold: Duration,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    delay_open_at: Option<Instant>,
    send_hold_at: Option<Instant>,
    established_at: Option<Instant>,
}

impl Conn {
    fn deadlines(&self) -> impl Iterator<Item = Instant> + '_ {
        [
            self.hold_at,
            self.keepalive_at,
            self.delay_open_at,
            self.send_hold_at,
        ]
        .into_iter()
        .flatten()
    }
}

/// One peer's BGP session, sans IO. See the [module docs](super).
#[derive(Debug)]
pub struct Session {
    /// Both shared with every session of the same configuration
    /// ([`Session::shared`]).
    cfg: Arc<SessionConfig>,
    local_open: Arc<Open>,
    admin_up: bool,
    conns: Vec<Conn>,
    /// Our outbound attempt not yet connected.
    connecting: Option<ConnectionId>,
    connect_retry_at: Option<Instant>,
    idle_hold_at: Option<Instant>,
    /// The idle hold to apply after the next failure (doubles per failure).
    idle_hold_next: std::time::Duration,
    next_id: u64,
    state: State,
    actions: VecDeque<Action>,
    stats: SessionStats,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Session {
        let open = Arc::new(local_open(&cfg));
        Session::shared(Arc::new(cfg), open)
    }

    /// A session of a shared configuration sending `open`, which must be
    /// [`local_open`]`(&cfg)`: a driver with thousands of peers of one
    /// configuration keeps one of each.
    pub fn shared(cfg: Arc<SessionConfig>, open: Arc<Open>) -> Session {
        debug_assert_eq!(*open, local_open(&cfg), "the OPEN of another configuration");
        Session {
            local_open: open,
            idle_hold_next: cfg.idle_hold,
            cfg,
            admin_up: false,
            conns: Vec::new(),
            connecting: None,
            connect_retry_at: None,
            idle_hold_at: None,
            next_id: 1,
            state: State::Idle,
            actions: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// Message counters and the last reason the session went down.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The parameters of the Established connection, if any.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.established().and_then(|c| c.negotiated.as_ref())
    }

    /// The OPEN this session sends.
    pub fn local_open(&self) -> &Open {
        &self.local_open
    }

    /// Names an incoming connection before it is reported as
    /// [`Event::Accepted`].
    pub fn next_connection_id(&mut self) -> ConnectionId {
        let id = ConnectionId(self.next_id);
        self.next_id += 1;
        id
    }

    /// The next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        let a = self.actions.pop_front();
        if a.is_none() && self.actions.capacity() > 0 {
            // Drained: an idle session keeps no queue (a reflector has
            // thousands idle between keepalives).
            self.actions = VecDeque::new();
        }
        a
    }

    /// When to deliver the next [`Event::Timer`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .iter()
            .flat_map(Conn::deadlines)
            .chain(self.connect_retry_at)
            .chain(self.idle_hold_at)
            .min()
    }

    pub fn handle_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Start => self.start(now),
            Event::Stop { reason } => self.stop(reason),
            Event::Reset { hard } => self.reset(now, hard),
            Event::Detach => self.detach(),
            Event::Cease(n) => {
                warn!(notification = %n, "closing the session on request");
                let ids: Vec<ConnectionId> = self.conns.iter().map(|c| c.id).collect();
                for id in ids {
                    self.drop_conn(
                        now,
                        id,
                        DownReason::NotificationSent(n.clone()),
                        Some(n.clone()),
                    );
                }
            }
            Event::Connected(id) => self.on_connected(now, id),
            Event::Accepted(id) => self.on_accepted(now, id),
            Event::Closed(id) => self.on_closed(now, id),
            Event::Received(id, data) => self.on_received(now, id, &data),
            Event::SendProgress { conn, pending } => {
                if let Some(c) = self.conn_mut(conn) {
                    c.send_hold_at = pending.then(|| now + c.send_hold);
                }
            }
            Event::Timer => self.on_timer(now),
        }
        self.sync_state();
    }

    /// Sends an UPDATE on the Established connection.
    pub fn send_update(&mut self, now: Instant, update: &Update) -> Result<(), SendError> {
        let c = self.established().ok_or(SendError::NotEstablished)?;
        // RFC 4760 §7: only families the peer agreed to.
        if let Some(neg) = &c.negotiated {
            let classic = (!update.nlri.is_empty()
                || !update.withdrawn.is_empty()
                || update.as_end_of_rib() == Some(Family::IPV4_UNICAST))
            .then_some(Family::IPV4_UNICAST);
            let families = [
                classic,
                update.mp_reach.as_ref().map(|m| m.family),
                update.mp_unreach.as_ref().map(|m| m.family),
            ];
            if let Some(f) = families
                .into_iter()
                .flatten()
                .find(|f| !neg.families.contains(f))
            {
                return Err(SendError::FamilyNotNegotiated(f));
            }
        }
        let mut out = BytesMut::new();
        codec::encode_message(&Message::Update(update.clone()), &c.ctx, &mut out)?;
        self.send_raw(now, out.freeze())
    }

    /// Sends bytes that already hold whole UPDATE messages encoded with
    /// [`Negotiated::codec_ctx`] (an update group encodes once for many
    /// peers).
    pub fn send_raw(&mut self, now: Instant, bytes: Bytes) -> Result<(), SendError> {
        let id = self.established().ok_or(SendError::NotEstablished)?.id;
        self.push_send(now, id, bytes, false);
        // RFC 4271 §10: an UPDATE restarts the KeepaliveTimer.
        if let Some(c) = self.conn_mut(id)
            && !c.keepalive.is_zero()
        {
            c.keepalive_at = Some(now + c.keepalive);
        }
        Ok(())
    }

    /// Sends `member`'s share of an update group's batch, if the batch was
    /// encoded the way this session encodes.
    pub fn send_batch(
        &mut self,
        now: Instant,
        batch: &codec::UpdateBatch,
        member: codec::Member,
    ) -> Result<(), SendError> {
        let c = self.established().ok_or(SendError::NotEstablished)?;
        if !c.ctx.encodes_like(batch.ctx()) {
            return Err(SendError::WireFormat);
        }
        batch
            .for_member(member)
            .into_iter()
            .try_for_each(|b| self.send_raw(now, b))
    }

    /// Asks the peer to send its routes of `family` again (RFC 2918).
    pub fn request_route_refresh(&mut self, now: Instant, family: Family) -> Result<(), SendError> {
        let c = self.established().ok_or(SendError::NotEstablished)?;
        let neg = c.negotiated.as_ref().ok_or(SendError::NotEstablished)?;
        if !neg.route_refresh {
            return Err(SendError::RouteRefreshNotNegotiated);
        }
        if !neg.families.contains(&family) {
            return Err(SendError::FamilyNotNegotiated(family));
        }
        let msg = Message::RouteRefresh(RouteRefresh {
            family,
            subtype: RefreshSubtype::Request,
        });
        let (id, ctx) = (c.id, c.ctx.clone());
        let mut out = BytesMut::new();
        codec::encode_message(&msg, &ctx, &mut out)?;
        self.push_send(now, id, out.freeze(), false);
        Ok(())
    }

    // ----- events -----

    fn start(&mut self, now: Instant) {
        if self.admin_up {
            return;
        }
        info!(peer_as = ?self.cfg.peer_as, passive = self.cfg.passive, "BGP session start");
        self.admin_up = true;
        self.idle_hold_at = None;
        self.begin(now);
    }

    /// Leaves Idle: connect, or wait for the peer when passive.
    fn begin(&mut self, now: Instant) {
        if self.cfg.passive {
            self.connect_retry_at = None;
        } else {
            self.connect(now);
        }
    }

    fn connect(&mut self, now: Instant) {
        if let Some(old) = self.connecting.take() {
            self.actions.push_back(Action::Close(old));
        }
        let id = self.next_connection_id();
        self.connecting = Some(id);
        self.connect_retry_at = Some(now + self.cfg.connect_retry);
        self.actions.push_back(Action::Connect(id));
    }

    fn stop(&mut self, reason: Option<String>) {
        if !self.admin_up && self.conns.is_empty() {
            return;
        }
        info!(?reason, "BGP session stop");
        self.admin_up = false;
        self.idle_hold_at = None;
        self.connect_retry_at = None;
        self.idle_hold_next = self.cfg.idle_hold;
        if let Some(id) = self.connecting.take() {
            self.actions.push_back(Action::Close(id));
        }
        // RFC 9003: a communication is sent even when empty (length 0).
        let shutdown = Cease::AdministrativeShutdown(Some(reason.clone().unwrap_or_default()));
        let down = self.close_all(&shutdown, true);
        if let Some(was_established) = down {
            self.sync_state();
            self.push_down(Down {
                reason: DownReason::AdminStop(reason),
                was_established,
                stale: None,
            });
        }
    }

    fn detach(&mut self) {
        info!("BGP session detach (no NOTIFICATION, for graceful restart)");
        self.admin_up = false;
        self.idle_hold_at = None;
        self.connect_retry_at = None;
        if let Some(id) = self.connecting.take() {
            self.actions.push_back(Action::Close(id));
        }
        let conns = std::mem::take(&mut self.conns);
        let was_established = conns.iter().any(|c| c.phase == Phase::Established);
        let stale = conns
            .iter()
            .find(|c| c.phase == Phase::Established)
            .and_then(|c| c.negotiated.as_ref())
            .and_then(|neg| stale_routes(neg, &DownReason::Detached));
        for c in &conns {
            self.actions.push_back(Action::Close(c.id));
        }
        if !conns.is_empty() {
            self.sync_state();
            self.push_down(Down {
                reason: DownReason::Detached,
                was_established,
                stale,
            });
        }
    }

    fn reset(&mut self, now: Instant, hard: bool) {
        if !self.admin_up {
            debug!("reset of a stopped session ignored");
            return;
        }
        info!(hard, "BGP session reset");
        let n = Cease::AdministrativeReset(None);
        let stale = if hard {
            None
        } else {
            self.established()
                .and_then(|c| c.negotiated.as_ref())
                .and_then(|neg| stale_routes(neg, &DownReason::AdminReset { hard: false }))
        };
        if let Some(id) = self.connecting.take() {
            self.actions.push_back(Action::Close(id));
        }
        if let Some(was_established) = self.close_all(&n, hard) {
            self.sync_state();
            self.push_down(Down {
                reason: DownReason::AdminReset { hard },
                was_established,
                stale,
            });
        }
        self.admin_up = true;
        self.idle_hold_at = None;
        self.idle_hold_next = self.cfg.idle_hold;
        self.begin(now);
    }

    /// Sends `n` on every connection (as an RFC 8538 Hard Reset where the N
    /// bit was negotiated and `hard`) and closes them. Returns whether one
    /// was Established, or `None` when there was no connection.
    fn close_all(&mut self, n: &Cease, hard: bool) -> Option<bool> {
        if self.conns.is_empty() {
            return None;
        }
        let conns = std::mem::take(&mut self.conns);
        let mut was_established = false;
        for c in conns {
            was_established |= c.phase == Phase::Established;
            let gr_n = c.negotiated.as_ref().is_some_and(|n| n.gr_notification);
            let msg = if hard && gr_n {
                n.clone().hard_reset()
            } else {
                n.clone()
            };
            if let Some(bytes) = encode(&Message::Notification(msg.into()), &c.ctx) {
                self.count_sent(&bytes);
                self.actions.push_back(Action::Send {
                    conn: c.id,
                    data: bytes,
                    urgent: true,
                });
            }
            self.actions.push_back(Action::Close(c.id));
        }
        Some(was_established)
    }

    fn on_connected(&mut self, now: Instant, id: ConnectionId) {
        if self.connecting != Some(id) || !self.admin_up {
            debug!(%id, "closing a connection we no longer want");
            self.actions.push_back(Action::Close(id));
            return;
        }
        self.connecting = None;
        self.add_conn(now, id, true);
    }

    fn on_accepted(&mut self, now: Instant, id: ConnectionId) {
        // RFC 4271 §8.2.2: Idle refuses connections (also while idle hold
        // damps a flapping peer).
        if !self.admin_up || self.idle_hold_at.is_some() || self.conns.len() >= MAX_CONNECTIONS {
            debug!(%id, state = %self.state, "refusing incoming connection");
            self.actions.push_back(Action::Close(id));
            return;
        }
        self.add_conn(now, id, false);
    }

    fn add_conn(&mut self, now: Instant, id: ConnectionId, outbound: bool) {
        debug!(%id, outbound, "TCP connection up");
        self.connect_retry_at = None;
        let mut c = Conn {
            id,
            outbound,
            phase: Phase::OpenSent,
            buf: BytesMut::new(),
            ctx: CodecCtx::default(),
            negotiated: None,
            peer_restarted: false,
            hold: self.cfg.open_hold,
            keepalive: Duration::ZERO,
            send_hold: self
                .cfg
                .send_hold_time(Duration::from_secs(self.cfg.hold_time.into())),
            // RFC 4271 §8.2.2: a large hold timer while waiting for OPEN.
            hold_at: Some(now + self.cfg.open_hold),
            keepalive_at: None,
            delay_open_at: None,
            send_hold_at: None,
            established_at: None,
        };
        // Usually the only connection (two during a collision): no spare
        // slots, each is a few hundred octets and a reflector has thousands.
        self.conns.reserve_exact(1);
        if let Some(d) = self.cfg.delay_open {
            c.phase = Phase::DelayOpen;
            c.delay_open_at = Some(now + d);
            self.conns.push(c);
        } else {
            self.conns.push(c);
            self.send_open(now, id);
        }
    }

    fn send_open(&mut self, now: Instant, id: ConnectionId) {
        let msg = Message::Open(Open::clone(&self.local_open));
        if let Some(bytes) = encode(&msg, &CodecCtx::default()) {
            self.push_send(now, id, bytes, true);
        }
    }

    fn on_closed(&mut self, now: Instant, id: ConnectionId) {
        if self.connecting == Some(id) {
            debug!(%id, "connection attempt failed");
            self.connecting = None;
            // RFC 4271 §8.2.2 Connect: TcpConnectionFails → Active; the
            // ConnectRetry timer brings the next attempt.
            if self.connect_retry_at.is_none() && self.admin_up && self.idle_hold_at.is_none() {
                self.connect_retry_at = Some(now + self.cfg.connect_retry);
            }
            return;
        }
        if self.conn_index(id).is_some() {
            self.drop_conn(now, id, DownReason::ConnectionLost, None);
        }
    }

    fn on_timer(&mut self, now: Instant) {
        if self.idle_hold_at.is_some_and(|t| t <= now) {
            self.idle_hold_at = None;
            if self.admin_up && self.conns.is_empty() {
                debug!("idle hold over, starting again");
                self.begin(now);
            }
        }
        if self.connect_retry_at.is_some_and(|t| t <= now) {
            self.connect_retry_at = None;
            if self.admin_up && !self.cfg.passive && self.conns.is_empty() {
                self.connect(now);
            }
        }
        let ids: Vec<ConnectionId> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            self.conn_timers(now, id);
        }
    }

    fn conn_timers(&mut self, now: Instant, id: ConnectionId) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let Some(c) = self.conn_mut(id) else { return };
        if due(c.send_hold_at) {
            // RFC 9687 §4.
            warn!(%id, "send hold timer expired: the peer is not reading");
            let n = Notification::from(NotificationKind::SendHoldTimerExpired);
            self.drop_conn(now, id, DownReason::NotificationSent(n.clone()), Some(n));
            return;
        }
        if due(c.hold_at) {
            // RFC 4271 §6.5.
            warn!(%id, "hold timer expired");
            let n = Notification::from(NotificationKind::HoldTimerExpired);
            self.drop_conn(now, id, DownReason::NotificationSent(n.clone()), Some(n));
            return;
        }
        if due(c.delay_open_at) {
            c.delay_open_at = None;
            c.phase = Phase::OpenSent;
            self.send_open(now, id);
        }
        let Some(c) = self.conn_mut(id) else { return };
        if due(c.keepalive_at) {
            c.keepalive_at = Some(now + c.keepalive);
            if let Some(bytes) = encode(&Message::Keepalive, &CodecCtx::default()) {
                self.push_send(now, id, bytes, true);
            }
        }
    }

    fn on_received(&mut self, now: Instant, id: ConnectionId, data: &[u8]) {
        let Some(c) = self.conn_mut(id) else {
            debug!(%id, "bytes on a closed connection ignored");
            return;
        };
        c.buf.extend_from_slice(data);
        loop {
            let Some(c) = self.conn_mut(id) else { return };
            let frame = match codec::frame_len(&c.buf, c.ctx.max_message_len) {
                Ok(Some(n)) => c.buf.split_to(n).freeze(),
                Ok(None) => {
                    // A burst grew the buffer; a quiet peer should not keep it.
                    if c.buf.is_empty() && c.buf.capacity() > 0 {
                        c.buf = BytesMut::new();
                    }
                    return;
                }
                Err(e) => {
                    warn!(%id, error = %e, "bad message header");
                    let n = Notification::from(e);
                    self.drop_conn(now, id, DownReason::NotificationSent(n.clone()), Some(n));
                    return;
                }
            };
            let decoded = codec::decode_message(&frame, &c.ctx);
            self.stats.octets_received += frame.len() as u64;
            if let Some(&kind) = frame.get(crate::message::HEADER_LEN - 1) {
                self.stats.received.count(kind);
            }
            match decoded {
                Ok(msg) => self.on_message(now, id, msg),
                Err(e) => {
                    warn!(%id, error = %e, "bad message from peer");
                    let n = Notification::from(e);
                    self.drop_conn(now, id, DownReason::NotificationSent(n.clone()), Some(n));
                    return;
                }
            }
        }
    }

    fn on_message(&mut self, now: Instant, id: ConnectionId, msg: Message) {
        let Some(c) = self.conn_mut(id) else { return };
        let phase = c.phase;
        // RFC 4271 §8.2.2: every KEEPALIVE / UPDATE restarts the HoldTimer.
        if phase >= Phase::OpenConfirm && !c.hold.is_zero() {
            c.hold_at = Some(now + c.hold);
        }
        match (phase, msg) {
            (_, Message::Notification(n)) => {
                info!(%id, notification = %n, "peer sent NOTIFICATION");
                self.drop_conn(now, id, DownReason::NotificationReceived(n), None);
            }
            (Phase::DelayOpen | Phase::OpenSent, Message::Open(open)) => {
                self.on_open(now, id, phase, open);
            }
            (Phase::OpenConfirm, Message::Keepalive) => self.establish(now, id),
            (Phase::Established, Message::Keepalive) => {}
            (Phase::Established, Message::Update(update)) => self.on_update(id, update),
            (Phase::Established, Message::RouteRefresh(rr)) => self.on_route_refresh(id, rr),
            (phase, msg) => {
                // RFC 6608 §3: the subcode names the state, the data the
                // message's type.
                let ty = Some(msg.kind());
                let e = match phase {
                    Phase::DelayOpen => FsmError::Unspecified,
                    Phase::OpenSent => FsmError::UnexpectedMessageInOpenSent(ty),
                    Phase::OpenConfirm => FsmError::UnexpectedMessageInOpenConfirm(ty),
                    Phase::Established => FsmError::UnexpectedMessageInEstablished(ty),
                };
                warn!(%id, ?phase, kind = msg.kind(), "unexpected message");
                let n = Notification::from(e);
                self.drop_conn(now, id, DownReason::NotificationSent(n.clone()), Some(n));
            }
        }
    }

    /// Delivers an UPDATE, without the parts in families that were not
    /// negotiated (RFC 4760 §7 lets us ignore them).
    fn on_update(&mut self, id: ConnectionId, mut update: Update) {
        let Some(neg) = self.conn(id).and_then(|c| c.negotiated.as_ref()) else {
            return;
        };
        let ok = |f: Family| neg.families.contains(&f);
        if let Some(family) = update.as_end_of_rib() {
            if ok(family) {
                self.actions.push_back(Action::EndOfRib(family));
            } else {
                debug!(%id, %family, "End-of-RIB for a family not negotiated ignored");
            }
            return;
        }
        let mut dropped = Vec::new();
        if update.mp_reach.as_ref().is_some_and(|m| !ok(m.family)) {
            dropped.extend(update.mp_reach.take().map(|m| m.family));
        }
        if update.mp_unreach.as_ref().is_some_and(|m| !ok(m.family)) {
            dropped.extend(update.mp_unreach.take().map(|m| m.family));
        }
        let classic = !update.nlri.is_empty() || !update.withdrawn.is_empty();
        if classic && !ok(Family::IPV4_UNICAST) {
            update.nlri.clear();
            update.withdrawn.clear();
            dropped.push(Family::IPV4_UNICAST);
        }
        if !dropped.is_empty() {
            warn!(%id, families = ?dropped, "UPDATE parts in families not negotiated ignored");
            let empty = update.nlri.is_empty()
                && update.withdrawn.is_empty()
                && update.mp_reach.is_none()
                && update.mp_unreach.is_none();
            if empty {
                return;
            }
        }
        self.actions.push_back(Action::Update(Box::new(update)));
    }

    fn on_route_refresh(&mut self, id: ConnectionId, rr: RouteRefresh) {
        let negotiated = self
            .conn(id)
            .and_then(|c| c.negotiated.as_ref())
            .is_some_and(|n| n.families.contains(&rr.family));
        // RFC 2918 §4 and RFC 7313 §5: ignore unknown families and subtypes.
        let known = matches!(
            rr.subtype,
            RefreshSubtype::Request
                | RefreshSubtype::BeginningOfRouteRefresh
                | RefreshSubtype::EndOfRouteRefresh
        );
        if !negotiated || !known {
            debug!(%id, family = %rr.family, subtype = ?rr.subtype, "ROUTE-REFRESH ignored");
            return;
        }
        self.actions.push_back(Action::RouteRefresh(rr));
    }

    fn on_open(&mut self, now: Instant, id: ConnectionId, phase: Phase, open: Open) {
        if let Err(e) = check_open(&self.cfg, &open) {
            let n = Notification::from(e);
            warn!(%id, notification = %n, "peer's OPEN refused");
            self.drop_conn(now, id, DownReason::NotificationSent(n.clone()), Some(n));
            return;
        }
        let restarted = open.capabilities.iter().any(
            |c| matches!(c, crate::capability::Capability::GracefulRestart(g) if g.restart_state),
        );
        let neg = Negotiated::sharing(&self.local_open, Arc::new(open), self.cfg.keepalive);
        debug!(%id, peer_id = %neg.peer_id, peer_as = %neg.peer_asn, hold = ?neg.hold_time, "OPEN accepted");
        if phase == Phase::DelayOpen {
            // RFC 4271 §8.2.2: OPEN while DelayOpen runs → send ours now.
            self.send_open(now, id);
        }
        let send_hold = self.cfg.send_hold_time(neg.hold_time);
        let Some(c) = self.conn_mut(id) else { return };
        c.ctx = neg.codec_ctx();
        c.phase = Phase::OpenConfirm;
        c.delay_open_at = None;
        c.hold = neg.hold_time;
        c.keepalive = neg.keepalive;
        c.send_hold = send_hold;
        c.peer_restarted = restarted;
        c.hold_at = (!c.hold.is_zero()).then(|| now + c.hold);
        c.keepalive_at = (!c.keepalive.is_zero()).then(|| now + c.keepalive);
        let peer_id = neg.peer_id;
        let peer_as = neg.peer_asn;
        c.negotiated = Some(neg);
        if let Some(bytes) = encode(&Message::Keepalive, &CodecCtx::default()) {
            self.push_send(now, id, bytes, true);
        }
        self.resolve_collisions(now, id, peer_id, peer_as);
    }

    /// RFC 4271 §6.8: with the peer's BGP identifier known from `id`'s OPEN,
    /// keep one connection.
    fn resolve_collisions(
        &mut self,
        now: Instant,
        id: ConnectionId,
        peer_id: std::net::Ipv4Addr,
        peer_as: crate::types::Asn,
    ) {
        let local = u32::from(self.cfg.router_id);
        let remote = u32::from(peer_id);
        // The speaker with the higher identifier keeps the connection it
        // initiated; RFC 6286 §2.3 breaks a tie with the AS number.
        let keep_ours = if local != remote {
            local > remote
        } else {
            self.cfg.local_as > peer_as
        };
        let Some(new) = self.conn(id) else { return };
        let new_outbound = new.outbound;
        let new_restarted = new.peer_restarted;
        let others: Vec<(ConnectionId, Phase, bool)> = self
            .conns
            .iter()
            .filter(|c| c.id != id && c.phase >= Phase::OpenConfirm)
            .map(|c| (c.id, c.phase, c.outbound))
            .collect();
        let collision = Notification::from(Cease::ConnectionCollisionResolution);
        for (other, phase, other_outbound) in others {
            let new_wins = if new_outbound == other_outbound {
                true // the same side connected twice: the newer one is live
            } else {
                new_outbound == keep_ours
            };
            // RFC 4724 §4.2: a restarting peer's new session replaces the
            // established one.
            let replace = new_wins || (phase == Phase::Established && new_restarted);
            if replace {
                info!(old = %other, new = %id, "connection collision: keeping the new connection");
                let reason = if phase == Phase::Established {
                    DownReason::PeerReconnected
                } else {
                    DownReason::NotificationSent(collision.clone())
                };
                self.drop_conn(now, other, reason, Some(collision.clone()));
            } else {
                info!(old = %other, new = %id, "connection collision: keeping the old connection");
                self.drop_conn(
                    now,
                    id,
                    DownReason::NotificationSent(collision.clone()),
                    Some(collision.clone()),
                );
                return;
            }
        }
    }

    fn establish(&mut self, now: Instant, id: ConnectionId) {
        let Some(c) = self.conn_mut(id) else { return };
        c.phase = Phase::Established;
        c.established_at = Some(now);
        self.stats.established += 1;
        self.stats.established_since = Some(now);
        let Some(c) = self.conn_mut(id) else { return };
        let Some(neg) = c.negotiated.clone() else {
            return;
        };
        info!(%id, peer_as = %neg.peer_asn, peer_id = %neg.peer_id, "BGP session established");
        self.connect_retry_at = None;
        if let Some(pending) = self.connecting.take() {
            self.actions.push_back(Action::Close(pending));
        }
        self.sync_state();
        self.actions.push_back(Action::Established(Box::new(neg)));
    }

    /// Ends one connection: optionally sends `notify`, closes it, and when
    /// it was the last one moves the session to Idle (with damping) or to
    /// Active.
    fn drop_conn(
        &mut self,
        now: Instant,
        id: ConnectionId,
        reason: DownReason,
        notify: Option<Notification>,
    ) {
        let Some(i) = self.conn_index(id) else { return };
        let c = self.conns.remove(i);
        let mut reason = reason;
        let notify = notify.map(|n| must_hard_reset(n, c.negotiated.as_ref()));
        if let (DownReason::NotificationSent(x), Some(n)) = (&mut reason, &notify) {
            x.clone_from(n);
        }
        if let Some(n) = notify
            && let Some(bytes) = encode(&Message::Notification(n), &c.ctx)
        {
            self.count_sent(&bytes);
            self.actions.push_back(Action::Send {
                conn: id,
                data: bytes,
                urgent: true,
            });
        }
        self.actions.push_back(Action::Close(id));
        let was_established = c.phase == Phase::Established;
        let last = self.conns.is_empty() && self.connecting.is_none();
        if was_established {
            let stale = c
                .negotiated
                .as_ref()
                .and_then(|neg| stale_routes(neg, &reason));
            info!(%id, %reason, keep_stale = stale.is_some(), "BGP session down");
            if last {
                self.enter_idle(now, c.established_at);
            }
            self.sync_state();
            self.push_down(Down {
                reason,
                was_established: true,
                stale,
            });
            return;
        }
        if !last {
            return;
        }
        if reason == DownReason::ConnectionLost {
            // RFC 4271 §8.2.2: TcpConnectionFails before Established →
            // Active, ConnectRetry brings the next attempt.
            if self.admin_up && !self.cfg.passive {
                self.connect_retry_at = Some(now + self.cfg.connect_retry);
            }
        } else {
            self.enter_idle(now, None);
        }
        self.sync_state();
        self.push_down(Down {
            reason,
            was_established: false,
            stale: None,
        });
    }

    /// Idle with an idle hold that doubles per failure (RFC 4271 §8.1.1
    /// DampPeerOscillations), reset after a session that stayed up.
    fn enter_idle(&mut self, now: Instant, established_at: Option<Instant>) {
        if established_at
            .is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.idle_hold_max)
        {
            self.idle_hold_next = self.cfg.idle_hold;
        }
        self.connect_retry_at = None;
        if let Some(pending) = self.connecting.take() {
            self.actions.push_back(Action::Close(pending));
        }
        if !self.admin_up {
            return;
        }
        let wait = self.idle_hold_next;
        debug!(?wait, "idle hold");
        self.idle_hold_at = Some(now + wait);
        self.idle_hold_next = (wait * 2)
            .min(self.cfg.idle_hold_max)
            .max(self.cfg.idle_hold);
    }

    // ----- helpers -----

    fn push_send(&mut self, now: Instant, id: ConnectionId, data: Bytes, urgent: bool) {
        self.count_sent(&data);
        if let Some(c) = self.conn_mut(id) {
            // RFC 9687 §4: armed while something waits to be written.
            if c.send_hold_at.is_none() {
                c.send_hold_at = Some(now + c.send_hold);
            }
        }
        self.actions.push_back(Action::Send {
            conn: id,
            data,
            urgent,
        });
    }

    /// Counts the messages in bytes we produced (whole messages, so the
    /// header walk cannot go wrong; `get` keeps it panic-free anyway).
    fn count_sent(&mut self, data: &[u8]) {
        use crate::message::HEADER_LEN;
        self.stats.octets_sent += data.len() as u64;
        let mut rest = data;
        while let (Some(&hi), Some(&lo), Some(&kind)) = (rest.get(16), rest.get(17), rest.get(18)) {
            self.stats.sent.count(kind);
            let len = usize::from(u16::from_be_bytes([hi, lo])).max(HEADER_LEN);
            rest = rest.get(len..).unwrap_or_default();
        }
    }

    fn push_down(&mut self, down: Down) {
        if down.was_established {
            self.stats.established_since = None;
        }
        self.stats.last_down = Some(down.reason.clone());
        self.actions.push_back(Action::Down(down));
    }

    fn sync_state(&mut self) {
        let state = self.compute_state();
        if state != self.state {
            debug!(from = %self.state, to = %state, "state change");
            self.actions.push_back(Action::StateChanged {
                from: self.state,
                to: state,
            });
            self.state = state;
        }
    }

    fn compute_state(&self) -> State {
        let best = self.conns.iter().map(|c| (c.phase, c.outbound)).max();
        match best {
            Some((Phase::Established, _)) => State::Established,
            Some((Phase::OpenConfirm, _)) => State::OpenConfirm,
            Some((Phase::OpenSent, _)) => State::OpenSent,
            // RFC 4271 §8.2.2: DelayOpen runs in Connect or Active.
            Some((Phase::DelayOpen, true)) => State::Connect,
            Some((Phase::DelayOpen, false)) => State::Active,
            None if !self.admin_up || self.idle_hold_at.is_some() => State::Idle,
            None if self.connecting.is_some() => State::Connect,
            None => State::Active,
        }
    }

    fn established(&self) -> Option<&Conn> {
        self.conns.iter().find(|c| c.phase == Phase::Established)
    }

    fn conn(&self, id: ConnectionId) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    fn conn_mut(&mut self, id: ConnectionId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn conn_index(&self, id: ConnectionId) -> Option<usize> {
        self.conns.iter().position(|c| c.id == id)
    }
}

fn encode(msg: &Message, ctx: &CodecCtx) -> Option<Bytes> {
    let mut out = BytesMut::new();
    match codec::encode_message(msg, ctx, &mut out) {
        Ok(()) => Some(out.freeze()),
        Err(e) => {
            warn!(error = %e, kind = msg.kind(), "cannot encode our own message");
            None
        }
    }
}
