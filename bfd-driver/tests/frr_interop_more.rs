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
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::bfdd::{Bfdd, bfdd_preflight, num};
use common::{EventLog, NsDriver, init_tracing, timers};
use interop_tests::{Lab, Ns, Segment};
use serde_json::Value;
use tabby_bfd_driver::{BfdEvent, DriverConfig, SessionId, SessionSpec, State};

const LIMIT: Duration = Duration::from_secs(15);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A bfdd configuration with one peer block: `peer_line` (`peer X
/// local-address Y`, `... multihop ...`) and its options.
fn bfdd_conf(peer_line: &str, interval_ms: u64, extra: &[&str]) -> String {
    let mut opts = format!(
        "  receive-interval {interval_ms}\n  transmit-interval {interval_ms}\n  detect-multiplier 3\n"
    );
    for e in extra {
        opts.push_str(&format!("  {e}\n"));
    }
    format!(
        "frr defaults traditional\nhostname frr\nlog stdout informational\n!\n\
         bfd\n {peer_line}\n{opts} !\n!\n"
    )
}

/// What bfdd advertises (`receive-interval`, `transmit-interval`) and what
/// it has heard from us (`remote-*`), in milliseconds, and its peer's
/// detect multiplier.
fn bfdd_timers(p: &Value) -> (u64, u64, u64, u64, u64) {
    (
        num(p, "receive-interval"),
        num(p, "transmit-interval"),
        num(p, "remote-receive-interval"),
        num(p, "remote-transmit-interval"),
        num(p, "remote-detect-multiplier"),
    )
}

/// How long a renegotiated session is left running before it is checked:
/// twice its longest Detection Time, so that timers still in the old
/// rhythm on either side would have expired.
fn hold(detect: Duration) -> Duration {
    (2 * detect).max(Duration::from_secs(1))
}

/// Lets the session run for `hold`, then checks that neither side left Up
/// since we saw it Up at `up_at` and that Tabby reported nothing.
async fn ensure_stayed_up(
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    bfdd: &Bfdd,
    peer: IpAddr,
    up_at: Instant,
    hold: Duration,
) -> Result<()> {
    ev.settle(hold).await;
    ev.ensure_quiet(id, "while the intervals changed").await?;
    let i = dt.info(id).await?;
    ensure!(i.state == State::Up && i.flaps == 0, "{i:#?}");
    let p = bfdd.peer(peer)?;
    // bfdd's uptime (whole seconds) counts from its last Up: it must cover
    // the time since we first saw it Up, less a second of rounding.
    let uptime = num(&p, "uptime");
    let since = up_at.elapsed().as_secs();
    ensure!(
        p["status"].as_str() == Some("up") && uptime + 1 >= since,
        "bfdd left Up: uptime {uptime} s, Up for {since} s here: {p}"
    );
    Ok(())
}

/// Tabby's `update_timers` while Up: 100 ms -> `slow` ms -> 100 ms, with
/// bfdd at 100 ms. bfdd transmits at our Required Min RX and detects at our
/// Desired Min TX times our multiplier; it reports what it heard from us.
#[allow(clippy::too_many_arguments)]
async fn renegotiate_from_tabby(
    lab: &Lab,
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    bfdd: &Bfdd,
    peer: IpAddr,
    slow: u64,
    up_at: Instant,
) -> Result<()> {
    for n in [slow, 100] {
        let t = Instant::now();
        dt.handle().update_timers(id, timers(n)).await?;
        let i = dt.wait_negotiated(id, ms(n), ms(3 * n), LIMIT).await?;
        let p = bfdd.wait_peer(lab, peer, "up", LIMIT, |p| {
            bfdd_timers(p) == (100, 100, n, n, 3)
        })?;
        eprintln!(
            "measured: Tabby's change to {n} ms settled on both sides in {:?}; bfdd: {p}",
            t.elapsed()
        );
        ensure!(i.rx_interval == Some(ms(n)), "{i:#?}");
        ensure_stayed_up(dt, ev, id, bfdd, peer, up_at, hold(ms(3 * n))).await?;
    }
    Ok(())
}

/// bfdd's intervals changed in its peer block while Up: 100 ms -> `slow`
/// ms -> 100 ms, with Tabby at 100 ms.
#[allow(clippy::too_many_arguments)]
async fn renegotiate_from_bfdd(
    lab: &Lab,
    dt: &NsDriver,
    ev: &mut EventLog,
    id: SessionId,
    bfdd: &Bfdd,
    peer_line: &str,
    peer: IpAddr,
    slow: u64,
    up_at: Instant,
) -> Result<()> {
    for n in [slow, 100] {
        let polls_before = dt.info(id).await?.counters.polls_in;
        let t = Instant::now();
        bfdd.configure_peer(
            peer_line,
            &[
                &format!("receive-interval {n}"),
                &format!("transmit-interval {n}"),
            ],
        )?;
        let i = dt.wait_negotiated(id, ms(n), ms(3 * n), LIMIT).await?;
        let p = bfdd.wait_peer(lab, peer, "up", LIMIT, |p| {
            bfdd_timers(p) == (n, n, 100, 100, 3)
        })?;
        eprintln!(
            "measured: bfdd's change to {n} ms settled on both sides in {:?}; bfdd: {p}",
            t.elapsed()
        );
        ensure!(
            i.counters.polls_in > polls_before,
            "bfdd did not poll: {i:#?}"
        );
        ensure_stayed_up(dt, ev, id, bfdd, peer, up_at, hold(ms(3 * n))).await?;
    }
    Ok(())
}

struct OneLink {
    lab: Lab,
    tabby: Ns,
    frr: Ns,
    seg: Segment,
}

fn one_link(name: &str) -> Result<OneLink> {
    bfdd_preflight()?;
    let mut lab = Lab::new(name)?;
    let tabby = lab.ns("tabby")?;
    let frr = lab.ns("frr")?;
    let seg = lab.link(&tabby, &frr)?;
    Ok(OneLink {
        lab,
        tabby,
        frr,
        seg,
    })
}

#[tokio::test(flavor = "current_thread")]
async fn frr_tabby_passive_bfdd_active() -> Result<()> {
    init_tracing();
    let OneLink {
        mut lab,
        tabby,
        frr,
        seg,
    } = one_link("bfd-frr-pas")?;
    let (us, them): (IpAddr, IpAddr) = (seg.v4(&tabby)?.into(), seg.v4(&frr)?.into());
    let dt = NsDriver::start(&tabby, DriverConfig::default())?;
    let mut ev = EventLog::new(&dt);
    let mut spec =
        SessionSpec::single_hop(them, Some(us), Some(seg.ifname(&tabby)?)).with_timers(timers(100));
    spec.passive = true;
    let id = dt.handle().add(spec).await?;
    // Passive: nothing goes out before bfdd speaks.
    ev.settle(ms(300)).await;
    ensure!(dt.info(id).await?.counters.packets_out == 0);

    let peer_line = format!("peer {us} local-address {them}");
    let t0 = Instant::now();
    let bfdd = Bfdd::start(&mut lab, &frr, "bfdd", &bfdd_conf(&peer_line, 100, &[]))?;
    ev.wait(id, LIMIT, |e| *e == BfdEvent::Up).await?;
    let up_at = Instant::now();
    eprintln!(
        "measured: Tabby (passive) Up {:?} after bfdd started",
        t0.elapsed()
    );
    let p = bfdd.wait_peer(&lab, us, "up", LIMIT, |p| {
        bfdd_timers(p) == (100, 100, 100, 100, 3)
    })?;
    let i = dt.wait_negotiated(id, ms(100), ms(300), LIMIT).await?;
    eprintln!("bfdd: {p}\nTabby: {i:#?}");
    ensure!(p["passive-mode"].as_bool() != Some(true), "{p}");
    ensure!(num(&p, "id") == u64::from(i.remote_discriminator), "{p}");
    ensure!(
        num(&p, "remote-id") == u64::from(i.local_discriminator),
        "{p}"
    );

    renegotiate_from_bfdd(&lab, &dt, &mut ev, id, &bfdd, &peer_line, us, 300, up_at).await?;

    // bfdd's multiplier: no Poll needed (RFC 5880 §6.8.12), our Detection
    // Time follows its next packet.
    bfdd.configure_peer(&peer_line, &["detect-multiplier 5"])?;
    let i = dt.wait_negotiated(id, ms(100), ms(500), LIMIT).await?;
    ensure!(i.remote_detect_mult == Some(5), "{i:#?}");
    ensure_stayed_up(&dt, &mut ev, id, &bfdd, us, up_at, hold(ms(500))).await?;

    let st = dt.handle().stats().await?;
    eprintln!("Tabby driver stats: {st:?}");
    ensure!(st.dropped_total() == 0, "{st:?}");
    drop(dt);
    drop(lab);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn frr_bfdd_passive_tabby_active() -> Result<()> {
    init_tracing();
    let OneLink {
        mut lab,
        tabby,
        frr,
        seg,
    } = one_link("bfd-frr-act")?;
    let (us, them): (IpAddr, IpAddr) = (seg.v4(&tabby)?.into(), seg.v4(&frr)?.into());
    let peer_line = format!("peer {us} local-address {them}");
    let bfdd = Bfdd::start(
        &mut lab,
        &frr,
        "bfdd",
        &bfdd_conf(&peer_line, 100, &["passive-mode"]),
    )?;
    let p = bfdd.peer(us)?;
    ensure!(p["passive-mode"].as_bool() == Some(true), "{p}");
    ensure!(p["status"].as_str() == Some("down"), "{p}");

    let dt = NsDriver::start(&tabby, DriverConfig::default())?;
    let mut ev = EventLog::new(&dt);
    let t0 = Instant::now();
    let id = dt
        .handle()
        .add(
            SessionSpec::single_hop(them, Some(us), Some(seg.ifname(&tabby)?))
                .with_timers(timers(100)),
        )
        .await?;
    ev.wait(id, LIMIT, |e| *e == BfdEvent::Up).await?;
    let up_at = Instant::now();
    eprintln!(
        "measured: Tabby Up {:?} after adding the session",
        t0.elapsed()
    );
    let p = bfdd.wait_peer(&lab, us, "up", LIMIT, |p| {
        bfdd_timers(p) == (100, 100, 100, 100, 3)
    })?;
    let i = dt.wait_negotiated(id, ms(100), ms(300), LIMIT).await?;
    eprintln!("bfdd: {p}\nTabby: {i:#?}");
    ensure!(
        num(&p, "remote-id") == u64::from(i.local_discriminator),
        "{p}"
    );

    renegotiate_from_tabby(&lab, &dt, &mut ev, id, &bfdd, us, 500, up_at).await?;

    let st = dt.handle().stats().await?;
    eprintln!("Tabby driver stats: {st:?}");
    ensure!(st.dropped_total() == 0, "{st:?}");
    drop(dt);
    drop(lab);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn frr_single_hop_v6() -> Result<()> {
    init_tracing();
    let OneLink {
        mut lab,
        tabby,
        frr,
        seg,
    } = one_link("bfd-frr-sh6")?;
    let (us, them): (IpAddr, IpAddr) = (seg.v6(&tabby)?.into(), seg.v6(&frr)?.into());
    let peer_line = format!("peer {us} local-address {them}");
    let bfdd = Bfdd::start(&mut lab, &frr, "bfdd", &bfdd_conf(&peer_line, 100, &[]))?;
    let dt = NsDriver::start(&tabby, DriverConfig::default())?;
    let mut ev = EventLog::new(&dt);
    let id = dt
        .handle()
        .add(
            SessionSpec::single_hop(them, Some(us), Some(seg.ifname(&tabby)?))
                .with_timers(timers(100)),
        )
        .await?;
    ev.wait(id, LIMIT, |e| *e == BfdEvent::Up).await?;
    let up_at = Instant::now();
    let p = bfdd.wait_peer(&lab, us, "up", LIMIT, |p| {
        bfdd_timers(p) == (100, 100, 100, 100, 3)
    })?;
    let i = dt.wait_negotiated(id, ms(100), ms(300), LIMIT).await?;
    eprintln!("bfdd: {p}\nTabby: {i:#?}");
    ensure!(num(&p, "id") == u64::from(i.remote_discriminator), "{p}");

    renegotiate_from_tabby(&lab, &dt, &mut ev, id, &bfdd, us, 300, up_at).await?;
    renegotiate_from_bfdd(&lab, &dt, &mut ev, id, &bfdd, &peer_line, us, 300, up_at).await?;
    let st = dt.handle().stats().await?;
    eprintln!("Tabby driver stats: {st:?}");
    ensure!(st.dropped_total() == 0, "{st:?}");
    drop(dt);
    drop(lab);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn frr_multihop_v4_across_a_router() -> Result<()> {
    init_tracing();
    bfdd_preflight()?;
    let mut lab = Lab::new("bfd-frr-mh")?;
    let tabby = lab.ns("tabby")?;
    let r = lab.ns("router")?;
    let frr = lab.ns("frr")?;
    let left = lab.link(&tabby, &r)?;
    let right = lab.link(&r, &frr)?;
    let us: IpAddr = left.v4(&tabby)?.into();
    let them: IpAddr = right.v4(&frr)?.into();
    lab.add_route(
        &tabby,
        &format!("198.18.{}.0/24 via {}", right.index, left.v4(&r)?),
    )?;
    lab.add_route(
        &frr,
        &format!("198.18.{}.0/24 via {}", left.index, right.v4(&r)?),
    )?;
    ensure!(lab.ping(&tabby, them), "no route from Tabby to bfdd");

    let peer_line = format!("peer {us} multihop local-address {them}");
    let bfdd = Bfdd::start(&mut lab, &frr, "bfdd", &bfdd_conf(&peer_line, 100, &[]))?;
    let dt = NsDriver::start(&tabby, DriverConfig::default())?;
    let mut ev = EventLog::new(&dt);
    let id = dt
        .handle()
        .add(SessionSpec::multihop(them, us).with_timers(timers(100)))
        .await?;
    ev.wait(id, LIMIT, |e| *e == BfdEvent::Up).await?;
    let up_at = Instant::now();
    let p = bfdd.wait_peer(&lab, us, "up", LIMIT, |p| {
        bfdd_timers(p) == (100, 100, 100, 100, 3)
    })?;
    let i = dt.wait_negotiated(id, ms(100), ms(300), LIMIT).await?;
    eprintln!("bfdd: {p}\nTabby: {i:#?}");
    // bfdd's default minimum TTL, like ours: one router between us.
    ensure!(
        p["multihop"].as_bool() == Some(true) && num(&p, "minimum-ttl") == 254,
        "{p}"
    );
    ensure!(i.multihop, "{i:#?}");
    ensure!(num(&p, "id") == u64::from(i.remote_discriminator), "{p}");

    renegotiate_from_tabby(&lab, &dt, &mut ev, id, &bfdd, us, 300, up_at).await?;
    renegotiate_from_bfdd(&lab, &dt, &mut ev, id, &bfdd, &peer_line, us, 300, up_at).await?;
    let st = dt.handle().stats().await?;
    eprintln!("Tabby driver stats: {st:?}");
    ensure!(st.dropped_total() == 0, "{st:?}");
    drop(dt);
    drop(lab);
    Ok(())
}
