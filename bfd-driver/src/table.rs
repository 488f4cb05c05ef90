//! The driver's sessions: demultiplexing received packets to them (RFC 5880
//! §6.3, RFC 5881 §3–§5, RFC 5883 §5), carrying out what each sans-IO
//! session asks (send, timers, state changes) and the timer heap.
//!
//! Everything here is synchronous and takes `now`; the task in
//! [`crate::driver`] owns the sockets' readiness and the clock.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use tabby_bfd::{Action, ClientSignal, Diag, Discard, Packet, Session, State, TimerKind, Timers};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::config::{SessionSpec, is_link_local};
use crate::handle::{BfdError, BfdEvent, SessionId};
use crate::stats::{DriverStats, DropReason, MalformedKind, SessionCounters, SessionInfo};
use crate::transport::{Datagram, HopMode, SendSockets, TTL};

/// A removed session keeps sending AdminDown (RFC 5880 §6.8.16) until it
/// has sent this many packets...
const RETIRE_PACKETS: u8 = 2;
/// ...or for this long at most.
const RETIRE_LIMIT: Duration = Duration::from_secs(3);

/// The P and F bits of the second octet (RFC 5880 §4.1).
const POLL_BIT: u8 = 0x20;
const FINAL_BIT: u8 = 0x10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Tx,
    Detect,
    Retire,
}

impl From<TimerKind> for Slot {
    fn from(k: TimerKind) -> Slot {
        match k {
            TimerKind::Tx => Slot::Tx,
            TimerKind::Detect => Slot::Detect,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Retiring {
    until: Instant,
    packets_left: u8,
}

#[derive(Debug)]
struct Entry {
    spec: SessionSpec,
    hop: HopMode,
    ifindex: Option<u32>,
    session: Session,
    tx_at: Option<Instant>,
    detect_at: Option<Instant>,
    admin_down: bool,
    up_since: Option<Instant>,
    flaps: u64,
    remote_detect_mult: Option<u8>,
    remote_diag: Option<Diag>,
    counters: SessionCounters,
    /// The last send failed: the next failure is not worth a warning.
    send_failing: bool,
    retiring: Option<Retiring>,
}

impl Entry {
    /// Whether a packet that arrived at `destination` on `ifindex` can be
    /// this session's (its local address and interface, when set).
    fn accepts_local(&self, destination: Option<IpAddr>, ifindex: Option<u32>) -> bool {
        self.spec.local.is_none_or(|l| destination == Some(l))
            && self.ifindex.is_none_or(|i| ifindex == Some(i))
    }

    fn destination(&self) -> SocketAddr {
        let port = self.hop.port();
        match self.spec.peer {
            IpAddr::V6(a) if is_link_local(self.spec.peer) => {
                SocketAddr::V6(SocketAddrV6::new(a, port, 0, self.ifindex.unwrap_or(0)))
            }
            a => SocketAddr::new(a, port),
        }
    }

    fn key_matches(&self, other: &SessionSpec, ifindex: Option<u32>) -> bool {
        self.spec.peer == other.peer
            && self.spec.local == other.local
            && self.spec.multihop == other.multihop
            && self.ifindex == ifindex
    }
}

/// A source of discriminators and seeds: SipHash keyed from the OS by
/// `RandomState`, over a counter.
#[derive(Debug)]
struct Entropy {
    keys: RandomState,
    counter: u64,
}

impl Entropy {
    fn next_u64(&mut self) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write_u64(self.counter);
        self.counter = self.counter.wrapping_add(1);
        h.finish()
    }
}

/// Every session of one driver and what they share.
#[derive(Debug)]
pub(crate) struct SessionTable {
    entries: HashMap<SessionId, Entry>,
    by_discriminator: HashMap<u32, SessionId>,
    by_peer: HashMap<(HopMode, IpAddr), Vec<SessionId>>,
    timers: BinaryHeap<Reverse<(Instant, SessionId, Slot)>>,
    next_id: u64,
    entropy: Entropy,
    send: SendSockets,
    events: broadcast::Sender<(SessionId, BfdEvent)>,
    stats: DriverStats,
}

impl SessionTable {
    pub fn new(
        send: SendSockets,
        events: broadcast::Sender<(SessionId, BfdEvent)>,
    ) -> SessionTable {
        let stats = DriverStats {
            source_port: send.port(),
            ..DriverStats::default()
        };
        SessionTable {
            entries: HashMap::new(),
            by_discriminator: HashMap::new(),
            by_peer: HashMap::new(),
            timers: BinaryHeap::new(),
            next_id: 1,
            entropy: Entropy {
                keys: RandomState::new(),
                counter: 0,
            },
            send,
            events,
            stats,
        }
    }

    pub fn random_u32(&mut self) -> u32 {
        self.entropy.next_u64() as u32
    }

    pub fn family_enabled(&self, peer: IpAddr) -> bool {
        self.send.supports(peer)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The earliest timer; possibly one that no longer applies, which costs
    /// one spurious wake-up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    // ----- commands -----

    /// `ifindex` is the index of `spec.interface`, resolved by the caller.
    pub fn add(
        &mut self,
        now: Instant,
        spec: SessionSpec,
        ifindex: Option<u32>,
    ) -> Result<SessionId, BfdError> {
        spec.validate()?;
        if let Some((id, _)) = self
            .entries
            .iter()
            .find(|(_, e)| e.retiring.is_none() && e.key_matches(&spec, ifindex))
        {
            return Err(BfdError::Duplicate(*id));
        }
        // RFC 5880 §6.8.1: unique and nonzero; random, so that a restarted
        // driver does not reuse the discriminators its peers remember.
        let discr = loop {
            if let Some(d) = NonZeroU32::new(self.random_u32())
                && !self.by_discriminator.contains_key(&d.get())
            {
                break d;
            }
        };
        let seed = self.entropy.next_u64();
        let session = Session::new(now, spec.session_config(), discr, seed)?;
        let id = SessionId(self.next_id);
        self.next_id += 1;
        let hop = spec.hop_mode();
        info!(session = %id, peer = %spec.peer, local = ?spec.local, %hop,
              interface = ?spec.interface, discriminator = discr.get(),
              "BFD session added");
        self.by_discriminator.insert(discr.get(), id);
        self.by_peer.entry((hop, spec.peer)).or_default().push(id);
        self.entries.insert(
            id,
            Entry {
                spec,
                hop,
                ifindex,
                session,
                tx_at: None,
                detect_at: None,
                admin_down: false,
                up_since: None,
                flaps: 0,
                remote_detect_mult: None,
                remote_diag: None,
                counters: SessionCounters::default(),
                send_failing: false,
                retiring: None,
            },
        );
        self.run_actions(now, id);
        Ok(id)
    }

    fn live(&mut self, id: SessionId) -> Result<&mut Entry, BfdError> {
        self.entries
            .get_mut(&id)
            .filter(|e| e.retiring.is_none())
            .ok_or(BfdError::UnknownSession(id))
    }

    /// Removes a session from the clients' view at once; it keeps telling
    /// the peer AdminDown for a while (see [`RETIRE_PACKETS`]).
    pub fn remove(&mut self, now: Instant, id: SessionId) -> Result<(), BfdError> {
        let e = self.live(id)?;
        if e.counters.packets_out == 0 {
            // The peer never heard of it.
            self.forget(id);
            return Ok(());
        }
        let until = now + RETIRE_LIMIT;
        e.retiring = Some(Retiring {
            until,
            packets_left: RETIRE_PACKETS,
        });
        e.session.admin_down(now);
        info!(session = %id, peer = %e.spec.peer, "BFD session removed; telling the peer AdminDown");
        self.timers.push(Reverse((until, id, Slot::Retire)));
        self.run_actions(now, id);
        Ok(())
    }

    /// Every session is removed (the driver is stopping).
    pub fn remove_all(&mut self, now: Instant) {
        let ids: Vec<SessionId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.retiring.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let _ = self.remove(now, id);
        }
    }

    pub fn set_admin_down(
        &mut self,
        now: Instant,
        id: SessionId,
        down: bool,
    ) -> Result<(), BfdError> {
        let e = self.live(id)?;
        e.admin_down = down;
        if down {
            e.session.admin_down(now);
        } else {
            e.session.admin_up(now);
        }
        self.run_actions(now, id);
        Ok(())
    }

    pub fn update_timers(
        &mut self,
        now: Instant,
        id: SessionId,
        timers: Timers,
    ) -> Result<(), BfdError> {
        let e = self.live(id)?;
        e.session.set_timers(now, timers)?;
        e.spec.timers = timers;
        info!(session = %id, peer = %e.spec.peer, ?timers, "BFD timers changed");
        self.run_actions(now, id);
        Ok(())
    }

    fn forget(&mut self, id: SessionId) {
        let Some(e) = self.entries.remove(&id) else {
            return;
        };
        self.by_discriminator
            .remove(&e.session.local_discriminator());
        let key = (e.hop, e.spec.peer);
        if let Some(v) = self.by_peer.get_mut(&key) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.by_peer.remove(&key);
            }
        }
        debug!(session = %id, "BFD session forgotten");
    }

    // ----- snapshots -----

    pub fn info(&self, now: Instant, id: SessionId) -> Result<SessionInfo, BfdError> {
        self.entries
            .get(&id)
            .filter(|e| e.retiring.is_none())
            .map(|e| snapshot(now, id, e))
            .ok_or(BfdError::UnknownSession(id))
    }

    pub fn infos(&self, now: Instant) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = self
            .entries
            .iter()
            .filter(|(_, e)| e.retiring.is_none())
            .map(|(id, e)| snapshot(now, *id, e))
            .collect();
        v.sort_by_key(|i| i.id);
        v
    }

    pub fn stats(&self) -> DriverStats {
        let mut s = self.stats.clone();
        s.sessions = self
            .entries
            .values()
            .filter(|e| e.retiring.is_none())
            .count();
        s
    }

    // ----- reception -----

    /// One datagram from the socket of mode `hop`; `bytes` is its payload.
    pub fn receive(&mut self, now: Instant, hop: HopMode, d: &Datagram, bytes: &[u8]) {
        self.stats.packets_in += 1;
        if let Err(reason) = self.demultiplex(now, hop, d, bytes) {
            *self.stats.dropped.entry(reason).or_insert(0) += 1;
            debug!(%reason, source = %d.source, destination = ?d.destination,
                   ifindex = ?d.ifindex, ttl = ?d.ttl, len = d.len, "BFD packet dropped");
        }
    }

    fn demultiplex(
        &mut self,
        now: Instant,
        hop: HopMode,
        d: &Datagram,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let ttl = d.ttl.ok_or(DropReason::MissingControlData)?;
        // RFC 5881 §5: before anything else, so that nothing off-link can
        // even reach the decoder of a single-hop session.
        if hop == HopMode::SingleHop && ttl != TTL {
            return Err(DropReason::BadTtl);
        }
        let p =
            Packet::decode(bytes).map_err(|e| DropReason::Malformed(MalformedKind::from(&e)))?;
        let source = d.source.ip();
        let id = if p.your_discriminator != 0 {
            // RFC 5880 §6.3: Your Discriminator alone selects the session...
            let id = *self
                .by_discriminator
                .get(&p.your_discriminator)
                .ok_or(DropReason::UnknownDiscriminator)?;
            let e = &self.entries[&id];
            // ...and we still insist that it comes the way the session
            // runs, so a guessed discriminator from elsewhere is refused.
            if e.hop != hop {
                return Err(DropReason::HopModeMismatch);
            }
            if e.spec.peer != source {
                return Err(DropReason::PeerAddressMismatch);
            }
            if !e.accepts_local(d.destination, d.ifindex) {
                return Err(DropReason::LocalMismatch);
            }
            id
        } else {
            // The peer's first packets: source, destination and (single-
            // hop) interface (RFC 5881 §3, RFC 5883 §3).
            self.by_peer
                .get(&(hop, source))
                .into_iter()
                .flatten()
                .copied()
                .find(|id| {
                    let e = &self.entries[id];
                    e.retiring.is_none() && e.accepts_local(d.destination, d.ifindex)
                })
                .ok_or(DropReason::NoSessionForAddress)?
        };
        let Some(e) = self.entries.get_mut(&id) else {
            return Err(DropReason::UnknownDiscriminator);
        };
        if ttl < e.spec.required_ttl() {
            e.counters.discarded += 1;
            return Err(DropReason::BadTtl);
        }
        if let Err(discard) = e.session.handle_packet(now, bytes) {
            e.counters.discarded += 1;
            debug!(session = %id, %discard, "BFD packet discarded by its session");
            return Err(match discard {
                Discard::Auth(_) => DropReason::Authentication,
                Discard::Malformed(err) => DropReason::Malformed(MalformedKind::from(&err)),
                Discard::WrongDiscriminator(_) => DropReason::UnknownDiscriminator,
            });
        }
        e.counters.packets_in += 1;
        e.counters.polls_in += u64::from(p.poll);
        e.counters.finals_in += u64::from(p.fin);
        e.remote_detect_mult = Some(p.detect_mult);
        e.remote_diag = Some(p.diag);
        self.run_actions(now, id);
        Ok(())
    }

    // ----- timers -----

    /// Fires every timer due at `now`.
    pub fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, id, slot))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            let kind = match slot {
                Slot::Tx if e.tx_at == Some(at) => {
                    e.tx_at = None;
                    TimerKind::Tx
                }
                Slot::Detect if e.detect_at == Some(at) => {
                    e.detect_at = None;
                    TimerKind::Detect
                }
                Slot::Retire if e.retiring.is_some_and(|r| r.until == at) => {
                    self.forget(id);
                    continue;
                }
                // Moved or cancelled since.
                _ => continue,
            };
            e.session.handle_timeout(now, kind);
            self.run_actions(now, id);
        }
    }

    // ----- the session's actions -----

    fn run_actions(&mut self, now: Instant, id: SessionId) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        while let Some(action) = e.session.poll_action() {
            match action {
                Action::Send(bytes) => {
                    let flags = bytes.get(1).copied().unwrap_or(0);
                    match self
                        .send
                        .send(&bytes, e.destination(), e.spec.local, e.ifindex)
                    {
                        Ok(()) => {
                            self.stats.packets_out += 1;
                            e.counters.packets_out += 1;
                            e.counters.polls_out += u64::from(flags & POLL_BIT != 0);
                            e.counters.finals_out += u64::from(flags & FINAL_BIT != 0);
                            e.send_failing = false;
                        }
                        Err(err) => {
                            self.stats.send_errors += 1;
                            if !e.send_failing {
                                warn!(session = %id, peer = %e.spec.peer, error = %err,
                                      "cannot send BFD packet");
                            } else {
                                debug!(session = %id, error = %err, "cannot send BFD packet");
                            }
                            e.send_failing = true;
                        }
                    }
                    if let Some(r) = e.retiring.as_mut() {
                        r.packets_left = r.packets_left.saturating_sub(1);
                    }
                }
                Action::ArmTimer { kind, at } => {
                    match kind {
                        TimerKind::Tx => e.tx_at = Some(at),
                        TimerKind::Detect => e.detect_at = Some(at),
                    }
                    self.timers.push(Reverse((at, id, Slot::from(kind))));
                }
                Action::CancelTimer(kind) => match kind {
                    TimerKind::Tx => e.tx_at = None,
                    TimerKind::Detect => e.detect_at = None,
                },
                Action::StateChanged {
                    from,
                    to,
                    diag,
                    signal,
                } => state_changed(now, id, e, from, to, diag, signal, &self.events),
            }
        }
        if e.retiring.is_some_and(|r| r.packets_left == 0) {
            self.forget(id);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn state_changed(
    now: Instant,
    id: SessionId,
    e: &mut Entry,
    from: State,
    to: State,
    diag: Diag,
    signal: ClientSignal,
    events: &broadcast::Sender<(SessionId, BfdEvent)>,
) {
    if from == State::Up {
        e.flaps += 1;
        e.up_since = None;
    }
    if to == State::Up {
        e.up_since = Some(now);
    }
    let event = match signal {
        ClientSignal::Up => Some(BfdEvent::Up),
        ClientSignal::Failed => Some(BfdEvent::Down { diag }),
        ClientSignal::PeerAdminDown => Some(BfdEvent::AdminDown),
        ClientSignal::LocalAdminDown => Some(BfdEvent::LocalAdminDown),
        ClientSignal::Nothing => None,
    };
    let peer = e.spec.peer;
    if signal.is_failure() {
        warn!(session = %id, %peer, %from, %to, %diag, "BFD session down");
    } else {
        info!(session = %id, %peer, %from, %to, %diag, "BFD session state changed");
    }
    if let Some(ev) = event
        && e.retiring.is_none()
    {
        // No subscriber is not an error: events are for whoever listens.
        let _ = events.send((id, ev));
    }
}

fn snapshot(now: Instant, id: SessionId, e: &Entry) -> SessionInfo {
    let s = &e.session;
    let detection_time = s.detection_time();
    SessionInfo {
        id,
        peer: e.spec.peer,
        local: e.spec.local,
        multihop: e.spec.multihop,
        interface: e.spec.interface.clone(),
        timers: e.spec.timers,
        state: s.state(),
        remote_state: s.remote_state(),
        admin_down: e.admin_down,
        local_discriminator: s.local_discriminator(),
        remote_discriminator: s.remote_discriminator(),
        tx_interval: s.tx_interval(),
        rx_interval: detection_time
            .zip(e.remote_detect_mult)
            .map(|(dt, m)| dt / u32::from(m)),
        detect_mult: e.spec.timers.detect_mult,
        remote_detect_mult: e.remote_detect_mult,
        detection_time,
        local_diag: s.local_diag(),
        remote_diag: e.remote_diag,
        poll_in_progress: s.poll_in_progress(),
        uptime: e.up_since.map(|t| now.saturating_duration_since(t)),
        flaps: e.flaps,
        counters: e.counters,
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
