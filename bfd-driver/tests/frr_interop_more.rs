//! More interop with FRR's bfdd (FRR 8.4) than `frr_interop.rs` covers,
//! each asserted from both sides (Tabby's events and `SessionInfo`, and
//! bfdd's `show bfd peers json`):
//!
//! - single-hop IPv4, Tabby passive and bfdd active: Up; bfdd's intervals
//!   changed while Up (`receive-interval` / `transmit-interval` in its peer
//!   block), 100 ms -> 300 ms -> 100 ms, and its multiplier: Tabby follows
//!   bfdd's Poll Sequences without leaving Up.
//! - single-hop IPv4, bfdd passive (`passive-mode`) and Tabby active: Up;
//!   Tabby's `update_timers` 100 ms -> 500 ms -> 100 ms while Up, bfdd
//!   seeing our new intervals, neither side leaving Up.
//! - single-hop IPv6 (global addresses), both active: Up, and a
//!   renegotiation from each side.
//! - multihop IPv4 across a router namespace (`peer X multihop
//!   local-address Y`), both active: bfdd sends with TTL 255 and checks a
//!   minimum TTL of 254, like Tabby, so both come Up across one router;
//!   renegotiated from each side while Up.
//!
//! bfdd runs alone, without zebra (see `common::bfdd`). Needs root and FRR
//! (Debian `frr`).

mod common;

use std::net::IpAddr;
use std::time::Instant;

use anyhow::{Result, ensure};
use common::bfdd::{Bfdd, BfddSide, bfdd_conf, bfdd_preflight, num};
use common::interop::{
    end_without_drops, ensure_stayed_up, hold, renegotiate_from_peer, renegotiate_from_tabby,
    wait_both_up,
};
use common::{
    EventLog, Family, LIMIT, NsDriver, init_tracing, ms, one_link, routed_pair, single_hop_100ms,
    start_driver, timers,
};
use interop_tests::{Lab, Ns, Segment};
use tabby_bfd_driver::{SessionId, SessionSpec};

/// Tabby's `update_timers` while Up: 100 ms -> `slow` ms -> 100 ms, with
/// bfdd at 100 ms. bfdd transmits at our Required Min RX and detects at our
/// Desired Min TX times our multiplier; it reports what it heard from us.
async fn from_tabby(
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    side: &BfddSide<'_>,
    up_at: Instant,
    slow: u64,
) -> Result<()> {
    let peer_at = |n| side.at((100, 100, n, n, 3));
    let stayed_up = || side.stayed_up(up_at);
    renegotiate_from_tabby(dt, ev, id, &[slow, 100], peer_at, stayed_up).await
}

/// bfdd's intervals changed in its peer block (`peer_line`) while Up: 100
/// ms -> `slow` ms -> 100 ms, with Tabby at 100 ms.
async fn from_bfdd(
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    side: &BfddSide<'_>,
    up_at: Instant,
    peer_line: &str,
    slow: u64,
) -> Result<()> {
    let set = |n| side.bfdd.set_intervals(peer_line, n);
    let peer_at = |n| side.at((n, n, 100, 100, 3));
    let stayed_up = || side.stayed_up(up_at);
    renegotiate_from_peer(dt, ev, id, &[slow, 100], set, peer_at, stayed_up).await
}

/// Tabby's namespace and bfdd's, one link: `(lab, tabby, frr, link, us,
/// them)`.
fn frr_link(name: &str, family: Family) -> Result<(Lab, Ns, Ns, Segment, IpAddr, IpAddr)> {
    init_tracing();
    bfdd_preflight()?;
    one_link(name, "frr", family)
}

#[tokio::test(flavor = "current_thread")]
async fn frr_tabby_passive_bfdd_active() -> Result<()> {
    let (mut lab, tabby, frr, seg, us, them) = frr_link("bfd-frr-pas", Family::V4)?;
    let (dt, mut ev) = start_driver(&tabby)?;
    let mut spec = single_hop_100ms(them, us, seg.ifname(&tabby)?);
    spec.passive = true;
    let id = dt.handle().add(spec).await?;
    // Passive: nothing goes out before bfdd speaks.
    ev.settle(ms(300)).await;
    ensure!(dt.info(id).await?.counters.packets_out == 0);

    let peer_line = format!("peer {us} local-address {them}");
    let t0 = Instant::now();
    let bfdd = Bfdd::start(&mut lab, &frr, "bfdd", &bfdd_conf(&peer_line, 100, &[]))?;
    let side = bfdd.side(&lab, us);
    let (up_at, p, i) = wait_both_up(&dt, &mut ev, id, 100, |n| side.at((n, n, n, n, 3))).await?;
    eprintln!(
        "measured: Tabby (passive) Up {:?} after bfdd started",
        up_at - t0
    );
    ensure!(p["passive-mode"].as_bool() != Some(true), "{p}");
    ensure!(num(&p, "id") == u64::from(i.remote_discriminator), "{p}");
    ensure!(
        num(&p, "remote-id") == u64::from(i.local_discriminator),
        "{p}"
    );

    from_bfdd(&dt, &mut ev, id, &side, up_at, &peer_line, 300).await?;

    // bfdd's multiplier: no Poll needed (RFC 5880 §6.8.12), our Detection
    // Time follows its next packet.
    bfdd.configure_peer(&peer_line, &["detect-multiplier 5"])?;
    let i = dt.wait_negotiated(id, ms(100), ms(500), LIMIT).await?;
    ensure!(i.remote_detect_mult == Some(5), "{i:#?}");
    ensure_stayed_up(&dt, &mut ev, id, hold(ms(500)), || side.stayed_up(up_at)).await?;
    end_without_drops(dt, lab).await
}

#[tokio::test(flavor = "current_thread")]
async fn frr_bfdd_passive_tabby_active() -> Result<()> {
    let (mut lab, tabby, frr, seg, us, them) = frr_link("bfd-frr-act", Family::V4)?;
    let peer_line = format!("peer {us} local-address {them}");
    let conf = bfdd_conf(&peer_line, 100, &["passive-mode"]);
    let bfdd = Bfdd::start(&mut lab, &frr, "bfdd", &conf)?;
    let p = bfdd.peer(us)?;
    ensure!(p["passive-mode"].as_bool() == Some(true), "{p}");
    ensure!(p["status"].as_str() == Some("down"), "{p}");

    let (dt, mut ev) = start_driver(&tabby)?;
    let t0 = Instant::now();
    let spec = single_hop_100ms(them, us, seg.ifname(&tabby)?);
    let id = dt.handle().add(spec).await?;
    let side = bfdd.side(&lab, us);
    let (up_at, p, i) = wait_both_up(&dt, &mut ev, id, 100, |n| side.at((n, n, n, n, 3))).await?;
    eprintln!(
        "measured: Tabby Up {:?} after adding the session",
        up_at - t0
    );
    ensure!(
        num(&p, "remote-id") == u64::from(i.local_discriminator),
        "{p}"
    );

    from_tabby(&dt, &mut ev, id, &side, up_at, 500).await?;
    end_without_drops(dt, lab).await
}

#[tokio::test(flavor = "current_thread")]
async fn frr_single_hop_v6() -> Result<()> {
    let (mut lab, tabby, frr, seg, us, them) = frr_link("bfd-frr-sh6", Family::V6)?;
    let peer_line = format!("peer {us} local-address {them}");
    let bfdd = Bfdd::start(&mut lab, &frr, "bfdd", &bfdd_conf(&peer_line, 100, &[]))?;
    let (dt, mut ev) = start_driver(&tabby)?;
    let spec = single_hop_100ms(them, us, seg.ifname(&tabby)?);
    let id = dt.handle().add(spec).await?;
    let side = bfdd.side(&lab, us);
    let (up_at, p, i) = wait_both_up(&dt, &mut ev, id, 100, |n| side.at((n, n, n, n, 3))).await?;
    ensure!(num(&p, "id") == u64::from(i.remote_discriminator), "{p}");

    from_tabby(&dt, &mut ev, id, &side, up_at, 300).await?;
    from_bfdd(&dt, &mut ev, id, &side, up_at, &peer_line, 300).await?;
    end_without_drops(dt, lab).await
}

#[tokio::test(flavor = "current_thread")]
async fn frr_multihop_v4_across_a_router() -> Result<()> {
    init_tracing();
    bfdd_preflight()?;
    let (mut lab, tabby, frr, left, right) = routed_pair("bfd-frr-mh", "tabby", "frr")?;
    let (us, them): (IpAddr, IpAddr) = (left.v4(&tabby)?.into(), right.v4(&frr)?.into());

    let peer_line = format!("peer {us} multihop local-address {them}");
    let bfdd = Bfdd::start(&mut lab, &frr, "bfdd", &bfdd_conf(&peer_line, 100, &[]))?;
    let (dt, mut ev) = start_driver(&tabby)?;
    let spec = SessionSpec::multihop(them, us).with_timers(timers(100));
    let id = dt.handle().add(spec).await?;
    let side = bfdd.side(&lab, us);
    let (up_at, p, i) = wait_both_up(&dt, &mut ev, id, 100, |n| side.at((n, n, n, n, 3))).await?;
    // bfdd's default minimum TTL, like ours: one router between us.
    ensure!(
        p["multihop"].as_bool() == Some(true) && num(&p, "minimum-ttl") == 254,
        "{p}"
    );
    ensure!(i.multihop, "{i:#?}");
    ensure!(num(&p, "id") == u64::from(i.remote_discriminator), "{p}");

    from_tabby(&dt, &mut ev, id, &side, up_at, 300).await?;
    from_bfdd(&dt, &mut ev, id, &side, up_at, &peer_line, 300).await?;
    end_without_drops(dt, lab).await
}
