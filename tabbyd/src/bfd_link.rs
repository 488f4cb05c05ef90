//! The daemon's link to the BFD driver: one task that turns the core's
//! wishes (a session per peer address, or none) into driver commands, and
//! the driver's events back into `(peer, notice)` for the core's loop.
//!
//! The driver starts with the first session asked for, so a node without
//! BFD opens no BFD socket. Its counters reach `/metrics` once a second.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use tabby_bfd_driver::{
    BfdDriver, BfdError, BfdEvent, BfdHandle, DriverConfig, DriverStats, SessionId, SessionSpec,
};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::daemon::{BfdNotice, BfdSessions};
use crate::metrics::{Metrics, ReasonLabel};

/// What the core asks of the link.
#[derive(Debug)]
enum Wish {
    Set(IpAddr, Option<SessionSpec>),
    Shutdown,
}

/// The core's side: cheap, never blocks.
#[derive(Debug)]
pub struct BfdLink {
    tx: mpsc::UnboundedSender<Wish>,
}

impl BfdSessions for BfdLink {
    fn set(&mut self, peer: IpAddr, spec: Option<SessionSpec>) {
        let _ = self.tx.send(Wish::Set(peer, spec));
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(Wish::Shutdown);
    }
}

/// The driver's handle once it runs, for the API's snapshots.
pub type BfdView = watch::Receiver<Option<BfdHandle>>;

/// Starts the link's task; notices go to `notices`.
pub fn start(
    notices: mpsc::Sender<(IpAddr, BfdNotice)>,
    metrics: Arc<Metrics>,
) -> (BfdLink, BfdView) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (view_tx, view) = watch::channel(None);
    tokio::spawn(run(rx, notices, view_tx, metrics));
    (BfdLink { tx }, view)
}

/// A running driver, as the link keeps it.
struct Running {
    handle: BfdHandle,
    events: broadcast::Receiver<(SessionId, BfdEvent)>,
    last: DriverStats,
}

/// The driver on both families' wildcard addresses, or IPv4 alone where
/// IPv6 is off (a namespace or host without it).
fn start_driver() -> Result<(BfdHandle, BfdDriver), String> {
    match BfdDriver::start(DriverConfig::default()) {
        Ok(d) => Ok(d),
        Err(e6) => {
            let cfg = DriverConfig {
                listen_v6: None,
                ..DriverConfig::default()
            };
            BfdDriver::start(cfg)
                .inspect(|_| {
                    warn!(error = %e6, "BFD over IPv6 is off: cannot listen on [{}]", Ipv6Addr::UNSPECIFIED)
                })
                .map_err(|e| format!("{e}; another BFD daemon (bfdd, BIRD) may hold the BFD ports on this node"))
        }
    }
}

async fn run(
    mut wishes: mpsc::UnboundedReceiver<Wish>,
    notices: mpsc::Sender<(IpAddr, BfdNotice)>,
    view: watch::Sender<Option<BfdHandle>>,
    metrics: Arc<Metrics>,
) {
    let mut driver: Option<Running> = None;
    let mut failed: Option<String> = None;
    let mut by_peer: HashMap<IpAddr, (SessionId, SessionSpec)> = HashMap::new();
    let mut by_id: HashMap<SessionId, IpAddr> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            wish = wishes.recv() => {
                let Some(wish) = wish else { break };
                let (peer, spec) = match wish {
                    Wish::Set(peer, spec) => (peer, spec),
                    Wish::Shutdown => break,
                };
                let Some(spec) = spec else {
                    if let (Some((id, _)), Some(d)) = (by_peer.remove(&peer), driver.as_ref()) {
                        by_id.remove(&id);
                        if let Err(e) = d.handle.remove(id).await {
                            debug!(%peer, error = %e, "BFD session removal");
                        }
                    }
                    continue;
                };
                if driver.is_none() && failed.is_none() {
                    match start_driver() {
                        Ok((handle, task)) => {
                            info!("BFD driver started");
                            tokio::spawn(task.run());
                            let events = handle.subscribe();
                            let _ = view.send(Some(handle.clone()));
                            driver = Some(Running { handle, events, last: DriverStats::default() });
                        }
                        Err(e) => {
                            error!(error = %e, "BFD cannot run on this node; sessions that ask for it run without it");
                            failed = Some(e);
                        }
                    }
                }
                let Some(d) = driver.as_ref() else {
                    let why = failed.clone().unwrap_or_default();
                    let _ = notices.send((peer, BfdNotice::Unavailable(why))).await;
                    continue;
                };
                match apply(&d.handle, &mut by_peer, &mut by_id, peer, spec).await {
                    Ok(()) => {}
                    Err(e) => {
                        warn!(%peer, error = %e, "BFD session refused");
                        let _ = notices.send((peer, BfdNotice::Unavailable(e.to_string()))).await;
                    }
                }
            }
            ev = next_event(&mut driver) => {
                match ev {
                    Ok((id, ev)) => {
                        if let Some(&peer) = by_id.get(&id) {
                            let _ = notices.send((peer, BfdNotice::Event(ev))).await;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "BFD events missed; re-reading every session");
                        if let Some(d) = driver.as_ref() {
                            resync(&d.handle, &by_id, &notices).await;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        error!("the BFD driver stopped");
                        driver = None;
                        let _ = view.send(None);
                        failed = Some("the BFD driver stopped".into());
                    }
                }
            }
            _ = tick.tick(), if driver.is_some() => {
                if let Some(d) = driver.as_mut() {
                    count(d, &metrics).await;
                }
            }
        }
    }
    // Dropping every handle stops the driver, which tells each peer
    // AdminDown first.
    let _ = view.send(None);
    drop(driver);
}

async fn next_event(
    driver: &mut Option<Running>,
) -> Result<(SessionId, BfdEvent), broadcast::error::RecvError> {
    match driver.as_mut() {
        Some(d) => d.events.recv().await,
        None => std::future::pending().await,
    }
}

/// One wish for one peer: a new session, new timers for a running one (a
/// Poll Sequence, no flap), or a new session for any other change.
async fn apply(
    handle: &BfdHandle,
    by_peer: &mut HashMap<IpAddr, (SessionId, SessionSpec)>,
    by_id: &mut HashMap<SessionId, IpAddr>,
    peer: IpAddr,
    spec: SessionSpec,
) -> Result<(), BfdError> {
    if let Some((id, old)) = by_peer.get(&peer).cloned() {
        if old == spec {
            return Ok(());
        }
        let mut same_but_timers = old.clone();
        same_but_timers.timers = spec.timers;
        if same_but_timers == spec {
            handle.update_timers(id, spec.timers).await?;
            by_peer.insert(peer, (id, spec));
            return Ok(());
        }
        by_peer.remove(&peer);
        by_id.remove(&id);
        handle.remove(id).await?;
    }
    let id = handle.add(spec.clone()).await?;
    by_peer.insert(peer, (id, spec));
    by_id.insert(id, peer);
    Ok(())
}

/// After missed events: the state of every session, told again.
async fn resync(
    handle: &BfdHandle,
    by_id: &HashMap<SessionId, IpAddr>,
    notices: &mpsc::Sender<(IpAddr, BfdNotice)>,
) {
    let Ok(sessions) = handle.sessions().await else {
        return;
    };
    for s in sessions {
        let Some(&peer) = by_id.get(&s.id) else {
            continue;
        };
        let ev = match (s.state, s.remote_state) {
            (tabby_bfd_driver::State::Up, _) => BfdEvent::Up,
            (_, tabby_bfd_driver::State::AdminDown) => BfdEvent::AdminDown,
            (tabby_bfd_driver::State::Down, _) if s.flaps > 0 => {
                BfdEvent::Down { diag: s.local_diag }
            }
            _ => continue,
        };
        let _ = notices.send((peer, BfdNotice::Event(ev))).await;
    }
}

/// The driver's counters into `/metrics` (counters grow by the difference).
async fn count(d: &mut Running, metrics: &Metrics) {
    let Ok(now) = d.handle.stats().await else {
        return;
    };
    metrics
        .bfd_packets_in
        .inc_by(now.packets_in.saturating_sub(d.last.packets_in));
    metrics
        .bfd_packets_out
        .inc_by(now.packets_out.saturating_sub(d.last.packets_out));
    for (reason, n) in &now.dropped {
        let before = d.last.dropped(*reason);
        if *n > before {
            metrics
                .bfd_dropped
                .get_or_create(&ReasonLabel {
                    reason: reason.to_string(),
                })
                .inc_by(n - before);
        }
    }
    d.last = now;
}
