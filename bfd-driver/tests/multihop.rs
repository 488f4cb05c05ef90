//! Multihop BFD (RFC 5883) across a router namespace, IPv4 (with
//! Meticulous Keyed SHA1, as RFC 5883 §6 recommends for multihop) and IPv6:
//! the sessions on port 4784 come Up with packets that arrive with TTL /
//! hop limit 254, accepted by the default minimum of 254; single-hop sessions
//! over the same path never come Up, every packet dropped for its TTL
//! (RFC 5881 §5).
//!
//! Needs root.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use common::{EventLog, NsDriver, init_tracing, routed_pair, timers};
use interop_tests::{Need, preflight};
use tabby_bfd_driver::{
    AuthConfig, BfdEvent, DEFAULT_MULTIHOP_MIN_TTL, DriverConfig, DropReason, SessionSpec, State,
};

#[tokio::test(flavor = "current_thread")]
async fn multihop_across_a_router() -> Result<()> {
    init_tracing();
    preflight(&[Need::Root])?;
    let (lab, a, b, left, right) = routed_pair("bfd-multihop", "a", "b")?;
    let (a4, a6) = (left.v4(&a)?, left.v6(&a)?);
    let (b4, b6) = (right.v4(&b)?, right.v6(&b)?);

    let da = NsDriver::start(&a, DriverConfig::default())?;
    let db = NsDriver::start(&b, DriverConfig::default())?;
    let mut ea = EventLog::new(&da);
    let mut eb = EventLog::new(&db);
    let t = timers(100);
    let multi = |peer: IpAddr, local: IpAddr| SessionSpec::multihop(peer, local).with_timers(t);
    let single = |peer: IpAddr, local: IpAddr| {
        SessionSpec::single_hop(peer, Some(local), None).with_timers(t)
    };
    let key = AuthConfig::keyed_sha1(3, b"lab-multihop-key", true).expect("valid key");
    let mut ma4_spec = multi(b4.into(), a4.into());
    ma4_spec.auth = Some(key.clone());
    let mut mb4_spec = multi(a4.into(), b4.into());
    mb4_spec.auth = Some(key);
    let ma4 = da.handle().add(ma4_spec).await?;
    let ma6 = da.handle().add(multi(b6.into(), a6.into())).await?;
    let mb4 = db.handle().add(mb4_spec).await?;
    let mb6 = db.handle().add(multi(a6.into(), b6.into())).await?;
    let sa4 = da.handle().add(single(b4.into(), a4.into())).await?;
    let sb4 = db.handle().add(single(a4.into(), b4.into())).await?;
    let sa6 = da.handle().add(single(b6.into(), a6.into())).await?;

    let limit = Duration::from_secs(10);
    let up = |e: &BfdEvent| *e == BfdEvent::Up;
    for id in [ma4, ma6] {
        ea.wait(id, limit, up).await?;
    }
    for id in [mb4, mb6] {
        eb.wait(id, limit, up).await?;
    }
    ensure!(DEFAULT_MULTIHOP_MIN_TTL == 254);
    for id in [ma4, ma6] {
        let i = da.info(id).await?;
        ensure!(i.multihop && i.state == State::Up, "{i:#?}");
    }
    // Let the single-hop sessions try for a few seconds.
    ea.settle(Duration::from_secs(3)).await;
    for id in [sa4, sa6] {
        ensure!(
            ea.unmatched(id).is_empty(),
            "single-hop event: {:?}",
            ea.seen
        );
        let i = da.info(id).await?;
        ensure!(
            i.state == State::Down && i.counters.packets_in == 0,
            "{i:#?}"
        );
    }
    ensure!(db.info(sb4).await?.state == State::Down);
    let sa = da.handle().stats().await?;
    let sb = db.handle().stats().await?;
    eprintln!("driver A stats: {sa:?}\ndriver B stats: {sb:?}");
    // Every single-hop packet arrived with TTL 254: dropped, counted.
    ensure!(sa.dropped(DropReason::BadTtl) >= 2, "{sa:?}");
    ensure!(sb.dropped(DropReason::BadTtl) >= 2, "{sb:?}");
    ensure!(
        sa.dropped_total()
            == sa.dropped(DropReason::BadTtl) + sa.dropped(DropReason::NoSessionForAddress)
    );
    drop((da, db));
    drop(lab);
    Ok(())
}
