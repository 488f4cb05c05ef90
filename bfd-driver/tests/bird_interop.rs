//! Interop with BIRD 2's `protocol bfd` (BIRD 2.0.12), with BIRD running
//! only `protocol device` and `protocol bfd` with static neighbors. Each
//! test asserts both sides: Tabby's events and `SessionInfo`, and BIRD's
//! `show bfd sessions` (state, transmit interval, detection time).
//!
//! - single-hop IPv4, Tabby active and BIRD passive: Up; Tabby's
//!   `update_timers` 100 ms -> 500 ms -> 100 ms renegotiated while Up, seen
//!   in BIRD's interval and timeout and in Tabby's snapshot, the session
//!   never leaving Up; Tabby's AdminDown takes BIRD Down; BIRD's `disable`
//!   of the protocol (what BIRD does instead of AdminDown, see below).
//! - single-hop IPv4, Tabby passive and BIRD active: Up; BIRD's intervals
//!   changed in its config and applied with `birdc configure` (100 ms ->
//!   300 ms -> 100 ms), Tabby seeing the new negotiated values without a
//!   Down.
//! - single-hop IPv6, both active, to a global and to a link-local address
//!   on the same link.
//! - multihop IPv4 across a router namespace, Tabby passive and BIRD
//!   active: BIRD 2 sends multihop packets with the system's default TTL
//!   (64), not 255, so Tabby's default minimum TTL (254) drops them all;
//!   with the minimum set to 64 - 1 hop the session comes Up, and a
//!   renegotiation while Up works there too.
//!
//! BIRD 2.0.12 never sends AdminDown: disabling the protocol (or removing
//! a neighbor) frees its sessions without a last packet (`bfd_shutdown` ->
//! `bfd_remove_session`), so Tabby sees silence and reports a failure,
//! `Down` with diagnostic 1, after its Detection Time.
//!
//! Needs root and BIRD 2 (Debian `bird2`).

mod common;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::interop::{
    admin_down_and_back, end_without_drops, ensure_stayed_up, hold, renegotiate_from_peer,
    renegotiate_from_tabby, wait_both_up, wait_detected_down,
};
use common::{
    Family, LIMIT, MARGIN, init_tracing, link_local, ms, one_link, routed_pair, single_hop_100ms,
    start_driver, timers,
};
use interop_tests::{Bird, Lab, Need, Ns, Segment, preflight};
use tabby_bfd_driver::{DEFAULT_MULTIHOP_MIN_TTL, Diag, DropReason, SessionSpec, State};

// ----- BIRD's side -----

/// What BIRD runs: its BFD options for direct and multihop sessions and the
/// static neighbors (`neighbor ...` lines without the keyword).
#[derive(Debug, Clone)]
struct BirdBfdConf {
    router_id: Ipv4Addr,
    interval_ms: u64,
    multiplier: u8,
    passive: bool,
    neighbors: Vec<String>,
}

impl BirdBfdConf {
    /// 100 ms both ways, multiplier 3.
    fn new(passive: bool, neighbors: Vec<String>) -> BirdBfdConf {
        BirdBfdConf {
            router_id: Ipv4Addr::new(198, 18, 255, 2),
            interval_ms: 100,
            multiplier: 3,
            passive,
            neighbors,
        }
    }

    fn render(&self) -> String {
        let opts = format!(
            "interval {} ms; multiplier {}; passive {};",
            self.interval_ms,
            self.multiplier,
            if self.passive { "yes" } else { "no" }
        );
        let neighbors: String = self
            .neighbors
            .iter()
            .map(|n| format!("  neighbor {n};\n"))
            .collect();
        format!(
            "router id {rid};\nlog stderr all;\n\
             protocol device {{ scan time 10; }}\n\
             protocol bfd bfd1 {{\n  debug {{ states, events }};\n  \
             interface \"*\" {{ {opts} }};\n  multihop {{ {opts} }};\n{neighbors}}}\n",
            rid = self.router_id
        )
    }
}

/// One line of BIRD 2's `show bfd sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BirdSession {
    addr: IpAddr,
    /// `---` for multihop.
    iface: String,
    /// `AdminDown`, `Down`, `Init`, `Up`.
    state: String,
    /// When the state last changed, as BIRD prints it.
    since: String,
    /// The negotiated transmit interval: max(BIRD's Desired Min TX, the
    /// peer's Required Min RX); zero while BIRD does not transmit.
    interval: Duration,
    /// The Detection Time: max(BIRD's Required Min RX, the peer's Desired
    /// Min TX) times the peer's Detect Mult.
    timeout: Duration,
}

impl fmt::Display for BirdSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BIRD {self:?}")
    }
}

/// BIRD prints seconds with three decimals.
fn bird_secs(s: &str) -> Result<Duration> {
    let v: f64 = s.parse().with_context(|| format!("not seconds: {s:?}"))?;
    Ok(Duration::from_millis((v * 1000.0).round() as u64))
}

fn bird_sessions(bird: &Bird) -> Result<Vec<BirdSession>> {
    let out = bird.cmd("show bfd sessions")?;
    let mut v = Vec::new();
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 6 {
            continue;
        }
        let Ok(addr) = t[0].parse::<IpAddr>() else {
            continue;
        };
        v.push(BirdSession {
            addr,
            iface: t[1].to_string(),
            state: t[2].to_string(),
            since: t[3..t.len() - 2].join(" "),
            interval: bird_secs(t[t.len() - 2])?,
            timeout: bird_secs(t[t.len() - 1])?,
        });
    }
    Ok(v)
}

fn bird_session(bird: &Bird, addr: IpAddr) -> Result<BirdSession> {
    bird_sessions(bird)?
        .into_iter()
        .find(|s| s.addr == addr)
        .with_context(|| format!("BIRD has no BFD session to {addr}"))
}

/// Waits until BIRD's session to `addr` is in `state`.
fn wait_bird_state(lab: &Lab, bird: &Bird, addr: IpAddr, state: &str) -> Result<BirdSession> {
    lab.wait_for(&format!("BIRD's session to {addr} {state}"), LIMIT, || {
        let s = bird_session(bird, addr)?;
        ensure!(s.state == state, "BIRD says {s:?}");
        Ok(s)
    })
}

/// Waits until BIRD's session to `addr` is Up with these negotiated values.
fn wait_bird_negotiated(
    lab: &Lab,
    bird: &Bird,
    addr: IpAddr,
    interval: Duration,
    timeout: Duration,
) -> Result<BirdSession> {
    lab.wait_for(
        &format!("BIRD at interval {interval:?}, timeout {timeout:?}"),
        LIMIT,
        || {
            let s = bird_session(bird, addr)?;
            ensure!(
                s.state == "Up" && s.interval == interval && s.timeout == timeout,
                "BIRD says {s:?}"
            );
            Ok(s)
        },
    )
}

/// Checks that BIRD's session to `addr` is Up and has not changed state
/// since `since` (as BIRD prints it).
fn bird_up_since(bird: &Bird, addr: IpAddr, since: &str) -> Result<()> {
    let b = bird_session(bird, addr)?;
    ensure!(
        b.state == "Up" && b.since == since,
        "BIRD's session changed state: {b:?} (Up since {since})"
    );
    Ok(())
}

fn reconfigure(bird: &Bird, conf: &BirdBfdConf) -> Result<()> {
    std::fs::write(&bird.conf, conf.render())
        .with_context(|| format!("cannot write {}", bird.conf.display()))?;
    bird.configure()
}

// ----- the fixture -----

/// One link, Tabby's driver to be started on one end and BIRD on the other:
/// `(lab, tabby, bird, link, us, them)`.
fn bird_link(name: &str, family: Family) -> Result<(Lab, Ns, Ns, Segment, IpAddr, IpAddr)> {
    init_tracing();
    preflight(&[Need::Root, Need::Bird2])?;
    one_link(name, "bird", family)
}

// ----- the tests -----

#[tokio::test(flavor = "current_thread")]
async fn bird_single_hop_v4_tabby_active_bird_passive() -> Result<()> {
    let (mut lab, tabby, peer, seg, us, them) = bird_link("bfd-bird-sh4", Family::V4)?;
    let (tabby_if, peer_if) = (seg.ifname(&tabby)?, seg.ifname(&peer)?);
    let mut conf = BirdBfdConf::new(true, vec![format!("{us} dev \"{peer_if}\"")]);
    let bird = lab.start_bird2(&peer, "bird", &conf.render())?;
    // Passive: BIRD says nothing until it hears us.
    let b = bird_session(&bird, us)?;
    ensure!(
        b.state == "Down" && b.interval == Duration::ZERO,
        "passive BIRD already transmits: {b:?}"
    );

    let (dt, mut ev) = start_driver(&tabby)?;
    let t0 = Instant::now();
    let id = dt
        .handle()
        .add(single_hop_100ms(them, us, tabby_if))
        .await?;
    // BIRD transmits at our Required Min RX and expects our packets at our
    // Desired Min TX times our Detect Mult.
    let bird_at = |n| wait_bird_negotiated(&lab, &bird, us, ms(n), ms(3 * n));
    let (up, b, info) = wait_both_up(&dt, &mut ev, id, 100, bird_at).await?;
    eprintln!("measured: Tabby Up {:?} after adding the session", up - t0);
    ensure!(b.iface == peer_if, "{b:?}");
    ensure!(info.remote_detect_mult == Some(3) && info.rx_interval == Some(ms(100)));

    // ----- Tabby slows down while Up: 100 ms -> 500 ms, then back.
    let stayed_up = || bird_up_since(&bird, us, &b.since);
    renegotiate_from_tabby(&dt, &mut ev, id, &[500, 100], bird_at, stayed_up).await?;

    // ----- Tabby AdminDown: BIRD goes Down (Neighbor Signaled Session
    // Down), Tabby reports it as ours, not a failure.
    let bird_down = || wait_bird_state(&lab, &bird, us, "Down");
    admin_down_and_back(&dt, &mut ev, id, bird_down, bird_at).await?;

    // ----- BIRD's protocol disabled: BIRD 2 sends no AdminDown, it frees
    // the session and goes silent, so Tabby detects a failure.
    let t = Instant::now();
    let out = bird.cmd("disable bfd1")?;
    ensure!(out.contains("disabled"), "birdc disable: {out}");
    let took = wait_detected_down(&mut ev, id, t).await?;
    eprintln!(
        "measured: Tabby Down (diag 1) {took:?} after `birdc disable` (Detection Time 300 ms)"
    );
    ensure!(took <= ms(300) + MARGIN, "too late: {took:?}");
    let i = dt.info(id).await?;
    ensure!(
        i.remote_state == State::Up && i.remote_diag == Some(Diag::NoDiagnostic),
        "BIRD's last packet was not an Up one: {i:#?}"
    );
    let p = bird.protocol("bfd1")?;
    ensure!(p.proto == "BFD" && p.state == "down", "{p:?}");
    // Enabled again, BIRD starts a new session (new discriminator).
    let old_remote = info.remote_discriminator;
    bird.cmd("enable bfd1")?;
    let (_, _, i) = wait_both_up(&dt, &mut ev, id, 100, bird_at).await?;
    ensure!(i.remote_discriminator != old_remote, "{i:#?}");

    // ----- a configure that removes the neighbor: the same silence.
    conf.neighbors.clear();
    reconfigure(&bird, &conf)?;
    wait_detected_down(&mut ev, id, Instant::now()).await?;
    ensure!(bird_sessions(&bird)?.is_empty());
    end_without_drops(dt, lab).await
}

#[tokio::test(flavor = "current_thread")]
async fn bird_single_hop_v4_tabby_passive_bird_active() -> Result<()> {
    let (mut lab, tabby, peer, seg, us, them) = bird_link("bfd-bird-pas", Family::V4)?;
    let (tabby_if, peer_if) = (seg.ifname(&tabby)?, seg.ifname(&peer)?);

    let (dt, mut ev) = start_driver(&tabby)?;
    let mut spec = single_hop_100ms(them, us, tabby_if);
    spec.passive = true;
    let id = dt.handle().add(spec).await?;

    let mut conf = BirdBfdConf::new(false, vec![format!("{us} dev \"{peer_if}\"")]);
    let t0 = Instant::now();
    let bird = lab.start_bird2(&peer, "bird", &conf.render())?;
    // We transmit at BIRD's Required Min RX and detect at BIRD's Desired
    // Min TX times its Detect Mult; BIRD sees the same.
    let bird_at = |n| wait_bird_negotiated(&lab, &bird, us, ms(n), ms(3 * n));
    let (up, b, _) = wait_both_up(&dt, &mut ev, id, 100, bird_at).await?;
    eprintln!(
        "measured: Tabby (passive) Up {:?} after BIRD started",
        up - t0
    );

    // ----- BIRD changes its intervals while Up: 100 ms -> 300 ms -> 100 ms.
    let stayed_up = || bird_up_since(&bird, us, &b.since);
    let set = |n| {
        conf.interval_ms = n;
        reconfigure(&bird, &conf)
    };
    renegotiate_from_peer(&dt, &mut ev, id, &[300, 100], set, bird_at, stayed_up).await?;

    // ----- BIRD's multiplier changes too (no Poll needed, RFC 5880
    // §6.8.12): our Detection Time follows its next packet.
    conf.multiplier = 5;
    reconfigure(&bird, &conf)?;
    let i = dt.wait_negotiated(id, ms(100), ms(500), LIMIT).await?;
    ensure!(i.remote_detect_mult == Some(5), "{i:#?}");
    ensure_stayed_up(&dt, &mut ev, id, hold(ms(500)), stayed_up).await?;
    end_without_drops(dt, lab).await
}

#[tokio::test(flavor = "current_thread")]
async fn bird_single_hop_v6_global_and_link_local() -> Result<()> {
    let (mut lab, tabby, peer, seg, us, them) = bird_link("bfd-bird-sh6", Family::V6)?;
    let (tabby_if, peer_if) = (seg.ifname(&tabby)?, seg.ifname(&peer)?);
    let us_ll: IpAddr = link_local(&lab, &tabby, tabby_if)?.into();
    let them_ll: IpAddr = link_local(&lab, &peer, peer_if)?.into();
    let conf = BirdBfdConf::new(
        false,
        vec![
            format!("{us} dev \"{peer_if}\""),
            format!("{us_ll} dev \"{peer_if}\""),
        ],
    );
    let bird = lab.start_bird2(&peer, "bird", &conf.render())?;

    let (dt, mut ev) = start_driver(&tabby)?;
    let global = dt
        .handle()
        .add(single_hop_100ms(them, us, tabby_if))
        .await?;
    let ll = dt
        .handle()
        .add(single_hop_100ms(them_ll, us_ll, tabby_if))
        .await?;
    for (id, addr) in [(global, us), (ll, us_ll)] {
        let bird_at = |n| wait_bird_negotiated(&lab, &bird, addr, ms(n), ms(3 * n));
        let (_, b, _) = wait_both_up(&dt, &mut ev, id, 100, bird_at).await?;
        ensure!(b.iface == peer_if, "{b:?}");
    }
    let (a, b) = (dt.info(global).await?, dt.info(ll).await?);
    ensure!(
        a.remote_discriminator != b.remote_discriminator,
        "one BIRD session answers both: {a:#?} {b:#?}"
    );
    // Tabby slows the link-local one down; the global one is untouched.
    dt.handle().update_timers(ll, timers(300)).await?;
    wait_bird_negotiated(&lab, &bird, us_ll, ms(300), ms(900))?;
    dt.wait_negotiated(ll, ms(300), ms(900), LIMIT).await?;
    wait_bird_negotiated(&lab, &bird, us, ms(100), ms(300))?;
    ev.settle(hold(ms(900))).await;
    for id in [global, ll] {
        ev.ensure_quiet(id, "after the link-local session's renegotiation")
            .await?;
    }
    end_without_drops(dt, lab).await
}

#[tokio::test(flavor = "current_thread")]
async fn bird_multihop_v4_across_a_router() -> Result<()> {
    init_tracing();
    preflight(&[Need::Root, Need::Bird2])?;
    let (mut lab, tabby, peer, left, right) = routed_pair("bfd-bird-mh", "tabby", "bird")?;
    let us: IpAddr = left.v4(&tabby)?.into();
    let them: IpAddr = right.v4(&peer)?.into();
    // What BIRD's multihop packets leave with: the namespace's default TTL.
    let default_ttl: u8 = lab
        .exec(&peer, &["sysctl", "-n", "net.ipv4.ip_default_ttl"])?
        .trim()
        .parse()
        .context("net.ipv4.ip_default_ttl")?;

    let conf = BirdBfdConf::new(false, vec![format!("{us} local {them} multihop yes")]);
    let bird = lab.start_bird2(&peer, "bird", &conf.render())?;
    let (dt, mut ev) = start_driver(&tabby)?;
    let mut spec = SessionSpec::multihop(them, us).with_timers(timers(100));
    spec.passive = true;

    // ----- with the default minimum TTL (254) every packet of BIRD's is
    // dropped: it arrives with the default TTL less one hop.
    ensure!(spec.min_ttl == DEFAULT_MULTIHOP_MIN_TTL);
    let strict = dt.handle().add(spec.clone()).await?;
    let t = Instant::now();
    loop {
        let i = dt.info(strict).await?;
        let st = dt.handle().stats().await?;
        if st.dropped(DropReason::BadTtl) >= 2 {
            ensure!(
                i.state == State::Down && i.counters.packets_in == 0 && i.counters.discarded >= 2,
                "{i:#?}"
            );
            eprintln!("with min TTL 254: {st:?}");
            break;
        }
        if t.elapsed() > LIMIT {
            bail!("BIRD's multihop packets never arrived: {st:?} {i:#?}");
        }
        tokio::time::sleep(ms(50)).await;
    }
    ev.ensure_quiet(strict, "with every packet dropped").await?;
    // Passive and never heard: we never answered, so BIRD is still Down.
    ensure!(bird_session(&bird, us)?.state == "Down");
    dt.handle().remove(strict).await?;

    // ----- the minimum lowered to what crosses one router.
    spec.min_ttl = default_ttl - 1;
    let id = dt.handle().add(spec).await?;
    let bird_at = |n| wait_bird_negotiated(&lab, &bird, us, ms(n), ms(3 * n));
    let (_, b, i) = wait_both_up(&dt, &mut ev, id, 100, bird_at).await?;
    ensure!(i.multihop && b.iface == "---", "{b:?}");

    // ----- renegotiated while Up, from our side.
    let stayed_up = || bird_up_since(&bird, us, &b.since);
    renegotiate_from_tabby(&dt, &mut ev, id, &[300, 100], bird_at, stayed_up).await?;
    drop(dt);
    drop(lab);
    Ok(())
}
