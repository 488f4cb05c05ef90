//! A simulated network for [`Session`]s with a virtual clock, in the manner
//! of quinn-proto's test pair: two sessions, in-memory TCP connections, and
//! time that only moves when a test says so. Included by the `fsm_*` tests
//! with `#[path]`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tabby_bgp::codec::{self, CodecCtx};
use tabby_bgp::fsm::{Action, ConnectionId, Down, Event, PeerAs, Session, SessionConfig, State};
use tabby_bgp::message::{Message, Open};
use tabby_bgp::notification::Notification;
use tabby_bgp::types::Asn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// One simulated speaker.
#[derive(Debug)]
pub struct Node {
    pub session: Session,
    /// Every non-I/O action, in order.
    pub log: Vec<Action>,
    /// Every message this node sent, decoded, with the connection.
    pub sent: Vec<(ConnectionId, Message)>,
    /// When false, connections to this node are refused (no listener).
    pub listening: bool,
    /// When each connection attempt was made.
    pub connects: Vec<Instant>,
}

impl Node {
    pub fn new(cfg: SessionConfig) -> Node {
        Node {
            session: Session::new(cfg),
            log: Vec::new(),
            sent: Vec::new(),
            listening: true,
            connects: Vec::new(),
        }
    }

    pub fn downs(&self) -> Vec<&Down> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Down(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    pub fn established_count(&self) -> usize {
        self.log
            .iter()
            .filter(|a| matches!(a, Action::Established(_)))
            .count()
    }

    pub fn notifications_sent(&self) -> Vec<Notification> {
        self.sent
            .iter()
            .filter_map(|(_, m)| match m {
                Message::Notification(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn keepalives_sent(&self) -> usize {
        self.sent
            .iter()
            .filter(|(_, m)| matches!(m, Message::Keepalive))
            .count()
    }

    pub fn states(&self) -> Vec<State> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::StateChanged { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug)]
struct Link {
    a: ConnectionId,
    b: ConnectionId,
    initiator: Side,
}

#[derive(Debug)]
enum Delivery {
    Event(Side, Event),
}

/// Two sessions wired back to back.
#[derive(Debug)]
pub struct Pair {
    pub now: Instant,
    pub a: Node,
    pub b: Node,
    links: Vec<Link>,
    queue: VecDeque<Delivery>,
    /// When set, bytes sent by that side are never written (a peer stuck
    /// at TCP zero window): no delivery and no send progress.
    pub stalled: Option<Side>,
    /// When set, bytes sent by that side are silently lost.
    pub blackhole: Option<Side>,
}

pub fn config(asn: u32, peer: u32, id: [u8; 4]) -> SessionConfig {
    let mut cfg = SessionConfig::new(Asn(asn), PeerAs::Exact(Asn(peer)), Ipv4Addr::from(id));
    cfg.connect_retry = Duration::from_secs(5);
    cfg
}

impl Pair {
    pub fn new(a: SessionConfig, b: SessionConfig) -> Pair {
        Pair {
            now: Instant::now(),
            a: Node::new(a),
            b: Node::new(b),
            links: Vec::new(),
            queue: VecDeque::new(),
            stalled: None,
            blackhole: None,
        }
    }

    /// eBGP AS 65001 (198.18.0.1) and AS 65002 (198.18.0.2).
    pub fn default_ebgp() -> Pair {
        Pair::new(
            config(65001, 65002, [198, 18, 0, 1]),
            config(65002, 65001, [198, 18, 0, 2]),
        )
    }

    pub fn node(&mut self, side: Side) -> &mut Node {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    pub fn event(&mut self, side: Side, ev: Event) {
        let now = self.now;
        self.node(side).session.handle_event(now, ev);
    }

    /// Starts both sides and runs until quiet.
    pub fn start_both(&mut self) {
        self.event(Side::A, Event::Start);
        self.event(Side::B, Event::Start);
        self.drive();
    }

    /// Carries out actions and deliveries until nothing moves, in rounds so
    /// that simultaneous events stay simultaneous.
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for side in [Side::A, Side::B] {
                while let Some(action) = self.node(side).session.poll_action() {
                    moved = true;
                    self.carry_out(side, action);
                }
            }
            let batch: Vec<Delivery> = self.queue.drain(..).collect();
            for d in batch {
                moved = true;
                let Delivery::Event(side, ev) = d;
                self.event(side, ev);
            }
            if !moved {
                return;
            }
        }
        panic!("simulation did not settle");
    }

    fn peer_conn(&self, side: Side, conn: ConnectionId) -> Option<ConnectionId> {
        self.links.iter().find_map(|l| match side {
            Side::A if l.a == conn => Some(l.b),
            Side::B if l.b == conn => Some(l.a),
            _ => None,
        })
    }

    fn carry_out(&mut self, side: Side, action: Action) {
        match action {
            Action::Connect(id) => {
                let now = self.now;
                self.node(side).connects.push(now);
                let other = side.other();
                if !self.node(other).listening {
                    self.queue
                        .push_back(Delivery::Event(side, Event::Closed(id)));
                    return;
                }
                let oid = self.node(other).session.next_connection_id();
                self.links.push(match side {
                    Side::A => Link {
                        a: id,
                        b: oid,
                        initiator: side,
                    },
                    Side::B => Link {
                        a: oid,
                        b: id,
                        initiator: side,
                    },
                });
                self.queue
                    .push_back(Delivery::Event(side, Event::Connected(id)));
                self.queue
                    .push_back(Delivery::Event(other, Event::Accepted(oid)));
            }
            Action::Send { conn, data, .. } => {
                let mut buf = data.clone();
                while !buf.is_empty() {
                    let Ok(Some(n)) = codec::frame_len(&buf, 65535) else {
                        break;
                    };
                    let frame = buf.split_to(n);
                    let ctx = CodecCtx {
                        max_message_len: 65535,
                        ..CodecCtx::default()
                    };
                    if let Ok(m) = codec::decode_message(&frame, &ctx) {
                        self.node(side).sent.push((conn, m));
                    }
                }
                if self.stalled == Some(side) {
                    return;
                }
                self.queue.push_back(Delivery::Event(
                    side,
                    Event::SendProgress {
                        conn,
                        pending: false,
                    },
                ));
                if self.blackhole == Some(side) {
                    return;
                }
                if let Some(peer) = self.peer_conn(side, conn) {
                    self.queue
                        .push_back(Delivery::Event(side.other(), Event::Received(peer, data)));
                }
            }
            Action::Close(conn) => {
                if let Some(peer) = self.peer_conn(side, conn) {
                    self.links.retain(|l| match side {
                        Side::A => l.a != conn,
                        Side::B => l.b != conn,
                    });
                    self.queue
                        .push_back(Delivery::Event(side.other(), Event::Closed(peer)));
                }
            }
            other => self.node(side).log.push(other),
        }
    }

    /// Moves the virtual clock forward by `d`, firing every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            let next = [self.a.session.poll_timeout(), self.b.session.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    for side in [Side::A, Side::B] {
                        if self
                            .node(side)
                            .session
                            .poll_timeout()
                            .is_some_and(|t| t <= self.now)
                        {
                            self.event(side, Event::Timer);
                        }
                    }
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = target;
    }

    pub fn both_established(&self) -> bool {
        self.a.session.state() == State::Established && self.b.session.state() == State::Established
    }

    /// Number of live simulated TCP connections.
    pub fn links(&self) -> usize {
        self.links.len()
    }

    /// Who opened each live connection.
    pub fn initiators(&self) -> Vec<Side> {
        self.links.iter().map(|l| l.initiator).collect()
    }

    /// Every connection breaks at once without a word (a cable cut, or the
    /// peer's process killed): both ends see the TCP connection close.
    pub fn cut(&mut self) {
        for l in std::mem::take(&mut self.links) {
            self.queue
                .push_back(Delivery::Event(Side::A, Event::Closed(l.a)));
            self.queue
                .push_back(Delivery::Event(Side::B, Event::Closed(l.b)));
        }
        self.drive();
    }

    /// `side` vanishes without a word and comes back as a fresh process
    /// with `cfg`; the other side's connections stay half-open.
    pub fn restart(&mut self, side: Side, cfg: SessionConfig) {
        self.links.clear();
        self.queue.clear();
        *self.node(side) = Node::new(cfg);
    }
}

/// One session driven by hand: a test plays the peer with raw bytes.
#[derive(Debug)]
pub struct Scripted {
    pub now: Instant,
    pub session: Session,
    pub actions: Vec<Action>,
}

impl Scripted {
    pub fn new(cfg: SessionConfig) -> Scripted {
        Scripted {
            now: Instant::now(),
            session: Session::new(cfg),
            actions: Vec::new(),
        }
    }

    pub fn event(&mut self, ev: Event) {
        self.session.handle_event(self.now, ev);
        while let Some(a) = self.session.poll_action() {
            self.actions.push(a);
        }
    }

    /// Starts the session passively and accepts one connection: the session
    /// sends its OPEN and waits in OpenSent.
    pub fn accept(&mut self) -> ConnectionId {
        self.event(Event::Start);
        let id = self.session.next_connection_id();
        self.event(Event::Accepted(id));
        id
    }

    pub fn feed(&mut self, id: ConnectionId, bytes: &[u8]) {
        self.event(Event::Received(id, Bytes::copy_from_slice(bytes)));
    }

    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        let mut rounds = 0;
        while let Some(t) = self.session.poll_timeout() {
            if t > target {
                break;
            }
            rounds += 1;
            assert!(rounds < 100_000, "a timer fires without end at {t:?}");
            self.now = self.now.max(t);
            self.event(Event::Timer);
        }
        self.now = target;
    }

    /// Every message sent so far, decoded.
    pub fn sent(&self) -> Vec<Message> {
        let mut out = Vec::new();
        for a in &self.actions {
            if let Action::Send { data, .. } = a {
                let mut buf = data.clone();
                while let Ok(Some(n)) = codec::frame_len(&buf, 65535) {
                    let frame = buf.split_to(n);
                    let ctx = CodecCtx {
                        max_message_len: 65535,
                        ..CodecCtx::default()
                    };
                    if let Ok(m) = codec::decode_message(&frame, &ctx) {
                        out.push(m);
                    }
                }
            }
        }
        out
    }

    pub fn last_notification(&self) -> Option<Notification> {
        self.sent().into_iter().rev().find_map(|m| match m {
            Message::Notification(n) => Some(n),
            _ => None,
        })
    }

    pub fn closed(&self, id: ConnectionId) -> bool {
        self.actions.iter().any(|a| *a == Action::Close(id))
    }

    pub fn downs(&self) -> Vec<&Down> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Down(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    /// Completes the handshake as the peer with `open`: OPEN then KEEPALIVE.
    pub fn establish_with(&mut self, id: ConnectionId, open: &Open) {
        self.feed(id, &encode(&Message::Open(open.clone())));
        self.feed(id, &encode(&Message::Keepalive));
    }
}

pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec::encode_message(msg, &CodecCtx::default(), &mut out).expect("encodable test message");
    out.to_vec()
}

pub fn encode_with(msg: &Message, ctx: &CodecCtx) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec::encode_message(msg, ctx, &mut out).expect("encodable test message");
    out.to_vec()
}
