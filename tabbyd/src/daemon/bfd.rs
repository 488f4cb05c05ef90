//! BFD for the peers that ask for it: what a BGP client does with a BFD
//! session (RFC 5882), closing the BGP session on BFD Down (RFC 9384, with
//! RFC 8538's Hard Reset unless graceful restart is wanted), holding a BGP
//! session until BFD is Up, and damping a flapping one.
//!
//! The BFD sessions themselves run in `tabby-bfd-driver`, reached through
//! [`BfdSessions`]; its events come back through [`Daemon::bfd_event`].

use tabby_bfd_driver::{BfdEvent, Diag, SessionSpec as BfdSpec, Timers};
use tabby_bgp::notification::Cease;

use super::damping::Damping;
use super::*;

/// Where the daemon's wishes for BFD sessions go: the driver in tabbyd, a
/// recorder in tests. Keyed by peer address, like the peer table.
pub trait BfdSessions: Send {
    /// Runs, or reconfigures, the BFD session to `peer`; `None` ends it.
    fn set(&mut self, peer: IpAddr, spec: Option<BfdSpec>);
    /// Ends every session, telling each peer AdminDown (a planned stop is
    /// not a failure: peers keep their BGP sessions' graceful restart).
    fn shutdown(&mut self) {}
}

/// For a daemon started without BFD: every wish is dropped.
#[derive(Debug, Default)]
pub struct NoBfd;

impl BfdSessions for NoBfd {
    fn set(&mut self, _peer: IpAddr, _spec: Option<BfdSpec>) {}
}

/// What the driver reports about one peer's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BfdNotice {
    Event(BfdEvent),
    /// The session cannot run (the driver could not start, or refused it):
    /// the BGP session runs without BFD, as RFC 5882 §3.2 says a client of
    /// an absent BFD session does.
    Unavailable(String),
}

/// A BFD session as the peer table sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BfdPhase {
    /// Configured, not Up yet.
    Starting,
    Up,
    /// Down after a failure.
    Down,
    /// The peer turned its side AdminDown: not a failure (RFC 5882 §3.2);
    /// BGP runs on its own timers.
    PeerAdminDown,
    /// Cannot run; the reason.
    Unavailable(String),
}

impl BfdPhase {
    pub fn name(&self) -> &'static str {
        match self {
            BfdPhase::Starting => "starting",
            BfdPhase::Up => "up",
            BfdPhase::Down => "down",
            BfdPhase::PeerAdminDown => "admin-down",
            BfdPhase::Unavailable(_) => "unavailable",
        }
    }
}

/// One peer's BFD, beside its BGP session's [`SessionTrack`].
#[derive(Debug, Clone)]
pub(super) struct BfdTrack {
    pub settings: topo::BfdSettings,
    pub phase: BfdPhase,
    /// When `phase` was entered.
    pub since: Instant,
    /// The diagnostic of the last failure.
    pub last_diag: Option<Diag>,
    /// Failures (Up to Down) seen.
    pub failures: u64,
    /// When the last failure closed the BGP session.
    pub last_teardown: Option<Instant>,
    pub damping: Damping,
    /// The BGP session is held down (waiting for Up, or damped).
    pub held: bool,
}

impl BfdTrack {
    fn new(settings: topo::BfdSettings, now: Instant) -> Self {
        BfdTrack {
            settings,
            phase: BfdPhase::Starting,
            since: now,
            last_diag: None,
            failures: 0,
            last_teardown: None,
            damping: Damping::default(),
            held: false,
        }
    }

    /// Whether the BGP session may run at `now`: not damped, and not
    /// waiting for BFD (when asked to wait, a peer that turned BFD
    /// AdminDown or a session that cannot run counts as no BFD at all).
    fn bgp_may_run(&mut self, now: Instant) -> bool {
        if self.damping.suppressed(now) {
            return false;
        }
        !self.settings.wait_for_up
            || matches!(
                self.phase,
                BfdPhase::Up | BfdPhase::PeerAdminDown | BfdPhase::Unavailable(_)
            )
    }

    /// Why the BGP session is held, for the info column.
    pub fn hold_reason(&self) -> Option<String> {
        if !self.held {
            return None;
        }
        Some(if self.damping.is_suppressed() {
            "held down: BFD is flapping (damped)".to_owned()
        } else {
            "held down: waiting for BFD Up".to_owned()
        })
    }
}

/// The driver's session for a topology peer's settings: from the address
/// the BGP session uses (the node's of the family, or `sourceAddress`).
pub(super) fn bfd_spec(
    state: &NodeState,
    p: &topo::Peer,
    s: &topo::BfdSettings,
) -> Result<BfdSpec, String> {
    let local = Daemon::session_spec(state, p).local_address;
    let mut spec = if s.multihop {
        let local = local.ok_or_else(|| {
            format!(
                "multihop BFD to {} needs a local address (RFC 5883 §3) and node {} has none of that family",
                p.key.address, state.node_name
            )
        })?;
        let mut spec = BfdSpec::multihop(p.key.address, local);
        spec.min_ttl = s.min_ttl;
        spec
    } else {
        BfdSpec::single_hop(p.key.address, local, None)
    };
    spec.timers = Timers {
        desired_min_tx: s.min_tx,
        required_min_rx: s.min_rx,
        detect_mult: s.multiplier,
    };
    spec.passive = s.passive;
    Ok(spec)
}

impl Daemon {
    /// Starts BFD for a newly installed topology peer when it asks for it;
    /// returns whether its BGP session must wait (not be started yet).
    pub(super) fn start_bfd(&mut self, key: topo::PeerKey, now: Instant) -> bool {
        let Some(state) = self.state.as_ref() else {
            return false;
        };
        let Some(slot) = self.peers.get_mut(&key) else {
            return false;
        };
        let PeerOrigin::Topology(p) = &slot.origin else {
            return false;
        };
        let Some(settings) = p.bfd else {
            return false;
        };
        let mut track = BfdTrack::new(settings, now);
        match bfd_spec(state, p, &settings) {
            Ok(spec) => self.bfd.set(key.address, Some(spec)),
            Err(why) => {
                warn!(peer = %key, %why, "BFD cannot run for this peer; its BGP session runs without it");
                track.phase = BfdPhase::Unavailable(why);
            }
        }
        track.held = !track.bgp_may_run(now);
        let held = track.held;
        if held {
            track.since = now;
            slot.track.info = track.hold_reason().unwrap_or_default();
            info!(peer = %key, "BGP session waits for BFD Up");
        }
        slot.bfd = Some(track);
        held
    }

    /// A topology peer's BFD settings changed (no BGP reset): the driver
    /// renegotiates timers with a Poll Sequence, or restarts the session
    /// for other changes; BFD turned off releases a held BGP session.
    pub(super) fn bfd_changed(&mut self, key: topo::PeerKey, now: Instant) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let PeerOrigin::Topology(p) = &slot.origin else {
            return;
        };
        match (p.bfd, slot.bfd.as_mut()) {
            (None, None) => {}
            (None, Some(_)) => {
                info!(peer = %key, "BFD turned off for this peer");
                self.bfd.set(key.address, None);
                let was_held = slot.bfd.take().is_some_and(|t| t.held);
                if was_held {
                    slot.session.command(PeerCommand::Start);
                    slot.track.info.clear();
                }
            }
            (Some(settings), track) => {
                let spec = bfd_spec(state, p, &settings);
                let track = match track {
                    Some(t) => t,
                    None => slot.bfd.insert(BfdTrack::new(settings, now)),
                };
                track.settings = settings;
                match spec {
                    Ok(spec) => {
                        info!(peer = %key, ?settings, "BFD settings changed");
                        if matches!(track.phase, BfdPhase::Unavailable(_)) {
                            track.phase = BfdPhase::Starting;
                            track.since = now;
                        }
                        self.bfd.set(key.address, Some(spec));
                    }
                    Err(why) => {
                        warn!(peer = %key, %why, "BFD cannot run for this peer; its BGP session runs without it");
                        self.bfd.set(key.address, None);
                        track.phase = BfdPhase::Unavailable(why);
                    }
                }
                self.reconcile_hold(key, now);
            }
        }
    }

    /// Ends a removed peer's BFD session, unless another session to the
    /// address (a speaker on another port) still uses it.
    pub(super) fn stop_bfd(&mut self, key: topo::PeerKey, had_bfd: bool) {
        let shared = self
            .peers
            .iter()
            .any(|(k, s)| k.address == key.address && s.bfd.is_some());
        if had_bfd && !shared {
            self.bfd.set(key.address, None);
        }
    }

    /// What the BFD driver reports about the BFD session to `peer`: it
    /// concerns every BGP session to that address (one per port).
    pub fn bfd_event(&mut self, peer: IpAddr, notice: BfdNotice, now: Instant) {
        let keys: Vec<topo::PeerKey> = self
            .peers
            .keys()
            .filter(|k| k.address == peer)
            .copied()
            .collect();
        // One BFD session: its transitions are counted once.
        for (i, key) in keys.into_iter().enumerate() {
            self.bfd_event_for(key, notice.clone(), i == 0, now);
        }
    }

    fn bfd_event_for(&mut self, key: topo::PeerKey, notice: BfdNotice, count: bool, now: Instant) {
        let peer = key.address;
        let Some(slot) = self.peers.get_mut(&key) else {
            return; // a late event for a removed peer
        };
        let Some(track) = slot.bfd.as_mut() else {
            return;
        };
        // A state told again (after the link re-read the driver) is no news.
        let repeat = match &notice {
            BfdNotice::Event(BfdEvent::Up) => track.phase == BfdPhase::Up,
            BfdNotice::Event(BfdEvent::Down { .. }) => track.phase == BfdPhase::Down,
            BfdNotice::Event(BfdEvent::AdminDown) => track.phase == BfdPhase::PeerAdminDown,
            _ => false,
        };
        if repeat {
            return;
        }
        let transition = |to: &str| {
            if count {
                let label = crate::metrics::BfdTransitionLabel {
                    peer: peer.to_string(),
                    to: to.to_owned(),
                };
                self.metrics.bfd_transitions.get_or_create(&label).inc();
            }
        };
        match notice {
            BfdNotice::Event(BfdEvent::Up) => {
                info!(%peer, "BFD session up");
                track.phase = BfdPhase::Up;
                track.since = now;
                transition("up");
            }
            BfdNotice::Event(BfdEvent::Down { diag }) => {
                track.phase = BfdPhase::Down;
                track.since = now;
                track.last_diag = Some(diag);
                track.failures += 1;
                let damped = track.damping.failure(now);
                transition("down");
                let graceful = track.settings.graceful;
                let bgp_up = !matches!(
                    slot.track.state,
                    State::Idle | State::Connect | State::Active
                );
                warn!(%peer, %diag, graceful, damped, bgp_state = %slot.track.state, "BFD session down: closing the BGP session");
                if bgp_up {
                    track.last_teardown = Some(now);
                    slot.bfd_teardown = Some((diag, now));
                    // RFC 9384: Cease / BFD Down. Unless graceful restart
                    // is wanted, wrapped in a Hard Reset when the N bit was
                    // negotiated (RFC 8538 §3), so neither side keeps the
                    // other's routes as stale across a failed path.
                    let cease = if !graceful && slot.gr_notification {
                        Cease::BfdDown.hard_reset()
                    } else {
                        Cease::BfdDown
                    };
                    slot.session.command(PeerCommand::Cease(cease.into()));
                }
            }
            BfdNotice::Event(BfdEvent::AdminDown) => {
                info!(%peer, "BFD session AdminDown at the peer: not a failure, BGP keeps running on its own timers");
                track.phase = BfdPhase::PeerAdminDown;
                track.since = now;
                transition("admin_down");
            }
            BfdNotice::Event(BfdEvent::LocalAdminDown) => {
                debug!(%peer, "BFD session put AdminDown here");
            }
            BfdNotice::Unavailable(why) => {
                warn!(%peer, %why, "BFD cannot run for this peer; its BGP session runs without it");
                track.phase = BfdPhase::Unavailable(why);
                track.since = now;
            }
        }
        self.reconcile_hold(key, now);
    }

    /// Holds the BGP session down, or lets it go, as BFD and damping say.
    fn reconcile_hold(&mut self, peer: topo::PeerKey, now: Instant) {
        let Some(slot) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some(track) = slot.bfd.as_mut() else {
            return;
        };
        let may_run = track.bgp_may_run(now);
        if may_run && track.held {
            track.held = false;
            info!(%peer, "BGP session released (BFD up, not damped)");
            slot.track.info.clear();
            if slot.track.enabled {
                slot.session.command(PeerCommand::Start);
            }
        } else if !may_run && !track.held {
            track.held = true;
            let why = track.hold_reason().unwrap_or_default();
            info!(%peer, reason = %why, "BGP session held down");
            // After a Cease the session sits in Idle: Stop keeps it there.
            slot.session.command(PeerCommand::Stop(Some(why.clone())));
            slot.track.info = why;
        }
    }

    /// When the next damped session is to be released.
    pub(super) fn bfd_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|s| s.bfd.as_ref())
            .filter_map(|t| t.damping.release_at())
            .min()
    }

    /// Releases the damped sessions whose time has come.
    pub(super) fn bfd_timer(&mut self, now: Instant) {
        let due: Vec<topo::PeerKey> = self
            .peers
            .iter()
            .filter(|(_, s)| {
                s.bfd
                    .as_ref()
                    .and_then(|t| t.damping.release_at())
                    .is_some_and(|at| at <= now)
            })
            .map(|(a, _)| *a)
            .collect();
        for a in due {
            self.reconcile_hold(a, now);
        }
    }

    /// A session closed by BFD went down: its routes leave now, and each
    /// prefix that lost its best path to it is remembered for `route
    /// explain`. Pending changes are pumped first so that only this peer's
    /// are attributed to it.
    pub(super) fn bfd_teardown_done(
        &mut self,
        key: topo::PeerKey,
        id: PeerId,
        kind: DownKind,
        (diag, at): (Diag, Instant),
        now: Instant,
    ) {
        self.pump(now);
        if let Some(rib) = self.rib.as_mut()
            && let Err(e) = rib.peer_down(id, kind, now)
        {
            debug!(peer = %key, error = %e, "RIB peer down");
        }
        let Some(rib) = self.rib.as_mut() else {
            return;
        };
        // With a FIB the RIB says what each prefix's best became; without
        // one (a reflector) only which prefixes changed.
        let changes = rib.drain_best_changes();
        let changed = rib.drain_changed_prefixes();
        let withdrawn = matches!(kind, DownKind::Flush);
        let departure = am::RouteDeparture {
            peer: key.address,
            at_unix_seconds: self.clock.unix(at),
            reason: format!("BFD went down ({diag})"),
            withdrawn,
        };
        for p in changes
            .iter()
            .map(|c| c.prefix)
            .chain(changed.iter().copied())
        {
            self.departures.record(p, departure.clone());
        }
        info!(peer = %key, prefixes = changes.len() + changed.len(), withdrawn, "BFD down: the peer's routes left");
        self.deliver_best(changes, changed, at);
    }
}
