//! One BFD session in Asynchronous mode (RFC 5880 §6.2, §6.8): the state
//! machine, the negotiated intervals, Poll Sequences and the two timers.
//!
//! Sans-IO like quinn-proto's connection: the caller hands in what happened
//! ([`Session::handle_packet`], [`Session::handle_timeout`], the admin
//! commands, [`Session::set_timers`]) with the current time, and carries out
//! every [`Action`] that [`Session::poll_action`] returns: send these bytes,
//! (re)arm or cancel a timer, tell the clients about a state change.
//!
//! Time is a [`std::time::Instant`], as in `tabby_bgp::fsm`: the driver
//! passes `tokio::time::Instant::into_std()` and a test starts from any
//! `Instant` and adds durations, so both crates share one notion of time and
//! no epoch has to be agreed on.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use crate::auth::{AuthError, SeqWindow};
use crate::config::{ConfigError, SessionConfig, Timers};
use crate::jitter::{Rng, jittered};
use crate::packet::{DecodeError, Diag, Packet, State};

/// §6.8.3: bfd.DesiredMinTxInterval while the session is not Up.
pub const SLOW_TX_US: u32 = 1_000_000;

/// The session's two timers. The caller keeps one of each; arming one
/// replaces its previous deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// The next periodic transmission (§6.8.7).
    Tx,
    /// The Detection Time since the last packet accepted (§6.8.4).
    Detect,
}

/// What a state change means to the session's clients (RFC 5882 §4.1): only
/// a session leaving Up for a failure is a reason to tear a client down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientSignal {
    /// The session reached Up: the path is verified.
    Up,
    /// Up to Down on Detection Time expiry or because the peer signalled
    /// Down: the forwarding path failed; a client such as BGP tears down.
    Failed,
    /// Up to Down because the peer went AdminDown: not a failure, the
    /// client keeps running on its own timers (RFC 5882 §4.1).
    PeerAdminDown,
    /// We were put AdminDown while Up: not a failure either.
    LocalAdminDown,
    /// A change that never involved Up (Down to Init, Init to Down, out of
    /// AdminDown): nothing for clients.
    Nothing,
}

impl ClientSignal {
    /// Whether a client should treat the change as a path failure.
    pub fn is_failure(self) -> bool {
        self == ClientSignal::Failed
    }
}

/// Outputs of the session, in the order they must be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this Control packet (UDP payload) to the peer.
    Send(Vec<u8>),
    /// Call [`Session::handle_timeout`] with `kind` at `at`.
    ArmTimer { kind: TimerKind, at: Instant },
    /// The timer of `kind` is no longer needed.
    CancelTimer(TimerKind),
    /// bfd.SessionState changed; `diag` is the new bfd.LocalDiag.
    StateChanged {
        from: State,
        to: State,
        diag: Diag,
        signal: ClientSignal,
    },
}

/// Why a received packet was discarded (§6.8.6); the session is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    #[error(transparent)]
    Malformed(#[from] DecodeError),
    #[error("Your Discriminator {0:#x} is not this session's")]
    WrongDiscriminator(u32),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// One BFD session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    local_discr: u32,
    state: State,
    local_diag: Diag,
    remote_state: State,
    remote_discr: u32,
    remote_demand: bool,
    remote_min_rx_us: u32,
    remote_desired_min_tx_us: u32,
    remote_detect_mult: u8,
    /// bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval: what our
    /// packets advertise.
    desired_min_tx_us: u32,
    required_min_rx_us: u32,
    /// The values the transmit interval and the Detection Time are computed
    /// from: they lag an advertised change while Up until the peer has
    /// acknowledged it with a Final (§6.8.3).
    tx_desired_in_force_us: u32,
    rx_required_in_force_us: u32,
    poll_active: bool,
    /// A parameter changed while a Poll was already out: its Final may
    /// answer a packet with the older values, so one more Final is needed.
    repoll: bool,
    tx_at: Option<Instant>,
    last_tx: Option<Instant>,
    detect_at: Option<Instant>,
    last_rx: Option<Instant>,
    xmit_seq: u32,
    rx_window: SeqWindow,
    rng: Rng,
    actions: VecDeque<Action>,
}

impl Session {
    /// A session in state Down. `local_discr` must be unique among the
    /// caller's sessions (§6.3); `seed` drives the jitter and the initial
    /// authentication sequence number, so the driver seeds it from the OS
    /// and a test from a constant. The first packet is due at once (unless
    /// passive): see [`Session::poll_action`].
    pub fn new(
        now: Instant,
        cfg: SessionConfig,
        local_discr: NonZeroU32,
        seed: u64,
    ) -> Result<Session, ConfigError> {
        cfg.timers.validate()?;
        let mut rng = Rng::new(seed);
        let xmit_seq = rng.next_u32();
        let desired = cfg.timers.desired_min_tx_us().max(SLOW_TX_US);
        let required = cfg.timers.required_min_rx_us();
        let mut s = Session {
            cfg,
            local_discr: local_discr.get(),
            state: State::Down,
            local_diag: Diag::NoDiagnostic,
            remote_state: State::Down,
            remote_discr: 0,
            remote_demand: false,
            // §6.8.1: initialised to 1 µs.
            remote_min_rx_us: 1,
            remote_desired_min_tx_us: 0,
            remote_detect_mult: 0,
            desired_min_tx_us: desired,
            required_min_rx_us: required,
            tx_desired_in_force_us: desired,
            rx_required_in_force_us: required,
            poll_active: false,
            repoll: false,
            tx_at: None,
            last_tx: None,
            detect_at: None,
            last_rx: None,
            xmit_seq,
            rx_window: SeqWindow::default(),
            rng,
            actions: VecDeque::new(),
        };
        s.schedule_tx(now);
        Ok(s)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    /// bfd.RemoteDiscr: 0 until the peer is heard, and again after a
    /// Detection Time of silence.
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Whether our packets carry P, waiting for the peer's F.
    pub fn poll_in_progress(&self) -> bool {
        self.poll_active
    }

    /// The deadline of a timer, if armed.
    pub fn timer(&self, kind: TimerKind) -> Option<Instant> {
        match kind {
            TimerKind::Tx => self.tx_at,
            TimerKind::Detect => self.detect_at,
        }
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The transmit interval before jitter (§6.8.7): the greater of the
    /// bfd.DesiredMinTxInterval in force and bfd.RemoteMinRxInterval.
    pub fn tx_interval(&self) -> Duration {
        Duration::from_micros(u64::from(
            self.tx_desired_in_force_us.max(self.remote_min_rx_us),
        ))
    }

    /// The Detection Time (§6.8.4): the peer's Detect Mult times the greater
    /// of our bfd.RequiredMinRxInterval in force and the peer's Desired Min
    /// TX. `None` before the peer has been heard.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_detect_mult != 0).then(|| {
            let us = self
                .rx_required_in_force_us
                .max(self.remote_desired_min_tx_us);
            Duration::from_micros(u64::from(us) * u64::from(self.remote_detect_mult))
        })
    }

    /// Demand mode is active on the remote system (§6.6): it asked for it
    /// and both ends are Up. We then stop periodic transmission as §6.8.7
    /// requires; we never ask for Demand mode ourselves.
    pub fn remote_demand_active(&self) -> bool {
        self.remote_demand && self.state == State::Up && self.remote_state == State::Up
    }

    /// A UDP payload received for this session (the driver has already
    /// applied the RFC 5881/5883 TTL and port rules). §6.8.6 in order.
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Discard> {
        let p = Packet::decode(bytes)?;
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discr {
            return Err(Discard::WrongDiscriminator(p.your_discriminator));
        }
        match &self.cfg.auth {
            None if p.auth.is_some() => return Err(AuthError::Unexpected.into()),
            None => {}
            Some(auth) => {
                // bfd.AuthSeqKnown falls to 0 after twice the Detection Time
                // without a packet (§6.8.1).
                if let (Some(last), Some(dt)) = (self.last_rx, self.detection_time())
                    && now >= last + 2 * dt
                {
                    self.rx_window = SeqWindow::default();
                }
                let wire = &bytes[..usize::from(bytes[3])];
                auth.verify(wire, p.auth.as_ref(), p.detect_mult, &mut self.rx_window)?;
            }
        }

        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_demand = p.demand;
        self.remote_min_rx_us = p.required_min_rx_us;
        self.remote_desired_min_tx_us = p.desired_min_tx_us;
        self.remote_detect_mult = p.detect_mult;
        if p.fin {
            self.final_received();
        }
        if self.state == State::AdminDown {
            // Discarded after the bookkeeping above (§6.8.6): no state
            // change, no detection, no Final.
            self.schedule_tx(now);
            return Ok(());
        }

        match (self.state, p.state) {
            (State::Init | State::Up, State::AdminDown) => {
                let signal = if self.state == State::Up {
                    ClientSignal::PeerAdminDown
                } else {
                    ClientSignal::Nothing
                };
                self.change(State::Down, Diag::NeighborSignaledSessionDown, signal);
            }
            (State::Down, State::Down) => {
                self.change(State::Init, self.local_diag, ClientSignal::Nothing)
            }
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.change(State::Up, Diag::NoDiagnostic, ClientSignal::Up)
            }
            (State::Up, State::Down) => self.change(
                State::Down,
                Diag::NeighborSignaledSessionDown,
                ClientSignal::Failed,
            ),
            _ => {}
        }

        self.last_rx = Some(now);
        if let Some(dt) = self.detection_time() {
            self.arm(TimerKind::Detect, now + dt);
        }
        if p.poll {
            // §6.8.7: at once, regardless of the transmit timer.
            self.send(true);
        }
        self.schedule_tx(now);
        Ok(())
    }

    /// A timer the session armed has fired. Early or stale calls re-arm or
    /// do nothing.
    pub fn handle_timeout(&mut self, now: Instant, kind: TimerKind) {
        let Some(at) = self.timer(kind) else {
            return;
        };
        if now < at {
            self.actions.push_back(Action::ArmTimer { kind, at });
            return;
        }
        match kind {
            TimerKind::Tx => {
                self.tx_at = None;
                self.send(false);
                self.last_tx = Some(now);
                self.schedule_tx(now);
            }
            TimerKind::Detect => {
                self.detect_at = None;
                // §6.8.1: bfd.RemoteDiscr is reset after a Detection Time of
                // silence, in every state.
                self.remote_discr = 0;
                if matches!(self.state, State::Init | State::Up) {
                    let signal = if self.state == State::Up {
                        ClientSignal::Failed
                    } else {
                        ClientSignal::Nothing
                    };
                    self.change(State::Down, Diag::ControlDetectionTimeExpired, signal);
                }
                self.schedule_tx(now);
            }
        }
    }

    /// Administratively down (§6.8.16): the peer is told with AdminDown
    /// packets, which keep going out at the slow rate.
    pub fn admin_down(&mut self, now: Instant) {
        if self.state == State::AdminDown {
            return;
        }
        let signal = if self.state == State::Up {
            ClientSignal::LocalAdminDown
        } else {
            ClientSignal::Nothing
        };
        self.change(State::AdminDown, Diag::AdministrativelyDown, signal);
        self.schedule_tx(now);
    }

    /// Leave AdminDown for Down; the handshake starts again.
    pub fn admin_up(&mut self, now: Instant) {
        if self.state != State::AdminDown {
            return;
        }
        self.change(State::Down, Diag::NoDiagnostic, ClientSignal::Nothing);
        self.schedule_tx(now);
    }

    /// New timer parameters. A change of either interval starts a Poll
    /// Sequence (§6.8.3); a Detect Mult change goes out with the next packet
    /// (§6.8.12).
    pub fn set_timers(&mut self, now: Instant, timers: Timers) -> Result<(), ConfigError> {
        timers.validate()?;
        self.cfg.timers = timers;
        self.update_advertised();
        self.schedule_tx(now);
        Ok(())
    }

    fn change(&mut self, to: State, diag: Diag, signal: ClientSignal) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        self.actions.push_back(Action::StateChanged {
            from,
            to,
            diag,
            signal,
        });
        if to == State::AdminDown && self.detect_at.take().is_some() {
            self.actions
                .push_back(Action::CancelTimer(TimerKind::Detect));
        }
        // Entering or leaving Up moves the 1 s floor of §6.8.3.
        self.update_advertised();
    }

    /// Recomputes what our packets advertise; a change starts a Poll
    /// Sequence, and while Up only the safe direction applies at once
    /// (§6.8.3): a faster transmit rate, a longer Detection Time.
    fn update_advertised(&mut self) {
        let mut desired = self.cfg.timers.desired_min_tx_us();
        if self.state != State::Up {
            desired = desired.max(SLOW_TX_US);
        }
        let required = self.cfg.timers.required_min_rx_us();
        if desired == self.desired_min_tx_us && required == self.required_min_rx_us {
            return;
        }
        let up = self.state == State::Up;
        self.tx_desired_in_force_us = if up {
            self.tx_desired_in_force_us.min(desired)
        } else {
            desired
        };
        self.rx_required_in_force_us = if up {
            self.rx_required_in_force_us.max(required)
        } else {
            required
        };
        self.desired_min_tx_us = desired;
        self.required_min_rx_us = required;
        if self.poll_active {
            self.repoll = true;
        } else {
            self.poll_active = true;
        }
        self.rearm_detect();
    }

    /// The peer's F ends our Poll Sequence (§6.5): the advertised values now
    /// apply in full.
    fn final_received(&mut self) {
        if !self.poll_active {
            return;
        }
        if self.repoll {
            self.repoll = false;
            return;
        }
        self.poll_active = false;
        self.tx_desired_in_force_us = self.desired_min_tx_us;
        self.rx_required_in_force_us = self.required_min_rx_us;
        self.rearm_detect();
    }

    /// After a change of the Detection Time, the running timer counts from
    /// the last packet with the new value.
    fn rearm_detect(&mut self) {
        if let (Some(at), Some(last), Some(dt)) =
            (self.detect_at, self.last_rx, self.detection_time())
            && last + dt != at
        {
            self.arm(TimerKind::Detect, last + dt);
        }
    }

    fn periodic_allowed(&self) -> bool {
        // §6.8.7: a passive system waits to hear the peer; a zero Required
        // Min RX asks us to be silent; Demand mode on the remote system
        // silences us except for a Poll Sequence of ours.
        !(self.cfg.passive && self.remote_discr == 0)
            && self.remote_min_rx_us != 0
            && (!self.remote_demand_active() || self.poll_active)
    }

    /// Arms, moves earlier or cancels the transmit timer after anything that
    /// may change the interval or the right to transmit. A shorter interval
    /// applies at once (§6.8.7: a reduced bfd.RemoteMinRxInterval is honoured
    /// immediately); a longer one from the next packet on.
    fn schedule_tx(&mut self, now: Instant) {
        if !self.periodic_allowed() {
            if self.tx_at.take().is_some() {
                self.actions.push_back(Action::CancelTimer(TimerKind::Tx));
            }
            return;
        }
        let interval = self.tx_interval();
        let Some(last) = self.last_tx else {
            if self.tx_at.is_none() {
                self.arm(TimerKind::Tx, now);
            }
            return;
        };
        if self.tx_at.is_some_and(|at| at <= last + interval) {
            return;
        }
        let random = self.rng.next_u32();
        let at = (last + jittered(interval, self.cfg.timers.detect_mult, random)).max(now);
        self.arm(TimerKind::Tx, at);
    }

    fn arm(&mut self, kind: TimerKind, at: Instant) {
        match kind {
            TimerKind::Tx => self.tx_at = Some(at),
            TimerKind::Detect => self.detect_at = Some(at),
        }
        self.actions.push_back(Action::ArmTimer { kind, at });
    }

    /// One Control packet with our variables (§6.8.7). `fin` answers a Poll;
    /// it never carries P as well.
    fn send(&mut self, fin: bool) {
        if self.cfg.passive && self.remote_discr == 0 {
            return;
        }
        let auth = self.cfg.auth.as_ref().map(|a| a.section(self.xmit_seq));
        let packet = Packet {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll_active && !fin,
            fin,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.cfg.timers.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx_us: self.desired_min_tx_us,
            required_min_rx_us: self.required_min_rx_us,
            // No Echo function.
            required_min_echo_rx_us: 0,
            auth,
        };
        let mut bytes = packet.encode();
        if let Some(a) = &self.cfg.auth {
            a.sign(&mut bytes);
            // Meticulous needs a new number per packet; Keyed SHA1 may
            // advance, and advancing per packet keeps one rule for both.
            self.xmit_seq = self.xmit_seq.wrapping_add(1);
        }
        self.actions.push_back(Action::Send(bytes));
    }
}
