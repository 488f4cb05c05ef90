//! Two BFD sessions wired back to back with a virtual clock, in the manner
//! of `tabby-bgp`'s `fsm_util`: every packet one sends reaches the other at
//! once unless its direction is cut, and time moves only when a test says.
//! Included by the `session_*` tests with `#[path]`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use tabby_bfd::packet::{Diag, Packet, State};
use tabby_bfd::session::{Action, ClientSignal, Discard, Session, TimerKind};
use tabby_bfd::{SessionConfig, Timers};

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

/// One state change, with the instant it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub at: Instant,
    pub from: State,
    pub to: State,
    pub diag: Diag,
    pub signal: ClientSignal,
}

/// One simulated BFD speaker and what it did.
#[derive(Debug)]
pub struct Node {
    pub session: Session,
    /// Every packet sent, decoded, with the instant.
    pub sent: Vec<(Instant, Packet)>,
    /// Every packet the session accepted.
    pub accepted: Vec<(Instant, Packet)>,
    pub discards: Vec<Discard>,
    pub changes: Vec<Change>,
    /// The timers as the caller sees them from the actions.
    pub tx_at: Option<Instant>,
    pub detect_at: Option<Instant>,
}

impl Node {
    pub fn new(now: Instant, cfg: SessionConfig, discr: u32, seed: u64) -> Node {
        let session = Session::new(now, cfg, NonZeroU32::new(discr).unwrap(), seed).unwrap();
        Node {
            session,
            sent: Vec::new(),
            accepted: Vec::new(),
            discards: Vec::new(),
            changes: Vec::new(),
            tx_at: None,
            detect_at: None,
        }
    }

    pub fn state(&self) -> State {
        self.session.state()
    }

    pub fn last_change(&self) -> Change {
        *self.changes.last().expect("a state change")
    }

    /// Send instants of the packets that were not answers to a Poll.
    pub fn periodic_times(&self) -> Vec<Instant> {
        self.sent
            .iter()
            .filter(|(_, p)| !p.fin)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Gaps between consecutive periodic packets sent at or after `from`.
    pub fn gaps_since(&self, from: Instant) -> Vec<Duration> {
        let t: Vec<_> = self
            .periodic_times()
            .into_iter()
            .filter(|t| *t >= from)
            .collect();
        t.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Notes one action of the session at `now`; returns the bytes of a Send.
    fn record(&mut self, now: Instant, action: Action) -> Option<Vec<u8>> {
        match action {
            Action::Send(bytes) => {
                let p = Packet::decode(&bytes).expect("we send what we decode");
                self.sent.push((now, p));
                return Some(bytes);
            }
            Action::ArmTimer { kind, at } => *self.timer_mut(kind) = Some(at),
            Action::CancelTimer(kind) => *self.timer_mut(kind) = None,
            Action::StateChanged {
                from,
                to,
                diag,
                signal,
            } => self.changes.push(Change {
                at: now,
                from,
                to,
                diag,
                signal,
            }),
        }
        None
    }

    fn timer_mut(&mut self, kind: TimerKind) -> &mut Option<Instant> {
        match kind {
            TimerKind::Tx => &mut self.tx_at,
            TimerKind::Detect => &mut self.detect_at,
        }
    }
}

/// Two sessions back to back.
#[derive(Debug)]
pub struct Pair {
    pub now: Instant,
    pub a: Node,
    pub b: Node,
    /// Packets sent by A (resp. B) are lost while set.
    pub cut_a: bool,
    pub cut_b: bool,
    queue: VecDeque<(Side, Vec<u8>)>,
}

/// Default configuration with these timers.
pub fn config(desired_ms: u64, required_ms: u64, mult: u8) -> SessionConfig {
    SessionConfig {
        timers: Timers {
            desired_min_tx: Duration::from_millis(desired_ms),
            required_min_rx: Duration::from_millis(required_ms),
            detect_mult: mult,
        },
        ..SessionConfig::default()
    }
}

impl Pair {
    pub fn new(a: SessionConfig, b: SessionConfig) -> Pair {
        let now = Instant::now();
        let mut p = Pair {
            now,
            a: Node::new(now, a, 0x0a0a_0001, 1),
            b: Node::new(now, b, 0x0b0b_0002, 2),
            cut_a: false,
            cut_b: false,
            queue: VecDeque::new(),
        };
        p.drain();
        p
    }

    /// The datacenter defaults on both sides.
    pub fn default_pair() -> Pair {
        Pair::new(SessionConfig::default(), SessionConfig::default())
    }

    /// Both sides Up and the Poll that going Up starts finished.
    pub fn up() -> Pair {
        let mut p = Pair::default_pair();
        p.advance(Duration::from_secs(5));
        assert_eq!((p.a.state(), p.b.state()), (State::Up, State::Up));
        assert!(!p.a.session.poll_in_progress() && !p.b.session.poll_in_progress());
        p
    }

    pub fn node(&mut self, side: Side) -> &mut Node {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Carries out every pending action and delivers every packet, at
    /// `now`, until nothing moves.
    pub fn drain(&mut self) {
        loop {
            let mut moved = false;
            for side in [Side::A, Side::B] {
                let now = self.now;
                let cut = match side {
                    Side::A => self.cut_a,
                    Side::B => self.cut_b,
                };
                let mut out = Vec::new();
                let node = self.node(side);
                while let Some(action) = node.session.poll_action() {
                    moved = true;
                    if let Some(bytes) = node.record(now, action)
                        && !cut
                    {
                        out.push(bytes);
                    }
                }
                for kind in [TimerKind::Tx, TimerKind::Detect] {
                    let seen = *node.timer_mut(kind);
                    assert_eq!(seen, node.session.timer(kind), "{kind:?} timer actions");
                }
                self.queue
                    .extend(out.into_iter().map(|b| (side.other(), b)));
            }
            while let Some((to, bytes)) = self.queue.pop_front() {
                moved = true;
                let now = self.now;
                let node = self.node(to);
                match node.session.handle_packet(now, &bytes) {
                    Ok(()) => node.accepted.push((now, Packet::decode(&bytes).unwrap())),
                    Err(e) => node.discards.push(e),
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Moves the clock forward by `d`, firing every timer that falls due.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.drain();
            let next = [
                (Side::A, TimerKind::Tx, self.a.tx_at),
                (Side::A, TimerKind::Detect, self.a.detect_at),
                (Side::B, TimerKind::Tx, self.b.tx_at),
                (Side::B, TimerKind::Detect, self.b.detect_at),
            ]
            .into_iter()
            .filter_map(|(s, k, at)| at.map(|at| (at, s, k)))
            .min_by_key(|(at, _, _)| *at);
            match next {
                Some((at, side, kind)) if at <= end => {
                    self.now = self.now.max(at);
                    let now = self.now;
                    let node = self.node(side);
                    *node.timer_mut(kind) = None;
                    node.session.handle_timeout(now, kind);
                }
                _ => break,
            }
        }
        self.now = end;
        self.drain();
    }
}

/// A session alone, fed hand-made packets: for peers that do what our own
/// session never does (Demand mode, malformed packets).
#[derive(Debug)]
pub struct Solo {
    pub now: Instant,
    pub node: Node,
    pub peer_discr: u32,
}

impl Solo {
    pub fn new(cfg: SessionConfig) -> Solo {
        let now = Instant::now();
        let mut s = Solo {
            now,
            node: Node::new(now, cfg, 0x0a0a_0001, 7),
            peer_discr: 0x0c0c_0003,
        };
        s.drain();
        s
    }

    /// A peer packet in `state` with the peer's discriminators and 300 ms × 3.
    pub fn peer_packet(&self, state: State) -> Packet {
        let your = if state == State::Down {
            0
        } else {
            self.node.session.local_discriminator()
        };
        Packet {
            diag: Diag::NoDiagnostic,
            state,
            poll: false,
            fin: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: self.peer_discr,
            your_discriminator: your,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }

    pub fn deliver(&mut self, p: &Packet) -> Result<(), Discard> {
        self.deliver_bytes(&p.encode())
    }

    pub fn deliver_bytes(&mut self, bytes: &[u8]) -> Result<(), Discard> {
        let r = self.node.session.handle_packet(self.now, bytes);
        if r.is_ok() {
            self.node
                .accepted
                .push((self.now, Packet::decode(bytes).unwrap()));
        }
        self.drain();
        r
    }

    /// Takes the session to Up with a peer that answers every Poll.
    pub fn up() -> Solo {
        let mut s = Solo::new(SessionConfig::default());
        s.deliver(&s.peer_packet(State::Down)).unwrap();
        assert_eq!(s.node.state(), State::Init);
        s.deliver(&s.peer_packet(State::Up)).unwrap();
        assert_eq!(s.node.state(), State::Up);
        // Going Up moved Desired Min TX from 1 s to 300 ms: answer the Poll.
        assert!(s.node.session.poll_in_progress());
        let mut fin = s.peer_packet(State::Up);
        fin.fin = true;
        s.deliver(&fin).unwrap();
        assert!(!s.node.session.poll_in_progress());
        s
    }

    pub fn drain(&mut self) {
        let now = self.now;
        let node = &mut self.node;
        while let Some(action) = node.session.poll_action() {
            node.record(now, action);
        }
    }

    /// Moves the clock, firing this session's timers (the peer is silent).
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [
                (TimerKind::Tx, self.node.tx_at),
                (TimerKind::Detect, self.node.detect_at),
            ]
            .into_iter()
            .filter_map(|(k, at)| at.map(|at| (at, k)))
            .min_by_key(|(at, _)| *at);
            match next {
                Some((at, kind)) if at <= end => {
                    self.now = self.now.max(at);
                    *self.node.timer_mut(kind) = None;
                    self.node.session.handle_timeout(self.now, kind);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = end;
    }
}
