//! A link that silently drops everything one way: the side that stops
//! hearing its peer reports Down with diagnostic 1 (Control Detection Time
//! Expired) within Detect Mult × interval, the other side follows with
//! diagnostic 3 (Neighbor Signaled Session Down); when the link returns,
//! both come Up again.
//!
//! The lab kernel has no `sch_netem` (`tc qdisc add … netem` fails with
//! "Specified qdisc kind is unknown"), so the loss is an nftables rule in
//! B's namespace dropping B's BFD packets on output — the effect of
//! `netem loss 100%` on B's egress.
//!
//! Needs root and nftables.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::{Pair, init_tracing, timers};
use interop_tests::{Need, preflight};
use tabby_bfd_driver::{BfdEvent, Diag, SessionSpec, State};

/// Scheduling slack on a loaded two-core machine, on top of the Detection
/// Time.
const MARGIN: Duration = Duration::from_millis(700);

fn need_nft() -> Result<()> {
    ensure!(
        std::path::Path::new("/usr/sbin/nft").is_file(),
        "link_loss needs nftables (apt-get install nftables)"
    );
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn silent_link_is_detected_and_recovers() -> Result<()> {
    init_tracing();
    preflight(&[Need::Root])?;
    need_nft()?;
    let (lab, a, b, seg, da, db, mut ea, mut eb) = Pair::start("bfd-loss")?.parts();

    let t = timers(100);
    let dt = Duration::from_millis(300);
    let spec = |peer: IpAddr, local: IpAddr, ifname: &str| {
        SessionSpec::single_hop(peer, Some(local), Some(ifname)).with_timers(t)
    };
    let (ia, ib) = (seg.ifname(&a)?, seg.ifname(&b)?);
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
    let up = |e: &BfdEvent| *e == BfdEvent::Up;
    let limit = Duration::from_secs(10);
    for id in [a4, a6] {
        ea.wait(id, limit, up).await?;
    }
    for id in [b4, b6] {
        eb.wait(id, limit, up).await?;
    }
    // Both ends at 100 ms: the Detection Time is 3 × 100 ms.
    for id in [a4, a6] {
        da.wait_info(id, "at 100 ms", limit, |i| i.detection_time == Some(dt))
            .await?;
    }

    // ----- cut B -> A (both families: an inet table).
    let t0 = Instant::now();
    lab.exec(
        &b,
        &[
            "nft",
            "add table inet bfdloss; \
             add chain inet bfdloss out { type filter hook output priority 0; policy accept; }; \
             add rule inet bfdloss out udp dport 3784 drop",
        ],
    )?;
    let t1 = Instant::now();
    let failed = |e: &BfdEvent| {
        *e == BfdEvent::Down {
            diag: Diag::ControlDetectionTimeExpired,
        }
    };
    let (ta4, _) = ea.wait(a4, limit, failed).await?;
    let (ta6, _) = ea.wait(a6, limit, failed).await?;
    // B hears A's Down and follows: a failure too, diagnostic 3.
    let signalled = |e: &BfdEvent| {
        *e == BfdEvent::Down {
            diag: Diag::NeighborSignaledSessionDown,
        }
    };
    let (tb4, _) = eb.wait(b4, limit, signalled).await?;
    let (tb6, _) = eb.wait(b6, limit, signalled).await?;
    for (name, at) in [("a4", ta4), ("a6", ta6)] {
        eprintln!(
            "measured: {name} Down (diag 1) {:?} after the rule started, {:?} after it was in place \
             (Detection Time {dt:?})",
            at - t0,
            at.saturating_duration_since(t1)
        );
        // The last packet got through at most one interval before t0.
        ensure!(
            at - t0 >= dt - Duration::from_millis(100),
            "{name} too early"
        );
        ensure!(
            at.saturating_duration_since(t1) <= dt + MARGIN,
            "{name} too late"
        );
    }
    eprintln!(
        "measured: B followed (diag 3) {:?} (b4) {:?} (b6) after A",
        tb4.saturating_duration_since(ta4),
        tb6.saturating_duration_since(ta6)
    );
    let ia4 = da.info(a4).await?;
    ensure!(ia4.state == State::Down && ia4.local_diag == Diag::ControlDetectionTimeExpired);
    ensure!(ia4.flaps == 1);
    ensure!(db.info(b4).await?.local_diag == Diag::NeighborSignaledSessionDown);

    // ----- restore: both Up again.
    let t2 = Instant::now();
    lab.exec(&b, &["nft", "delete table inet bfdloss"])?;
    let (ra4, _) = ea.wait(a4, limit, up).await?;
    let (ra6, _) = ea.wait(a6, limit, up).await?;
    eb.wait(b4, limit, up).await?;
    eb.wait(b6, limit, up).await?;
    eprintln!(
        "measured: Up again {:?} (a4) {:?} (a6) after the rule was removed",
        ra4 - t2,
        ra6 - t2
    );
    let st = da.handle().stats().await?;
    eprintln!("driver A stats: {st:?}");
    ensure!(st.dropped_total() == 0, "A dropped packets: {st:?}");
    drop((da, db));
    drop(lab);
    Ok(())
}
