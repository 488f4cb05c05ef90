//! Two Tabby BFD drivers in two namespaces joined by a veth, single-hop
//! IPv4 and IPv6 (RFC 5881): they come Up; timers are renegotiated faster
//! and slower while Up with Poll/Final (RFC 5880 §6.5, §6.8.3) and no
//! flap; AdminDown on one side is AdminDown on the other, not a failure
//! (RFC 5880 §6.8.16, RFC 5882 §4.1); removing a session tells the peer
//! AdminDown too.
//!
//! Needs root (network namespaces).

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::{Pair, init_tracing, timers};
use interop_tests::{Need, preflight};
use tabby_bfd_driver::{BfdEvent, Diag, SessionSpec, State};

#[tokio::test(flavor = "current_thread")]
async fn two_drivers_up_renegotiate_and_admin_down() -> Result<()> {
    init_tracing();
    preflight(&[Need::Root])?;
    let (lab, a, b, seg, da, db, mut ea, mut eb) = Pair::start("bfd-pair")?.parts();

    let slow = timers(300);
    let spec = |peer: IpAddr, local: IpAddr, ifname: &str| {
        SessionSpec::single_hop(peer, Some(local), Some(ifname)).with_timers(slow)
    };
    let (ia, ib) = (seg.ifname(&a)?, seg.ifname(&b)?);
    let t0 = Instant::now();
    let a4 = da
        .handle()
        .add(spec(seg.v4(&b)?.into(), seg.v4(&a)?.into(), ia))
        .await?;
    let a6 = da
        .handle()
        .add(spec(seg.v6(&b)?.into(), seg.v6(&a)?.into(), ia))
        .await?;
    let b4 = db
        .handle()
        .add(spec(seg.v4(&a)?.into(), seg.v4(&b)?.into(), ib))
        .await?;
    let b6 = db
        .handle()
        .add(spec(seg.v6(&a)?.into(), seg.v6(&b)?.into(), ib))
        .await?;
    // A second session to the same peer is refused.
    ensure!(
        da.handle()
            .add(spec(seg.v4(&b)?.into(), seg.v4(&a)?.into(), ia))
            .await
            .is_err(),
        "duplicate session accepted"
    );

    let up = |e: &BfdEvent| *e == BfdEvent::Up;
    let limit = Duration::from_secs(10);
    let (ta4, _) = ea.wait(a4, limit, up).await?;
    let (ta6, _) = ea.wait(a6, limit, up).await?;
    let (tb4, _) = eb.wait(b4, limit, up).await?;
    let (tb6, _) = eb.wait(b6, limit, up).await?;
    eprintln!(
        "measured: Up after {:?} (a4) {:?} (a6) {:?} (b4) {:?} (b6)",
        ta4 - t0,
        ta6 - t0,
        tb4 - t0,
        tb6 - t0
    );
    // From here on nothing may be dropped (before B had its sessions, A's
    // first packets matched nothing there).
    let drops_a = da.handle().stats().await?.dropped_total();
    let drops_b = db.handle().stats().await?.dropped_total();
    for (x, y) in [(a4, b4), (a6, b6)] {
        let (ix, iy) = (da.info(x).await?, db.info(y).await?);
        ensure!(ix.state == State::Up && iy.state == State::Up);
        ensure!(ix.remote_discriminator == iy.local_discriminator);
        ensure!(iy.remote_discriminator == ix.local_discriminator);
        ensure!(ix.tx_interval == Duration::from_millis(300));
        ensure!(ix.detection_time == Some(Duration::from_millis(900)));
    }

    // ----- faster while Up: 300 ms -> 100 ms both ways, one side at a time.
    let fast = timers(100);
    let before = da.info(a4).await?.counters;
    let t = Instant::now();
    da.handle().update_timers(a4, fast).await?;
    let ia4 = da
        .wait_info(a4, "done polling", limit, |i| !i.poll_in_progress)
        .await?;
    let poll_a = t.elapsed();
    ensure!(ia4.counters.polls_out > before.polls_out, "no Poll sent");
    ensure!(
        ia4.counters.finals_in > before.finals_in,
        "no Final received"
    );
    let ib4 = db.info(b4).await?;
    ensure!(ib4.counters.polls_in >= 1 && ib4.counters.finals_out >= 1);
    // B still asks for 300 ms: A's transmit interval is max(100, 300).
    ensure!(ia4.tx_interval == Duration::from_millis(300));
    db.handle().update_timers(b4, fast).await?;
    let ib4 = db
        .wait_info(b4, "done polling", limit, |i| !i.poll_in_progress)
        .await?;
    let ia4 = da
        .wait_info(a4, "at 100 ms", limit, |i| {
            i.tx_interval == Duration::from_millis(100)
        })
        .await?;
    ensure!(ib4.tx_interval == Duration::from_millis(100));
    ensure!(ia4.detection_time == Some(Duration::from_millis(300)));
    ensure!(ib4.detection_time == Some(Duration::from_millis(300)));
    eprintln!(
        "measured: Poll/Final to 100 ms took {poll_a:?}; A polls out {} finals in {}, B polls in {} finals out {}",
        ia4.counters.polls_out,
        ia4.counters.finals_in,
        ib4.counters.polls_in,
        ib4.counters.finals_out
    );

    // Run fast for a while: no flap.
    let pkts = da.info(a4).await?.counters.packets_in;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rate = da.info(a4).await?.counters.packets_in - pkts;
    eprintln!("measured: {rate} packets from B in 2 s at 100 ms (75-100 % jitter)");
    ensure!((18..=30).contains(&rate), "{rate} packets in 2 s at 100 ms");

    // ----- slower while Up: A to 1 s. B's packets slow to 1 s too (A's
    // Required Min RX), and B's Detection Time of A grows to 3 s.
    let t = Instant::now();
    da.handle().update_timers(a4, timers(1000)).await?;
    let ia4 = da
        .wait_info(a4, "done polling", limit, |i| !i.poll_in_progress)
        .await?;
    let poll_slow = t.elapsed();
    let ib4 = db
        .wait_info(b4, "slowed to 1 s", limit, |i| {
            i.tx_interval == Duration::from_secs(1)
        })
        .await?;
    ensure!(ia4.tx_interval == Duration::from_secs(1));
    ensure!(ib4.detection_time == Some(Duration::from_secs(3)));
    ensure!(ia4.detection_time == Some(Duration::from_secs(3)));
    eprintln!("measured: Poll/Final to 1 s took {poll_slow:?}");
    ea.settle(Duration::from_millis(2500)).await;
    eb.settle(Duration::from_millis(10)).await;
    ensure!(ea.unmatched(a4).is_empty() && eb.unmatched(b4).is_empty());
    ensure!(da.info(a4).await?.flaps == 0 && db.info(b4).await?.flaps == 0);

    // ----- AdminDown on A: B reports AdminDown, not a failure.
    let t = Instant::now();
    da.handle().set_admin_down(a4, true).await?;
    ea.wait(a4, limit, |e| *e == BfdEvent::LocalAdminDown)
        .await?;
    let (tb, _) = eb.wait(b4, limit, |e| *e == BfdEvent::AdminDown).await?;
    eprintln!(
        "measured: B saw AdminDown {:?} after A was set AdminDown",
        tb - t
    );
    let ib4 = db.info(b4).await?;
    ensure!(ib4.state == State::Down && ib4.remote_state == State::AdminDown);
    ensure!(ib4.local_diag == Diag::NeighborSignaledSessionDown);
    ensure!(ib4.remote_diag == Some(Diag::AdministrativelyDown));
    ensure!(da.info(a4).await?.state == State::AdminDown);
    // The IPv6 session is not affected.
    ensure!(da.info(a6).await?.state == State::Up && db.info(b6).await?.state == State::Up);
    // Back up.
    da.handle().set_admin_down(a4, false).await?;
    ea.wait(a4, limit, up).await?;
    eb.wait(b4, limit, up).await?;

    let sa = da.handle().stats().await?;
    let sb = db.handle().stats().await?;
    eprintln!("driver A stats: {sa:?}\ndriver B stats: {sb:?}");
    ensure!(sa.dropped_total() == drops_a && sb.dropped_total() == drops_b);
    ensure!(sa.send_errors == 0 && sb.send_errors == 0);
    ensure!((49152..=65535).contains(&sa.source_port));

    // ----- Removing a session tells the peer AdminDown as well.
    da.handle().remove(a6).await?;
    eb.wait(b6, limit, |e| *e == BfdEvent::AdminDown).await?;
    ensure!(da.handle().session(a6).await.is_err());
    ensure!(da.handle().stats().await?.sessions == 1);
    drop((da, db));
    drop(lab);
    Ok(())
}
