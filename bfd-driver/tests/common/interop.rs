//! The checks a test against another BFD implementation repeats, with the
//! peer's side given as closures: `peer_at(n)` waits until the peer reports
//! the session Up with the values it should have once both sides settled
//! at `n` ms (and returns what the peer says, for the log);
//! `peer_stayed_up()` checks that the peer never left Up meanwhile. Tabby's
//! side is always its snapshot and its event log; every wait is bounded by
//! [`LIMIT`], and a session at `n` ms detects in 3 × `n` (multiplier 3 on
//! both sides).

use std::fmt::Display;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use interop_tests::Lab;
use tabby_bfd_driver::{BfdEvent, Diag, SessionId, SessionInfo, State};

use super::{EventLog, LIMIT, NsDriver, ms, timers};

/// How long a renegotiated session is left running before it is checked:
/// twice its longest Detection Time, so that timers still in the old
/// rhythm on either side would have expired.
pub fn hold(detect: Duration) -> Duration {
    (2 * detect).max(Duration::from_secs(1))
}

/// Waits until both sides are Up at `n` ms: Tabby's Up event for `id`,
/// then the peer (`peer_at(n)`), then Tabby's snapshot negotiated at `n` ms
/// with no Poll pending ([`NsDriver::wait_negotiated`]); logs both sides.
/// Returns when the Up event arrived, what the peer says, and the snapshot.
pub async fn wait_both_up<P: Display>(
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    n: u64,
    peer_at: impl FnOnce(u64) -> Result<P>,
) -> Result<(Instant, P, SessionInfo)> {
    let (at, _) = ev.wait(id, LIMIT, |e| *e == BfdEvent::Up).await?;
    let p = peer_at(n)?;
    let i = dt.wait_negotiated(id, ms(n), ms(3 * n), LIMIT).await?;
    eprintln!("peer: {p}\nTabby: {i:#?}");
    Ok((at, p, i))
}

/// Lets the session run for `hold`, then checks that Tabby reported nothing
/// for it, is Up and counted no flap, and that the peer stayed Up
/// (`peer_stayed_up`). Returns Tabby's snapshot.
pub async fn ensure_stayed_up(
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    hold: Duration,
    peer_stayed_up: impl Fn() -> Result<()>,
) -> Result<SessionInfo> {
    ev.settle(hold).await;
    ev.ensure_quiet(id, "while the intervals changed").await?;
    let i = dt.info(id).await?;
    ensure!(i.state == State::Up && i.flaps == 0, "{i:#?}");
    peer_stayed_up()?;
    Ok(i)
}

/// One step of a renegotiation while Up, its change made at `t` by `who`:
/// waits until both sides settled at `n` ms (Tabby's snapshot, then
/// `peer_at`) and logs how long that took. Returns Tabby's snapshot.
async fn settled<P: Display>(
    dt: &NsDriver,
    id: SessionId,
    n: u64,
    who: &str,
    t: Instant,
    peer_at: &impl Fn(u64) -> Result<P>,
) -> Result<SessionInfo> {
    let i = dt.wait_negotiated(id, ms(n), ms(3 * n), LIMIT).await?;
    let p = peer_at(n)?;
    eprintln!(
        "measured: {who}'s change to {n} ms settled on both sides in {:?}; peer: {p}",
        t.elapsed()
    );
    Ok(i)
}

/// Tabby's `update_timers` while Up, to `n` ms both ways for each `n` of
/// `steps` in turn, with the peer at 100 ms. Each step settles on both
/// sides: Tabby Up at `n` ms, expecting the peer's packets every `n` ms
/// (Tabby's Required Min RX is the larger), after a Poll Sequence of its
/// own (one more Poll out, one more Final in), and the peer at `n`
/// (`peer_at`); then the session stays Up on both sides for
/// [`hold`]`(3n)` ([`ensure_stayed_up`]).
pub async fn renegotiate_from_tabby<P: Display>(
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    steps: &[u64],
    peer_at: impl Fn(u64) -> Result<P>,
    peer_stayed_up: impl Fn() -> Result<()>,
) -> Result<()> {
    for &n in steps {
        let before = dt.info(id).await?.counters;
        let t = Instant::now();
        dt.handle().update_timers(id, timers(n)).await?;
        let i = settled(dt, id, n, "Tabby", t, &peer_at).await?;
        ensure!(i.rx_interval == Some(ms(n)), "{i:#?}");
        ensure!(
            i.counters.polls_out > before.polls_out && i.counters.finals_in > before.finals_in,
            "no Poll Sequence of ours: {i:#?}"
        );
        ensure_stayed_up(dt, ev, id, hold(ms(3 * n)), &peer_stayed_up).await?;
    }
    Ok(())
}

/// The peer's intervals changed while Up: `change(n)` sets the peer to `n`
/// ms both ways for each `n` of `steps` in turn, with Tabby at 100 ms. Each
/// step settles on both sides: Tabby Up at `n` ms after following the
/// peer's Poll Sequence (one more Poll in, one more Final out), and the peer
/// at `n` (`peer_at`); then the session stays Up on both sides for
/// [`hold`]`(3n)` ([`ensure_stayed_up`]).
pub async fn renegotiate_from_peer<P: Display>(
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    steps: &[u64],
    mut change: impl FnMut(u64) -> Result<()>,
    peer_at: impl Fn(u64) -> Result<P>,
    peer_stayed_up: impl Fn() -> Result<()>,
) -> Result<()> {
    for &n in steps {
        let before = dt.info(id).await?.counters;
        let t = Instant::now();
        change(n)?;
        let i = settled(dt, id, n, "the peer", t, &peer_at).await?;
        ensure!(
            i.counters.polls_in > before.polls_in,
            "the peer did not poll: {i:#?}"
        );
        ensure!(
            i.counters.finals_out > before.finals_out,
            "we sent no Final: {i:#?}"
        );
        ensure_stayed_up(dt, ev, id, hold(ms(3 * n)), &peer_stayed_up).await?;
    }
    Ok(())
}

/// Tabby's AdminDown while Up and back: Tabby reports `LocalAdminDown` and
/// the peer goes Down (`peer_down` waits for that); cleared, both sides are
/// Up again at 100 ms ([`wait_both_up`]). Returns Tabby's snapshot.
pub async fn admin_down_and_back<D, P: Display>(
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    peer_down: impl FnOnce() -> Result<D>,
    peer_at: impl FnOnce(u64) -> Result<P>,
) -> Result<SessionInfo> {
    dt.handle().set_admin_down(id, true).await?;
    ev.wait(id, LIMIT, |e| *e == BfdEvent::LocalAdminDown)
        .await?;
    peer_down()?;
    dt.handle().set_admin_down(id, false).await?;
    Ok(wait_both_up(dt, ev, id, 100, peer_at).await?.2)
}

/// Waits for `id`'s next event, which must be a Down with diagnostic 1
/// (Control Detection Time Expired): what Tabby reports of a peer that went
/// silent instead of sending AdminDown. Returns how long after `since` it
/// came.
pub async fn wait_detected_down(
    ev: &mut EventLog,
    id: SessionId,
    since: Instant,
) -> Result<Duration> {
    let (at, e) = ev
        .wait(id, LIMIT, |e| matches!(e, BfdEvent::Down { .. }))
        .await?;
    ensure!(
        e == BfdEvent::Down {
            diag: Diag::ControlDetectionTimeExpired
        },
        "{}: {id} reported {e:?}, not a silence detected",
        ev.label
    );
    Ok(at.saturating_duration_since(since))
}

/// The end of a test whose driver must have dropped no packet: logs and
/// checks the driver's counters, and stops the driver before the lab.
pub async fn end_without_drops(dt: NsDriver, lab: Lab) -> Result<()> {
    let st = dt.handle().stats().await;
    drop(dt);
    drop(lab);
    let st = st?;
    eprintln!("Tabby driver stats: {st:?}");
    ensure!(st.dropped_total() == 0, "{st:?}");
    Ok(())
}
